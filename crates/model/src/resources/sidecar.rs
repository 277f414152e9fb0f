//! Sidecar (`networking.istio.io`): a workload's egress scope and outbound traffic policy.

use serde::{Deserialize, Serialize};

/// Sidecar spec (`networking.v1alpha3.Sidecar`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {}
