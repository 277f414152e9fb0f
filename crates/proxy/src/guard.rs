//! Two defences Istio's egress gateway lacks: a guard on the addresses DNS gives for external
//! names, and a check that a TLS client's Host agrees with its SNI (domain fronting).
//!
//! # Resolved-address guard
//!
//! A gateway cluster with DNS discovery (`STRICT_DNS`, `LOGICAL_DNS`, DNS endpoints: a
//! ServiceEntry with `resolution: DNS`/`DNS_ROUND_ROBIN`) connects wherever the name resolves.
//! Whoever controls that name's DNS can point it at the gateway's own network: loopback, a
//! private range, or the cloud metadata service. The guard refuses such answers
//! ([`refusal`]): every block IANA's IPv4 and IPv6 special-purpose registries mark not
//! globally reachable (loopback, private, link-local, CGNAT, benchmarking, documentation,
//! reserved, broadcast, ...), multicast, the cloud metadata and platform endpoints
//! (169.254.169.254, fd00:ec2::254, Azure's 168.63.129.16, Alibaba's 100.100.100.200), and
//! every IPv6 form embedding an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo), judged
//! by the embedded address; see `guard_blocks`.
//!
//! What counts as *explicit* and is never screened:
//! - `STATIC` clusters (a ServiceEntry's `endpoints`/`addresses` with `resolution: STATIC`):
//!   the operator named the address;
//! - a DNS cluster whose hostname is an IP literal;
//! - names answered by the operator's override table (`ProxyOptions.hosts`, the CLI's
//!   `--host name=ip`): the local cluster and the tests send external names to 127.x this way;
//! - ORIGINAL_DST clusters (a sidecar's `PassthroughCluster`): the client chose the destination.
//!
//! Only answers from DNS (the system's configuration or `ProxyOptions.dns_server`) are
//! screened. Refused answers are dropped with a `warn` log; when none is left the cluster has
//! no hosts: HTTP answers 503 `UH` with `%RESPONSE_CODE_DETAILS%`
//! `upstream_address_refused{<host>-><first refused address>}` ([`refused_details`]), TCP
//! closes with `UH` and the same text in `%CONNECTION_TERMINATION_DETAILS%`. Nothing is
//! connected to. `ProxyOptions.allow_private_upstreams` turns the guard off.
//!
//! # SNI/Host consistency
//!
//! On HTTP served over TLS the gateway terminated (Gateway servers `SIMPLE`, `MUTUAL`,
//! `ISTIO_MUTUAL`), when the client sent an SNI, the request's Host (port removed, case and a
//! trailing dot ignored) must equal it ([`check_sni_host`]). Otherwise the request is answered
//! `421 Misdirected Request` (RFC 9110 §15.5.20: a client that coalesced connections retries
//! on a new one) with the body [`Misdirected`]'s text and `%RESPONSE_CODE_DETAILS%`
//! [`SNI_HOST_MISMATCH`], before authorization and routing. A request without a Host, or a
//! connection without SNI, is not checked. An SNI of the form `outbound_.<port>_.<subset>_.<host>`
//! is the name a sidecar sends to a gateway when the DestinationRule sets no `sni`; it names a
//! mesh service, not the Host, and is not checked either.
//!
//! TLS passthrough needs no check: the gateway never sees the Host inside the client's TLS,
//! and the SNI only selects the filter chain whose route names the cluster. A chain with a
//! wildcard server name (`*.example.com`) lets any matching SNI through, but the connection
//! still goes to that route's cluster, never to a destination derived from the SNI.

use std::fmt;
use std::net::IpAddr;

#[path = "guard_blocks.rs"]
mod guard_blocks;

/// `%RESPONSE_CODE_DETAILS%` of a request refused for an SNI/Host mismatch.
pub const SNI_HOST_MISMATCH: &str = "sni_host_mismatch";

/// Status of a request refused for an SNI/Host mismatch (Misdirected Request).
pub const MISDIRECTED_STATUS: u16 = 421;

/// Why the guard refuses `ip` as an upstream resolved from DNS, or `None` when it is allowed
/// (the blocks are in `guard_blocks`).
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => guard_blocks::refusal_v4(v4),
        IpAddr::V6(v6) => guard_blocks::refusal_v6(v6),
    }
}

/// `%RESPONSE_CODE_DETAILS%` of a request whose upstream name resolved only to refused
/// addresses: `upstream_address_refused{edition.cnn.com->169.254.169.254}`.
pub fn refused_details(host: &str, address: IpAddr) -> String {
    format!("upstream_address_refused{{{host}->{address}}}")
}

/// DNS answers split by the guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screened {
    /// Answers that may be connected to, in their order.
    pub allowed: Vec<IpAddr>,
    /// Refused answers, in their order.
    pub refused: Vec<IpAddr>,
}

