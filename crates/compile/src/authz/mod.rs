//! AuthorizationPolicies as a gateway instance enforces them (`istio-egress.md` §1.7, §3.11):
//! which policies apply to the instance, and their rules translated into the checks the data
//! plane evaluates, once for HTTP filter chains and once for TCP ones (passthrough and
//! TLS-terminated TCP servers), where HTTP-only attributes cannot be seen.
//!
//! Selection: a policy applies when it is in the instance's namespace, or in the root
//! namespace [`ROOT_NAMESPACE`] (mesh-wide), and its `selector.matchLabels` are a subset of
//! the instance's labels (no selector: every workload in scope). Policies attached with
//! `targetRef`/`targetRefs` target Gateway API resources and never apply to a gateway
//! deployment. CUSTOM policies are not supported: they are skipped with a warning.
//!
//! Translation follows Istio's `pilot/pkg/security/authz/model`: `from` sources and `to`
//! operations are alternatives (any one matches; none given matches all), the fields of one
//! source or operation and the `when` conditions must all match, a `not*` field matches when
//! none of its values does. On TCP chains an ALLOW rule that uses an HTTP-only attribute
//! (hosts, methods, paths, requestPrincipals, `request.*` conditions) is dropped, so it fails
//! closed, while DENY and AUDIT rules ignore such attributes (they match more).
//!
//! Evaluation (in the proxy): DENY policies first, then, when any ALLOW policy applies, one
//! ALLOW rule must match; AUDIT policies only log. Policies annotated `istio.io/dry-run:
//! "true"` are evaluated but not enforced.

mod translate;

use std::collections::BTreeMap;

use egress_model::resources::security::{Action, AuthorizationPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use egress_snapshot::authz::*;

use crate::ctx::{Ctx, name_ns, sorted};

/// The policies that apply to the instance, translated.
pub(crate) fn build(ctx: &Ctx<'_>) -> Authz {
    let mut selected: Vec<(&ObjectMeta, &AuthorizationPolicy)> =
        sorted(&ctx.inputs.authorization_policies)
            .into_iter()
            .filter(|(meta, spec)| applies(ctx, meta, spec))
            .collect();
    selected.sort_by(|a, b| {
        name_ns(a.0)
            .1
            .cmp(name_ns(b.0).1)
            .then(name_ns(a.0).0.cmp(name_ns(b.0).0))
    });
    let mut out = Authz::default();
    for (meta, spec) in selected {
        let (name, ns) = name_ns(meta);
        let action = match spec.action_or_default() {
            Action::Allow => PolicyAction::Allow,
            Action::Deny => PolicyAction::Deny,
            Action::Audit => PolicyAction::Audit,
            Action::Custom => {
                ctx.warn(format!(
                    "AuthorizationPolicy {ns}/{name}: action CUSTOM is not supported; policy ignored"
                ));
                continue;
            }
        };
        let dry_run = action != PolicyAction::Audit && dry_run(meta);
        let rules: Vec<Rule> = spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, rule)| translate::rule(ctx, ns, name, index, rule))
            .collect();
        let tcp_rules = match action {
            PolicyAction::Allow => rules
                .iter()
                .filter(|r| !r.uses_http_only())
                .cloned()
                .collect(),
            PolicyAction::Deny | PolicyAction::Audit => {
                rules.iter().map(Rule::without_http_only).collect()
            }
        };
        let policy = Policy {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            action,
            dry_run,
            rules,
        };
        out.tcp.push(Policy {
            rules: tcp_rules,
            ..policy.clone()
        });
        out.http.push(policy);
    }
    out
}

/// Whether a policy is in scope of the instance and selects it.
fn applies(ctx: &Ctx<'_>, meta: &ObjectMeta, spec: &AuthorizationPolicy) -> bool {
    let (_, ns) = name_ns(meta);
    if ns != ctx.id.namespace && ns != ROOT_NAMESPACE {
        return false;
    }
    if spec.target_ref.is_some() || spec.target_refs.as_ref().is_some_and(|t| !t.is_empty()) {
        return false;
    }
    let empty = BTreeMap::new();
    let selector = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .unwrap_or(&empty);
    selector
        .iter()
        .all(|(k, v)| ctx.id.labels.get(k) == Some(v))
}

/// `istio.io/dry-run` parsed as Go's `strconv.ParseBool` true values.
fn dry_run(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(DRY_RUN_ANNOTATION))
        .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"))
}
