//! Istio's `injection.ImageAnalyzer`: Pods of injection-enabled namespaces whose `istio-proxy`
//! container (or native sidecar init container) runs another image than the injector's
//! ConfigMap configures, one message per namespace (IST0158).
//!
//! The expected image is the injector's `global.proxy.image` (when it has a `/`) or
//! `global.hub/global.proxy.image:global.tag`; the image type (`distroless`, …) of the effective
//! ProxyConfig may suffix it (`…-distroless`).

use std::collections::BTreeMap;

use egress_model::yaml::parse_stream;
use serde_json::Value;

use super::injection::injector_config_map;
use super::mesh::{INJECTION_LABEL, ISTIO_PROXY, REVISION_LABEL, mesh_configs, root_namespace};
use super::messages::PROXY_IMAGE_MISMATCH_IN_NAMESPACE;
use super::{array, go_list, labels_of, of_kind, report, selector_matches, str_of, string_map};
use crate::{Finding, Input};

/// The annotation a Pod overrides its proxy image with.
const PROXY_IMAGE_ANNOTATION: &str = "sidecar.istio.io/proxyImage";
/// The annotation holding a Pod's ProxyConfig overrides (YAML).
const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";

/// The proxy image an injector ConfigMap's `values` configure (empty when unreadable).
fn injector_proxy_image(cm: &Input) -> String {
    let Some(values) = cm
        .get(&["data", "values"])
        .and_then(Value::as_str)
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
    else {
        return String::new();
    };
    let global = &values["global"];
    let image = global["proxy"]["image"].as_str().unwrap_or_default();
    if image.contains('/') {
        image.to_owned()
    } else {
        format!(
            "{}/{image}:{}",
            str_of(global, "hub"),
            str_of(global, "tag")
        )
    }
}

/// `image.imageType` of a ProxyConfig spec (empty when unset).
fn image_type(spec: &Value) -> &str {
    spec.get("image")
        .map(|i| str_of(i, "imageType"))
        .unwrap_or_default()
}

/// The effective image type of Pods: MeshConfig `defaultConfig`, then the root namespace's
/// ProxyConfig, the Pod namespace's, the workload ones selecting the Pod, the Pod's annotation;
/// the last set wins and `default` means none.
struct ImageTypes<'a> {
    mesh: String,
    root: Option<&'a Input>,
    namespace: BTreeMap<&'a str, &'a Input>,
    workload: Vec<(String, &'a Input)>,
}

impl<'a> ImageTypes<'a> {
    fn new(inputs: &'a [Input]) -> Self {
        let mesh = mesh_configs(inputs)
            .iter()
            .filter_map(|(_, m)| m.get("defaultConfig"))
            .map(|d| image_type(d).to_owned())
            .next_back()
            .unwrap_or_default();
        let root_ns = root_namespace(inputs);
        let mut types = ImageTypes {
            mesh,
            root: None,
            namespace: BTreeMap::new(),
            workload: Vec::new(),
        };
        for pc in of_kind(inputs, "ProxyConfig") {
            if pc.namespace == root_ns {
                types.root = Some(pc);
            } else if pc.get(&["spec", "selector"]).is_none_or(Value::is_null) {
                types.namespace.insert(pc.namespace.as_str(), pc);
            } else {
                types.workload.push((pc.full_name(), pc));
            }
        }
        types
    }

    fn of(&self, pod: &Input) -> String {
        let spec = |pc: &Input| {
            pc.get(&["spec"])
                .map(image_type)
                .unwrap_or_default()
                .to_owned()
        };
        let mut variant = self.mesh.clone();
        let mut set = |v: String| {
            if !v.is_empty() {
                variant = v;
            }
        };
        if let Some(root) = self.root {
            set(spec(root));
        }
        if let Some(ns) = self.namespace.get(pod.namespace.as_str()) {
            set(spec(ns));
        }
        let labels = labels_of(pod);
        for (key, pc) in &self.workload {
            let selector = string_map(pc.get(&["spec", "selector", "matchLabels"]));
            if key.starts_with(&pod.namespace) && selector_matches(&selector, &labels) {
                set(spec(pc));
            }
        }
        if let Some(text) = pod.annotation(PROXY_CONFIG_ANNOTATION)
            && let Ok(docs) = parse_stream(text)
            && let Some(doc) = docs.first()
        {
            set(image_type(&doc.value).to_owned());
        }
        if variant == "default" {
            variant.clear();
        }
        variant
    }
}

