//! MeshConfig: the mesh-wide settings kept as YAML under `data.mesh` of the add-on's shared
//! ConfigMap `istio-shared-configmap-<revision>` in `aks-istio-system`.
//!
//! Only the fields the add-on supports or allows are accepted; anything else is refused, as the
//! add-on's admission control refuses it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    /// Only hosts in the registry are reachable.
    RegistryOnly,
    /// Unknown hosts pass through (Istio's default).
    #[default]
    AllowAny,
    /// Like ALLOW_ANY with dynamic DNS forwarding for plain HTTP (mesh level only).
    AllowAnyDynamicDns,
}

/// `outboundTrafficPolicy`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// The mode; ALLOW_ANY when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
    /// Upstream proxy for ALLOW_ANY traffic (hidden API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Value>,
    /// Client TLS for unknown destinations under ALLOW_ANY_DYNAMIC_DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
}

/// `pathNormalization.normalization`: how a request's path is normalized before
/// AuthorizationPolicy and routing see it (and before it is forwarded and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NormalizationType {
    /// Istio's default, which is BASE.
    #[default]
    Default,
    /// No normalization: the path is forwarded as received.
    None,
    /// RFC 3986 normalization plus backslashes to slashes (Envoy's `normalize_path`).
    Base,
    /// BASE, then consecutive slashes merged.
    MergeSlashes,
    /// `%2F`/`%5C` decoded first, then MERGE_SLASHES.
    DecodeAndMergeSlashes,
}

/// `pathNormalization`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathNormalization {
    /// The normalization; BASE when unset or DEFAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<NormalizationType>,
}

/// `accessLogEncoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AccessLogEncoding {
    /// Envoy's text format (default).
    #[default]
    #[serde(rename = "TEXT")]
    Text,
    /// One JSON object per line.
    #[serde(rename = "JSON")]
    Json,
}

/// `defaultConfig` (ProxyConfig), restricted to the fields the add-on supports or allows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_drain_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_udp_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_admin_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_access_log_service: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_stat_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_topology: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_stats_matcher: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates_pem: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_provider: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_headers: Option<Value>,
}

/// MeshConfig: the supported and allowed fields of the add-on's shared MeshConfig.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct MeshConfig {
    // Supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_envoy_access_log_service: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_envoy_listener_log: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_selectors: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    // Allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_listen_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_inbound_listen_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_http_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_providers: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain_aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_service_export_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_virtual_service_export_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_destination_rule_export_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<PathNormalization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_settings: Option<Vec<Value>>,
    #[serde(default, rename = "meshMTLS", skip_serializing_if = "Option::is_none")]
    pub mesh_mtls: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_defaults: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_selector: Option<String>,
}

impl MeshConfig {
    /// The effective outbound mode (ALLOW_ANY when unset).
    pub fn outbound_mode(&self) -> OutboundMode {
        self.outbound_traffic_policy
            .as_ref()
            .and_then(|p| p.mode)
            .unwrap_or_default()
    }

    /// The effective trust domain (`cluster.local` when unset).
    pub fn trust_domain(&self) -> &str {
        self.trust_domain.as_deref().unwrap_or("cluster.local")
    }

    /// The effective access-log encoding.
    pub fn access_log_encoding(&self) -> AccessLogEncoding {
        self.access_log_encoding.unwrap_or_default()
    }

    /// The effective upstream connect timeout (`10s` when unset).
    pub fn connect_timeout(&self) -> &str {
        self.connect_timeout.as_deref().unwrap_or("10s")
    }

    /// The effective path normalization (`BASE` when unset or `DEFAULT`): never `Default`.
    pub fn path_normalization(&self) -> NormalizationType {
        match self
            .path_normalization
            .as_ref()
            .and_then(|p| p.normalization)
            .unwrap_or_default()
        {
            NormalizationType::Default => NormalizationType::Base,
            other => other,
        }
    }

    /// The effective DNS refresh rate (`60s` when unset).
    pub fn dns_refresh_rate(&self) -> &str {
        self.dns_refresh_rate.as_deref().unwrap_or("60s")
    }

    /// `self` laid over `base`: every top-level field `self` sets replaces `base`'s.
    pub fn merged_over(&self, base: &MeshConfig) -> MeshConfig {
        let mut out = serde_json::to_value(base).unwrap_or(Value::Null);
        if let (Value::Object(o), Ok(Value::Object(mine))) = (&mut out, serde_json::to_value(self))
        {
            for (k, v) in mine {
                o.insert(k, v);
            }
        }
        serde_json::from_value(out).unwrap_or_else(|_| self.clone())
    }
}
