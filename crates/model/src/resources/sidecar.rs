//! Sidecar (`networking.istio.io`): a workload's egress scope and outbound traffic policy.
//!
//! Modelled field for field after `networking/v1alpha3/sidecar.proto`. The connection pool
//! settings and the egress-proxy destination are the DestinationRule / VirtualService message
//! shapes, modelled here privately so that this kind decodes on its own.

use serde::{Deserialize, Serialize};

pub use crate::resources::gateway::ServerTlsSettings;
pub use crate::resources::service_entry::WorkloadSelector;

/// Sidecar spec (`networking.v1alpha3.Sidecar`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

/// A listener port (`networking.v1alpha3.SidecarPort`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    /// Port number (0 only with a `unix://` bind on egress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Protocol; empty means auto-detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hidden, deprecated; any non-zero value is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl SidecarPort {
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
}

/// `networking.v1alpha3.CaptureMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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

/// A route destination (`networking.v1alpha3.Destination`), used by `egressProxy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Registry host name. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Subset of the host (a DestinationRule subset name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// `networking.v1alpha3.PortSelector`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// Port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// `networking.v1alpha3.ConnectionPoolSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// Settings common to TCP and HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Maximum connections to a destination host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// TCP connect timeout (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// TCP keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum connection lifetime (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<String>,
    /// Idle timeout (duration; `0s` disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

/// `ConnectionPoolSettings.TCPSettings.TcpKeepalive`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before probes start (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Interval between probes (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Maximum pending HTTP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Maximum active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Maximum requests per connection (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Maximum outstanding retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Idle timeout (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// HTTP/1.1 to HTTP/2 upgrade policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Keep the client's protocol upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// Maximum concurrent HTTP/2 streams per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
    /// HTTP/2 keepalive pings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// HTTP/2 keepalive settings of `HTTPSettings`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http2KeepAlive {
    /// Interval between pings (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Ping timeout (duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `HTTPSettings.H2UpgradePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh default.
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}
