//! The sidecar's explicit proxy with real curl (istio-egress.md §3.1–3.2, §3.9, §3.10):
//! absolute-form HTTP routed by Host with the Host preserved, the outbound policy's
//! `allow_any` passthrough and `block_all` 502, HTTPS through CONNECT with SNI routes carrying
//! the client's own TLS, REGISTRY_ONLY HTTPS failing the handshake (curl exit 35), a TCP
//! port's route, loop protection, and snapshot swaps at runtime.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sidecar_support;

use egress_snapshot::snapshot::{OutboundPolicy, SidecarSnapshot};
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream, TcpRecorder};
use sidecar_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CNN_80: &str = "outbound|80||edition.cnn.com";
const CNN_443: &str = "outbound|443||edition.cnn.com";

/// Port 80 routes `edition.cnn.com` to the upstream; everything else is the policy's.
fn cnn_over_http(version: u64, policy: OutboundPolicy, upstream: &HttpUpstream) -> SidecarSnapshot {
    snapshot(
        version,
        policy,
        vec![(
            80,
            http_port(80, vec![vhost(CNN, 80, vec![forward("cnn", CNN_80)])]),
        )],
        vec![static_cluster(CNN_80, CNN, 80, &[upstream.local_addr()])],
    )
}

#[tokio::test]
async fn http_through_the_proxy_is_routed_by_host_with_the_host_preserved() {
    require_curl!();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let sc = Sc::start(
        cnn_over_http(1, OutboundPolicy::RegistryOnly, &upstream),
        options(&[]),
    )
    .await;
    let out = sc
        .curl("http://edition.cnn.com/politics?x=1")
        .args(["-D", "-"])
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert!(
        out.body.to_ascii_lowercase().contains("server: envoy\r\n"),
        "sidecar responses say `server: envoy`: {}",
        out.body
    );
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].host.as_deref(), Some(CNN), "Host is not rewritten");
    assert_eq!(seen[0].path, "/politics?x=1", "origin form upstream");
    assert_eq!(seen[0].header("proxy-connection"), None);
    assert_eq!(
        seen[0].header("x-forwarded-for"),
        None,
        "use_remote_address is false at a sidecar"
    );
    let line = sc.line(1).await;
    assert_eq!(line.request, "GET /politics?x=1 HTTP/1.1");
    assert_eq!(
        (
            line.code.as_str(),
            line.flags.as_str(),
            line.details.as_str()
        ),
        ("200", "-", "via_upstream")
    );
    assert_eq!(line.authority, CNN);
    assert_eq!(line.cluster, CNN_80);
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    assert_eq!(line.route, "cnn");
    assert_eq!(line.xff, "-");
}

#[tokio::test]
async fn registry_only_unknown_http_host_is_a_502_from_block_all() {
    require_curl!();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let sc = Sc::start(
        cnn_over_http(1, OutboundPolicy::RegistryOnly, &upstream),
        options(&["unknown.example.org"]),
    )
    .await;
    // On the HTTP port (the table's own catch-all) and on a port with no entry.
    for (n, url) in [
        "http://unknown.example.org/",
        "http://unknown.example.org:8081/x",
    ]
    .into_iter()
    .enumerate()
    {
        let out = sc.curl(url).fetch().await.unwrap();
        assert_eq!((out.status, out.body.as_str()), (502, ""), "{url}: {out:?}");
        let line = sc.line(n + 1).await;
        assert_eq!(
            (
                line.code.as_str(),
                line.flags.as_str(),
                line.details.as_str()
            ),
            ("502", "-", "direct_response"),
            "{url}"
        );
        assert_eq!(line.route, "block_all");
        assert_eq!(line.cluster, "-");
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn allow_any_unknown_http_host_passes_through_to_the_requested_host() {
    require_curl!();
    let known = HttpUpstream::start(any_port()).await.unwrap();
    let other = HttpUpstream::start(any_port()).await.unwrap();
    let port = other.local_addr().port();
    // The port has an HTTP table (for another host), so its `allow_any` catch-all applies.
    let snap = snapshot(
        1,
        OutboundPolicy::AllowAny,
        vec![(
            port,
            http_port(port, vec![vhost(CNN, port, vec![forward("cnn", CNN_80)])]),
        )],
        vec![static_cluster(CNN_80, CNN, port, &[known.local_addr()])],
    );
    let sc = Sc::start(snap, options(&["unknown.example.org"])).await;
    let out = sc
        .curl(&format!("http://unknown.example.org:{port}/anything"))
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = other.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("unknown.example.org:{port}").as_str())
    );
    assert_eq!(seen[0].path, "/anything");
    assert!(known.requests().is_empty());
    let line = sc.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("200", "-"));
    assert_eq!(line.cluster, "PassthroughCluster");
    assert_eq!(line.route, "allow_any");
    assert_eq!(line.upstream_host, other.local_addr().to_string());

    // A port with no entry at all passes through as well (an IP literal needs no resolving).
    let out = sc.curl(&known.url("/direct")).fetch().await.unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(
        known.wait_for_requests(1, WAIT).await.unwrap()[0].path,
        "/direct"
    );
    assert_eq!(sc.line(2).await.cluster, "PassthroughCluster");

    // A name that does not resolve: no healthy upstream.
    let out = sc
        .curl("http://nowhere.example.org/")
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert_eq!(sc.line(3).await.flags, "UH");
}

