//! TLS and TCP servers: PASSTHROUGH SNI chains, TLS termination (ISTIO_MUTUAL, SIMPLE, MUTUAL)
//! with certificates from Secrets or files, and opaque TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use egress_compile::snapshot::{ChainAction, PemIdentity, PemSource, ServerTls};

const TLS_SE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
spec:
  hosts: [edition.cnn.com, api.example.com]
  ports:
  - {number: 443, name: tls, protocol: TLS}
  resolution: DNS
"#;

fn server_gateway(server: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress
spec:
  selector: {{istio: asm-egress-test}}
  servers:
{server}
"#
    )
}

const MUTUAL_TLS_SERVER: &str = "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [edition.cnn.com]\n    tls: {mode: ISTIO_MUTUAL}\n";

#[test]
fn tls_terminating_server_ignores_tls_blocks() {
    let tls_rules = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: [edition.cnn.com]
  gateways: [egress]
  tls:
  - match:
    - port: 443
      sniHosts: [edition.cnn.com]
    route:
    - destination: {host: edition.cnn.com, port: {number: 443}}
"#;
    let s = snap(&format!(
        "{TLS_SE}---{}---{tls_rules}",
        server_gateway(MUTUAL_TLS_SERVER)
    ));
    assert!(s.listeners.is_empty(), "{:#?}", s.listeners);
    assert!(
        s.warnings.iter().any(|w| w.contains("`tcp` rules")),
        "{:?}",
        s.warnings
    );

    let tcp_rules = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: [edition.cnn.com]
  gateways: [egress]
  tcp:
  - match:
    - port: 443
    route:
    - destination: {host: edition.cnn.com, port: {number: 443}}
"#;
    let s = snap(&format!(
        "{TLS_SE}---{}---{tcp_rules}",
        server_gateway(MUTUAL_TLS_SERVER)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].server_names, vec!["edition.cnn.com"]);
    assert_eq!(
        cs[0].tls,
        Some(ServerTls::IstioMutual {
            subject_alt_names: vec![]
        })
    );
    assert_eq!(
        tcp_targets(&cs[0]),
        vec![("outbound|443||edition.cnn.com".into(), 100)]
    );
    assert!(s.clusters.contains_key("outbound|443||edition.cnn.com"));
}

fn passthrough_vs(name: &str, sni: &str, dest: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
spec:
  hosts: ['{sni}']
  gateways: [egress]
  tls:
  - match:
    - port: 443
      sniHosts: ['{sni}']
    route:
    - destination: {{host: {dest}, port: {{number: 443}}}}
"#
    )
}

const PASSTHROUGH_SERVER: &str = "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: ['*']\n    tls: {mode: PASSTHROUGH}\n";

#[test]
fn duplicate_sni_on_a_port_is_skipped() {
    let a = passthrough_vs("a", "edition.cnn.com", "edition.cnn.com");
    let b = passthrough_vs("b", "edition.cnn.com", "api.example.com");
    let c = passthrough_vs("c", "api.example.com", "api.example.com");
    let s = snap(&format!(
        "{TLS_SE}---{}---{a}---{b}---{c}",
        server_gateway(PASSTHROUGH_SERVER)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    type Chain = (Vec<String>, Vec<(String, u32)>);
    let got: Vec<Chain> = cs
        .iter()
        .map(|c| (c.server_names.clone(), tcp_targets(c)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                vec!["edition.cnn.com".to_owned()],
                vec![("outbound|443||edition.cnn.com".to_owned(), 100)]
            ),
            (
                vec!["api.example.com".to_owned()],
                vec![("outbound|443||api.example.com".to_owned(), 100)]
            ),
        ]
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("duplicate SNI")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn passthrough_without_routes_has_no_listener() {
    let s = snap(&format!(
        "{TLS_SE}---{}",
        server_gateway(PASSTHROUGH_SERVER)
    ));
    assert!(s.listeners.is_empty());
    assert!(
        s.warnings.iter().any(|w| w.contains("0.0.0.0_8443")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn passthrough_weighted_destinations() {
    let v = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: ['*.cnn.com']
  gateways: [egress]
  tls:
  - match:
    - sniHosts: ['*.cnn.com']
    route:
    - destination: {host: edition.cnn.com, port: {number: 443}}
      weight: 80
    - destination: {host: api.example.com, port: {number: 443}}
      weight: 20
"#;
    let s = snap(&format!(
        "{TLS_SE}---{}---{v}",
        server_gateway(PASSTHROUGH_SERVER)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    assert_eq!(cs[0].server_names, vec!["*.cnn.com"]);
    assert_eq!(
        tcp_targets(&cs[0]),
        vec![
            ("outbound|443||edition.cnn.com".into(), 80),
            ("outbound|443||api.example.com".into(), 20)
        ]
    );
}

const HTTPS_SIMPLE: &str = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    tls: {mode: SIMPLE, credentialName: cnn-cert}\n";

const HTTPS_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: [edition.cnn.com]
  gateways: [egress]
  http:
  - route:
    - destination: {host: edition.cnn.com, port: {number: 443}}
"#;

fn secret(ns: &str, name: &str, body: &str) -> String {
    format!("\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n{body}")
}

#[test]
fn credential_name_is_read_from_the_gateway_namespace_only() {
    let tls_secret = "type: kubernetes.io/tls\ndata:\n  tls.crt: Q0VSVA==\n  tls.key: S0VZ\n";
    let elsewhere = secret("default", "cnn-cert", tls_secret);
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}---{elsewhere}",
        server_gateway(HTTPS_SIMPLE)
    ));
    assert!(s.listeners.is_empty(), "{:#?}", s.listeners);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("secret aks-istio-egress/cnn-cert") && w.contains("not found")),
        "{:?}",
        s.warnings
    );

    let here = secret(NS, "cnn-cert", tls_secret);
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}---{here}",
        server_gateway(HTTPS_SIMPLE)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    assert_eq!(cs.len(), 1);
    assert_eq!(
        cs[0].tls,
        Some(ServerTls::Certificates {
            identity: PemIdentity {
                cert_chain: "CERT".into(),
                private_key: "KEY".into()
            },
            client_ca: None,
            optional: false,
            subject_alt_names: vec![]
        })
    );
    let ChainAction::Http(rc) = &cs[0].action else {
        panic!("{:?}", cs[0].action)
    };
    assert_eq!(rc.name, "https.443.https.egress.aks-istio-egress");
    assert_eq!(vhost(rc, "edition.cnn.com:443").routes.len(), 1);
}

#[test]
fn mutual_tls_takes_the_ca_from_the_cacert_secret_and_string_data_works() {
    let server = HTTPS_SIMPLE.replace("mode: SIMPLE", "mode: MUTUAL");
    let cert = secret(NS, "cnn-cert", "stringData:\n  cert: CERT\n  key: KEY\n");
    let ca = secret(NS, "cnn-cert-cacert", "stringData:\n  cacert: ROOTS\n");
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}---{cert}---{ca}",
        server_gateway(&server)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    match &cs[0].tls {
        Some(ServerTls::Certificates {
            identity,
            client_ca,
            optional,
            ..
        }) => {
            assert_eq!(identity.cert_chain, "CERT");
            assert_eq!(client_ca.as_deref(), Some("ROOTS"));
            assert!(!optional);
        }
        other => panic!("{other:?}"),
    }
    // Without any CA the MUTUAL server has no chain.
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}---{cert}",
        server_gateway(&server)
    ));
    assert!(s.listeners.is_empty());
}

