//! Istio's `webhook.Analyzer`: Istio's injection webhooks (MutatingWebhookConfigurations with a
//! revision or a webhook named `…istio.io`) must not overlap, i.e. no namespace/object label
//! combination may be selected by two of them, and must refer to an existing Service (IST0139).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::mesh::{INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT};
use super::messages::INVALID_WEBHOOK;
use super::{array, go_list, label_selector_matches, of_kind, report, str_of, string_map};
use crate::{Finding, Input};

/// The revisions a webhook configuration names: its `istio.io/rev` label and the values its
/// webhooks' selectors give `istio.io/rev`.
fn revisions(mwc: &Input) -> BTreeSet<String> {
    let mut revs = BTreeSet::new();
    if let Some(rev) = mwc
        .get(&["metadata", "labels", REVISION_LABEL])
        .and_then(Value::as_str)
    {
        revs.insert(rev.to_owned());
    }
    for hook in array(mwc.value.get("webhooks")) {
        for field in ["namespaceSelector", "objectSelector"] {
            let Some(selector) = hook.get(field) else {
                continue;
            };
            if let Some(rev) = string_map(selector.get("matchLabels")).remove(REVISION_LABEL) {
                revs.insert(rev);
            }
            for e in array(selector.get("matchExpressions")) {
                if str_of(e, "key") == REVISION_LABEL {
                    revs.extend(super::strings(e.get("values")));
                }
            }
        }
    }
    revs
}

/// The label sets tried: none, `key: a`, `key: b`, and each of those with every revision.
fn permutations(
    key: &str,
    values: [&str; 2],
    revs: &BTreeSet<String>,
) -> Vec<BTreeMap<String, String>> {
    let base: Vec<BTreeMap<String, String>> = std::iter::once(BTreeMap::new())
        .chain(
            values
                .iter()
                .map(|v| BTreeMap::from([(key.to_owned(), (*v).to_owned())])),
        )
        .collect();
    let mut all = base.clone();
    for rev in revs {
        for b in &base {
            let mut labels = b.clone();
            labels.insert(REVISION_LABEL.to_owned(), rev.clone());
            all.push(labels);
        }
    }
    all
}

/// IST0139: overlapping webhooks (each reported with the others it overlaps, sorted) and
/// webhooks whose `clientConfig.service` does not exist.
pub(super) fn webhooks(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut hooks: Vec<(String, &Input, &Value)> = Vec::new();
    let mut revs = BTreeSet::new();
    for mwc in of_kind(inputs, "MutatingWebhookConfiguration") {
        let own = revisions(mwc);
        let whs = array(mwc.value.get("webhooks"));
        let istio = whs.iter().any(|w| str_of(w, "name").ends_with("istio.io"));
        if own.is_empty() && !istio {
            continue;
        }
        revs.extend(own);
        for w in whs {
            hooks.push((format!("{}/{}", mwc.full_name(), str_of(w, "name")), mwc, w));
        }
    }
    let namespaces = permutations(INJECTION_LABEL, ["enabled", "disabled"], &revs);
    let objects = permutations(SIDECAR_INJECT, ["true", "false"], &revs);
    // Istio keeps one copy of identical messages; permutations repeat overlaps.
    let mut reported: BTreeSet<(&str, String)> = BTreeSet::new();
    for nl in &namespaces {
        for ol in &objects {
            let matches: BTreeSet<&str> = hooks
                .iter()
                .filter(|(_, _, w)| {
                    label_selector_matches(w.get("namespaceSelector"), nl)
                        && label_selector_matches(w.get("objectSelector"), ol)
                })
                .map(|(name, _, _)| name.as_str())
                .collect();
            if matches.len() < 2 {
                continue;
            }
            for m in &matches {
                let others: Vec<&str> = matches.iter().copied().filter(|o| o != m).collect();
                let text = format!(
                    "Webhook overlaps with others: {}. This may cause injection to occur twice.",
                    go_list(&others)
                );
                let Some((_, mwc, _)) = hooks.iter().find(|(name, _, _)| name == m) else {
                    continue;
                };
                if reported.insert((m, text.clone())) {
                    report(out, &INVALID_WEBHOOK, mwc, "", text);
                }
            }
        }
    }
    for (_, mwc, w) in &hooks {
        let Some(service) = w
            .get("clientConfig")
            .and_then(|c| c.get("service"))
            .filter(|s| !s.is_null())
        else {
            continue;
        };
        let (ns, name) = (str_of(service, "namespace"), str_of(service, "name"));
        let exists = of_kind(inputs, "Service").any(|s| s.namespace == ns && s.name == name);
        if !exists {
            let full = if ns.is_empty() {
                name.to_owned()
            } else {
                format!("{ns}/{name}")
            };
            report(
                out,
                &INVALID_WEBHOOK,
                mwc,
                "",
                format!("Injector refers to a control plane service that does not exist: {full}."),
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

    fn istiod() -> Input {
        input(
            json!({"kind": "Service", "metadata": {"name": "istiod", "namespace": "istio-system"}}),
        )
    }

    fn hook(name: &str, ns_selector: Value) -> Value {
        json!({"name": name, "namespaceSelector": ns_selector,
            "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system"}}})
    }

    #[test]
    fn default_injector_does_not_overlap() {
        let mwc = input(json!({"kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-sidecar-injector"},
        "webhooks": [
            hook("rev.namespace.sidecar-injector.istio.io", json!({"matchExpressions": [
                {"key": "istio.io/rev", "operator": "In", "values": ["default"]},
                {"key": "istio-injection", "operator": "DoesNotExist"}]})),
            hook("namespace.sidecar-injector.istio.io", json!({"matchExpressions": [
                {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]})),
        ]}));
        let mut out = Vec::new();
        webhooks(&[mwc, istiod()], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn overlap_and_missing_service() {
        let a = input(json!({"kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "a"},
            "webhooks": [hook("namespace.sidecar-injector.istio.io",
                json!({"matchLabels": {"istio-injection": "enabled"}}))]}));
        let b = input(json!({"kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "b"},
            "webhooks": [{"name": "object.sidecar-injector.istio.io",
                "clientConfig": {"service": {"name": "istiod-canary", "namespace": "istio-system"}}}]}));
        let mut out = Vec::new();
        webhooks(&[a, b, istiod()], &mut out);
        let mut texts: Vec<(String, String)> = out
            .iter()
            .map(|f| (f.name_of_resource.clone(), f.message.clone()))
            .collect();
        texts.sort();
        assert_eq!(
            texts,
            [
                ("a".to_owned(), "Webhook overlaps with others: [b/object.sidecar-injector.istio.io]. This may cause injection to occur twice.".to_owned()),
                ("b".to_owned(), "Injector refers to a control plane service that does not exist: istio-system/istiod-canary.".to_owned()),
                ("b".to_owned(), "Webhook overlaps with others: [a/namespace.sidecar-injector.istio.io]. This may cause injection to occur twice.".to_owned()),
            ]
        );
        assert!(out.iter().all(|f| f.code == "IST0139"));
    }

    #[test]
    fn other_webhooks_are_ignored() {
        let other = input(json!({"kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "cert-manager"},
            "webhooks": [{"name": "webhook.cert-manager.io", "clientConfig": {"service": {"name": "x", "namespace": "y"}}}]}));
        let mut out = Vec::new();
        webhooks(&[other], &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
