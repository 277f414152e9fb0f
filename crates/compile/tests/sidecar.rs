//! The sidecar compiler beyond the seed: the catch-all under ALLOW_ANY and REGISTRY_ONLY,
//! Sidecar resources over MeshConfig, exportTo, Sidecar egress hosts, VirtualService
//! `match.port` / `sourceLabels` / `sourceNamespace`, Kubernetes short names, TLS, TCP and
//! mixed-protocol ports, and the special clusters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sidecar_common;

use common::CNN_SE;
use egress_compile::snapshot::{OutboundPolicy, PASSTHROUGH_CLUSTER, RouteAction};
use sidecar_common::*;

/// A Sidecar `name` in `ns` with a `spec` body.
fn sidecar_resource(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\nspec:\n{spec}"
    )
}

fn policy(mode: &str) -> String {
    format!("  outboundTrafficPolicy:\n    mode: {mode}\n")
}

#[test]
fn catch_all_follows_the_outbound_traffic_policy() {
    for (docs, policy, catch_all) in [
        (vec![CNN_SE], OutboundPolicy::AllowAny, "allow_any"),
        (
            vec![CNN_SE, REGISTRY_ONLY],
            OutboundPolicy::RegistryOnly,
            "block_all",
        ),
    ] {
        let s = sidecar(&join(&docs));
        assert_eq!(s.outbound, policy);
        let rc = http(&s, 80);
        assert_eq!(vh_names(rc), ["edition.cnn.com:80", catch_all]);
        let v = vh(rc, "edition.cnn.com:80");
        assert_eq!(v.routes[0].name, "default");
        assert_eq!(
            to(&v.routes[0]),
            [("outbound|80||edition.cnn.com".to_owned(), 100)]
        );
        let last = rc.virtual_hosts.last().unwrap();
        assert_eq!(
            (last.domains.as_slice(), last.routes.len()),
            (&["*".to_owned()][..], 1)
        );
        match policy {
            OutboundPolicy::AllowAny => {
                assert_eq!(to(&last.routes[0]), [(PASSTHROUGH_CLUSTER.to_owned(), 100)]);
                let RouteAction::Forward(f) = &last.routes[0].action else {
                    panic!()
                };
                assert_eq!((f.retry.as_ref(), f.timeout), (None, None));
            }
            OutboundPolicy::RegistryOnly => assert_eq!(
                last.routes[0].action,
                RouteAction::DirectResponse {
                    status: 502,
                    body: None
                }
            ),
        }
        // TLS ports have no catch-all route: unmatched SNI falls to the policy.
        assert_eq!(
            sni(tls(&s, 443)),
            [(
                vec!["edition.cnn.com"],
                vec!["outbound|443||edition.cnn.com"],
                None
            )]
        );
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }
}

#[test]
fn most_specific_sidecar_overrides_mesh_config() {
    let ns_allow = sidecar_resource("default", common::NS, &policy("ALLOW_ANY"));
    let curl_only = sidecar_resource(
        "curl",
        common::NS,
        &format!(
            "  workloadSelector:\n    labels:\n      app: curl\n{}",
            policy("REGISTRY_ONLY")
        ),
    );
    let other_app = sidecar_resource(
        "other",
        common::NS,
        &format!(
            "  workloadSelector:\n    labels:\n      app: other\n{}",
            policy("ALLOW_ANY")
        ),
    );
    let root = sidecar_resource("default", "aks-istio-system", &policy("REGISTRY_ONLY"));
    let other_ns = sidecar_resource("default", "apps", &policy("REGISTRY_ONLY"));
    let proto_default = sidecar_resource("default", common::NS, "  outboundTrafficPolicy: {}\n");
    let no_policy = sidecar_resource("default", common::NS, "  egress:\n  - hosts: [\"*/*\"]\n");
    use OutboundPolicy::{AllowAny, RegistryOnly};
    let cases: Vec<(&str, Vec<&str>, OutboundPolicy)> = vec![
        ("mesh default", vec![], AllowAny),
        ("mesh REGISTRY_ONLY", vec![REGISTRY_ONLY], RegistryOnly),
        (
            "namespace Sidecar over MeshConfig",
            vec![REGISTRY_ONLY, &ns_allow],
            AllowAny,
        ),
        (
            "workload Sidecar over namespace Sidecar",
            vec![&ns_allow, &curl_only],
            RegistryOnly,
        ),
        (
            "a Sidecar selecting other pods does not apply",
            vec![&other_app],
            AllowAny,
        ),
        (
            "root namespace Sidecar when the namespace has none",
            vec![&other_app, &root],
            RegistryOnly,
        ),
        (
            "namespace Sidecar over root Sidecar",
            vec![&ns_allow, &root],
            AllowAny,
        ),
        (
            "another namespace's Sidecar does not apply",
            vec![&other_ns],
            AllowAny,
        ),
        (
            "outboundTrafficPolicy without mode is REGISTRY_ONLY",
            vec![&proto_default],
            RegistryOnly,
        ),
        (
            "a Sidecar without outboundTrafficPolicy keeps MeshConfig's",
            vec![REGISTRY_ONLY, &no_policy],
            RegistryOnly,
        ),
    ];
    for (what, docs, want) in cases {
        let mut all = vec![CNN_SE];
        all.extend(docs);
        let s = sidecar(&join(&all));
        assert_eq!(s.outbound, want, "{what}");
        let last = http(&s, 80).virtual_hosts.last().unwrap();
        let name = match want {
            AllowAny => "allow_any",
            RegistryOnly => "block_all",
        };
        assert_eq!(last.name, name, "{what}");
    }
}