#[tokio::test]
async fn https_through_connect_follows_the_sni_route_with_the_clients_own_tls() {
    require_curl!();
    let certs = CertFactory::new().unwrap();
    let dir = TempDir::new();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &[CNN])
        .await
        .unwrap();
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(443, tls_port(&[(&[CNN], CNN_443, None)]))],
        vec![static_cluster(CNN_443, CNN, 443, &[upstream.local_addr()])],
    );
    let sc = Sc::start(snap, options(&[])).await;
    let out = sc
        .curl("https://edition.cnn.com/politics")
        .cacert(&ca)
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert!(seen[0].tls);
    assert_eq!(
        seen[0].sni.as_deref(),
        Some(CNN),
        "the client's own ClientHello"
    );
    assert_eq!(seen[0].path, "/politics");
    let line = sc.line(1).await;
    assert_eq!(line.request, "- - -");
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("0", "-"));
    assert_eq!(line.cluster, CNN_443);
    assert_eq!(line.sni, CNN);
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    assert_ne!(line.bytes_received, "0");
    assert_ne!(line.bytes_sent, "0");
}

#[tokio::test]
async fn registry_only_unknown_https_fails_the_tls_handshake() {
    require_curl!();
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &[CNN])
        .await
        .unwrap();
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(443, tls_port(&[(&[CNN], CNN_443, None)]))],
        vec![static_cluster(CNN_443, CNN, 443, &[upstream.local_addr()])],
    );
    let sc = Sc::start(snap, options(&[])).await;
    // An SNI no route matches on a TLS port, then a port with no entry.
    for (n, url) in [
        "https://unknown.example.org/",
        "https://unknown.example.org:8443/",
    ]
    .into_iter()
    .enumerate()
    {
        let out = sc.curl(url).insecure().status().await.unwrap();
        assert_eq!(out.exit_code, 35, "{url}: {out:?}");
        let line = sc.line(n + 1).await;
        assert_eq!(line.request, "- - -");
        assert_eq!(line.flags, "UH", "{line:?}");
        assert_eq!(line.cluster, "BlackHoleCluster");
    }
    // Both denials name the host the client asked for, also where no listener read the
    // ClientHello (Envoy logs `-` there).
    assert_eq!(sc.line(1).await.sni, "unknown.example.org");
    assert_eq!(sc.line(2).await.sni, "unknown.example.org");
    assert!(upstream.connections().is_empty());
}

#[tokio::test]
async fn allow_any_unknown_https_passes_through_to_the_requested_host() {
    require_curl!();
    let certs = CertFactory::new().unwrap();
    let dir = TempDir::new();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["api.example.org"])
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let snap = snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]);
    let sc = Sc::start(snap, options(&["api.example.org"])).await;
    let out = sc
        .curl(&format!("https://api.example.org:{port}/v1"))
        .cacert(&ca)
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(
        upstream.wait_for_requests(1, WAIT).await.unwrap()[0].path,
        "/v1"
    );
    let line = sc.line(1).await;
    assert_eq!(line.cluster, "PassthroughCluster");
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    assert_eq!(line.sni, "api.example.org", "{line:?}");
}

