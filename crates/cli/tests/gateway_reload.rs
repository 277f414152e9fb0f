//! Configuration changes reaching a running `egress gateway run` process: the cluster store's
//! change feed (apply, change, delete) and the mesh CA shared through the store; a directory
//! rewrite under keep-alive load that must lose no request; and an invalid file that is refused
//! while the last good snapshot keeps serving.
//!
//! Everything runs on a loopback block each test claims, with unprivileged ports: upstreams on
//! hosts 11 and up (ports the system picks) reached through `STATIC` ServiceEntry endpoints
//! carrying their real ports, gateways on hosts 1 and 2 (service port 80 → target 8080, health
//! on 15021). Clients are hyper HTTP/1.1 connections, so no external tool is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod gateway_process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::Cluster;
use egress_testkit::addrs::Block;
use egress_testkit::eventually;
use gateway_process::{
    GatewayProcess, MESH_CONFIG, NS, config_figures, connect, gateway_yaml, get, send,
    service_entry_yaml, upstream, virtual_service_yaml,
};
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

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
    std::fs::write(config.join("gateway.yaml"), gateway_yaml("lb", &[host])).unwrap();
    let entries = format!(
        "{}---\n{}",
        service_entry_yaml("upstream-a", "a.upstream.test", a),
        service_entry_yaml("upstream-b", "b.upstream.test", b)
    );
    std::fs::write(config.join("entries.yaml"), entries).unwrap();
    let vs = config.join("vs.yaml");
    write_atomic(
        &vs,
        &virtual_service_yaml("lb", "lb-route", host, "a.upstream.test"),
    );
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_follows_the_store_change_feed() {
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let host = "feed.example.com";
    let c = Cluster::new();
    c.namespace("aks-istio-system");
    c.namespace(NS);
    let all = format!(
        "{MESH_CONFIG}---\n{}---\n{}---\n{}---\n{}",
        gateway_yaml("lb", &[host]),
        service_entry_yaml("upstream-a", "a.upstream.test", a.local_addr()),
        service_entry_yaml("upstream-b", "b.upstream.test", b.local_addr()),
        virtual_service_yaml("lb", "lb-route", host, "a.upstream.test")
    );
    c.run_stdin(&["apply", "-f", "-"], &all).ok();

    let gw = GatewayProcess::start(Some(&c.store()), None, net.ip(1).into(), "lb");
    gw.wait_ready().await;
    gw.wait_route(host, 200, Some(a.local_addr())).await;
    assert_eq!(a.requests()[0].host.as_deref(), Some(host));

    // A changed VirtualService reaches the running gateway through the change feed.
    c.run_stdin(
        &["apply", "-f", "-"],
        &virtual_service_yaml("lb", "lb-route", host, "b.upstream.test"),
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
    let second = GatewayProcess::start(Some(&c.store()), None, net.ip(2).into(), "lb");
    second.wait_ready().await;
    c.run_stdin(
        &["apply", "-f", "-"],
        &virtual_service_yaml("lb", "lb-route", host, "a.upstream.test"),
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
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), HOST, a.local_addr(), b.local_addr());
    let gw = GatewayProcess::start(None, Some(&config), net.ip(1).into(), "lb");
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
        &virtual_service_yaml("lb", "lb-route", HOST, "b.upstream.test"),
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
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), HOST, a.local_addr(), b.local_addr());
    let gw = GatewayProcess::start(None, Some(&config), net.ip(1).into(), "lb");
    gw.wait_ready().await;
    gw.wait_route(HOST, 200, Some(a.local_addr())).await;

    // Route to B, but with a misspelt field on line 12: the VirtualService is refused and keeps its last good version.
    let vs = config.join("vs.yaml");
    let invalid = virtual_service_yaml("lb", "lb-route", HOST, "b.upstream.test")
        .replace("route:", "rooute:");
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
    let figures = config_figures(net.ip(1).into()).await.unwrap();
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
    write_atomic(
        &vs,
        &virtual_service_yaml("lb", "lb-route", HOST, "b.upstream.test"),
    );
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
    let figures = config_figures(net.ip(1).into()).await.unwrap();
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
