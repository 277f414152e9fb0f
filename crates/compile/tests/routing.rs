//! HTTP routing at the gateway: Gateway selection, VirtualService binding, `match.port`,
//! weights, route names, the blackhole host and route actions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use egress_compile::snapshot::{Redirect, RetryPolicy, RouteAction, StringMatch};

fn gateway(selector: &str, hosts: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress
spec:
  {selector}
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts: {hosts}
"#
    )
}

fn gw() -> String {
    gateway("selector: {istio: asm-egress-test}", "[edition.cnn.com]")
}

fn vs(name: &str, gateways: &str, http: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts: [edition.cnn.com]
  gateways: {gateways}
  http:
{http}
"#
    )
}

const TO_CNN_80: &str =
    "  - route:\n    - destination: {host: edition.cnn.com, port: {number: 80}}\n";

fn table(s: &egress_compile::Snapshot) -> &egress_compile::snapshot::RouteConfig {
    http_table(listener(s, "0.0.0.0_8080"))
}

#[test]
fn gateway_selector_must_match_the_pod() {
    let mismatch = gateway("selector: {istio: some-other-gateway}", "[edition.cnn.com]");
    let s = snap(&format!(
        "{CNN_SE}---{mismatch}---{}",
        vs("v", "[egress]", TO_CNN_80)
    ));
    assert!(s.listeners.is_empty(), "{:#?}", s.listeners);
    assert!(s.clusters.is_empty());

    // A Gateway without selector applies to every workload.
    let any = gateway("", "[edition.cnn.com]");
    let s = snap(&format!(
        "{CNN_SE}---{any}---{}",
        vs("v", "[egress]", TO_CNN_80)
    ));
    assert_eq!(s.listeners.len(), 1);
}

#[test]
fn virtual_service_bound_to_another_gateway_is_ignored() {
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[other]", TO_CNN_80)
    ));
    let rc = table(&s);
    assert_eq!(rc.virtual_hosts.len(), 1);
    let bh = vhost(rc, "blackhole:80");
    assert_eq!(bh.domains, vec!["*"]);
    assert!(bh.routes.is_empty());
    assert!(s.clusters.is_empty());
    assert!(
        s.warnings.iter().any(|w| w.contains("404 NR")),
        "{:?}",
        s.warnings
    );

    // Omitted gateways mean `mesh` only.
    let mesh_only = vs("v", "[]", TO_CNN_80).replace("  gateways: []\n", "");
    let s = snap(&format!("{CNN_SE}---{}---{mesh_only}", gw()));
    assert!(vhost(table(&s), "blackhole:80").routes.is_empty());
}

#[test]
fn gateway_references_resolve_like_istio() {
    for gateways in [
        "[egress]",
        "[aks-istio-egress/egress]",
        "[egress.aks-istio-egress.svc.cluster.local]",
    ] {
        let s = snap(&format!(
            "{CNN_SE}---{}---{}",
            gw(),
            vs("v", gateways, TO_CNN_80)
        ));
        let v = vhost(table(&s), "edition.cnn.com:80");
        assert_eq!(v.routes.len(), 1, "gateways {gateways}");
    }
    // A VirtualService in another namespace must name the gateway's namespace.
    let other_ns =
        vs("v", "[egress]", TO_CNN_80).replace("  name: v\n", "  name: v\n  namespace: team\n");
    let s = snap(&format!("{CNN_SE}---{}---{other_ns}", gw()));
    assert!(vhost(table(&s), "blackhole:80").routes.is_empty());
    let qualified = other_ns.replace("[egress]", "[aks-istio-egress/egress]");
    let s = snap(&format!("{CNN_SE}---{}---{qualified}", gw()));
    assert_eq!(vhost(table(&s), "edition.cnn.com:80").routes.len(), 1);
}

#[test]
fn match_port_is_the_service_port_not_the_target_port() {
    let http = |port: u16| {
        format!(
            "  - match:\n    - port: {port}\n    route:\n    - destination: {{host: edition.cnn.com, port: {{number: 80}}}}\n"
        )
    };
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", &http(80))
    ));
    assert_eq!(vhost(table(&s), "edition.cnn.com:80").routes.len(), 1);
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", &http(8080))
    ));
    let rc = table(&s);
    assert_eq!(rc.virtual_hosts.len(), 1);
    assert!(vhost(rc, "blackhole:80").routes.is_empty());
}

#[test]
fn match_gateways_and_source_labels_select_rules() {
    let http = "  - match:\n    - gateways: [mesh]\n    route:\n    - destination: {host: x.example.com}\n  - match:\n    - sourceLabels: {app: curl}\n    route:\n    - destination: {host: y.example.com}\n  - match:\n    - sourceLabels: {app: asm-egress-test}\n      uri: {prefix: /a}\n    route:\n    - destination: {host: edition.cnn.com}\n";
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress, mesh]", http)
    ));
    let v = vhost(table(&s), "edition.cnn.com:80");
    assert_eq!(v.routes.len(), 1);
    assert_eq!(
        v.routes[0].matcher.uri,
        Some(StringMatch::Prefix("/a".into()))
    );
    // No destination port and two service ports: the server port is used.
    assert_eq!(
        targets(&v.routes[0]),
        vec![("outbound|80||edition.cnn.com".into(), 100)]
    );
}