#[test]
fn export_to_hides_services_from_other_namespaces() {
    let docs = [
        se(
            "internal",
            "other",
            "internal.example.com",
            80,
            "HTTP",
            "exportTo: [\".\"]",
        ),
        se(
            "shared",
            "other",
            "shared.example.com",
            80,
            "HTTP",
            "exportTo: [aks-istio-egress]",
        ),
        se("public", "other", "public.example.com", 80, "HTTP", ""),
        se(
            "nobody",
            common::NS,
            "nobody.example.com",
            80,
            "HTTP",
            "exportTo: [\"~\"]",
        ),
        se(
            "elsewhere",
            "other",
            "elsewhere.example.com",
            80,
            "HTTP",
            "exportTo: [apps]",
        ),
    ];
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let s = sidecar(&join(&docs));
    assert_eq!(
        vh_names(http(&s, 80)),
        [
            "public.example.com:80",
            "shared.example.com:80",
            "allow_any"
        ]
    );
    assert!(!s.clusters.contains_key("outbound|80||internal.example.com"));

    // MeshConfig's defaultServiceExportTo applies to entries without exportTo.
    let mesh = REGISTRY_ONLY.replace(
        "      mode: REGISTRY_ONLY",
        "      mode: ALLOW_ANY\n    defaultServiceExportTo: [\".\"]",
    );
    let mut with_mesh = docs.clone();
    with_mesh.push(&mesh);
    let s = sidecar(&join(&with_mesh));
    assert_eq!(
        vh_names(http(&s, 80)),
        ["shared.example.com:80", "allow_any"]
    );
    // The owner namespace sees its private entry, but not those exported to other
    // namespaces only (exportTo lists the owner only as `.` or by name).
    let s = compile_for(&workload("other", "x"), &join(&docs));
    assert_eq!(
        vh_names(http(&s, 80)),
        [
            "internal.example.com:80",
            "public.example.com:80",
            "allow_any"
        ]
    );
}

#[test]
fn sidecar_egress_hosts_limit_services_and_virtual_services() {
    let api = se("api", "other", "api.example.com", 80, "HTTP", "");
    let org = se("org", "other", "api.example.org", 80, "HTTP", "");
    let org_vs = format!(
        "{}\n  namespace: other\n",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: org"
    ) + "spec:\n  hosts: [api.example.org]\n  http:\n  - route:\n    - destination:\n        host: api.example.com\n";
    let cnn_vs = vs(
        "cnn",
        "[edition.cnn.com]",
        "  http:\n  - name: via-gateway\n    route:\n    - destination:\n        host: asm-egress-test.aks-istio-egress.svc.cluster.local\n        subset: cnn\n",
    );
    let base = [GATEWAY, CNN_SE, CNN_SUBSET, &api, &org, &org_vs, &cnn_vs];
    let cases: Vec<(&str, String, Vec<u16>, Vec<&str>)> = vec![
        (
            "no Sidecar: everything visible",
            String::new(),
            vec![80, 443, 15021],
            vec![
                "api.example.com:80",
                "api.example.org:80",
                "asm-egress-test.aks-istio-egress.svc.cluster.local:80",
                "edition.cnn.com:80",
                "allow_any",
            ],
        ),
        (
            "own namespace's cnn and other's *.example.com",
            sidecar_resource(
                "default",
                common::NS,
                "  egress:\n  - hosts: [\"./edition.cnn.com\", \"other/*.example.com\"]\n",
            ),
            vec![80, 443],
            vec!["api.example.com:80", "edition.cnn.com:80", "allow_any"],
        ),
        (
            "*/* is everything",
            sidecar_resource("default", common::NS, "  egress:\n  - hosts: [\"*/*\"]\n"),
            vec![80, 443, 15021],
            vec![
                "api.example.com:80",
                "api.example.org:80",
                "asm-egress-test.aks-istio-egress.svc.cluster.local:80",
                "edition.cnn.com:80",
                "allow_any",
            ],
        ),
        (
            "a port listener and a catch-all importing nothing",
            sidecar_resource(
                "default",
                common::NS,
                "  egress:\n  - port:\n      number: 443\n      protocol: TLS\n      name: tls\n    hosts: [\"*/edition.cnn.com\"]\n  - hosts: [\"~/*\"]\n",
            ),
            vec![443],
            vec![],
        ),
    ];
    for (what, sc, ports, vhosts) in cases {
        let mut docs: Vec<&str> = base.to_vec();
        if !sc.is_empty() {
            docs.push(&sc);
        }
        let s = sidecar(&join(&docs));
        assert_eq!(s.ports.keys().copied().collect::<Vec<_>>(), ports, "{what}");
        if !vhosts.is_empty() {
            assert_eq!(vh_names(http(&s, 80)), vhosts, "{what}");
            let cnn = vh(http(&s, 80), "edition.cnn.com:80");
            assert_eq!(
                cnn.routes[0].name, "via-gateway",
                "{what}: the cnn VirtualService applies"
            );
        }
    }
}

