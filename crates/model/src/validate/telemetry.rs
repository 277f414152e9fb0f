//! Telemetry validation (Istio's rules and the CRD's structural messages).
//!
//! As for the security kinds, the CRD's schema and CEL rules are checked first (provider names
//! required and non-empty, `customMetric` non-empty, tag override UPSERT/REMOVE rules, sampling
//! 0..100, durations, one-of fields), then Istio's `ValidateTelemetry` (provider names, tag
//! overrides, warnings for several tracing entries or providers, CEL access-log filters).

mod cel;

use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::telemetry::{
    AccessLogging, CustomTag, Metrics, ProviderRef, TagOperation, Telemetry, Tracing,
};
use crate::validate::security::policy::{self, Layers};
use crate::validate::virtual_service::util;

/// Parses `expr` as the CEL subset access-log filters accept (cel-go's error text on failure).
/// Public only so the fuzz targets (`fuzz/`) can reach the parser; not part of the API.
#[doc(hidden)]
pub fn parse_cel(expr: &str) -> Result<(), String> {
    cel::parse(expr)
}

/// Validate a Telemetry.
pub fn validate(obj: &CustomObject<Telemetry>, r: &mut Report) {
    let default = Telemetry::default();
    let spec = obj.spec.as_ref().unwrap_or(&default);
    let mut layers = Layers::default();
    policy::attachment(
        &mut layers,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        spec.target_refs.as_ref(),
    );
    for (i, t) in spec.tracing.iter().flatten().enumerate() {
        tracing_crd(&idx("spec.tracing", i), t, &mut layers.crd);
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        metrics_crd(&idx("spec.metrics", i), m, &mut layers.crd);
    }
    for (i, l) in spec.access_logging.iter().flatten().enumerate() {
        providers_crd(
            &idx("spec.accessLogging", i),
            l.providers.as_deref(),
            &mut layers.crd,
        );
    }

    let hook = &mut layers.hook;
    metrics_webhook(spec.metrics.as_deref().unwrap_or_default(), hook);
    tracing_webhook(spec.tracing.as_deref().unwrap_or_default(), hook);
    access_logging_webhook(spec.access_logging.as_deref().unwrap_or_default(), hook);
    layers.finish(r);
}

/// `name` of every `ProviderRef`: required, at least one character.
fn providers_crd(parent: &str, providers: Option<&[ProviderRef]>, r: &mut Report) {
    for (j, p) in providers.unwrap_or_default().iter().enumerate() {
        let np = join(&idx(&join(parent, "providers"), j), "name");
        match &p.name {
            None => policy::required(r, &np),
            Some(n) => policy::min_length(r, &np, n, 1),
        }
    }
}

/// A required, non-empty string field of the CRD.
fn required_non_empty(r: &mut Report, path: &str, v: Option<&String>) {
    match v {
        None => policy::required(r, path),
        Some(s) => policy::min_length(r, path, s, 1),
    }
}

fn tracing_crd(tp: &str, t: &Tracing, r: &mut Report) {
    providers_crd(tp, t.providers.as_deref(), r);
    if let Some(p) = t.random_sampling_percentage {
        let sp = join(tp, "randomSamplingPercentage");
        if p < 0.0 {
            r.error(
                &sp,
                format!(
                    "{sp}: Invalid value: {p}: {sp} in body should be greater than or equal to 0"
                ),
            );
        } else if p > 100.0 {
            r.error(
                &sp,
                format!(
                    "{sp}: Invalid value: {p}: {sp} in body should be less than or equal to 100"
                ),
            );
        }
    }
    for (name, tag) in t.custom_tags.iter().flatten() {
        custom_tag_crd(&join(&join(tp, "customTags"), name), tag, r);
    }
}

fn custom_tag_crd(path: &str, tag: &CustomTag, r: &mut Report) {
    let set = usize::from(tag.literal.is_some())
        + usize::from(tag.environment.is_some())
        + usize::from(tag.header.is_some())
        + usize::from(tag.formatter.is_some());
    policy::one_of(r, path, set);
    if let Some(l) = &tag.literal {
        required_non_empty(r, &join(&join(path, "literal"), "value"), l.value.as_ref());
    }
    if let Some(e) = &tag.environment {
        required_non_empty(
            r,
            &join(&join(path, "environment"), "name"),
            e.name.as_ref(),
        );
    }
    if let Some(h) = &tag.header {
        required_non_empty(r, &join(&join(path, "header"), "name"), h.name.as_ref());
    }
    if let Some(f) = &tag.formatter {
        required_non_empty(
            r,
            &join(&join(path, "formatter"), "value"),
            f.value.as_ref(),
        );
    }
}

