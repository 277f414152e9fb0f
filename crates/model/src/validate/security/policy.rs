//! What AuthorizationPolicy, PeerAuthentication and Telemetry share: the two admission layers
//! (the CRD's structural/CEL schema, then Istio's webhook), the API server's message shapes, and
//! the rules for `selector`, `targetRef` and `targetRefs`.

use std::sync::LazyLock;

use regex::Regex;

use crate::diag::{Report, join};
use crate::resources::security::{PolicyTargetReference, WorkloadSelector};

/// Findings of the two admission layers: the CRD's schema (what `kubectl apply` reports first)
/// and Istio's webhook (what `istioctl validate` reports). Both are reported, CRD first, so
/// that each of Istio's messages is reachable even where the CRD already refuses the object.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    /// Structural schema and CEL rules of the CRD.
    pub crd: Report,
    /// Istio's validating webhook (errors and warnings).
    pub hook: Report,
}

impl Layers {
    /// Move the findings of both layers into `r`, CRD first.
    pub fn finish(self, r: &mut Report) {
        r.findings.extend(self.crd.findings);
        r.findings.extend(self.hook.findings);
    }
}

/// `path: Required value`.
pub(crate) fn required(r: &mut Report, path: &str) {
    r.error(path, format!("{path}: Required value"));
}

/// `minLength` of a string.
pub(crate) fn min_length(r: &mut Report, path: &str, value: &str, n: usize) {
    if value.chars().count() < n {
        r.error(
            path,
            format!(
                "{path}: Invalid value: {value:?}: {path} in body should be at least {n} chars long"
            ),
        );
    }
}

/// `maxLength` of a string.
pub(crate) fn max_length(r: &mut Report, path: &str, value: &str, n: usize) {
    if value.chars().count() > n {
        r.error(
            path,
            format!("{path}: Too long: may not be more than {n} bytes"),
        );
    }
}

/// `pattern` of a string.
fn pattern(r: &mut Report, path: &str, value: &str, re: &LazyLock<Option<Regex>>, src: &str) {
    if !re.as_ref().is_some_and(|re| re.is_match(value)) {
        r.error(
            path,
            format!("{path}: Invalid value: {value:?}: {path} in body should match '{src}'"),
        );
    }
}

/// A failed CEL rule (`x-kubernetes-validations`) on a value of JSON type `ty`.
pub(crate) fn cel(r: &mut Report, path: &str, ty: &str, message: &str) {
    r.error(path, format!("{path}: Invalid value: \"{ty}\": {message}"));
}

/// A CEL rule whose evaluation failed (`no such key`, conversion errors).
pub(crate) fn cel_eval_error(r: &mut Report, path: &str, ty: &str, error: &str, message: &str) {
    r.error(
        path,
        format!("{path}: Invalid value: \"{ty}\": {error} evaluating rule: {message}"),
    );
}

/// `minProperties: 1` of an object.
pub(crate) fn min_properties(r: &mut Report, path: &str, len: usize) {
    if len < 1 {
        r.error(
            path,
            format!(
                "{path}: Invalid value: {len}: {path} in body should have at least 1 properties"
            ),
        );
    }
}

/// `maxProperties` of an object.
fn max_properties(r: &mut Report, path: &str, len: usize, max: usize) {
    if len > max {
        r.error(
            path,
            format!(
                "{path}: Invalid value: {len}: {path} in body should have at most {max} properties"
            ),
        );
    }
}

/// A `oneOf` of optional fields with more than one of them set.
pub(crate) fn one_of(r: &mut Report, path: &str, set: usize) {
    if set > 1 {
        r.error(
            path,
            format!(
                "{path}: Invalid value: \"object\": {path} must validate one and only one schema (oneOf). Found {set} valid alternatives"
            ),
        );
    }
}

const GROUP_PATTERN: &str = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const KIND_PATTERN: &str = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$";
static GROUP_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(GROUP_PATTERN).ok());
static KIND_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(KIND_PATTERN).ok());

const TARGET_KINDS_MSG: &str = "Support kinds are core/Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway";
const TARGET_KINDS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("", "Service"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("networking.istio.io", "ServiceEntry"),
];

/// The webhook's allowed targets (`allowedTargetRefs`), by canonical group.
const WEBHOOK_TARGETS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];
const WEBHOOK_TARGETS_LIST: &str = "[core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass]";

/// CRD rules of `WorkloadSelector` (`matchLabels`: no wildcards, no empty key, values at most
/// 63 characters, at most 4096 labels).
pub(crate) fn selector_crd(r: &mut Report, path: &str, selector: &WorkloadSelector) {
    match_labels_crd(r, path, selector.match_labels.as_ref());
}

