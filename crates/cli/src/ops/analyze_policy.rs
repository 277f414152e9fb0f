//! `egress analyze traffic`, the sidecars' half: what the outbound traffic policy decided for
//! traffic no ServiceEntry covers, read from the sidecars' access logs
//! (`<store>/run/pods/<ns>_<pod>/istio-proxy.log`). Under ALLOW_ANY such traffic goes to
//! `PassthroughCluster` (the `allow_any` route for HTTP): it is what switching to REGISTRY_ONLY
//! would break. Under REGISTRY_ONLY it goes to `BlackHoleCluster` (the `block_all` route, 502):
//! it is what is blocked now. Either way the line names the host the client asked for (its
//! Host or SNI, which egress's sidecars log for these decisions, `egress_proxy::requested`) and
//! the original destination, so the report lists each (source identity, host, port) and the
//! ServiceEntries that keep it working.

use std::collections::{BTreeMap, BTreeSet};

use egress_cluster::controllers::{SIDECAR_PROXY_PORT, has_sidecar, is_gateway_pod};
use egress_store::Store;
use serde_json::Value;

use super::analyze::{Line, Unparsable, ip_of, parse_fields, plausible_host, strip_port};
use crate::OpError;

/// One policy decision a sidecar logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The identity of the Pod whose sidecar decided (`cluster.local/ns/<ns>/sa/<sa>`).
    pub source: String,
    /// The host asked for (Host without port, else SNI, else the destination's IP).
    pub host: String,
    /// The destination port.
    pub port: u16,
    /// `http`, `tls` or `tcp`.
    pub protocol: &'static str,
    /// True when it was black-holed (REGISTRY_ONLY); false when it passed through (ALLOW_ANY).
    pub blocked: bool,
}

/// What the outbound policy did with a line's traffic, if it decided it.
fn verdict(l: &Line) -> Option<bool> {
    match (l.cluster.as_str(), l.route.as_str()) {
        ("PassthroughCluster", _) | (_, "allow_any") => Some(false),
        ("BlackHoleCluster", _) | (_, "block_all") => Some(true),
        _ => None,
    }
}

/// The port of `host:port`, if it has one.
fn port_of(addr: &str) -> Option<u16> {
    let (_, port) = addr.rsplit_once(':')?;
    port.parse().ok().filter(|p| *p != 0)
}

/// The policy decision of one sidecar log line of the Pod with identity `source`:
/// `Ok(None)` for a line the policy did not decide (a registered service's).
pub fn decision(source: &str, line: &str) -> Result<Option<Decision>, Unparsable> {
    let l = parse_fields(line)?;
    let Some(blocked) = verdict(&l) else {
        return Ok(None);
    };
    let named = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_owned());
    let authority = named(&l.authority);
    let sni = named(&l.sni);
    let host = authority
        .as_deref()
        .map(|a| strip_port(a).to_ascii_lowercase())
        .or_else(|| sni.as_deref().map(str::to_ascii_lowercase))
        .or_else(|| named(&l.upstream_host).map(|a| ip_of(&a)))
        .or_else(|| named(&l.local).map(|a| ip_of(&a)))
        .ok_or(Unparsable)?;
    if !plausible_host(&host) {
        return Err(Unparsable);
    }
    let protocol = if l.is_http() || authority.is_some() {
        "http"
    } else if sni.is_some() {
        "tls"
    } else {
        "tcp"
    };
    // A captured connection's local address is its original destination; through the
    // explicit proxy it is the proxy's own, and the destination port is the authority's, the
    // upstream's, or the scheme's.
    let port = port_of(&l.local)
        .filter(|p| *p != SIDECAR_PROXY_PORT)
        .or_else(|| authority.as_deref().and_then(port_of))
        .or_else(|| port_of(&l.upstream_host))
        .or(match protocol {
            "http" => Some(80),
            "tls" => Some(443),
            _ => None,
        })
        .ok_or(Unparsable)?;
    Ok(Some(Decision {
        source: source.to_owned(),
        host,
        port,
        protocol,
        blocked,
    }))
}

/// What reading the sidecars' logs found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Read {
    /// The policy decisions.
    pub decisions: Vec<Decision>,
    /// Lines refused: not exactly an access-log line.
    pub unparsable: usize,
}

/// Reads one sidecar's log.
pub fn read_log(source: &str, text: &str) -> Read {
    let mut read = Read::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match decision(source, line) {
            Ok(Some(d)) => read.decisions.push(d),
            Ok(None) => {}
            Err(Unparsable) => read.unparsable += 1,
        }
    }
    read
}

