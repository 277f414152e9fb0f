//! Why an upstream connection could not be opened, with the access-log flag,
//! `%UPSTREAM_TRANSPORT_FAILURE_REASON%` and `%RESPONSE_CODE_DETAILS%` Envoy would print.

use std::io;
use std::net::{IpAddr, SocketAddr};

use super::tls;
use crate::accesslog::ResponseFlag;

/// Why no upstream connection could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The cluster has no endpoints, or all are ejected (`UH`, `no_healthy_upstream`).
    #[error("no healthy upstream for cluster {cluster}")]
    NoHealthyUpstream {
        /// Cluster name.
        cluster: String,
    },
    /// A DNS cluster's name did not resolve: the cluster has no hosts (`UH`).
    #[error("resolving {host}: {reason}")]
    Resolve {
        /// The name.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// Every address system DNS gave for a DNS cluster's name is one the resolved-address
    /// guard refuses ([`crate::guard`]): the cluster has no usable hosts (`UH`).
    #[error(
        "resolving {host}: every answer is refused by the upstream address guard (first: {address})"
    )]
    AddressRefused {
        /// The name.
        host: String,
        /// The first refused answer.
        address: IpAddr,
    },
    /// A DYNAMIC_DNS cluster could not use the name its client asked for.
    #[error("dynamic forward proxy to {host:?}: {reason}")]
    Dynamic {
        /// The requested name (client-controlled; empty when there was none).
        host: String,
        /// Why.
        reason: DynamicFailure,
    },
    /// TCP connect failed (`UF`).
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Endpoint.
        addr: SocketAddr,
        /// OS error.
        source: io::Error,
    },
    /// TCP connect or TLS handshake exceeded the connect timeout (`UF`).
    #[error("connecting to {addr}: timed out")]
    Timeout {
        /// Endpoint.
        addr: SocketAddr,
    },
    /// The forward proxy of a tunnelling cluster did not open the tunnel (`UF`).
    #[error("tunnel through {addr}: {source}")]
    Tunnel {
        /// The forward proxy.
        addr: SocketAddr,
        /// Why, typed.
        source: super::TunnelFailure,
    },
    /// TLS origination failed (`UF`), e.g. certificate verification.
    #[error("TLS to {addr}: {source}")]
    Tls {
        /// Endpoint.
        addr: SocketAddr,
        /// What failed, typed.
        source: tls::TlsFailure,
    },
}

/// Why a DYNAMIC_DNS cluster could not use a requested name.
#[derive(Debug, thiserror::Error)]
pub enum DynamicFailure {
    /// The request named no host (no Host/:authority, no SNI).
    #[error("no host was requested")]
    NoHost,
    /// The name is not under any of the cluster's hosts (egress is stricter than Envoy's
    /// dynamic forward proxy here, which trusts the route alone).
    #[error("not covered by the ServiceEntry's hosts")]
    NotCovered,
    /// DNS gave no address (Envoy's `DF`, `dns_resolution_failure`).
    #[error("resolving: {0}")]
    Resolve(String),
}

impl ConnectError {
    /// Envoy's response flag: `UH` when there was nothing to connect to, `DF` when a dynamic
    /// forward proxy's name did not resolve, `UF` otherwise.
    pub fn response_flag(&self) -> ResponseFlag {
        match self {
            ConnectError::Dynamic {
                reason: DynamicFailure::Resolve(_),
                ..
            } => ResponseFlag::DnsResolutionFailed,
            ConnectError::NoHealthyUpstream { .. }
            | ConnectError::Resolve { .. }
            | ConnectError::Dynamic { .. }
            | ConnectError::AddressRefused { .. } => ResponseFlag::NoHealthyUpstream,
            _ => ResponseFlag::UpstreamConnectionFailure,
        }
    }

    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%` in Envoy's words, where Envoy has one.
    pub fn transport_failure_reason(&self) -> Option<String> {
        match self {
            ConnectError::Connect { source, .. } => {
                let text = source.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
                Some(format!("delayed_connect_error:_{}", text.replace(' ', "_")))
            }
            ConnectError::Tls { source, .. } => Some(source.envoy_reason()),
            ConnectError::Tunnel {
                source: super::TunnelFailure::Refused(status),
                ..
            } => Some(format!("tunnel_response:{status}")),
            _ => None,
        }
    }

    /// The endpoint involved, if one was picked.
    pub fn upstream_host(&self) -> Option<SocketAddr> {
        match self {
            ConnectError::Connect { addr, .. }
            | ConnectError::Timeout { addr }
            | ConnectError::Tls { addr, .. }
            | ConnectError::Tunnel { addr, .. } => Some(*addr),
            _ => None,
        }
    }

    /// `%RESPONSE_CODE_DETAILS%` when it differs from what the flag implies: the guard's
    /// `upstream_address_refused{<host>-><address>}` ([`crate::guard::refused_details`]).
    pub fn response_code_details(&self) -> Option<String> {
        match self {
            ConnectError::AddressRefused { host, address } => {
                Some(crate::guard::refused_details(host, *address))
            }
            ConnectError::Dynamic { reason, .. } => Some(
                match reason {
                    DynamicFailure::NoHost => "dynamic_host_missing",
                    DynamicFailure::NotCovered => "dynamic_host_not_covered",
                    DynamicFailure::Resolve(_) => "dns_resolution_failure",
                }
                .to_owned(),
            ),
            _ => None,
        }
    }
}
