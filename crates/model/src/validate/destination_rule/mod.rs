//! DestinationRule validation (Istio's webhook rules and messages, `VV:635-663`,
//! `VV:1035-1300`, `AV:281-335`), plus the CRD's structural rules (`Required value`, bounds,
//! `oneOf`).

pub(crate) mod policy;

use std::collections::HashSet;

use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::destination_rule::{
    ClientTlsMode, ClientTlsSettings, DestinationRule, PortTrafficPolicy, TrafficPolicy,
    TunnelSettings, WorkloadSelector,
};
use crate::validate::common;
use crate::validate::virtual_service::util;

/// Validate a DestinationRule.
pub fn validate(obj: &CustomObject<DestinationRule>, r: &mut Report) {
    let default = DestinationRule::default();
    let dr = obj.spec.as_ref().unwrap_or(&default);
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();

    match dr.host.as_deref() {
        // The CRD requires `host` within a spec; without any spec the webhook sees "".
        None if obj.spec.is_some() => util::required(r, "spec.host"),
        host => {
            if let Err(e) = common::validate_wildcard_domain(host.unwrap_or_default()) {
                r.error("spec.host", e);
            }
        }
    }
    if let Some(tp) = &dr.traffic_policy {
        traffic_policy(r, "spec.trafficPolicy", namespace, tp);
    }

    let mut names: HashSet<&str> = HashSet::new();
    for (i, subset) in dr.subsets().iter().enumerate() {
        let path = idx("spec.subsets", i);
        match subset.name.as_deref() {
            None => util::required(r, &join(&path, "name")),
            Some(name) => {
                if !names.insert(name) {
                    r.error(
                        join(&path, "name"),
                        format!("duplicate subset names: {name}"),
                    );
                }
                if let Err(e) = util::subset_name(name) {
                    r.error(join(&path, "name"), e);
                }
            }
        }
        util::labels(r, &join(&path, "labels"), subset.labels.as_ref());
        if let Some(tp) = &subset.traffic_policy {
            traffic_policy(r, &join(&path, "trafficPolicy"), namespace, tp);
        }
    }

    crate::validate::common::validate_export_to(
        r,
        "spec.exportTo",
        dr.export_to(),
        false,
        dr.workload_selector.is_some(),
        namespace,
    );
    if let Some(ws) = &dr.workload_selector {
        workload_selector(r, "spec.workloadSelector", ws);
    }
}

/// The CRD's rules on `workloadSelector.matchLabels` (CEL: no wildcard in keys or values, no
/// empty key; values at most 63 characters, at most 4096 labels), then the webhook's
/// `validateWorkloadSelector` (`type.v1beta1.WorkloadSelector`).
fn workload_selector(r: &mut Report, path: &str, ws: &WorkloadSelector) {
    let labels = ws.match_labels.as_ref();
    crate::validate::security::policy::match_labels_crd(r, path, labels);
    crate::validate::common::validate_selector_labels(
        r,
        &join(path, "matchLabels"),
        labels.into_iter().flatten(),
    );
    if labels.is_none_or(|l| l.is_empty()) {
        r.warn(path, "workload selector specified without labels");
    }
}

/// `validateTrafficPolicy`.
fn traffic_policy(r: &mut Report, path: &str, namespace: &str, tp: &TrafficPolicy) {
    if tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings().is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        r.error(path, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        r.error(path, "tunnel and proxyProtocol must not be set together");
        return;
    }
    if let Some(od) = &tp.outlier_detection {
        policy::outlier_detection(r, &join(path, "outlierDetection"), od);
    }
    if let Some(cp) = &tp.connection_pool {
        policy::connection_pool(r, &join(path, "connectionPool"), cp);
    }
    if let Some(lb) = &tp.load_balancer {
        policy::load_balancer(
            r,
            &join(path, "loadBalancer"),
            lb,
            tp.outlier_detection.is_some(),
        );
    }
    if let Some(tls) = &tp.tls {
        client_tls(r, &join(path, "tls"), namespace, tls);
    }
    for (i, p) in tp.port_level_settings().iter().enumerate() {
        port_policy(r, &idx(&join(path, "portLevelSettings"), i), namespace, p);
    }
    if let Some(t) = &tp.tunnel {
        tunnel(r, &join(path, "tunnel"), t);
    }
    if let Some(rb) = &tp.retry_budget {
        let rpath = join(path, "retryBudget");
        util::duration(
            r,
            &join(&rpath, "budgetInterval"),
            rb.budget_interval.as_ref(),
        );
    }
}

