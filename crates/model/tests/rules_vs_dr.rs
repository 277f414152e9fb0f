//! Table tests for VirtualService and DestinationRule: every rule of istio-egress.md §2.3 /
//! §2.4 (and the exportTo rules), decoded and validated through the public API, with Istio's
//! exact messages and the field paths asserted; the seed's egress configuration validates
//! cleanly; and a round-trip property test of the typed models.

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::render;
use egress_model::decode::{DecodeOptions, Outcome, decode_document};
use egress_model::diag::{Diagnostic, Severity};
use egress_model::resources::destination_rule::{ClientTlsMode, ClientTlsSettings};
use egress_model::resources::virtual_service::VirtualService;
use egress_model::yaml::parse_stream;

#[path = "rules_vs_dr/dr.rs"]
mod dr_rules;
#[path = "rules_vs_dr/roundtrip.rs"]
mod roundtrip;
#[path = "rules_vs_dr/vs_http.rs"]
mod vs_http_rules;
#[path = "rules_vs_dr/vs_l4.rs"]
mod vs_l4_rules;
#[path = "rules_vs_dr/vs.rs"]
mod vs_rules;

const EGRESS_HOST: &str = "asm-egress-test.aks-istio-egress.svc.cluster.local";

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

fn decode(text: &str) -> Outcome {
    let mut docs = parse_stream(text).expect("test YAML parses");
    assert_eq!(docs.len(), 1, "one document per case");
    decode_document("test.yaml", docs.remove(0), &opts())
}

fn indent(spec: &str) -> String {
    spec.lines().map(|l| format!("  {l}\n")).collect()
}

fn vs(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: test\nspec:\n{}",
        indent(spec)
    )
}

fn dr(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: test\nspec:\n{}",
        indent(spec)
    )
}

/// The document must be accepted; its warnings are returned.
fn valid(text: &str) -> Vec<Diagnostic> {
    match decode(text) {
        Outcome::Valid(d) => d.warnings,
        Outcome::Invalid(diags) => panic!("expected valid, got:\n{}\n{text}", render(&diags)),
        Outcome::Unsupported { .. } => panic!("unsupported kind"),
    }
}

/// The document must be rejected with an error on `field` whose message contains `msg`.
fn rejected(text: &str, field: &str, msg: &str) -> Diagnostic {
    match decode(text) {
        Outcome::Invalid(diags) => diags
            .iter()
            .find(|d| d.is_error() && d.field == field && d.message.contains(msg))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no error on {field:?} containing {msg:?}; got:\n{}\n{text}",
                    render(&diags)
                )
            }),
        Outcome::Valid(d) => panic!(
            "expected an error on {field:?} ({msg:?}), but valid; warnings:\n{}\n{text}",
            render(&d.warnings)
        ),
        Outcome::Unsupported { .. } => panic!("unsupported kind"),
    }
}

/// The document must be accepted with a warning on `field` whose message contains `msg`.
fn warned(text: &str, field: &str, msg: &str) {
    let w = valid(text);
    assert!(
        w.iter().any(|d| d.severity == Severity::Warning
            && d.field == field
            && d.message.contains(msg)),
        "no warning on {field:?} containing {msg:?}; got:\n{}\n{text}",
        render(&w)
    );
}

/// The warning must appear whether or not the document is otherwise valid.
fn any_warning(text: &str, field: &str, msg: &str) {
    let diags = decode(text).diagnostics();
    assert!(
        diags.iter().any(|d| d.severity == Severity::Warning
            && d.field == field
            && d.message.contains(msg)),
        "no warning on {field:?} containing {msg:?}; got:\n{}\n{text}",
        render(&diags)
    );
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle present")
        + 1
}

/// A minimal valid HTTP route body, indented under `http:` list items.
const ROUTE: &str = "  route:\n  - destination:\n      host: edition.cnn.com\n";

fn http_vs(extra: &str) -> String {
    vs(&format!(
        "hosts:\n- edition.cnn.com\nhttp:\n- {}{ROUTE}",
        extra.trim_start()
    ))
}

// ---------------------------------------------------------------------------------------------
// The seed's egress configuration and Istio's valid test configs.

fn seed_docs() -> Vec<String> {
    let h = EGRESS_HOST;
    vec![
        dr(&format!("host: {h}\nsubsets:\n- name: cnn\n")),
        vs(&format!(
            "hosts:\n- edition.cnn.com\ngateways:\n- istio-egressgateway\n- mesh\nhttp:\n- match:\n  - gateways:\n    - mesh\n    port: 80\n  route:\n  - destination:\n      host: {h}\n      subset: cnn\n      port:\n        number: 80\n    weight: 100\n- match:\n  - gateways:\n    - istio-egressgateway\n    port: 80\n  route:\n  - destination:\n      host: edition.cnn.com\n      port:\n        number: 80\n    weight: 100\n"
        )),
        vs(&format!(
            "hosts:\n- edition.cnn.com\ngateways:\n- mesh\n- istio-egressgateway\ntls:\n- match:\n  - gateways:\n    - mesh\n    port: 443\n    sniHosts:\n    - edition.cnn.com\n  route:\n  - destination:\n      host: {h}\n      subset: cnn\n      port:\n        number: 443\n- match:\n  - gateways:\n    - istio-egressgateway\n    port: 443\n    sniHosts:\n    - edition.cnn.com\n  route:\n  - destination:\n      host: edition.cnn.com\n      port:\n        number: 443\n    weight: 100\n"
        )),
        dr(&format!(
            "host: {h}\nsubsets:\n- name: cnn\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n    portLevelSettings:\n    - port:\n        number: 80\n      tls:\n        mode: ISTIO_MUTUAL\n        sni: edition.cnn.com\n"
        )),
        vs(&format!(
            "hosts:\n- edition.cnn.com\ngateways:\n- istio-egressgateway\n- mesh\nhttp:\n- match:\n  - gateways:\n    - mesh\n    port: 80\n  route:\n  - destination:\n      host: {h}\n      subset: cnn\n      port:\n        number: 80\n    weight: 100\n- match:\n  - gateways:\n    - istio-egressgateway\n    port: 80\n  route:\n  - destination:\n      host: edition.cnn.com\n      port:\n        number: 443\n    weight: 100\n"
        )),
        dr(
            "host: edition.cnn.com\ntrafficPolicy:\n  loadBalancer:\n    simple: ROUND_ROBIN\n  portLevelSettings:\n  - port:\n      number: 443\n    tls:\n      mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com\n",
        ),
    ]
}

