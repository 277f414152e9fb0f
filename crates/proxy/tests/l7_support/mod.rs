//! Shared helpers of the HTTP-router tests: a gateway harness that accepts on `127.0.0.1:0`
//! and hands each connection to `serve_http`, hand-built snapshot pieces, and a parser for
//! Istio's default TEXT access-log line.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::connect::Connector;
use egress_proxy::drain::Drain;
use egress_proxy::{ConnInfo, Ctx, ProxyOptions};
use egress_snapshot::snapshot::{
    Cluster, Discovery, Endpoint, Forward, HeaderOps, LbPolicy, Listener, ListenerKind,
    PoolSettings, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, Snapshot, VirtualHost,
    WeightedCluster,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Upper bound for every wait in these tests (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(20);

/// The route table name the harness serves.
pub const RDS: &str = "http.8080";

/// A gateway HTTP listener on an ephemeral loopback port.
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state.
    pub ctx: Arc<Ctx>,
    /// Publishes new snapshots.
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    /// Access-log lines.
    pub log: CapturedLines,
    accept: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Gateway {
    /// Starts serving `snapshot` with default options.
    pub async fn start(snapshot: Snapshot) -> Gateway {
        Gateway::start_with(snapshot, ProxyOptions::default()).await
    }

    /// Starts serving `snapshot` with `options`.
    pub async fn start_with(snapshot: Snapshot, options: ProxyOptions) -> Gateway {
        let (logger, log) = AccessLogger::capture();
        logger.prepare(&snapshot.access_log);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let conns = Arc::new(egress_proxy::limits::Connections::new(
            &options.limits,
            Arc::default(),
        ));
        let ctx = Arc::new(Ctx {
            snapshots: rx,
            connector: Connector::new(&options).unwrap(),
            options,
            identity: None,
            access_log: logger,
            drain: Drain::new(),
            http: Arc::default(),
            conns,
            active: Default::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept_ctx = Arc::clone(&ctx);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    return;
                };
                let conn = ConnInfo {
                    downstream_remote: remote,
                    downstream_local: stream.local_addr().unwrap(),
                    sni: None,
                    peer_identity: None,
                    server_port: 80,
                    tls_terminated: false,
                };
                tokio::spawn(egress_proxy::http::serve_http(
                    stream,
                    conn,
                    RDS.to_owned(),
                    Arc::clone(&accept_ctx),
                ));
            }
        });
        Gateway {
            addr,
            ctx,
            snapshots: tx,
            log,
            accept,
        }
    }

    /// Waits for the `n`-th access-log line and parses it.
    pub async fn line(&self, n: usize) -> AccessLine {
        let lines = self.log.wait_for(n, WAIT).await;
        assert!(
            lines.len() >= n,
            "expected {n} access-log lines, got {lines:?}"
        );
        AccessLine::parse(&lines[n - 1])
    }

    /// `curl` for `http://<host><path>` sent to this gateway.
    pub fn curl(&self, host: &str, path: &str) -> egress_testkit::Curl {
        egress_testkit::Curl::new(format!("http://{host}{path}")).connect_to(
            host,
            80,
            &self.addr.ip().to_string(),
            self.addr.port(),
        )
    }
}

/// Skips a test (with a message) when no `curl` binary is available.
#[macro_export]
macro_rules! require_curl {
    () => {
        if !egress_testkit::Curl::available() {
            egress_testkit::skip("curl is not installed");
            return;
        }
    };
}

/// A snapshot with one plaintext HTTP listener serving `virtual_hosts` and `clusters`.
pub fn snapshot(virtual_hosts: Vec<VirtualHost>, clusters: Vec<Cluster>) -> Snapshot {
    Snapshot {
        version: 1,
        listeners: vec![Listener {
            name: "0.0.0.0_8080".into(),
            bind: None,
            port: 0,
            kind: ListenerKind::Http(RouteConfig {
                name: RDS.into(),
                virtual_hosts,
            }),
        }],
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
        ..Snapshot::default()
    }
}

/// A virtual host `<domain>:80`.
pub fn vhost(domain: &str, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: format!("{domain}:80"),
        domains: vec![domain.to_owned()],
        routes,
        require_tls: false,
    }
}

