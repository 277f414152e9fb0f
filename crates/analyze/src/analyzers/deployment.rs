//! Istio's `deployment` analyzers: application workloads running as the proxy's UID 1337
//! (IST0144), and in-mesh Deployments whose Services give one port several protocols (IST0116)
//! or one target port several ports (IST0137).

use std::collections::BTreeMap;

use serde_json::Value;

use super::mesh::{INJECTION_LABEL, SIDECAR_INJECT, has_istio_proxy, namespace};
use super::messages::{
    DEPLOYMENT_CONFLICTING_PORTS, DEPLOYMENT_MULTIPLE_SERVICES, INVALID_APPLICATION_UID,
};
use super::{
    array, go_list, labels_of, of_kind, quote, report, selector_matches, str_of, string_map,
};
use crate::{Finding, Input};

/// The user ID the sidecar proxy runs as.
const PROXY_UID: u64 = 1337;

/// Istio's `IsIstioControlPlane`: an `istio` label, or `release=istio`.
fn control_plane(r: &Input) -> bool {
    let labels = labels_of(r);
    labels.contains_key("istio") || labels.get("release").map(String::as_str) == Some("istio")
}

/// Does a Pod spec run as UID 1337, at Pod level or in a container other than the proxy's and
/// the operator's?
fn runs_as_proxy(spec: &Value) -> bool {
    let uid = |v: &Value| v.get("securityContext")?.get("runAsUser")?.as_u64();
    uid(spec) == Some(PROXY_UID)
        || array(spec.get("containers")).iter().any(|c| {
            !matches!(str_of(c, "name"), "istio-proxy" | "istio-operator")
                && uid(c) == Some(PROXY_UID)
        })
}

/// `applicationUID.Analyzer`: a Pod (its spec) or Deployment (its Pod template) outside the
/// control plane running as UID 1337: IST0144, once per resource.
pub(super) fn application_uid(inputs: &[Input], out: &mut Vec<Finding>) {
    let specs = of_kind(inputs, "Pod")
        .map(|p| (p, p.get(&["spec"]), "spec"))
        .chain(of_kind(inputs, "Deployment").map(|d| {
            (
                d,
                d.get(&["spec", "template", "spec"]),
                "spec.template.spec",
            )
        }));
    for (r, spec, path) in specs {
        if control_plane(r) || !spec.is_some_and(runs_as_proxy) {
            continue;
        }
        report(
            out,
            &INVALID_APPLICATION_UID,
            r,
            path,
            "User ID (UID) 1337 is reserved for the sidecar proxy.".to_owned(),
        );
    }
}

/// Istio's `DeploymentInMesh`: the Pod template has an `istio-proxy` container with an image,
/// else its `sidecar.istio.io/inject` label, else that annotation, else its Namespace's
/// `istio-injection=enabled` label.
fn deployment_in_mesh(inputs: &[Input], d: &Input) -> bool {
    let template = d.get(&["spec", "template"]).unwrap_or(&Value::Null);
    if has_istio_proxy(array(
        template.get("spec").and_then(|s| s.get("containers")),
    )) {
        return true;
    }
    let meta = template.get("metadata");
    for field in ["labels", "annotations"] {
        let m = string_map(meta.and_then(|m| m.get(field)));
        if let Some(v) = m.get(SIDECAR_INJECT) {
            return v == "true";
        }
    }
    namespace(inputs, &d.namespace)
        .is_some_and(|ns| labels_of(ns).get(INJECTION_LABEL).map(String::as_str) == Some("enabled"))
}

/// `deployment.MultiServiceAnalyzer`: for an in-mesh Deployment, the Services of its namespace
/// whose (non-empty) selector matches its Pod template: one port number with several
/// protocols (unset is TCP): IST0116; one target port (unset: the port) reached from several
/// ports: IST0137.
pub(super) fn service_association(inputs: &[Input], out: &mut Vec<Finding>) {
    for d in of_kind(inputs, "Deployment") {
        if !deployment_in_mesh(inputs, d) {
            continue;
        }
        let labels = string_map(d.get(&["spec", "template", "metadata", "labels"]));
        let services: Vec<&Input> = of_kind(inputs, "Service")
            .filter(|s| s.namespace == d.namespace)
            .filter(|s| {
                let sel = string_map(s.get(&["spec", "selector"]));
                !sel.is_empty() && selector_matches(&sel, &labels)
            })
            .collect();
        // port → protocol → Services; target port → port → Service.
        let mut protocols: BTreeMap<u64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut targets: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
        for svc in &services {
            for p in array(svc.get(&["spec", "ports"])) {
                let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                let protocol = match str_of(p, "protocol") {
                    "" => "TCP",
                    other => other,
                };
                protocols
                    .entry(port)
                    .or_default()
                    .entry(protocol.to_owned())
                    .or_default()
                    .push(svc.full_name());
                let target = match p.get("targetPort") {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(Value::Number(n)) if n.as_u64() != Some(0) => n.to_string(),
                    _ => port.to_string(),
                };
                targets
                    .entry(target)
                    .or_default()
                    .insert(port, svc.full_name());
            }
        }
        for (port, by_protocol) in &protocols {
            if by_protocol.len() < 2 {
                continue;
            }
            let names: Vec<&String> = by_protocol.values().flatten().collect();
            report(
                out,
                &DEPLOYMENT_MULTIPLE_SERVICES,
                d,
                "metadata.name",
                format!(
                    "This deployment {} is associated with multiple services using port {port} but different protocols: {}",
                    d.name,
                    go_list(&names.iter().map(|n| n.as_str()).collect::<Vec<_>>())
                ),
            );
        }
        for (target, by_port) in &targets {
            if by_port.len() < 2 {
                continue;
            }
            let names: Vec<&str> = by_port.values().map(String::as_str).collect();
            let ports: Vec<String> = by_port.keys().map(u64::to_string).collect();
            report(
                out,
                &DEPLOYMENT_CONFLICTING_PORTS,
                d,
                "metadata.name",
                format!(
                    "This deployment {} is associated with multiple services {} using targetPort {} but different ports: {}.",
                    d.name,
                    go_list(&names),
                    quote(target),
                    go_list(&ports)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_proxy_and_the_control_plane_may_run_as_1337() {
        let proxy = json!({"containers": [{"name": "istio-proxy", "securityContext": {"runAsUser": 1337}}]});
        assert!(!runs_as_proxy(&proxy));
        let app = json!({"containers": [{"name": "app", "securityContext": {"runAsUser": 1337}}]});
        assert!(runs_as_proxy(&app));
        let pod = |labels: Value| {
            Input::new(
                json!({"kind": "Pod", "metadata": {"name": "p", "labels": labels}, "spec": app.clone()}),
                None,
            )
            .unwrap_or_else(|| panic!("not an object"))
        };
        let mut out = Vec::new();
        application_uid(
            &[
                pod(json!({"istio": "ingressgateway"})),
                pod(json!({"release": "istio"})),
            ],
            &mut out,
        );
        assert!(out.is_empty());
        application_uid(&[pod(json!({"app": "x"}))], &mut out);
        assert_eq!(out.len(), 1);
    }
}