#[test]
fn seed_egress_configuration_is_valid_without_warnings() {
    for doc in seed_docs() {
        let w = valid(&doc);
        assert!(w.is_empty(), "unexpected warnings:\n{}\n{doc}", render(&w));
    }
}

#[test]
fn istio_valid_configs_for_these_kinds() {
    // valid-configs/destination-rule-ssl.yaml (LEAST_CONN is deprecated but valid).
    valid(&dr(
        "host: ssl1.webinf.info\ntrafficPolicy:\n  loadBalancer:\n    simple: LEAST_CONN\n  tls:\n    mode: SIMPLE\n",
    ));
    valid(&dr(
        "host: \"random.webinf.info\"\ntrafficPolicy:\n  loadBalancer:\n    simple: RANDOM\n",
    ));
    // valid-configs/rule-route-via-egressgateway.yaml
    valid(&vs(
        "hosts:\n  - egressgateway.bookinfo.com\ngateways:\n- istio-egressgateway\n- mesh\nhttp:\n  - match:\n    - gateways:\n      - mesh\n    route:\n    - destination:\n        host: istio-egressgateway\n      weight: 100\n  - match:\n    - gateways:\n      - istio-egressgateway\n    route:\n    - destination:\n        host: eu.bookinfo.com\n      weight: 100\n",
    ));
}

#[test]
fn typed_helpers() {
    let Outcome::Valid(d) = decode(&vs(
        "hosts:\n- a.com\nhttp:\n- route:\n  - destination:\n      host: a.com\n",
    )) else {
        panic!("valid")
    };
    let egress_model::Resource::VirtualService(o) = &d.resource else {
        panic!("a VirtualService")
    };
    assert_eq!(
        o.spec.as_ref().map(|s| s.gateways_or_mesh()),
        Some(vec!["mesh"])
    );
    let with = VirtualService {
        gateways: Some(vec!["gw".into(), "mesh".into()]),
        ..Default::default()
    };
    assert_eq!(with.gateways_or_mesh(), vec!["gw", "mesh"]);
    let empty = VirtualService {
        gateways: Some(vec![]),
        ..Default::default()
    };
    assert_eq!(empty.gateways_or_mesh(), vec!["mesh"]);
    assert_eq!(
        ClientTlsSettings::default().mode_or_default(),
        ClientTlsMode::Disable
    );
    let tls = ClientTlsSettings {
        mode: Some(ClientTlsMode::IstioMutual),
        ..Default::default()
    };
    assert_eq!(tls.mode_or_default(), ClientTlsMode::IstioMutual);
}

#[test]
fn positions_and_object_names() {
    let text = dr(
        "host: ratings.prod.svc.cluster.local\ntrafficPolicy:\n  loadBalancer:\n    warmup:\n      duration: 300s\n      minimumPercent: 150.0\n",
    );
    let d = rejected(
        &text,
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent: Invalid value: 150: spec.trafficPolicy.loadBalancer.warmup.minimumPercent in body should be less than or equal to 100",
    );
    assert_eq!(
        d.pos.map(|p| p.line),
        Some(line_of(&text, "minimumPercent"))
    );
    assert!(
        d.to_string().contains("DestinationRule/default/test"),
        "{d}"
    );

    let text = http_vs("match:\n  - uri:\n      regex: \"[\"\n");
    let d = rejected(
        &text,
        "spec.http[0].match[0].uri.regex",
        "Istio uses RE2 style regex-based match",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(line_of(&text, "regex:")));
    assert!(d.to_string().contains("VirtualService/default/test"), "{d}");
    // Go's RE2 rules and wording, including what the `regex` crate alone would accept.
    for (re, message) in [
        (
            "a**",
            "error parsing regexp: invalid nested repetition operator: `**`",
        ),
        (
            "a{1001}",
            "error parsing regexp: invalid repeat count: `{1001}`",
        ),
        (
            "*a",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        ("(a", "error parsing regexp: missing closing ): `(a`"),
    ] {
        let text = http_vs(&format!(
            "match:\n  - headers:\n      x-a:\n        regex: \"{re}\"\n"
        ));
        rejected(&text, "spec.http[0].match[0].headers.x-a.regex", message);
    }

    let text = vs(
        "hosts:\n- edition.cnn.com\n- foo*.bar.com\nhttp:\n- route:\n  - destination:\n      host: a.com\n",
    );
    let d = rejected(
        &text,
        "spec.hosts[1]",
        "domain name \"foo*.bar.com\" invalid (label \"foo*\" invalid)",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(line_of(&text, "foo*.bar.com")));
}
