//! The upstream connector against real loopback servers: TLS origination (SIMPLE with auto
//! SNI/SAN, explicit SANs, wrong CA, insecureSkipVerify, MUTUAL, ISTIO_MUTUAL), ALPN, DNS
//! discovery (STRICT_DNS vs LOGICAL_DNS), outlier ejection, and the flags errors map to.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_proxy::accesslog::{AccessLogger, ResponseFlag};
use egress_proxy::connect::{ConnectError, Connector};
use egress_proxy::drain::Drain;
use egress_proxy::{Ctx, ProxyOptions};
use egress_snapshot::snapshot::{
    Cluster, Discovery, OutlierDetection, PemIdentity, Snapshot, UpstreamTls, UpstreamTlsMode,
};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpsUpstream, TcpRecorder};
use l4_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

fn ctx(options: ProxyOptions, identity: Option<Arc<IdentityHandle>>) -> Ctx {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let conns = Arc::new(egress_proxy::limits::Connections::new(
        &options.limits,
        Arc::default(),
    ));
    Ctx {
        snapshots: rx,
        connector: Connector::new(&options).unwrap(),
        options,
        identity,
        access_log: AccessLogger::disabled(),
        drain: Drain::new(),
        http: Arc::default(),
        conns,
        active: Default::default(),
    }
}

fn simple(ca: Option<&str>) -> UpstreamTls {
    UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: ca.map(str::to_owned),
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec![],
    }
}

fn tls_cluster(addr: SocketAddr, tls: UpstreamTls) -> Cluster {
    let mut c = static_cluster("outbound|443||edition.cnn.com", &[addr]);
    c.tls = Some(tls);
    c
}

