//! Mesh membership as istioctl's analyzers judge it (`util/in_mesh.go`): Pods with a sidecar
//! (or marked for injection, or in an injected namespace), ambient Pods and namespaces, and the
//! MeshConfig kept in the istio ConfigMap.

use egress_model::yaml::parse_stream;
use serde_json::Value;

use super::{array, labels_of, of_kind, str_of};
use crate::Input;

/// The Pod annotation that puts a Pod in ambient mode (`enabled`).
const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";
/// The Namespace label that puts a namespace in ambient mode (`ambient`).
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// The namespace label for sidecar injection (`enabled` / `disabled`).
pub(super) const INJECTION_LABEL: &str = "istio-injection";
/// The revision label.
pub(super) const REVISION_LABEL: &str = "istio.io/rev";
/// The Pod label or annotation that turns injection on or off (`"true"`).
pub(super) const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
/// The sidecar's container name.
pub(super) const ISTIO_PROXY: &str = "istio-proxy";
/// Istio's default root namespace.
const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Istio's `PodInAmbientMode`.
pub(super) fn pod_in_ambient(pod: &Input) -> bool {
    pod.annotation(AMBIENT_REDIRECTION) == Some("enabled")
}

/// Istio's `NamespaceInAmbientMode`: the dataplane-mode label is `ambient` and neither sidecar
/// injection nor a revision label is set.
pub(super) fn namespace_in_ambient(ns: Option<&Input>) -> bool {
    let Some(ns) = ns else {
        return false;
    };
    let labels = labels_of(ns);
    if labels.get(INJECTION_LABEL).map(String::as_str) == Some("enabled") {
        return false;
    }
    if labels.get(REVISION_LABEL).is_some_and(|v| !v.is_empty()) {
        return false;
    }
    labels.get(DATAPLANE_MODE).map(String::as_str) == Some("ambient")
}

/// The Namespace object named `name`, if among the inputs.
pub(super) fn namespace<'a>(inputs: &'a [Input], name: &str) -> Option<&'a Input> {
    of_kind(inputs, "Namespace").find(|n| n.name == name)
}

/// Does a container list name `istio-proxy` with an image?
pub(super) fn has_istio_proxy(containers: &[Value]) -> bool {
    containers
        .iter()
        .find(|c| str_of(c, "name") == ISTIO_PROXY)
        .is_some_and(|c| !str_of(c, "image").is_empty())
}

/// Istio's `PodInMesh`: an `istio-proxy` container with an image, else the Pod's
/// `sidecar.istio.io/inject` label, else that annotation, else its Namespace's
/// `istio-injection=enabled` label (when the Namespace is known).
pub(super) fn pod_in_mesh(inputs: &[Input], pod: &Input) -> bool {
    let mut containers = array(pod.get(&["spec", "containers"])).to_vec();
    containers.extend(array(pod.get(&["spec", "initContainers"])).iter().cloned());
    if has_istio_proxy(&containers) {
        return true;
    }
    if let Some(v) = labels_of(pod).get(SIDECAR_INJECT) {
        return v == "true";
    }
    if let Some(v) = pod.annotation(SIDECAR_INJECT) {
        return v == "true";
    }
    namespace(inputs, &pod.namespace)
        .is_some_and(|ns| labels_of(ns).get(INJECTION_LABEL).map(String::as_str) == Some("enabled"))
}

/// The MeshConfig documents among the inputs with the namespace of the ConfigMap holding each:
/// the `mesh` key of an `istio` or `istio-shared-configmap-*` ConfigMap.
pub(super) fn mesh_configs(inputs: &[Input]) -> Vec<(&str, Value)> {
    of_kind(inputs, "ConfigMap")
        .filter(|c| c.name == "istio" || c.name.starts_with("istio-shared-configmap"))
        .filter_map(|c| {
            let text = c.get(&["data", "mesh"]).and_then(Value::as_str)?;
            let docs = parse_stream(text).ok()?;
            Some((c.namespace.as_str(), docs))
        })
        .flat_map(|(ns, docs)| docs.into_iter().map(move |d| (ns, d.value)))
        .collect()
}

/// The mesh's root namespace: a MeshConfig's `rootNamespace`, else (as istiod defaults it to
/// its own namespace) the namespace of the ConfigMap holding the MeshConfig, else Istio's
/// default `istio-system`.
pub(super) fn root_namespace(inputs: &[Input]) -> String {
    let configs = mesh_configs(inputs);
    configs
        .iter()
        .map(|(_, m)| str_of(m, "rootNamespace"))
        .find(|ns| !ns.is_empty())
        .or_else(|| {
            configs
                .first()
                .map(|(ns, _)| *ns)
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or(DEFAULT_ROOT_NAMESPACE)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value) -> Input {
        Input::new(v, None).unwrap_or_else(|| panic!("not an object"))
    }

    #[test]
    fn root_namespaces() {
        assert_eq!(root_namespace(&[]), "istio-system");
        let cm = |mesh: &str| {
            input(json!({"kind": "ConfigMap",
                "metadata": {"name": "istio-shared-configmap-asm-1-25", "namespace": "aks-istio-system"},
                "data": {"mesh": mesh}}))
        };
        assert_eq!(
            root_namespace(&[cm("accessLogFile: /dev/stdout\n")]),
            "aks-istio-system"
        );
        assert_eq!(
            root_namespace(&[cm("rootNamespace: mesh-root\n")]),
            "mesh-root"
        );
    }

    #[test]
    fn mesh_membership() {
        let ns = input(
            json!({"kind": "Namespace", "metadata": {"name": "a", "labels": {"istio-injection": "enabled"}}}),
        );
        let pod = |meta: Value, containers: Value| {
            let mut v = json!({"kind": "Pod", "spec": {"containers": containers}});
            v["metadata"] = meta;
            input(v)
        };
        let plain = pod(
            json!({"name": "p", "namespace": "a"}),
            json!([{"name": "app"}]),
        );
        assert!(pod_in_mesh(std::slice::from_ref(&ns), &plain));
        assert!(!pod_in_mesh(&[], &plain));
        let opted_out = pod(
            json!({"name": "p", "namespace": "a", "labels": {"sidecar.istio.io/inject": "false"}}),
            json!([{"name": "app"}]),
        );
        assert!(!pod_in_mesh(std::slice::from_ref(&ns), &opted_out));
        let proxied = pod(
            json!({"name": "p", "namespace": "b"}),
            json!([{"name": "istio-proxy", "image": "proxyv2"}]),
        );
        assert!(pod_in_mesh(&[], &proxied));
        let ambient_ns = input(json!({"kind": "Namespace", "metadata": {"name": "x",
            "labels": {"istio.io/dataplane-mode": "ambient", "istio.io/rev": "canary"}}}));
        assert!(!namespace_in_ambient(Some(&ambient_ns)));
    }
}
