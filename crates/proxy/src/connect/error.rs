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
    /// TLS origination failed (`UF`), e.g. certificate verification.
    #[error("TLS to {addr}: {source}")]
    Tls {
        /// Endpoint.
        addr: SocketAddr,
        /// What failed, typed.
        source: tls::TlsFailure,
    },
}

impl ConnectError {
    /// Envoy's response flag: `UH` when there was nothing to connect to, `UF` otherwise.
    pub fn response_flag(&self) -> ResponseFlag {
        match self {
            ConnectError::NoHealthyUpstream { .. }
            | ConnectError::Resolve { .. }
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
            _ => None,
        }
    }

    /// The endpoint involved, if one was picked.
    pub fn upstream_host(&self) -> Option<SocketAddr> {
        match self {
            ConnectError::Connect { addr, .. }
            | ConnectError::Timeout { addr }
            | ConnectError::Tls { addr, .. } => Some(*addr),
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
            _ => None,
        }
    }
}
