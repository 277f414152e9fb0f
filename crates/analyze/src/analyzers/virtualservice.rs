//! Istio's `virtualservice` analyzers: gateways a VirtualService names (IST0101, IST0132),
//! DestinationRule subsets its destinations name (IST0101) and mesh hosts two of them define
//! (IST0109).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::hosts::{export_scopes, resource_of_host, to_fqdn};
use super::messages::{
    CONFLICTING_MESH_GATEWAY_VS_HOSTS, HOST_NOT_IN_GATEWAY, REFERENCED_RESOURCE_NOT_FOUND,
};
use super::{array, host_matches, of_kind, quote, report, str_of, strings};
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

/// A route or mirror destination with the field path istioctl points at.
pub(super) struct Destination<'a> {
    /// The `destination` (or `mirror`) object.
    pub(super) value: &'a Value,
    /// Its `host` field's path.
    pub(super) path: String,
}

/// Every route destination (tcp, tls, http) of a VirtualService.
pub(super) fn route_destinations(vs: &Input) -> Vec<Destination<'_>> {
    let mut out = Vec::new();
    for kind in ["tcp", "tls", "http"] {
        for (i, rule) in array(vs.get(&["spec", kind])).iter().enumerate() {
            for (j, route) in array(rule.get("route")).iter().enumerate() {
                if let Some(value) = route.get("destination") {
                    out.push(Destination {
                        value,
                        path: format!("spec.{kind}[{i}].route[{j}].destination.host"),
                    });
                }
            }
        }
    }
    out
}

/// Every HTTP `mirror` and `mirrors[].destination` of a VirtualService.
pub(super) fn mirror_destinations(vs: &Input) -> Vec<Destination<'_>> {
    let mut out = Vec::new();
    for (i, rule) in array(vs.get(&["spec", "http"])).iter().enumerate() {
        if let Some(value) = rule.get("mirror") {
            out.push(Destination {
                value,
                path: format!("spec.http[{i}].mirror.host"),
            });
        }
        for (j, m) in array(rule.get("mirrors")).iter().enumerate() {
            if let Some(value) = m.get("destination") {
                out.push(Destination {
                    value,
                    path: format!("spec.http[{i}].mirrors[{j}].destination.host"),
                });
            }
        }
    }
    out
}

/// `virtualservice.DestinationRuleAnalyzer`: a destination (or mirror) naming a subset must find
/// it in a DestinationRule for the same Service (short names resolved in each resource's
/// namespace, FQDNs read as `name.ns.svc.cluster.local`); otherwise IST0101.
pub(super) fn destination_rule_subsets(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut known: BTreeSet<((String, String), String)> = BTreeSet::new();
    for dr in of_kind(inputs, "DestinationRule") {
        let host = to_fqdn(&dr.namespace, str_of(&dr.value["spec"], "host"));
        let service = resource_of_host(&dr.namespace, &host);
        for subset in array(dr.get(&["spec", "subsets"])) {
            known.insert((service.clone(), str_of(subset, "name").to_owned()));
        }
    }
    for vs in of_kind(inputs, "VirtualService") {
        let lists = [
            ("host+subset", route_destinations(vs)),
            ("mirror+subset", mirror_destinations(vs)),
        ];
        for (what, dests) in lists {
            for d in dests {
                let host = str_of(d.value, "host");
                let subset = str_of(d.value, "subset");
                if subset.is_empty() {
                    continue;
                }
                let key = (resource_of_host(&vs.namespace, host), subset.to_owned());
                if !known.contains(&key) {
                    report(
                        out,
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        vs,
                        &d.path,
                        format!(
                            "Referenced {what} in destinationrule not found: {}",
                            quote(&format!("{host}+{subset}"))
                        ),
                    );
                }
            }
        }
    }
}

/// Is a VirtualService bound to the mesh (no `gateways`, or `mesh` among them)?
fn on_mesh_gateway(vs: &Input) -> bool {
    let gateways = strings(vs.get(&["spec", "gateways"]));
    gateways.is_empty() || gateways.iter().any(|g| g == "mesh")
}

/// `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: mesh VirtualServices defining the
/// same host (as an FQDN) for the same `exportTo` scope, or a namespace-scoped host that a host
/// exported everywhere covers: IST0109 on each of them, once per VirtualService (for the first
/// conflicting host in scope/host order).
pub(super) fn conflicting_mesh_gateway_hosts(inputs: &[Input], out: &mut Vec<Finding>) {
    // "scope/fqdn" → the VirtualServices defining it, in input order.
    let mut by_host: BTreeMap<(String, String), Vec<&Input>> = BTreeMap::new();
    for vs in of_kind(inputs, "VirtualService").filter(|v| on_mesh_gateway(v)) {
        let scopes = export_scopes(&strings(vs.get(&["spec", "exportTo"])), &vs.namespace);
        for scope in scopes {
            for h in strings(vs.get(&["spec", "hosts"])) {
                by_host
                    .entry((scope.clone(), to_fqdn(&vs.namespace, &h)))
                    .or_default()
                    .push(vs);
            }
        }
    }
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for ((scope, fqdn), list) in &by_host {
        let mut list = list.clone();
        if scope != "*" {
            for ((other_scope, other), vss) in &by_host {
                if other_scope == "*" && host_matches(fqdn, other) {
                    list.extend(vss.iter().copied());
                }
            }
        }
        if list.len() < 2 {
            continue;
        }
        let names: Vec<String> = list.iter().map(|v| v.full_name()).collect();
        for vs in &list {
            if !reported.insert((vs.namespace.clone(), vs.name.clone())) {
                continue;
            }
            report(
                out,
                &CONFLICTING_MESH_GATEWAY_VS_HOSTS,
                vs,
                "metadata.name",
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host {scope}/{fqdn} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                    names.join(",")
                ),
            );
        }
    }
}
