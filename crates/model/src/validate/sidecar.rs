//! Sidecar validation (Istio's webhook rules and messages), preceded by the CRD's required
//! fields (reported instead of the webhook's when both catch the same problem).

use std::collections::{BTreeMap, HashSet};

use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::gateway::TlsMode;
use crate::resources::sidecar::{
    CaptureMode, Destination, IstioEgressListener, IstioIngressListener, OutboundTrafficPolicy,
    OutboundTrafficPolicyMode, Sidecar, SidecarPort,
};
use crate::validate::common::{
    Protocol, is_dns1123_label, validate_fqdn, validate_ip_address,
    validate_namespace_slash_wildcard_hostname, validate_port, validate_port_name,
    validate_protocol, validate_wildcard_domain,
};
use crate::validate::destination_rule::policy::connection_pool;
use crate::validate::gateway::{UNIX_PREFIX, validate_server_tls, validate_unix_address};
use crate::validate::service_entry::crd::required;
use crate::validate::service_entry::validate_alpha_workload_selector;

/// Validate a Sidecar.
pub fn validate(obj: &CustomObject<Sidecar>, r: &mut Report) {
    let empty = Sidecar::default();
    let spec = obj.spec.as_ref().unwrap_or(&empty);
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    crd_rules(spec, r);

    if let Some(sel) = &spec.workload_selector {
        if validate_alpha_workload_selector(r, "spec.workloadSelector", sel) {
            return;
        }
        if sel.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            r.warn(
                "spec.workloadSelector",
                "sidecar: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    if spec.egress().is_empty()
        && spec.ingress().is_empty()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        r.error("spec", "sidecar: empty configuration provided");
        return;
    }

    let mut ports = HashSet::new();
    for (i, l) in spec.ingress().iter().enumerate() {
        ingress_listener(r, &idx("spec.ingress", i), l, &mut ports);
    }
    if let Some(cp) = &spec.inbound_connection_pool {
        connection_pool(r, "spec.inboundConnectionPool", cp);
    }

    let mut ports = HashSet::new();
    let mut sockets = HashSet::new();
    let mut catch_all = false;
    let last = spec.egress().len().saturating_sub(1);
    for (i, l) in spec.egress().iter().enumerate() {
        let path = idx("spec.egress", i);
        match &l.port {
            None if catch_all => {
                r.error(path, "sidecar: egress can have only one listener with empty port");
                continue;
            }
            None if i == last => catch_all = true,
            None => r.error(
                path.clone(),
                "sidecar: the egress listener with empty port should be the last listener in the list",
            ),
            Some(port) => egress_port(r, &path, l, port, &mut ports, &mut sockets),
        }
        egress_hosts(r, &path, l, namespace);
    }

    if let Some(tp) = &spec.outbound_traffic_policy {
        outbound_traffic_policy(r, "spec.outboundTrafficPolicy", tp);
    }
}

/// The CRD's required fields.
fn crd_rules(spec: &Sidecar, r: &mut Report) {
    for (i, l) in spec.ingress().iter().enumerate() {
        if l.port.is_none() {
            required(r, &join(&idx("spec.ingress", i), "port"));
        }
    }
    for (i, l) in spec.egress().iter().enumerate() {
        if l.hosts.is_none() {
            required(r, &join(&idx("spec.egress", i), "hosts"));
        }
    }
    if let Some(proxy) = spec
        .outbound_traffic_policy
        .as_ref()
        .and_then(|t| t.egress_proxy.as_ref())
        && proxy.host.is_none()
    {
        required(r, "spec.outboundTrafficPolicy.egressProxy.host");
    }
}

fn ingress_listener(
    r: &mut Report,
    path: &str,
    l: &IstioIngressListener,
    ports: &mut HashSet<u32>,
) {
    // A missing port is the CRD's "Required value".
    let Some(port) = &l.port else { return };
    let ppath = join(path, "port");
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            join(&ppath, "targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    port_name_and_protocol(r, &ppath, port);
    if let Err(e) = validate_port(i64::from(port.number())) {
        r.error(join(&ppath, "number"), e);
    }
    let bind = l.bind.as_deref().unwrap_or_default();
    if !bind.is_empty()
        && let Err(e) = validate_ip_address(bind)
    {
        r.error(join(path, "bind"), e);
    }
    if !ports.insert(port.number()) {
        r.error(
            join(&ppath, "number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
    if let Some(ep) = l.default_endpoint.as_deref().filter(|e| !e.is_empty()) {
        default_endpoint(r, &join(path, "defaultEndpoint"), ep);
    }
    if let Some(tls) = &l.tls {
        let tpath = join(path, "tls");
        let checks = [
            (
                "subjectAltNames",
                tls.subject_alt_names
                    .as_ref()
                    .is_some_and(|v| !v.is_empty()),
                "sidecar: subjectAltNames is not supported in ingress tls",
            ),
            (
                "httpsRedirect",
                tls.https_redirect(),
                "sidecar: httpsRedirect is not supported",
            ),
            (
                "credentialName",
                tls.credential_name.as_ref().is_some_and(|v| !v.is_empty()),
                "sidecar: credentialName is not currently supported",
            ),
            (
                "credentialNames",
                tls.credential_names.as_ref().is_some_and(|v| !v.is_empty()),
                "sidecar: credentialNames is not currently supported",
            ),
            (
                "tlsCertificates",
                tls.tls_certificates.as_ref().is_some_and(|v| !v.is_empty()),
                "sidecar: tls_certificates is not currently supported",
            ),
        ];
        for (field, bad, msg) in checks {
            if bad {
                r.error(join(&tpath, field), msg);
            }
        }
        let mode = tls.mode_or_default();
        if matches!(mode, TlsMode::IstioMutual | TlsMode::AutoPassthrough) {
            r.error(
                join(&tpath, "mode"),
                format!(
                    "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                    mode.as_str()
                ),
            );
        }
        if !Protocol::parse(port.protocol()).is_tls() {
            r.error(
                tpath.clone(),
                "server cannot have TLS settings for non HTTPS/TLS ports",
            );
        }
        validate_server_tls(r, &tpath, tls);
    }
    if let Some(cp) = &l.connection_pool {
        let cpath = join(path, "connectionPool");
        connection_pool(r, &cpath, cp);
        if cp.http.is_some() && !Protocol::parse(port.protocol()).is_http() {
            r.warn(
                join(&cpath, "http"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    port.number(),
                    port.name(),
                    port.protocol()
                ),
            );
        }
    }
}

/// Port name (optional, validated when set) and protocol.
fn port_name_and_protocol(r: &mut Report, ppath: &str, port: &SidecarPort) {
    if !port.name().is_empty()
        && let Err(e) = validate_port_name(port.name())
    {
        r.error(join(ppath, "name"), e);
    }
    if let Err(e) = validate_protocol(port.protocol()) {
        r.error(join(ppath, "protocol"), e);
    }
}

/// `defaultEndpoint`: `127.0.0.1:<port>`, `0.0.0.0:<port>`, `[::1]:<port>`, `[::]:<port>` or
/// `unix://<path>`.
fn default_endpoint(r: &mut Report, path: &str, ep: &str) {
    if let Some(socket) = ep.strip_prefix(UNIX_PREFIX) {
        if let Err(e) = validate_unix_address(socket) {
            r.error(path, e);
        }
        return;
    }
    let (host, port) = match split_host_port(ep) {
        Ok(hp) => hp,
        Err(e) => {
            r.error(path, e);
            (String::new(), String::new())
        }
    };
    if !host.is_empty() && !["127.0.0.1", "0.0.0.0", "::1", "::"].contains(&host.as_str()) {
        r.error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        );
    }
    match go_atoi(&port) {
        Ok(n) => {
            if let Err(e) = validate_port(n) {
                r.error(path, e);
            }
        }
        Err(e) => r.error(
            path,
            format!("sidecar: defaultEndpoint port ({port}) is not a number: {e}"),
        ),
    }
}

/// Go's `net.SplitHostPort`, with its error texts.
fn split_host_port(hp: &str) -> Result<(String, String), String> {
    let err = |why: &str| Err(format!("address {hp}: {why}"));
    let Some(i) = hp.rfind(':') else {
        return err("missing port in address");
    };
    let (host, j, k);
    if hp.starts_with('[') {
        let Some(end) = hp.find(']') else {
            return err("missing ']' in address");
        };
        if end + 1 == hp.len() {
            return err("missing port in address");
        }
        if end + 1 != i {
            return if hp.as_bytes().get(end + 1) == Some(&b':') {
                err("too many colons in address")
            } else {
                err("missing port in address")
            };
        }
        host = &hp[1..end];
        (j, k) = (1, end + 1);
    } else {
        host = &hp[..i];
        if host.contains(':') {
            return err("too many colons in address");
        }
        (j, k) = (0, 0);
    }
    if hp[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hp[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host.to_owned(), hp[i + 1..].to_owned()))
}

/// Go's `strconv.Atoi`, with its error texts.
fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// `validateSidecarEgressPortBindAndCaptureMode` plus the uniqueness of ports and sockets.
fn egress_port(
    r: &mut Report,
    path: &str,
    l: &IstioEgressListener,
    port: &SidecarPort,
    ports: &mut HashSet<u32>,
    sockets: &mut HashSet<String>,
) {
    let ppath = join(path, "port");
    let bind = l.bind.as_deref().unwrap_or_default();
    let bpath = join(path, "bind");
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            join(&ppath, "targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    port_name_and_protocol(r, &ppath, port);
    if port.number() == 0 {
        match bind.strip_prefix(UNIX_PREFIX) {
            None => r.error(
                bpath,
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
            Some(socket) => {
                if let Err(e) = validate_unix_address(socket) {
                    r.error(bpath, e);
                }
            }
        }
        if !matches!(
            l.capture_mode.unwrap_or_default(),
            CaptureMode::Default | CaptureMode::None
        ) {
            r.error(
                join(path, "captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
        if !sockets.insert(bind.to_owned()) {
            r.error(
                join(path, "bind"),
                "sidecar: unix domain socket values for listeners must be unique",
            );
        }
    } else {
        if let Err(e) = validate_port(i64::from(port.number())) {
            r.error(join(&ppath, "number"), e);
        }
        if !bind.is_empty()
            && let Err(e) = validate_ip_address(bind)
        {
            r.error(bpath, e);
        }
        if !ports.insert(port.number()) {
            r.error(
                join(&ppath, "number"),
                "sidecar: ports on IP bound listeners must be unique",
            );
        }
    }
}

/// Egress hosts: `namespace/dnsName`, duplicates and `*/*` beside others are warnings.
fn egress_hosts(r: &mut Report, path: &str, l: &IstioEgressListener, namespace: &str) {
    let hpath = join(path, "hosts");
    let Some(hosts) = &l.hosts else { return };
    if hosts.is_empty() {
        r.error(
            hpath,
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_ns: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (j, host) in hosts.iter().enumerate() {
        let at = idx(&hpath, j);
        if let Some((ns, svc)) = host.split_once('/') {
            let ns = if ns == "." { namespace } else { ns };
            let seen = by_ns.entry(ns).or_default();
            let duplicate = if svc == "*" {
                !seen.is_empty()
            } else {
                seen.contains(svc) || seen.contains("*")
            };
            if duplicate {
                r.warn(at.clone(), format!("duplicated egress host: {host}"));
            }
            seen.insert(svc);
        }
        for e in validate_namespace_slash_wildcard_hostname(host, false, false) {
            r.error(at.clone(), e);
        }
    }
    if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
        r.warn(
            hpath,
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}

/// `validateSidecarOutboundTrafficPolicy`.
fn outbound_traffic_policy(r: &mut Report, path: &str, tp: &OutboundTrafficPolicy) {
    let mode = tp.mode_or_default();
    if mode == OutboundTrafficPolicyMode::AllowAnyDynamicDns {
        r.error(
            join(path, "mode"),
            "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource",
        );
    }
    let Some(proxy) = &tp.egress_proxy else {
        return;
    };
    let ppath = join(path, "egressProxy");
    if mode != OutboundTrafficPolicyMode::AllowAny {
        r.error(
            ppath,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    let host = proxy.host.as_deref().unwrap_or_default();
    if proxy.host.is_some()
        && let Err(e) = validate_fqdn(host)
    {
        r.error(join(&ppath, "host"), e);
    }
    if proxy.port.is_none() {
        r.error(
            join(&ppath, "port"),
            "sidecar: egress_proxy port must be non-nil",
        );
        return;
    }
    validate_destination(r, &ppath, proxy);
}

/// `validateDestination`.
fn validate_destination(r: &mut Report, path: &str, d: &Destination) {
    let host = d.host.as_deref().unwrap_or_default();
    if d.host.is_some() {
        if host == "*" {
            r.error(
                join(path, "host"),
                format!("invalid destination host {host}"),
            );
        } else if let Err(e) = validate_wildcard_domain(host) {
            r.error(join(path, "host"), e);
        }
    }
    if let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty())
        && !is_dns1123_label(subset)
    {
        r.error(
            join(path, "subset"),
            format!("subset name is invalid: {subset}"),
        );
    }
    if let Some(port) = &d.port {
        crate::validate::virtual_service::util::port(
            r,
            &join(path, "port.number"),
            port.number.unwrap_or_default(),
        );
    }
}
