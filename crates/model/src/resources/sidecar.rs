//! Sidecar (`networking.istio.io`): a workload's egress scope and outbound traffic policy.
//!
//! Modelled field for field after `networking/v1alpha3/sidecar.proto`. The connection pool
//! settings and the egress-proxy destination are the DestinationRule / VirtualService message
//! shapes, modelled here privately so that this kind decodes on its own.

use serde::{Deserialize, Serialize};

pub use crate::resources::destination_rule::{
    ConnectionPoolSettings, H2UpgradePolicy, Http2KeepAlive, HttpSettings, TcpKeepalive,
    TcpSettings,
};
/// Sidecar listener ports have the fields of Gateway ports (`networking.v1alpha3.SidecarPort`).
pub use crate::resources::gateway::Port as SidecarPort;
pub use crate::resources::gateway::ServerTlsSettings;
pub use crate::resources::service_entry::WorkloadSelector;
pub use crate::resources::virtual_service::{Destination, PortSelector};

/// Sidecar spec (`networking.v1alpha3.Sidecar`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "SidecarSpec"))]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Workloads in the namespace this Sidecar applies to (none: the namespace default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IstioIngressListener>>,
    /// Outbound listeners (the egress scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<IstioEgressListener>>,
    /// Connection pool for all inbound connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What to do with traffic to destinations not in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

impl Sidecar {
    /// The egress listeners (empty when unset).
    pub fn egress(&self) -> &[IstioEgressListener] {
        self.egress.as_deref().unwrap_or_default()
    }

    /// The ingress listeners (empty when unset).
    pub fn ingress(&self) -> &[IstioIngressListener] {
        self.ingress.as_deref().unwrap_or_default()
    }

    /// The outbound traffic policy mode, when the Sidecar sets one.
    pub fn outbound_mode(&self) -> Option<OutboundTrafficPolicyMode> {
        self.outbound_traffic_policy
            .as_ref()
            .map(OutboundTrafficPolicy::mode_or_default)
    }
}

/// An inbound listener (`networking.v1alpha3.IstioIngressListener`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    /// Port the listener receives traffic on. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic is captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Loopback endpoint or `unix://` socket traffic is forwarded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination settings for the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// An outbound listener (`networking.v1alpha3.IstioEgressListener`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// Port of the listener (none: the catch-all listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP or `unix://` socket the listener binds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic is captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Services in scope, `namespace/dnsName` (`*`, `.`, `~` namespaces). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

impl IstioEgressListener {
    /// The hosts (empty when unset).
    pub fn hosts(&self) -> &[String] {
        self.hosts.as_deref().unwrap_or_default()
    }
}

/// `networking.v1alpha3.CaptureMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default capture mode.
    #[default]
    Default,
    /// iptables redirection.
    Iptables,
    /// No capture: the application talks to the listener directly.
    None,
}

/// `networking.v1alpha3.OutboundTrafficPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// REGISTRY_ONLY (the proto default) or ALLOW_ANY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficPolicyMode>,
    /// Where unknown traffic goes under ALLOW_ANY (hidden API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

impl OutboundTrafficPolicy {
    /// The mode, REGISTRY_ONLY when unset (the proto zero value).
    pub fn mode_or_default(&self) -> OutboundTrafficPolicyMode {
        self.mode.unwrap_or_default()
    }
}

/// `OutboundTrafficPolicy.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    /// Only registry services are reachable (the proto default for Sidecar).
    #[default]
    RegistryOnly,
    /// Unknown destinations pass through.
    AllowAny,
    /// MeshConfig only; rejected in a Sidecar.
    AllowAnyDynamicDns,
}

impl OutboundTrafficPolicyMode {
    /// The proto enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundTrafficPolicyMode::RegistryOnly => "REGISTRY_ONLY",
            OutboundTrafficPolicyMode::AllowAny => "ALLOW_ANY",
            OutboundTrafficPolicyMode::AllowAnyDynamicDns => "ALLOW_ANY_DYNAMIC_DNS",
        }
    }
}
