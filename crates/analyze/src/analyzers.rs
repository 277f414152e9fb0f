//! The analyzers: each reads the inputs and appends findings with Istio's code, level and
//! message text.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Finding, Input, Level};

/// One analyzer: its istioctl name, the codes it can report and its function.
pub struct AnalyzerInfo {
    /// istioctl's analyzer name, e.g. `virtualservice.GatewayAnalyzer`.
    pub name: &'static str,
    /// The codes it reports.
    pub codes: &'static [&'static str],
    /// Runs it.
    pub run: fn(&[Input], &mut Vec<Finding>),
}

/// Every implemented analyzer, in the order they run.
pub const ANALYZERS: &[AnalyzerInfo] = &[
    AnalyzerInfo {
        name: "gateway.IngressGatewayPortAnalyzer",
        codes: &["IST0101"],
        run: gateway_selector,
    },
    AnalyzerInfo {
        name: "virtualservice.GatewayAnalyzer",
        codes: &["IST0101", "IST0132"],
        run: virtual_service_gateways,
    },
    AnalyzerInfo {
        name: "serviceentry.ProtocolAddressesAnalyzer",
        codes: &["IST0134"],
        run: service_entry_addresses,
    },
    AnalyzerInfo {
        name: "destinationrule.CaCertificateAnalyzer",
        codes: &["IST0128", "IST0129"],
        run: ca_certificates,
    },
];

struct Msg {
    code: &'static str,
    name: &'static str,
    level: Level,
}

const REFERENCED_RESOURCE_NOT_FOUND: Msg = Msg {
    code: "IST0101",
    name: "ReferencedResourceNotFound",
    level: Level::Error,
};
const NO_CA_DESTINATION: Msg = Msg {
    code: "IST0128",
    name: "NoServerCertificateVerificationDestinationLevel",
    level: Level::Error,
};
const NO_CA_PORT: Msg = Msg {
    code: "IST0129",
    name: "NoServerCertificateVerificationPortLevel",
    level: Level::Warning,
};
const ADDRESSES_REQUIRED: Msg = Msg {
    code: "IST0134",
    name: "ServiceEntryAddressesRequired",
    level: Level::Warning,
};
const HOST_NOT_IN_GATEWAY: Msg = Msg {
    code: "IST0132",
    name: "VirtualServiceHostNotFoundInGateway",
    level: Level::Warning,
};

fn report(out: &mut Vec<Finding>, m: &Msg, r: &Input, path: &str, message: String) {
    out.push(Finding {
        code: m.code,
        name: m.name,
        level: m.level,
        message,
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name_of_resource: r.name.clone(),
        file: r.origin.as_ref().map(|o| o.file.clone()),
        line: r.line_of(path),
        documentation_url: format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}",
            m.code.to_ascii_lowercase()
        ),
    });
}

fn of_kind<'a>(inputs: &'a [Input], kind: &'a str) -> impl Iterator<Item = &'a Input> + 'a {
    inputs.iter().filter(move |i| i.kind == kind)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `%q` for a plain string.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Kubernetes' `labels.SelectorFromSet(..).String()`: `k=v` sorted by key, comma-joined.
fn selector_string(sel: &BTreeMap<String, String>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Gateway whose selector matches no Pod (in any namespace): IST0101 `selector`.
fn gateway_selector(inputs: &[Input], out: &mut Vec<Finding>) {
    let pods: Vec<BTreeMap<String, String>> = of_kind(inputs, "Pod")
        .map(|p| string_map(p.get(&["metadata", "labels"])))
        .collect();
    for gw in of_kind(inputs, "Gateway") {
        let sel = string_map(gw.get(&["spec", "selector"]));
        let matched = pods
            .iter()
            .any(|labels| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
        if !matched {
            let s = selector_string(&sel);
            let path = match sel.keys().next() {
                Some(k) => format!("spec.selector.{k}"),
                None => "spec.selector".to_owned(),
            };
            report(
                out,
                &REFERENCED_RESOURCE_NOT_FOUND,
                gw,
                &path,
                format!("Referenced selector not found: {}", quote(&s)),
            );
        }
    }
}

/// `ns/name` for a reference that may omit the namespace.
fn full_name(ns: &str, name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((n, m)) => (n.to_owned(), m.to_owned()),
        None => (ns.to_owned(), name.to_owned()),
    }
}

/// VirtualService → Gateway: IST0101 (gateway missing), IST0132 (no VS host in its servers).
fn virtual_service_gateways(inputs: &[Input], out: &mut Vec<Finding>) {
    for vs in of_kind(inputs, "VirtualService") {
        let hosts = strings(vs.get(&["spec", "hosts"]));
        for (i, gw_name) in strings(vs.get(&["spec", "gateways"])).iter().enumerate() {
            if gw_name == "mesh" {
                continue;
            }
            let (gns, gname) = full_name(&vs.namespace, gw_name);
            let path = format!("spec.gateways[{i}]");
            let gateway =
                of_kind(inputs, "Gateway").find(|g| g.namespace == gns && g.name == gname);
            if gateway.is_none() {
                report(
                    out,
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    vs,
                    &path,
                    format!("Referenced gateway not found: {}", quote(gw_name)),
                );
            }
            let gw_hosts = gateway.map(gateway_hosts).unwrap_or_default();
            let visible = hosts_for_namespace(&gw_hosts, &vs.namespace);
            let found = visible
                .iter()
                .any(|gh| hosts.iter().any(|vh| host_matches(gh, vh)));
            if !found {
                let gw_full = if gns.is_empty() {
                    gname.clone()
                } else {
                    format!("{gns}/{gname}")
                };
                report(
                    out,
                    &HOST_NOT_IN_GATEWAY,
                    vs,
                    &path,
                    format!(
                        "one or more host [{}] defined in VirtualService {} not found in Gateway {}.",
                        hosts.join(" "),
                        vs.full_name(),
                        gw_full
                    ),
                );
            }
        }
    }
}

/// A Gateway's server hosts with `./h` made `<gw ns>/h`, `*/h` made `h` and `*/*` made `*`.
fn gateway_hosts(gw: &Input) -> Vec<String> {
    let mut all = Vec::new();
    let servers = gw
        .get(&["spec", "servers"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for server in &servers {
        let mut hosts = strings(server.get("hosts"));
        for h in hosts.iter_mut() {
            if let Some((ns, host)) = h.clone().split_once('/') {
                if ns == "." {
                    *h = format!("{}/{host}", gw.namespace);
                } else if ns == "*" {
                    *h = host.to_owned();
                }
            }
        }
        if hosts.iter().any(|h| h == "*/*") {
            hosts = vec!["*".to_owned()];
        }
        all.extend(hosts);
    }
    all
}

/// The hosts visible to namespace `ns`: bare hosts, and `ns/h` or `*/h` as `h`.
fn hosts_for_namespace(hosts: &[String], ns: &str) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((n, host)) if n == ns || n == "*" => Some(host.to_owned()),
            Some(_) => None,
            None => Some(h.clone()),
        })
        .collect()
}