/// Sends a GET over `io` and returns the status line.
async fn get(io: &mut egress_proxy::connect::BoxIo, host: &str) -> String {
    let request = format!("GET /politics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    io.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, io.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn tls_reason(err: &ConnectError) -> String {
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    assert_eq!(err.response_flag(), ResponseFlag::UpstreamConnectionFailure);
    err.transport_failure_reason().unwrap()
}

#[tokio::test]
async fn simple_origination_takes_sni_and_the_checked_name_from_the_authority() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let ctx = ctx(options(), None);
    let mut tls = simple(Some(certs.ca_pem()));
    tls.alpn = vec!["http/1.1".into()];
    let c = tls_cluster(upstream.local_addr(), tls);

    let mut up = ctx
        .connector
        .connect(&ctx, &c, Some("Edition.cnn.com:443"))
        .await
        .unwrap();
    assert!(up.tls);
    assert_eq!(up.peer, upstream.local_addr());
    assert_eq!(up.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(get(&mut up.io, "edition.cnn.com").await, "HTTP/1.1 200 OK");
    let requests = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(requests[0].sni.as_deref(), Some("edition.cnn.com"));

    // The caller may ask for other ALPN protocols (h2 for an HTTP/2 client).
    let up = ctx
        .connector
        .connect_with_alpn(&ctx, &c, Some("edition.cnn.com"), &["h2"])
        .await
        .unwrap();
    assert_eq!(up.alpn.as_deref(), Some(&b"h2"[..]));

    // Without an authority the cluster host is the SNI (also edition.cnn.com here).
    assert!(ctx.connector.connect(&ctx, &c, None).await.is_ok());

    // auto_san: a Host the certificate does not cover fails verification.
    let err = ctx
        .connector
        .connect(&ctx, &c, Some("other.example.com"))
        .await
        .unwrap_err();
    assert!(
        tls_reason(&err).contains("CERTIFICATE_VERIFY_FAILED"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_root_is_uf_with_certificate_verify_failed_unless_verification_is_skipped() {
    let certs = CertFactory::new().unwrap();
    let other = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let ctx = ctx(options(), None);

    let c = tls_cluster(upstream.local_addr(), simple(Some(other.ca_pem())));
    let err = ctx
        .connector
        .connect(&ctx, &c, Some("edition.cnn.com"))
        .await
        .unwrap_err();
    assert_eq!(
        tls_reason(&err),
        "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
    );
    assert_eq!(err.upstream_host(), Some(upstream.local_addr()));

    // System roots plus UpstreamOptions.extra_roots_pem when the DR names no CA.
    let mut opts = options();
    opts.upstream.extra_roots_pem = vec![certs.ca_pem().to_owned()];
    let with_extra = self::ctx(opts, None);
    let c = tls_cluster(upstream.local_addr(), simple(None));
    assert!(
        with_extra
            .connector
            .connect(&with_extra, &c, Some("edition.cnn.com"))
            .await
            .is_ok()
    );

    let mut skip = simple(Some(other.ca_pem()));
    skip.insecure_skip_verify = true;
    let c = tls_cluster(upstream.local_addr(), skip);
    assert!(
        ctx.connector
            .connect(&ctx, &c, Some("anything.example"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn subject_alt_names_are_checked_instead_of_the_sni() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let ctx = ctx(options(), None);
    let mut tls = simple(Some(certs.ca_pem()));
    tls.sni = Some("sni.example".into());
    tls.subject_alt_names = vec!["edition.cnn.com".into()];
    let c = tls_cluster(upstream.local_addr(), tls.clone());
    let mut up = ctx
        .connector
        .connect(&ctx, &c, Some("ignored.example"))
        .await
        .unwrap();
    assert_eq!(get(&mut up.io, "edition.cnn.com").await, "HTTP/1.1 200 OK");
    let conns = upstream.wait_for_connections(1, WAIT).await.unwrap();
    assert_eq!(
        conns[0].sni.as_deref(),
        Some("sni.example"),
        "the DR sni wins"
    );

    tls.subject_alt_names = vec!["nope.example".into()];
    let c = tls_cluster(upstream.local_addr(), tls);
    let err = ctx.connector.connect(&ctx, &c, None).await.unwrap_err();
    assert!(
        tls_reason(&err).contains("CERTIFICATE_VERIFY_FAILED"),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_presents_the_client_certificate() {
    let certs = CertFactory::new().unwrap();
    let upstream =
        HttpsUpstream::start_mutual(any_port(), &certs, &["edition.cnn.com"], certs.ca_pem())
            .await
            .unwrap();
    let client = certs.client_cert(&["client.example"]).unwrap();
    let mut tls = simple(Some(certs.ca_pem()));
    tls.mode = UpstreamTlsMode::Mutual;
    tls.client_identity = Some(PemIdentity {
        cert_chain: client.cert_chain_pem.clone(),
        private_key: client.key_pem.clone(),
    });
    let ctx = ctx(options(), None);
    let c = tls_cluster(upstream.local_addr(), tls);
    let mut up = ctx
        .connector
        .connect(&ctx, &c, Some("edition.cnn.com"))
        .await
        .unwrap();
    assert_eq!(get(&mut up.io, "edition.cnn.com").await, "HTTP/1.1 200 OK");
    let conns = upstream.wait_for_connections(1, WAIT).await.unwrap();
    assert!(
        conns[0].peer_sans.iter().any(|s| s == "client.example"),
        "{conns:?}"
    );
}

#[tokio::test]
async fn istio_mutual_uses_the_workload_identity() {
    let mesh = MeshCa::generate("cluster.local").unwrap();
    let day = Duration::from_secs(86400);
    let gw_id = SpiffeId::new(
        "cluster.local",
        "istio-system",
        "istio-egressgateway-service-account",
    )
    .unwrap();
    let up_id = SpiffeId::new("cluster.local", "default", "upstream").unwrap();
    let gateway =
        Arc::new(IdentityHandle::new(mesh.issue(&gw_id, day).unwrap(), mesh.root_pem()).unwrap());
    let server = IdentityHandle::new(mesh.issue(&up_id, day).unwrap(), mesh.root_pem()).unwrap();
    let config = server
        .server_config(&[], vec![b"istio".to_vec(), b"http/1.1".to_vec()])
        .unwrap();
    let upstream = HttpsUpstream::start_with_config(any_port(), config)
        .await
        .unwrap();

    let mut tls = simple(None);
    tls.mode = UpstreamTlsMode::IstioMutual;
    tls.sni = Some("outbound_.443_._.upstream.default.svc.cluster.local".into());
    tls.subject_alt_names = vec![up_id.to_string()];
    tls.alpn = vec!["istio".into()];
    let c = tls_cluster(upstream.local_addr(), tls.clone());

    let no_identity = ctx(options(), None);
    let err = no_identity
        .connector
        .connect(&no_identity, &c, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("workload identity"), "{err}");

    let ctx = ctx(options(), Some(gateway));
    let up = ctx.connector.connect(&ctx, &c, None).await.unwrap();
    assert_eq!(up.alpn.as_deref(), Some(&b"istio"[..]));
    let conns = upstream.wait_for_connections(1, WAIT).await.unwrap();
    assert!(conns[0].peer_sans.contains(&gw_id.to_string()), "{conns:?}");

    tls.subject_alt_names = vec!["spiffe://cluster.local/ns/default/sa/someone-else".into()];
    let c = tls_cluster(upstream.local_addr(), tls);
    assert!(matches!(
        ctx.connector.connect(&ctx, &c, None).await.unwrap_err(),
        ConnectError::Tls { .. }
    ));
}

#[tokio::test]
async fn strict_dns_uses_every_address_and_logical_dns_the_first() {
    // The name's two addresses, on a claimed loopback block.
    let net = Block::claim().unwrap();
    let (a, b) = (net.ip(2), net.ip(3));
    let first = TcpRecorder::start((a, 0).into()).await.unwrap();
    let port = first.local_addr().port();
    let Ok(second) = TcpRecorder::start((b, port).into()).await else {
        egress_testkit::skip(&format!("port {port} is taken on {b}"));
        return;
    };
    let mut opts = options();
    opts.upstream
        .hosts
        .push(("multi.example".into(), vec![a.into(), b.into()]));
    let ctx = ctx(opts, None);
    let strict = cluster(
        "outbound|80||multi.example",
        Discovery::StrictDns {
            hostname: "multi.example".into(),
            port,
        },
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(ctx.connector.connect(&ctx, &strict, None).await.unwrap());
    }
    let peers: Vec<_> = held.iter().map(|u| u.peer.ip().to_string()).collect();
    assert_eq!(peers, [a, b, a, b].map(|ip| ip.to_string()));

    let logical = cluster(
        "outbound|80||multi.example-logical",
        Discovery::LogicalDns {
            hostname: "multi.example".into(),
            port,
        },
    );
    for _ in 0..3 {
        let up = ctx.connector.connect(&ctx, &logical, None).await.unwrap();
        assert_eq!(up.peer, first.local_addr());
    }
    assert_eq!(second.wait_for_connections(2, WAIT).await.unwrap().len(), 2);
}

#[tokio::test]
async fn failing_endpoints_are_ejected() {
    let live = TcpRecorder::start(any_port()).await.unwrap();
    let dead = dead_port().await;
    let mut c = static_cluster("outbound|443||edition.cnn.com", &[dead, live.local_addr()]);
    c.outlier = Some(OutlierDetection {
        consecutive_5xx: 5,
        consecutive_local_origin_failures: 1,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_percent: 100,
    });
    let ctx = ctx(options(), None);
    let err = ctx.connector.connect(&ctx, &c, None).await.unwrap_err();
    assert_eq!(err.response_flag(), ResponseFlag::UpstreamConnectionFailure);
    assert_eq!(err.upstream_host(), Some(dead));
    for _ in 0..4 {
        let up = ctx.connector.connect(&ctx, &c, None).await.unwrap();
        assert_eq!(up.peer, live.local_addr(), "the failed endpoint is ejected");
    }
}

#[tokio::test]
async fn nothing_to_connect_to_is_uh() {
    let ctx = ctx(options(), None);
    let empty = static_cluster("outbound|443||edition.cnn.com", &[]);
    let err = ctx.connector.connect(&ctx, &empty, None).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoHealthyUpstream { .. }));
    assert_eq!(err.response_flag(), ResponseFlag::NoHealthyUpstream);
    assert_eq!(err.transport_failure_reason(), None);
    let unknown = cluster(
        "outbound|443||unknown.example",
        Discovery::StrictDns {
            hostname: "unknown.example".into(),
            port: 443,
        },
    );
    let err = ctx
        .connector
        .connect(&ctx, &unknown, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Resolve { .. }), "{err}");
    assert_eq!(err.response_flag(), ResponseFlag::NoHealthyUpstream);
}
