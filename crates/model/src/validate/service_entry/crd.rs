//! The ServiceEntry CRD's structural and CEL rules (applied by the API server before the
//! webhook), and the API server's wording for such failures, shared by the Gateway and
//! Sidecar validators.

use std::collections::{BTreeSet, HashSet};

use crate::diag::{Report, idx, join};
use crate::resources::service_entry::{Resolution, ServiceEntry, WorkloadEntry};
use crate::validate::common::is_dns1123_label;

/// What the CRD layer already reported, so the webhook layer does not repeat it.
#[derive(Default)]
pub(super) struct Crd {
    /// Host indexes with "hostname cannot be wildcard".
    pub(super) wildcard_hosts: HashSet<usize>,
    /// Port indexes whose number is out of range.
    pub(super) bad_port_numbers: HashSet<usize>,
    /// Port indexes whose targetPort is out of range.
    pub(super) bad_target_ports: HashSet<usize>,
    /// Endpoint indexes with "Address is required".
    pub(super) no_address: HashSet<usize>,
    /// (endpoint, port name) pairs whose port value is out of range.
    pub(super) bad_ep_port_values: HashSet<(usize, String)>,
    /// (endpoint, port name) pairs whose name is invalid.
    pub(super) bad_ep_port_names: HashSet<(usize, String)>,
}

