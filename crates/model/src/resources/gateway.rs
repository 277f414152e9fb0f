//! Gateway (`networking.istio.io`): servers (ports, hosts, TLS) a gateway workload exposes.

use serde::{Deserialize, Serialize};

/// Gateway spec (`networking.v1alpha3.Gateway`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {}