/// A destination with `weight`.
pub fn dest(cluster: &str, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// A catch-all route forwarding to `clusters` with Istio's default retry policy.
pub fn forward(name: &str, clusters: Vec<WeightedCluster>) -> Route {
    Route {
        name: name.to_owned(),
        matcher: RouteMatch::default(),
        action: RouteAction::Forward(Forward {
            clusters,
            timeout: None,
            retry: Some(RetryPolicy::istio_default()),
            rewrite_uri: None,
            rewrite_authority: None,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// The forward settings of `route` (panics for other actions).
pub fn forward_of(route: &mut Route) -> &mut Forward {
    match &mut route.action {
        RouteAction::Forward(f) => f,
        other => panic!("not a forward route: {other:?}"),
    }
}

/// `outbound|<port>||<host>` with static endpoints.
pub fn static_cluster(host: &str, port: u16, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        name: format!("outbound|{port}||{host}"),
        host: host.to_owned(),
        port,
        discovery: Discovery::Static(
            endpoints
                .iter()
                .map(|a| Endpoint {
                    address: *a,
                    weight: 1,
                })
                .collect(),
        ),
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: Duration::from_secs(5),
        pool: PoolSettings::default(),
        outlier: None,
        external: true,
        tunnel: None,
    }
}

/// A loopback port nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// One line of Istio's default TEXT access log, split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub start_time: String,
    pub request: String,
    pub code: String,
    pub flags: String,
    pub details: String,
    pub termination: String,
    pub transport_failure: String,
    pub bytes_received: String,
    pub bytes_sent: String,
    pub duration: String,
    pub upstream_service_time: String,
    pub xff: String,
    pub user_agent: String,
    pub request_id: String,
    pub authority: String,
    pub upstream_host: String,
    pub cluster: String,
    pub upstream_local: String,
    pub downstream_local: String,
    pub downstream_remote: String,
    pub sni: String,
    pub route: String,
}

impl AccessLine {
    /// Splits a line: `[time]`, then quoted strings and bare words.
    pub fn parse(line: &str) -> AccessLine {
        let mut fields = Vec::new();
        let rest = line.strip_prefix('[').expect("line starts with [");
        let (time, mut rest) = rest.split_once("] ").expect("closing ]");
        fields.push(time.to_owned());
        while !rest.is_empty() {
            if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"').expect("closing quote");
                fields.push(q[..end].to_owned());
                rest = q[end + 1..].trim_start_matches(' ');
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                fields.push(rest[..end].to_owned());
                rest = rest[end..].trim_start_matches(' ');
            }
        }
        assert_eq!(
            fields.len(),
            22,
            "unexpected field count in {line:?}: {fields:?}"
        );
        let mut f = fields.into_iter();
        let mut next = || f.next().unwrap();
        AccessLine {
            start_time: next(),
            request: next(),
            code: next(),
            flags: next(),
            details: next(),
            termination: next(),
            transport_failure: next(),
            bytes_received: next(),
            bytes_sent: next(),
            duration: next(),
            upstream_service_time: next(),
            xff: next(),
            user_agent: next(),
            request_id: next(),
            authority: next(),
            upstream_host: next(),
            cluster: next(),
            upstream_local: next(),
            downstream_local: next(),
            downstream_remote: next(),
            sni: next(),
            route: next(),
        }
    }
}

/// A plain HTTP/1.1 hyper client connection to `addr` (keep-alive).
pub async fn h1_client(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// An h2c (prior knowledge) hyper client connection to `addr`.
pub async fn h2c_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// `GET <path>` with `Host: <host>` (HTTP/1.1 form).
pub fn get(host: &str, path: &str) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::builder()
        .uri(path)
        .header("host", host)
        .body(http_body_util::Empty::new())
        .unwrap()
}

/// Reads a response body to a string.
pub async fn text(resp: http::Response<hyper::body::Incoming>) -> String {
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// This test binary's loopback block, claimed from the test kit's address plan for the run.
fn plan() -> &'static egress_testkit::addrs::Block {
    static PLAN: std::sync::LazyLock<egress_testkit::addrs::Block> =
        std::sync::LazyLock::new(|| egress_testkit::addrs::Block::claim().unwrap());
    &PLAN
}

/// The gateway's listen address (host 1 of the block).
pub fn gateway_ip() -> std::net::Ipv4Addr {
    plan().ip(1)
}

/// The upstream's address (host 2).
pub fn upstream_ip() -> std::net::Ipv4Addr {
    plan().ip(2)
}

/// The clients' address (host 3).
pub fn client_ip() -> std::net::Ipv4Addr {
    plan().ip(3)
}
