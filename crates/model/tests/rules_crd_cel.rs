//! Table tests for CEL rules of Istio's CRDs, reported as the API server reports a failed rule:
//! the `workloadSelector.matchLabels` rules a DestinationRule shares with every kind embedding
//! `istio.type.v1beta1.WorkloadSelector`, and the three rules on server TLS settings that
//! Gateway servers and Sidecar ingress listeners share.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use egress_model::decode::{DecodeOptions, Outcome, decode_document};
use egress_model::diag::Diagnostic;
use egress_model::yaml::parse_stream;

fn net(kind: &str, spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: t\nspec:\n{body}")
}

fn errors(text: &str) -> Vec<Diagnostic> {
    let mut docs = parse_stream(text).expect("test YAML parses");
    let opts = DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    };
    match decode_document("test.yaml", docs.remove(0), &opts) {
        Outcome::Valid(_) => Vec::new(),
        Outcome::Invalid(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
        Outcome::Unsupported { .. } => panic!("unsupported kind:\n{text}"),
    }
}

/// The messages of the errors on `field`.
fn on(text: &str, field: &str) -> Vec<String> {
    errors(text)
        .into_iter()
        .filter(|d| d.field == field)
        .map(|d| d.message)
        .collect()
}

const ML: &str = "spec.workloadSelector.matchLabels";

/// (matchLabels, field, CEL message expected on it).
#[rustfmt::skip]
const SELECTOR: &[(&str, &str, &str)] = &[
    ("{app: \"a*\"}", "spec.workloadSelector.matchLabels.app", "spec.workloadSelector.matchLabels.app: Invalid value: \"string\": wildcard not allowed in label value match"),
    ("{\"a*\": b}", ML, "spec.workloadSelector.matchLabels: Invalid value: \"object\": wildcard not allowed in label key match"),
    ("{\"\": b}", ML, "spec.workloadSelector.matchLabels: Invalid value: \"object\": key must not be empty"),
];

#[test]
fn destination_rule_workload_selector_cel_rules() {
    for (labels, field, want) in SELECTOR {
        let text = net(
            "DestinationRule",
            &format!("host: a.example.com\nworkloadSelector:\n  matchLabels: {labels}"),
        );
        let got = on(&text, field);
        assert!(got.iter().any(|m| m == want), "{labels}: {got:?}");
        // The CRD's rule comes before the webhook's message on the same problem.
        let all: Vec<String> = errors(&text).into_iter().map(|d| d.message).collect();
        let cel = all.iter().position(|m| m == want);
        let hook = all
            .iter()
            .position(|m| m.contains("is not supported in selector"));
        assert!(cel < hook, "{all:?}");
    }
    let long = "v".repeat(64);
    let text = net(
        "DestinationRule",
        &format!("host: a.example.com\nworkloadSelector:\n  matchLabels: {{app: {long}}}"),
    );
    assert_eq!(
        on(&text, "spec.workloadSelector.matchLabels.app"),
        ["spec.workloadSelector.matchLabels.app: Too long: may not be more than 63 bytes"]
    );
    // Clean labels pass both layers.
    let ok = net(
        "DestinationRule",
        "host: a.example.com\nworkloadSelector:\n  matchLabels: {app: a}",
    );
    assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
}

const RULE1: &str = "only one of credentialNames or tlsCertificates can be set";
const RULE2: &str = "only one of credentialName or credentialNames can be set";
const RULE3: &str = "only one of credentialName or tlsCertificates can be set";

/// (TLS fields beside `mode: SIMPLE`, the CEL messages on the `tls` object). The third rule's
/// expression counts `credentialNames` and `tlsCertificates`, whatever its message says.
#[rustfmt::skip]
const TLS: &[(&str, &[&str])] = &[
    ("credentialNames: [a], tlsCertificates: [{serverCertificate: c, privateKey: k}]", &[RULE1, RULE3]),
    ("credentialName: a, credentialNames: [b]", &[RULE2]),
    ("credentialName: a, credentialNames: [b], tlsCertificates: [{serverCertificate: c, privateKey: k}]", &[RULE1, RULE2, RULE3]),
    ("credentialName: a, tlsCertificates: [{serverCertificate: c, privateKey: k}]", &[]),
    ("credentialName: a", &[]),
];

#[test]
fn server_tls_cel_rules_on_gateways_and_sidecars() {
    for (fields, want) in TLS {
        let tls = format!("{{mode: SIMPLE, {fields}}}");
        for (kind, spec, path) in [
            (
                "Gateway",
                format!(
                    "servers:\n- port: {{number: 443, name: https, protocol: HTTPS}}\n  hosts: [\"*\"]\n  tls: {tls}"
                ),
                "spec.servers[0].tls",
            ),
            (
                "Sidecar",
                format!(
                    "ingress:\n- port: {{number: 8443, name: https, protocol: HTTPS}}\n  defaultEndpoint: 127.0.0.1:8080\n  tls: {tls}"
                ),
                "spec.ingress[0].tls",
            ),
        ] {
            let got: Vec<String> = on(&net(kind, &spec), path)
                .into_iter()
                .filter(|m| m.contains("Invalid value: \"object\""))
                .collect();
            let want: Vec<String> = want
                .iter()
                .map(|m| format!("{path}: Invalid value: \"object\": {m}"))
                .collect();
            assert_eq!(got, want, "{kind} {fields}");
        }
    }
}
