//! VirtualService (`networking.istio.io`): HTTP, TLS and TCP routing rules.

use serde::{Deserialize, Serialize};

/// VirtualService spec (`networking.v1alpha3.VirtualService`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {}