#[test]
fn match_port_other_than_the_listener_port_drops_the_rule() {
    for (port, route, target) in [
        ("8080", "default", "outbound|80||edition.cnn.com"),
        (
            "80",
            "to-gateway",
            "outbound|80|cnn|asm-egress-test.aks-istio-egress.svc.cluster.local",
        ),
    ] {
        let v = vs(
            "cnn",
            "[edition.cnn.com]",
            &format!(
                "  http:\n  - name: to-gateway\n    match:\n    - port: {port}\n    route:\n    - destination:\n        host: asm-egress-test.aks-istio-egress.svc.cluster.local\n        subset: cnn\n"
            ),
        );
        let s = sidecar(&join(&[GATEWAY, CNN_SE, CNN_SUBSET, &v]));
        let h = vh(http(&s, 80), "edition.cnn.com:80");
        assert_eq!(h.routes.len(), 1, "match.port {port}");
        assert_eq!(h.routes[0].name, route, "match.port {port}");
        assert_eq!(
            to(&h.routes[0]),
            [(target.to_owned(), 100)],
            "match.port {port}"
        );
    }
}

#[test]
fn source_labels_and_namespace_are_decided_per_workload() {
    let route = |name: &str, cond: &str, subset: &str| {
        format!(
            "  - name: {name}\n    match:\n    - {cond}\n    route:\n    - destination:\n        host: asm-egress-test.aks-istio-egress.svc.cluster.local\n        subset: {subset}\n"
        )
    };
    let body = format!(
        "  http:\n{}{}{}  - name: rest\n    route:\n    - destination:\n        host: edition.cnn.com\n",
        route("for-other", "sourceLabels: {app: other}", "cnn"),
        route("for-apps", "sourceNamespace: apps", "cnn"),
        route("for-curl", "sourceLabels: {app: curl}", "cnn"),
    );
    let docs = join(&[
        GATEWAY,
        CNN_SE,
        CNN_SUBSET,
        &vs("cnn", "[edition.cnn.com]", &body),
    ]);
    for (who, want) in [
        (curl(), vec!["for-curl"]),
        (workload(common::NS, "other"), vec!["for-other"]),
        (workload("apps", "web"), vec!["for-apps"]),
        (workload("apps", "curl"), vec!["for-apps"]),
        (workload("batch", "job"), vec!["rest"]),
    ] {
        let s = compile_for(&who, &docs);
        let h = vh(http(&s, 80), "edition.cnn.com:80");
        // Each selected rule matches any request, so translation stops after it.
        let names: Vec<&str> = h.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, want, "{}/{:?}", who.namespace, who.labels);
    }
}

#[test]
fn virtual_service_hosts_outside_the_registry_get_hosts_on_port_80() {
    let v = vs(
        "httpbin",
        "[httpbin.org]",
        "  http:\n  - route:\n    - destination:\n        host: edition.cnn.com\n",
    );
    let s = sidecar(&join(&[CNN_SE, &v]));
    let h = vh(http(&s, 80), "httpbin.org:80");
    assert_eq!(h.domains, ["httpbin.org"]);
    assert_eq!(
        to(&h.routes[0]),
        [("outbound|80||edition.cnn.com".to_owned(), 100)]
    );
    // Not on other ports: there it needs a registry service of the port.
    let web = se("web", common::NS, "web.example.com", 8080, "HTTP", "");
    let s = sidecar(&join(&[
        &web,
        &v.replace("edition.cnn.com", "web.example.com"),
    ]));
    assert_eq!(
        vh_names(http(&s, 8080)),
        ["web.example.com:8080", "allow_any"]
    );
}

#[test]
fn compilation_is_deterministic_and_always_has_the_special_clusters() {
    let empty = sidecar("");
    assert!(empty.ports.is_empty());
    assert_eq!(
        empty.clusters.keys().collect::<Vec<_>>(),
        ["BlackHoleCluster", "PassthroughCluster"]
    );
    let docs = join(&[GATEWAY, CNN_SE, CNN_SUBSET, REGISTRY_ONLY]);
    assert_eq!(sidecar(&docs), sidecar(&docs));
    for (name, c) in &sidecar(&docs).clusters {
        assert_eq!(name, &c.name);
    }
}