/// Splits the DNS answers for `host`, logging each refused one at `warn`.
pub fn screen(host: &str, answers: &[IpAddr]) -> Screened {
    let mut out = Screened::default();
    for ip in answers {
        match refusal(*ip) {
            None => out.allowed.push(*ip),
            Some(why) => {
                tracing::warn!(
                    host,
                    address = %ip,
                    kind = why,
                    "refused upstream address from DNS (set allow_private_upstreams to permit)"
                );
                out.refused.push(*ip);
            }
        }
    }
    out
}

/// A request whose Host disagrees with the TLS server name of its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misdirected {
    /// The request's host (port removed).
    pub host: String,
    /// The connection's SNI.
    pub sni: String,
}

impl fmt::Display for Misdirected {
    /// The response body: `misdirected request: Host "b.example.com" does not match TLS
    /// server name "a.example.com"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "misdirected request: Host \"{}\" does not match TLS server name \"{}\"",
            self.host, self.sni
        )
    }
}

/// Checks a request's `authority` (Host or `:authority`) against the connection's `sni` on
/// TLS the gateway terminated. `Ok` when there is nothing to compare or they agree.
pub fn check_sni_host(sni: Option<&str>, authority: &str) -> Result<(), Misdirected> {
    let Some(sni) = sni.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    if is_mesh_sni(sni) {
        return Ok(());
    }
    let host = host_of(authority);
    if host.is_empty() || names_equal(host, sni) {
        return Ok(());
    }
    Err(Misdirected {
        host: host.to_owned(),
        sni: sni.to_owned(),
    })
}

/// True for the SNI a sidecar sends to an ISTIO_MUTUAL gateway server when its
/// DestinationRule sets no `sni`: `outbound_.<port>_.<subset>_.<host>`.
pub fn is_mesh_sni(sni: &str) -> bool {
    sni.get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("outbound_."))
}

/// The host of an authority: without the port, IPv6 brackets kept.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn names_equal(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_internal_ranges() {
        for (addr, why) in [
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("fc00::1", "unique local"),
            ("fdff::1", "unique local"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("100.64.0.1", "shared address space (CGNAT)"),
            ("100.127.255.255", "shared address space (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
        ] {
            assert_eq!(refusal(ip(addr)), Some(why), "{addr}");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for addr in [
            "151.101.1.67",
            "172.32.0.1",
            "172.15.255.255",
            "100.63.255.255",
            "100.128.0.1",
            "8.8.8.8",
            "2a04:4e42::323",
            "fec0::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(refusal(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn screen_keeps_order_and_splits() {
        let out = screen(
            "edition.cnn.com",
            &[ip("10.0.0.1"), ip("151.101.1.67"), ip("169.254.169.254")],
        );
        assert_eq!(out.allowed, vec![ip("151.101.1.67")]);
        assert_eq!(out.refused, vec![ip("10.0.0.1"), ip("169.254.169.254")]);
    }

    #[test]
    fn details_text() {
        assert_eq!(
            refused_details("edition.cnn.com", ip("169.254.169.254")),
            "upstream_address_refused{edition.cnn.com->169.254.169.254}"
        );
        assert_eq!(
            refused_details("v6.example", ip("fd00:ec2::254")),
            "upstream_address_refused{v6.example->fd00:ec2::254}"
        );
    }

    #[test]
    fn sni_host_agreement() {
        let ok = |sni: Option<&str>, host: &str| check_sni_host(sni, host).is_ok();
        assert!(ok(Some("a.example.com"), "a.example.com"));
        assert!(ok(Some("a.example.com"), "A.Example.com:443"));
        assert!(ok(Some("a.example.com"), "a.example.com."));
        assert!(ok(None, "b.example.com"));
        assert!(ok(Some("a.example.com"), ""));
        assert!(ok(
            Some("outbound_.80_._.edition.cnn.com"),
            "edition.cnn.com"
        ));
        assert!(ok(
            Some("outbound_.80_.cnn_.asm-egress-test.aks-istio-egress.svc.cluster.local"),
            "edition.cnn.com"
        ));
        assert!(!ok(Some("a.example.com"), "b.example.com"));
        assert!(!ok(Some("a.example.com"), "a.example.com.evil"));
        assert!(!ok(Some("a.example.com"), "[::1]:443"));
    }

    #[test]
    fn misdirected_text() {
        let err = check_sni_host(Some("a.example.com"), "b.example.com:8443").unwrap_err();
        assert_eq!(
            err.to_string(),
            "misdirected request: Host \"b.example.com\" does not match TLS server name \"a.example.com\""
        );
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("a.example.com:443"), "a.example.com");
        assert_eq!(host_of("a.example.com"), "a.example.com");
        assert_eq!(host_of("[::1]:443"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
    }
}