/// `validatePortTrafficPolicies` for one entry.
fn port_policy(r: &mut Report, path: &str, namespace: &str, p: &PortTrafficPolicy) {
    match &p.port {
        None => r.error(path, "portTrafficPolicy must have valid port"),
        Some(port) => {
            if let Some(n) = port.number {
                util::uint32(r, &join(&join(path, "port"), "number"), n);
            }
        }
    }
    if p.outlier_detection.is_none()
        && p.connection_pool.is_none()
        && p.load_balancer.is_none()
        && p.tls.is_none()
    {
        r.error(path, "port traffic policy must have at least one field");
        return;
    }
    if let Some(od) = &p.outlier_detection {
        policy::outlier_detection(r, &join(path, "outlierDetection"), od);
    }
    if let Some(cp) = &p.connection_pool {
        policy::connection_pool(r, &join(path, "connectionPool"), cp);
    }
    if let Some(lb) = &p.load_balancer {
        policy::load_balancer(
            r,
            &join(path, "loadBalancer"),
            lb,
            p.outlier_detection.is_some(),
        );
    }
    if let Some(tls) = &p.tls {
        client_tls(r, &join(path, "tls"), namespace, tls);
    }
}

/// `validateTunnelSettings`, plus the CRD's required `targetHost` / `targetPort`.
fn tunnel(r: &mut Report, path: &str, t: &TunnelSettings) {
    if let Some(p) = t.protocol.as_deref().filter(|p| !p.is_empty())
        && p != "CONNECT"
        && p != "POST"
    {
        r.error(
            join(path, "protocol"),
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
        );
    }
    match t.target_host.as_deref() {
        None => util::required(r, &join(path, "targetHost")),
        Some(h) => {
            if let Err(fqdn) = common::validate_fqdn(h)
                && !common::is_ip(h)
            {
                r.error(
                    join(path, "targetHost"),
                    format!("tunnel target host must be valid FQDN or IP address: {fqdn}; {h} is not a valid IP"),
                );
            }
        }
    }
    match t.target_port {
        None => util::required(r, &join(path, "targetPort")),
        Some(p) => {
            if util::uint32(r, &join(path, "targetPort"), p)
                && let Err(e) = common::validate_port(p)
            {
                r.error(
                    join(path, "targetPort"),
                    format!("tunnel target port is invalid: {e}"),
                );
            }
        }
    }
}

/// `ValidateTLS` (client side).
fn client_tls(r: &mut Report, path: &str, namespace: &str, tls: &ClientTlsSettings) {
    let set = |s: &Option<String>| !s.as_deref().unwrap_or_default().is_empty();
    let credential = tls.credential_name.as_deref().unwrap_or_default();
    if let Some(rest) = credential.strip_prefix("configmap://") {
        let field = join(path, "credentialName");
        let parts: Vec<&str> = rest.split('/').collect();
        let ns = match parts.as_slice() {
            [name] if !name.is_empty() => Ok(namespace),
            [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(*ns),
            _ => Err(format!("invalid resource name {credential:?}")),
        };
        match ns {
            Err(e) => r.error(field, format!("invalid configmap:// credentialName: {e}")),
            Ok(ns) if ns != namespace || namespace.is_empty() => r.error(
                field,
                format!("invalid configmap:// credentialName: namespace must match the configuration namespace {namespace:?}"),
            ),
            Ok(_) => {}
        }
    }
    let mode = tls.mode_or_default();
    if tls.insecure_skip_verify == Some(true) {
        if mode == ClientTlsMode::Simple
            && (set(&tls.ca_certificates)
                || set(&tls.credential_name)
                || tls.subject_alt_names.is_some())
        {
            r.error(
                path,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if mode == ClientTlsMode::Mutual
            && (set(&tls.ca_certificates) || tls.subject_alt_names.is_some())
        {
            r.error(
                path,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if matches!(mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) && set(&tls.credential_name) {
        if set(&tls.client_certificate)
            || set(&tls.ca_certificates)
            || set(&tls.private_key)
            || set(&tls.ca_crl)
        {
            r.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if mode == ClientTlsMode::Mutual {
        if !set(&tls.client_certificate) {
            r.error(
                join(path, "clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set(&tls.private_key) {
            r.error(
                join(path, "privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}
