//! ServiceEntry (`networking.istio.io`): hosts outside the mesh added to the registry.

use serde::{Deserialize, Serialize};

/// ServiceEntry spec (`networking.v1alpha3.ServiceEntry`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}
