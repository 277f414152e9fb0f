//! Loopback throughput and latency of the gateway's two hot paths, against the same load sent
//! straight to the upstream (the physical limit of this machine and this load generator).
//!
//! Scenarios (all on 127.0.0.1, one process):
//! - plaintext HTTP/1.1 routed by Host through an `Http` listener, keep-alive, 1 KB responses;
//! - TLS passthrough routed by SNI through a `Chains` listener: HTTP/1.1 over established TLS
//!   connections (keep-alive), and one full TLS handshake per request (no resumption).
//!
//! Each scenario is a closed loop: every client sends its next request as soon as the previous
//! one is answered. Figures are printed, never asserted. Load generator, proxy and upstream
//! share the machine's cores, so only ratios within one run mean anything.
//!
//! Knobs (environment): `BENCH_SECS` (measured seconds per scenario, default 8),
//! `BENCH_WARMUP_SECS` (default 1), `BENCH_CONNS` (keep-alive connections, default 32),
//! `BENCH_HANDSHAKE_CLIENTS` (default 4).

// A benchmark measures wall-clock time on purpose.
#![allow(clippy::disallowed_types)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::{Proxy, ProxyOptions};
use egress_snapshot::snapshot::{
    ChainAction, Cluster, Discovery, Endpoint, FilterChain, Forward, HeaderOps, LbPolicy, Listener,
    ListenerKind, PoolSettings, RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, Snapshot,
    VirtualHost, WeightedCluster,
};
use egress_testkit::CertFactory;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The virtual host / SNI name every request uses.
const HOST: &str = "bench.example.com";
/// Response body size.
const BODY_LEN: usize = 1024;
/// Upper bound of any single request (connect, handshake, response).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of requests per keep-alive scenario (memory bound).
const MAX_SAMPLES: usize = 3_000_000;
/// Upper bound of new connections per handshake scenario (ephemeral-port bound). A client
/// that reaches its share stops; the rate is then taken over the shortened window.
const MAX_HANDSHAKES: usize = 40_000;

static BODY: [u8; BODY_LEN] = [b'x'; BODY_LEN];

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Durations and concurrency of the run.
#[derive(Debug, Clone, Copy)]
struct Settings {
    warmup: Duration,
    measure: Duration,
    conns: usize,
    handshake_clients: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let num = |name: &str, default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Settings {
            warmup: Duration::from_secs(num("BENCH_WARMUP_SECS", 1)),
            measure: Duration::from_secs(num("BENCH_SECS", 8).max(1)),
            conns: num("BENCH_CONNS", 32).clamp(1, 1024) as usize,
            handshake_clients: num("BENCH_HANDSHAKE_CLIENTS", 4).clamp(1, 64) as usize,
        }
    }
}

fn runtime(workers: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Upstream: a lean hyper HTTP/1.1 server answering 200 with 1 KB, optionally behind TLS.

async fn serve_upstream(listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_h1(stream).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await
                    {
                        serve_h1(stream).await;
                    }
                }
            }
        });
    }
}

async fn serve_h1<I>(io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(&BODY))))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

// ---------------------------------------------------------------------------------------------
// Snapshot: an HTTP listener with one vhost and a Chains listener with one passthrough chain.

fn static_cluster(name: &str, port: u16, endpoint: SocketAddr) -> Cluster {
    Cluster {
        name: name.to_owned(),
        host: HOST.to_owned(),
        port,
        discovery: Discovery::Static(vec![Endpoint {
            address: endpoint,
            weight: 1,
        }]),
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: Duration::from_secs(5),
        pool: PoolSettings::default(),
        outlier: None,
        external: true,
        tunnel: None,
    }
}