#[test]
fn file_certificates_are_passed_as_paths() {
    let server = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n    tls:\n      mode: SIMPLE\n      serverCertificate: /etc/certs/tls.crt\n      privateKey: /etc/certs/tls.key\n";
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}",
        server_gateway(server)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    assert!(
        cs[0].server_names.is_empty(),
        "server host * matches any SNI"
    );
    let Some(ServerTls::Certificates { identity, .. }) = &cs[0].tls else {
        panic!("{:?}", cs[0].tls)
    };
    assert_eq!(identity.cert_chain, "file:/etc/certs/tls.crt");
    assert_eq!(
        PemSource::of(&identity.private_key),
        PemSource::File("/etc/certs/tls.key")
    );
}

#[test]
fn two_https_servers_on_one_port_get_their_own_tables() {
    let servers = "  - port: {number: 443, name: https-a, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    tls: {mode: ISTIO_MUTUAL}\n  - port: {number: 443, name: https-b, protocol: HTTPS}\n    hosts: [api.example.com]\n    tls: {mode: ISTIO_MUTUAL}\n";
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}",
        server_gateway(servers)
    ));
    let cs = chains(listener(&s, "0.0.0.0_8443"));
    let names: Vec<String> = cs
        .iter()
        .map(|c| match &c.action {
            ChainAction::Http(rc) => rc.name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "https.443.https-a.egress.aks-istio-egress",
            "https.443.https-b.egress.aks-istio-egress"
        ]
    );
    // The second server's hosts match no VirtualService: 404 for everything.
    let ChainAction::Http(rc) = &cs[1].action else {
        unreachable!()
    };
    assert_eq!(rc.virtual_hosts[0].name, "blackhole:443");
}

#[test]
fn duplicate_tls_hosts_across_servers_reject_the_later_server() {
    let servers = "  - port: {number: 443, name: https-a, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    tls: {mode: ISTIO_MUTUAL}\n  - port: {number: 443, name: https-b, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    tls: {mode: ISTIO_MUTUAL}\n";
    let s = snap(&format!(
        "{TLS_SE}---{}---{HTTPS_VS}",
        server_gateway(servers)
    ));
    assert_eq!(chains(listener(&s, "0.0.0.0_8443")).len(), 1);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("duplicate host names"))
    );
}

#[test]
fn opaque_tcp_server() {
    let server = "  - port: {number: 5432, name: tcp-db, protocol: TCP}\n    hosts: ['*']\n";
    let se = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
spec:
  hosts: [db.example.com]
  addresses: [10.9.9.9]
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  resolution: STATIC
  endpoints:
  - address: 10.9.9.9
"#;
    let v = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: db
spec:
  hosts: [db.example.com]
  gateways: [egress]
  tcp:
  - match:
    - port: 5432
    route:
    - destination: {host: db.example.com}
"#;
    let s = snap(&format!("{se}---{}---{v}", server_gateway(server)));
    // 5432 is not a port of the gateway Service: the number is bound as-is.
    let cs = chains(listener(&s, "0.0.0.0_5432"));
    assert_eq!(cs.len(), 1);
    assert!(cs[0].server_names.is_empty());
    assert_eq!(cs[0].tls, None);
    assert_eq!(
        tcp_targets(&cs[0]),
        vec![("outbound|5432||db.example.com".into(), 100)]
    );
}
