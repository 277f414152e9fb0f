//! `egress analyze traffic [-n NS]`: reads the access logs the local cluster's gateways wrote
//! (`<store>/run/pods/<ns>_<pod>/istio-proxy.log`, Istio's default TEXT format or JSON) and
//! summarises the observed (source identity, host, port) tuples into what would allow exactly
//! that traffic: ServiceEntries for the hosts and, per gateway namespace, an ALLOW
//! AuthorizationPolicy naming the sources. The source identity of a line is found from its
//! downstream address: the Pod with that IP and its service account
//! (`cluster.local/ns/<ns>/sa/<sa>`). Lines a dry-run policy would have denied are counted.
//! Run it after a period with `istio.io/dry-run: "true"` policies to tighten them safely.
//!
//! The sidecars' logs are read too ([`super::analyze_policy`]): traffic their outbound policy
//! passed through (ALLOW_ANY) or black-holed (REGISTRY_ONLY), per source identity, host and
//! port, with ServiceEntries that keep it working under REGISTRY_ONLY.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use egress_store::Store;
use serde_json::{Value, json};

use crate::OpError;

/// One observed request or connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The gateway Pod's namespace.
    pub gateway_namespace: String,
    /// The destination host (authority without port, else SNI, else the cluster's host).
    pub host: String,
    /// The destination port (from the upstream cluster name).
    pub port: u16,
    /// `http` or `tls`/`tcp`.
    pub protocol: &'static str,
    /// The downstream address (the client or its sidecar).
    pub source_ip: String,
    /// The port the connection arrived on at the gateway (what `to.operation.ports` matches).
    pub gateway_port: u16,
    /// True when a dry-run policy would have denied it.
    pub dry_run_denied: bool,
}

/// Splits a TEXT access-log line into fields: `[...]`, `"..."` and bare words, each followed
/// by one space or the end; `None` when a bracket or quote is not closed or is followed by
/// anything but a space.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                chars.next();
                let mut f = String::new();
                let mut closed = false;
                for ch in chars.by_ref() {
                    if ch == close {
                        closed = true;
                        break;
                    }
                    f.push(ch);
                }
                if !closed {
                    return None;
                }
                out.push(f);
            }
            _ => {
                let mut f = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch == ' ' {
                        break;
                    }
                    f.push(ch);
                    chars.next();
                }
                out.push(f);
            }
        }
        match chars.next() {
            None => break,
            Some(' ') if chars.peek().is_some() => {}
            Some(_) => return None,
        }
    }
    Some(out)
}

/// A host as a log may name it: a DNS name (or `*.` wildcard) or an IP address.
pub(crate) fn plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && (h.parse::<std::net::IpAddr>().is_ok()
            || h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '_')))
}

/// An address field: `-` or an IP socket address.
fn plausible_addr(a: &str) -> bool {
    a == "-" || a.parse::<std::net::SocketAddr>().is_ok()
}

/// What reading a log found: the observations and how many lines could not be parsed exactly.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Read {
    /// Lines that parsed and name an outbound cluster.
    pub observations: Vec<Observation>,
    /// Lines refused: not exactly a TEXT or JSON access-log line.
    pub unparsable: usize,
}

/// Parses every line of one gateway's log.
pub fn read_log(gateway_namespace: &str, text: &str) -> Read {
    let mut read = Read::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(gateway_namespace, line) {
            Ok(Some(o)) => read.observations.push(o),
            Ok(None) => {}
            Err(Unparsable) => read.unparsable += 1,
        }
    }
    read
}

/// A line that is not exactly an access-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unparsable;

/// `outbound|443||edition.cnn.com` → (443, `edition.cnn.com`).
fn cluster_parts(cluster: &str) -> Option<(u16, String)> {
    let mut parts = cluster.split('|');
    if parts.next()? != "outbound" {
        return None;
    }
    let port = parts.next()?.parse().ok()?;
    let _subset = parts.next()?;
    Some((port, parts.next()?.to_owned()))
}

pub(crate) fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(']') => h,
        _ => authority,
    }
}