fn weighted(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight: 1,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

fn snapshot(http_upstream: SocketAddr, tls_upstream: SocketAddr) -> Snapshot {
    let http_cluster = format!("outbound|80||{HOST}");
    let tls_cluster = format!("outbound|443||{HOST}");
    let route = Route {
        name: String::new(),
        matcher: RouteMatch::default(),
        action: RouteAction::Forward(Forward {
            clusters: vec![weighted(&http_cluster)],
            timeout: None,
            retry: Some(RetryPolicy::istio_default()),
            rewrite_uri: None,
            rewrite_authority: None,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    };
    let http = Listener {
        name: "127.0.0.1_8080".into(),
        bind: Some(loopback()),
        port: 0,
        kind: ListenerKind::Http(RouteConfig {
            name: "http.8080".into(),
            virtual_hosts: vec![VirtualHost {
                name: format!("{HOST}:80"),
                domains: vec![HOST.to_owned()],
                routes: vec![route],
                require_tls: false,
            }],
        }),
    };
    let tls = Listener {
        name: "127.0.0.1_8443".into(),
        bind: Some(loopback()),
        port: 0,
        kind: ListenerKind::Chains(vec![FilterChain {
            server_names: vec![HOST.to_owned()],
            server_port: 443,
            tls: None,
            action: ChainAction::TcpProxy {
                clusters: vec![weighted(&tls_cluster)],
                route_name: None,
            },
        }]),
    };
    let clusters = [
        static_cluster(&http_cluster, 80, http_upstream),
        static_cluster(&tls_cluster, 443, tls_upstream),
    ];
    Snapshot {
        version: 1,
        listeners: vec![http, tls],
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
        ..Snapshot::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator.

/// Where a client sends its requests: plaintext, or TLS with SNI `HOST`.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

type Sender = SendRequest<Empty<Bytes>>;

/// Opens a connection (TCP, then TLS if asked) and an HTTP/1.1 client on it.
async fn open(target: &Target) -> Result<Sender, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    match &target.tls {
        None => handshake_h1(stream).await,
        Some(connector) => {
            let name = rustls_pki_types::ServerName::try_from(HOST)
                .map_err(|e| e.to_string())?
                .to_owned();
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            handshake_h1(stream).await
        }
    }
}

async fn handshake_h1<I>(io: I) -> Result<Sender, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("h1 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One `GET /` with `Host: HOST`; checks the status and the body length.
async fn request(sender: &mut Sender) -> Result<(), String> {
    sender.ready().await.map_err(|e| format!("ready: {e}"))?;
    let req = http::Request::builder()
        .uri("/")
        .header(http::header::HOST, HOST)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != http::StatusCode::OK || body.len() != BODY_LEN {
        return Err(format!("status {status}, {} body bytes", body.len()));
    }
    Ok(())
}

/// What one client saw during the measured window.
#[derive(Default)]
struct Samples {
    /// Completion time and latency of each request recorded.
    latencies: Vec<(Instant, Duration)>,
    /// When a client stopped early because it reached its share of the cap.
    capped_at: Option<Instant>,
    errors: u64,
    first_error: Option<String>,
}

impl Samples {
    fn error(&mut self, in_window: bool, err: String) {
        if in_window {
            self.errors += 1;
        }
        self.first_error.get_or_insert(err);
    }

    fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.capped_at = match (self.capped_at, other.capped_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The phases of a scenario, shared by its clients.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

impl Window {
    fn new(settings: &Settings) -> Window {
        let measure_from = Instant::now() + settings.warmup;
        Window {
            measure_from,
            until: measure_from + settings.measure,
        }
    }

    fn records(&self, started: Instant, done: Instant) -> bool {
        started >= self.measure_from && done <= self.until
    }
}

/// Keep-alive client: one connection, requests back to back; reconnects after an error.
async fn keepalive_client(target: Target, window: Window, cap: usize) -> Samples {
    let mut samples = Samples::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < window.until && samples.latencies.len() < cap {
        let started = Instant::now();
        let in_window = started >= window.measure_from;
        let mut s = match sender.take() {
            Some(s) => s,
            None => match tokio::time::timeout(REQUEST_TIMEOUT, open(&target)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    samples.error(in_window, e);
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(_) => {
                    samples.error(in_window, "connect timed out".into());
                    continue;
                }
            },
        };
        let started = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, request(&mut s)).await {
            Ok(Ok(())) => {
                let done = Instant::now();
                if window.records(started, done) {
                    samples.latencies.push((done, done - started));
                }
                sender = Some(s);
            }
            Ok(Err(e)) => samples.error(in_window, e),
            Err(_) => samples.error(in_window, "request timed out".into()),
        }
    }
    if samples.latencies.len() >= cap {
        samples.capped_at = Some(Instant::now());
    }
    samples
}

/// Handshake client: a new connection (and TLS handshake) per request, closed afterwards.
async fn new_conn_client(target: Target, window: Window, cap: usize) -> Samples {
    let mut samples = Samples::default();
    let mut opened = 0usize;
    while Instant::now() < window.until && opened < cap {
        opened += 1;
        let started = Instant::now();
        let in_window = started >= window.measure_from;
        let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let mut s = open(&target).await?;
            request(&mut s).await
        })
        .await;
        match result {
            Ok(Ok(())) => {
                let done = Instant::now();
                if window.records(started, done) {
                    samples.latencies.push((done, done - started));
                }
            }
            Ok(Err(e)) => samples.error(in_window, e),
            Err(_) => samples.error(in_window, "timed out".into()),
        }
    }
    if opened >= cap {
        samples.capped_at = Some(Instant::now());
    }
    samples
}

/// How the load is applied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    KeepAlive,
    NewConnection,
}

/// Runs `clients` closed-loop clients against `target` and gathers their samples.
async fn run_load(target: Target, mode: Mode, clients: usize, settings: &Settings) -> Figures {
    let window = Window::new(settings);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            match mode {
                Mode::KeepAlive => keepalive_client(target, window, MAX_SAMPLES / clients).await,
                Mode::NewConnection => {
                    new_conn_client(target, window, MAX_HANDSHAKES / clients).await
                }
            }
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        if let Ok(samples) = task.await {
            all.merge(samples);
        }
    }
    Figures::from_samples(all, window)
}

/// Figures of one scenario and path.
struct Figures {
    rate: f64,
    capped: bool,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    errors: u64,
    first_error: Option<String>,
}

impl Figures {
    fn from_samples(samples: Samples, window: Window) -> Figures {
        // A capped run ends when its first client stopped; later completions are not counted.
        let end = samples
            .capped_at
            .map_or(window.until, |at| at.min(window.until));
        let span = end.saturating_duration_since(window.measure_from);
        let mut latencies: Vec<Duration> = samples
            .latencies
            .iter()
            .filter(|(done, _)| *done <= end)
            .map(|(_, latency)| *latency)
            .collect();
        latencies.sort_unstable();
        let pct = |p: f64| -> Duration {
            let n = latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            latencies[rank - 1]
        };
        Figures {
            rate: latencies.len() as f64 / span.as_secs_f64().max(1e-3),
            capped: samples.capped_at.is_some(),
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            errors: samples.errors,
            first_error: samples.first_error,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn print_row(scenario: &str, path: &str, r: &Figures, direct: Option<&Figures>) {
    let ratio = match direct {
        Some(d) if d.rate > 0.0 => format!("{:.2}", r.rate / d.rate),
        _ => "-".into(),
    };
    println!(
        "{scenario:<38} {path:<8} {:>9.0} {:>8} {:>8} {:>8} {:>6} {:>6}",
        r.rate,
        ms(r.p50),
        ms(r.p90),
        ms(r.p99),
        r.errors,
        ratio
    );
    if r.capped {
        println!("    ({path}: request cap reached; rate over the shortened window)");
    }
    if let Some(e) = &r.first_error {
        println!("    first error ({path}): {e}");
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let settings = Settings::from_env();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    let upstream_rt = runtime(1, "bench-upstream");
    let proxy_rt = runtime(2, "bench-proxy");
    let load_rt = runtime(2, "bench-load");

    // Upstreams.
    let certs = CertFactory::new().expect("test CA");
    let server_config = certs
        .server_config(&[HOST], None, Vec::new())
        .expect("server config");
    let (http_up, tls_up) = upstream_rt.block_on(async {
        let http = TcpListener::bind((loopback(), 0)).await.unwrap();
        let tls = TcpListener::bind((loopback(), 0)).await.unwrap();
        let addrs = (http.local_addr().unwrap(), tls.local_addr().unwrap());
        tokio::spawn(serve_upstream(http, None));
        tokio::spawn(serve_upstream(
            tls,
            Some(TlsAcceptor::from(Arc::clone(&server_config))),
        ));
        addrs
    });

    // Client TLS: trusts the test CA; no session resumption, so every new connection is a
    // full handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.ca().root_der().clone()).unwrap();
    let mut client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client_config.resumption = rustls::client::Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(client_config));

    // The gateway.
    let (snapshots, rx) = watch::channel(Arc::new(snapshot(http_up, tls_up)));
    let options = ProxyOptions {
        listen_address: Some(loopback()),
        health_port: None,
        ..ProxyOptions::default()
    };
    let proxy = proxy_rt
        .block_on(Proxy::start(rx, options, None, AccessLogger::disabled()))
        .expect("proxy starts");
    let bound = proxy.bound();
    let gw = |name: &str| {
        bound
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .expect("listener bound")
    };
    let (gw_http, gw_tls) = (gw("127.0.0.1_8080"), gw("127.0.0.1_8443"));

    println!();
    println!("egress gateway loopback benchmark");
    println!(
        "machine: {cores} cores, shared by load generator, proxy and upstream: compare ratios \
         within this run only"
    );
    println!(
        "runtimes: proxy multi-thread 2 workers; load generator multi-thread 2 workers; \
         upstream (hyper HTTP/1.1, {BODY_LEN}-byte 200) multi-thread 1 worker"
    );
    println!(
        "gateway: Proxy::start, access log disabled; http listener {gw_http} (Host {HOST}), \
         passthrough listener {gw_tls} (SNI {HOST}); upstreams {http_up} / {tls_up}"
    );
    println!(
        "load: closed loop, {}s warm-up then {}s measured per row; TLS 1.3 (rustls/ring, \
         ECDSA P-256), handshakes without resumption",
        settings.warmup.as_secs(),
        settings.measure.as_secs()
    );
    println!("latency: per request (new-conn rows: TCP connect + TLS handshake + request)");
    println!();
    println!(
        "{:<38} {:<8} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "scenario", "path", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "ratio"
    );

    let plain = |addr| Target { addr, tls: None };
    let tls = |addr| Target {
        addr,
        tls: Some(connector.clone()),
    };
    let rows = [
        (
            format!("http keep-alive 1KB (c={})", settings.conns),
            Mode::KeepAlive,
            settings.conns,
            plain(gw_http),
            plain(http_up),
        ),
        (
            format!("tls passthrough keep-alive 1KB (c={})", settings.conns),
            Mode::KeepAlive,
            settings.conns,
            tls(gw_tls),
            tls(tls_up),
        ),
        (
            format!("tls new conn per req (c={})", settings.handshake_clients),
            Mode::NewConnection,
            settings.handshake_clients,
            tls(gw_tls),
            tls(tls_up),
        ),
    ];
    for (scenario, mode, clients, gateway, direct) in rows {
        let g = load_rt.block_on(run_load(gateway, mode, clients, &settings));
        let d = load_rt.block_on(run_load(direct, mode, clients, &settings));
        print_row(&scenario, "gateway", &g, Some(&d));
        print_row(&scenario, "direct", &d, None);
    }
    println!();
    println!("ratio = gateway req/s / direct req/s");

    // Stop everything: drain the proxy, then drop the runtimes (aborting the upstreams and any
    // connection tasks left).
    proxy_rt.block_on(proxy.shutdown(Duration::from_secs(1)));
    drop(snapshots);
    load_rt.shutdown_timeout(Duration::from_secs(2));
    proxy_rt.shutdown_timeout(Duration::from_secs(2));
    upstream_rt.shutdown_timeout(Duration::from_secs(2));
}
