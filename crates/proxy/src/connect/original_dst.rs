//! [`OriginalDst`]: the destination a sidecar's client asked for, which ORIGINAL_DST clusters
//! (`PassthroughCluster`) connect to, and [`destination`]: what a DYNAMIC_DNS cluster's
//! connection asks for.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use egress_snapshot::snapshot::{Cluster, Discovery};

/// The destination a client asked for: a captured connection's original address, or the
/// host and port of an explicit proxy request (`GET http://host:port/`, `CONNECT host:port`).
/// ORIGINAL_DST clusters connect here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalDst {
    /// A name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl OriginalDst {
    /// `host:port`; brackets around an IPv6 literal are dropped.
    pub fn new(host: &str, port: u16) -> OriginalDst {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        OriginalDst {
            host: host.to_owned(),
            port,
        }
    }

    /// The destination of a captured connection.
    pub fn from_addr(addr: SocketAddr) -> OriginalDst {
        OriginalDst {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The address, when the host is an IP literal.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// The destination a connection to `cluster` asks for: for a DYNAMIC_DNS cluster, the name
/// the client asked for (the request's Host/:authority or the connection's SNI, port dropped;
/// else the sidecar's original destination) on the cluster's port; otherwise `original_dst`.
pub fn destination<'a>(
    cluster: &Cluster,
    authority: Option<&str>,
    original_dst: Option<&'a OriginalDst>,
) -> Option<Cow<'a, OriginalDst>> {
    match &cluster.discovery {
        Discovery::DynamicDns { port, .. } => authority
            .map(crate::http::vhost_index::host_without_port)
            .filter(|h| !h.is_empty())
            .or_else(|| original_dst.map(|d| d.host.clone()))
            .map(|h| Cow::Owned(OriginalDst::new(&h, *port))),
        _ => original_dst.map(Cow::Borrowed),
    }
}

impl std::fmt::Display for OriginalDst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn names_literals_and_display() {
        let name = OriginalDst::new("edition.cnn.com", 443);
        assert_eq!(name.addr(), None);
        assert_eq!(name.to_string(), "edition.cnn.com:443");
        let v6 = OriginalDst::new("[::1]", 8443);
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:8443");
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(OriginalDst::from_addr(addr).addr(), Some(addr));
        let v6: SocketAddr = "[::1]:81".parse().unwrap();
        assert_eq!(OriginalDst::from_addr(v6).to_string(), "[::1]:81");
    }
}