pub(crate) fn ip_of(addr: &str) -> String {
    strip_port(addr)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// The fields of one access-log line that the analysis reads (`-` where a field is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `%REQ(:METHOD)%` (`-` for a TCP connection).
    pub method: String,
    /// `%REQ(:AUTHORITY)%` (a sidecar's policy decisions carry the Host they read here).
    pub authority: String,
    /// `%UPSTREAM_HOST%`.
    pub upstream_host: String,
    /// `%UPSTREAM_CLUSTER%`.
    pub cluster: String,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%` (a captured connection's original destination).
    pub local: String,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`.
    pub remote: String,
    /// `%REQUESTED_SERVER_NAME%`.
    pub sni: String,
    /// `%ROUTE_NAME%`.
    pub route: String,
    /// A dry-run AuthorizationPolicy would have denied it.
    pub dry_run_denied: bool,
}

impl Line {
    /// True for an HTTP request's line.
    pub fn is_http(&self) -> bool {
        self.method != "-" && !self.method.is_empty()
    }
}

/// Parses one access-log line, Istio's default TEXT format or JSON, exactly: anything else is
/// `Err(Unparsable)`.
pub fn parse_fields(line: &str) -> Result<Line, Unparsable> {
    let parsed = if line.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(line).map_err(|_| Unparsable)?;
        let s = |k: &str| match v.get(k) {
            None | Some(Value::Null) => Ok("-".to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Unparsable),
        };
        let details = s("response_code_details")? + " " + &s("connection_termination_details")?;
        Line {
            method: s("method")?,
            authority: s("authority")?,
            upstream_host: s("upstream_host")?,
            cluster: s("upstream_cluster")?,
            local: s("downstream_local_address")?,
            remote: s("downstream_remote_address")?,
            sni: s("requested_server_name")?,
            route: s("route_name")?,
            dry_run_denied: details.contains("rbac_dry_run_denied_matched_policy"),
        }
    } else {
        let f = fields(line).ok_or(Unparsable)?;
        if f.len() != 22 {
            return Err(Unparsable);
        }
        let request: Vec<&str> = f[1].split(' ').collect();
        let numeric = |i: usize| f[i] == "-" || f[i].parse::<u64>().is_ok();
        if request.len() != 3 || ![2, 7, 8, 9, 10].into_iter().all(numeric) {
            return Err(Unparsable);
        }
        Line {
            method: request[0].to_owned(),
            authority: f[14].clone(),
            upstream_host: f[15].clone(),
            cluster: f[16].clone(),
            local: f[18].clone(),
            remote: f[19].clone(),
            sni: f[20].clone(),
            route: f[21].clone(),
            dry_run_denied: [&f[4], &f[5]]
                .iter()
                .any(|d| d.starts_with("rbac_dry_run_denied_matched_policy")),
        }
    };
    if ![&parsed.local, &parsed.remote, &parsed.upstream_host]
        .into_iter()
        .all(|a| plausible_addr(a))
    {
        return Err(Unparsable);
    }
    Ok(parsed)
}

/// Parses one gateway access-log line (Istio's default TEXT format, or JSON): `Ok(None)` for a
/// line that parses but names no outbound cluster (BlackHoleCluster, a direct response),
/// `Err(Unparsable)` for anything that is not exactly such a line.
pub fn parse_line(gateway_namespace: &str, line: &str) -> Result<Option<Observation>, Unparsable> {
    let l = parse_fields(line)?;
    let Some((port, cluster_host)) = cluster_parts(&l.cluster) else {
        return Ok(None);
    };
    let http = l.is_http();
    let host = if http && l.authority != "-" {
        strip_port(&l.authority).to_ascii_lowercase()
    } else if l.sni != "-" && !l.sni.is_empty() {
        l.sni.to_ascii_lowercase()
    } else {
        cluster_host
    };
    if !plausible_host(&host) {
        return Err(Unparsable);
    }
    Ok(Some(Observation {
        gateway_namespace: gateway_namespace.to_owned(),
        host,
        port,
        protocol: if http {
            "http"
        } else if l.sni != "-" && !l.sni.is_empty() {
            "tls"
        } else {
            "tcp"
        },
        source_ip: ip_of(&l.remote),
        gateway_port: l
            .local
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(port),
        dry_run_denied: l.dry_run_denied,
    }))
}

