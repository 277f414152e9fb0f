//! TLS origination from the HTTP router (DestinationRule `SIMPLE`, reference §3.6): the
//! upstream sees SNI = the request's Host (auto SNI) and the Host itself; a certificate from
//! an untrusted CA gives 503 `UF` with the transport failure reason; and sequential requests
//! reuse one upstream TLS connection (one handshake).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::sync::Arc;

use egress_proxy::ProxyOptions;
use egress_snapshot::snapshot::{Cluster, UpstreamTls, UpstreamTlsMode};
use egress_testkit::{CertFactory, HttpsUpstream};
use l7_support::*;

const CNN: &str = "edition.cnn.com";
const CNN_443: &str = "outbound|443||edition.cnn.com";

fn simple_tls_cluster(upstream: &HttpsUpstream, alpn: &[&str]) -> Cluster {
    let mut c = static_cluster(CNN, 443, &[upstream.local_addr()]);
    c.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: None,
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: alpn.iter().map(|s| (*s).to_owned()).collect(),
    });
    c
}

async fn tls_gateway(trusted: &CertFactory, upstream: &HttpsUpstream, alpn: &[&str]) -> Gateway {
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward("istio-system.cnn-tls.0", vec![dest(CNN_443, 1)])],
        )],
        vec![simple_tls_cluster(upstream, alpn)],
    );
    let options = ProxyOptions {
        upstream: egress_proxy::UpstreamOptions {
            extra_roots_pem: vec![trusted.ca_pem().to_owned()],
            ..Default::default()
        },
        ..ProxyOptions::default()
    };
    Gateway::start_with(snap, options).await
}

#[tokio::test]
async fn simple_origination_uses_host_as_sni() {
    require_curl!();
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &certs, &[CNN])
        .await
        .unwrap();
    let gw = tls_gateway(&certs, &upstream, &[]).await;
    let out = gw.curl(CNN, "/politics").fetch().await.unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert!(seen[0].tls);
    assert_eq!(
        seen[0].sni.as_deref(),
        Some(CNN),
        "auto SNI from the Host header"
    );
    assert_eq!(seen[0].host.as_deref(), Some(CNN), "Host is not rewritten");
    assert_eq!(seen[0].path, "/politics");
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("200", "-"));
    assert_eq!(line.cluster, CNN_443);
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
}

#[tokio::test]
async fn untrusted_certificate_is_503_uf_with_reason() {
    require_curl!();
    let certs = CertFactory::new().unwrap();
    let other = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &certs, &[CNN])
        .await
        .unwrap();
    let gw = tls_gateway(&other, &upstream, &[]).await;
    let out = gw.curl(CNN, "/").fetch().await.unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert!(
        out.body
            .starts_with("upstream connect error or disconnect/reset before headers.")
            && out.body.contains("transport failure reason: TLS_error:")
            && out.body.contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        out.body
    );
    let line = gw.line(1).await;
    assert_eq!(line.code, "503");
    assert!(line.flags.starts_with("UF"), "{line:?}");
    assert!(
        line.transport_failure.contains("CERTIFICATE_VERIFY_FAILED"),
        "{line:?}"
    );
    assert!(
        !line.transport_failure.contains(' '),
        "spaces are underscores in the log: {line:?}"
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn sequential_requests_reuse_one_tls_connection() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &certs, &[CNN])
        .await
        .unwrap();
    let gw = tls_gateway(&certs, &upstream, &[]).await;
    for i in 0..20 {
        // A fresh downstream connection each time: reuse is upstream-side.
        let mut client = h1_client(gw.addr).await;
        let resp = client
            .send_request(get(CNN, &format!("/r{i}")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        text(resp).await;
    }
    let seen = upstream.wait_for_requests(20, WAIT).await.unwrap();
    assert_eq!(seen.len(), 20);
    assert_eq!(
        egress_proxy::http::upstream_tls_handshakes(&gw.ctx, CNN_443),
        1
    );
    assert_eq!(
        egress_proxy::http::upstream_connections(&gw.ctx, CNN_443),
        1
    );
    assert_eq!(
        upstream.connections().len(),
        1,
        "the upstream accepted one connection"
    );
}

#[tokio::test]
async fn h2_upstream_when_alpn_negotiates_it() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &certs, &[CNN])
        .await
        .unwrap();
    let gw = tls_gateway(&certs, &upstream, &["h2"]).await;
    let mut client = h1_client(gw.addr).await;
    for _ in 0..3 {
        let resp = client.send_request(get(CNN, "/h2")).await.unwrap();
        assert_eq!(resp.status(), 200);
        text(resp).await;
    }
    let seen = upstream.wait_for_requests(3, WAIT).await.unwrap();
    assert_eq!(seen[0].version, "HTTP/2.0");
    assert_eq!(
        seen[0].host.as_deref(),
        Some(CNN),
        ":authority carries the Host"
    );
    assert_eq!(
        egress_proxy::http::upstream_tls_handshakes(&gw.ctx, CNN_443),
        1
    );
}

/// Pools follow cluster generations: a new version whose cluster is unchanged keeps using the
/// open upstream connection; a version that changes the cluster (here its connect timeout)
/// opens a new one, and the version after, unchanged again, reuses that.
#[tokio::test]
async fn an_unchanged_cluster_keeps_its_connections_across_versions_and_a_changed_one_does_not() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start("127.0.0.1:0".parse().unwrap(), &certs, &[CNN])
        .await
        .unwrap();
    let gw = tls_gateway(&certs, &upstream, &[]).await;
    let base = gw.snapshots.borrow().as_ref().clone();
    let fetch = |path: &'static str| {
        let addr = gw.addr;
        async move {
            let mut client = h1_client(addr).await;
            let resp = client.send_request(get(CNN, path)).await.unwrap();
            assert_eq!(resp.status(), 200);
            text(resp).await;
        }
    };
    let connections = || egress_proxy::http::upstream_connections(&gw.ctx, CNN_443);
    fetch("/v1").await;
    assert_eq!(connections(), 1);
    // Version 2: same clusters, another warning.
    let mut v2 = base.clone();
    v2.version += 1;
    v2.warnings.push("unrelated".into());
    gw.snapshots.send_replace(Arc::new(v2.clone()));
    fetch("/v2").await;
    assert_eq!(connections(), 1, "unchanged cluster, same connection");
    // Version 3: the cluster changes.
    let mut v3 = v2.clone();
    v3.version += 1;
    if let Some(c) = v3.clusters.get_mut(CNN_443) {
        c.connect_timeout += std::time::Duration::from_secs(1);
    }
    gw.snapshots.send_replace(Arc::new(v3.clone()));
    fetch("/v3").await;
    assert_eq!(connections(), 2, "changed cluster, new pool");
    // Version 4: unchanged since 3.
    let mut v4 = v3;
    v4.version += 1;
    gw.snapshots.send_replace(Arc::new(v4));
    fetch("/v4").await;
    assert_eq!(connections(), 2);
    assert_eq!(upstream.connections().len(), 2);
}
