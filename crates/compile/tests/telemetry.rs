//! Telemetry access-log control: which Telemetries apply to the gateway, how their
//! `accessLogging` entries merge, providers, `disabled`, `match.mode` and filter expressions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{NS, snap};
use egress_compile::snapshot::{
    AccessLog, CompareOp, FilterAttribute, FilterError, FilterExpr, FilterValue, LogEncoding,
    LogFilter, StringMethod,
};

const ROOT: &str = "aks-istio-system";

/// The revision's MeshConfig with `mesh` as its body (indented by the caller's YAML).
fn mesh(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  \
         namespace: aks-istio-system\ndata:\n  mesh: |-\n{body}"
    )
}

/// A Telemetry called `name` in `ns` with `spec` (YAML, two-space indented under `spec:`).
fn telemetry(name: &str, ns: &str, created: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\n  creationTimestamp: \"{created}\"\nspec:\n{spec}"
    )
}

fn docs(parts: &[&str]) -> String {
    parts.join("\n---\n")
}

fn providers(log: &AccessLog) -> Vec<String> {
    std::iter::once(log)
        .chain(log.additional.iter())
        .filter_map(|l| l.provider.clone())
        .collect()
}

fn filter_of(log: &AccessLog) -> Option<&str> {
    log.filter.as_ref().map(|f| f.expression.as_str())
}