fn metrics_crd(mp: &str, m: &Metrics, r: &mut Report) {
    providers_crd(mp, m.providers.as_deref(), r);
    if let Some(d) = &m.reporting_interval {
        util::crd_duration(r, &join(mp, "reportingInterval"), d);
    }
    for (k, o) in m.overrides.iter().flatten().enumerate() {
        let op = idx(&join(mp, "overrides"), k);
        if let Some(sel) = &o.match_ {
            let sp = join(&op, "match");
            let set = usize::from(sel.metric.is_some()) + usize::from(sel.custom_metric.is_some());
            policy::one_of(r, &sp, set);
            if let Some(c) = &sel.custom_metric {
                policy::min_length(r, &join(&sp, "customMetric"), c, 1);
            }
        }
        for (name, t) in o.tag_overrides.iter().flatten() {
            let tp = join(&join(&op, "tagOverrides"), name);
            match (t.operation, &t.value) {
                (Some(TagOperation::Upsert), None) => policy::cel_eval_error(
                    r,
                    &tp,
                    "object",
                    "no such key: value",
                    "value must be set when operation is UPSERT",
                ),
                (Some(TagOperation::Upsert), Some(v)) if v.is_empty() => {
                    policy::cel(
                        r,
                        &tp,
                        "object",
                        "value must be set when operation is UPSERT",
                    );
                }
                (Some(TagOperation::Remove), Some(_)) => {
                    policy::cel(
                        r,
                        &tp,
                        "object",
                        "value must not be set when operation is REMOVE",
                    );
                }
                _ => {}
            }
        }
    }
}

/// Istio's `validateTelemetryProviders`: one error for the first unnamed provider.
fn providers_webhook(parent: &str, providers: Option<&[ProviderRef]>, r: &mut Report) {
    let first_bad = providers
        .unwrap_or_default()
        .iter()
        .position(|p| p.name.as_deref().unwrap_or_default().is_empty());
    if let Some(j) = first_bad {
        r.error(
            join(&idx(&join(parent, "providers"), j), "name"),
            "providers.name may not be empty",
        );
    }
}

fn metrics_webhook(metrics: &[Metrics], r: &mut Report) {
    for (i, m) in metrics.iter().enumerate() {
        let mp = idx("spec.metrics", i);
        providers_webhook(&mp, m.providers.as_deref(), r);
        for (k, o) in m.overrides.iter().flatten().enumerate() {
            let op = idx(&join(&mp, "overrides"), k);
            for (name, t) in o.tag_overrides.iter().flatten() {
                let tp = join(&join(&op, "tagOverrides"), name);
                if name.is_empty() {
                    r.warn(&tp, "tagOverrides.name may not be empty");
                }
                let value = t.value.as_deref().unwrap_or_default();
                match t.operation.unwrap_or_default() {
                    TagOperation::Upsert if value.is_empty() => {
                        r.error(
                            &tp,
                            "tagOverrides.value must be set when operation is UPSERT",
                        );
                    }
                    TagOperation::Remove if !value.is_empty() => {
                        r.error(
                            &tp,
                            "tagOverrides.value may only be set when operation is UPSERT",
                        );
                    }
                    _ => {}
                }
            }
            let custom = o.match_.as_ref().and_then(|s| s.custom_metric.as_deref());
            if custom == Some("") {
                r.error(
                    join(&join(&op, "match"), "customMetric"),
                    "customMetric may not be empty",
                );
            }
        }
    }
}

fn tracing_webhook(tracing: &[Tracing], r: &mut Report) {
    if tracing.len() > 1 {
        r.warn(
            "spec.tracing",
            "multiple tracing is not currently supported",
        );
    }
    for (i, t) in tracing.iter().enumerate() {
        let tp = idx("spec.tracing", i);
        if t.providers.as_ref().is_some_and(|p| p.len() > 1) {
            r.warn(
                join(&tp, "providers"),
                "multiple providers is not currently supported",
            );
        }
        providers_webhook(&tp, t.providers.as_deref(), r);
        let p = t.random_sampling_percentage.unwrap_or_default();
        if !(0.0..=100.0).contains(&p) {
            r.error(
                join(&tp, "randomSamplingPercentage"),
                "randomSamplingPercentage must be in range [0.0, 100.0]",
            );
        }
        for (name, tag) in t.custom_tags.iter().flatten() {
            let cp = join(&join(&tp, "customTags"), name);
            if name.is_empty() {
                r.error(&cp, "tag name may not be empty");
            }
            let empty = |v: &Option<String>| v.as_deref().unwrap_or_default().is_empty();
            let problem = match (&tag.literal, &tag.environment, &tag.header) {
                (Some(l), _, _) => {
                    empty(&l.value).then_some(("literal", "literal tag value may not be empty"))
                }
                (None, Some(e), _) => empty(&e.name)
                    .then_some(("environment", "environment tag name may not be empty")),
                (None, None, Some(h)) => {
                    empty(&h.name).then_some(("header", "header tag name may not be empty"))
                }
                (None, None, None) => None,
            };
            if let Some((field, msg)) = problem {
                r.error(join(&cp, field), msg);
            }
        }
    }
}

fn access_logging_webhook(logging: &[AccessLogging], r: &mut Report) {
    for (i, l) in logging.iter().enumerate() {
        let lp = idx("spec.accessLogging", i);
        if let Some(f) = &l.filter
            && let Err(e) = cel::parse(f.expression.as_deref().unwrap_or_default())
        {
            r.error(
                join(&join(&lp, "filter"), "expression"),
                format!("must be a valid CEL expression, {e}"),
            );
        }
        providers_webhook(&lp, l.providers.as_deref(), r);
    }
}
