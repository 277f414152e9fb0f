//! Istio's `injection.ImageAutoAnalyzer`: `image: auto` on an `istio-proxy` container, which
//! only the injection webhook replaces. A Pod with it is always broken (IST0147: Pods are
//! injected at creation, so an existing one was not); a Deployment whose Pod template no Istio
//! injection webhook selects will not be injected (IST0146).

use serde_json::Value;

use super::mesh::{ISTIO_PROXY, namespace};
use super::messages::{IMAGE_AUTO_WITHOUT_INJECTION_ERROR, IMAGE_AUTO_WITHOUT_INJECTION_WARNING};
use super::{array, label_selector_matches, labels_of, of_kind, report, str_of, string_map};
use crate::{Finding, Input};

/// Does the Pod spec have an `istio-proxy` container with `image: auto`?
fn has_auto_image(spec: Option<&Value>) -> bool {
    array(spec.and_then(|s| s.get("containers")))
        .iter()
        .any(|c| str_of(c, "name") == ISTIO_PROXY && str_of(c, "image") == "auto")
}

/// IST0147 per Pod, IST0146 per Deployment no Istio webhook (`…istio.io`) selects.
pub(super) fn image_auto(inputs: &[Input], out: &mut Vec<Finding>) {
    let webhooks: Vec<&Value> = of_kind(inputs, "MutatingWebhookConfiguration")
        .flat_map(|m| array(m.value.get("webhooks")))
        .filter(|w| str_of(w, "name").ends_with("istio.io"))
        .collect();
    for pod in of_kind(inputs, "Pod") {
        if has_auto_image(pod.get(&["spec"])) {
            report(
                out,
                &IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
                pod,
                "",
                format!(
                    "Pod {} contains `image: auto` but does not match any Istio injection webhook selectors.",
                    pod.name
                ),
            );
        }
    }
    for d in of_kind(inputs, "Deployment") {
        if !has_auto_image(d.get(&["spec", "template", "spec"])) {
            continue;
        }
        let ns = if d.namespace.is_empty() {
            "default"
        } else {
            d.namespace.as_str()
        };
        let ns_labels = namespace(inputs, ns).map(labels_of).unwrap_or_default();
        let pod_labels = string_map(d.get(&["spec", "template", "metadata", "labels"]));
        let injected = webhooks.iter().any(|w| {
            label_selector_matches(w.get("namespaceSelector"), &ns_labels)
                && label_selector_matches(w.get("objectSelector"), &pod_labels)
        });
        if !injected {
            report(
                out,
                &IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
                d,
                "",
                format!(
                    "Deployment {} contains `image: auto` but does not match any Istio injection webhook selectors.",
                    d.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("istio.io/rev", "canary"), ("app", "egress")]);
        let sel = |v: Value| label_selector_matches(Some(&v), &l);
        assert!(label_selector_matches(None, &l));
        assert!(sel(json!({})));
        assert!(sel(
            json!({"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["canary"]}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "istio.io/rev", "operator": "NotIn", "values": ["canary"]}]})
        ));
        assert!(sel(
            json!({"matchExpressions": [{"key": "istio-injection", "operator": "DoesNotExist"}]})
        ));
        assert!(sel(
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})
        ));
        assert!(!sel(json!({"matchLabels": {"app": "other"}})));
    }

    #[test]
    fn revision_webhook_selects_the_gateway_deployment() {
        let ns = Input::new(
            json!({"kind": "Namespace", "metadata": {"name": "egress", "labels": {"istio.io/rev": "canary"}}}),
            None,
        );
        let mwc = Input::new(
            json!({"kind": "MutatingWebhookConfiguration", "metadata": {"name": "istio-revision-tag-default"},
                "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io",
                    "namespaceSelector": {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["canary"]}]}}]}),
            None,
        );
        let deploy = |ns: &str| {
            Input::new(
                json!({"kind": "Deployment", "metadata": {"name": "egress-gw", "namespace": ns},
                    "spec": {"template": {"metadata": {"labels": {"istio": "egressgateway"}},
                        "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}}}),
                None,
            )
        };
        let inputs: Vec<Input> = [ns, mwc, deploy("egress"), deploy("elsewhere")]
            .into_iter()
            .flatten()
            .collect();
        let mut out = Vec::new();
        image_auto(&inputs, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].namespace, "elsewhere");
        assert_eq!(
            out[0].message,
            "Deployment egress-gw contains `image: auto` but does not match any Istio injection webhook selectors."
        );
    }
}