#[test]
fn weights() {
    let http = "  - route:\n    - destination: {host: edition.cnn.com, port: {number: 80}}\n      weight: 70\n    - destination: {host: edition.cnn.com, port: {number: 443}}\n      weight: 30\n    - destination: {host: other.example.com, port: {number: 80}}\n      weight: 0\n";
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", http)
    ));
    let r = &vhost(table(&s), "edition.cnn.com:80").routes[0];
    assert_eq!(
        targets(r),
        vec![
            ("outbound|80||edition.cnn.com".into(), 70),
            ("outbound|443||edition.cnn.com".into(), 30)
        ]
    );
    // A single destination takes all traffic whatever its weight.
    let single = "  - route:\n    - destination: {host: edition.cnn.com, port: {number: 80}}\n";
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", single)
    ));
    assert_eq!(
        targets(&vhost(table(&s), "edition.cnn.com:80").routes[0]),
        vec![("outbound|80||edition.cnn.com".into(), 100)]
    );
}

#[test]
fn route_names_and_multiple_matches() {
    let http = "  - name: primary\n    match:\n    - name: politics\n      uri: {prefix: /politics}\n    - uri: {exact: /sport}\n      headers:\n        X-Team: {exact: blue}\n        present: {}\n    route:\n    - destination: {host: edition.cnn.com, port: {number: 80}}\n  - route:\n    - destination: {host: edition.cnn.com, port: {number: 443}}\n  - route:\n    - destination: {host: never.example.com}\n";
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", http)
    ));
    let v = vhost(table(&s), "edition.cnn.com:80");
    let names: Vec<&str> = v.routes.iter().map(|r| r.name.as_str()).collect();
    // The catch-all rule stops translation: the third rule never appears.
    assert_eq!(names, vec!["primary.politics", "primary", ""]);
    assert_eq!(
        v.routes[1].matcher.uri,
        Some(StringMatch::Exact("/sport".into()))
    );
    assert_eq!(
        v.routes[1].matcher.headers,
        vec![
            ("present".to_owned(), None),
            ("x-team".to_owned(), Some(StringMatch::Exact("blue".into())))
        ]
    );
    assert_eq!(
        targets(&v.routes[2]),
        vec![("outbound|443||edition.cnn.com".into(), 100)]
    );
}

#[test]
fn catch_all_routes_of_several_virtual_services_sort_last() {
    let first = vs("a", "[egress]", TO_CNN_80);
    let second = vs(
        "b",
        "[egress]",
        "  - match:\n    - uri: {prefix: /x}\n    route:\n    - destination: {host: edition.cnn.com, port: {number: 443}}\n",
    );
    let s = snap(&format!("{CNN_SE}---{}---{first}---{second}", gw()));
    let v = vhost(table(&s), "edition.cnn.com:80");
    assert_eq!(v.routes.len(), 2);
    assert_eq!(
        v.routes[0].matcher.uri,
        Some(StringMatch::Prefix("/x".into()))
    );
    assert_eq!(v.routes[1].matcher.uri, None);
}

#[test]
fn wildcard_server_hosts_take_the_virtual_service_host() {
    let g = gateway("selector: {istio: asm-egress-test}", "['*.cnn.com', '*']");
    let s = snap(&format!(
        "{CNN_SE}---{g}---{}",
        vs("v", "[egress]", TO_CNN_80)
    ));
    let rc = table(&s);
    assert_eq!(rc.virtual_hosts.len(), 1);
    assert_eq!(
        vhost(rc, "edition.cnn.com:80").domains,
        vec!["edition.cnn.com"]
    );
}

#[test]
fn server_host_namespaces_restrict_virtual_services() {
    let dot = gateway(
        "selector: {istio: asm-egress-test}",
        "['./edition.cnn.com']",
    );
    let in_team = vs("v", "[aks-istio-egress/egress]", TO_CNN_80)
        .replace("  name: v\n", "  name: v\n  namespace: team\n");
    let s = snap(&format!("{CNN_SE}---{dot}---{in_team}"));
    assert!(vhost(table(&s), "blackhole:80").routes.is_empty());
    let s = snap(&format!(
        "{CNN_SE}---{dot}---{}",
        vs("v", "[egress]", TO_CNN_80)
    ));
    assert_eq!(vhost(table(&s), "edition.cnn.com:80").routes.len(), 1);
}

#[test]
fn export_to_hides_virtual_services_from_the_gateway_namespace() {
    let private = vs("v", "[aks-istio-egress/egress]", TO_CNN_80)
        .replace("  name: v\n", "  name: v\n  namespace: team\n")
        .replace("  hosts:", "  exportTo: ['.']\n  hosts:");
    let s = snap(&format!("{CNN_SE}---{}---{private}", gw()));
    assert!(vhost(table(&s), "blackhole:80").routes.is_empty());
    let exported = private.replace("exportTo: ['.']", "exportTo: [aks-istio-egress]");
    let s = snap(&format!("{CNN_SE}---{}---{exported}", gw()));
    assert_eq!(vhost(table(&s), "edition.cnn.com:80").routes.len(), 1);
}

