//! ServiceEntry (`networking.istio.io`): hosts outside the mesh added to the registry.
//!
//! Modelled field for field after `networking/v1alpha3/service_entry.proto` and
//! `workload_entry.proto` (the `endpoints` element type), so that strict decoding accepts every
//! valid ServiceEntry and reports every unknown field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// ServiceEntry spec (`networking.v1alpha3.ServiceEntry`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "ServiceEntrySpec"))]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Hosts (DNS names, optionally with a wildcard prefix). REQUIRED, 1..256 items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Virtual IPs or CIDR prefixes of the service (≤256, each ≤64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
    /// Ports of the service (a list-map keyed by `name`, ≤256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
    /// Inside or outside the mesh (default `MESH_EXTERNAL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found (default `NONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Explicit endpoints (≤4096); exclusive with `workloadSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<WorkloadEntry>>,
    /// Selects pods / WorkloadEntries as endpoints; exclusive with `endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the service is visible to (`.`, `*`, `~` or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
    /// Subject alternative names verified on the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<String>>,
}

impl ServiceEntry {
    /// The resolution, `NONE` when unset.
    pub fn resolution_or_default(&self) -> Resolution {
        self.resolution.unwrap_or_default()
    }

    /// The location, `MESH_EXTERNAL` when unset.
    pub fn location_or_default(&self) -> Location {
        self.location.unwrap_or_default()
    }

    /// The hosts (empty when unset).
    pub fn hosts(&self) -> &[String] {
        self.hosts.as_deref().unwrap_or_default()
    }

    /// The addresses (empty when unset).
    pub fn addresses(&self) -> &[String] {
        self.addresses.as_deref().unwrap_or_default()
    }

    /// The ports (empty when unset).
    pub fn ports(&self) -> &[ServicePort] {
        self.ports.as_deref().unwrap_or_default()
    }

    /// The endpoints (empty when unset).
    pub fn endpoints(&self) -> &[WorkloadEntry] {
        self.endpoints.as_deref().unwrap_or_default()
    }

    /// The export list (empty when unset, meaning the mesh default).
    pub fn export_to(&self) -> &[String] {
        self.export_to.as_deref().unwrap_or_default()
    }
}

/// A port of a ServiceEntry (`networking.v1alpha3.ServicePort`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number. REQUIRED, 1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Protocol (`HTTP`, `HTTPS`, `TLS`, `TCP`, …); empty means auto-detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name. REQUIRED (the list-map key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port on the endpoints (defaults to `number`), 1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// The port number (0 when unset).
    pub fn number(&self) -> u32 {
        self.number.unwrap_or_default()
    }

    /// The protocol as written (empty when unset).
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or_default()
    }

    /// The port name (empty when unset).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The endpoint port: `targetPort` when set and non-zero, else `number`.
    pub fn target_port_or_number(&self) -> u32 {
        self.target_port
            .filter(|p| *p != 0)
            .unwrap_or_else(|| self.number())
    }
}

/// `ServiceEntry.Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh (the proto default): no automatic mTLS, `istio.external` metadata.
    #[default]
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

impl Location {
    /// The proto enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::MeshExternal => "MESH_EXTERNAL",
            Location::MeshInternal => "MESH_INTERNAL",
        }
    }
}

/// `ServiceEntry.Resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Connections are already resolved (original destination); the proto default.
    #[default]
    None,
    /// Use the static IPs of `endpoints`.
    Static,
    /// Resolve the hosts (or endpoint names) by DNS, using all returned addresses.
    Dns,
    /// Resolve by DNS, using the first returned address.
    DnsRoundRobin,
    /// Resolve the requested name (Host / SNI) on demand; wildcard hosts only.
    DynamicDns,
}

impl Resolution {
    /// The proto enum name (what Go's `%s` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

/// An endpoint of a ServiceEntry (`networking.v1alpha3.WorkloadEntry`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP, DNS name (DNS resolution only) or `unix://` socket path; ≤256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Service port name to endpoint port (≤128 entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<BTreeMap<String, u32>>,
    /// Labels of the endpoint (≤256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Network the endpoint lives in (≤2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Locality `region/zone/subzone` (≤2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Load-balancing weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the workload (≤253 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl WorkloadEntry {
    /// The address (empty when unset).
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or_default()
    }
}

/// `networking.v1alpha3.WorkloadSelector`: labels selecting workloads in the same namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Label selector (all must match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl WorkloadSelector {
    /// True when `pod_labels` carries every label of the selector.
    pub fn matches(&self, pod_labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .flatten()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    }
}
