//! Configuration changes reaching a running `egress gateway run` process: the cluster store's
//! change feed (apply, change, delete) and the mesh CA shared through the store; a directory
//! rewrite under keep-alive load that must lose no request; and an invalid file that is refused
//! while the last good snapshot keeps serving.
//!
//! Everything runs on private loopback addresses with unprivileged ports: upstreams on
//! `127.0.91.x:0` reached through `STATIC` ServiceEntry endpoints carrying their real ports,
//! gateways on `127.0.92.x` (service port 80 → target 8080, health on 15021). Clients are hyper
//! HTTP/1.1 connections, so no external tool is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::Cluster;
use egress_testkit::{HttpUpstream, eventually};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// The header the test kit's upstreams put on every reply: their listening address.
const UPSTREAM_HEADER: &str = "x-testkit-upstream";
/// The gateway Service's port 80 is the container's 8080.
const TARGET_PORT: u16 = 8080;
const NS: &str = "aks-istio-egress";
const MESH_CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A Gateway selecting `istio=lbtest`, plain HTTP on port 80 for `host`.
fn gateway_yaml(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: lb-gateway\n  namespace: {NS}\nspec:\n  selector:\n    istio: lbtest\n  servers:\n  - port:\n      number: 80\n      name: http\n      protocol: HTTP\n    hosts:\n    - {host}\n"
    )
}

/// A `STATIC` ServiceEntry `name` whose one endpoint is `upstream` (its real port).
fn service_entry_yaml(name: &str, host: &str, upstream: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  hosts:\n  - {host}\n  location: MESH_EXTERNAL\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: {}\n    ports:\n      http: {}\n",
        upstream.ip(),
        upstream.port()
    )
}

/// A VirtualService bound to the gateway, routing `host` to `destination` port 80.
fn virtual_service_yaml(host: &str, destination: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: lb-route\n  namespace: {NS}\nspec:\n  hosts:\n  - {host}\n  gateways:\n  - lb-gateway\n  http:\n  - route:\n    - destination:\n        host: {destination}\n        port:\n          number: 80\n"
    )
}

/// A running `egress gateway run` process and what it printed.
struct GatewayProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    ip: IpAddr,
}

