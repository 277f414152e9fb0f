//! Istio's `sidecar` analyzer: workload selectors matching no Pod (IST0101), Sidecars selecting
//! the same Pod (IST0110), several namespace-wide Sidecars (IST0111), and Sidecars in ambient
//! mode (IST0167).

use std::collections::{BTreeMap, BTreeSet};

use super::mesh::{namespace, namespace_in_ambient, pod_in_ambient};
use super::messages::{
    CONFLICTING_SIDECAR_SELECTORS, INEFFECTIVE_POLICY, MULTIPLE_SIDECARS_WITHOUT_SELECTOR,
    REFERENCED_RESOURCE_NOT_FOUND,
};
use super::{
    go_list, labels_of, of_kind, quote, report, selector_matches, selector_string, string_map,
};
use crate::{Finding, Input};

/// `sidecar.SelectorAnalyzer`. A Sidecar with workload selector labels must match a Pod in its
/// namespace (else IST0101 `selector`); a Pod matched by several: IST0110 on each of them; a
/// matched Pod in ambient mode: IST0167. Sidecars without selector labels: in an ambient
/// namespace IST0167, else more than one in a namespace: IST0111 on each.
pub(super) fn selectors(inputs: &[Input], out: &mut Vec<Finding>) {
    let pods: Vec<&Input> = of_kind(inputs, "Pod").collect();
    // Pod index → the Sidecars selecting it, in input order.
    let mut by_pod: BTreeMap<usize, Vec<&Input>> = BTreeMap::new();
    let mut namespace_wide: BTreeMap<&str, Vec<&Input>> = BTreeMap::new();
    for sc in of_kind(inputs, "Sidecar") {
        let sel = string_map(sc.get(&["spec", "workloadSelector", "labels"]));
        if sel.is_empty() {
            namespace_wide.entry(&sc.namespace).or_default().push(sc);
            continue;
        }
        let mut found = false;
        for (i, pod) in pods.iter().enumerate() {
            if pod.namespace == sc.namespace && selector_matches(&sel, &labels_of(pod)) {
                found = true;
                by_pod.entry(i).or_default().push(sc);
            }
        }
        if !found {
            let first = sel.keys().next().cloned().unwrap_or_default();
            report(
                out,
                &REFERENCED_RESOURCE_NOT_FOUND,
                sc,
                &format!("spec.workloadSelector.labels.{first}"),
                format!(
                    "Referenced selector not found: {}",
                    quote(&selector_string(&sel))
                ),
            );
        }
    }
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, list) in &by_pod {
        let pod = pods[*i];
        let ambient = pod_in_ambient(pod);
        if list.len() == 1 && !ambient {
            continue;
        }
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        for sc in list {
            if ambient {
                if reported.insert((sc.namespace.clone(), sc.name.clone())) {
                    report(
                        out,
                        &INEFFECTIVE_POLICY,
                        sc,
                        "",
                        "The policy has no impact: selected workload is in ambient mode, the policy has no impact.".to_owned(),
                    );
                }
                continue;
            }
            report(
                out,
                &CONFLICTING_SIDECAR_SELECTORS,
                sc,
                "metadata.name",
                format!(
                    "The Sidecars {} in namespace {} select the same workload pod {}, which can lead to undefined behavior.",
                    go_list(&names),
                    quote(&pod.namespace),
                    quote(&pod.name)
                ),
            );
        }
    }
    for (ns, list) in &namespace_wide {
        if namespace_in_ambient(namespace(inputs, ns)) {
            for sc in list {
                if reported.insert((sc.namespace.clone(), sc.name.clone())) {
                    report(
                        out,
                        &INEFFECTIVE_POLICY,
                        sc,
                        "",
                        "The policy has no impact: namespace is in ambient mode, the policy has no impact.".to_owned(),
                    );
                }
            }
            continue;
        }
        if list.len() > 1 {
            let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
            for sc in list {
                report(
                    out,
                    &MULTIPLE_SIDECARS_WITHOUT_SELECTOR,
                    sc,
                    "",
                    format!(
                        "The Sidecars {} in namespace {} have no workload selector, which can lead to undefined behavior.",
                        go_list(&names),
                        quote(ns)
                    ),
                );
            }
        }
    }
}
