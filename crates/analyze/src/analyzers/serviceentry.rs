//! Istio's `serviceentry` analyzers: addresses required for TCP ports (IST0134), and
//! ServiceEntries giving one host and port different protocols (IST0177).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::hosts::export_scopes;
use super::mesh::mesh_configs;
use super::messages::{ADDRESSES_REQUIRED, CONFLICTING_SERVICE_ENTRY_PROTOCOL};
use super::{array, of_kind, quote, report, str_of, strings};
use crate::{Finding, Input};

/// Does the MeshConfig capture DNS with address auto-allocation (`ISTIO_META_DNS_CAPTURE` and
/// `ISTIO_META_DNS_AUTO_ALLOCATE` or `PILOT_ENABLE_IP_AUTOALLOCATE` in the default proxy
/// metadata)?
fn dns_auto_allocation(inputs: &[Input]) -> bool {
    mesh_configs(inputs).iter().any(|(_, m)| {
        let meta = &m["defaultConfig"]["proxyMetadata"];
        let on = |k: &str| meta.get(k).and_then(Value::as_str) == Some("true");
        on("ISTIO_META_DNS_CAPTURE")
            && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
    })
}

/// `serviceentry.Analyzer`: a ServiceEntry without `addresses` (and none allocated in its
/// status) with a port whose protocol is TCP (any case) or unset: IST0134, once per such port;
/// nothing when the MeshConfig has DNS capture with address auto-allocation.
pub(super) fn addresses(inputs: &[Input], out: &mut Vec<Finding>) {
    if dns_auto_allocation(inputs) {
        return;
    }
    for se in of_kind(inputs, "ServiceEntry") {
        if se.get(&["spec", "addresses"]).is_some_and(|a| !a.is_null()) {
            continue;
        }
        if !array(se.get(&["status", "addresses"])).is_empty() {
            continue;
        }
        for (i, p) in array(se.get(&["spec", "ports"])).iter().enumerate() {
            let proto = str_of(p, "protocol");
            if proto.is_empty() || proto.eq_ignore_ascii_case("TCP") {
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

/// (scope, host, port) → (protocol, ServiceEntry), in input order.
type ProtocolIndex<'a> = BTreeMap<(String, String, u64), Vec<(String, &'a Input)>>;

/// `serviceentry.ConflictingServiceEntryProtocolAnalyzer`: ServiceEntries visible in one
/// namespace (their `exportTo` scopes, a scope `*` seen everywhere) defining the same host and
/// port number with different protocols (compared ignoring case): IST0177 on each, once.
pub(super) fn conflicting_protocols(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut index: ProtocolIndex<'_> = BTreeMap::new();
    for se in of_kind(inputs, "ServiceEntry") {
        let scopes = export_scopes(&strings(se.get(&["spec", "exportTo"])), &se.namespace);
        for scope in &scopes {
            for h in strings(se.get(&["spec", "hosts"])) {
                for p in array(se.get(&["spec", "ports"])) {
                    let number = p.get("number").and_then(Value::as_u64).unwrap_or(0);
                    index
                        .entry((scope.clone(), h.clone(), number))
                        .or_default()
                        .push((str_of(p, "protocol").to_owned(), se));
                }
            }
        }
    }
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for ((scope, host, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != "*" {
            let everywhere = index.get(&("*".to_owned(), host.clone(), *port));
            entries.extend(everywhere.into_iter().flatten().cloned());
        }
        let protocols: BTreeSet<String> = entries
            .iter()
            .map(|(p, _)| p.to_ascii_uppercase())
            .collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = entries.iter().map(|(_, se)| se.full_name()).collect();
        let names: Vec<String> = names.into_iter().collect();
        let protocols: Vec<String> = protocols.into_iter().collect();
        for (_, se) in &entries {
            if !reported.insert((se.namespace.clone(), se.name.clone())) {
                continue;
            }
            report(
                out,
                &CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                se,
                "metadata.name",
                format!(
                    "Multiple ServiceEntries ({}) define the same host {} and port {port} with conflicting protocols ({}).",
                    names.join(", "),
                    quote(host),
                    protocols.join(", ")
                ),
            );
        }
    }
}