/// Reads the logs of the store's gateway Pods (optionally of one namespace); sidecars' logs
/// are read for their policy decisions by [`super::analyze_policy::observe`].
pub fn observe(store: &Store, namespace: Option<&str>) -> Result<Read, OpError> {
    let dir = egress_cluster::up::run_dir(store.dir()).join("pods");
    let gateways: BTreeSet<String> = store
        .list("", "Pod", namespace)
        .map_err(OpError::store)?
        .items
        .iter()
        .filter(|p| egress_cluster::controllers::is_gateway_pod(p))
        .filter_map(|p| {
            Some(format!(
                "{}_{}",
                p.pointer("/metadata/namespace")?.as_str()?,
                p.pointer("/metadata/name")?.as_str()?
            ))
        })
        .collect();
    let mut out = Read::default();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut pods: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    pods.sort();
    for pod_dir in pods {
        let Some(name) = pod_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((ns, _pod)) = name.split_once('_') else {
            continue;
        };
        if !gateways.contains(name) {
            continue;
        }
        if namespace.is_some_and(|n| n != ns) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(pod_dir.join("istio-proxy.log")) else {
            continue;
        };
        let read = read_log(ns, &text);
        out.observations.extend(read.observations);
        out.unparsable += read.unparsable;
    }
    Ok(out)
}

/// Pod IP → `cluster.local/ns/<ns>/sa/<sa>`, from the store's Pods.
fn identities(store: &Store, trust_domain: &str) -> Result<BTreeMap<String, String>, OpError> {
    let pods = store.list("", "Pod", None).map_err(OpError::store)?;
    Ok(pods
        .items
        .iter()
        .filter_map(|p| {
            let ip = p.pointer("/status/podIP")?.as_str()?;
            let ns = p.pointer("/metadata/namespace")?.as_str()?;
            let sa = p
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            Some((ip.to_owned(), format!("{trust_domain}/ns/{ns}/sa/{sa}")))
        })
        .collect())
}

/// The suggested objects, as a YAML stream, and a summary table.
/// `outside_registry` are the (host, port, protocol) destinations sidecars sent to their
/// outbound policy ([`super::analyze_policy::needed`]): they get ServiceEntries too.
pub fn suggest<'a>(
    observations: &'a [Observation],
    ids: &BTreeMap<String, String>,
    outside_registry: &BTreeSet<(&'a str, u16, &'a str)>,
) -> (Vec<Value>, String) {
    // host → (ports with protocol)
    let mut hosts: BTreeMap<&str, BTreeSet<(u16, &str)>> = BTreeMap::new();
    for (host, port, protocol) in outside_registry {
        hosts.entry(host).or_default().insert((*port, protocol));
    }
    // gateway namespace → (principal, host, gateway port, protocol) tuples
    let mut tuples: BTreeMap<&str, BTreeSet<(String, &str, u16, &str)>> = BTreeMap::new();
    let mut counts: BTreeMap<(String, &str, u16), (usize, usize)> = BTreeMap::new();
    for o in observations {
        hosts
            .entry(&o.host)
            .or_default()
            .insert((o.port, o.protocol));
        let principal = ids
            .get(&o.source_ip)
            .cloned()
            .unwrap_or_else(|| format!("unknown ({})", o.source_ip));
        tuples.entry(&o.gateway_namespace).or_default().insert((
            principal.clone(),
            &o.host,
            o.gateway_port,
            o.protocol,
        ));
        let c = counts.entry((principal, &o.host, o.port)).or_default();
        c.0 += 1;
        c.1 += usize::from(o.dry_run_denied);
    }
    let mut objects = Vec::new();
    for (host, seen) in &hosts {
        // One protocol per port: TLS when any connection was TLS (passthrough), else HTTP
        // (HTTPS on 443, where the gateway originated TLS).
        let mut per_port: BTreeMap<u16, &str> = BTreeMap::new();
        for (port, proto) in seen.iter() {
            let entry = per_port.entry(*port).or_insert(proto);
            if *proto == "tls" {
                *entry = "tls";
            }
        }
        let ports: Vec<Value> = per_port
            .iter()
            .map(|(port, proto)| {
                let protocol = match (*proto, *port) {
                    ("http", 443) => "HTTPS",
                    ("http", _) => "HTTP",
                    ("tls", _) => "TLS",
                    _ => "TCP",
                };
                json!({"number": port, "name": format!("{}-{port}", protocol.to_ascii_lowercase()), "protocol": protocol})
            })
            .collect();
        let name = host.replace('.', "-");
        objects.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": name},
            "spec": {"hosts": [host], "ports": ports, "resolution": "DNS", "location": "MESH_EXTERNAL"},
        }));
    }
    for (ns, set) in &tuples {
        // One rule per (host, port), naming every principal seen for it: HTTP by `hosts`,
        // TLS by `connection.sni` (HTTP attributes are dropped on TCP chains).
        let mut by_dest: BTreeMap<(&str, u16, &str), BTreeSet<&str>> = BTreeMap::new();
        for (principal, host, port, proto) in set {
            if !principal.starts_with("unknown") {
                by_dest
                    .entry((host, *port, proto))
                    .or_default()
                    .insert(principal);
            }
        }
        let rules: Vec<Value> = by_dest
            .iter()
            .map(|((host, port, proto), principals)| {
                let from = json!([{"source": {"principals": principals.iter().collect::<Vec<_>>()}}]);
                if *proto == "http" {
                    json!({"from": from, "to": [{"operation": {"hosts": [host], "ports": [port.to_string()]}}]})
                } else {
                    json!({
                        "from": from,
                        "to": [{"operation": {"ports": [port.to_string()]}}],
                        "when": [{"key": "connection.sni", "values": [host]}],
                    })
                }
            })
            .collect();
        objects.push(json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "egress-observed", "namespace": ns},
            "spec": {"action": "ALLOW", "rules": rules},
        }));
    }
    let headers = vec![
        "SOURCE".to_owned(),
        "HOST".to_owned(),
        "PORT".to_owned(),
        "REQUESTS".to_owned(),
        "DRY-RUN-DENIED".to_owned(),
    ];
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|((p, h, port), (n, d))| {
            vec![
                p.clone(),
                (*h).to_owned(),
                port.to_string(),
                n.to_string(),
                d.to_string(),
            ]
        })
        .collect();
    (
        objects,
        egress_printers::table::render(&headers, &rows, false),
    )
}

