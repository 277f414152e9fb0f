//! Istio's `injection` analyzer: namespaces not enabled for injection (IST0102, or IST0148 when
//! the injector enables namespaces by default), conflicting injection labels (IST0123), and
//! Pods in injected namespaces without the proxy (IST0103).

use egress_model::resources::core::MESH_CONFIG_NAMESPACE;
use serde_json::Value;

use super::mesh::{INJECTION_LABEL, ISTIO_PROXY, REVISION_LABEL, SIDECAR_INJECT};
use super::messages::{
    NAMESPACE_INJECTION_ENABLED_BY_DEFAULT, NAMESPACE_MULTIPLE_INJECTION_LABELS,
    NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY,
};
use super::{array, go_list, labels_of, of_kind, report, str_of};
use crate::{Finding, Input};

/// The namespace label for ambient mode.
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";

/// The sidecar injector's ConfigMap for a revision.
pub(super) fn injector_config_map(revision: &str) -> String {
    if revision.is_empty() || revision == "default" {
        "istio-sidecar-injector".to_owned()
    } else {
        format!("istio-sidecar-injector-{revision}")
    }
}

/// `sidecarInjectorWebhook.enableNamespacesByDefault` from the injector ConfigMap's `values`.
fn enables_namespaces_by_default(inputs: &[Input], revision: &str) -> bool {
    let name = injector_config_map(revision);
    of_kind(inputs, "ConfigMap")
        .find(|c| c.name == name)
        .and_then(|c| c.get(&["data", "values"]).and_then(Value::as_str))
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .and_then(|v| v["sidecarInjectorWebhook"]["enableNamespacesByDefault"].as_bool())
        .unwrap_or(false)
}

/// Namespaces running Istio's own workloads: a Pod, or a Deployment's Pod template, labelled
/// `istio` (as the control plane and gateways are; istioctl's `IsIstioControlPlane` test).
fn istio_workload_namespaces(inputs: &[Input]) -> Vec<&str> {
    let mut out: Vec<&str> = of_kind(inputs, "Pod")
        .filter(|p| labels_of(p).contains_key("istio"))
        .map(|p| p.namespace.as_str())
        .collect();
    out.extend(
        of_kind(inputs, "Deployment")
            .filter(|d| {
                d.get(&["spec", "template", "metadata", "labels", "istio"])
                    .is_some()
            })
            .map(|d| d.namespace.as_str()),
    );
    out
}

