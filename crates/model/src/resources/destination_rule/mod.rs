//! DestinationRule (`networking.istio.io`): subsets and traffic policy for a destination.
//!
//! Modelled field for field after `networking/v1alpha3/destination_rule.proto`, so that strict
//! decoding accepts every valid DestinationRule and reports every unknown field. Protobuf
//! `oneof`s are plain optional fields here (as in the CRD schema); validation reports a
//! `oneOf` violation when more than one member is set.

mod policy;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::virtual_service::{Percent, PortSelector};
pub use policy::*;

/// DestinationRule spec (`networking.v1alpha3.DestinationRule`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "DestinationRuleSpec"))]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// The service the rule applies to (wildcards allowed; short names resolve in the rule's
    /// namespace). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Policy for all traffic to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets (versions) of the service, each possibly overriding the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<Vec<Subset>>,
    /// Namespaces the rule is visible to (`.`, `*` or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
    /// Workloads (in the rule's namespace) the rule applies to; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

impl DestinationRule {
    /// The host (empty when unset).
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or_default()
    }

    /// The subsets (empty when unset).
    pub fn subsets(&self) -> &[Subset] {
        self.subsets.as_deref().unwrap_or_default()
    }

    /// The subset named `name`, if defined.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets()
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }

    /// The export list (empty when unset, meaning the mesh default).
    pub fn export_to(&self) -> &[String] {
        self.export_to.as_deref().unwrap_or_default()
    }
}

/// `istio.type.v1beta1.WorkloadSelector`: labels selecting workloads in the same namespace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "TypeWorkloadSelector"))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Label selector (all must match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// A named subset of a service (`networking.v1alpha3.Subset`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name (a DNS-1123 label). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Endpoint labels selecting the subset's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Policy overriding the rule-level one for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Traffic policy (`networking.v1alpha3.TrafficPolicy`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS origination settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides (≤4096); these replace, not merge with, the policy above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_level_settings: Option<Vec<PortTrafficPolicy>>,
    /// Tunnel TCP over HTTP CONNECT / POST to an upstream proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries relative to active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

impl TrafficPolicy {
    /// The port-level settings (empty when unset).
    pub fn port_level_settings(&self) -> &[PortTrafficPolicy] {
        self.port_level_settings.as_deref().unwrap_or_default()
    }

    /// The port-level policy for `port`, if one is defined.
    pub fn for_port(&self, port: i64) -> Option<&PortTrafficPolicy> {
        self.port_level_settings()
            .iter()
            .find(|p| p.port.as_ref().and_then(|s| s.number) == Some(port))
    }
}

/// Per-port traffic policy (`TrafficPolicy.PortTrafficPolicy`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The destination port this policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of unhealthy hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS origination settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Tunnel settings (`TrafficPolicy.TunnelSettings`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` (default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host the connection is tunneled to (FQDN or IP). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_host: Option<String>,
    /// Port the connection is tunneled to. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

/// PROXY protocol settings (`TrafficPolicy.ProxyProtocol`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// The PROXY protocol version (default `V1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

/// `TrafficPolicy.ProxyProtocol.VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyProtocolVersion {
    /// Human-readable format (the default).
    #[default]
    V1,
    /// Binary format.
    V2,
}

/// Retry budget (`TrafficPolicy.RetryBudget`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Concurrent retries allowed, as a percentage of active requests (default 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
    /// Minimum concurrent retries always allowed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    /// Window of requests considered for the budget (a duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<String>,
}

/// Upstream TLS settings (`networking.v1alpha3.ClientTLSSettings`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// TLS mode (default `DISABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientTlsMode>,
    /// Client certificate file (MUTUAL without `credentialName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Client private key file (MUTUAL without `credentialName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// CA bundle file; unset means the system CA store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Kubernetes secret with the certificates (gateways, or sidecars with a workload
    /// selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// SANs the server certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<String>>,
    /// SNI sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip verification of the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

impl ClientTlsSettings {
    /// The TLS mode, `DISABLE` when unset.
    pub fn mode_or_default(&self) -> ClientTlsMode {
        self.mode.unwrap_or_default()
    }

    /// The SNI (empty when unset).
    pub fn sni(&self) -> &str {
        self.sni.as_deref().unwrap_or_default()
    }

    /// The SANs (empty when unset).
    pub fn subject_alt_names(&self) -> &[String] {
        self.subject_alt_names.as_deref().unwrap_or_default()
    }
}

/// `ClientTLSSettings.TLSmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plain text (the proto default).
    #[default]
    Disable,
    /// TLS origination.
    Simple,
    /// Mutual TLS with user certificates.
    Mutual,
    /// Mutual TLS with Istio's workload certificates.
    IstioMutual,
}

impl ClientTlsMode {
    /// The proto enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientTlsMode::Disable => "DISABLE",
            ClientTlsMode::Simple => "SIMPLE",
            ClientTlsMode::Mutual => "MUTUAL",
            ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}
