//! Istio's `destinationrule` analyzers: TLS origination without a CA (IST0128, IST0129), and
//! hosts no service defines (IST0174) or subsets selecting no Pod (IST0173).

use std::collections::BTreeMap;

use serde_json::Value;

use super::messages::{
    Msg, NO_CA_DESTINATION, NO_CA_PORT, SUBSET_SELECTS_NO_PODS, UNKNOWN_DR_HOST,
};
use super::registry::Registry;
use super::{array, labels_of, of_kind, report, selector_matches, str_of, string_map, strings};
use crate::{Finding, Input, Level};

/// The node labels Istio adds to a Pod's labels as its locality, and the hostname label.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A Pod's labels with its Node's non-empty topology labels and the node name, as Istio's
/// service registry sees the endpoint.
fn endpoint_labels(
    pod: &Input,
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut labels = labels_of(pod);
    let node = pod
        .get(&["spec", "nodeName"])
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(node_labels) = nodes.get(node) {
        for key in TOPOLOGY_LABELS {
            if let Some(v) = node_labels.get(key).filter(|v| !v.is_empty()) {
                labels.insert(key.to_owned(), v.clone());
            }
        }
        labels.insert(HOSTNAME_LABEL.to_owned(), node.to_owned());
    }
    labels
}

/// `destinationrule.SubsetSelectPodAnalyzer`: a DestinationRule whose host no ServiceEntry or
/// Service visible to it defines: IST0174. Otherwise each subset (its labels merged over the
/// ServiceEntry's workload selector) must match some Pod (in any namespace; the Pod's labels
/// with its Node's locality): IST0173 for one that matches none.
pub(super) fn subsets_select_pods(inputs: &[Input], out: &mut Vec<Finding>) {
    let registry = Registry::new(inputs);
    let nodes: BTreeMap<String, BTreeMap<String, String>> = of_kind(inputs, "Node")
        .map(|n| (n.name.clone(), labels_of(n)))
        .collect();
    let pods: Vec<BTreeMap<String, String>> = of_kind(inputs, "Pod")
        .map(|p| endpoint_labels(p, &nodes))
        .collect();
    for dr in of_kind(inputs, "DestinationRule") {
        let host = str_of(&dr.value["spec"], "host");
        let export_to = strings(dr.get(&["spec", "exportTo"]));
        let Some(service) = registry.lookup(&dr.namespace, &export_to, host) else {
            report(
                out,
                &UNKNOWN_DR_HOST,
                dr,
                "", // istioctl points at the resource, not a field
                format!(
                    "The host {host} defined in the DestinationRule does not match any services in the mesh."
                ),
            );
            continue;
        };
        for subset in array(dr.get(&["spec", "subsets"])) {
            let mut selector = service.workload_labels.clone();
            selector.extend(string_map(subset.get("labels")));
            if !pods.iter().any(|l| selector_matches(&selector, l)) {
                report(
                    out,
                    &SUBSET_SELECTS_NO_PODS,
                    dr,
                    "",
                    format!(
                        "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
                        str_of(subset, "name")
                    ),
                );
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

/// The level of IST0128/IST0129 for TLS settings without caCertificates. istioctl always warns,
/// yet the proxy (Istio's and egress's alike) then verifies the server against the system's
/// trust store (`caCertificates` omitted means "system", Istio's `cluster_tls.go`), so the
/// warning's "no caCertificates are set to validate server identity" reads as if nothing were
/// verified when the server is (istio/istio #32936). egress keeps the finding, with Istio's code
/// and text, at Info; it stays a Warning where `insecureSkipVerify: true` really turns
/// verification off. This is why the seed's TLS-origination DestinationRule analyzes clean.
fn no_ca_level(tls: Option<&Value>) -> Level {
    let skips = tls
        .and_then(|t| t.get("insecureSkipVerify"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if skips { Level::Warning } else { Level::Info }
}

/// `destinationrule.CaCertificateAnalyzer`: TLS SIMPLE/MUTUAL without caCertificates: IST0128
/// (top level), IST0129 (per port), at the level [`no_ca_level`] gives. A rule with a
/// workloadSelector whose TLS names a credentialName gets its CA from that secret and is not
/// reported.
pub(super) fn ca_certificates(inputs: &[Input], out: &mut Vec<Finding>) {
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
                &Msg {
                    level: no_ca_level(tls),
                    ..NO_CA_DESTINATION
                },
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
                    &Msg {
                        level: no_ca_level(tls),
                        ..NO_CA_PORT
                    },
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
