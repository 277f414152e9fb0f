//! A gateway short of file descriptors, in a child process started under
//! `prlimit --nofile=128` (the test runner's own limit is never touched): this test binary
//! re-executed to run [`child_gateway`], a whole proxy instance with one HTTP listener.
//!
//! * 150 silent connections against 128 descriptors: the oldest idle ones are shed, normal
//!   clients are served within 2 s, and the process stays quiet meanwhile.
//! * Every descriptor in use by busy connections (requests held by a stalled upstream) while
//!   more clients queue: accepting fails with EMFILE and nothing is idle to shed, and the
//!   accept loop backs off instead of spinning (CPU time from `/proc`, the failures counted);
//!   once the busy clients go away, normal clients are served again within 2 s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::accesslog::AccessLogger;
use egress_proxy::{Proxy, ProxyOptions};
use egress_testkit::{HttpUpstream, Reply};
use l7_support::{
    client_ip, dest, forward, gateway_ip, snapshot, static_cluster, upstream_ip, vhost,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

const HOST: &str = "fds.example";
const CLUSTER: &str = "outbound|80||fds.example";

/// The child's upstream address (set only for the child).
const CHILD_ENV: &str = "EGRESS_TEST_FD_CHILD_UPSTREAM";
/// When set, the child uses up every descriptor but this many once it is serving.
const FREE_ENV: &str = "EGRESS_TEST_FD_CHILD_FREE";

/// The gateway process of these tests; does nothing unless started by them.
#[test]
#[ignore = "not a test by itself: the gateway child process that the descriptor tests of this file start under `prlimit --nofile=128` (this binary re-run with `--ignored --exact child_gateway`)"]
fn child_gateway() {
    let Ok(upstream) = std::env::var(CHILD_ENV) else {
        return;
    };
    let upstream: SocketAddr = upstream.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let snap = snapshot(
            vec![vhost(HOST, vec![forward("r", vec![dest(CLUSTER, 1)])])],
            vec![static_cluster(HOST, 80, &[upstream])],
        );
        let (_tx, rx) = watch::channel(Arc::new(snap));
        let options = ProxyOptions {
            listen_address: Some(IpAddr::V4(gateway_ip())),
            metrics_port: Some(0),
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start(rx, options, None, AccessLogger::disabled())
            .await
            .unwrap();
        let mut stdin = tokio::io::stdin();
        let filler = std::env::var(FREE_ENV)
            .ok()
            .map(|n| use_descriptors_but(n.parse().unwrap()));
        println!(
            "READY {} {}",
            proxy.bound()[0].1,
            proxy.metrics_addr().unwrap()
        );
        // Until the test closes our standard input.
        let _ = stdin.read_to_end(&mut Vec::new()).await;
        drop(filler);
        proxy.shutdown(Duration::ZERO).await;
    });
}

/// Opens `/dev/null` until descriptors run out, then closes `free` of them.
fn use_descriptors_but(free: usize) -> Vec<std::fs::File> {
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    files.truncate(files.len().saturating_sub(free));
    files
}

/// The child process and its addresses.
struct Gateway {
    child: Child,
    /// The child's standard output, kept open so that it can finish writing.
    _out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pid: u32,
    addr: SocketAddr,
    metrics: SocketAddr,
}

