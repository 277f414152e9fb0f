//! VirtualService (`networking.istio.io`): HTTP, TLS and TCP routing rules.
//!
//! Modelled field for field after `networking/v1alpha3/virtual_service.proto`, so that strict
//! decoding accepts every valid VirtualService and reports every unknown field. Protobuf
//! `oneof`s are plain optional fields here (as in the CRD schema); validation reports a
//! `oneOf` violation when more than one member is set.

mod http;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use http::*;

/// The reserved gateway name meaning "all sidecars of the mesh".
pub const MESH_GATEWAY: &str = "mesh";

/// VirtualService spec (`networking.v1alpha3.VirtualService`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "VirtualServiceSpec"))]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    /// Destination hosts the rules apply to; empty means a delegate VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Gateways (`[ns/]name`, or `mesh`) the rules apply to; omitted means `[mesh]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Ordered HTTP routes (first match wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRoute>>,
    /// Ordered routes for unterminated TLS / HTTPS traffic (matched by SNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<TlsRoute>>,
    /// Ordered routes for opaque TCP traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Vec<TcpRoute>>,
    /// Namespaces the VirtualService is visible to (`.`, `*` or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_to: Option<Vec<String>>,
}

impl VirtualService {
    /// The hosts (empty when unset).
    pub fn hosts(&self) -> &[String] {
        self.hosts.as_deref().unwrap_or_default()
    }

    /// The gateways as written (empty when unset).
    pub fn gateways(&self) -> &[String] {
        self.gateways.as_deref().unwrap_or_default()
    }

    /// The gateways the rules apply to: omitted (or empty) `gateways` means `["mesh"]`.
    pub fn gateways_or_mesh(&self) -> Vec<&str> {
        match self.gateways.as_deref() {
            Some(g) if !g.is_empty() => g.iter().map(String::as_str).collect(),
            _ => vec![MESH_GATEWAY],
        }
    }

    /// The HTTP routes (empty when unset).
    pub fn http(&self) -> &[HttpRoute] {
        self.http.as_deref().unwrap_or_default()
    }

    /// The TLS routes (empty when unset).
    pub fn tls(&self) -> &[TlsRoute] {
        self.tls.as_deref().unwrap_or_default()
    }

    /// The TCP routes (empty when unset).
    pub fn tcp(&self) -> &[TcpRoute] {
        self.tcp.as_deref().unwrap_or_default()
    }

    /// The export list (empty when unset, meaning the mesh default).
    pub fn export_to(&self) -> &[String] {
        self.export_to.as_deref().unwrap_or_default()
    }
}

/// A destination service (`networking.v1alpha3.Destination`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service name from the registry (short names resolve in the rule's namespace). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Subset of the service (defined in a DestinationRule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port on the host; needed when the service exposes more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

impl Destination {
    /// The host (empty when unset).
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or_default()
    }

    /// The subset (empty when unset).
    pub fn subset(&self) -> &str {
        self.subset.as_deref().unwrap_or_default()
    }

    /// The port number, when one is selected.
    pub fn port_number(&self) -> Option<i64> {
        self.port.as_ref().and_then(|p| p.number)
    }
}

/// A port selector (`networking.v1alpha3.PortSelector`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number (validated to 1..65535; wide so that bad values decode and are reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
}

/// A string matcher (`networking.v1alpha3.StringMatch`); exactly one of the fields may be set
/// (none set means "present" for header matches).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact string match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2-style regular expression (full match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A percentage (`networking.v1alpha3.Percent`), 0.0 to 100.0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Percent {
    /// The percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Percent {
    /// The value (0 when unset).
    pub fn value(&self) -> f64 {
        self.value.unwrap_or_default()
    }
}

/// A route for unterminated TLS traffic (`networking.v1alpha3.TLSRoute`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Match conditions (OR); at least one is required.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<TlsMatchAttributes>>,
    /// Where the connection goes. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<RouteDestination>>,
}

/// A route for opaque TCP traffic (`networking.v1alpha3.TCPRoute`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Match conditions (OR); none means all traffic.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<L4MatchAttributes>>,
    /// Where the connection goes. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<RouteDestination>>,
}

/// TLS connection match attributes (`networking.v1alpha3.TLSMatchAttributes`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI values to match (wildcard prefixes allowed); each must be within the VS hosts.
    /// REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
    /// Destination IPs or subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_subnets: Option<Vec<String>>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Labels of the source workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<BTreeMap<String, String>>,
    /// Gateways the match applies to (overrides the VS `gateways`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Namespace of the source workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// L4 connection match attributes (`networking.v1alpha3.L4MatchAttributes`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IPs or subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_subnets: Option<Vec<String>>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Source IP or subnet (hidden, not implemented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
    /// Labels of the source workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<BTreeMap<String, String>>,
    /// Gateways the match applies to (overrides the VS `gateways`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Namespace of the source workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// A weighted L4 destination (`networking.v1alpha3.RouteDestination`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// The destination. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    /// Relative weight (weights are normalised; they need not sum to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}
