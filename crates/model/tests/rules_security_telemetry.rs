//! Rule tables for AuthorizationPolicy, PeerAuthentication and Telemetry (§2.6, §2.7 and the
//! CRD rules): every case is decoded through the public API (YAML → decode → validate), so each
//! asserts the field path and the exact message (Istio's webhook text or the API server's CRD
//! text). Also: positions, object references, and a decode/encode round trip property.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers panic on purpose

use std::collections::BTreeMap;

use egress_model::decode::{DecodeOptions, Outcome, decode_document, typed};
use egress_model::diag::{Diagnostic, Severity};
use egress_model::resources::CustomObject;
use egress_model::resources::security::{
    Action, AuthorizationPolicy, Condition, ExtensionProvider, MtlsMode, MutualTls, Operation,
    PeerAuthentication, PolicyTargetReference, Rule, RuleFrom, RuleTo, Source, WorkloadSelector,
};
use egress_model::resources::telemetry::{
    AccessLogging, CustomTag, Environment, Filter, Formatter, IstioMetric, Literal, LogSelector,
    MetricSelector, Metrics, MetricsOverrides, ProviderRef, RequestHeader, TagOperation,
    TagOverride, Telemetry, Tracing, TracingSelector, WorkloadMode,
};
use egress_model::yaml::parse_stream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