/// Reads the logs of the store's sidecar Pods (optionally of one namespace).
pub fn observe(
    store: &Store,
    namespace: Option<&str>,
    trust_domain: &str,
) -> Result<Read, OpError> {
    let dir = egress_cluster::up::run_dir(store.dir()).join("pods");
    let mut out = Read::default();
    let pods = store
        .list("", "Pod", namespace)
        .map_err(OpError::store)?
        .items;
    for pod in pods.iter().filter(|p| has_sidecar(p) && !is_gateway_pod(p)) {
        let (Some(ns), Some(name)) = (
            pod.pointer("/metadata/namespace").and_then(Value::as_str),
            pod.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let sa = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let source = format!("{trust_domain}/ns/{ns}/sa/{sa}");
        let log = dir.join(format!("{ns}_{name}")).join(format!(
            "{}.log",
            egress_cluster::controllers::SIDECAR_CONTAINER
        ));
        let Ok(text) = std::fs::read_to_string(log) else {
            continue;
        };
        let read = read_log(&source, &text);
        out.decisions.extend(read.decisions);
        out.unparsable += read.unparsable;
    }
    Ok(out)
}

/// The report's table: one row per (source, host, port, protocol) with its passthrough and
/// blocked counts.
pub fn table(decisions: &[Decision]) -> String {
    let mut rows: BTreeMap<(&str, &str, u16, &str), (usize, usize)> = BTreeMap::new();
    for d in decisions {
        let row = rows
            .entry((&d.source, &d.host, d.port, d.protocol))
            .or_default();
        if d.blocked {
            row.1 += 1;
        } else {
            row.0 += 1;
        }
    }
    let headers = [
        "SOURCE",
        "HOST",
        "PORT",
        "PROTOCOL",
        "PASSED-THROUGH",
        "BLOCKED",
    ]
    .map(str::to_owned)
    .to_vec();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|((source, host, port, protocol), (passed, blocked))| {
            vec![
                (*source).to_owned(),
                (*host).to_owned(),
                port.to_string(),
                protocol.to_ascii_uppercase(),
                passed.to_string(),
                blocked.to_string(),
            ]
        })
        .collect();
    egress_printers::table::render(&headers, &rows, false)
}

/// The (host, port, protocol) each named destination needs a ServiceEntry for; destinations
/// seen only by IP address are left out (a ServiceEntry for them needs `addresses`, which a
/// log cannot tell apart from a load balancer's).
pub fn needed(decisions: &[Decision]) -> BTreeSet<(&str, u16, &'static str)> {
    decisions
        .iter()
        .filter(|d| d.host.parse::<std::net::IpAddr>().is_err())
        .map(|d| (d.host.as_str(), d.port, d.protocol))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ME: &str = "cluster.local/ns/apps/sa/curl";

    /// A captured HTTP request to an unknown host under ALLOW_ANY (the `allow_any` route).
    const ALLOW_HTTP: &str = r#"[2026-12-06T02:00:00.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 12 1 1 "-" "curl/8.14.1" "5f0c" "a.example.org" "127.2.0.1:80" PassthroughCluster 127.1.0.5:40000 127.2.0.1:80 127.1.0.5:39999 - allow_any"#;
    /// A captured TLS connection on a port with no entry, black-holed, with its SNI.
    const BLOCK_TLS: &str = r#"[2026-12-06T02:00:01.000Z] "- - -" 0 UH - - "-" 517 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 127.2.0.3:8443 127.1.0.5:40002 c.example.org -"#;
    /// A passthrough TCP connection whose client sent an HTTP request (Host read by the sidecar).
    const ALLOW_TCP_HOST: &str = r#"[2026-12-06T02:00:02.000Z] "- - -" 0 - - - "-" 80 120 3 - "-" "-" "-" "b.example.org:8080" "127.2.0.2:8080" PassthroughCluster 127.1.0.5:40004 127.2.0.2:8080 127.1.0.5:40003 - -"#;
    /// Through the explicit proxy: the local address is the proxy's own.
    const PROXY_BLOCK: &str = r#"[2026-12-06T02:00:03.000Z] "- - -" 0 UH - - "-" 517 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 127.1.0.5:15001 127.1.0.5:40005 d.example.org -"#;
    /// A registered service's request: not a policy decision.
    const KNOWN: &str = r#"[2026-12-06T02:00:04.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 12 1 1 "-" "curl/8.14.1" "5f0d" "edition.cnn.com" "127.3.0.1:80" outbound|80||edition.cnn.com 127.1.0.5:40006 127.3.0.1:80 127.1.0.5:40007 - -"#;

    fn d(host: &str, port: u16, protocol: &'static str, blocked: bool) -> Decision {
        Decision {
            source: ME.into(),
            host: host.into(),
            port,
            protocol,
            blocked,
        }
    }

    #[test]
    fn policy_decisions_name_host_port_and_protocol() {
        let text = [ALLOW_HTTP, BLOCK_TLS, ALLOW_TCP_HOST, PROXY_BLOCK, KNOWN].join("\n");
        let read = read_log(ME, &text);
        assert_eq!(read.unparsable, 0);
        assert_eq!(
            read.decisions,
            [
                d("a.example.org", 80, "http", false),
                d("c.example.org", 8443, "tls", true),
                d("b.example.org", 8080, "http", false),
                d("d.example.org", 443, "tls", true),
            ]
        );
        let table = table(&read.decisions);
        let row: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|r: &Vec<&str>| r.get(1) == Some(&"c.example.org"))
            .collect();
        assert_eq!(
            row,
            [[ME, "c.example.org", "8443", "TLS", "0", "1"]],
            "{table}"
        );
    }

    #[test]
    fn unnamed_destinations_are_listed_but_need_no_service_entry() {
        let unnamed = BLOCK_TLS.replace(" c.example.org -", " - -");
        let read = read_log(ME, &unnamed);
        assert_eq!(read.decisions, [d("127.2.0.3", 8443, "tcp", true)]);
        assert!(needed(&read.decisions).is_empty());
        let forged = ALLOW_HTTP.replace("\"a.example.org\"", "\"a b\"");
        assert_eq!(read_log(ME, &forged).unparsable, 1);
    }
}
