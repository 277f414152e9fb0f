//! Istio's `authz` analyzer: AuthorizationPolicies that select no workload in the mesh
//! (IST0127) and source namespaces no Namespace matches (IST0101).

use std::collections::BTreeMap;

use super::mesh::{pod_in_ambient, pod_in_mesh, root_namespace};
use super::messages::{NO_MATCHING_WORKLOADS, REFERENCED_RESOURCE_NOT_FOUND};
use super::{
    array, labels_of, of_kind, quote, report, selector_matches, selector_string, string_map,
    strings,
};
use crate::{Finding, Input};

type Labels = BTreeMap<String, String>;

/// Istio's namespace expression match: `*`, `*suffix`, `prefix*`, or equal ignoring case.
fn namespace_matches(ns: &str, exp: &str) -> bool {
    if exp == "*" {
        return true;
    }
    if let Some(suffix) = exp.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = exp.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(exp)
}

fn no_matching_workloads(out: &mut Vec<Finding>, ap: &Input, labels: &str) {
    report(
        out,
        &NO_MATCHING_WORKLOADS,
        ap,
        "",
        format!("No matching workloads for this resource with the following labels: {labels}"),
    );
}

/// `auth.AuthorizationPoliciesAnalyzer`. Workloads are the in-mesh Pods (sidecar or injection)
/// and ambient Pods. A policy in the root namespace with a selector must match one anywhere;
/// elsewhere a policy without a selector needs a workload in its namespace and one with a
/// selector a matching workload there; otherwise IST0127. Each `namespaces` / `notNamespaces`
/// expression of a rule source must match a Namespace: IST0101 `namespace`.
pub(super) fn authorization_policies(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut workloads: BTreeMap<&str, Vec<Labels>> = BTreeMap::new();
    for pod in of_kind(inputs, "Pod") {
        let list = workloads.entry(&pod.namespace).or_default();
        if pod_in_mesh(inputs, pod) {
            list.push(labels_of(pod));
        }
        if pod_in_ambient(pod) {
            list.push(labels_of(pod));
        }
    }
    let root = root_namespace(inputs);
    let namespaces: Vec<&str> = of_kind(inputs, "Namespace")
        .map(|n| n.name.as_str())
        .collect();
    for ap in of_kind(inputs, "AuthorizationPolicy") {
        let selector = ap
            .get(&["spec", "selector"])
            .filter(|s| !s.is_null())
            .map(|s| string_map(s.get("matchLabels")));
        let in_ns = workloads.get(ap.namespace.as_str());
        match &selector {
            _ if ap.namespace == root => {
                if let Some(sel) = &selector
                    && !workloads
                        .values()
                        .flatten()
                        .any(|l| selector_matches(sel, l))
                {
                    no_matching_workloads(out, ap, &selector_string(sel));
                }
            }
            None => {
                if in_ns.is_none_or(Vec::is_empty) {
                    no_matching_workloads(out, ap, "");
                }
            }
            Some(sel) => {
                if !in_ns
                    .into_iter()
                    .flatten()
                    .any(|l| selector_matches(sel, l))
                {
                    no_matching_workloads(out, ap, &selector_string(sel));
                }
            }
        }
        for (i, rule) in array(ap.get(&["spec", "rules"])).iter().enumerate() {
            for (j, from) in array(rule.get("from")).iter().enumerate() {
                let source = from.get("source");
                for field in ["namespaces", "notNamespaces"] {
                    let exps = strings(source.and_then(|s| s.get(field)));
                    for (k, exp) in exps.iter().enumerate() {
                        if !namespaces.iter().any(|ns| namespace_matches(ns, exp)) {
                            report(
                                out,
                                &REFERENCED_RESOURCE_NOT_FOUND,
                                ap,
                                &format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                                format!("Referenced namespace not found: {}", quote(exp)),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_matches;

    #[test]
    fn namespace_expressions() {
        assert!(namespace_matches("prod-a", "prod-*"));
        assert!(namespace_matches("a-test", "*-test"));
        assert!(namespace_matches("anything", "*"));
        assert!(namespace_matches("HttpBin", "httpbin"));
        assert!(!namespace_matches("httpbin", "bogus-*"));
    }
}