/// IST0158 per injection-enabled namespace with mismatching Pods.
pub(super) fn proxy_images(inputs: &[Input], out: &mut Vec<Finding>) {
    let images: BTreeMap<&str, String> = of_kind(inputs, "ConfigMap")
        .filter(|c| c.name.starts_with("istio-sidecar-injector"))
        .map(|c| (c.name.as_str(), injector_proxy_image(c)))
        .collect();
    if images.is_empty() {
        return;
    }
    let injected: BTreeMap<&str, (&Input, String)> = of_kind(inputs, "Namespace")
        .filter_map(|ns| {
            let labels = labels_of(ns);
            let revision = match labels.get(REVISION_LABEL) {
                Some(rev) => rev.clone(),
                None if labels.get(INJECTION_LABEL).map(String::as_str) == Some("enabled") => {
                    "default".to_owned()
                }
                None => return None,
            };
            Some((ns.name.as_str(), (ns, injector_config_map(&revision))))
        })
        .collect();
    let types = ImageTypes::new(inputs);
    let mut mismatched: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pod in of_kind(inputs, "Pod") {
        let Some((_, cm_name)) = injected.get(pod.namespace.as_str()) else {
            continue;
        };
        if pod
            .annotation(PROXY_IMAGE_ANNOTATION)
            .is_some_and(|a| !a.is_empty())
        {
            continue;
        }
        let Some(expected) = images.get(cm_name.as_str()) else {
            continue;
        };
        let variant = types.of(pod);
        let spec = pod.get(&["spec"]);
        let containers = array(spec.and_then(|s| s.get("containers")))
            .iter()
            .chain(array(spec.and_then(|s| s.get("initContainers"))));
        for c in containers.filter(|c| str_of(c, "name") == ISTIO_PROXY) {
            let image = str_of(c, "image");
            if image != expected && image != format!("{expected}-{variant}") {
                mismatched
                    .entry(pod.namespace.as_str())
                    .or_default()
                    .push(pod.name.as_str());
            }
        }
    }
    for (ns, pods) in mismatched {
        if let Some((namespace, _)) = injected.get(ns) {
            report(
                out,
                &PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
                namespace,
                "",
                format!(
                    "The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: {}). This often happens after upgrading the Istio control-plane and can be fixed by redeploying the pods.",
                    go_list(&pods)
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

    fn injector() -> Input {
        input(json!({"kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
            "data": {"values": "{\"global\": {\"hub\": \"docker.io/istio\", \"tag\": \"1.3.1\", \"proxy\": {\"image\": \"proxyv2\"}}}"}}))
    }

    fn namespace() -> Input {
        input(json!({"kind": "Namespace",
            "metadata": {"name": "apps", "labels": {"istio-injection": "enabled"}}}))
    }

    fn native_pod(image: &str) -> Input {
        input(
            json!({"kind": "Pod", "metadata": {"name": "native", "namespace": "apps"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}],
                "initContainers": [{"name": "istio-proxy", "image": image, "restartPolicy": "Always"}]}}),
        )
    }

    #[test]
    fn native_sidecars_are_checked() {
        let mut out = Vec::new();
        let inputs = [
            injector(),
            namespace(),
            native_pod("docker.io/istio/proxyv2:1.3.0"),
        ];
        proxy_images(&inputs, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].name_of_resource, "apps");
        assert!(out[0].message.contains("(pod names: [native])"));
        let mut out = Vec::new();
        let inputs = [
            injector(),
            namespace(),
            native_pod("docker.io/istio/proxyv2:1.3.1"),
        ];
        proxy_images(&inputs, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn default_image_type_means_none() {
        let pc = input(json!({"kind": "ProxyConfig",
            "metadata": {"name": "pc", "namespace": "apps"},
            "spec": {"image": {"imageType": "default"}}}));
        let mut out = Vec::new();
        let inputs = [
            injector(),
            namespace(),
            pc,
            native_pod("docker.io/istio/proxyv2:1.3.1-default"),
        ];
        proxy_images(&inputs, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn no_injector_config_map_no_message() {
        let mut out = Vec::new();
        proxy_images(&[namespace(), native_pod("x")], &mut out);
        assert!(out.is_empty());
    }
}