/// CRD rules of a `WorkloadSelector`'s `matchLabels` under `path` (the same schema wherever
/// Istio's CRDs embed `istio.type.v1beta1.WorkloadSelector`).
pub(crate) fn match_labels_crd(
    r: &mut Report,
    path: &str,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) {
    let Some(labels) = labels else {
        return;
    };
    let ml = join(path, "matchLabels");
    for (k, v) in labels {
        let vp = join(&ml, k);
        max_length(r, &vp, v, 63);
        if v.contains('*') {
            cel(
                r,
                &vp,
                "string",
                "wildcard not allowed in label value match",
            );
        }
    }
    max_properties(r, &ml, labels.len(), 4096);
    if labels.keys().any(|k| k.contains('*')) {
        cel(r, &ml, "object", "wildcard not allowed in label key match");
    }
    if labels.keys().any(String::is_empty) {
        cel(r, &ml, "object", "key must not be empty");
    }
}

/// The webhook's `validateWorkloadSelector`: empty keys and wildcards are errors, a selector
/// without labels is a warning.
pub(crate) fn selector_webhook(r: &mut Report, path: &str, selector: Option<&WorkloadSelector>) {
    let Some(selector) = selector else {
        return;
    };
    let ml = join(path, "matchLabels");
    let labels = selector.match_labels.as_ref();
    for (k, v) in labels.into_iter().flatten() {
        let pair = format!("{k}={v}");
        if k.is_empty() {
            r.error(
                &ml,
                format!("empty key is not supported in selector: {pair:?}"),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                join(&ml, k),
                format!("wildcard is not supported in selector: {pair:?}"),
            );
        }
    }
    if labels.is_none_or(|l| l.is_empty()) {
        r.warn(path, "workload selector specified without labels");
    }
}

/// CRD rules of one `PolicyTargetReference`.
pub(crate) fn target_ref_crd(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    if let Some(g) = &t.group {
        let gp = join(path, "group");
        max_length(r, &gp, g, 253);
        pattern(r, &gp, g, &GROUP_RE, GROUP_PATTERN);
    }
    match &t.kind {
        None => required(r, &join(path, "kind")),
        Some(k) => {
            let kp = join(path, "kind");
            min_length(r, &kp, k, 1);
            max_length(r, &kp, k, 63);
            if !k.is_empty() {
                pattern(r, &kp, k, &KIND_RE, KIND_PATTERN);
            }
        }
    }
    match &t.name {
        None => required(r, &join(path, "name")),
        Some(n) => {
            let np = join(path, "name");
            min_length(r, &np, n, 1);
            max_length(r, &np, n, 253);
        }
    }
    if t.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        cel(
            r,
            &join(path, "namespace"),
            "string",
            "cross namespace referencing is not currently supported",
        );
    }
    if let Some(kind) = &t.kind {
        match &t.group {
            None => cel_eval_error(r, path, "object", "no such key: group", TARGET_KINDS_MSG),
            Some(g) => {
                if !TARGET_KINDS.iter().any(|(tg, tk)| tg == g && tk == kind) {
                    cel(r, path, "object", TARGET_KINDS_MSG);
                }
            }
        }
    }
}

/// The webhook's `validatePolicyTargetReference`.
pub(crate) fn target_ref_webhook(r: &mut Report, path: &str, t: &PolicyTargetReference) {
    let name = t.name.as_deref().unwrap_or_default();
    let kind = t.kind.as_deref().unwrap_or_default();
    let group = t.group.as_deref().unwrap_or_default();
    if name.is_empty() {
        r.error(join(path, "name"), "targetRef name must be set");
    }
    if t.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        r.error(
            join(path, "namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let canonical = if group.is_empty() { "core" } else { group };
    if !WEBHOOK_TARGETS
        .iter()
        .any(|(g, k)| *g == canonical && *k == kind)
    {
        r.error(
            path,
            format!("targetRef must be to one of {WEBHOOK_TARGETS_LIST} but was {group}/{kind}"),
        );
    }
}

/// Everything about `selector`, `targetRef` and `targetRefs` of a policy, in both layers.
pub(crate) fn attachment(
    layers: &mut Layers,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: Option<&Vec<PolicyTargetReference>>,
) {
    if let Some(s) = selector {
        selector_crd(&mut layers.crd, "spec.selector", s);
    }
    if let Some(t) = target_ref {
        target_ref_crd(&mut layers.crd, "spec.targetRef", t);
    }
    if let Some(refs) = target_refs {
        for (i, t) in refs.iter().enumerate() {
            target_ref_crd(&mut layers.crd, &format!("spec.targetRefs[{i}]"), t);
        }
    }

    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(target_refs.is_some_and(|v| !v.is_empty()));
    if set > 1 {
        layers.hook.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    selector_webhook(&mut layers.hook, "spec.selector", selector);
    if let Some(t) = target_ref {
        target_ref_webhook(&mut layers.hook, "spec.targetRef", t);
    }
    for (i, t) in target_refs.into_iter().flatten().enumerate() {
        target_ref_webhook(&mut layers.hook, &format!("spec.targetRefs[{i}]"), t);
    }
}
