//! Shared helpers of the L4 integration tests: snapshots built by hand, a started proxy with a
//! captured access log, raw TLS and TCP clients.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::{Proxy, ProxyOptions};
use egress_snapshot::snapshot::{
    ChainAction, Cluster, Discovery, Endpoint, FilterChain, HeaderOps, LbPolicy, Listener,
    ListenerKind, PoolSettings, Snapshot, WeightedCluster,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

pub fn any_port() -> SocketAddr {
    SocketAddr::new(loopback(), 0)
}

/// Options for tests: everything on 127.0.0.1, ephemeral health port, `edition.cnn.com` and
/// `other.example.com` resolved to loopback, no system DNS.
pub fn options() -> ProxyOptions {
    ProxyOptions {
        listen_address: Some(loopback()),
        health_port: Some(0),
        upstream: egress_proxy::UpstreamOptions {
            hosts: vec![
                ("edition.cnn.com".into(), vec![loopback()]),
                ("other.example.com".into(), vec![loopback()]),
            ],
            ..Default::default()
        },
        ..ProxyOptions::default()
    }
}

pub fn cluster(name: &str, discovery: Discovery) -> Cluster {
    Cluster {
        name: name.into(),
        host: "edition.cnn.com".into(),
        port: 443,
        discovery,
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: Duration::from_secs(5),
        pool: PoolSettings::default(),
        outlier: None,
        external: true,
        tunnel: None,
    }
}

pub fn static_cluster(name: &str, endpoints: &[SocketAddr]) -> Cluster {
    cluster(
        name,
        Discovery::Static(
            endpoints
                .iter()
                .map(|a| Endpoint {
                    address: *a,
                    weight: 1,
                })
                .collect(),
        ),
    )
}

pub fn weighted(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.into(),
        weight: 1,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// A passthrough chain for `names` to `cluster`.
pub fn passthrough(names: &[&str], cluster: &str) -> FilterChain {
    FilterChain {
        server_names: names.iter().map(|n| n.to_string()).collect(),
        server_port: 443,
        tls: None,
        action: ChainAction::TcpProxy {
            clusters: vec![weighted(cluster)],
            route_name: None,
        },
    }
}

/// A chains listener on 127.0.0.1 with an ephemeral port.
pub fn chains_listener(name: &str, chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: name.into(),
        bind: Some(loopback()),
        port: 0,
        kind: ListenerKind::Chains(chains),
    }
}

pub fn snapshot(version: u64, listeners: Vec<Listener>, clusters: Vec<Cluster>) -> Snapshot {
    Snapshot {
        version,
        listeners,
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
        ..Snapshot::default()
    }
}

/// A running proxy, the sender of its snapshots, and its access-log lines.
pub struct Harness {
    pub proxy: Proxy,
    pub snapshots: watch::Sender<Arc<Snapshot>>,
    pub log: CapturedLines,
}

impl Harness {
    pub async fn start(snapshot: Snapshot, options: ProxyOptions) -> Harness {
        Harness::start_with_identity(snapshot, options, None).await
    }

    pub async fn start_with_identity(
        snapshot: Snapshot,
        options: ProxyOptions,
        identity: Option<Arc<egress_identity::IdentityHandle>>,
    ) -> Harness {
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let (logger, log) = AccessLogger::capture();
        let proxy = Proxy::start(rx, options, identity, logger).await.unwrap();
        Harness {
            proxy,
            snapshots: tx,
            log,
        }
    }

    /// The address listener `name` is bound to.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.proxy
            .bound()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("listener {name} not bound: {:?}", self.proxy.bound()))
    }

    /// Sends `snapshot` and waits until the proxy applied it.
    pub async fn apply(&self, snapshot: Snapshot) {
        let version = snapshot.version;
        self.snapshots.send_replace(Arc::new(snapshot));
        tokio::time::timeout(WAIT, self.proxy.wait_applied(version))
            .await
            .unwrap();
    }

    /// Waits for `n` access-log lines and returns them.
    pub async fn lines(&self, n: usize) -> Vec<String> {
        let lines = self.log.wait_for(n, WAIT).await;
        assert!(
            lines.len() >= n,
            "expected {n} access-log lines, got {lines:?}"
        );
        lines
    }
}

/// The first flight of a rustls client for `sni` (a real ClientHello).
pub fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Connects, sends a ClientHello for `sni`, and returns the stream and the hello bytes.
pub async fn hello_conn(addr: SocketAddr, sni: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let hello = client_hello(sni);
    stream.write_all(&hello).await.unwrap();
    (stream, hello)
}

/// Writes `data` and reads exactly as many bytes back (through an echo upstream).
pub async fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    read_exact(stream, data.len()).await
}

pub async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

/// True when the peer closes the connection (EOF or reset) without sending anything.
pub async fn closed_without_data(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
    {
        Ok(0) | Err(_) => true,
        Ok(_) => false,
    }
}

/// `GET path` over plain HTTP/1.1 with `Connection: close`; returns the status code.
pub async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
pub async fn dead_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A rustls client config trusting `ca_pem`.
pub fn tls_client(ca_pem: &str, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in egress_identity::parse_certs(ca_pem, "test CA").unwrap() {
        roots.add(der).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}
