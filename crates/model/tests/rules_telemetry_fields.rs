//! Table tests for the Telemetry API, field by field (`telemetry.istio.io/v1`): every field of
//! tracing (custom tags of all four kinds, `formatter` included), metrics (overrides, tag
//! overrides, reporting interval), access logging (filter, match, providers) and the
//! attachment (`selector`, `targetRef`, `targetRefs`) decodes and validates; a field the API
//! does not have is refused at its path, as the API server refuses it.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{decode, render};
use egress_model::decode::Outcome;

fn tel(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: t\nspec:\n{body}"
    )
}

/// Every field of the API, one spec per attachment and per custom-tag kind.
#[rustfmt::skip]
const VALID: &[&str] = &[
    "targetRefs: [{group: \"\", kind: Service, name: svc}, {group: networking.istio.io, kind: ServiceEntry, name: se}]\ntracing:\n- providers: [{name: zipkin}]\n  match: {mode: CLIENT}\n  randomSamplingPercentage: 10\n  disableSpanReporting: false\n  useRequestIdForTraceSampling: true\n  enableIstioTags: false\n  customTags:\n    lit: {literal: {value: v}}\n    env: {environment: {name: E, defaultValue: d}}\n    hdr: {header: {name: x-h, defaultValue: d}}\n    fmt: {formatter: {value: \"%REQ(x-user)%\"}}",
    "targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\nmetrics:\n- providers: [{name: prometheus}]\n  reportingInterval: 15s\n  overrides:\n  - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}\n    disabled: false\n    tagOverrides:\n      host: {operation: UPSERT, value: request.host}\n      code: {operation: REMOVE}\n  - match: {customMetric: my_metric, mode: SERVER}",
    "selector: {matchLabels: {app: a}}\naccessLogging:\n- providers: [{name: envoy}]\n  disabled: false\n  match: {mode: SERVER}\n  filter: {expression: \"response.code >= 400\"}",
];

/// (spec, field, message): errors, the CRD's messages first.
#[rustfmt::skip]
const ERRORS: &[(&str, &str, &str)] = &[
    ("tracing: [{customTags: {f: {formatter: {}}}}]", "spec.tracing[0].customTags.f.formatter.value", "spec.tracing[0].customTags.f.formatter.value: Required value"),
    ("tracing: [{customTags: {f: {formatter: {value: \"\"}}}}]", "spec.tracing[0].customTags.f.formatter.value", "in body should be at least 1 chars long"),
    ("tracing: [{customTags: {f: {formatter: {value: x}, literal: {value: z}}}}]", "spec.tracing[0].customTags.f", "must validate one and only one schema (oneOf). Found 2 valid alternatives"),
    ("metrics: [{reportingInterval: 0.5ms}]", "spec.metrics[0].reportingInterval", "spec.metrics[0].reportingInterval: Invalid value: \"string\": must be a valid duration greater than 1ms"),
    ("metrics: [{overrides: [{match: {customMetric: \"\"}}]}]", "spec.metrics[0].overrides[0].match.customMetric", "in body should be at least 1 chars long"),
    ("accessLogging: [{providers: [{name: \"\"}]}]", "spec.accessLogging[0].providers[0].name", "in body should be at least 1 chars long"),
    ("targetRef: {kind: Service, name: a, namespace: other}", "spec.targetRef.namespace", "cross namespace referencing is not currently supported"),
];

/// (spec, path of the unknown field): one unknown field at every level of the API.
#[rustfmt::skip]
const UNKNOWN: &[(&str, &str)] = &[
    ("bogus: 1", "spec.bogus"),
    ("tracing: [{bogus: 1}]", "spec.tracing[0].bogus"),
    ("tracing: [{match: {bogus: 1}}]", "spec.tracing[0].match.bogus"),
    ("tracing: [{customTags: {t: {bogus: {}}}}]", "spec.tracing[0].customTags.t.bogus"),
    ("tracing: [{customTags: {t: {formatter: {value: x, bogus: 1}}}}]", "spec.tracing[0].customTags.t.formatter.bogus"),
    ("tracing: [{customTags: {t: {header: {name: x, bogus: 1}}}}]", "spec.tracing[0].customTags.t.header.bogus"),
    ("metrics: [{bogus: 1}]", "spec.metrics[0].bogus"),
    ("metrics: [{overrides: [{bogus: 1}]}]", "spec.metrics[0].overrides[0].bogus"),
    ("metrics: [{overrides: [{match: {bogus: 1}}]}]", "spec.metrics[0].overrides[0].match.bogus"),
    ("metrics: [{overrides: [{tagOverrides: {t: {bogus: 1}}}]}]", "spec.metrics[0].overrides[0].tagOverrides.t.bogus"),
    ("accessLogging: [{bogus: 1}]", "spec.accessLogging[0].bogus"),
    ("accessLogging: [{filter: {bogus: 1}}]", "spec.accessLogging[0].filter.bogus"),
    ("accessLogging: [{providers: [{name: envoy, bogus: 1}]}]", "spec.accessLogging[0].providers[0].bogus"),
    ("targetRefs: [{kind: Service, name: a, bogus: 1}]", "spec.targetRefs[0].bogus"),
];

#[test]
fn every_field_of_the_api_is_accepted() {
    for spec in VALID {
        match decode(&tel(spec)) {
            Outcome::Valid(d) => assert!(d.warnings.is_empty(), "{}", render(&d.warnings)),
            Outcome::Invalid(d) => panic!("want valid, got:\n{}\n{spec}", render(&d)),
            Outcome::Unsupported { .. } => panic!("unsupported"),
        }
    }
}

#[test]
fn field_errors_in_istio_words() {
    for (spec, field, msg) in ERRORS {
        let Outcome::Invalid(d) = decode(&tel(spec)) else {
            panic!("want rejection of\n{spec}");
        };
        assert!(
            d.iter()
                .any(|d| d.is_error() && d.field == *field && d.message.contains(msg)),
            "want {msg:?} on {field}, got:\n{}",
            render(&d)
        );
    }
}

#[test]
fn unknown_fields_are_refused_at_their_path() {
    for (spec, field) in UNKNOWN {
        let Outcome::Invalid(d) = decode(&tel(spec)) else {
            panic!("want rejection of\n{spec}");
        };
        let want = format!("unknown field {field:?}");
        assert!(
            d.iter()
                .any(|d| d.is_error() && d.field == *field && d.message == want),
            "want {want} on {field}, got:\n{}",
            render(&d)
        );
    }
}