/// Remove the common indentation of a raw string literal (and its first newline).
fn dedent(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn doc(api: &str, kind: &str, meta_extra: &str, spec: &str) -> String {
    let spec = dedent(spec);
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: p\n{meta_extra}spec:\n{body}")
}

fn ap(spec: &str) -> String {
    doc("security.istio.io/v1", "AuthorizationPolicy", "", spec)
}

fn pa(spec: &str) -> String {
    doc("security.istio.io/v1", "PeerAuthentication", "", spec)
}

fn tel(spec: &str) -> String {
    doc("telemetry.istio.io/v1", "Telemetry", "", spec)
}

fn decode(yaml: &str) -> Outcome {
    let mut docs = parse_stream(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"));
    assert_eq!(docs.len(), 1, "{yaml}");
    decode_document("rules.yaml", docs.remove(0), &opts())
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// The object is refused with an error on `field` whose message contains `msg`.
#[track_caller]
fn assert_error(yaml: &str, field: &str, msg: &str) -> Vec<Diagnostic> {
    match decode(yaml) {
        Outcome::Invalid(diags) => {
            assert!(
                diags
                    .iter()
                    .any(|d| d.is_error() && d.field == field && d.message.contains(msg)),
                "want error on {field:?} containing {msg:?}, got:\n{}\n{yaml}",
                render(&diags)
            );
            diags
        }
        Outcome::Valid(d) => panic!(
            "want error on {field:?} containing {msg:?}, got valid (warnings:\n{})\n{yaml}",
            render(&d.warnings)
        ),
        Outcome::Unsupported { object, .. } => panic!("unsupported {object}"),
    }
}

/// The object is accepted without warnings.
#[track_caller]
fn assert_valid(yaml: &str) {
    match decode(yaml) {
        Outcome::Valid(d) => assert!(
            d.warnings.is_empty(),
            "unexpected warnings:\n{}\n{yaml}",
            render(&d.warnings)
        ),
        Outcome::Invalid(diags) => panic!("want valid, got:\n{}\n{yaml}", render(&diags)),
        Outcome::Unsupported { object, .. } => panic!("unsupported {object}"),
    }
}

/// The object is accepted with a warning on `field` containing `msg`.
#[track_caller]
fn assert_warning(yaml: &str, field: &str, msg: &str) {
    match decode(yaml) {
        Outcome::Valid(d) => assert!(
            d.warnings.iter().any(|w| w.severity == Severity::Warning
                && w.field == field
                && w.message.contains(msg)),
            "want warning on {field:?} containing {msg:?}, got:\n{}\n{yaml}",
            render(&d.warnings)
        ),
        Outcome::Invalid(diags) => panic!(
            "want valid with a warning, got:\n{}\n{yaml}",
            render(&diags)
        ),
        Outcome::Unsupported { object, .. } => panic!("unsupported {object}"),
    }
}

/// 1-based line of the first line of `yaml` containing `needle`.
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle} not in {yaml}"))
}

const P: &str = "invalid policy p.default: ";

// ---------------------------------------------------------------------------------------------
// AuthorizationPolicy

#[test]
fn authz_valid_policies() {
    // allow-nothing, allow-all, and a policy using every field and every known `when` key.
    assert_valid(&ap("{}"));
    assert_valid(&ap("rules:\n- {}"));
    assert_valid(&doc(
        "security.istio.io/v1beta1",
        "AuthorizationPolicy",
        "",
        "action: AUDIT\nrules:\n- to:\n  - operation:\n      ports: [\"8443\"]",
    ));
    assert_valid(&ap(r#"
        selector:
          matchLabels:
            istio: egressgateway
        action: ALLOW
        rules:
        - from:
          - source:
              principals: ["cluster.local/ns/default/sa/sleep", "*"]
              notPrincipals: ["x"]
              requestPrincipals: ["iss/sub"]
              notRequestPrincipals: ["*-suffix"]
              namespaces: ["default"]
              notNamespaces: ["kube-*"]
              ipBlocks: ["10.0.0.1", "10.0.0.0/8", "2001:db8::/32"]
              notIpBlocks: ["10.1.0.0/16"]
              remoteIpBlocks: ["1.2.3.4"]
              notRemoteIpBlocks: ["fe80::1"]
              trustDomains: ["cluster.local"]
              notTrustDomains: ["evil.local"]
          - source:
              serviceAccounts: ["default/sleep", "sleep"]
              notServiceAccounts: ["other"]
          to:
          - operation:
              hosts: ["edition.cnn.com", "*.cnn.com"]
              notHosts: ["bad.cnn.com"]
              ports: ["443", "8443"]
              notPorts: ["80"]
              methods: ["GET"]
              notMethods: ["DELETE"]
              paths: ["/politics", "/api/{*}/x", "/{**}"]
              notPaths: ["/admin*"]
          when:
          - key: request.headers[User-Agent]
            values: ["curl/*"]
          - key: request.experimental.inline.headers[x-foo]
            values: ["a"]
          - key: source.ip
            notValues: ["10.0.0.0/8"]
          - key: remote.ip
            values: ["1.2.3.4"]
          - key: source.namespace
            values: ["default"]
          - key: source.principal
            values: ["cluster.local/ns/default/sa/sleep"]
          - key: source.serviceAccount
            values: ["default/sleep"]
          - key: source.trustDomain
            values: ["cluster.local"]
          - key: request.auth.principal
            values: ["iss/sub"]
          - key: request.auth.audiences
            values: ["aud"]
          - key: request.auth.presenter
            values: ["client"]
          - key: request.auth.claims[groups]
            values: ["admin"]
          - key: destination.ip
            values: ["10.0.0.1"]
          - key: destination.port
            values: ["8443"]
          - key: connection.sni
            values: ["edition.cnn.com", "*.cnn.com"]
          - key: experimental.envoy.filters.network.mysql_proxy[db.table]
            values: ["[update]"]
    "#));
    // The three supported targets.
    assert_valid(&ap(r#"
        targetRefs:
        - {group: "", kind: Service, name: svc}
        - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
        - {group: networking.istio.io, kind: ServiceEntry, name: cnn}
    "#));
    assert_valid(&ap("targetRef: {group: core, kind: Service, name: svc}"));
    // CUSTOM with a provider and HTTP attributes only.
    assert_valid(&ap(
        "action: CUSTOM\nprovider:\n  name: ext-authz\nrules:\n- to:\n  - operation:\n      paths: [\"/admin\"]",
    ));
}

#[test]
fn authz_action_or_default() {
    let mut p = AuthorizationPolicy::default();
    assert_eq!(p.action_or_default(), Action::Allow);
    p.action = Some(Action::Deny);
    assert_eq!(p.action_or_default(), Action::Deny);
}

#[test]
fn authz_attachment_rules() {
    // Only one of selector / targetRef / targetRefs (webhook).
    assert_error(
        &ap("selector:\n  matchLabels: {app: a}\ntargetRef: {group: \"\", kind: Service, name: s}"),
        "spec",
        &format!("{P}only one of targetRefs or workloadSelector can be set"),
    );
    assert_error(
        &ap(
            "targetRef: {group: \"\", kind: Service, name: s}\ntargetRefs:\n- {group: \"\", kind: Service, name: t}",
        ),
        "spec",
        "only one of targetRefs or workloadSelector can be set",
    );
    // Selector: CRD rules (and the webhook's words).
    assert_error(
        &ap("selector:\n  matchLabels: {\"app*\": a}"),
        "spec.selector.matchLabels",
        "spec.selector.matchLabels: Invalid value: \"object\": wildcard not allowed in label key match",
    );
    assert_error(
        &ap("selector:\n  matchLabels: {\"app*\": a}"),
        "spec.selector.matchLabels.app*",
        &format!("{P}wildcard is not supported in selector: \"app*=a\""),
    );
    assert_error(
        &ap("selector:\n  matchLabels: {app: \"a*\"}"),
        "spec.selector.matchLabels.app",
        "spec.selector.matchLabels.app: Invalid value: \"string\": wildcard not allowed in label value match",
    );
    assert_error(
        &ap("selector:\n  matchLabels: {\"\": a}"),
        "spec.selector.matchLabels",
        "spec.selector.matchLabels: Invalid value: \"object\": key must not be empty",
    );
    assert_error(
        &ap(&format!(
            "selector:\n  matchLabels: {{app: {}}}",
            "a".repeat(64)
        )),
        "spec.selector.matchLabels.app",
        "spec.selector.matchLabels.app: Too long: may not be more than 63 bytes",
    );
    assert_warning(
        &ap("selector: {}"),
        "spec.selector",
        "workload selector specified without labels",
    );
    assert_warning(
        &ap("selector:\n  matchLabels: {}"),
        "spec.selector",
        "workload selector specified without labels",
    );

    // targetRef(s): CRD rules and the webhook's.
    assert_error(
        &ap("targetRef: {group: \"\", kind: Service}"),
        "spec.targetRef.name",
        "spec.targetRef.name: Required value",
    );
    assert_error(
        &ap("targetRef: {group: \"\", kind: Service, name: \"\"}"),
        "spec.targetRef.name",
        &format!("{P}targetRef name must be set"),
    );
    assert_error(
        &ap("targetRef: {group: \"\", kind: Service, name: \"\"}"),
        "spec.targetRef.name",
        "spec.targetRef.name: Invalid value: \"\": spec.targetRef.name in body should be at least 1 chars long",
    );
    assert_error(
        &ap("targetRef: {group: \"\", name: s}"),
        "spec.targetRef.kind",
        "spec.targetRef.kind: Required value",
    );
    assert_error(
        &ap("targetRef: {group: \"\", kind: Service, name: s, namespace: other}"),
        "spec.targetRef.namespace",
        "spec.targetRef.namespace: Invalid value: \"string\": cross namespace referencing is not currently supported",
    );
    assert_error(
        &ap("targetRef: {group: \"\", kind: Service, name: s, namespace: other}"),
        "spec.targetRef.namespace",
        &format!(
            "{P}targetRef namespace must not be set; cross namespace referencing is not supported"
        ),
    );
    assert_error(
        &ap("targetRefs:\n- {group: apps, kind: Deployment, name: d}"),
        "spec.targetRefs[0]",
        "spec.targetRefs[0]: Invalid value: \"object\": Support kinds are core/Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway",
    );
    assert_error(
        &ap("targetRefs:\n- {group: apps, kind: Deployment, name: d}"),
        "spec.targetRefs[0]",
        &format!(
            "{P}targetRef must be to one of [core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass] but was apps/Deployment"
        ),
    );
    assert_error(
        &ap("targetRef: {kind: Service, name: s}"),
        "spec.targetRef",
        "spec.targetRef: Invalid value: \"object\": no such key: group evaluating rule: Support kinds are core/Service",
    );
    assert_error(
        &ap("targetRef: {group: \"\", kind: 9svc, name: s}"),
        "spec.targetRef.kind",
        "spec.targetRef.kind: Invalid value: \"9svc\": spec.targetRef.kind in body should match '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$'",
    );
    assert_error(
        &ap("targetRef: {group: Bad_Group, kind: Service, name: s}"),
        "spec.targetRef.group",
        "spec.targetRef.group in body should match",
    );
}

#[test]
fn authz_action_rules() {
    assert_error(
        &ap("action: CUSTOM\nprovider: {name: ext}"),
        "spec.rules",
        &format!(
            "{P}CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{{}}` if you want it be triggered for every request"
        ),
    );
    assert_error(
        &ap("action: CUSTOM\nrules:\n- {}"),
        "spec.provider.name",
        &format!("{P}`provider.name` must not be empty"),
    );
    assert_error(
        &ap("action: CUSTOM\nprovider: {}\nrules:\n- {}"),
        "spec.provider.name",
        "`provider.name` must not be empty",
    );
    for (field, name) in [
        ("principals", "From.Principals"),
        ("notPrincipals", "From.NotPrincipals"),
        ("requestPrincipals", "From.RequestPrincipals"),
        ("notRequestPrincipals", "From.NotRequestPrincipals"),
        ("namespaces", "From.Namespaces"),
        ("notNamespaces", "From.NotNamespaces"),
        ("serviceAccounts", "From.ServiceAccounts"),
        ("notServiceAccounts", "From.NotServiceAccounts"),
        ("trustDomains", "From.TrustDomains"),
        ("notTrustDomains", "From.NotTrustDomains"),
    ] {
        assert_error(
            &ap(&format!(
                "action: CUSTOM\nprovider: {{name: ext}}\nrules:\n- from:\n  - source:\n      {field}: [\"x\"]"
            )),
            &format!("spec.rules[0].from[0].source.{field}"),
            &format!("{P}{name} is currently not supported with CUSTOM action"),
        );
    }
    for key in [
        "source.namespace",
        "source.serviceAccount",
        "source.principal",
        "source.trustDomain",
        "request.auth.claims[iss]",
    ] {
        assert_error(
            &ap(&format!(
                "action: CUSTOM\nprovider: {{name: ext}}\nrules:\n- when:\n  - key: {key}\n    values: [\"x\"]"
            )),
            "spec.rules[0].when[0].key",
            &format!("{P}{key} is currently not supported with CUSTOM action"),
        );
    }
    assert_error(
        &ap("provider: {name: ext}\nrules:\n- {}"),
        "spec.provider",
        &format!("{P}`provider` must not be with non CUSTOM action, found ALLOW"),
    );
    assert_error(
        &ap("action: DENY\nprovider: {name: ext}\nrules:\n- {}"),
        "spec.provider",
        "found DENY",
    );
    assert_error(
        &ap("action: DENY"),
        "spec",
        &format!(
            "{P}DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{{}}` if you want it be triggered for every request"
        ),
    );
    assert_error(
        &ap("action: BLAH"),
        "spec.action",
        "spec.action: Unsupported value: \"BLAH\": supported values: \"ALLOW\", \"DENY\", \"AUDIT\", \"CUSTOM\"",
    );
    // DENY rules using only HTTP attributes deny all TCP traffic: a warning.
    let http_only = ap("action: DENY\nrules:\n- to:\n  - operation:\n      methods: [\"POST\"]");
    assert_warning(
        &http_only,
        "spec.rules[0]",
        "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
    );
    assert_warning(
        &ap("action: DENY\nrules:\n- from:\n  - source:\n      requestPrincipals: [\"*\"]"),
        "spec.rules[0]",
        "will deny all traffic to TCP ports",
    );
    assert_valid(&ap(
        "action: DENY\nrules:\n- to:\n  - operation:\n      methods: [\"POST\"]\n      ports: [\"8080\"]",
    ));
    assert_valid(&ap(
        "action: DENY\nrules:\n- from:\n  - source:\n      namespaces: [\"dev\"]",
    ));
    // The dry-run annotation is only for ALLOW/DENY.
    let meta = "  annotations:\n    istio.io/dry-run: \"true\"\n";
    assert_error(
        &doc(
            "security.istio.io/v1",
            "AuthorizationPolicy",
            meta,
            "action: AUDIT\nrules:\n- {}",
        ),
        "metadata.annotations.istio.io/dry-run",
        "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action AUDIT in default/p",
    );
    assert_valid(&doc(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        meta,
        "action: DENY\nrules:\n- to:\n  - operation:\n      ports: [\"80\"]",
    ));
}

#[test]
fn authz_source_rules() {
    let from = |src: &str| ap(&format!("rules:\n- from:\n  - source:\n      {src}"));
    const SRC: &str = "spec.rules[0].from[0].source";
    assert_error(
        &ap("rules:\n- from: []"),
        "spec.rules[0].from",
        &format!("{P}`from` must not be empty, found at rule 0"),
    );
    assert_error(
        &ap("rules:\n- {}\n- from:\n  - {}"),
        "spec.rules[1].from[0].source",
        &format!("{P}`from.source` must not be nil, found at rule 1"),
    );
    assert_error(
        &ap("rules:\n- from:\n  - source: {}"),
        SRC,
        &format!("{P}`from.source` must not be empty, found at rule 0"),
    );
    assert_error(
        &from("principals: []"),
        SRC,
        "`from.source` must not be empty, found at rule 0",
    );
    // serviceAccounts cannot be combined with namespaces or principals: the CRD's CEL and the webhook.
    let mixed = from("serviceAccounts: [\"bar/sa\"]\n      namespaces: [\"bar\"]");
    assert_error(
        &mixed,
        SRC,
        &format!(
            "{SRC}: Invalid value: \"object\": Cannot set serviceAccounts with namespaces or principals"
        ),
    );
    assert_error(
        &mixed,
        SRC,
        &format!("{P}cannot set serviceAccounts with namespaces or principals, found at rule 0"),
    );
    assert_error(
        &from("notServiceAccounts: [\"sa\"]\n      notPrincipals: [\"x\"]"),
        SRC,
        "Cannot set serviceAccounts with namespaces or principals",
    );
    // serviceAccounts format.
    for (value, msg) in [
        ("ns/*", "wildcard not allowed, found in ServiceAccounts"),
        (
            "a/b/c",
            "expected format 'serviceAccount' or 'namespace/serviceAccount', found \"a/b/c\" in ServiceAccounts",
        ),
        (
            "/sa",
            "expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace \"/sa\" in ServiceAccounts",
        ),
        (
            "ns/",
            "expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount \"ns/\" in ServiceAccounts",
        ),
        ("", "empty value not allowed, found in ServiceAccounts"),
    ] {
        assert_error(
            &from(&format!("serviceAccounts: [{value:?}]")),
            &format!("{SRC}.serviceAccounts"),
            &format!("{P}{msg}"),
        );
    }
    let many: Vec<String> = (0..17).map(|i| format!("\"sa{i}\"")).collect();
    assert_error(
        &from(&format!("notServiceAccounts: [{}]", many.join(", "))),
        &format!("{SRC}.notServiceAccounts"),
        "may not have more than 16 values",
    );
    // Empty values.
    for (field, name) in [
        ("principals", "Principals"),
        ("requestPrincipals", "RequestPrincipals"),
        ("namespaces", "Namespaces"),
        ("notPrincipals", "NotPrincipals"),
        ("notRequestPrincipals", "NotRequestPrincipals"),
        ("notNamespaces", "NotNamespaces"),
        ("trustDomains", "TrustDomains"),
        ("notTrustDomains", "NotTrustDomains"),
    ] {
        assert_error(
            &from(&format!("{field}: [\"a\", \"\"]")),
            &format!("{SRC}.{field}"),
            &format!("{P}empty value not allowed, found in {name}"),
        );
    }
    // IPs and CIDRs.
    assert_error(
        &from("ipBlocks: [\"1.2.3.4/33\"]"),
        &format!("{SRC}.ipBlocks"),
        &format!(
            "{P}bad CIDR range (1.2.3.4/33): netip.ParsePrefix(\"1.2.3.4/33\"): prefix length out of range"
        ),
    );
    assert_error(
        &from("notIpBlocks: [\"10.0.0.0/x\"]"),
        &format!("{SRC}.notIpBlocks"),
        "bad CIDR range (10.0.0.0/x): netip.ParsePrefix(\"10.0.0.0/x\"): bad bits after slash: \"x\"",
    );
    assert_error(
        &from("remoteIpBlocks: [\"nope/8\"]"),
        &format!("{SRC}.remoteIpBlocks"),
        "bad CIDR range (nope/8): netip.ParsePrefix(\"nope/8\"): ParseAddr(\"nope\"): unable to parse IP",
    );
    assert_error(
        &from("notRemoteIpBlocks: [\"nope\"]"),
        &format!("{SRC}.notRemoteIpBlocks"),
        &format!("{P}bad IP address (nope)"),
    );
    assert_error(
        &from("ipBlocks: [\"\"]"),
        &format!("{SRC}.ipBlocks"),
        "empty value not allowed, found in IpBlocks",
    );
}

#[test]
fn authz_operation_rules() {
    let op = |o: &str| ap(&format!("rules:\n- to:\n  - operation:\n      {o}"));
    const OP: &str = "spec.rules[0].to[0].operation";
    assert_error(
        &ap("rules:\n- to: []"),
        "spec.rules[0].to",
        &format!("{P}`to` must not be empty, found at rule 0"),
    );
    assert_error(
        &ap("rules:\n- to:\n  - {}"),
        OP,
        &format!("{P}`to.operation` must not be nil, found at rule 0"),
    );
    assert_error(
        &ap("rules:\n- to:\n  - operation: {}"),
        OP,
        &format!("{P}`to.operation` must not be empty, found at rule 0"),
    );
    assert_error(
        &op("ports: [\"99999\"]"),
        &format!("{OP}.ports"),
        &format!("{P}bad port (99999): <nil>"),
    );
    assert_error(
        &op("notPorts: [\"http\"]"),
        &format!("{OP}.notPorts"),
        "bad port (http): strconv.ParseUint: parsing \"http\": invalid syntax",
    );
    assert_error(
        &op("ports: [\"99999999999\"]"),
        &format!("{OP}.ports"),
        "bad port (99999999999): strconv.ParseUint: parsing \"99999999999\": value out of range",
    );
    for (field, name) in [
        ("hosts", "Hosts"),
        ("notHosts", "NotHosts"),
        ("methods", "Methods"),
        ("notMethods", "NotMethods"),
        ("paths", "Paths"),
        ("notPaths", "NotPaths"),
        ("ports", "Ports"),
        ("notPorts", "NotPorts"),
    ] {
        assert_error(
            &op(&format!("{field}: [\"\"]")),
            &format!("{OP}.{field}"),
            &format!("{P}empty value not allowed, found in {name}"),
        );
    }
    // Path templates.
    assert_error(
        &op("paths: [\"/{foo}/bar\"]"),
        &format!("{OP}.paths"),
        &format!(
            "{P}invalid or unsupported path {{foo}}/bar, found in Paths. Contains '{{' or '}}' beyond a supported path template"
        ),
    );
    assert_error(
        &op("notPaths: [\"/{**}/{*}\"]"),
        &format!("{OP}.notPaths"),
        "invalid or unsupported path {**}/{*}, found in NotPaths. {**} is not the last operator",
    );
    assert_error(
        &op("paths: [\"/a b/{*}\"]"),
        &format!("{OP}.paths"),
        "invalid or unsupported path a b/{*}, found in Paths. Contains segment a b with invalid string literal",
    );
    assert_valid(&op("paths: [\"/{*}/x/{**}\", \"/prefix/*\", \"*/suffix\"]"));
}

#[test]
fn authz_condition_rules() {
    let when = |c: &str| ap(&format!("rules:\n- when:\n  - {c}"));
    const W: &str = "spec.rules[0].when[0]";
    assert_error(
        &when("values: [\"a\"]"),
        &format!("{W}.key"),
        &format!("{W}.key: Required value"),
    );
    assert_error(
        &when("key: \"\"\n    values: [\"a\"]"),
        &format!("{W}.key"),
        &format!("{P}`key` must not be empty"),
    );
    assert_error(
        &when("key: source.ip"),
        W,
        &format!("{P}at least one of `values` or `notValues` must be set for key source.ip"),
    );
    for (key, vals, msg) in [
        ("foo.bar", "values", "unknown attribute: foo.bar"),
        ("foo.bar", "notValues", "unknown attribute: foo.bar"),
        (
            "destination.namespace",
            "values",
            "attribute destination.namespace is replaced by the metadata.namespace",
        ),
        (
            "destination.labels[app]",
            "values",
            "attribute destination.labels[app] is replaced by the workload selector",
        ),
        (
            "destination.name",
            "values",
            "deprecated attribute destination.name: only supported in v1alpha1",
        ),
        (
            "destination.user",
            "notValues",
            "deprecated attribute destination.user: only supported in v1alpha1",
        ),
        (
            "request.headers",
            "values",
            "bad key (request.headers): should have format a[b]",
        ),
        (
            "request.headers[]",
            "values",
            "bad key (request.headers[]): should have format a[b]",
        ),
        (
            "request.auth.claims",
            "values",
            "bad key (request.auth.claims): should have format a[b]",
        ),
        (
            "experimental.envoy.filters.a",
            "values",
            "bad key (experimental.envoy.filters.a): should have format a[b]",
        ),
    ] {
        let which = if vals == "values" {
            "value"
        } else {
            "notValue"
        };
        assert_error(
            &when(&format!("key: {key}\n    {vals}: [\"x\"]")),
            &format!("{W}.{vals}"),
            &format!("{P}invalid `{which}` for `key` {key}: {msg}"),
        );
    }
    assert_error(
        &when("key: source.ip\n    values: [\"x\"]"),
        &format!("{W}.values"),
        &format!(
            "{P}invalid `value` for `key` source.ip: 1 error occurred:\n\t* bad IP address (x)"
        ),
    );
    assert_error(
        &when("key: destination.ip\n    notValues: [\"1.2.3.4/40\"]"),
        &format!("{W}.notValues"),
        "bad CIDR range (1.2.3.4/40)",
    );
    assert_error(
        &when("key: destination.port\n    values: [\"70000\"]"),
        &format!("{W}.values"),
        "invalid `value` for `key` destination.port: 1 error occurred:\n\t* bad port (70000): <nil>",
    );
    assert_error(
        &when("key: source.serviceAccount\n    values: [\"a/b/c\"]"),
        &format!("{W}.values"),
        "expected format 'serviceAccount' or 'namespace/serviceAccount', found \"a/b/c\" in source.serviceAccount",
    );
    assert_error(
        &when("key: connection.sni\n    values: [\"\"]"),
        &format!("{W}.values"),
        "invalid `value` for `key` connection.sni: empty value not allowed, found in connection.sni",
    );
}

#[test]
fn authz_strict_decoding_and_placement() {
    let yaml = ap("rules:\n- from:\n  - source:\n      principal: [\"x\"]");
    assert_error(
        &yaml,
        "spec.rules[0].from[0].source.principal",
        "unknown field \"spec.rules[0].from[0].source.principal\"",
    );
    assert_error(
        &ap("rules:\n- to:\n  - operation:\n      ports: 80"),
        "spec.rules[0].to[0].operation.ports",
        "must be of type array",
    );

    // Positions point at the offending field; the object is named kind/namespace/name.
    let yaml = ap(
        "selector:\n  matchLabels: {app: a}\nrules:\n- from:\n  - source:\n      namespaces: [\"x\"]\n      principals: [\"a\", \"\"]",
    );
    let diags = assert_error(
        &yaml,
        "spec.rules[0].from[0].source.principals",
        "empty value not allowed, found in Principals",
    );
    let d = diags
        .iter()
        .find(|d| d.field.ends_with("principals"))
        .unwrap();
    assert_eq!(d.pos.unwrap().line, line_of(&yaml, "principals:"));
    assert!(
        d.to_string().contains("AuthorizationPolicy/default/p"),
        "{d}"
    );
    assert!(d.to_string().contains("rules.yaml:"), "{d}");

    let yaml = ap(
        "rules:\n- to:\n  - operation:\n      methods: [\"GET\"]\n  when:\n  - key: nope\n    values: [\"x\"]",
    );
    let diags = assert_error(
        &yaml,
        "spec.rules[0].when[0].values",
        "unknown attribute: nope",
    );
    let d = diags.iter().find(|d| d.field.ends_with("values")).unwrap();
    assert_eq!(d.pos.unwrap().line, line_of(&yaml, "values: [\"x\"]"));
}

// ---------------------------------------------------------------------------------------------
// PeerAuthentication

#[test]
fn peer_authentication_rules() {
    assert_valid(&pa("mtls:\n  mode: STRICT"));
    assert_valid(&doc(
        "security.istio.io/v1beta1",
        "PeerAuthentication",
        "",
        "{}",
    ));
    assert_valid(&pa(
        "selector:\n  matchLabels: {app: a}\nmtls: {mode: PERMISSIVE}\nportLevelMtls:\n  \"80\":\n    mode: DISABLE\n  8443:\n    mode: UNSET",
    ));
    assert_warning(
        &pa("selector: {}"),
        "spec.selector",
        "workload selector specified without labels",
    );
    assert_error(
        &pa("mtls:\n  mode: BLAH"),
        "spec.mtls.mode",
        "spec.mtls.mode: Unsupported value: \"BLAH\": supported values: \"UNSET\", \"DISABLE\", \"PERMISSIVE\", \"STRICT\"",
    );
    assert_error(
        &pa("mtls:\n  mode: STRICT\n  strict: true"),
        "spec.mtls.strict",
        "unknown field \"spec.mtls.strict\"",
    );
    // portLevelMtls: keys are ports (CRD CEL), a selector with labels is required, never empty.
    let yaml =
        pa("selector:\n  matchLabels: {foo: bar}\nportLevelMtls:\n  \"acd\":\n    mode: STRICT");
    let diags = assert_error(
        &yaml,
        "spec.portLevelMtls",
        "spec.portLevelMtls: Invalid value: \"object\": type conversion error from 'string' to 'int' evaluating rule: port must be between 1-65535",
    );
    let d = diags
        .iter()
        .find(|d| d.field == "spec.portLevelMtls")
        .unwrap();
    assert_eq!(d.pos.unwrap().line, line_of(&yaml, "portLevelMtls:"));
    assert!(
        d.to_string().contains("PeerAuthentication/default/p"),
        "{d}"
    );
    assert_error(
        &yaml,
        "spec.portLevelMtls.acd",
        "port must be in range 1..65535",
    );
    for port in ["0", "65536", "42949672", "-1"] {
        assert_error(
            &pa(&format!(
                "selector:\n  matchLabels: {{foo: bar}}\nportLevelMtls:\n  \"{port}\":\n    mode: STRICT"
            )),
            "spec.portLevelMtls",
            "spec.portLevelMtls: Invalid value: \"object\": port must be between 1-65535",
        );
    }
    assert_error(
        &pa("portLevelMtls:\n  \"80\":\n    mode: STRICT"),
        "spec",
        "spec: Invalid value: \"object\": portLevelMtls requires selector",
    );
    assert_error(
        &pa("portLevelMtls:\n  \"80\":\n    mode: STRICT"),
        "spec.portLevelMtls",
        "mesh/namespace peer authentication cannot have port level mTLS",
    );
    assert_error(
        &pa("selector:\n  matchLabels: {}\nportLevelMtls:\n  \"80\":\n    mode: STRICT"),
        "spec",
        "portLevelMtls requires selector",
    );
    assert_error(
        &pa("selector:\n  matchLabels: {foo: bar}\nportLevelMtls: {}"),
        "spec.portLevelMtls",
        "spec.portLevelMtls: Invalid value: 0: spec.portLevelMtls in body should have at least 1 properties",
    );
    assert_error(
        &pa("selector:\n  matchLabels: {foo: bar}\nportLevelMtls: {}"),
        "spec.portLevelMtls",
        "port level mTLS, if defined, must have at least one element",
    );
    assert_error(
        &pa("selector:\n  matchLabels: {foo: \"*\"}"),
        "spec.selector.matchLabels.foo",
        "wildcard not allowed in label value match",
    );
    assert_error(
        &pa("portLevelMtls:\n  \"80\":\n    mode: LAX"),
        "spec.portLevelMtls.80.mode",
        "Unsupported value: \"LAX\"",
    );
    let p = PeerAuthentication {
        mtls: Some(MutualTls {
            mode: Some(MtlsMode::Strict),
        }),
        ..Default::default()
    };
    assert_eq!(p.mode_or_default(), MtlsMode::Strict);
    assert_eq!(
        PeerAuthentication::default().mode_or_default(),
        MtlsMode::Unset
    );
}

// ---------------------------------------------------------------------------------------------
// Telemetry

#[test]
fn telemetry_valid() {
    assert_valid(&tel(r#"
        selector:
          matchLabels: {istio: egressgateway}
        tracing:
        - match: {mode: CLIENT_AND_SERVER}
          providers: [{name: otlp}]
          randomSamplingPercentage: 54.54
          disableSpanReporting: false
          useRequestIdForTraceSampling: true
          enableIstioTags: true
          customTags:
            env: {environment: {name: NAME, defaultValue: d}}
            hdr: {header: {name: x-name, defaultValue: d}}
            lit: {literal: {value: v}}
        metrics:
        - providers: [{name: prometheus}]
          reportingInterval: 5s
          overrides:
          - match: {metric: REQUEST_COUNT, mode: SERVER}
            disabled: true
          - match: {customMetric: foo}
            tagOverrides:
              request_host: {value: request.host}
              response_code: {operation: REMOVE}
              added: {operation: UPSERT, value: "'x'"}
        accessLogging:
        - match: {mode: CLIENT}
          providers: [{name: envoy}]
          disabled: false
          filter:
            expression: "response.code >= 400 || !has(request.useragent)"
    "#));
    assert_valid(&doc(
        "telemetry.istio.io/v1alpha1",
        "Telemetry",
        "",
        "accessLogging:\n- providers: [{name: envoy}]",
    ));
    assert_valid(&tel(
        "targetRefs:\n- {group: gateway.networking.k8s.io, kind: Gateway, name: egress}\naccessLogging:\n- disabled: true",
    ));
}

#[test]
fn telemetry_provider_rules() {
    let m = "spec.metrics[0].providers[0].name";
    assert_error(
        &tel("metrics:\n- providers:\n  - name: \"\""),
        m,
        &format!("{m}: Invalid value: \"\": {m} in body should be at least 1 chars long"),
    );
    assert_error(
        &tel("metrics:\n- providers:\n  - name: \"\""),
        m,
        "providers.name may not be empty",
    );
    assert_error(
        &tel("tracing:\n- providers:\n  - {}"),
        "spec.tracing[0].providers[0].name",
        "spec.tracing[0].providers[0].name: Required value",
    );
    assert_error(
        &tel("accessLogging:\n- providers:\n  - name: envoy\n  - name: \"\""),
        "spec.accessLogging[0].providers[1].name",
        "providers.name may not be empty",
    );
    assert_error(
        &tel("accessLogging:\n- providers:\n  - name: \"\""),
        "spec.accessLogging[0].providers[0].name",
        "spec.accessLogging[0].providers[0].name in body should be at least 1 chars long",
    );
    assert_warning(
        &tel("tracing:\n- providers: [{name: a}]\n- providers: [{name: b}]"),
        "spec.tracing",
        "multiple tracing is not currently supported",
    );
    assert_warning(
        &tel("tracing:\n- providers: [{name: a}, {name: b}]"),
        "spec.tracing[0].providers",
        "multiple providers is not currently supported",
    );
}

#[test]
fn telemetry_metrics_rules() {
    let c = "spec.metrics[0].overrides[0].match.customMetric";
    assert_error(
        &tel("metrics:\n- overrides:\n  - match:\n      customMetric: \"\""),
        c,
        &format!("{c}: Invalid value: \"\": {c} in body should be at least 1 chars long"),
    );
    assert_error(
        &tel("metrics:\n- overrides:\n  - match:\n      customMetric: \"\""),
        c,
        "customMetric may not be empty",
    );
    assert_error(
        &tel("metrics:\n- overrides:\n  - match: {metric: REQUEST_COUNT, customMetric: foo}"),
        "spec.metrics[0].overrides[0].match",
        "must validate one and only one schema (oneOf)",
    );
    assert_error(
        &tel("metrics:\n- overrides:\n  - match: {metric: REQUESTS}"),
        "spec.metrics[0].overrides[0].match.metric",
        "Unsupported value: \"REQUESTS\"",
    );
    let t = "spec.metrics[0].overrides[0].tagOverrides.foo";
    assert_error(
        &tel("metrics:\n- overrides:\n  - tagOverrides:\n      foo:\n        operation: UPSERT"),
        t,
        &format!(
            "{t}: Invalid value: \"object\": no such key: value evaluating rule: value must be set when operation is UPSERT"
        ),
    );
    assert_error(
        &tel(
            "metrics:\n- overrides:\n  - tagOverrides:\n      foo:\n        operation: UPSERT\n        value: \"\"",
        ),
        t,
        &format!("{t}: Invalid value: \"object\": value must be set when operation is UPSERT"),
    );
    assert_error(
        &tel("metrics:\n- overrides:\n  - tagOverrides:\n      foo: {}"),
        t,
        "tagOverrides.value must be set when operation is UPSERT",
    );
    assert_error(
        &tel(
            "metrics:\n- overrides:\n  - tagOverrides:\n      foo:\n        operation: REMOVE\n        value: oops",
        ),
        t,
        &format!("{t}: Invalid value: \"object\": value must not be set when operation is REMOVE"),
    );
    assert_error(
        &tel(
            "metrics:\n- overrides:\n  - tagOverrides:\n      foo:\n        operation: REMOVE\n        value: oops",
        ),
        t,
        "tagOverrides.value may only be set when operation is UPSERT",
    );
    assert_error(
        &tel("metrics:\n- overrides:\n  - tagOverrides:\n      foo: {operation: DROP}"),
        &format!("{t}.operation"),
        "supported values: \"UPSERT\", \"REMOVE\"",
    );
    assert_warning(
        &tel("metrics:\n- overrides:\n  - tagOverrides:\n      \"\": {value: x}"),
        "spec.metrics[0].overrides[0].tagOverrides.",
        "tagOverrides.name may not be empty",
    );
    for d in ["0s", "500us", "-5s"] {
        assert_error(
            &tel(&format!("metrics:\n- reportingInterval: {d}")),
            "spec.metrics[0].reportingInterval",
            "spec.metrics[0].reportingInterval: Invalid value: \"string\": must be a valid duration greater than 1ms",
        );
    }
    // A string CEL cannot convert fails the rule's evaluation.
    assert_error(
        &tel("metrics:\n- reportingInterval: 5x"),
        "spec.metrics[0].reportingInterval",
        "spec.metrics[0].reportingInterval: Invalid value: \"string\": type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: must be a valid duration greater than 1ms",
    );
}

#[test]
fn telemetry_tracing_and_logging_rules() {
    let s = "spec.tracing[0].randomSamplingPercentage";
    assert_error(
        &tel("tracing:\n- randomSamplingPercentage: 101"),
        s,
        &format!("{s}: Invalid value: 101: {s} in body should be less than or equal to 100"),
    );
    assert_error(
        &tel("tracing:\n- randomSamplingPercentage: -0.5"),
        s,
        &format!("{s}: Invalid value: -0.5: {s} in body should be greater than or equal to 0"),
    );
    assert_error(
        &tel("tracing:\n- randomSamplingPercentage: 101"),
        s,
        "randomSamplingPercentage must be in range [0.0, 100.0]",
    );
    let ct = "spec.tracing[0].customTags.t";
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      literal: {}"),
        &format!("{ct}.literal.value"),
        &format!("{ct}.literal.value: Required value"),
    );
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      literal: {}"),
        &format!("{ct}.literal"),
        "literal tag value may not be empty",
    );
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      environment: {name: \"\"}"),
        &format!("{ct}.environment.name"),
        "in body should be at least 1 chars long",
    );
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      environment: {name: \"\"}"),
        &format!("{ct}.environment"),
        "environment tag name may not be empty",
    );
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      header: {defaultValue: x}"),
        &format!("{ct}.header"),
        "header tag name may not be empty",
    );
    assert_error(
        &tel("tracing:\n- customTags:\n    t:\n      literal: {value: a}\n      header: {name: b}"),
        ct,
        "must validate one and only one schema (oneOf). Found 2 valid alternatives",
    );
    assert_error(
        &tel("tracing:\n- match: {mode: BOTH}"),
        "spec.tracing[0].match.mode",
        "Unsupported value: \"BOTH\": supported values: \"CLIENT_AND_SERVER\", \"CLIENT\", \"SERVER\"",
    );
    // Access-log filters must parse as CEL.
    let yaml = tel(
        "accessLogging:\n- providers: [{name: envoy}]\n  filter:\n    expression: \"response.code >=\"",
    );
    let diags = assert_error(
        &yaml,
        "spec.accessLogging[0].filter.expression",
        "must be a valid CEL expression, ERROR: <input>:1:17: Syntax error: mismatched input '<EOF>'",
    );
    let d = diags
        .iter()
        .find(|d| d.field.ends_with("expression"))
        .unwrap();
    assert_eq!(d.pos.unwrap().line, line_of(&yaml, "expression:"));
    assert!(d.to_string().contains("Telemetry/default/p"), "{d}");
    assert_error(
        &tel("accessLogging:\n- filter: {}"),
        "spec.accessLogging[0].filter.expression",
        "must be a valid CEL expression",
    );
    assert_error(
        &tel("accessLogging:\n- filter:\n    expression: \"a = b\""),
        "spec.accessLogging[0].filter.expression",
        "token recognition error at: '='",
    );
    // Attachment rules are those of AuthorizationPolicy (without the `invalid policy` prefix).
    assert_error(
        &tel(
            "selector:\n  matchLabels: {a: b}\ntargetRefs:\n- {group: \"\", kind: Service, name: s}",
        ),
        "spec",
        "only one of targetRefs or workloadSelector can be set",
    );
    assert_error(
        &tel("selector:\n  matchLabels: {\"a*\": b}"),
        "spec.selector.matchLabels",
        "wildcard not allowed in label key match",
    );
    assert_warning(
        &tel("selector: {}"),
        "spec.selector",
        "workload selector specified without labels",
    );
    assert_error(
        &tel("tracing:\n- sampling: 10"),
        "spec.tracing[0].sampling",
        "unknown field \"spec.tracing[0].sampling\"",
    );
}

// ---------------------------------------------------------------------------------------------
// Round trip: encode a typed object and decode it again.

fn meta() -> ObjectMeta {
    ObjectMeta {
        name: Some("p".into()),
        namespace: Some("default".into()),
        ..Default::default()
    }
}

fn obj<S>(kind: &str, api: &str, spec: S) -> CustomObject<S> {
    CustomObject {
        api_version: api.into(),
        kind: kind.into(),
        metadata: meta(),
        spec: Some(spec),
        status: None,
    }
}

fn s() -> impl Strategy<Value = String> {
    "[a-z0-9.*/\\[\\]-]{0,8}"
}

fn ov() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(proptest::collection::vec(s(), 0..3))
}

fn os() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(s())
}

