//! Downstream limits through a whole proxy instance (`Proxy::start`, its accept loop and
//! connection tracking) on real loopback sockets: the request-headers, idle and stream idle
//! timeouts on tokio's paused clock, request header limits (431, nothing forwarded),
//! the connection limit shedding the oldest idle connection, the client's broken request
//! bodies blamed on the client (400 `DPE`/`DC`, not `503 UC`), and one shared upstream
//! HTTP/2 connection for a client's concurrent requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::limits::{Limit, Limits};
use egress_proxy::{Proxy, ProxyOptions};
use egress_snapshot::snapshot::{
    ChainAction, FilterChain, Listener, ListenerKind, Snapshot, UpstreamTls, UpstreamTlsMode,
};
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream, Reply};
use l7_support::{
    AccessLine, WAIT, client_ip, dest, forward, gateway_ip, snapshot, static_cluster, upstream_ip,
    vhost,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

const HOST: &str = "limits.example";
const CLUSTER: &str = "outbound|80||limits.example";

struct Gw {
    proxy: Proxy,
    addr: SocketAddr,
    log: CapturedLines,
    _snapshots: watch::Sender<Arc<Snapshot>>,
}

impl Gw {
    fn hits(&self, limit: Limit) -> u64 {
        self.proxy.ctx().conns.counters().get(limit)
    }

    async fn line(&self, n: usize) -> AccessLine {
        let lines = self.log.wait_for(n, WAIT).await;
        assert!(lines.len() >= n, "expected {n} lines, got {lines:?}");
        AccessLine::parse(&lines[n - 1])
    }
}

async fn upstream() -> HttpUpstream {
    HttpUpstream::start(SocketAddr::new(IpAddr::V4(upstream_ip()), 0))
        .await
        .unwrap()
}

async fn gateway_with(snap: Snapshot, limits: Limits, extra: ProxyOptions) -> Gw {
    let mut snap = snap;
    snap.access_log.path = Some("/dev/stdout".into());
    let (logger, log) = AccessLogger::capture();
    let (tx, rx) = watch::channel(Arc::new(snap));
    let options = ProxyOptions {
        listen_address: Some(IpAddr::V4(gateway_ip())),
        limits,
        ..extra
    };
    let proxy = Proxy::start(rx, options, None, logger).await.unwrap();
    let addr = proxy.bound()[0].1;
    Gw {
        proxy,
        addr,
        log,
        _snapshots: tx,
    }
}

async fn gateway(up: &HttpUpstream, limits: Limits) -> Gw {
    let snap = snapshot(
        vec![vhost(HOST, vec![forward("r", vec![dest(CLUSTER, 1)])])],
        vec![static_cluster(HOST, 80, &[up.local_addr()])],
    );
    gateway_with(snap, limits, ProxyOptions::default()).await
}

/// A client connection from this file's client address.
async fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(client_ip()), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads one response (head and Content-Length body); its status and body.
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> u16 {
    let mut s = connect(addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await.0
}

/// Resolves when the peer closes `s` (reads and discards anything it sends first).
async fn closed(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn slow_headers_are_cut_at_the_headers_timeout_while_normal_clients_get_200() {
    let up = upstream().await;
    let gw = gateway(&up, Limits::default()).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = connect(gw.addr).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: ").await.unwrap();
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut buf = [0u8; 64];
            // One more header byte a second (slowloris), until the gateway closes.
            loop {
                tokio::select! {
                    n = s.read(&mut buf) => {
                        if n.map_or(true, |n| n == 0) {
                            return started.elapsed();
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {
                        if s.write_all(b"x").await.is_err() {
                            return started.elapsed();
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(get(gw.addr, "/during").await, 200);
    for task in slow {
        let cut = task.await.unwrap();
        assert!(
            cut >= Duration::from_secs(10) && cut <= Duration::from_secs(11),
            "cut after {cut:?}"
        );
    }
    assert_eq!(get(gw.addr, "/after").await, 200);
    assert_eq!(gw.hits(Limit::RequestHeadersTimeout), 20);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_outlives_the_headers_timeout_and_ends_at_the_idle_timeout() {
    let up = upstream().await;
    let limits = Limits {
        idle_timeout: Some(Duration::from_secs(60)),
        ..Limits::default()
    };
    let gw = gateway(&up, limits).await;
    let mut s = connect(gw.addr).await;
    let req = format!("GET /1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    // Idle for three header timeouts: an idle keep-alive connection is not a slow head.
    tokio::time::sleep(Duration::from_secs(30)).await;
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    let idle_from = Instant::now();
    closed(&mut s).await;
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_secs(60) && idle <= Duration::from_secs(61),
        "{idle:?}"
    );
    assert_eq!(gw.hits(Limit::IdleTimeout), 1);
    assert_eq!(gw.hits(Limit::RequestHeadersTimeout), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_upstream_ends_at_the_stream_idle_timeout_with_408_si() {
    let up = upstream().await;
    up.set_reply(
        "/stalls",
        Reply::status(200).with_delay(Duration::from_secs(3600)),
    );
    let gw = gateway(&up, Limits::default()).await;
    let started = Instant::now();
    let mut s = connect(gw.addr).await;
    let req = format!("GET /stalls HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!((status, body.as_str()), (408, "stream timeout"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(300) && waited < Duration::from_secs(301),
        "{waited:?}"
    );
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("408", "SI"));
    assert_eq!(line.details, "stream_idle_timeout");
    assert_eq!(gw.hits(Limit::StreamIdleTimeout), 1);
}

#[tokio::test(start_paused = true)]
async fn a_tcp_proxy_connection_is_closed_after_an_hour_without_bytes() {
    // An echo upstream.
    let echo = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(upstream_ip()), 0))
        .await
        .unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let cluster = static_cluster("echo.example", 9000, &[echo_addr]);
    let snap = Snapshot {
        version: 1,
        listeners: vec![Listener {
            name: "tcp".into(),
            bind: None,
            port: 0,
            kind: ListenerKind::Chains(vec![FilterChain {
                server_names: vec![],
                server_port: 9000,
                tls: None,
                action: ChainAction::TcpProxy {
                    clusters: vec![dest(&cluster.name, 1)],
                    route_name: None,
                },
            }]),
        }],
        clusters: [(cluster.name.clone(), cluster)].into_iter().collect(),
        ..Snapshot::default()
    };
    let gw = gateway_with(snap, Limits::default(), ProxyOptions::default()).await;
    let mut s = connect(gw.addr).await;
    let mut byte = [0u8; 1];
    // A byte each half hour for three hours keeps it open.
    for _ in 0..6 {
        s.write_all(b"x").await.unwrap();
        s.read_exact(&mut byte).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1800)).await;
    }
    s.write_all(b"y").await.unwrap();
    s.read_exact(&mut byte).await.unwrap();
    let quiet = Instant::now();
    closed(&mut s).await;
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_secs(3600) && after <= Duration::from_secs(3960),
        "closed {after:?} after the last byte"
    );
    assert_eq!(gw.hits(Limit::TcpIdleTimeout), 1);
    let line = gw.line(1).await;
    assert_eq!(line.termination, "tcp_proxy_idle_timeout", "{line:?}");
    assert_eq!(line.bytes_received, "7");
}

#[tokio::test]
async fn oversized_request_headers_are_431_and_never_forwarded() {
    let up = upstream().await;
    let gw = gateway(&up, Limits::default()).await;
    // One 300 KB header: the codec refuses it.
    let mut s = connect(gw.addr).await;
    let big = "a".repeat(300 * 1024);
    let req = format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\nx-big: {big}\r\n\r\n");
    // The gateway may answer and close before it has read everything.
    let _ = s.write_all(req.as_bytes()).await;
    assert_eq!(read_response(&mut s).await.0, 431);
    // 61 KiB: fits the codec's buffer, over the limit.
    let mut s = connect(gw.addr).await;
    let over = "b".repeat(61 * 1024);
    let req = format!("GET /over HTTP/1.1\r\nHost: {HOST}\r\nx-over: {over}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 431);
    // 101 headers.
    let mut s = connect(gw.addr).await;
    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let req = format!("GET /many HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 431);
    // Under both limits: forwarded.
    let mut s = connect(gw.addr).await;
    let fits = "c".repeat(50 * 1024);
    let req = format!("GET /fits HTTP/1.1\r\nHost: {HOST}\r\nx-fits: {fits}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    let seen = up.wait_for_requests(1, WAIT).await.unwrap();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/fits"],
        "nothing over the limits reached the upstream"
    );
    assert_eq!(gw.hits(Limit::RequestHeadersTooLarge), 3);
}

#[tokio::test]
async fn a_malformed_chunked_body_is_400_dpe_not_503_uc() {
    let up = upstream().await;
    let gw = gateway(&up, Limits::default()).await;
    let mut s = connect(gw.addr).await;
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\ngarbage\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 400);
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("400", "DPE"));
    assert_eq!(line.details, "downstream_protocol_error");
}

#[tokio::test]
async fn an_abandoned_expect_continue_body_is_blamed_on_the_client() {
    let up = upstream().await;
    let gw = gateway(&up, Limits::default()).await;
    let mut s = connect(gw.addr).await;
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // The client gives up without sending the body.
    s.shutdown().await.unwrap();
    let line = gw.line(1).await;
    assert_eq!(line.flags, "DC", "{line:?}");
    assert!(matches!(line.code.as_str(), "400" | "0"), "{line:?}");
}

#[tokio::test]
async fn a_full_listener_sheds_its_oldest_idle_connection_for_a_new_client() {
    let up = upstream().await;
    let limits = Limits {
        max_connections_per_listener: Some(4),
        ..Limits::default()
    };
    let gw = gateway(&up, limits).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(gw.addr).await);
        let open = silent.len();
        egress_testkit::eventually(WAIT, || async { gw.proxy.ctx().conns.open() == open })
            .await
            .unwrap();
    }
    assert_eq!(get(gw.addr, "/new").await, 200);
    // The oldest silent connection was closed to make room.
    tokio::time::timeout(WAIT, closed(&mut silent[0]))
        .await
        .expect("the oldest idle connection is closed");
    assert!(gw.hits(Limit::IdleConnectionShed) >= 1);
    assert!(gw.proxy.ctx().conns.open_on("0.0.0.0_8080") <= 4);
}

#[tokio::test]
async fn concurrent_requests_share_one_upstream_h2_connection() {
    let certs = CertFactory::new().unwrap();
    let up = HttpsUpstream::start(
        SocketAddr::new(IpAddr::V4(upstream_ip()), 0),
        &certs,
        &[HOST],
    )
    .await
    .unwrap();
    let mut cluster = static_cluster(HOST, 80, &[up.local_addr()]);
    cluster.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: None,
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec!["h2".into()],
    });
    let snap = snapshot(
        vec![vhost(HOST, vec![forward("r", vec![dest(CLUSTER, 1)])])],
        vec![cluster],
    );
    let extra = ProxyOptions {
        upstream: egress_proxy::UpstreamOptions {
            extra_roots_pem: vec![certs.ca_pem().to_owned()],
            ..Default::default()
        },
        ..ProxyOptions::default()
    };
    let gw = gateway_with(snap, Limits::default(), extra).await;
    let stream = connect(gw.addr).await;
    let (client, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut requests = Vec::new();
    for i in 0..50 {
        let mut client = client.clone();
        requests.push(tokio::spawn(async move {
            let req = http::Request::post(format!("http://{HOST}/post/{i}"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"data",
                )))
                .unwrap();
            client.send_request(req).await.unwrap().status()
        }));
    }
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(
        egress_proxy::http::upstream_connections(gw.proxy.ctx(), CLUSTER),
        1,
        "one upstream HTTP/2 connection carries the client's concurrent requests"
    );
}
