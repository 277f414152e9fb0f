//! Istio's `virtualservice.DestinationHostAnalyzer`: destination hosts no service defines
//! (IST0101), ports they lack or must name (IST0101, IST0112), and gateway routes without a
//! subset to a host another VirtualService splits by subset (IST0140).

use serde_json::Value;

use super::messages::{
    INGRESS_ROUTE_RULES_NOT_AFFECTED, PORT_SELECTOR_REQUIRED, REFERENCED_RESOURCE_NOT_FOUND,
};
use super::registry::{Registry, Service};
use super::virtualservice::{Destination, mirror_destinations, route_destinations};
use super::{array, go_list, of_kind, quote, report, str_of, strings};
use crate::{Finding, Input};

/// A destination's port against its service: none given where the service has several ports
/// (IST0112), or one the service lacks (IST0101 `host:port`).
fn check_ports(out: &mut Vec<Finding>, vs: &Input, d: &Destination<'_>, service: &Service) {
    let host = str_of(d.value, "host");
    match d.value.get("port").filter(|p| !p.is_null()) {
        None => {
            if service.ports.len() > 1 {
                report(
                    out,
                    &PORT_SELECTOR_REQUIRED,
                    vs,
                    &d.path,
                    format!(
                        "This VirtualService routes to a service {} that exposes multiple ports {}. Specifying a port in the destination is required to disambiguate.",
                        quote(host),
                        go_list(&service.ports.iter().map(u64::to_string).collect::<Vec<_>>())
                    ),
                );
            }
        }
        Some(port) => {
            let number = port.get("number").and_then(Value::as_u64).unwrap_or(0);
            if !service.ports.contains(&number) {
                report(
                    out,
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    vs,
                    &d.path,
                    format!(
                        "Referenced host:port not found: {}",
                        quote(&format!("{host}:{number}"))
                    ),
                );
            }
        }
    }
}

/// The VirtualServices with an HTTP route destination that names a subset and one of the
/// VirtualService's own hosts, with those destinations' hosts.
fn subset_destinations(inputs: &[Input]) -> Vec<(&Input, Vec<&str>)> {
    let mut out = Vec::new();
    for vs in of_kind(inputs, "VirtualService") {
        let hosts = strings(vs.get(&["spec", "hosts"]));
        let mut dests = Vec::new();
        for rule in array(vs.get(&["spec", "http"])) {
            for route in array(rule.get("route")) {
                let d = route.get("destination").unwrap_or(&Value::Null);
                let host = str_of(d, "host");
                if !str_of(d, "subset").is_empty() && hosts.iter().any(|h| h == host) {
                    dests.push(host);
                }
            }
        }
        if !dests.is_empty() {
            out.push((vs, dests));
        }
    }
    out
}

/// `virtualservice.DestinationHostAnalyzer`. Each route and mirror destination host must be a
/// ServiceEntry host or Service visible from the VirtualService's namespace (for its
/// `exportTo`): IST0101 `host` / `mirror host`; then its port is checked (IST0112, IST0101
/// `host:port`). A VirtualService bound to gateways with an HTTP route without subset to a host
/// that another VirtualService routes by subset: IST0140, per such VirtualService.
pub(super) fn destination_hosts(inputs: &[Input], out: &mut Vec<Finding>) {
    let registry = Registry::new(inputs);
    let with_subsets = subset_destinations(inputs);
    for vs in of_kind(inputs, "VirtualService") {
        let export_to = strings(vs.get(&["spec", "exportTo"]));
        for (what, dests) in [
            ("host", route_destinations(vs)),
            ("mirror host", mirror_destinations(vs)),
        ] {
            for d in &dests {
                let host = str_of(d.value, "host");
                match registry.lookup(&vs.namespace, &export_to, host) {
                    Some(service) => check_ports(out, vs, d, service),
                    None => report(
                        out,
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        vs,
                        &d.path,
                        format!("Referenced {what} not found: {}", quote(host)),
                    ),
                }
            }
        }
        if strings(vs.get(&["spec", "gateways"])).is_empty() {
            continue;
        }
        for (i, rule) in array(vs.get(&["spec", "http"])).iter().enumerate() {
            for (j, route) in array(rule.get("route")).iter().enumerate() {
                let d = route.get("destination").unwrap_or(&Value::Null);
                if !str_of(d, "subset").is_empty() {
                    continue;
                }
                let host = str_of(d, "host");
                for (other, hosts) in &with_subsets {
                    for _ in hosts.iter().filter(|h| **h == host) {
                        report(
                            out,
                            &INGRESS_ROUTE_RULES_NOT_AFFECTED,
                            vs,
                            &format!("spec.http[{i}].route[{j}].destination.host"),
                            format!(
                                "Subset in virtual service {} has no effect on ingress gateway {} requests",
                                other.full_name(),
                                vs.full_name()
                            ),
                        );
                    }
                }
            }
        }
    }
}
