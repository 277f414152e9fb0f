//! Istio's `telemetry` analyzers: selectors matching no Pod (IST0101), Telemetries selecting
//! the same Pod (IST0159), several namespace-wide Telemetries (IST0160), and access logging
//! without providers when the mesh has no default (IST0157), tracing through a MeshConfig
//! Lightstep provider (IST0002).

use std::collections::BTreeMap;

use serde_json::Value;

use super::mesh::mesh_configs;
use super::messages::{
    CONFLICTING_TELEMETRY_SELECTORS, DEPRECATED, INVALID_TELEMETRY_PROVIDER,
    MULTIPLE_TELEMETRIES_WITHOUT_SELECTOR, REFERENCED_RESOURCE_NOT_FOUND,
};
use super::{
    array, go_list, labels_of, of_kind, quote, report, selector_matches, selector_string, str_of,
    string_map,
};
use crate::{Finding, Input};

/// Names sorted, as istioctl lists Telemetries.
fn sorted_names(list: &[&Input]) -> Vec<String> {
    let mut names: Vec<String> = list.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

/// `telemetry.SelectorAnalyzer`: a Telemetry with `selector.matchLabels` must match a Pod in
/// its namespace (else IST0101 `selector`); a Pod matched by several: IST0159 on each of them.
pub(super) fn selectors(inputs: &[Input], out: &mut Vec<Finding>) {
    let pods: Vec<&Input> = of_kind(inputs, "Pod").collect();
    let mut by_pod: BTreeMap<usize, Vec<&Input>> = BTreeMap::new();
    for t in of_kind(inputs, "Telemetry") {
        let sel = string_map(t.get(&["spec", "selector", "matchLabels"]));
        if sel.is_empty() {
            continue;
        }
        let mut found = false;
        for (i, pod) in pods.iter().enumerate() {
            if pod.namespace == t.namespace && selector_matches(&sel, &labels_of(pod)) {
                found = true;
                by_pod.entry(i).or_default().push(t);
            }
        }
        if !found {
            let first = sel.keys().next().cloned().unwrap_or_default();
            report(
                out,
                &REFERENCED_RESOURCE_NOT_FOUND,
                t,
                &format!("spec.selector.matchLabels.{first}"),
                format!(
                    "Referenced selector not found: {}",
                    quote(&selector_string(&sel))
                ),
            );
        }
    }
    for (i, list) in &by_pod {
        if list.len() < 2 {
            continue;
        }
        let pod = pods[*i];
        let names = sorted_names(list);
        for t in list {
            report(
                out,
                &CONFLICTING_TELEMETRY_SELECTORS,
                t,
                "metadata.name",
                format!(
                    "The Telemetries {} in namespace {} select the same workload pod {}, which can lead to undefined behavior.",
                    go_list(&names),
                    quote(&pod.namespace),
                    quote(&pod.name)
                ),
            );
        }
    }
}

/// `telemetry.DefaultSelectorAnalyzer`: more than one Telemetry in a namespace without a
/// `selector` (or target reference): IST0160 on each.
pub(super) fn default_selectors(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut by_ns: BTreeMap<&str, Vec<&Input>> = BTreeMap::new();
    for t in of_kind(inputs, "Telemetry") {
        let targeted = ["selector", "targetRef", "targetRefs"]
            .iter()
            .any(|k| t.get(&["spec", k]).is_some_and(|v| !v.is_null()));
        if !targeted {
            by_ns.entry(&t.namespace).or_default().push(t);
        }
    }
    for (ns, list) in &by_ns {
        if list.len() < 2 {
            continue;
        }
        let names = sorted_names(list);
        for t in list {
            report(
                out,
                &MULTIPLE_TELEMETRIES_WITHOUT_SELECTOR,
                t,
                "",
                format!(
                    "The Telemetries {} in namespace {} have no workload selector, which can lead to undefined behavior.",
                    go_list(&names),
                    quote(ns)
                ),
            );
        }
    }
}

/// Does a MeshConfig among the inputs set `defaultProviders.accessLogging`?
fn mesh_has_default_access_logging(inputs: &[Input]) -> bool {
    mesh_configs(inputs).iter().any(|(_, m)| {
        !array(
            m.get("defaultProviders")
                .and_then(|d| d.get("accessLogging")),
        )
        .is_empty()
    })
}

/// `telemetry.ProviderAnalyzer`: when the mesh has no default access-logging provider, an
/// `accessLogging` entry of a Telemetry with no providers (and not `disabled`) is ignored:
/// IST0157, once per such entry.
pub(super) fn providers(inputs: &[Input], out: &mut Vec<Finding>) {
    if mesh_has_default_access_logging(inputs) {
        return;
    }
    for t in of_kind(inputs, "Telemetry") {
        for (i, entry) in array(t.get(&["spec", "accessLogging"])).iter().enumerate() {
            let disabled = entry.get("disabled").and_then(Value::as_bool) == Some(true);
            if array(entry.get("providers")).is_empty() && !disabled {
                report(
                    out,
                    &INVALID_TELEMETRY_PROVIDER,
                    t,
                    &format!("spec.accessLogging[{i}]"),
                    format!(
                        "The Telemetry {} in namespace {} with empty providers will be ignored.",
                        t.name,
                        quote(&t.namespace)
                    ),
                );
            }
        }
    }
}

/// `telemetry.LightstepAnalyzer`: IST0002 per tracing provider of a Telemetry naming one of the
/// MeshConfig's Lightstep extension providers.
pub(super) fn lightstep(inputs: &[Input], out: &mut Vec<Finding>) {
    let names: Vec<String> = mesh_configs(inputs)
        .iter()
        .flat_map(|(_, m)| array(m.get("extensionProviders")).to_vec())
        .filter(|p| p.get("lightstep").is_some_and(|l| !l.is_null()))
        .map(|p| str_of(&p, "name").to_owned())
        .collect();
    if names.is_empty() {
        return;
    }
    for t in of_kind(inputs, "Telemetry") {
        for (i, tracing) in array(t.get(&["spec", "tracing"])).iter().enumerate() {
            for (j, p) in array(tracing.get("providers")).iter().enumerate() {
                let name = str_of(p, "name");
                if names.iter().any(|n| n == name) {
                    report(
                        out,
                        &DEPRECATED,
                        t,
                        &format!("spec.tracing[{i}].providers[{j}]"),
                        format!(
                            "Deprecated: The Lightstep provider {name} is deprecated, please migrate to OpenTelemetry provider."
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

    fn telemetry() -> Input {
        input(
            json!({"kind": "Telemetry", "metadata": {"name": "t", "namespace": "n"},
            "spec": {"accessLogging": [{"filter": {"expression": "true"}}]}}),
        )
    }

    #[test]
    fn a_mesh_default_provider_makes_empty_providers_valid() {
        let mut out = Vec::new();
        providers(&[telemetry()], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "The Telemetry t in namespace \"n\" with empty providers will be ignored."
        );
        let mesh = input(json!({"kind": "ConfigMap",
            "metadata": {"name": "istio-shared-configmap-asm-1-25", "namespace": "aks-istio-system"},
            "data": {"mesh": "defaultProviders:\n  accessLogging:\n  - envoy\n"}}));
        let mut out = Vec::new();
        providers(&[telemetry(), mesh], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
    #[test]
    fn lightstep_tracing_is_deprecated() {
        let mesh = input(json!({"kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "extensionProviders:\n- name: ls\n  lightstep:\n    service: x\n- name: otel\n  opentelemetry:\n    service: y\n"}}));
        let t = input(
            json!({"kind": "Telemetry", "metadata": {"name": "t", "namespace": "n"},
            "spec": {"tracing": [{"providers": [{"name": "otel"}, {"name": "ls"}]}]}}),
        );
        let mut out = Vec::new();
        lightstep(&[mesh, t.clone()], &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "IST0002");
        assert_eq!(
            out[0].message,
            "Deprecated: The Lightstep provider ls is deprecated, please migrate to OpenTelemetry provider."
        );
        let mut out = Vec::new();
        lightstep(&[t], &mut out);
        assert!(out.is_empty());
    }
}
