//! SNI/Host consistency on HTTPS servers the gateway terminates (domain-fronting defence): a
//! Host that differs from the client's SNI is answered 421 with `sni_host_mismatch`; a
//! matching Host is routed; a sidecar's `outbound_.` SNI on an ISTIO_MUTUAL server is not
//! compared with the Host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_snapshot::snapshot::{
    AccessLog, ChainAction, FilterChain, Forward, HeaderOps, PemIdentity, Route, RouteAction,
    RouteConfig, RouteMatch, ServerTls, VirtualHost,
};
use egress_testkit::{CertFactory, HttpUpstream};
use http_body_util::{BodyExt, Empty};
use l4_support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const A: &str = "a.example.com";
const B: &str = "b.example.com";
const CNN: &str = "edition.cnn.com";

fn routes(cluster: &str, domains: &[&str]) -> RouteConfig {
    RouteConfig {
        name: "https.443.https.gw.istio-system".into(),
        virtual_hosts: vec![VirtualHost {
            name: "hosts:443".into(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            routes: vec![Route {
                name: "default.route.0".into(),
                matcher: RouteMatch::default(),
                action: RouteAction::Forward(Forward {
                    clusters: vec![weighted(cluster)],
                    timeout: None,
                    retry: None,
                    rewrite_uri: None,
                    rewrite_authority: None,
                }),
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
            }],
            require_tls: false,
        }],
    }
}

/// A gateway with one HTTPS chain (`tls`, any SNI) routing `domains` to `upstream`.
async fn gateway(
    tls: ServerTls,
    domains: &[&str],
    upstream: &HttpUpstream,
    identity: Option<Arc<IdentityHandle>>,
) -> (Harness, SocketAddr) {
    let c = static_cluster("outbound|80||hosts", &[upstream.local_addr()]);
    let chain = FilterChain {
        server_names: vec![],
        server_port: 443,
        tls: Some(tls),
        action: ChainAction::Http(routes(&c.name, domains)),
    };
    let mut snap = snapshot(
        1,
        vec![chains_listener("0.0.0.0_8443", vec![chain])],
        vec![c],
    );
    snap.access_log = AccessLog {
        format: Some(
            "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %REQUESTED_SERVER_NAME% %REQ(:AUTHORITY)%"
                .into(),
        ),
        ..AccessLog::default()
    };
    let h = Harness::start_with_identity(snap, options(), identity).await;
    let addr = h.addr("0.0.0.0_8443");
    (h, addr)
}

fn simple(certs: &CertFactory, names: &[&str]) -> ServerTls {
    let cert = certs.server_cert(names).unwrap();
    ServerTls::Certificates {
        identity: PemIdentity {
            cert_chain: cert.cert_chain_pem.clone(),
            private_key: cert.key_pem.clone(),
        },
        client_ca: None,
        optional: false,
        subject_alt_names: vec![],
    }
}

/// `GET /` with `Host: host` over TLS to `addr` sending `sni`: status and body.
async fn get_over_tls(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
    host: &str,
) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = TlsConnector::from(client).connect(name, tcp).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/")
        .header("host", host)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn simple_server_refuses_a_host_other_than_the_sni() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let (h, addr) = gateway(simple(&certs, &[A, B]), &[A, B], &upstream, None).await;
    let client = tls_client(certs.ca_pem(), &["http/1.1"]);

    let (status, body) = get_over_tls(addr, Arc::clone(&client), A, B).await;
    assert_eq!(status, 421, "{body}");
    assert_eq!(
        body,
        "misdirected request: Host \"b.example.com\" does not match TLS server name \"a.example.com\""
    );
    assert_eq!(
        h.lines(1).await[0],
        "421 sni_host_mismatch a.example.com b.example.com"
    );

    let (status, body) = get_over_tls(addr, client, A, "A.example.com:443").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.lines(2).await[1],
        "200 via_upstream a.example.com A.example.com:443"
    );
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen.len(), 1, "only the matching request was forwarded");
}

#[tokio::test]
async fn istio_mutual_server_accepts_the_mesh_outbound_sni() {
    let mesh = MeshCa::generate("cluster.local").unwrap();
    let day = Duration::from_secs(86400);
    let gw_id = SpiffeId::new(
        "cluster.local",
        "istio-system",
        "istio-egressgateway-service-account",
    )
    .unwrap();
    let sleep_id = SpiffeId::new("cluster.local", "default", "sleep").unwrap();
    let gateway_identity =
        Arc::new(IdentityHandle::new(mesh.issue(&gw_id, day).unwrap(), mesh.root_pem()).unwrap());
    let sidecar =
        IdentityHandle::new(mesh.issue(&sleep_id, day).unwrap(), mesh.root_pem()).unwrap();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let server = ServerTls::IstioMutual {
        subject_alt_names: vec![],
    };
    let (h, addr) = gateway(server, &[CNN], &upstream, Some(gateway_identity)).await;
    let client = sidecar
        .client_config(&[gw_id.to_string()], vec![b"http/1.1".to_vec()])
        .unwrap();

    let mesh_sni = "outbound_.80_.cnn_.asm-egress-test.aks-istio-egress.svc.cluster.local";
    let (status, body) = get_over_tls(addr, Arc::clone(&client), mesh_sni, CNN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.lines(1).await[0],
        format!("200 via_upstream {mesh_sni} {CNN}")
    );

    // A DestinationRule `sni: edition.cnn.com` with the same Host is consistent too.
    let (status, body) = get_over_tls(addr, Arc::clone(&client), CNN, CNN).await;
    assert_eq!(status, 200, "{body}");

    // A mesh client fronting another host through a named SNI is not.
    let (status, _) = get_over_tls(addr, client, "other.example.com", CNN).await;
    assert_eq!(status, 421);
}
