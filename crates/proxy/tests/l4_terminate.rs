//! Chains that terminate downstream TLS (Gateway SIMPLE and ISTIO_MUTUAL servers) and plain
//! HTTP listeners, wired through the listener to the TCP proxy and to HTTP routing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::sync::Arc;
use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_snapshot::snapshot::{
    AccessLog, ChainAction, FilterChain, Forward, HeaderOps, Listener, ListenerKind, PemIdentity,
    Route, RouteAction, RouteConfig, RouteMatch, ServerTls, UpstreamTls, UpstreamTlsMode,
    VirtualHost,
};
use egress_testkit::{CertFactory, Curl, HttpUpstream, HttpsUpstream, TcpRecorder};
use l4_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn pem(cert: &egress_identity::WorkloadCert) -> PemIdentity {
    PemIdentity {
        cert_chain: cert.cert_chain_pem.clone(),
        private_key: cert.key_pem.clone(),
    }
}

fn terminating(names: &[&str], tls: ServerTls, action: ChainAction) -> FilterChain {
    FilterChain {
        server_names: names.iter().map(|n| n.to_string()).collect(),
        server_port: 443,
        tls: Some(tls),
        action,
    }
}

fn tcp_to(cluster: &str) -> ChainAction {
    ChainAction::TcpProxy {
        clusters: vec![weighted(cluster)],
        route_name: Some("default.tcp-route".into()),
    }
}

fn routes(name: &str, cluster: &str) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "edition.cnn.com:80".into(),
            domains: vec!["edition.cnn.com".into()],
            routes: vec![Route {
                name: "default.cnn.0".into(),
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

/// Connects with TLS to `addr` sending `sni`, writes `data`, reads the same length back.
async fn tls_echo(
    addr: std::net::SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
    data: &[u8],
) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config).connect(name, tcp).await.unwrap();
    tls.write_all(data).await.unwrap();
    let mut buf = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, tls.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

#[tokio::test]
async fn simple_termination_proxies_decrypted_bytes() {
    let certs = CertFactory::new().unwrap();
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|9000||db.example", &[recorder.local_addr()]);
    let server = ServerTls::Certificates {
        identity: pem(&certs.server_cert(&["gw.example"]).unwrap()),
        client_ca: None,
        optional: false,
        subject_alt_names: vec![],
    };
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![terminating(&["gw.example"], server, tcp_to(&c.name))],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;

    let reply = tls_echo(
        h.addr("0.0.0.0_8443"),
        "gw.example",
        tls_client(certs.ca_pem(), &[]),
        b"plain ping",
    )
    .await;
    assert_eq!(reply, b"plain ping");
    assert_eq!(
        recorder.bytes_received(),
        10,
        "the upstream got the decrypted bytes"
    );
    let line = &h.lines(1).await[0];
    assert!(line.contains(" 10 10 "), "{line}");
    assert!(line.ends_with(" gw.example default.tcp-route"), "{line}");
}

#[tokio::test]
async fn istio_mutual_termination_records_the_peer_identity() {
    let mesh = MeshCa::generate("cluster.local").unwrap();
    let day = Duration::from_secs(86400);
    let gw_id = SpiffeId::new(
        "cluster.local",
        "istio-system",
        "istio-egressgateway-service-account",
    )
    .unwrap();
    let sleep_id = SpiffeId::new("cluster.local", "default", "sleep").unwrap();
    let gateway =
        Arc::new(IdentityHandle::new(mesh.issue(&gw_id, day).unwrap(), mesh.root_pem()).unwrap());
    let sidecar =
        IdentityHandle::new(mesh.issue(&sleep_id, day).unwrap(), mesh.root_pem()).unwrap();

    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|443||edition.cnn.com", &[recorder.local_addr()]);
    let server = ServerTls::IstioMutual {
        subject_alt_names: vec![],
    };
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![terminating(&["edition.cnn.com"], server, tcp_to(&c.name))],
    );
    let mut snap = snapshot(1, vec![listener], vec![c]);
    snap.access_log = AccessLog {
        path: None,
        encoding: Default::default(),
        format: Some("%DOWNSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %UPSTREAM_CLUSTER%".into()),
        ..AccessLog::default()
    };
    let h = Harness::start_with_identity(snap, options(), Some(gateway)).await;
    let addr = h.addr("0.0.0.0_8443");

    let client = sidecar
        .client_config(&[gw_id.to_string()], vec![b"istio".to_vec()])
        .unwrap();
    assert_eq!(
        tls_echo(addr, "edition.cnn.com", client, b"mesh").await,
        b"mesh"
    );
    let line = &h.lines(1).await[0];
    assert_eq!(
        line,
        &format!("{sleep_id} edition.cnn.com outbound|443||edition.cnn.com")
    );

    // Without a mesh client certificate the handshake fails and nothing is proxied.
    let stranger = tls_client(mesh.root_pem(), &[]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("edition.cnn.com").unwrap();
    let outcome = async {
        let mut tls = TlsConnector::from(stranger).connect(name, tcp).await?;
        // TLS 1.3: the client learns of the rejection on its first read.
        tls.write_all(b"x").await?;
        let mut buf = [0u8; 1];
        tls.read_exact(&mut buf).await
    };
    assert!(tokio::time::timeout(WAIT, outcome).await.unwrap().is_err());
    assert_eq!(recorder.connections().len(), 1);
}

#[tokio::test]
async fn terminated_tcp_chain_originates_tls_when_the_cluster_says_so() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let mut c = static_cluster("outbound|443||edition.cnn.com", &[upstream.local_addr()]);
    c.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: Some(certs.ca_pem().to_owned()),
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec![],
    });
    let server = ServerTls::Certificates {
        identity: pem(&certs.server_cert(&["edition.cnn.com"]).unwrap()),
        client_ca: None,
        optional: false,
        subject_alt_names: vec![],
    };
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![terminating(&["edition.cnn.com"], server, tcp_to(&c.name))],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;

    let tcp = TcpStream::connect(h.addr("0.0.0.0_8443")).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("edition.cnn.com").unwrap();
    let mut tls = TlsConnector::from(tls_client(certs.ca_pem(), &[]))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /politics HTTP/1.1\r\nHost: edition.cnn.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    let requests = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        requests[0].sni.as_deref(),
        Some("edition.cnn.com"),
        "SNI from the downstream SNI"
    );
}

