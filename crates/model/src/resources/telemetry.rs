//! Telemetry (`telemetry.istio.io`): metrics, tracing and access-log configuration.

use serde::{Deserialize, Serialize};

/// Telemetry spec (`telemetry.v1alpha1.Telemetry`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Telemetry {}
