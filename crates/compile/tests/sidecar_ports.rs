//! Sidecar ports by protocol: Kubernetes Services' short names and detected ports, TCP ports
//! with one route, ports shared by several protocols, resolution NONE passing through, and
//! port-less destinations taking the listener port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sidecar_common;

use common::CNN_SE;
use egress_compile::snapshot::{Discovery, TcpRoute};
use sidecar_common::*;

#[test]
fn kubernetes_services_answer_to_their_short_names() {
    for (ns, domains) in [
        (
            common::NS,
            vec![
                GW_HOST,
                "asm-egress-test",
                "asm-egress-test.aks-istio-egress.svc",
                "asm-egress-test.aks-istio-egress",
                "10.0.128.17",
            ],
        ),
        (
            "apps",
            vec![
                GW_HOST,
                "asm-egress-test.aks-istio-egress",
                "asm-egress-test.aks-istio-egress.svc",
                "10.0.128.17",
            ],
        ),
    ] {
        let s = compile_for(&workload(ns, "web"), GATEWAY);
        let h = vh(http(&s, 80), &format!("{GW_HOST}:80"));
        assert_eq!(h.domains, domains, "from {ns}");
        // The status port has no protocol: detected, so served as HTTP.
        assert_eq!(
            vh_names(http(&s, 15021)),
            [&format!("{GW_HOST}:15021") as &str, "allow_any"]
        );
    }
}

#[test]
fn tcp_ports_carry_one_route() {
    let db = se("db", common::NS, "db.example.com", 5432, "TCP", "");
    let db2 = se("db2", common::NS, "db2.example.com", 5432, "TCP", "");
    let tcp_vs = vs(
        "db",
        "[db.example.com]",
        "  tcp:\n  - match:\n    - port: 5432\n    route:\n    - destination:\n        host: db2.example.com\n",
    );
    let other_port_vs = tcp_vs.replace("port: 5432", "port: 3306");
    for (docs, want, warned) in [
        (vec![&db], ("outbound|5432||db.example.com", None), false),
        (
            vec![&db, &db2],
            ("outbound|5432||db.example.com", None),
            true,
        ),
        (
            vec![&db, &db2, &tcp_vs],
            ("outbound|5432||db2.example.com", Some("db")),
            true,
        ),
        (
            vec![&db, &other_port_vs],
            ("outbound|5432||db.example.com", None),
            false,
        ),
    ] {
        let docs: Vec<&str> = docs.into_iter().map(String::as_str).collect();
        let s = sidecar(&join(&docs));
        let TcpRoute {
            clusters,
            route_name,
        } = tcp(&s, 5432);
        assert_eq!(
            (clusters[0].cluster.as_str(), route_name.as_deref()),
            want,
            "{docs:?}"
        );
        assert_eq!(
            s.warnings.iter().any(|w| w.contains("shared by")),
            warned,
            "{:?}",
            s.warnings
        );
    }
}

#[test]
fn a_port_shared_by_protocols_is_served_by_the_most_specific() {
    let web = se("web", common::NS, "web.example.com", 8443, "HTTP", "");
    let secure = se("secure", common::NS, "secure.example.com", 8443, "TLS", "");
    let raw = se("raw", common::NS, "raw.example.com", 8443, "TCP", "");
    let s = sidecar(&join(&[&web, &secure]));
    assert_eq!(
        vh_names(http(&s, 8443)),
        ["web.example.com:8443", "allow_any"]
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("8443") && w.contains("secure.example.com")),
        "{:?}",
        s.warnings
    );
    let s = sidecar(&join(&[&raw, &secure]));
    assert_eq!(
        sni(tls(&s, 8443)),
        [(
            vec!["secure.example.com"],
            vec!["outbound|8443||secure.example.com"],
            None
        )]
    );
}

#[test]
fn resolution_none_passes_through_to_the_original_destination() {
    let wild = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts: ["*.wikipedia.org"]
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: NONE
"#;
    let s = sidecar(wild);
    assert_eq!(
        sni(tls(&s, 443)),
        [(
            vec!["*.wikipedia.org"],
            vec!["outbound|443||*.wikipedia.org"],
            None
        )]
    );
    assert_eq!(
        s.clusters["outbound|443||*.wikipedia.org"].discovery,
        Discovery::OriginalDst
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_destination_without_port_takes_the_listener_port() {
    // At a gateway a port-less destination takes the service's only port (8080); a sidecar
    // looks the service up among those on the listener's port, so it keeps port 80.
    let single = se("single", common::NS, "single.example.com", 8080, "HTTP", "");
    let v = vs(
        "cnn",
        "[edition.cnn.com]",
        "  http:\n  - route:\n    - destination:\n        host: single.example.com\n",
    );
    let s = sidecar(&join(&[CNN_SE, &single, &v]));
    let h = vh(http(&s, 80), "edition.cnn.com:80");
    assert_eq!(
        to(&h.routes[0]),
        [("outbound|80||single.example.com".to_owned(), 100)]
    );
    assert!(!s.clusters.contains_key("outbound|80||single.example.com"));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("outbound|80||single.example.com") && w.contains("no port 80")),
        "{:?}",
        s.warnings
    );
}