#[tokio::test]
async fn http_listener_and_https_chain_hand_connections_to_the_router() {
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return;
    }
    let certs = CertFactory::new().unwrap();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|80||edition.cnn.com", &[upstream.local_addr()]);
    let plain = Listener {
        name: "0.0.0.0_8080".into(),
        bind: Some(loopback()),
        port: 0,
        kind: ListenerKind::Http(routes("http.8080", &c.name)),
    };
    let server = ServerTls::Certificates {
        identity: pem(&certs.server_cert(&["edition.cnn.com"]).unwrap()),
        client_ca: None,
        optional: false,
        subject_alt_names: vec![],
    };
    let https = chains_listener(
        "0.0.0.0_8443",
        vec![terminating(
            &["edition.cnn.com"],
            server,
            ChainAction::Http(routes("https.443.https.gw.istio-system", &c.name)),
        )],
    );
    let h = Harness::start(snapshot(1, vec![plain, https], vec![c]), options()).await;
    let dir = std::env::temp_dir().join(format!("egress-l4-terminate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certs.write_ca_file(&dir).unwrap();

    let port = h.addr("0.0.0.0_8080").port();
    let out = Curl::new(format!("http://edition.cnn.com:{port}/politics"))
        .resolve("edition.cnn.com", port, loopback())
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");

    let port = h.addr("0.0.0.0_8443").port();
    let out = Curl::new(format!("https://edition.cnn.com:{port}/politics"))
        .resolve("edition.cnn.com", port, loopback())
        .cacert(&ca)
        .http2()
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let requests = upstream.wait_for_requests(2, WAIT).await.unwrap();
    assert!(
        requests.iter().all(|r| r.path == "/politics"),
        "{requests:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
