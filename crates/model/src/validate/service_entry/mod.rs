//! ServiceEntry validation (Istio's webhook rules and messages), preceded by the CRD's
//! structural and CEL rules (which the API server applies first: when both layers catch the
//! same problem, only the CRD message is reported).
//!
//! [`crd`] also holds the API server's wording for CRD failures, shared by the Gateway and
//! Sidecar validators.

pub(crate) mod crd;

use std::collections::{BTreeMap, HashSet};

use self::crd::{Crd, crd_rules, required};
use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::service_entry::{Resolution, ServiceEntry, WorkloadEntry, WorkloadSelector};
use crate::validate::common::{
    Protocol, is_ip, validate_fqdn, validate_ip_subnet, validate_label_key,
    validate_partial_wildcard, validate_port, validate_port_name, validate_protocol,
    validate_wildcard_domain,
};

/// Label that opts a ServiceEntry out of automatic VIP allocation.
const AUTOALLOCATE_LABEL: &str = "networking.istio.io/enable-autoallocate-ip";
/// Label binding a service to a waypoint.
const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";
/// `PILOT_ENABLE_IP_AUTOALLOCATE` (on by default in the Istio snapshot egress follows).
const IP_AUTOALLOCATE_ENABLED: bool = true;

/// Validate a ServiceEntry.
pub fn validate(obj: &CustomObject<ServiceEntry>, r: &mut Report) {
    let Some(spec) = &obj.spec else {
        required(r, "spec");
        return;
    };
    let crd = crd_rules(spec, r);
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    webhook(spec, &crd, namespace, &labels, r);
}

