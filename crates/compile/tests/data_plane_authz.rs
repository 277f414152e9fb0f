//! AuthorizationPolicy enforcement at the egress gateway, end to end: real manifests compiled
//! for the seed's gateway, a started [`Proxy`] with a mesh identity, mesh clients with their
//! own SPIFFE certificates from the same [`MeshCa`], loopback upstreams, and the access log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
mod common;
mod data_plane;

use common::resources;

use data_plane::{
    CNN, Gw, NS, WAIT, cnn_to_loopback, compiled, http_upstream, loopback, seed_gateway,
};
use egress_snapshot::snapshot::Snapshot;
use egress_testkit::{CertFactory, HttpsUpstream};
use http_body_util::{BodyExt, Empty};

const CURL: &str = "cluster.local/ns/aks-istio-egress/sa/curl";

// ---------------------------------------------------------------- manifests

/// The seed's gateway with both Service ports mapped to ephemeral listener ports.
fn snap(yaml: &str) -> Snapshot {
    let s = compiled(&seed_gateway(0, 0), resources(yaml));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    s
}

fn gateway(server: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\n\
         spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n{server}---\n"
    )
}

fn service_entry(protocol: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: cnn}}\n\
         spec:\n  hosts: [{CNN}]\n  ports:\n  - {{number: {port}, name: p, protocol: {protocol}}}\n  \
         resolution: DNS\n---\n"
    )
}

/// An ISTIO_MUTUAL HTTPS server for edition.cnn.com routed to the plain HTTP upstream.
fn mtls_https_to(port: u16) -> String {
    format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: cnn}}\n\
         spec:\n  hosts: [{CNN}]\n  gateways: [egress]\n  http:\n  - match: [{{gateways: [egress], port: 443}}]\n    \
         route:\n    - destination: {{host: {CNN}, port: {{number: {port}}}}}\n---\n",
        gateway(
            "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    \
             tls: {mode: ISTIO_MUTUAL}\n"
        ),
        service_entry("HTTP", port),
    )
}

fn policy(name: &str, annotations: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n{annotations}\
         spec:\n  selector:\n    matchLabels: {{istio: asm-egress-test}}\n{spec}---\n"
    )
}

/// ALLOW the curl service account to edition.cnn.com.
fn allow_curl(annotations: &str) -> String {
    policy(
        "allow-curl",
        annotations,
        &format!(
            "  action: ALLOW\n  rules:\n  - from:\n    - source: {{principals: ['{CURL}']}}\n    \
             to:\n    - operation: {{hosts: [{CNN}]}}\n"
        ),
    )
}

// ---------------------------------------------------------------- a running gateway

struct Mesh {
    ca: MeshCa,
}

impl Mesh {
    fn new() -> Mesh {
        Mesh {
            ca: MeshCa::generate("cluster.local").unwrap(),
        }
    }

    fn handle(&self, ns: &str, sa: &str) -> Arc<IdentityHandle> {
        let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
        let cert = self.ca.issue(&id, Duration::from_secs(3600)).unwrap();
        Arc::new(IdentityHandle::new(cert, self.ca.root_pem()).unwrap())
    }

    fn client(&self, ns: &str, sa: &str) -> Arc<rustls::ClientConfig> {
        self.handle(ns, sa)
            .client_config(&[], vec![b"http/1.1".to_vec()])
            .unwrap()
    }
}

impl Gw {
    async fn start_cnn(s: Snapshot, id: Option<Arc<IdentityHandle>>) -> Gw {
        Gw::start(s, cnn_to_loopback(), id).await
    }
}

/// One HTTP/1.1 GET of `path` with `Host: edition.cnn.com` over TLS (SNI edition.cnn.com):
/// status and body.
async fn get_over_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(CNN).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", CNN)
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn allow_principal_admits_curl_and_refuses_other_service_accounts() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let mesh = Mesh::new();
    let yaml = format!("{}{}", mtls_https_to(port), allow_curl(""));
    let gw = Gw::start_cnn(snap(&yaml), Some(mesh.handle(NS, "asm-egress-test"))).await;

    let (status, _) = get_over_tls(gw.addr(), mesh.client(NS, "curl"), "/politics").await;
    assert_eq!(status, 200);
    let allowed = gw.line(1).await;
    assert!(allowed.contains(" 200 - via_upstream - "), "{allowed}");

    let (status, body) = get_over_tls(gw.addr(), mesh.client(NS, "sleep"), "/politics").await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    let denied = gw.line(2).await;
    assert!(
        denied.contains(
            "\"GET /politics HTTP/1.1\" 403 - rbac_access_denied_matched_policy[none] - "
        ),
        "{denied}"
    );
    assert_eq!(
        upstream.requests().len(),
        1,
        "the denied request never left"
    );
}

