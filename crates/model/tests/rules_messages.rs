//! Table tests for messages worded as their source words them, by class: a `uint32` field of an
//! Istio CRD out of its bounds (the API server's `should be greater than or equal to 0`, before
//! any webhook check), a Service port out of range (the API server's Service rule), a key set
//! twice in one YAML mapping (`key "x" already set in map`), and the `istio.io/dry-run`
//! annotation checks of Istio's webhook.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{decode, render};
use egress_model::decode::Outcome;
use egress_model::diag::Diagnostic;
use egress_model::yaml::parse_stream;

fn object(api: &str, kind: &str, meta: &str, spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: t\n{meta}spec:\n{body}")
}

fn net(kind: &str, spec: &str) -> String {
    object("networking.istio.io/v1", kind, "", spec)
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match decode(text) {
        Outcome::Valid(_) => Vec::new(),
        Outcome::Invalid(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
        Outcome::Unsupported { .. } => panic!("unsupported kind:\n{text}"),
    }
}

/// The errors on `field`, messages only.
fn on(text: &str, field: &str) -> Vec<String> {
    errors(text)
        .into_iter()
        .filter(|d| d.field == field)
        .map(|d| d.message)
        .collect()
}

/// (kind, spec with `{n}` for the number, field, whether the webhook checks 1..65535): every
/// `uint32` port-like field.
#[rustfmt::skip]
const UINT32_FIELDS: &[(&str, &str, &str, bool)] = &[
    ("DestinationRule", "host: a.example.com\ntrafficPolicy:\n  portLevelSettings: [{port: {number: {n}}, tls: {mode: SIMPLE}}]", "spec.trafficPolicy.portLevelSettings[0].port.number", false),
    ("DestinationRule", "host: a.example.com\ntrafficPolicy:\n  tunnel: {targetHost: proxy.example.com, targetPort: {n}}", "spec.trafficPolicy.tunnel.targetPort", true),
    ("VirtualService", "hosts: [a.example.com]\nhttp:\n- match: [{port: {n}}]\n  route: [{destination: {host: a.example.com}}]", "spec.http[0].match[0].port", true),
    ("VirtualService", "hosts: [a.example.com]\nhttp:\n- route: [{destination: {host: a.example.com, port: {number: {n}}}}]", "spec.http[0].route[0].destination.port.number", true),
    ("VirtualService", "hosts: [a.example.com]\nhttp:\n- redirect: {uri: /x, port: {n}}", "spec.http[0].redirect.port", true),
    ("VirtualService", "hosts: [a.example.com]\ntcp:\n- match: [{port: {n}}]\n  route: [{destination: {host: a.example.com}}]", "spec.tcp[0].match[0].port", true),
    ("ServiceEntry", "hosts: [a.example.com]\nports: [{number: {n}, name: http, protocol: HTTP}]", "spec.ports[0].number", true),
    ("Gateway", "servers: [{port: {number: {n}, name: http, protocol: HTTP}, hosts: [\"*\"]}]", "spec.servers[0].port.number", true),
    ("Sidecar", "egress: [{port: {number: {n}, name: http, protocol: HTTP}, hosts: [\"*/*\"]}]", "spec.egress[0].port.number", true),
];

#[test]
fn uint32_fields_out_of_bounds_in_the_api_servers_words() {
    for (kind, spec, field, webhook) in UINT32_FIELDS {
        for (n, bound) in [
            ("-1", "greater than or equal to 0"),
            ("4294967296", "less than or equal to 4294967295"),
        ] {
            let text = net(kind, &spec.replace("{n}", n));
            assert_eq!(
                on(&text, field),
                [format!(
                    "{field}: Invalid value: {n}: {field} in body should be {bound}"
                )],
                "{kind} {n}:\n{}",
                render(&errors(&text))
            );
        }
        // In bounds, the webhook's port rule applies where Istio has one.
        let text = net(kind, &spec.replace("{n}", "70000"));
        let got = on(&text, field);
        assert_eq!(
            got.iter().any(|m| m.contains("70000")
                && (m.contains("must be in the range 1..65535") || m.contains("1-65535"))),
            *webhook,
            "{kind}: {got:?}"
        );
    }
}

#[test]
fn service_ports_out_of_range_in_the_api_servers_words() {
    for n in ["-1", "0", "65536"] {
        let text = object(
            "v1",
            "Service",
            "",
            &format!("ports: [{{name: http, port: {n}}}]"),
        );
        assert_eq!(
            on(&text, "spec.ports[0].port"),
            [format!(
                "spec.ports[0].port: Invalid value: {n}: must be between 1 and 65535, inclusive"
            )]
        );
    }
}

#[test]
fn a_key_set_twice_in_a_mapping() {
    for (text, key, line) in [
        ("a: 1\nb: 2\na: 3\n", "a", 3),
        ("spec:\n  hosts: [a]\n  hosts: [b]\n", "hosts", 3),
        ("m: {x: 1, x: 2}\n", "x", 1),
    ] {
        let err = parse_stream(text).unwrap_err();
        assert_eq!(err.message, format!("key \"{key}\" already set in map"));
        assert_eq!(err.pos.line, line, "{text}");
    }
}

/// (kind, annotation value, spec, message or none): the `istio.io/dry-run` checks.
#[rustfmt::skip]
const DRY_RUN: &[(&str, &str, &str, Option<&str>)] = &[
    ("AuthorizationPolicy", "\"true\"", "action: DENY\nrules: [{}]", None),
    ("AuthorizationPolicy", "\"False\"", "action: ALLOW", None),
    ("AuthorizationPolicy", "\"1\"", "{}", None),
    ("AuthorizationPolicy", "\"yes\"", "action: ALLOW", Some("default/t has annotation istio.io/dry-run with invalid value (yes): strconv.ParseBool: parsing \"yes\": invalid syntax")),
    ("AuthorizationPolicy", "\"true\"", "action: AUDIT\nrules: [{}]", Some("the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action AUDIT in default/t")),
    ("Sidecar", "\"true\"", "egress: [{hosts: [\"*/*\"]}]", Some("default/t has unsupported annotation istio.io/dry-run, please remove the annotation")),
    ("ServiceEntry", "\"false\"", "hosts: [a.example.com]\nresolution: DNS\nports: [{number: 80, name: http, protocol: HTTP}]", Some("default/t has unsupported annotation istio.io/dry-run, please remove the annotation")),
];

#[test]
fn dry_run_annotation_in_istios_words() {
    let field = "metadata.annotations.istio.io/dry-run";
    for (kind, value, spec, want) in DRY_RUN {
        let api = if *kind == "AuthorizationPolicy" {
            "security.istio.io/v1"
        } else {
            "networking.istio.io/v1"
        };
        let meta = format!("  annotations:\n    istio.io/dry-run: {value}\n");
        let text = object(api, kind, &meta, spec);
        let got = on(&text, field);
        assert_eq!(
            got,
            want.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            "{kind} {value}"
        );
    }
    // Kubernetes kinds never reach Istio's webhook.
    let svc = object(
        "v1",
        "Service",
        "  annotations:\n    istio.io/dry-run: \"maybe\"\n",
        "ports: [{name: http, port: 80}]",
    );
    assert!(on(&svc, field).is_empty());
}