fn webhook(
    spec: &ServiceEntry,
    crd: &Crd,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    r: &mut Report,
) {
    let resolution = spec.resolution_or_default();
    if let Some(sel) = &spec.workload_selector {
        if validate_alpha_workload_selector(r, "spec.workloadSelector", sel) {
            return;
        }
        if sel.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            r.warn(
                "spec.workloadSelector",
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    // "only one of WorkloadSelector or Endpoints is allowed in Service Entry" and "service entry
    // must have at least one host" are always preceded by their CRD equivalents.

    let hosts = spec.hosts();
    for (i, h) in hosts.iter().enumerate() {
        let path = idx("spec.hosts", i);
        if h == "*" {
            if !crd.wildcard_hosts.contains(&i) {
                r.error(path, format!("invalid host {h}"));
            }
            continue;
        }
        if let Err(e) = validate_wildcard_domain(h) {
            r.error(path.clone(), e);
        }
        if let Err(e) = validate_partial_wildcard(h) {
            if resolution == Resolution::DynamicDns {
                r.error(path, e);
            } else {
                r.warn(path, e);
            }
        }
    }

    for (i, a) in spec.addresses().iter().enumerate() {
        if let Err(e) = validate_ip_subnet(a) {
            r.error(idx("spec.addresses", i), e);
        }
    }
    // The CIDR/resolution rule is the CRD's, reported above.

    let auto_allocation = IP_AUTOALLOCATE_ENABLED
        && resolution != Resolution::None
        && !labels
            .get(AUTOALLOCATE_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        && spec.addresses().is_empty();
    let service_ports: HashSet<&str> = spec.ports().iter().map(|p| p.name()).collect();
    for (i, p) in spec.ports().iter().enumerate() {
        let path = idx("spec.ports", i);
        // Duplicate names and numbers are CRD rules ("Duplicate value", "port number cannot be
        // duplicated"); so are out-of-range numbers and target ports.
        if let Some(t) = p.target_port.filter(|t| *t != 0)
            && !crd.bad_target_ports.contains(&i)
            && let Err(e) = validate_port(i64::from(t))
        {
            r.error(join(&path, "targetPort"), e);
        }
        if spec.addresses().is_empty()
            && !auto_allocation
            && (p.protocol() == "" || p.protocol() == "TCP")
        {
            r.warn(
                path.clone(),
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        if p.name.is_some()
            && let Err(e) = validate_port_name(p.name())
        {
            r.error(join(&path, "name"), e);
        }
        if let Err(e) = validate_protocol(p.protocol()) {
            r.error(join(&path, "protocol"), e);
        }
        if let Some(n) = p.number
            && !crd.bad_port_numbers.contains(&i)
            && let Err(e) = validate_port(i64::from(n))
        {
            r.error(join(&path, "number"), e);
        }
    }

    match resolution {
        Resolution::None => {
            // Endpoints with NONE: the CRD's "NONE mode cannot set endpoints" fires first.
            if spec.workload_selector.is_some() {
                r.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, ep) in spec.endpoints().iter().enumerate() {
                static_endpoint(&idx("spec.endpoints", i), i, ep, &service_ports, crd, r);
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            dns(spec, resolution, &service_ports, crd, r)
        }
        Resolution::DynamicDns => dynamic_dns(spec, labels, r),
    }

    if resolution != Resolution::None
        && hosts.len() > 1
        && let Some(i) = spec.ports().iter().position(|p| {
            let proto = Protocol::parse(p.protocol());
            !proto.is_http() && !proto.is_tls()
        })
    {
        r.error(
            idx("spec.ports", i),
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
    }

    crate::validate::common::validate_export_to(
        r,
        "spec.exportTo",
        spec.export_to(),
        true,
        false,
        namespace,
    );
}

/// `validateWorkloadEntry(endpoint, servicePorts, allowFQDN=false)` for STATIC resolution.
fn static_endpoint(
    path: &str,
    i: usize,
    ep: &WorkloadEntry,
    service_ports: &HashSet<&str>,
    crd: &Crd,
    r: &mut Report,
) {
    let addr = ep.address();
    if addr.is_empty() {
        match ep.network.as_deref().filter(|n| !n.is_empty()) {
            None => {
                if !crd.no_address.contains(&i) {
                    r.error(path, "address is required");
                }
                return;
            }
            Some(n) => r.warn(path, format!("address is unset with network {n:?}")),
        }
    }
    let apath = join(path, "address");
    let unix = addr.starts_with("unix://");
    if unix {
        // The unix path rules and "unix endpoint … must not include ports" are the CRD's.
    } else if !addr.is_empty() && !is_ip(addr) {
        r.error(
            apath,
            format!("endpoint address {addr:?} is not a valid IP address"),
        );
    }
    endpoint_ports(path, i, ep, service_ports, crd, r);
    endpoint_labels(path, ep, r);
    if unix && service_ports.len() != 1 {
        r.error(path, "exactly 1 service port required for unix endpoints");
    }
}

fn endpoint_ports(
    path: &str,
    i: usize,
    ep: &WorkloadEntry,
    service_ports: &HashSet<&str>,
    crd: &Crd,
    r: &mut Report,
) {
    let ppath = join(path, "ports");
    for (name, port) in ep.ports.iter().flatten() {
        let key = (i, name.clone());
        if !service_ports.contains(name.as_str()) {
            r.error(
                join(&ppath, name),
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        if !crd.bad_ep_port_names.contains(&key)
            && let Err(e) = validate_port_name(name)
        {
            r.error(join(&ppath, name), e);
        }
        if !crd.bad_ep_port_values.contains(&key)
            && let Err(e) = validate_port(i64::from(*port))
        {
            r.error(join(&ppath, name), e);
        }
    }
}

/// Istio's `labels.Instance.Validate`.
fn endpoint_labels(path: &str, ep: &WorkloadEntry, r: &mut Report) {
    for (k, v) in ep.labels.iter().flatten() {
        let lpath = join(&join(path, "labels"), k);
        if k.is_empty() || validate_label_key(k).is_err() {
            r.error(lpath.clone(), format!("invalid tag key: {k:?}"));
        }
        if !is_label_value(v) {
            r.error(lpath, format!("invalid tag value: {v:?}"));
        }
    }
}

fn is_label_value(v: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    v.is_empty()
        || (v.chars().all(ok_char)
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn dns(
    spec: &ServiceEntry,
    resolution: Resolution,
    service_ports: &HashSet<&str>,
    crd: &Crd,
    r: &mut Report,
) {
    let mode = resolution.as_str();
    if spec.endpoints().is_empty() {
        for (i, h) in spec.hosts().iter().enumerate() {
            if let Err(e) = validate_fqdn(h) {
                r.error(
                    idx("spec.hosts", i),
                    format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {mode}, {e}"),
                );
            }
        }
    }
    // More than one DNS_ROUND_ROBIN endpoint: the CRD rule fires first.
    for (i, ep) in spec.endpoints().iter().enumerate() {
        let path = idx("spec.endpoints", i);
        let addr = ep.address();
        if !crd.no_address.contains(&i) && !is_ip(addr) && validate_fqdn(addr).is_err() {
            r.error(
                join(&path, "address"),
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
        endpoint_labels(&path, ep, r);
        endpoint_ports(&path, i, ep, service_ports, crd, r);
    }
    if !spec.addresses().is_empty()
        && spec.hosts().len() > 1
        && spec
            .ports()
            .iter()
            .any(|p| Protocol::parse(p.protocol()).is_tcp())
    {
        r.warn(
            "spec.hosts",
            "service entry can not have more than one host specified simultaneously with address and tcp port",
        );
    }
}

/// DYNAMIC_DNS (newer than most Istio releases): wildcard hosts only, no addresses, no
/// endpoints, HTTP/TLS/GRPC/HTTP2 ports, and not MESH_INTERNAL behind a waypoint.
fn dynamic_dns(spec: &ServiceEntry, labels: &BTreeMap<String, String>, r: &mut Report) {
    let mode = Resolution::DynamicDns.as_str();
    for (i, h) in spec.hosts().iter().enumerate() {
        if !h.starts_with('*') {
            r.error(
                idx("spec.hosts", i),
                format!("host must be wildcarded for resolution mode {mode}"),
            );
        }
    }
    if !spec.addresses().is_empty() {
        r.error(
            "spec.addresses",
            format!("addresses are not allowed for resolution mode {mode}"),
        );
    }
    if !spec.endpoints().is_empty() {
        r.error(
            "spec.endpoints",
            format!("endpoints are not allowed for resolution mode {mode}"),
        );
    }
    for (i, p) in spec.ports().iter().enumerate() {
        let proto = Protocol::parse(p.protocol());
        if !matches!(
            proto,
            Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
        ) {
            r.error(
                join(&idx("spec.ports", i), "protocol"),
                format!(
                    "only HTTP, TLS, GRPC and HTTP2 ports are supported for resolution mode {mode}"
                ),
            );
        }
    }
    if spec.location_or_default() == crate::resources::service_entry::Location::MeshInternal
        && labels.contains_key(USE_WAYPOINT_LABEL)
    {
        r.error(
            "spec.location",
            format!(
                "MESH_INTERNAL location is not supported with a waypoint for resolution mode {mode}"
            ),
        );
    }
}

/// Istio's `ValidateAlphaWorkloadSelector`: errors for empty keys and wildcards (true when any
/// was found: Istio then reports nothing else).
pub(crate) fn validate_alpha_workload_selector(
    r: &mut Report,
    path: &str,
    sel: &WorkloadSelector,
) -> bool {
    crate::validate::common::validate_selector_labels(
        r,
        &join(path, "labels"),
        sel.labels.iter().flatten(),
    )
}