impl GatewayProcess {
    /// Starts `egress [--store S] gateway run [--config DIR]` listening on `ip`.
    fn start(store: Option<&Path>, config: Option<&Path>, ip: IpAddr) -> GatewayProcess {
        let mut cmd = Command::new(common::bin());
        cmd.env_remove("EGRESS_STORE");
        if let Some(store) = store {
            cmd.arg("--store").arg(store);
        }
        cmd.args(["gateway", "run"]);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd
            .args([
                "--namespace",
                NS,
                "--labels",
                "istio=lbtest,app=lbtest",
                "--service-account",
                "lbtest",
                "--revision",
                "asm-1-24",
                "--service-ports",
                &format!("80:{TARGET_PORT}"),
                "--listen-address",
                &ip.to_string(),
                "--drain-grace",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (log, _) = common::collect_output(&mut child);
        GatewayProcess { child, log, ip }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, TARGET_PORT)
    }

    fn lines(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    async fn wait_ready(&self) {
        let health = SocketAddr::new(self.ip, 15021);
        let ok = eventually(Duration::from_secs(30), || async move {
            matches!(
                get(health, "localhost", "/healthz/ready").await,
                Ok((200, _))
            )
        })
        .await;
        assert!(ok.is_ok(), "gateway never became ready:\n{}", self.lines());
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    async fn wait_log(&self, needles: &[&str]) -> String {
        let line = common::wait_for_line(&self.log, needles, Duration::from_secs(15)).await;
        line.unwrap_or_else(|| panic!("no log line containing {needles:?}:\n{}", self.lines()))
    }

    /// Waits until a request for `host` is answered with `status` by `upstream` (when given).
    async fn wait_route(&self, host: &str, status: u16, upstream: Option<SocketAddr>) {
        let addr = self.addr();
        let want = upstream.map(|u| u.to_string());
        let ok = eventually(Duration::from_secs(20), || {
            let want = want.clone();
            async move {
                match get(addr, host, "/").await {
                    Ok((s, from)) => s == status && (want.is_none() || from == want),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(
            ok.is_ok(),
            "{host} never answered {status} from {upstream:?}; last: {:?}\n{}",
            get(addr, host, "/").await,
            self.lines()
        );
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 connection to `addr`.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `GET path` with `Host: host` on `sender`; returns the status and the answering upstream.
async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> Result<(u16, Option<String>), String> {
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let from = resp
        .headers()
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok((status, from))
}

/// One request on a new connection.
async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, Option<String>), String> {
    let mut sender = connect(addr).await?;
    send(&mut sender, host, path).await
}

async fn upstream(addr: &str) -> HttpUpstream {
    HttpUpstream::start(addr.parse().unwrap()).await.unwrap()
}

/// Writes `text` to `path` atomically (a temporary file renamed over it).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A configuration directory: the mesh config, the Gateway, ServiceEntries for `a` and `b`, and
/// a VirtualService routing `host` to `a.upstream.test`.
fn config_dir(dir: &Path, host: &str, a: SocketAddr, b: SocketAddr) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), MESH_CONFIG).unwrap();
    std::fs::write(config.join("gateway.yaml"), gateway_yaml(host)).unwrap();
    let entries = format!(
        "{}---\n{}",
        service_entry_yaml("upstream-a", "a.upstream.test", a),
        service_entry_yaml("upstream-b", "b.upstream.test", b)
    );
    std::fs::write(config.join("entries.yaml"), entries).unwrap();
    let vs = config.join("vs.yaml");
    write_atomic(&vs, &virtual_service_yaml(host, "a.upstream.test"));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_follows_the_store_change_feed() {
    let a = upstream("127.0.91.1:0").await;
    let b = upstream("127.0.91.2:0").await;
    let host = "feed.example.com";
    let c = Cluster::new();
    c.namespace("aks-istio-system");
    c.namespace(NS);
    let all = format!(
        "{MESH_CONFIG}---\n{}---\n{}---\n{}---\n{}",
        gateway_yaml(host),
        service_entry_yaml("upstream-a", "a.upstream.test", a.local_addr()),
        service_entry_yaml("upstream-b", "b.upstream.test", b.local_addr()),
        virtual_service_yaml(host, "a.upstream.test")
    );
    c.run_stdin(&["apply", "-f", "-"], &all).ok();

    let gw = GatewayProcess::start(Some(&c.store()), None, ip("127.0.92.1"));
    gw.wait_ready().await;
    gw.wait_route(host, 200, Some(a.local_addr())).await;
    assert_eq!(a.requests()[0].host.as_deref(), Some(host));

    // A changed VirtualService reaches the running gateway through the change feed.
    c.run_stdin(
        &["apply", "-f", "-"],
        &virtual_service_yaml(host, "b.upstream.test"),
    )
    .ok();
    gw.wait_route(host, 200, Some(b.local_addr())).await;
    let line = gw.wait_log(&["outbound|80||b.upstream.test"]).await;
    assert!(line.contains("\" 200 "), "{line}");

    // Deleted: no route for the host any more.
    c.run(&["delete", "virtualservice", "lb-route", "-n", NS])
        .ok();
    gw.wait_route(host, 404, None).await;
    let line = gw.wait_log(&["\" 404 NR", host]).await;
    assert!(line.contains("route_not_found"), "{line}");

    // The mesh CA was created once, in the store; a second gateway on the same store reuses it.
    let secret = c
        .run(&[
            "get",
            "secret",
            "istio-ca-secret",
            "-n",
            "aks-istio-system",
            "-o",
            "name",
        ])
        .ok();
    assert_eq!(secret.stdout.trim(), "secret/istio-ca-secret");
    let fingerprint = |c: &Cluster| {
        let q = "jsonpath={.metadata.uid} {.metadata.resourceVersion} {.data.ca-cert\\.pem}";
        c.run(&[
            "get",
            "secret",
            "istio-ca-secret",
            "-n",
            "aks-istio-system",
            "-o",
            q,
        ])
        .ok()
        .stdout
    };
    let before = fingerprint(&c);
    assert!(before.len() > 100, "uid, version and root: {before:?}");
    let second = GatewayProcess::start(Some(&c.store()), None, ip("127.0.92.4"));
    second.wait_ready().await;
    c.run_stdin(
        &["apply", "-f", "-"],
        &virtual_service_yaml(host, "a.upstream.test"),
    )
    .ok();
    second.wait_route(host, 200, Some(a.local_addr())).await;
    gw.wait_route(host, 200, Some(a.local_addr())).await;
    assert_eq!(
        fingerprint(&c),
        before,
        "the second gateway reused the stored mesh CA"
    );
}

/// What one load task saw.
#[derive(Debug, Default)]
struct TaskStats {
    name: String,
    requests: usize,
    failures: Vec<String>,
    by_upstream: BTreeMap<String, usize>,
    /// (sent, received, answering upstream) per successful request, in order.
    answers: Vec<(Instant, Instant, String)>,
}

/// Shared state of the load.
struct Load {
    stop: AtomicBool,
    /// Tasks that have seen [`SWITCHED_AFTER`] answers from the new upstream.
    switched: AtomicUsize,
    answered: AtomicUsize,
}

const MAX_REQUESTS_PER_TASK: usize = 1500;
/// A task counts as switched once this many of its answers came from the new upstream.
const SWITCHED_AFTER: usize = 20;

/// Sends requests until told to stop, the cap, or the deadline; `keep_alive` reuses one
/// connection (reconnecting only when the server closed it between requests).
async fn load_task(
    name: String,
    addr: SocketAddr,
    host: &'static str,
    new_upstream: String,
    keep_alive: bool,
    load: Arc<Load>,
) -> TaskStats {
    let mut stats = TaskStats {
        name,
        ..TaskStats::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut from_new = 0;
    while !load.stop.load(Ordering::SeqCst)
        && stats.requests < MAX_REQUESTS_PER_TASK
        && Instant::now() < deadline
    {
        // A kept connection the server closed after its last response is not a lost request.
        if let Some(s) = sender.as_mut()
            && s.ready().await.is_err()
        {
            sender = None;
        }
        if sender.is_none() {
            match connect(addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    stats.requests += 1;
                    stats.failures.push(e);
                    continue;
                }
            }
        }
        let s = sender.as_mut().unwrap();
        stats.requests += 1;
        let sent = Instant::now();
        match send(s, host, &format!("/load/{}", stats.requests)).await {
            Ok((200, Some(from))) => {
                let received = Instant::now();
                *stats.by_upstream.entry(from.clone()).or_default() += 1;
                if from == new_upstream {
                    from_new += 1;
                    if from_new == SWITCHED_AFTER {
                        load.switched.fetch_add(1, Ordering::SeqCst);
                    }
                }
                stats.answers.push((sent, received, from));
                load.answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok((status, from)) => {
                stats
                    .failures
                    .push(format!("status {status} from {from:?}"));
                sender = None;
            }
            Err(e) => {
                stats.failures.push(e);
                sender = None;
            }
        }
        if !keep_alive {
            sender = None;
        }
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_under_load_loses_no_request() {
    const HOST: &str = "load.example.com";
    let a = upstream("127.0.91.3:0").await;
    let b = upstream("127.0.91.4:0").await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), HOST, a.local_addr(), b.local_addr());
    let gw = GatewayProcess::start(None, Some(&config), ip("127.0.92.2"));
    gw.wait_ready().await;
    gw.wait_route(HOST, 200, Some(a.local_addr())).await;
    let before = a.requests().len() + b.requests().len();

    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        switched: AtomicUsize::new(0),
        answered: AtomicUsize::new(0),
    });
    let b_name = b.local_addr().to_string();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let keep_alive = i < 4;
        let name = if keep_alive {
            format!("keep-alive-{i}")
        } else {
            "new-connection".to_owned()
        };
        tasks.push(tokio::spawn(load_task(
            name,
            gw.addr(),
            HOST,
            b_name.clone(),
            keep_alive,
            load.clone(),
        )));
    }
    // Every task is under way before the change.
    let started = eventually(Duration::from_secs(20), || {
        let n = load.answered.load(Ordering::SeqCst);
        async move { n >= 50 }
    })
    .await;
    assert!(started.is_ok(), "the load never got going:\n{}", gw.lines());

    write_atomic(
        &config.join("vs.yaml"),
        &virtual_service_yaml(HOST, "b.upstream.test"),
    );
    // Every task sees the new upstream (or runs out of its budget), then the load stops.
    let _ = eventually(Duration::from_secs(20), || {
        let all = load.switched.load(Ordering::SeqCst) == tasks.len()
            || tasks.iter().all(|t| t.is_finished());
        async move { all }
    })
    .await;
    load.stop.store(true, Ordering::SeqCst);
    let mut stats = Vec::new();
    for t in tasks {
        stats.push(t.await.unwrap());
    }

    let a_name = a.local_addr().to_string();
    let total: usize = stats.iter().map(|s| s.requests).sum();
    println!("{total} requests through the gateway; A = {a_name}, B = {b_name}");
    for s in &stats {
        println!(
            "  {:<15} {:>5} requests, {} failed, per upstream {:?}",
            s.name,
            s.requests,
            s.failures.len(),
            s.by_upstream
        );
    }
    for s in &stats {
        assert!(
            s.failures.is_empty(),
            "{}: {} failed requests, first: {:?}",
            s.name,
            s.failures.len(),
            s.failures.first()
        );
        assert!(
            s.by_upstream.contains_key(&a_name) && s.by_upstream.contains_key(&b_name),
            "{}: answered by both upstreams over the change: {:?}",
            s.name,
            s.by_upstream
        );
        // On each client, once B answered, nothing goes back to A.
        let first_b = s.answers.iter().position(|(_, _, f)| *f == b_name).unwrap();
        let back = s.answers[first_b..]
            .iter()
            .filter(|(_, _, f)| *f != b_name)
            .count();
        assert_eq!(back, 0, "{}: answers from A after B's first", s.name);
    }
    // Across clients: every request sent after B first answered anyone went to B.
    let switch = stats
        .iter()
        .flat_map(|s| s.answers.iter())
        .filter(|(_, _, f)| *f == b_name)
        .map(|(_, received, _)| *received)
        .min()
        .unwrap();
    let late_a = stats
        .iter()
        .flat_map(|s| s.answers.iter())
        .filter(|(sent, _, f)| *sent > switch && *f != b_name)
        .count();
    assert_eq!(late_a, 0, "requests sent after the switch answered by A");
    assert_eq!(
        a.requests().len() + b.requests().len(),
        before + total,
        "every request reached exactly one upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_keeps_last_good_snapshot() {
    const HOST: &str = "refuse.example.com";
    let a = upstream("127.0.91.5:0").await;
    let b = upstream("127.0.91.6:0").await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), HOST, a.local_addr(), b.local_addr());
    let gw = GatewayProcess::start(None, Some(&config), ip("127.0.92.3"));
    gw.wait_ready().await;
    gw.wait_route(HOST, 200, Some(a.local_addr())).await;

    // Route to B, but with a misspelt field on line 12: the VirtualService is refused and keeps its last good version.
    let vs = config.join("vs.yaml");
    let invalid = virtual_service_yaml(HOST, "b.upstream.test").replace("route:", "rooute:");
    write_atomic(&vs, &invalid);
    let line = gw.wait_log(&["configuration refused", "vs.yaml:"]).await;
    println!("refused: {line}");
    assert!(line.contains("rooute"), "{line}");
    let at = line.split("vs.yaml:").nth(1).unwrap();
    let line_no: usize = at.split(':').next().unwrap().parse().unwrap();
    assert_eq!(
        invalid.lines().nth(line_no - 1).map(str::trim),
        Some("- rooute:"),
        "the diagnostic points at the bad line: {line}"
    );
    for _ in 0..5 {
        let got = get(gw.addr(), HOST, "/").await.unwrap();
        assert_eq!(got, (200, Some(a.local_addr().to_string())));
    }
    assert!(b.requests().is_empty());
    // The refusal shows in the gateway's reload figures: version 1 still in service.
    let figures = reload_figures(ip("127.0.92.3")).await;
    assert_eq!(
        figures["egress_config_reload_total{result=ok}"], 1.0,
        "{figures:?}"
    );
    assert_eq!(
        figures["egress_config_reload_total{result=refused}"], 1.0,
        "{figures:?}"
    );
    assert_eq!(
        figures["egress_config_last_reload_success"], 0.0,
        "{figures:?}"
    );
    assert_eq!(figures["egress_config_version"], 1.0, "{figures:?}");

    // A fixed file is applied.
    write_atomic(&vs, &virtual_service_yaml(HOST, "b.upstream.test"));
    gw.wait_route(HOST, 200, Some(b.local_addr())).await;
    // Two snapshots were loaded: the first configuration and the fixed one, never the invalid.
    let log = gw.log.clone();
    let loaded = move || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("configuration loaded"))
            .count()
    };
    let two = eventually(Duration::from_secs(15), || {
        let n = loaded();
        async move { n == 2 }
    })
    .await;
    assert!(two.is_ok(), "{} loads:\n{}", loaded(), gw.lines());
    let figures = reload_figures(ip("127.0.92.3")).await;
    assert_eq!(
        figures["egress_config_reload_total{result=ok}"], 2.0,
        "{figures:?}"
    );
    assert_eq!(
        figures["egress_config_last_reload_success"], 1.0,
        "{figures:?}"
    );
    assert_eq!(figures["egress_config_version"], 2.0, "{figures:?}");
}

/// The `egress_config_*` samples of a gateway's `:15020/stats/prometheus`, parsed with a
/// Prometheus text-format parser, keyed `name{label=value}` (or `name`).
async fn reload_figures(ip: IpAddr) -> BTreeMap<String, f64> {
    let out = egress_testkit::Curl::new(format!("http://{ip}:15020/stats/prometheus"))
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let lines = out.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric.starts_with("egress_config_"))
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (key, value)
        })
        .collect()
}