fn labels() -> impl Strategy<Value = Option<WorkloadSelector>> {
    proptest::option::of(
        proptest::option::of(proptest::collection::btree_map(s(), s(), 0..3))
            .prop_map(|match_labels| WorkloadSelector { match_labels }),
    )
}

fn target() -> impl Strategy<Value = PolicyTargetReference> {
    (os(), os(), os(), os()).prop_map(|(group, kind, name, namespace)| PolicyTargetReference {
        group,
        kind,
        name,
        namespace,
    })
}

fn source() -> impl Strategy<Value = Source> {
    (
        (ov(), ov(), ov(), ov(), ov(), ov(), ov()),
        (ov(), ov(), ov(), ov(), ov(), ov(), ov()),
    )
        .prop_map(|((a, b, c, d, e, f, g), (h, i, j, k, l, m, n))| Source {
            principals: a,
            not_principals: b,
            request_principals: c,
            not_request_principals: d,
            namespaces: e,
            not_namespaces: f,
            service_accounts: g,
            not_service_accounts: h,
            ip_blocks: i,
            not_ip_blocks: j,
            remote_ip_blocks: k,
            not_remote_ip_blocks: l,
            trust_domains: m,
            not_trust_domains: n,
        })
}

fn operation() -> impl Strategy<Value = Operation> {
    (ov(), ov(), ov(), ov(), ov(), ov(), ov(), ov()).prop_map(|(a, b, c, d, e, f, g, h)| {
        Operation {
            hosts: a,
            not_hosts: b,
            ports: c,
            not_ports: d,
            methods: e,
            not_methods: f,
            paths: g,
            not_paths: h,
        }
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    let from = proptest::collection::vec(
        proptest::option::of(source()).prop_map(|source| RuleFrom { source }),
        0..2,
    );
    let to = proptest::collection::vec(
        proptest::option::of(operation()).prop_map(|operation| RuleTo { operation }),
        0..2,
    );
    let when = proptest::collection::vec(
        (os(), ov(), ov()).prop_map(|(key, values, not_values)| Condition {
            key,
            values,
            not_values,
        }),
        0..2,
    );
    (
        proptest::option::of(from),
        proptest::option::of(to),
        proptest::option::of(when),
    )
        .prop_map(|(from, to, when)| Rule { from, to, when })
}

fn authz() -> impl Strategy<Value = AuthorizationPolicy> {
    let action = proptest::option::of(prop_oneof![
        Just(Action::Allow),
        Just(Action::Deny),
        Just(Action::Audit),
        Just(Action::Custom)
    ]);
    (
        labels(),
        proptest::option::of(target()),
        proptest::option::of(proptest::collection::vec(target(), 0..2)),
        proptest::option::of(proptest::collection::vec(rule(), 0..3)),
        action,
        proptest::option::of(os().prop_map(|name| ExtensionProvider { name })),
    )
        .prop_map(
            |(selector, target_ref, target_refs, rules, action, provider)| AuthorizationPolicy {
                selector,
                target_ref,
                target_refs,
                rules,
                action,
                provider,
            },
        )
}

fn mtls() -> impl Strategy<Value = MutualTls> {
    proptest::option::of(prop_oneof![
        Just(MtlsMode::Unset),
        Just(MtlsMode::Disable),
        Just(MtlsMode::Permissive),
        Just(MtlsMode::Strict)
    ])
    .prop_map(|mode| MutualTls { mode })
}

fn peer() -> impl Strategy<Value = PeerAuthentication> {
    (
        labels(),
        proptest::option::of(mtls()),
        proptest::option::of(proptest::collection::btree_map(
            "[0-9a-z]{1,5}",
            mtls(),
            0..3,
        )),
    )
        .prop_map(|(selector, mtls, port_level_mtls)| PeerAuthentication {
            selector,
            mtls,
            port_level_mtls,
        })
}

fn mode() -> impl Strategy<Value = Option<WorkloadMode>> {
    proptest::option::of(prop_oneof![
        Just(WorkloadMode::ClientAndServer),
        Just(WorkloadMode::Client),
        Just(WorkloadMode::Server)
    ])
}

fn providers() -> impl Strategy<Value = Option<Vec<ProviderRef>>> {
    proptest::option::of(proptest::collection::vec(
        os().prop_map(|name| ProviderRef { name }),
        0..2,
    ))
}

fn custom_tag() -> impl Strategy<Value = CustomTag> {
    (
        proptest::option::of(os().prop_map(|value| Literal { value })),
        proptest::option::of((os(), os()).prop_map(|(name, default_value)| Environment {
            name,
            default_value,
        })),
        proptest::option::of(
            (os(), os()).prop_map(|(name, default_value)| RequestHeader {
                name,
                default_value,
            }),
        ),
        proptest::option::of(os().prop_map(|value| Formatter { value })),
    )
        .prop_map(|(literal, environment, header, formatter)| CustomTag {
            literal,
            environment,
            header,
            formatter,
        })
}

fn tracing() -> impl Strategy<Value = Tracing> {
    let b = || proptest::option::of(any::<bool>());
    (
        proptest::option::of(mode().prop_map(|mode| TracingSelector { mode })),
        providers(),
        proptest::option::of(-10.0f64..200.0),
        b(),
        proptest::option::of(proptest::collection::btree_map(s(), custom_tag(), 0..2)),
        b(),
        b(),
    )
        .prop_map(
            |(
                match_,
                providers,
                random_sampling_percentage,
                disable_span_reporting,
                custom_tags,
                use_request_id_for_trace_sampling,
                enable_istio_tags,
            )| Tracing {
                match_,
                providers,
                random_sampling_percentage,
                disable_span_reporting,
                custom_tags,
                use_request_id_for_trace_sampling,
                enable_istio_tags,
            },
        )
}

fn metrics() -> impl Strategy<Value = Metrics> {
    let metric = proptest::option::of(prop_oneof![
        Just(IstioMetric::AllMetrics),
        Just(IstioMetric::RequestCount),
        Just(IstioMetric::TcpOpenedConnections),
        Just(IstioMetric::GrpcResponseMessages)
    ]);
    let selector =
        (metric, os(), mode()).prop_map(|(metric, custom_metric, mode)| MetricSelector {
            metric,
            custom_metric,
            mode,
        });
    let tag = (
        proptest::option::of(prop_oneof![
            Just(TagOperation::Upsert),
            Just(TagOperation::Remove)
        ]),
        os(),
    )
        .prop_map(|(operation, value)| TagOverride { operation, value });
    let overrides = (
        proptest::option::of(selector),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::btree_map(s(), tag, 0..3)),
    )
        .prop_map(|(match_, disabled, tag_overrides)| MetricsOverrides {
            match_,
            disabled,
            tag_overrides,
        });
    (
        providers(),
        proptest::option::of(proptest::collection::vec(overrides, 0..2)),
        os(),
    )
        .prop_map(|(providers, overrides, reporting_interval)| Metrics {
            providers,
            overrides,
            reporting_interval,
        })
}

fn logging() -> impl Strategy<Value = AccessLogging> {
    (
        proptest::option::of(mode().prop_map(|mode| LogSelector { mode })),
        providers(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(os().prop_map(|expression| Filter { expression })),
    )
        .prop_map(|(match_, providers, disabled, filter)| AccessLogging {
            match_,
            providers,
            disabled,
            filter,
        })
}

fn telemetry() -> impl Strategy<Value = Telemetry> {
    (
        labels(),
        proptest::option::of(target()),
        proptest::option::of(proptest::collection::vec(target(), 0..2)),
        proptest::option::of(proptest::collection::vec(tracing(), 0..2)),
        proptest::option::of(proptest::collection::vec(metrics(), 0..2)),
        proptest::option::of(proptest::collection::vec(logging(), 0..2)),
    )
        .prop_map(
            |(selector, target_ref, target_refs, tracing, metrics, access_logging)| Telemetry {
                selector,
                target_ref,
                target_refs,
                tracing,
                metrics,
                access_logging,
            },
        )
}

fn round_trip<S>(o: &CustomObject<S>)
where
    S: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Default,
{
    let v = serde_json::to_value(o).unwrap();
    let (back, unknown) = typed::<CustomObject<S>>(&v).unwrap_or_else(|e| panic!("{e:?}\n{v}"));
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(&back, o);
    assert_eq!(serde_json::to_value(&back).unwrap(), v);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn authorization_policy_round_trips(spec in authz()) {
        round_trip(&obj("AuthorizationPolicy", "security.istio.io/v1", spec));
    }

    #[test]
    fn peer_authentication_round_trips(spec in peer()) {
        round_trip(&obj("PeerAuthentication", "security.istio.io/v1", spec));
    }

    #[test]
    fn telemetry_round_trips(spec in telemetry()) {
        round_trip(&obj("Telemetry", "telemetry.istio.io/v1", spec));
    }
}

#[test]
fn empty_collections_survive_round_trip() {
    // Absent and empty stay apart (`from: []` is an error, a missing `from` is not).
    let mut tags = BTreeMap::new();
    tags.insert("t".to_owned(), CustomTag::default());
    let spec = Telemetry {
        tracing: Some(vec![Tracing {
            custom_tags: Some(tags),
            providers: Some(vec![]),
            ..Default::default()
        }]),
        ..Default::default()
    };
    round_trip(&obj("Telemetry", "telemetry.istio.io/v1", spec));
    let spec = AuthorizationPolicy {
        rules: Some(vec![Rule {
            from: Some(vec![]),
            ..Default::default()
        }]),
        ..Default::default()
    };
    round_trip(&obj("AuthorizationPolicy", "security.istio.io/v1", spec));
}