#[tokio::test]
async fn deny_overrides_allow_and_names_the_rule() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let mesh = Mesh::new();
    let deny = policy(
        "deny-admin",
        "",
        &format!(
            "  action: DENY\n  rules:\n  - to:\n    - operation: {{paths: [/never]}}\n  \
             - from:\n    - source: {{principals: ['{CURL}']}}\n    to:\n    - operation: {{paths: ['/admin/{{**}}']}}\n"
        ),
    );
    let yaml = format!("{}{}{deny}", mtls_https_to(port), allow_curl(""));
    let gw = Gw::start_cnn(snap(&yaml), Some(mesh.handle(NS, "asm-egress-test"))).await;
    let curl = mesh.client(NS, "curl");

    let (status, body) = get_over_tls(gw.addr(), curl.clone(), "/admin/users").await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    let line = gw.line(1).await;
    assert!(
        line.contains(&format!(
            " 403 - rbac_access_denied_matched_policy[ns[{NS}]-policy[deny-admin]-rule[1]] "
        )),
        "{line}"
    );
    let (status, _) = get_over_tls(gw.addr(), curl, "/politics").await;
    assert_eq!(status, 200, "the ALLOW policy still admits other paths");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn dry_run_allows_but_logs_the_would_be_denial() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let mesh = Mesh::new();
    let dry = "  annotations: {istio.io/dry-run: \"true\"}\n";
    let yaml = format!("{}{}", mtls_https_to(port), allow_curl(dry));
    let gw = Gw::start_cnn(snap(&yaml), Some(mesh.handle(NS, "asm-egress-test"))).await;

    let (status, _) = get_over_tls(gw.addr(), mesh.client(NS, "sleep"), "/politics").await;
    assert_eq!(status, 200, "dry-run policies are not enforced");
    let line = gw.line(1).await;
    assert!(
        line.contains(" 200 - via_upstream rbac_dry_run_denied_matched_policy[none] "),
        "{line}"
    );
    let (status, _) = get_over_tls(gw.addr(), mesh.client(NS, "curl"), "/politics").await;
    assert_eq!(status, 200);
    let line = gw.line(2).await;
    assert!(line.contains(" 200 - via_upstream - "), "{line}");
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn connection_sni_on_a_passthrough_server() {
    const OTHER: &str = "other.example.org";
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(SocketAddr::new(loopback(), 0), &certs, &[CNN, OTHER])
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: tls}}\n\
         spec:\n  hosts: [{CNN}, {OTHER}]\n  gateways: [egress]\n  tls:\n  - match: [{{port: 443, sniHosts: [{CNN}, {OTHER}]}}]\n    \
         route:\n    - destination: {{host: {CNN}, port: {{number: {port}}}}}\n---\n{}",
        gateway(
            "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: ['*']\n    tls: {mode: PASSTHROUGH}\n"
        ),
        service_entry("TLS", port),
        policy(
            "sni",
            "",
            &format!("  rules:\n  - when:\n    - key: connection.sni\n      values: [{CNN}]\n"),
        ),
    );
    let gw = Gw::start_cnn(snap(&yaml), None).await;

    let trusting = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in egress_identity::parse_certs(certs.ca_pem(), "test CA").unwrap() {
            roots.add(der).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    let (status, body) = get_over_tls(gw.addr(), trusting.clone(), "/").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let line = gw.line(1).await;
    assert!(
        line.starts_with('[') && line.contains("\"- - -\" 0 - - - "),
        "{line}"
    );

    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let other = rustls::pki_types::ServerName::try_from(OTHER).unwrap();
    let refused = tokio_rustls::TlsConnector::from(trusting)
        .connect(other, tcp)
        .await;
    assert!(refused.is_err(), "SNI {OTHER} must be closed");
    let line = gw.line(2).await;
    assert!(
        line.contains("\"- - -\" 0 - - rbac_access_denied_matched_policy[none] "),
        "{line}"
    );
    assert!(line.contains(&format!(" {OTHER} ")), "{line}");
    assert_eq!(upstream.requests().len(), 1);
}

/// A TLS server terminating ISTIO_MUTUAL in front of TCP: principals match the mesh peer;
/// an ALLOW rule using an HTTP-only attribute (`hosts`) is dropped there, so it admits no one.
#[tokio::test]
async fn principals_on_a_tls_terminated_tcp_server_and_http_only_allow_rules_fail_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let echo = egress_testkit::TcpRecorder::start(SocketAddr::new(loopback(), 0))
        .await
        .unwrap();
    let port = echo.local_addr().port();
    let mesh = Mesh::new();
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: tcp}}\n\
         spec:\n  hosts: [{CNN}]\n  gateways: [egress]\n  tcp:\n  - match: [{{port: 443}}]\n    \
         route:\n    - destination: {{host: {CNN}, port: {{number: {port}}}}}\n---\n{}",
        gateway(
            "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [edition.cnn.com]\n    \
             tls: {mode: ISTIO_MUTUAL}\n"
        ),
        service_entry("TCP", port),
        policy(
            "allow-curl",
            "",
            &format!(
                "  rules:\n  - from:\n    - source: {{principals: ['{CURL}']}}\n  \
                 - to:\n    - operation: {{hosts: [{CNN}]}}\n"
            ),
        ),
    );
    let gw = Gw::start_cnn(snap(&yaml), Some(mesh.handle(NS, "asm-egress-test"))).await;

    let addr = gw.addr();
    let connect = |config: Arc<rustls::ClientConfig>| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(CNN).unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap()
    };
    let mut curl = connect(mesh.client(NS, "curl")).await;
    curl.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(WAIT, curl.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
    drop(curl);
    let line = gw.line(1).await;
    assert!(line.contains("\"- - -\" 0 - - - "), "{line}");

    let mut sleep = connect(mesh.client(NS, "sleep")).await;
    let _ = sleep.write_all(b"ping").await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, sleep.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(
        read.is_err() || rest.is_empty(),
        "closed without data: {rest:?}"
    );
    let line = gw.line(2).await;
    assert!(
        line.contains("\"- - -\" 0 - - rbac_access_denied_matched_policy[none] "),
        "{line}"
    );
    assert_eq!(
        echo.connections().len(),
        1,
        "the denied connection never left"
    );
}