async fn start_gateway(upstream: SocketAddr, free: Option<usize>) -> Gateway {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=128:128")
        .arg("--")
        .arg(exe)
        .args([
            "child_gateway",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, upstream.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(n) = free {
        cmd.env(FREE_ENV, n.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest's `test child_gateway ... ` precedes it on the line.
            if let Some(at) = line.find("READY ") {
                return line[at + 6..].trim().to_owned();
            }
        }
        panic!("the child ended before it was ready");
    })
    .await
    .expect("the child gateway starts");
    let (addr, metrics) = ready.split_once(' ').unwrap();
    Gateway {
        child,
        _out: lines,
        pid,
        addr: addr.parse().unwrap(),
        metrics: metrics.parse().unwrap(),
    }
}

impl Gateway {
    /// CPU time (user + system) the process has used.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line (12 and 13 after the name).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = clock_ticks_per_second();
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// `egress_downstream_limit_total{limit="<limit>"}` of the child.
    async fn limit_hits(&self, limit: &str) -> u64 {
        let mut s = connect(self.metrics).await;
        s.write_all(b"GET /stats/prometheus HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let series = format!("egress_downstream_limit_total{{limit=\"{limit}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .trim()
            .parse()
            .unwrap()
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(client_ip()), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// One GET on a new connection: the status, or `None` when the connection failed or
/// closed without a response.
async fn try_get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = connect(addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    String::from_utf8_lossy(out.get(9..12)?).parse().ok()
}

/// How long until a normal client gets 200 (new connections, one after another).
async fn time_to_200(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let limit = Duration::from_secs(20);
    while started.elapsed() < limit {
        let attempt = tokio::time::timeout(Duration::from_secs(5), try_get(addr, "/normal"));
        if let Ok(Some(200)) = attempt.await {
            return started.elapsed();
        }
    }
    panic!("no 200 within {limit:?}");
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn prlimit_available() -> bool {
    std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_starve_a_gateway_of_128_descriptors() {
    if !prlimit_available() {
        egress_testkit::skip("prlimit is not installed");
        return;
    }
    let up = HttpUpstream::start(SocketAddr::new(IpAddr::V4(upstream_ip()), 0))
        .await
        .unwrap();
    let gw = start_gateway(up.local_addr(), None).await;
    assert!(time_to_200(gw.addr).await < Duration::from_secs(2));
    let mut attackers = Vec::new();
    for _ in 0..150 {
        attackers.push(connect(gw.addr).await);
    }
    let idle_since = Instant::now();
    let served_after = time_to_200(gw.addr).await;
    assert!(
        served_after < Duration::from_secs(2),
        "normal client served {served_after:?} after the attackers went idle"
    );
    // A quiet window with the attackers connected: the process does not spin.
    let cpu_before = gw.cpu();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = gw.cpu() - cpu_before;
    let elapsed = window.elapsed();
    assert!(
        used < elapsed / 5,
        "{used:?} of CPU in {elapsed:?} while attackers held connections"
    );
    let shed = gw.limit_hits("idle_connection_shed").await;
    assert!(shed >= 100, "{shed} idle connections shed");
    eprintln!(
        "150 silent connections, 128 descriptors: 200 after {served_after:?} \
         ({:?} after the last attacker connected), {shed} shed, CPU {used:?} in {elapsed:?}",
        idle_since.elapsed()
    );
    drop(attackers);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_descriptor_busy_the_accept_loop_backs_off_and_recovers() {
    if !prlimit_available() {
        egress_testkit::skip("prlimit is not installed");
        return;
    }
    let up = HttpUpstream::start(SocketAddr::new(IpAddr::V4(upstream_ip()), 0))
        .await
        .unwrap();
    up.set_reply(
        "/hold",
        Reply::status(200).with_delay(Duration::from_secs(3600)),
    );
    const HOLDERS: usize = 10;
    // Each held request needs two descriptors: the client's and its upstream connection.
    let gw = start_gateway(up.local_addr(), Some(2 * HOLDERS)).await;
    let mut holders = Vec::new();
    for i in 0..HOLDERS {
        let mut s = connect(gw.addr).await;
        let req = format!("GET /hold HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        holders.push(s);
        up.wait_for_requests(i + 1, Duration::from_secs(20))
            .await
            .unwrap();
    }
    // More clients queue while no descriptor is left and nothing is idle.
    let mut queued = Vec::new();
    for _ in 0..30 {
        queued.push(connect(gw.addr).await);
    }
    let cpu_before = gw.cpu();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = gw.cpu() - cpu_before;
    let elapsed = window.elapsed();
    assert!(
        used < elapsed / 5,
        "{used:?} of CPU in {elapsed:?}: the accept loop spins"
    );
    // The busy clients go away; the queued ones are idle.
    drop(holders);
    let served_after = time_to_200(gw.addr).await;
    assert!(
        served_after < Duration::from_secs(2),
        "normal client served {served_after:?} after the busy clients left"
    );
    let failures = gw.limit_hits("descriptors_exhausted").await;
    assert!(
        // Backing off from 10 ms to 1 s makes about 10 in these 2-3 s; a fixed 50 ms pause
        // would make 50, a spinning loop thousands.
        (1..=25).contains(&failures),
        "{failures} failed accepts: backing off, not spinning"
    );
    eprintln!(
        "every descriptor busy: {failures} failed accepts, CPU {used:?} in {elapsed:?}; \
         200 {served_after:?} after the busy clients left"
    );
    drop(queued);
    gw.stop().await;
}