/// `egress analyze traffic`: the tables on standard error (what the gateways passed, what the
/// sidecars' outbound policy decided), the suggested YAML on standard output.
pub fn run(
    store: &Store,
    namespace: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), OpError> {
    const TRUST_DOMAIN: &str = "cluster.local";
    let Read {
        observations,
        unparsable,
    } = observe(store, namespace)?;
    let sidecars = super::analyze_policy::observe(store, namespace, TRUST_DOMAIN)?;
    let unparsable = unparsable + sidecars.unparsable;
    if unparsable > 0 {
        writeln!(
            err,
            "{unparsable} access-log line(s) could not be parsed exactly and were ignored."
        )?;
    }
    if observations.is_empty() && sidecars.decisions.is_empty() {
        writeln!(
            err,
            "No traffic observed: gateway and sidecar access logs are empty (turn on accessLogFile in the shared MeshConfig and send traffic)."
        )?;
        return Ok(());
    }
    let ids = identities(store, TRUST_DOMAIN)?;
    let outside = super::analyze_policy::needed(&sidecars.decisions);
    let (objects, table) = suggest(&observations, &ids, &outside);
    if !observations.is_empty() {
        writeln!(err, "Through the egress gateways:")?;
        write!(err, "{table}")?;
        writeln!(
            err,
            "note: principals match only where the gateway terminates mesh mTLS (ISTIO_MUTUAL servers); for plaintext or passthrough servers use a DestinationRule with ISTIO_MUTUAL toward the gateway first."
        )?;
    }
    if !sidecars.decisions.is_empty() {
        writeln!(
            err,
            "Outside the service registry (sidecars' outbound policy): REGISTRY_ONLY blocks what passed through; the ServiceEntries below keep it working:"
        )?;
        write!(err, "{}", super::analyze_policy::table(&sidecars.decisions))?;
        let unnamed = sidecars
            .decisions
            .iter()
            .filter(|d| d.host.parse::<std::net::IpAddr>().is_ok())
            .count();
        if unnamed > 0 {
            writeln!(
                err,
                "note: {unnamed} connection(s) named no host (neither TLS SNI nor HTTP Host); they need a ServiceEntry with `addresses`, not suggested here."
            )?;
        }
    }
    for o in &objects {
        writeln!(out, "---")?;
        write!(out, "{}", egress_printers::yaml::to_yaml(o))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HTTP: &str = r#"[2026-11-24T06:06:39.260Z] "GET /politics HTTP/1.1" 200 - via_upstream - "-" 0 3 0 0 "127.1.50.4" "curl/7.88.1" "ee57a97d" "edition.cnn.com" "127.0.50.100:80" outbound|80||edition.cnn.com 127.0.50.0:37671 127.1.50.2:80 127.1.50.4:59367 - -"#;
    const TLS: &str = r#"[2026-11-24T06:06:39.445Z] "- - -" 0 - - rbac_dry_run_denied_matched_policy[none] "-" 783 1211 61 - "-" "-" "-" "-" "127.0.50.100:443" outbound|443||edition.cnn.com 127.0.50.0:43529 127.1.50.2:443 127.1.50.5:37831 edition.cnn.com -"#;

    #[test]
    fn text_and_json_lines_parse() {
        let h = parse_line("ns", HTTP).unwrap().unwrap();
        assert_eq!(
            (h.host.as_str(), h.port, h.protocol, h.source_ip.as_str()),
            ("edition.cnn.com", 80, "http", "127.1.50.4")
        );
        assert!(!h.dry_run_denied);
        let t = parse_line("ns", TLS).unwrap().unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.protocol, t.source_ip.as_str()),
            ("edition.cnn.com", 443, "tls", "127.1.50.5")
        );
        assert!(t.dry_run_denied);
        let j = parse_line(
            "ns",
            r#"{"method":"GET","authority":"api.example.com:8443","upstream_cluster":"outbound|8443||api.example.com","downstream_remote_address":"127.1.0.9:5000","requested_server_name":null}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!((j.host.as_str(), j.port), ("api.example.com", 8443));
        assert_eq!(parse_line("ns", "garbage"), Err(Unparsable));
        assert_eq!(
            parse_line(
                "ns",
                &HTTP.replace("outbound|80||edition.cnn.com", "BlackHoleCluster")
            ),
            Ok(None)
        );
    }

    #[test]
    fn suggestions_name_hosts_ports_and_principals() {
        let obs = vec![
            parse_line("gw", HTTP).unwrap().unwrap(),
            parse_line("gw", TLS).unwrap().unwrap(),
        ];
        let ids = BTreeMap::from([(
            "127.1.50.4".to_owned(),
            "cluster.local/ns/apps/sa/curl".to_owned(),
        )]);
        let (objects, table) = suggest(&obs, &ids, &BTreeSet::new());
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["kind"], "ServiceEntry");
        assert_eq!(objects[0]["spec"]["ports"].as_array().unwrap().len(), 2);
        let ap = &objects[1];
        assert_eq!(ap["metadata"]["namespace"], "gw");
        assert_eq!(
            ap["spec"]["rules"][0]["from"][0]["source"]["principals"][0],
            "cluster.local/ns/apps/sa/curl"
        );
        assert!(table.contains("unknown (127.1.50.5)"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.contains("443") && l.trim_end().ends_with('1')),
            "{table}"
        );
    }

    /// A TLS line whose SNI carried a newline and a forged TCP line, as the gateway writes it
    /// (escaped, one line), and the raw forged half a gateway without escaping would have
    /// written: neither becomes a suggestion; the bad ones are counted.
    #[test]
    fn forged_and_unparsable_lines_are_counted_not_suggested() {
        let escaped_sni = TLS.replace(
            " edition.cnn.com -",
            r#" x\n[2026-11-24T06:06:40.000Z]\x20"-\x20-\x20-"\x20evil.example -"#,
        );
        let forged = TLS.replace("edition.cnn.com", "evil.example");
        let truncated = &HTTP[..HTTP.len() - 20];
        let text = [
            HTTP,
            &escaped_sni,
            &format!("{forged} trailing"),
            truncated,
            r#"{"method":"GET","authority":"a\nb","upstream_cluster":"outbound|80||a"}"#,
            r#"{"method":1,"upstream_cluster":"outbound|80||a"}"#,
            "garbage",
            "",
        ]
        .join("\n");
        let read = read_log("gw", &text);
        assert_eq!(read.unparsable, 6, "{read:?}");
        assert_eq!(read.observations.len(), 1);
        assert_eq!(read.observations[0].host, "edition.cnn.com");
    }
}
