//! Istio's `virtualservice` analyzers: gateways a VirtualService names (IST0101, IST0132).

use serde_json::Value;

use super::messages::{HOST_NOT_IN_GATEWAY, REFERENCED_RESOURCE_NOT_FOUND};
use super::{host_matches, of_kind, quote, report, strings};
use crate::{Finding, Input};

/// `ns/name` for a reference that may omit the namespace.
fn full_name(ns: &str, name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((n, m)) => (n.to_owned(), m.to_owned()),
        None => (ns.to_owned(), name.to_owned()),
    }
}

/// `virtualservice.GatewayAnalyzer`, VirtualService → Gateway: IST0101 (gateway missing),
/// IST0132 (no VirtualService host in its servers).
pub(super) fn gateways(inputs: &[Input], out: &mut Vec<Finding>) {
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
