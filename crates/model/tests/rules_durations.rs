//! Table tests for duration fields, by class: every `google.protobuf.Duration` field of Istio's
//! CRDs carries the CEL rule `duration(self) >= duration('1ms')`, reported as the API server
//! reports a failed rule (`<path>: Invalid value: "string": must be a valid duration greater
//! than 1ms`); the fields whose schema opts out (TCP `idleTimeout`, cookie `ttl`) get the
//! webhook's `ValidateDuration` only; values that pass the rule still meet the webhook's
//! millisecond precision.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{decode, render};
use egress_model::decode::Outcome;
use egress_model::diag::Diagnostic;

const RULE: &str = "must be a valid duration greater than 1ms";

fn errors(text: &str) -> Vec<Diagnostic> {
    match decode(text) {
        Outcome::Valid(_) => Vec::new(),
        Outcome::Invalid(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
        Outcome::Unsupported { .. } => panic!("unsupported kind:\n{text}"),
    }
}

/// `spec` under a resource of `kind` (`networking.istio.io/v1` unless the kind says otherwise).
fn doc(kind: &str, spec: &str) -> String {
    let api = if kind == "Telemetry" {
        "telemetry.istio.io/v1"
    } else {
        "networking.istio.io/v1"
    };
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: t\nspec:\n{body}")
}

/// Every duration field of the CRDs, as (kind, spec with `{d}` where the duration goes, field).
fn crd_fields() -> Vec<(&'static str, &'static str, &'static str)> {
    const DR: &str = "host: a.example.com\ntrafficPolicy:\n";
    vec![
        ("DestinationRule", "tcp: {connectTimeout: {d}}", "connectionPool.tcp.connectTimeout"),
        ("DestinationRule", "tcp: {maxConnectionDuration: {d}}", "connectionPool.tcp.maxConnectionDuration"),
        ("DestinationRule", "tcp: {tcpKeepalive: {time: {d}}}", "connectionPool.tcp.tcpKeepalive.time"),
        ("DestinationRule", "tcp: {tcpKeepalive: {interval: {d}}}", "connectionPool.tcp.tcpKeepalive.interval"),
        ("DestinationRule", "http: {idleTimeout: {d}}", "connectionPool.http.idleTimeout"),
        ("DestinationRule", "http: {http2KeepAlive: {interval: {d}, timeout: 5s}}", "connectionPool.http.http2KeepAlive.interval"),
        ("DestinationRule", "http: {http2KeepAlive: {interval: 5s, timeout: {d}}}", "connectionPool.http.http2KeepAlive.timeout"),
        ("DestinationRule", "OD interval: {d}", "outlierDetection.interval"),
        ("DestinationRule", "OD baseEjectionTime: {d}", "outlierDetection.baseEjectionTime"),
        ("DestinationRule", "LB warmupDurationSecs: {d}", "loadBalancer.warmupDurationSecs"),
        ("DestinationRule", "LB warmup: {duration: {d}}", "loadBalancer.warmup.duration"),
        ("DestinationRule", "RB budgetInterval: {d}", "retryBudget.budgetInterval"),
        ("Sidecar", "inboundConnectionPool: {tcp: {connectTimeout: {d}}}", "inboundConnectionPool.tcp.connectTimeout"),
        ("Sidecar", "inboundConnectionPool: {http: {http2KeepAlive: {interval: {d}, timeout: 5s}}}", "inboundConnectionPool.http.http2KeepAlive.interval"),
        ("Sidecar", "ingress: [{port: {number: 80, protocol: HTTP, name: http}, connectionPool: {tcp: {maxConnectionDuration: {d}}}}]", "ingress[0].connectionPool.tcp.maxConnectionDuration"),
        ("VirtualService", "VS timeout: {d}", "http[0].timeout"),
        ("VirtualService", "VS retries: {attempts: 1, perTryTimeout: {d}}", "http[0].retries.perTryTimeout"),
        ("VirtualService", "VS retries: {attempts: 1, backoff: {d}}", "http[0].retries.backoff"),
        ("VirtualService", "VS fault: {delay: {fixedDelay: {d}}}", "http[0].fault.delay.fixedDelay"),
        ("VirtualService", "VS corsPolicy: {maxAge: {d}}", "http[0].corsPolicy.maxAge"),
        ("Telemetry", "metrics: [{reportingInterval: {d}}]", "metrics[0].reportingInterval"),
    ]
    .into_iter()
    .map(|(kind, spec, field)| {
        let spec: &'static str = match (kind, spec.split_once(' ')) {
            ("DestinationRule", Some(("OD", rest))) => leak(format!("{DR}  outlierDetection: {{{rest}}}")),
            ("DestinationRule", Some(("LB", rest))) => leak(format!("{DR}  loadBalancer: {{simple: ROUND_ROBIN, {rest}}}")),
            ("DestinationRule", Some(("RB", rest))) => leak(format!("{DR}  retryBudget: {{{rest}}}")),
            ("DestinationRule", _) => leak(format!("{DR}  connectionPool: {{{spec}}}")),
            ("Sidecar", _) => leak(format!("egress: [{{hosts: [\"./*\"]}}]\n{spec}")),
            ("VirtualService", Some((_, rest))) => leak(format!(
                "hosts: [a.example.com]\nhttp:\n- route: [{{destination: {{host: a.example.com}}}}]\n  {rest}"
            )),
            _ => spec,
        };
        let prefix = if kind == "DestinationRule" { "spec.trafficPolicy." } else { "spec." };
        (kind, spec, leak(format!("{prefix}{field}")))
    })
    .collect()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The one error on `field`, which must exist.
fn error_on(text: &str, field: &str) -> String {
    let errs = errors(text);
    let on: Vec<&Diagnostic> = errs.iter().filter(|d| d.field == field).collect();
    assert_eq!(
        on.len(),
        1,
        "want one error on {field}, got:\n{}\n{text}",
        render(&errs)
    );
    on[0].message.clone()
}

#[test]
fn crd_rule_on_every_duration_field() {
    for (kind, spec, field) in crd_fields() {
        for bad in ["0s", "\"0\"", "0.5ms", "999us", "-5s"] {
            let text = doc(kind, &spec.replace("{d}", bad));
            assert_eq!(
                error_on(&text, field),
                format!("{field}: Invalid value: \"string\": {RULE}"),
                "{bad}"
            );
        }
        let text = doc(kind, &spec.replace("{d}", "5x"));
        assert_eq!(
            error_on(&text, field),
            format!(
                "{field}: Invalid value: \"string\": type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: {RULE}"
            ),
        );
        for good in ["1s", "10s", "1h2m"] {
            let text = doc(kind, &spec.replace("{d}", good));
            let errs = errors(&text);
            assert!(
                errs.iter().all(|d| d.field != field),
                "{good} on {field}:\n{}",
                render(&errs)
            );
        }
    }
}

#[test]
fn webhook_precision_after_the_crd_rule() {
    for (kind, spec, field) in crd_fields() {
        if field.ends_with("reportingInterval") {
            continue; // Telemetry's webhook does not check durations.
        }
        let text = doc(kind, &spec.replace("{d}", "1.5ms"));
        assert_eq!(
            error_on(&text, field),
            "only durations to ms precision are supported",
            "{field}"
        );
    }
}

#[test]
fn fields_without_the_crd_rule_get_the_webhook_check() {
    let pool = |tcp: &str| {
        doc(
            "DestinationRule",
            &format!("host: a.example.com\ntrafficPolicy:\n  connectionPool: {{tcp: {{{tcp}}}}}"),
        )
    };
    let field = "spec.trafficPolicy.connectionPool.tcp.idleTimeout";
    for (value, want) in [
        ("0.5ms", Some("duration must be greater than 1ms")),
        ("-1s", Some("duration must be greater than 1ms")),
        (
            "1.5ms",
            Some("only durations to ms precision are supported"),
        ),
        ("0s", None),
        ("1h", None),
    ] {
        let errs = errors(&pool(&format!("idleTimeout: {value}")));
        let got: Vec<&str> = errs
            .iter()
            .filter(|d| d.field == field)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{value}");
    }
    // The cookie TTL has no rule at all: zero means a session cookie.
    let text = doc(
        "DestinationRule",
        "host: a.example.com\ntrafficPolicy:\n  loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: 0s}}}",
    );
    assert!(errors(&text).is_empty(), "{}", render(&errors(&text)));
}