#[test]
fn https_redirect_requires_tls() {
    let g = gw().replace(
        "    hosts: [edition.cnn.com]",
        "    hosts: [edition.cnn.com, other.example.com]\n    tls:\n      httpsRedirect: true",
    );
    let s = snap(&format!(
        "{CNN_SE}---{g}---{}",
        vs("v", "[egress]", TO_CNN_80)
    ));
    let rc = table(&s);
    assert!(vhost(rc, "edition.cnn.com:80").require_tls);
    let other = vhost(rc, "other.example.com:80");
    assert!(other.require_tls);
    assert!(other.routes.is_empty());
}

#[test]
fn actions_timeouts_retries_headers() {
    let http = r#"  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: example.org, redirectCode: 302}
  - match:
    - uri: {prefix: /teapot}
    directResponse: {status: 418, body: {string: short and stout}}
  - match:
    - uri: {prefix: /b64}
    directResponse: {status: 200, body: {bytes: aGk=}}
  - match:
    - uri: {prefix: /api}
    rewrite: {uri: /v2, authority: api.cnn.com}
    timeout: 3s
    retries: {attempts: 0}
    headers:
      request:
        set: {x-egress: "yes"}
        remove: [x-internal]
      response:
        add: {x-served-by: egress}
    route:
    - destination: {host: edition.cnn.com, port: {number: 80}}
  - retries: {attempts: 4, retryOn: "5xx,429", perTryTimeout: 1s}
    route:
    - destination: {host: edition.cnn.com, port: {number: 80}}
      headers:
        request:
          set: {host: rewritten.cnn.com}
"#;
    let s = snap(&format!(
        "{CNN_SE}---{}---{}",
        gw(),
        vs("v", "[egress]", http)
    ));
    let rs = &vhost(table(&s), "edition.cnn.com:80").routes;
    assert_eq!(rs.len(), 5);
    assert_eq!(
        rs[0].action,
        RouteAction::Redirect(Redirect {
            uri: Some("/new".into()),
            authority: Some("example.org".into()),
            scheme: None,
            port: None,
            status: 302
        })
    );
    assert_eq!(
        rs[1].action,
        RouteAction::DirectResponse {
            status: 418,
            body: Some("short and stout".into())
        }
    );
    assert_eq!(
        rs[2].action,
        RouteAction::DirectResponse {
            status: 200,
            body: Some("hi".into())
        }
    );
    let api = forward(&rs[3]);
    assert_eq!(api.timeout, Some(Duration::from_secs(3)));
    assert_eq!(api.retry, None);
    assert_eq!(api.rewrite_uri.as_deref(), Some("/v2"));
    assert_eq!(api.rewrite_authority.as_deref(), Some("api.cnn.com"));
    assert_eq!(
        rs[3].request_headers.set,
        vec![("x-egress".to_owned(), "yes".to_owned())]
    );
    assert_eq!(rs[3].request_headers.remove, vec!["x-internal".to_owned()]);
    assert_eq!(
        rs[3].response_headers.add,
        vec![("x-served-by".to_owned(), "egress".to_owned())]
    );
    let last = forward(&rs[4]);
    assert_eq!(
        last.retry,
        Some(RetryPolicy {
            attempts: 4,
            per_try_timeout: Some(Duration::from_secs(1)),
            retry_on: vec!["5xx".into(), "retriable-status-codes".into()],
            retriable_status_codes: vec![429],
        })
    );
    assert_eq!(last.rewrite_authority.as_deref(), Some("rewritten.cnn.com"));
    assert!(rs[4].request_headers.set.is_empty());
}

#[test]
fn plaintext_servers_on_one_port_share_a_table_and_tls_cannot_join() {
    let two = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: second
spec:
  selector: {istio: asm-egress-test}
  servers:
  - port: {number: 80, name: http-b, protocol: HTTP}
    hosts: [api.example.com]
  - port: {number: 80, name: tls-c, protocol: TLS}
    hosts: [tls.example.com]
    tls: {mode: PASSTHROUGH}
"#;
    let api = vs("w", "[second]", TO_CNN_80).replace("[edition.cnn.com]", "[api.example.com]");
    let s = snap(&format!(
        "{CNN_SE}---{}---{two}---{}---{api}",
        gw(),
        vs("v", "[egress]", TO_CNN_80)
    ));
    assert_eq!(s.listeners.len(), 1);
    let rc = table(&s);
    assert_eq!(rc.name, "http.8080");
    assert_eq!(rc.virtual_hosts.len(), 2);
    assert_eq!(vhost(rc, "api.example.com:80").routes.len(), 1);
    assert!(
        s.warnings.iter().any(|w| w.contains("tls-c")),
        "{:?}",
        s.warnings
    );
}