/// `injection.Analyzer`, over the namespaces other than Istio's own (`istio-system`, the
/// add-on's `aks-istio-system`, and those running Istio's workloads): more than one of
/// `istio-injection`, `istio.io/rev`, `istio.io/dataplane-mode` (the last two counted only when
/// injection is unset or `enabled`): IST0123. Ambient namespaces are otherwise skipped; a
/// namespace with neither injection label: IST0102 (IST0148 when the injector enables
/// namespaces by default). In an `istio-injection=enabled` namespace, a Pod not opted out
/// (label over annotation `sidecar.istio.io/inject=false`), not on the host network and
/// without an `istio-proxy` container image: IST0103.
pub(super) fn injection(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut injected: Vec<&str> = Vec::new();
    let istio_namespaces = istio_workload_namespaces(inputs);
    let own = |n: &&Input| {
        n.name == "istio-system"
            || n.name == MESH_CONFIG_NAMESPACE
            || istio_namespaces.contains(&n.name.as_str())
    };
    for ns in of_kind(inputs, "Namespace").filter(|n| !own(n)) {
        let labels = labels_of(ns);
        let injection = labels.get(INJECTION_LABEL);
        let revision = labels.get(REVISION_LABEL);
        let mut istio_labels: Vec<String> = Vec::new();
        if let Some(v) = injection {
            istio_labels.push(format!("{INJECTION_LABEL}={v}"));
        }
        for key in [REVISION_LABEL, DATAPLANE_MODE] {
            if let Some(v) = labels.get(key)
                && injection.is_none_or(|i| i == "enabled")
            {
                istio_labels.push(format!("{key}={v}"));
            }
        }
        if istio_labels.len() > 1 {
            report(
                out,
                &NAMESPACE_MULTIPLE_INJECTION_LABELS,
                ns,
                "",
                format!(
                    "The namespace has more than one type of injection labels {}, which may lead to undefined behavior. Make sure only one injection label exists.",
                    go_list(&istio_labels)
                ),
            );
        }
        if labels.get(DATAPLANE_MODE).map(String::as_str) == Some("ambient") {
            continue;
        }
        if injection.is_none_or(String::is_empty) && revision.is_none() {
            if enables_namespaces_by_default(inputs, "") {
                report(
                    out,
                    &NAMESPACE_INJECTION_ENABLED_BY_DEFAULT,
                    ns,
                    "",
                    "is enabled for Istio injection, as Istio is installed with enableNamespacesByDefault as true.".to_owned(),
                );
                continue;
            }
            report(
                out,
                &NAMESPACE_NOT_INJECTED,
                ns,
                "metadata.name",
                format!(
                    "The namespace is not enabled for Istio injection. Run 'kubectl label namespace {0} istio-injection=enabled' to enable it, or 'kubectl label namespace {0} istio-injection=disabled' to explicitly mark it as not needing injection.",
                    ns.name
                ),
            );
            continue;
        }
        if injection.map(String::as_str) == Some("enabled") {
            injected.push(&ns.name);
        }
    }
    for pod in of_kind(inputs, "Pod") {
        if !injected.contains(&pod.namespace.as_str()) {
            continue;
        }
        let opt = labels_of(pod)
            .get(SIDECAR_INJECT)
            .cloned()
            .or_else(|| pod.annotation(SIDECAR_INJECT).map(str::to_owned))
            .unwrap_or_default();
        if opt.eq_ignore_ascii_case("false") {
            continue;
        }
        if pod.get(&["spec", "hostNetwork"]).and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let mut containers = array(pod.get(&["spec", "containers"])).to_vec();
        containers.extend(array(pod.get(&["spec", "initContainers"])).iter().cloned());
        let image = containers
            .iter()
            .find(|c| str_of(c, "name") == ISTIO_PROXY)
            .map(|c| str_of(c, "image"))
            .unwrap_or_default();
        if image.is_empty() {
            report(
                out,
                &POD_MISSING_PROXY,
                pod,
                "",
                format!(
                    "The pod {} is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload.",
                    pod.full_name()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value) -> Input {
        Input::new(v, None).unwrap_or_else(|| panic!("not an object"))
    }

    #[test]
    fn namespaces_enabled_by_default() {
        let ns = input(json!({"kind": "Namespace", "metadata": {"name": "bar"}}));
        let cm = input(json!({"kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
            "data": {"values": "{\"sidecarInjectorWebhook\": {\"enableNamespacesByDefault\": true}}"}}));
        let mut out = Vec::new();
        injection(&[ns.clone(), cm], &mut out);
        assert_eq!(
            out.iter().map(|f| f.code).collect::<Vec<_>>(),
            vec!["IST0148"]
        );
        let mut out = Vec::new();
        injection(&[ns], &mut out);
        assert_eq!(
            out.iter().map(|f| f.code).collect::<Vec<_>>(),
            vec!["IST0102"]
        );
        assert_eq!(
            injector_config_map("canary"),
            "istio-sidecar-injector-canary"
        );
    }

    #[test]
    fn istio_namespaces_are_left_out() {
        let ns = |name: &str| input(json!({"kind": "Namespace", "metadata": {"name": name}}));
        let gateway = input(json!({"kind": "Deployment",
            "metadata": {"name": "gw", "namespace": "aks-istio-egress"},
            "spec": {"template": {"metadata": {"labels": {"istio": "egress"}}}}}));
        let mut out = Vec::new();
        injection(
            &[
                ns("aks-istio-system"),
                ns("aks-istio-egress"),
                ns("app"),
                gateway,
            ],
            &mut out,
        );
        assert_eq!(
            out.iter()
                .map(|f| f.name_of_resource.as_str())
                .collect::<Vec<_>>(),
            vec!["app"]
        );
    }

    #[test]
    fn ambient_and_labels() {
        let ns = |labels: Value| {
            input(json!({"kind": "Namespace", "metadata": {"name": "a", "labels": labels}}))
        };
        let codes = |n: Input| {
            let mut out = Vec::new();
            injection(&[n], &mut out);
            out.iter().map(|f| f.code).collect::<Vec<_>>()
        };
        assert!(codes(ns(json!({"istio.io/dataplane-mode": "ambient"}))).is_empty());
        assert_eq!(
            codes(ns(
                json!({"istio.io/dataplane-mode": "ambient", "istio.io/rev": "x"})
            )),
            vec!["IST0123"]
        );
        // A disabled injection label does not count the others.
        assert!(
            codes(ns(
                json!({"istio-injection": "disabled", "istio.io/rev": "x"})
            ))
            .is_empty()
        );
    }
}