const EXT: &str = "accessLogFile: /var/log/mesh.log
extensionProviders:
- name: json-file
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels: {code: \"%RESPONSE_CODE%\"}
- name: text-file
  envoyFileAccessLog:
    path: /var/log/egress.log
    logFormat:
      text: \"%RESPONSE_CODE% %ROUTE_NAME%\"
- name: otel
  opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
";

#[test]
fn without_telemetry_mesh_config_decides() {
    let s = snap(&mesh("accessLogFile: /dev/stdout\naccessLogEncoding: JSON"));
    assert_eq!(s.access_log.path.as_deref(), Some("/dev/stdout"));
    assert_eq!(s.access_log.encoding, LogEncoding::Json);
    assert_eq!(s.access_log.provider, None);
    assert_eq!(s.access_log.filter, None);
    assert!(s.access_log.additional.is_empty());
    assert_eq!(
        snap(&mesh("trustDomain: cluster.local")).access_log,
        AccessLog::default()
    );
}

/// (what the case shows, the documents, the providers that log, the first one's filter).
type Case = (
    &'static str,
    Vec<String>,
    Vec<&'static str>,
    Option<&'static str>,
);

#[test]
fn selection_and_merge_table() {
    let root = |spec: &str| telemetry("mesh-default", ROOT, "2024-01-01T00:00:00Z", spec);
    let ns = |spec: &str| telemetry("ns-default", NS, "2024-01-01T00:00:00Z", spec);
    let workload = |labels: &str, spec: &str| {
        telemetry(
            "gw",
            NS,
            "2024-01-01T00:00:00Z",
            &format!("  selector: {{matchLabels: {labels}}}\n{spec}"),
        )
    };
    let envoy = "  accessLogging:\n  - providers: [{name: envoy}]\n";
    let envoy_errors = "  accessLogging:\n  - providers: [{name: envoy}]\n    filter: {expression: \"response.code >= 400\"}\n";
    let off = "  accessLogging:\n  - disabled: true\n";
    let on = "  accessLogging:\n  - disabled: false\n";
    let m = mesh(EXT);
    let cases: Vec<Case> = vec![
        (
            "root enables envoy",
            vec![m.clone(), root(envoy)],
            vec!["envoy"],
            None,
        ),
        (
            "namespace disables what the root enabled",
            vec![m.clone(), root(envoy), ns(off)],
            vec![],
            None,
        ),
        (
            "the workload re-enables what the namespace disabled",
            vec![
                m.clone(),
                root(envoy),
                ns(off),
                workload("{istio: asm-egress-test}", on),
            ],
            vec!["envoy"],
            None,
        ),
        (
            "a Telemetry selecting other pods does not apply",
            vec![m.clone(), root(envoy), workload("{app: curl}", off)],
            vec!["envoy"],
            None,
        ),
        (
            "a more specific level naming providers replaces the set in scope",
            vec![
                m.clone(),
                root(envoy),
                ns("  accessLogging:\n  - providers: [{name: json-file}]\n"),
            ],
            vec!["json-file"],
            None,
        ),
        (
            "several providers at one level all log",
            vec![
                m.clone(),
                root("  accessLogging:\n  - providers: [{name: text-file}, {name: envoy}]\n"),
            ],
            vec!["envoy", "text-file"],
            None,
        ),
        (
            "a filter applies to the providers its entry names",
            vec![m.clone(), root(envoy_errors)],
            vec!["envoy"],
            Some("response.code >= 400"),
        ),
        (
            "a more specific entry naming the provider without a filter clears it",
            vec![m.clone(), root(envoy_errors), ns(envoy)],
            vec!["envoy"],
            None,
        ),
        (
            "an entry naming no provider keeps the inherited filter",
            vec![m.clone(), root(envoy_errors), ns(on)],
            vec!["envoy"],
            Some("response.code >= 400"),
        ),
        (
            "an entry naming no provider filters the inherited ones",
            vec![
                m.clone(),
                root(envoy),
                workload(
                    "{istio: asm-egress-test}",
                    "  accessLogging:\n  - filter: {expression: \"response.code == 503\"}\n",
                ),
            ],
            vec!["envoy"],
            Some("response.code == 503"),
        ),
        (
            "SERVER entries do not apply to a gateway",
            vec![
                m.clone(),
                root(
                    "  accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: SERVER}\n",
                ),
            ],
            vec![],
            None,
        ),
        (
            "a SERVER-only filter stays off the gateway",
            vec![
                m.clone(),
                root(envoy),
                ns(
                    "  accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: SERVER}\n    filter: {expression: \"response.code >= 500\"}\n",
                ),
            ],
            vec!["envoy"],
            None,
        ),
        (
            "CLIENT and CLIENT_AND_SERVER entries apply",
            vec![
                m.clone(),
                root(
                    "  accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: CLIENT}\n",
                ),
                ns(
                    "  accessLogging:\n  - match: {mode: CLIENT_AND_SERVER}\n    filter: {expression: \"response.code >= 400\"}\n",
                ),
            ],
            vec!["envoy"],
            Some("response.code >= 400"),
        ),
        (
            "the oldest namespace-wide Telemetry wins",
            vec![
                m.clone(),
                telemetry("b-newer", NS, "2024-02-01T00:00:00Z", off),
                telemetry("a-older", NS, "2024-01-01T00:00:00Z", envoy),
            ],
            vec!["envoy"],
            None,
        ),
        (
            "a root Telemetry with a selector is not mesh-wide",
            vec![
                mesh("trustDomain: cluster.local"),
                telemetry(
                    "sel",
                    ROOT,
                    "2024-01-01T00:00:00Z",
                    &format!("  selector: {{matchLabels: {{istio: asm-egress-test}}}}\n{envoy}"),
                ),
            ],
            vec![],
            None,
        ),
        (
            "defaultProviders log without any Telemetry",
            vec![mesh("defaultProviders:\n  accessLogging: [envoy]")],
            vec!["envoy"],
            None,
        ),
        (
            "a namespace entry without providers disables the defaults",
            vec![mesh("defaultProviders:\n  accessLogging: [envoy]"), ns(off)],
            vec![],
            None,
        ),
    ];
    for (case, parts, want, want_filter) in cases {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let s = snap(&docs(&refs));
        assert_eq!(providers(&s.access_log), want, "{case}");
        if want.is_empty() {
            assert_eq!(s.access_log.path, None, "{case}: logging is off");
        }
        assert_eq!(filter_of(&s.access_log), want_filter, "{case}");
    }
}

#[test]
fn providers_resolve_to_files_and_formats() {
    let s = snap(&docs(&[
        &mesh(&format!("{EXT}accessLogFormat: \"%ROUTE_NAME%\"")),
        &telemetry(
            "all",
            ROOT,
            "2024-01-01T00:00:00Z",
            "  accessLogging:\n  - providers: [{name: envoy}, {name: json-file}, {name: Text-File}, {name: otel}]\n",
        ),
    ]));
    let log = &s.access_log;
    assert_eq!(log.provider.as_deref(), Some("envoy"));
    assert_eq!(log.path.as_deref(), Some("/dev/stdout"));
    assert_eq!(
        log.format.as_deref(),
        Some("%ROUTE_NAME%"),
        "envoy uses MeshConfig's format"
    );
    assert_eq!(log.encoding, LogEncoding::Text);
    let [json, text] = log.additional.as_slice() else {
        panic!("two more providers expected: {:?}", log.additional);
    };
    assert_eq!(json.provider.as_deref(), Some("json-file"));
    assert_eq!(json.encoding, LogEncoding::Json);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(json.format.as_deref().unwrap()).unwrap(),
        serde_json::json!({"code": "%RESPONSE_CODE%"})
    );
    assert_eq!(
        text.provider.as_deref(),
        Some("Text-File"),
        "names match case-insensitively"
    );
    assert_eq!(text.path.as_deref(), Some("/var/log/egress.log"));
    assert_eq!(text.format.as_deref(), Some("%RESPONSE_CODE% %ROUTE_NAME%"));
    assert!(
        s.warnings.iter().any(|w| w.contains("\"otel\"")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn unsupported_filter_logs_everything_with_a_warning() {
    let s = snap(&docs(&[
        &mesh("accessLogFile: /dev/stdout"),
        &telemetry(
            "f",
            NS,
            "2024-01-01T00:00:00Z",
            "  accessLogging:\n  - providers: [{name: envoy}]\n    filter: {expression: \"size(request.headers) > 2\"}\n",
        ),
    ]));
    assert_eq!(s.access_log.provider.as_deref(), Some("envoy"));
    assert_eq!(s.access_log.filter, None);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("size(request.headers) > 2") && w.contains("every entry is logged")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn filter_parsing_table() {
    use FilterAttribute as A;
    let cmp = |a: A, op: CompareOp, v: FilterValue| FilterExpr::Compare(a, op, v);
    let cases: Vec<(&str, FilterExpr)> = vec![
        (
            "response.code >= 400",
            cmp(A::ResponseCode, CompareOp::Ge, FilterValue::Int(400)),
        ),
        (
            "400 < response.code",
            cmp(A::ResponseCode, CompareOp::Gt, FilterValue::Int(400)),
        ),
        (
            "response.code == 503 || response.code != 200 && !connection.mtls",
            FilterExpr::Or(
                Box::new(cmp(A::ResponseCode, CompareOp::Eq, FilterValue::Int(503))),
                Box::new(FilterExpr::And(
                    Box::new(cmp(A::ResponseCode, CompareOp::Ne, FilterValue::Int(200))),
                    Box::new(FilterExpr::Not(Box::new(FilterExpr::Attribute(
                        A::ConnectionMtls,
                    )))),
                )),
            ),
        ),
        (
            "(request.host == 'a.com') && request.method <= \"POST\"",
            FilterExpr::And(
                Box::new(cmp(
                    A::RequestHost,
                    CompareOp::Eq,
                    FilterValue::Str("a.com".into()),
                )),
                Box::new(cmp(
                    A::RequestMethod,
                    CompareOp::Le,
                    FilterValue::Str("POST".into()),
                )),
            ),
        ),
        (
            "request.url_path.startsWith(\"/x\")",
            FilterExpr::Call(A::RequestUrlPath, StringMethod::StartsWith, "/x".into()),
        ),
        (
            "request.headers['X-Team'].endsWith('e')",
            FilterExpr::Call(
                A::RequestHeader("x-team".into()),
                StringMethod::EndsWith,
                "e".into(),
            ),
        ),
        (
            "response.flags != 0",
            cmp(A::ResponseFlags, CompareOp::Ne, FilterValue::Int(0)),
        ),
        (
            "connection.mtls == true",
            cmp(A::ConnectionMtls, CompareOp::Eq, FilterValue::Bool(true)),
        ),
        ("false", FilterExpr::Const(false)),
    ];
    for (src, want) in cases {
        let f: LogFilter = src.parse().unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(f.expr, want, "{src}");
        assert_eq!(f.expression, src);
    }

    let unsupported = [
        "response.code >= \"400\"",
        "response.flags == \"NR\"",
        "request.host == request.method",
        "response.code + 1 > 400",
        "size(request.headers) > 2",
        "request.method in ['GET', 'PUT']",
        "response.code",
        "upstream.address == 'x'",
        "request.url_path.matches('^/x')",
        "response.duration > duration('1s')",
        "response.code >= 400 ? true : false",
        "1 == 1",
        "response.code >= 4.5",
        "connection.mtls < true",
    ];
    for src in unsupported {
        match LogFilter::parse(src) {
            Err(FilterError::Unsupported(_)) => {}
            other => panic!("{src}: expected Unsupported, got {other:?}"),
        }
    }
    for src in [
        "response.code >=",
        "(response.code == 1",
        "a ==== b",
        "'open",
        "a # b",
    ] {
        match LogFilter::parse(src) {
            Err(FilterError::Syntax { .. }) => {}
            other => panic!("{src}: expected a syntax error, got {other:?}"),
        }
    }
}