/// The CRD rules of a ServiceEntry spec.
pub(super) fn crd_rules(spec: &ServiceEntry, r: &mut Report) -> Crd {
    let mut crd = Crd::default();
    let resolution = spec.resolution_or_default();
    match &spec.hosts {
        None => required(r, "spec.hosts"),
        Some(hosts) => {
            min_items(r, "spec.hosts", hosts.len(), 1);
            max_items(r, "spec.hosts", hosts.len(), 256);
            if resolution != Resolution::DynamicDns {
                for (i, h) in hosts.iter().enumerate() {
                    if h == "*" {
                        crd.wildcard_hosts.insert(i);
                        cel_object(
                            r,
                            &idx("spec.hosts", i),
                            "spec",
                            "hostname cannot be wildcard",
                        );
                    }
                }
            }
        }
    }
    let addresses = spec.addresses();
    max_items(r, "spec.addresses", addresses.len(), 256);
    for (i, a) in addresses.iter().enumerate() {
        max_length(r, &idx("spec.addresses", i), a, 64);
    }
    if let Some(i) = addresses.iter().position(|a| a.contains('/'))
        && !matches!(resolution, Resolution::None | Resolution::Static)
    {
        cel_object(
            r,
            &idx("spec.addresses", i),
            "spec",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
    let ports = spec.ports();
    max_items(r, "spec.ports", ports.len(), 256);
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = idx("spec.ports", i);
        match &p.name {
            None => required(r, &join(&path, "name")),
            Some(n) => {
                max_length(r, &join(&path, "name"), n, 256);
                if !names.insert(n.as_str()) {
                    r.error(
                        path.clone(),
                        format!(
                            "{path}: Duplicate value: map[string]interface {{}}{{\"name\":{n:?}}}"
                        ),
                    );
                }
            }
        }
        match p.number {
            None => required(r, &join(&path, "number")),
            Some(n) if !(1..=65535).contains(&n) => {
                crd.bad_port_numbers.insert(i);
                cel_value(
                    r,
                    &join(&path, "number"),
                    &n.to_string(),
                    "port must be between 1-65535",
                );
            }
            Some(_) => {}
        }
        if let Some(t) = p.target_port.filter(|t| !(1..=65535).contains(t)) {
            crd.bad_target_ports.insert(i);
            cel_value(
                r,
                &join(&path, "targetPort"),
                &t.to_string(),
                "port must be between 1-65535",
            );
        }
        if let Some(proto) = &p.protocol {
            max_length(r, &join(&path, "protocol"), proto, 256);
        }
    }
    let numbers: Vec<u32> = ports.iter().filter_map(|p| p.number).collect();
    let unique: BTreeSet<u32> = numbers.iter().copied().collect();
    if unique.len() != numbers.len() {
        cel_array(r, "spec.ports", "port number cannot be duplicated");
    }
    if spec.workload_selector.is_some() && spec.endpoints.is_some() {
        cel_object(
            r,
            "spec.workloadSelector",
            "spec",
            "only one of WorkloadSelector or Endpoints can be set",
        );
    }
    if resolution == Resolution::None && spec.endpoints.is_some() {
        cel_object(
            r,
            "spec.endpoints",
            "spec",
            "NONE mode cannot set endpoints",
        );
    }
    if resolution == Resolution::DnsRoundRobin && spec.endpoints().len() > 1 {
        cel_object(
            r,
            "spec.endpoints",
            "spec",
            "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
        );
    }
    max_items(r, "spec.endpoints", spec.endpoints().len(), 4096);
    for (i, ep) in spec.endpoints().iter().enumerate() {
        workload_entry_crd(&idx("spec.endpoints", i), i, ep, &mut crd, r);
    }
    crd
}

/// The CRD rules of `WorkloadEntry` (`workload_entry.proto`).
fn workload_entry_crd(path: &str, i: usize, ep: &WorkloadEntry, crd: &mut Crd, r: &mut Report) {
    if ep.address.is_none() && ep.network.is_none() {
        crd.no_address.insert(i);
        cel_object(r, path, path, "Address is required");
    }
    if let Some(a) = &ep.address {
        let apath = join(path, "address");
        max_length(r, &apath, a, 256);
        if let Some(rest) = a.strip_prefix("unix://") {
            if !(rest.starts_with('/') || rest.starts_with('@')) {
                cel_value(
                    r,
                    &apath,
                    &format!("{a:?}"),
                    "UDS must be an absolute path or abstract socket",
                );
            }
            if a.ends_with('/') {
                cel_value(r, &apath, &format!("{a:?}"), "UDS may not be a dir");
            }
            if ep.ports.is_some() {
                cel_object(r, path, path, "UDS may not include ports");
            }
        }
    }
    if let Some(ports) = &ep.ports {
        let ppath = join(path, "ports");
        max_properties(r, &ppath, ports.len(), 128);
        let mut bad_name = false;
        for (name, port) in ports {
            if !(1..=65535).contains(port) {
                crd.bad_ep_port_values.insert((i, name.clone()));
                r.error(
                    join(&ppath, name),
                    format!("{ppath}[{name}]: Invalid value: {port}: port must be between 1-65535"),
                );
            }
            if !(name.len() < 63 && is_dns1123_label(name)) {
                crd.bad_ep_port_names.insert((i, name.clone()));
                bad_name = true;
            }
        }
        if bad_name {
            cel_object(r, &ppath, &ppath, "port name must be valid");
        }
    }
    if let Some(labels) = &ep.labels {
        max_properties(r, &join(path, "labels"), labels.len(), 256);
    }
    for (field, value, max) in [
        ("network", &ep.network, 2048),
        ("locality", &ep.locality, 2048),
        ("serviceAccount", &ep.service_account, 253),
    ] {
        if let Some(v) = value {
            max_length(r, &join(path, field), v, max);
        }
    }
}

// ---- The API server's wording for CRD structural and CEL failures. ----

/// `<path>: Required value`.
pub(crate) fn required(r: &mut Report, path: &str) {
    r.error(path, format!("{path}: Required value"));
}

/// MaxItems: `<path>: Too many: <n>: must have at most <max> items`.
pub(crate) fn max_items(r: &mut Report, path: &str, n: usize, max: usize) {
    if n > max {
        r.error(
            path,
            format!("{path}: Too many: {n}: must have at most {max} items"),
        );
    }
}

/// MaxProperties, worded like MaxItems.
pub(crate) fn max_properties(r: &mut Report, path: &str, n: usize, max: usize) {
    max_items(r, path, n, max);
}

/// MinItems: `<path>: Invalid value: …: <path> in body should have at least <min> items`.
pub(crate) fn min_items(r: &mut Report, path: &str, n: usize, min: usize) {
    if n < min {
        let shown = if n == 0 {
            "[]interface {}{}".to_owned()
        } else {
            format!("{n}")
        };
        r.error(
            path,
            format!(
                "{path}: Invalid value: {shown}: {path} in body should have at least {min} items"
            ),
        );
    }
}

/// MaxLength: `<path>: Too long: may not be more than <max> bytes`.
pub(crate) fn max_length(r: &mut Report, path: &str, s: &str, max: usize) {
    if s.len() > max {
        r.error(
            path,
            format!("{path}: Too long: may not be more than {max} bytes"),
        );
    }
}

/// A CEL rule on an object: `<at>: Invalid value: "object": <msg>`, placed on `field`.
pub(crate) fn cel_object(r: &mut Report, field: &str, at: &str, msg: &str) {
    r.error(field, format!("{at}: Invalid value: \"object\": {msg}"));
}

/// A CEL rule on a list: `<path>: Invalid value: "array": <msg>`.
pub(crate) fn cel_array(r: &mut Report, path: &str, msg: &str) {
    r.error(path, format!("{path}: Invalid value: \"array\": {msg}"));
}

/// A CEL rule on a scalar: `<path>: Invalid value: <shown>: <msg>`.
pub(crate) fn cel_value(r: &mut Report, path: &str, shown: &str, msg: &str) {
    r.error(path, format!("{path}: Invalid value: {shown}: {msg}"));
}