/// Istio's `host.Name.Matches`: exact, or one side a wildcard covering the other.
fn host_matches(a: &str, b: &str) -> bool {
    let wild = |h: &str| h.starts_with('*');
    match (wild(a), wild(b)) {
        (false, false) => a == b,
        (true, false) => b.ends_with(&a[1..]),
        (false, true) => a.ends_with(&b[1..]),
        (true, true) => {
            let (sa, sb) = (&a[1..], &b[1..]);
            if sa.len() > sb.len() {
                sa.ends_with(sb)
            } else {
                sb.ends_with(sa)
            }
        }
    }
}

fn tls_without_ca(tls: Option<&Value>) -> Option<String> {
    let tls = tls?;
    let mode = tls.get("mode")?.as_str()?;
    if mode != "SIMPLE" && mode != "MUTUAL" {
        return None;
    }
    let ca = tls
        .get("caCertificates")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ca.is_empty().then(|| mode.to_owned())
}

/// Go's proto text for a PortSelector: `number:443`.
fn port_text(port: Option<&Value>) -> String {
    match port.and_then(|p| p.get("number")).and_then(Value::as_u64) {
        Some(n) => format!("number:{n}"),
        None => String::new(),
    }
}

/// DestinationRule TLS SIMPLE/MUTUAL without caCertificates: IST0128 (top level), IST0129 (per
/// port). A rule with a workloadSelector whose TLS names a credentialName gets its CA from that
/// secret and is not reported.
fn ca_certificates(inputs: &[Input], out: &mut Vec<Finding>) {
    for dr in of_kind(inputs, "DestinationRule") {
        let host = dr
            .get(&["spec", "host"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        let has_selector = dr.get(&["spec", "workloadSelector"]).is_some();
        let exempt = |tls: Option<&Value>| {
            has_selector
                && tls
                    .and_then(|t| t.get("credentialName"))
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty())
        };
        let tls = dr.get(&["spec", "trafficPolicy", "tls"]);
        if let Some(mode) = tls_without_ca(tls)
            && !exempt(tls)
        {
            report(
                out,
                &NO_CA_DESTINATION,
                dr,
                "spec.trafficPolicy.tls.mode",
                format!(
                    "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host}",
                    dr.full_name(),
                    dr.namespace
                ),
            );
        }
        let ports = dr
            .get(&["spec", "trafficPolicy", "portLevelSettings"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            let tls = p.get("tls");
            if let Some(mode) = tls_without_ca(tls)
                && !exempt(tls)
            {
                report(
                    out,
                    &NO_CA_PORT,
                    dr,
                    &format!("spec.trafficPolicy.portLevelSettings[{i}].tls.mode"),
                    format!(
                        "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host} at port {}",
                        dr.full_name(),
                        dr.namespace,
                        port_text(p.get("port"))
                    ),
                );
            }
        }
    }
}

/// A ServiceEntry without `addresses` and a port whose protocol is TCP or unset: IST0134, once
/// per such port. (istioctl skips this when the MeshConfig's proxy metadata turns on DNS capture
/// with auto-allocation; egress has no such mode, so it always checks.)
fn service_entry_addresses(inputs: &[Input], out: &mut Vec<Finding>) {
    for se in of_kind(inputs, "ServiceEntry") {
        if se.get(&["spec", "addresses"]).is_some_and(|a| !a.is_null()) {
            continue;
        }
        let ports = se
            .get(&["spec", "ports"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if proto.is_empty() || proto == "TCP" {
                report(
                    out,
                    &ADDRESSES_REQUIRED,
                    se,
                    &format!("spec.ports[{i}]"),
                    "ServiceEntry addresses are required for this protocol.".to_owned(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn host_matching() {
        assert!(host_matches("*.a.com", "b.a.com"));
        assert!(host_matches("*", "b.a.com"));
        assert!(!host_matches("*.a.com", "a.com"));
        assert!(host_matches("x.com", "x.com"));
        assert!(!host_matches("x.com", "y.com"));
        assert!(host_matches("*.a.com", "*.b.a.com"));
    }
}
