//! Istio's `k8sgateway.SelectorAnalyzer`: a policy (AuthorizationPolicy, RequestAuthentication,
//! Telemetry, WasmPlugin) whose workload `selector` matches the Pods of a Kubernetes Gateway API
//! gateway, where selectors have no effect and `targetRef` is needed (IST0166).

use serde_json::Value;

use super::messages::INEFFECTIVE_SELECTOR;
use super::{labels_of, of_kind, report, selector_matches, string_map};
use crate::{Finding, Input};

/// The label Istio puts on the Pods of a Gateway API gateway.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The policy kinds with a workload selector.
const POLICY_KINDS: [&str; 4] = [
    "AuthorizationPolicy",
    "RequestAuthentication",
    "Telemetry",
    "WasmPlugin",
];

/// Does the policy attach by `targetRef` (or `targetRefs`)?
fn has_target_ref(policy: &Input) -> bool {
    policy
        .get(&["spec", "targetRef"])
        .is_some_and(|t| !t.is_null())
        || policy
            .get(&["spec", "targetRefs"])
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

/// IST0166, once per gateway Pod of the policy's namespace that its selector matches.
pub(super) fn ineffective_selectors(inputs: &[Input], out: &mut Vec<Finding>) {
    let gateway_pods: Vec<(&str, _)> = of_kind(inputs, "Pod")
        .map(|p| (p.namespace.as_str(), labels_of(p)))
        .filter(|(_, labels)| labels.contains_key(GATEWAY_NAME_LABEL))
        .collect();
    for kind in POLICY_KINDS {
        for policy in of_kind(inputs, kind) {
            if has_target_ref(policy) {
                continue;
            }
            let Some(selector) = policy.get(&["spec", "selector"]).filter(|s| !s.is_null()) else {
                continue;
            };
            let match_labels = string_map(selector.get("matchLabels"));
            for (_, labels) in gateway_pods
                .iter()
                .filter(|(ns, _)| *ns == policy.namespace)
            {
                if selector_matches(&match_labels, labels) {
                    let gateway = labels.get(GATEWAY_NAME_LABEL).map_or("", String::as_str);
                    report(
                        out,
                        &INEFFECTIVE_SELECTOR,
                        policy,
                        "spec.selector",
                        format!(
                            "Ineffective selector on Kubernetes Gateway {gateway}. Use the TargetRef field instead."
                        ),
                    );
                }
            }
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

    fn gateway_pod(ns: &str) -> Input {
        input(
            json!({"kind": "Pod", "metadata": {"name": "egress-istio-1", "namespace": ns,
            "labels": {"gateway.networking.k8s.io/gateway-name": "egress", "app": "egress"}}}),
        )
    }

    #[test]
    fn selector_matching_a_gateway_pod_in_its_namespace() {
        let ap = input(json!({"kind": "AuthorizationPolicy",
            "metadata": {"name": "ap", "namespace": "egress"},
            "spec": {"selector": {"matchLabels": {"app": "egress"}}}}));
        let mut out = Vec::new();
        ineffective_selectors(&[gateway_pod("egress"), ap.clone()], &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Ineffective selector on Kubernetes Gateway egress. Use the TargetRef field instead."
        );
        let mut out = Vec::new();
        ineffective_selectors(&[gateway_pod("other"), ap], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn target_refs_and_missing_selectors_pass() {
        let refs = input(json!({"kind": "AuthorizationPolicy",
            "metadata": {"name": "ap", "namespace": "egress"},
            "spec": {"selector": {"matchLabels": {"app": "egress"}},
                "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "egress"}]}}));
        let none = input(json!({"kind": "Telemetry",
            "metadata": {"name": "t", "namespace": "egress"}, "spec": {}}));
        let mut out = Vec::new();
        ineffective_selectors(&[gateway_pod("egress"), refs, none], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