/// HTTP to a port the sidecar has no entry for goes to the policy as opaque TCP; its log line
/// still names the Host the request asked for, passed through or black-holed.
#[tokio::test]
async fn policy_decisions_on_unknown_ports_name_the_http_host() {
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let port = upstream.local_addr().port();
    let sc = Sc::start(
        snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]),
        options(&["api.example.org"]),
    )
    .await;
    let target = format!("api.example.org:{port}");
    let request = format!("GET /v1 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let (mut tunnel, head) = connect(sc.sidecar.proxy_addr(), &target).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel.write_all(request.as_bytes()).await.unwrap();
    let response = read_to_close(&mut tunnel).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    drop(tunnel);
    let line = sc.line(1).await;
    assert_eq!(line.request, "- - -");
    assert_eq!(line.cluster, "PassthroughCluster");
    assert_eq!(line.authority, target, "{line:?}");
    assert_eq!(line.sni, "-");

    sc.swap(snapshot(2, OutboundPolicy::RegistryOnly, vec![], vec![]))
        .await;
    let (mut tunnel, _) = connect(sc.sidecar.proxy_addr(), &target).await;
    tunnel.write_all(request.as_bytes()).await.unwrap();
    assert!(read_to_close(&mut tunnel).await.is_empty());
    let line = sc.line(2).await;
    assert_eq!(
        (line.cluster.as_str(), line.flags.as_str()),
        ("BlackHoleCluster", "UH")
    );
    assert_eq!(line.authority, target, "{line:?}");
    assert_eq!(upstream.wait_for_requests(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_tcp_port_route_proxies_the_tunnel() {
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let cluster = "outbound|9000||db.example.org";
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(9000, tcp_port(cluster, Some("db")))],
        vec![static_cluster(
            cluster,
            "db.example.org",
            9000,
            &[recorder.local_addr()],
        )],
    );
    let sc = Sc::start(snap, options(&[])).await;
    let (mut stream, head) = connect(sc.sidecar.proxy_addr(), "db.example.org:9000").await;
    assert!(
        head.starts_with("HTTP/1.1 200 Connection established\r\n"),
        "{head}"
    );
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    drop(stream);
    let line = sc.line(1).await;
    assert_eq!(line.request, "- - -");
    assert_eq!(line.cluster, cluster);
    assert_eq!(line.route, "db");
    assert_eq!(
        (line.bytes_received.as_str(), line.bytes_sent.as_str()),
        ("4", "4")
    );
    assert_eq!(recorder.connections().len(), 1);
}

#[tokio::test]
async fn requests_that_are_not_proxy_requests_and_loops_are_refused() {
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let snap = snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]);
    let sc = Sc::start(snap, options(&[])).await;
    let proxy = sc.sidecar.proxy_addr();

    // Origin form: the client treats the proxy as a server.
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let line = sc.line(1).await;
    assert_eq!(line.details, "absolute_url_required");

    // A tunnel back into the sidecar itself is black-holed even under ALLOW_ANY.
    let (mut stream, head) = connect(proxy, &proxy.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(read_to_close(&mut stream).await.is_empty());
    let line = sc.line(2).await;
    assert_eq!(
        (line.flags.as_str(), line.cluster.as_str()),
        ("UH", "BlackHoleCluster")
    );

    // Under ALLOW_ANY an unknown TCP destination passes through.
    let target = recorder.local_addr().to_string();
    let (mut stream, _) = connect(proxy, &target).await;
    stream.write_all(b"hi").await.unwrap();
    let mut echo = [0u8; 2];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hi");
}

#[tokio::test]
async fn a_new_snapshot_applies_to_the_next_request() {
    require_curl!();
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    let port = upstream.local_addr().port();
    let sc = Sc::start(
        snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]),
        options(&["api.example.org"]),
    )
    .await;
    let url = format!("http://api.example.org:{port}/");
    assert_eq!(sc.curl(&url).status().await.unwrap().status, 200);
    assert_eq!(sc.line(1).await.route, "allow_any");

    sc.swap(snapshot(2, OutboundPolicy::RegistryOnly, vec![], vec![]))
        .await;
    assert_eq!(sc.sidecar.applied_version(), 2);
    assert_eq!(sc.curl(&url).status().await.unwrap().status, 502);
    assert_eq!(sc.line(2).await.route, "block_all");

    // Registering the host routes it again, through its own cluster and route.
    let cluster = format!("outbound|{port}||api.example.org");
    let table = http_port(
        port,
        vec![vhost(
            "api.example.org",
            port,
            vec![forward("api", &cluster)],
        )],
    );
    sc.swap(snapshot(
        3,
        OutboundPolicy::RegistryOnly,
        vec![(port, table)],
        vec![static_cluster(
            &cluster,
            "api.example.org",
            port,
            &[upstream.local_addr()],
        )],
    ))
    .await;
    assert_eq!(sc.curl(&url).status().await.unwrap().status, 200);
    let line = sc.line(3).await;
    assert_eq!(
        (line.cluster.as_str(), line.route.as_str()),
        (cluster.as_str(), "api")
    );
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn shutdown_drains_open_tunnels() {
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let snap = snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]);
    let sc = Sc::start(snap, options(&[])).await;
    let proxy = sc.sidecar.proxy_addr();
    let (mut stream, _) = connect(proxy, &recorder.local_addr().to_string()).await;
    stream.write_all(b"x").await.unwrap();
    let mut echo = [0u8; 1];
    stream.read_exact(&mut echo).await.unwrap();
    let Sc { sidecar, log, .. } = sc;
    sidecar.shutdown(std::time::Duration::from_millis(50)).await;
    assert!(read_to_close(&mut stream).await.is_empty());
    assert!(tokio::net::TcpStream::connect(proxy).await.is_err());
    let lines = log.wait_for(1, WAIT).await;
    assert_eq!(AccessLine::parse(&lines[0]).cluster, "PassthroughCluster");
}

#[tokio::test]
async fn the_capture_listener_black_holes_connections_that_were_not_redirected() {
    let snap = snapshot(1, OutboundPolicy::AllowAny, vec![], vec![]);
    let mut opts = options(&[]);
    opts.capture_listen = Some(any_port());
    let sc = Sc::start(snap, opts).await;
    let capture = sc.sidecar.capture_addr().unwrap();
    let names: Vec<String> = sc.sidecar.bound().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["explicit_proxy", "virtualOutbound"]);
    // Dialled directly, its original destination is itself: Istio's loop protection.
    let mut stream = tokio::net::TcpStream::connect(capture).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_to_close(&mut stream).await.is_empty());
    let line = sc.line(1).await;
    assert_eq!(
        (line.flags.as_str(), line.cluster.as_str()),
        ("UH", "BlackHoleCluster")
    );
    assert_eq!(line.downstream_local, capture.to_string());
}
