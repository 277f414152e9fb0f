//! Istio's `gateway` analyzers: the selector and ports against the workload's Services
//! (IST0101, IST0162), `credentialName` Secrets (IST0101), conflicting servers (IST0145) and
//! certificates shared between gateways (IST0138).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::credential;
use super::messages::{
    CONFLICTING_GATEWAYS, GATEWAY_DUPLICATE_CERTIFICATE, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    INVALID_GATEWAY_CREDENTIAL, REFERENCED_RESOURCE_NOT_FOUND,
};
use super::{
    array, go_list, labels_of, of_kind, quote, report, selector_matches, selector_path,
    selector_string, str_of, string_map, strings,
};
use crate::{Finding, Input};

type Labels = BTreeMap<String, String>;

/// A Gateway's `spec.selector`.
fn selector_of(gw: &Input) -> Labels {
    string_map(gw.get(&["spec", "selector"]))
}

/// A Gateway's servers.
fn servers(gw: &Input) -> &[Value] {
    array(gw.get(&["spec", "servers"]))
}

/// `server.port.number`, 0 when absent (Go's `GetPort().GetNumber()`).
fn port_number(server: &Value) -> u64 {
    server
        .get("port")
        .and_then(|p| p.get("number"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Kubernetes' `IntOrString.IntValue()`: the number, or a string parsed as one, else 0.
fn int_value(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn report_selector_not_found(out: &mut Vec<Finding>, gw: &Input, sel: &Labels) {
    report(
        out,
        &REFERENCED_RESOURCE_NOT_FOUND,
        gw,
        &selector_path(sel),
        format!(
            "Referenced selector not found: {}",
            quote(&selector_string(sel))
        ),
    );
}

/// `gateway.IngressGatewayPortAnalyzer`. A Gateway whose selector matches no Pod (in any
/// namespace): IST0101 `selector`. Otherwise each server port must be offered by a TCP port of a
/// Service (in the Pod's namespace) selecting one of those Pods, as its `port` (which the
/// gateway translates to the target port) or as its numeric `targetPort`; a port offered by
/// neither: IST0162.
pub(super) fn ingress_gateway_ports(inputs: &[Input], out: &mut Vec<Finding>) {
    let pods: Vec<(&str, Labels)> = of_kind(inputs, "Pod")
        .map(|p| (p.namespace.as_str(), labels_of(p)))
        .collect();
    let services: Vec<&Input> = of_kind(inputs, "Service").collect();
    for gw in of_kind(inputs, "Gateway") {
        let sel = selector_of(gw);
        let mut matched = 0;
        let mut offered = BTreeSet::new();
        for (ns, labels) in pods.iter().filter(|(_, l)| selector_matches(&sel, l)) {
            matched += 1;
            for svc in services.iter().filter(|s| s.namespace == *ns) {
                let svc_sel = string_map(svc.get(&["spec", "selector"]));
                if !selector_matches(&svc_sel, labels) {
                    continue;
                }
                for port in array(svc.get(&["spec", "ports"])) {
                    if str_of(port, "protocol") != "TCP" {
                        continue;
                    }
                    offered.insert(int_value(port.get("port")));
                    let target = int_value(port.get("targetPort"));
                    if target != 0 {
                        offered.insert(target);
                    }
                }
            }
        }
        if matched == 0 {
            report_selector_not_found(out, gw, &sel);
            continue;
        }
        for server in servers(gw) {
            if server.get("port").is_none() {
                continue;
            }
            let n = port_number(server);
            if !offered.contains(&n) {
                report(
                    out,
                    &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                    gw,
                    &selector_path(&sel),
                    format!(
                        "The gateway is listening on a target port (port {n}) that is not defined in the Service associated with its workload instances (Pod selector {}). If you need to access the gateway port through the gateway Service, it will not be available.",
                        selector_string(&sel)
                    ),
                );
            }
        }
    }
}

/// `gateway.SecretAnalyzer`: a server's TLS `credentialName` must name a Secret in the namespace
/// of the gateway's workload (the first Pod its selector matches), or `ns/name`; otherwise
/// IST0101 `credentialName`; a Secret without a usable certificate: IST0161. Without a matching
/// Pod (or with one without a namespace, as istioctl reads it), IST0101 `selector`.
pub(super) fn secrets(inputs: &[Input], out: &mut Vec<Finding>) {
    for gw in of_kind(inputs, "Gateway") {
        let sel = selector_of(gw);
        let gw_ns = of_kind(inputs, "Pod")
            .find(|p| selector_matches(&sel, &labels_of(p)))
            .map(|p| p.namespace.as_str())
            .unwrap_or_default();
        if gw_ns.is_empty() {
            report_selector_not_found(out, gw, &sel);
            continue;
        }
        for (i, server) in servers(gw).iter().enumerate() {
            let cn = server
                .get("tls")
                .map(|t| str_of(t, "credentialName"))
                .unwrap_or_default();
            if cn.is_empty() {
                continue;
            }
            let (ns, name) = cn.split_once('/').unwrap_or((gw_ns, cn));
            let path = format!("spec.servers[{i}].tls.credentialName");
            match of_kind(inputs, "Secret").find(|s| s.namespace == ns && s.name == name) {
                None => report(
                    out,
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    gw,
                    &path,
                    format!("Referenced credentialName not found: {}", quote(cn)),
                ),
                Some(secret) if !credential::valid(secret) => report(
                    out,
                    &INVALID_GATEWAY_CREDENTIAL,
                    gw,
                    &path,
                    format!(
                        "The credential referenced by the Gateway {} in namespace {gw_ns} is invalid, which can cause the traffic not to work as expected.",
                        gw.name
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Hosts of one server with its `bind`, per gateway, per (selector string, port).
type GatewayMap = BTreeMap<(String, String), BTreeMap<String, Vec<(String, String)>>>;

fn gateways_map(inputs: &[Input]) -> GatewayMap {
    let mut map = GatewayMap::new();
    for gw in of_kind(inputs, "Gateway") {
        let sel = selector_string(&selector_of(gw));
        for server in servers(gw) {
            let bind = str_of(server, "bind").to_owned();
            let hosts = strings(server.get("hosts"))
                .into_iter()
                .map(|h| (h, bind.clone()))
                .collect();
            // A later server on the same port replaces an earlier one, as in istioctl.
            map.entry((sel.clone(), port_number(server).to_string()))
                .or_default()
                .insert(gw.full_name(), hosts);
        }
    }
    map
}

/// `k1=v1,k2=v2` back into a label set (pairs without exactly one `=` are dropped).
fn parse_selector(s: &str) -> Labels {
    s.split(',')
        .filter_map(|pair| {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) => Some((k.to_owned(), v.to_owned())),
                _ => None,
            }
        })
        .collect()
}

/// `gateway.ConflictingGatewayAnalyzer`: two Gateways whose selectors are equal (or one's text
/// contains the other's and some Pod matches both) with servers on the same port sharing a host
/// (exactly, with the same `bind`): IST0145 on each. A selector no such key covers: IST0101.
/// (istioctl's duplicate check also records a non-conflicting server's hosts into the other
/// gateway's set, which makes its result depend on map order; egress checks without recording.)
pub(super) fn conflicting_gateways(inputs: &[Input], out: &mut Vec<Finding>) {
    let map = gateways_map(inputs);
    let pods: Vec<Labels> = of_kind(inputs, "Pod").map(labels_of).collect();
    for gw in of_kind(inputs, "Gateway") {
        let name = gw.full_name();
        let sel = selector_of(gw);
        let s = selector_string(&sel);
        let hits: Vec<&(String, String)> = map
            .keys()
            .filter(|(x, _)| {
                if *x == s {
                    return true;
                }
                if !(x.contains(&s) || s.contains(x.as_str())) {
                    return false;
                }
                let xsel = parse_selector(x);
                pods.iter()
                    .any(|l| selector_matches(&sel, l) && selector_matches(&xsel, l))
            })
            .collect();
        if !s.is_empty() && hits.is_empty() {
            report_selector_not_found(out, gw, &sel);
            continue;
        }
        for server in servers(gw) {
            let port = port_number(server).to_string();
            let hosts = strings(server.get("hosts"));
            let bind = str_of(server, "bind");
            let mut others: Vec<&str> = Vec::new();
            for key in hits.iter().filter(|(_, p)| *p == port) {
                for (other, known) in map.get(*key).into_iter().flatten() {
                    let dup = hosts
                        .iter()
                        .any(|h| known.iter().any(|(kh, kb)| kh == h && kb == bind));
                    if *other != name && dup {
                        others.push(other);
                    }
                }
            }
            if !others.is_empty() {
                others.sort_unstable();
                report(
                    out,
                    &CONFLICTING_GATEWAYS,
                    gw,
                    "", // istioctl points at the resource, not a field
                    format!(
                        "Conflict with gateways {} (workload selector {s}, port {port}, hosts {}).",
                        others.join(","),
                        hosts.join(",")
                    ),
                );
            }
        }
    }
}

/// Istio's rule for two servers' TLS settings naming the same certificate: the same non-empty
/// `credentialName`, or (both without one) the same non-empty `serverCertificate` and
/// `privateKey`.
fn same_certificate(a: &Value, b: &Value) -> bool {
    let (ca, cb) = (str_of(a, "credentialName"), str_of(b, "credentialName"));
    if !ca.is_empty() && !cb.is_empty() {
        return ca == cb;
    }
    if !ca.is_empty() || !cb.is_empty() {
        return false;
    }
    let (sa, sb) = (
        str_of(a, "serverCertificate"),
        str_of(b, "serverCertificate"),
    );
    let (ka, kb) = (str_of(a, "privateKey"), str_of(b, "privateKey"));
    !sa.is_empty() && sa == sb && !ka.is_empty() && !kb.is_empty() && ka == kb
}

/// `gateway.CertificateAnalyzer`: a Gateway and another whose selector includes all of its
/// selector's labels (any gateway when its selector is empty; in any namespace) with TLS servers
/// on the same certificate: IST0138 on the first, once per such pair of servers.
pub(super) fn duplicate_certificates(inputs: &[Input], out: &mut Vec<Finding>) {
    let gateways: Vec<&Input> = of_kind(inputs, "Gateway").collect();
    for gw in &gateways {
        let sel = selector_of(gw);
        for other in &gateways {
            if other.namespace == gw.namespace && other.name == gw.name {
                continue;
            }
            let other_sel = selector_of(other);
            if !sel.iter().all(|(k, v)| other_sel.get(k) == Some(v)) {
                continue;
            }
            for a in servers(gw).iter().filter_map(|s| s.get("tls")) {
                for b in servers(other).iter().filter_map(|s| s.get("tls")) {
                    if same_certificate(a, b) {
                        report(
                            out,
                            &GATEWAY_DUPLICATE_CERTIFICATE,
                            gw,
                            "metadata.name",
                            format!(
                                "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 connections.",
                                go_list(&[gw.full_name(), other.full_name()])
                            ),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn certificates() {
        let cred = |c: &str| json!({"credentialName": c});
        assert!(same_certificate(&cred("a"), &cred("a")));
        assert!(!same_certificate(&cred("a"), &cred("b")));
        let files = |c: &str, k: &str| json!({"serverCertificate": c, "privateKey": k});
        assert!(same_certificate(&files("c", "k"), &files("c", "k")));
        assert!(!same_certificate(&files("c", "k"), &files("c", "")));
        assert!(!same_certificate(&files("c", "k"), &cred("c")));
        assert!(!same_certificate(&json!({}), &json!({})));
    }

    #[test]
    fn selectors_and_ports() {
        let sel = parse_selector("app=a,istio=b,bogus");
        assert_eq!(selector_string(&sel), "app=a,istio=b");
        assert_eq!(int_value(Some(&json!(8080))), 8080);
        assert_eq!(int_value(Some(&json!("8443"))), 8443);
        assert_eq!(int_value(Some(&json!("https"))), 0);
        assert_eq!(port_number(&json!({"hosts": ["a"]})), 0);
    }
}
