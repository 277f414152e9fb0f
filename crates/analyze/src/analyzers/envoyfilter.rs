//! Istio's `envoyfilter.EnvoyPatchAnalyzer`: EnvoyFilter patches whose operation does not fit
//! what they apply to (IST0152 REPLACE, IST0153 ADD, IST0154 REMOVE), and relative operations
//! without a priority (IST0151), or, when an earlier patch with a `proxyVersion` match named the
//! same filter, IST0155.

use std::collections::BTreeSet;

use serde_json::Value;

use super::messages::{
    ENVOY_FILTER_ADD_INCORRECTLY, ENVOY_FILTER_RELATIVE_OPERATION,
    ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION, ENVOY_FILTER_REMOVE_INCORRECTLY,
    ENVOY_FILTER_REPLACE_INCORRECTLY, Msg,
};
use super::{array, of_kind, report, str_of};
use crate::{Finding, Input};

/// The name a patch is known by: its value's `name` (compared as a value), else, for a value
/// without one, the listener filter its match names.
fn instance_name(patch: &Value, value: &Value) -> String {
    let Some(fields) = value.as_object() else {
        return String::new();
    };
    if let Some(name) = fields.get("name") {
        return serde_json::to_string(name).unwrap_or_default();
    }
    patch
        .get("match")
        .and_then(|m| m.get("listener"))
        .and_then(|l| l.get("filterChain"))
        .filter(|f| !f.is_null())
        .map(|f| {
            f.get("filter")
                .map(|f| str_of(f, "name"))
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Does the patch match on a proxy version?
fn has_proxy_version(patch: &Value) -> bool {
    patch
        .get("match")
        .and_then(|m| m.get("proxy"))
        .is_some_and(|p| !str_of(p, "proxyVersion").is_empty())
}

/// Messages of one run, each (resource, code) once as istioctl keeps them.
struct Reporter<'a, 'o> {
    out: &'o mut Vec<Finding>,
    seen: BTreeSet<(&'a str, &'a str, &'static str)>,
}

impl<'a> Reporter<'a, '_> {
    fn report(&mut self, m: &Msg, ef: &'a Input, index: usize) {
        if self.seen.insert((&ef.namespace, &ef.name, m.code)) {
            report(
                self.out,
                m,
                ef,
                &format!("spec.configPatches[{index}].patch.operation"),
                message(m.code).to_owned(),
            );
        }
    }
}

/// The (argument-free) text of each message.
fn message(code: &str) -> &'static str {
    match code {
        "IST0151" => {
            "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly."
        }
        "IST0152" => "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
        "IST0153" => {
            "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."
        }
        "IST0154" => {
            "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE."
        }
        _ => {
            "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly."
        }
    }
}

/// IST0151–IST0155 over every EnvoyFilter's `configPatches`, in order; the names of patches
/// matching a proxy version carry over to the EnvoyFilters after.
pub(super) fn envoy_patches(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut r = Reporter {
        out,
        seen: BTreeSet::new(),
    };
    let mut versioned_names: Vec<String> = Vec::new();
    for ef in of_kind(inputs, "EnvoyFilter") {
        let priority = ef
            .get(&["spec", "priority"])
            .and_then(Value::as_i64)
            .unwrap_or(0);
        for (i, patch) in array(ef.get(&["spec", "configPatches"])).iter().enumerate() {
            let Some(p) = patch.get("patch").filter(|p| !p.is_null()) else {
                break;
            };
            let name = instance_name(patch, p.get("value").unwrap_or(&Value::Null));
            let apply_to = str_of(patch, "applyTo");
            let route = matches!(apply_to, "ROUTE_CONFIGURATION" | "HTTP_ROUTE");
            let relative = match str_of(p, "operation") {
                "ADD" => {
                    if route {
                        r.report(&ENVOY_FILTER_ADD_INCORRECTLY, ef, i);
                    }
                    false
                }
                "REMOVE" if route => {
                    r.report(&ENVOY_FILTER_REMOVE_INCORRECTLY, ef, i);
                    false
                }
                "REPLACE" if !matches!(apply_to, "NETWORK_FILTER" | "HTTP_FILTER") => {
                    r.report(&ENVOY_FILTER_REPLACE_INCORRECTLY, ef, i);
                    false
                }
                "REMOVE" | "REPLACE" | "INSERT_BEFORE" | "INSERT_AFTER" => true,
                _ => false,
            };
            if relative && priority == 0 {
                let m = if versioned_names.contains(&name) {
                    &ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION
                } else {
                    &ENVOY_FILTER_RELATIVE_OPERATION
                };
                r.report(m, ef, i);
            }
            if has_proxy_version(patch) {
                versioned_names.push(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(name: &str, priority: i64, patches: Value) -> Input {
        Input::new(
            json!({"kind": "EnvoyFilter", "metadata": {"name": name, "namespace": "egress"},
                "spec": {"priority": priority, "configPatches": patches}}),
            None,
        )
        .unwrap_or_else(|| panic!("not an object"))
    }

    #[test]
    fn proxy_version_names_carry_over_to_later_filters() {
        let versioned = filter(
            "a",
            5,
            json!([{"applyTo": "HTTP_FILTER", "match": {"proxy": {"proxyVersion": "^1\\.2.*"}},
                "patch": {"operation": "INSERT_BEFORE", "value": {"name": "envoy.lua"}}}]),
        );
        let later = filter(
            "b",
            0,
            json!([{"applyTo": "HTTP_FILTER",
                "patch": {"operation": "INSERT_AFTER", "value": {"name": "envoy.lua"}}},
                {"applyTo": "HTTP_FILTER",
                "patch": {"operation": "MERGE", "value": {"name": "other"}}}]),
        );
        let mut out = Vec::new();
        envoy_patches(&[versioned, later], &mut out);
        let codes: Vec<(&str, &str)> = out
            .iter()
            .map(|f| (f.name_of_resource.as_str(), f.code))
            .collect();
        assert_eq!(codes, [("b", "IST0155")]);
    }

    #[test]
    fn a_patch_without_patch_stops_the_filter() {
        let ef = filter(
            "c",
            0,
            json!([{"applyTo": "HTTP_ROUTE"},
                {"applyTo": "HTTP_ROUTE", "patch": {"operation": "ADD"}}]),
        );
        let mut out = Vec::new();
        envoy_patches(&[ef], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
