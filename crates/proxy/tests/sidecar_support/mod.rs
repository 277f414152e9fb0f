//! Shared helpers of the sidecar tests: sidecar snapshots built by hand (the compiler that
//! produces them is tested on its own), a started [`Sidecar`] with a captured access log,
//! curl through the explicit proxy, raw CONNECT tunnels, and a parser for Istio's default
//! TEXT access-log line.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_identity::IdentityHandle;
use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::sidecar::{Sidecar, SidecarOptions};
use egress_snapshot::sidecar_view::routable;
use egress_snapshot::snapshot::{
    AccessLog, Cluster, Discovery, Endpoint, Forward, HeaderOps, LbPolicy, OutboundPolicy,
    OutboundPort, PoolSettings, Route, RouteAction, RouteConfig, RouteMatch, SidecarSnapshot,
    SniRoute, TcpRoute, VirtualHost, WeightedCluster,
};
use egress_testkit::Curl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Upper bound for every wait in these tests (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(20);

pub const CNN: &str = "edition.cnn.com";

pub fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

pub fn any_port() -> SocketAddr {
    SocketAddr::new(loopback(), 0)
}

/// Options: explicit proxy on an ephemeral loopback port; `names` resolve to loopback.
pub fn options(names: &[&str]) -> SidecarOptions {
    SidecarOptions {
        proxy_listen: any_port(),
        upstream: egress_proxy::UpstreamOptions {
            hosts: names
                .iter()
                .map(|n| ((*n).to_owned(), vec![loopback()]))
                .collect(),
            ..Default::default()
        },
        ..SidecarOptions::default()
    }
}

/// A sidecar snapshot: `policy`, `ports`, `clusters`, access log on (Istio's TEXT line).
pub fn snapshot(
    version: u64,
    policy: OutboundPolicy,
    ports: Vec<(u16, OutboundPort)>,
    clusters: Vec<Cluster>,
) -> SidecarSnapshot {
    SidecarSnapshot {
        version,
        outbound: policy,
        ports: ports.into_iter().collect::<BTreeMap<_, _>>(),
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
        access_log: AccessLog {
            path: Some("/dev/stdout".into()),
            ..AccessLog::default()
        },
        ..SidecarSnapshot::default()
    }
}

/// An HTTP port's route table (named after the port, without a catch-all: the sidecar adds
/// the policy's).
pub fn http_port(port: u16, virtual_hosts: Vec<VirtualHost>) -> OutboundPort {
    OutboundPort::Http(RouteConfig {
        name: port.to_string(),
        virtual_hosts,
    })
}

/// A TLS port: SNI hosts → cluster, in order.
pub fn tls_port(routes: &[(&[&str], &str, Option<&str>)]) -> OutboundPort {
    OutboundPort::Tls(
        routes
            .iter()
            .map(|(hosts, cluster, name)| SniRoute {
                sni_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                clusters: vec![dest(cluster)],
                route_name: name.map(str::to_owned),
            })
            .collect(),
    )
}

/// A TCP port to `cluster`.
pub fn tcp_port(cluster: &str, route_name: Option<&str>) -> OutboundPort {
    OutboundPort::Tcp(TcpRoute {
        clusters: vec![dest(cluster)],
        route_name: route_name.map(str::to_owned),
    })
}

/// A virtual host for `domain` on `port` with `routes`.
pub fn vhost(domain: &str, port: u16, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: format!("{domain}:{port}"),
        domains: vec![domain.to_owned()],
        routes,
        require_tls: false,
    }
}

/// A destination of weight 1.
pub fn dest(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight: 1,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// A catch-all route forwarding to `cluster` (no retries, no timeout).
pub fn forward(name: &str, cluster: &str) -> Route {
    Route {
        name: name.to_owned(),
        matcher: RouteMatch::default(),
        action: RouteAction::Forward(Forward {
            clusters: vec![dest(cluster)],
            timeout: None,
            retry: None,
            rewrite_uri: None,
            rewrite_authority: None,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// A cluster `name` for `host:port` with static `endpoints`.
pub fn static_cluster(name: &str, host: &str, port: u16, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        name: name.to_owned(),
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

/// A started sidecar with its snapshot channel and captured access log.
pub struct Sc {
    pub sidecar: Sidecar,
    pub snapshots: watch::Sender<Arc<egress_snapshot::Snapshot>>,
    pub log: CapturedLines,
}

impl Sc {
    pub async fn start(snapshot: SidecarSnapshot, options: SidecarOptions) -> Sc {
        Sc::start_with_identity(snapshot, options, None).await
    }

    pub async fn start_with_identity(
        snapshot: SidecarSnapshot,
        options: SidecarOptions,
        identity: Option<Arc<IdentityHandle>>,
    ) -> Sc {
        let (tx, rx) = watch::channel(Arc::new(routable(snapshot)));
        let (logger, log) = AccessLogger::capture();
        let sidecar = Sidecar::start(rx, options, identity, logger).await.unwrap();
        Sc {
            sidecar,
            snapshots: tx,
            log,
        }
    }

    /// `http://<explicit proxy address>`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.sidecar.proxy_addr())
    }

    /// `curl -x <proxy> <url>` (the test kit's curl ignores proxies unless told otherwise).
    pub fn curl(&self, url: &str) -> Curl {
        Curl::new(url).args(["--noproxy", "", "-x", &self.proxy_url()])
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

    /// Publishes `snapshot` and waits until it is served.
    pub async fn swap(&self, snapshot: SidecarSnapshot) {
        let version = snapshot.version;
        self.snapshots.send_replace(Arc::new(routable(snapshot)));
        assert!(self.sidecar.wait_applied(version).await);
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

/// Sends `CONNECT <target> HTTP/1.1` to `proxy`; returns the stream and the response head.
pub async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "proxy closed during the response head: {head:?}");
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

/// A directory removed when dropped (for `curl --cacert` files).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("egress-sidecar-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads until the peer closes (or `WAIT` passes); returns what was read.
pub async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the peer did not close");
    out
}

/// One line of Istio's default TEXT access log, split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    pub request: String,
    pub code: String,
    pub flags: String,
    pub details: String,
    pub bytes_received: String,
    pub bytes_sent: String,
    pub xff: String,
    pub authority: String,
    pub upstream_host: String,
    pub cluster: String,
    pub downstream_local: String,
    pub sni: String,
    pub route: String,
}

impl AccessLine {
    /// Splits a line: `[time]`, then quoted strings and bare words (22 fields).
    pub fn parse(line: &str) -> AccessLine {
        let rest = line.strip_prefix('[').expect("line starts with [");
        let (_, mut rest) = rest.split_once("] ").expect("closing ]");
        let mut fields = Vec::new();
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
            21,
            "unexpected fields in {line:?}: {fields:?}"
        );
        let f = |i: usize| fields[i].clone();
        AccessLine {
            request: f(0),
            code: f(1),
            flags: f(2),
            details: f(3),
            bytes_received: f(6),
            bytes_sent: f(7),
            xff: f(10),
            authority: f(13),
            upstream_host: f(14),
            cluster: f(15),
            downstream_local: f(17),
            sni: f(19),
            route: f(20),
        }
    }
}
