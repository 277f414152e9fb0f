//! A sidecar's Istio metrics for its outbound traffic, scraped from its metrics port and its
//! prometheus port with a real HTTP client and read with a Prometheus text-format parser:
//! `reporter="source"` with the workload's own labels, a known host's cluster as
//! `destination_service`, `PassthroughCluster` and `BlackHoleCluster` for the outbound
//! policy's catch-alls (HTTP and TCP, named by the Host or SNI asked for), and a tunnel counted
//! as opened while it is open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sidecar_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_proxy::accesslog::AccessLogger;
use egress_proxy::metrics::LocalWorkload;
use egress_proxy::sidecar::{Sidecar, SidecarOptions, SidecarTelemetry};
use egress_snapshot::sidecar_view::routable;
use egress_snapshot::snapshot::{OutboundPolicy, SidecarSnapshot};
use egress_testkit::{HttpUpstream, TcpRecorder};
use prometheus_parse::{Sample, Scrape, Value};
use sidecar_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const CNN_80: &str = "outbound|80||edition.cnn.com";
const DB: &str = "outbound|9000||db.example.org";

/// The workload the sidecar reports as.
fn sleep_workload() -> LocalWorkload {
    LocalWorkload {
        workload: "sleep".into(),
        namespace: "default".into(),
        app: "sleep".into(),
        version: "v1".into(),
        canonical_service: "sleep".into(),
        canonical_revision: "v1".into(),
        cluster: "Kubernetes".into(),
        ..LocalWorkload::default()
    }
}

/// A sidecar serving `snapshot` with both metrics ports on ephemeral loopback ports.
async fn start(
    snapshot: SidecarSnapshot,
    options: SidecarOptions,
) -> (Sidecar, watch::Sender<Arc<egress_snapshot::Snapshot>>) {
    let (tx, rx) = watch::channel(Arc::new(routable(snapshot)));
    let telemetry = SidecarTelemetry {
        metrics_port: Some(0),
        prometheus_port: Some(0),
        workload: sleep_workload(),
    };
    let (logger, _lines) = AccessLogger::capture();
    let sidecar = Sidecar::start_with_telemetry(rx, options, telemetry, None, logger)
        .await
        .unwrap();
    (sidecar, tx)
}

/// One absolute-form request through the explicit proxy (`Connection: close`): the status.
async fn proxy_get(proxy: SocketAddr, url: &str, host: &str) -> u16 {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Fetches and parses `/stats/prometheus` from `addr`.
async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "GET /stats/prometheus HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = String::from_utf8(read_to_close(&mut stream).await).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one sample of `metric` matching `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(scrape, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:#?}");
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric} is not a number: {other:?}"),
    }
}

/// Every `istio_*` counter sample as (metric, sorted labels, value), for comparing scrapes.
fn counters(scrape: &Scrape) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("istio_") && s.metric.ends_with("_total"))
        .map(|s| {
            let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            (s.metric.clone(), labels.join(","), format!("{:?}", s.value))
        })
        .collect();
    out.sort();
    out
}

/// Retries `check` on fresh scrapes of `addr` until it holds (or `WAIT` passes).
async fn eventually(addr: SocketAddr, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(addr).await;
        if check(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::task::yield_now().await;
    }
}

/// The workload's own labels, as every sample of this sidecar carries them.
const SOURCE: [(&str, &str); 9] = [
    ("reporter", "source"),
    ("source_workload", "sleep"),
    ("source_workload_namespace", "default"),
    ("source_principal", "unknown"),
    ("source_app", "sleep"),
    ("source_version", "v1"),
    ("source_canonical_service", "sleep"),
    ("source_canonical_revision", "v1"),
    ("source_cluster", "Kubernetes"),
];

fn with_source<'a>(labels: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    SOURCE
        .iter()
        .copied()
        .chain(labels.iter().copied())
        .collect()
}

#[tokio::test]
async fn sidecar_metrics_name_the_known_host_passthrough_and_blackhole_on_both_ports() {
    let known = HttpUpstream::start(any_port()).await.unwrap();
    let other = HttpUpstream::start(any_port()).await.unwrap();
    let snap = |version, policy| {
        snapshot(
            version,
            policy,
            vec![(
                80,
                http_port(80, vec![vhost(CNN, 80, vec![forward("cnn", CNN_80)])]),
            )],
            vec![static_cluster(CNN_80, CNN, 80, &[known.local_addr()])],
        )
    };
    let names = ["unknown.example.org", "blocked.example.org"];
    let (sc, snapshots) = start(snap(1, OutboundPolicy::AllowAny), options(&names)).await;
    let proxy = sc.proxy_addr();
    let metrics = sc.metrics_addr().expect("metrics port");
    let prometheus = sc.prometheus_addr().expect("prometheus port");
    assert_ne!(metrics, prometheus);

    for _ in 0..2 {
        assert_eq!(proxy_get(proxy, "http://edition.cnn.com/", CNN).await, 200);
    }
    let port = other.local_addr().port();
    let passthrough = format!("http://unknown.example.org:{port}/x");
    let host = format!("unknown.example.org:{port}");
    assert_eq!(proxy_get(proxy, &passthrough, &host).await, 200);

    snapshots.send_replace(Arc::new(routable(snap(2, OutboundPolicy::RegistryOnly))));
    assert!(sc.wait_applied(2).await);
    let blocked = "blocked.example.org";
    assert_eq!(
        proxy_get(proxy, "http://blocked.example.org/", blocked).await,
        502
    );
    // A tunnel to an unknown TLS destination: accepted, then closed by the black hole.
    let (mut tunnel, head) = connect(proxy, "blocked.example.org:443").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request = b"GET / HTTP/1.1\r\nHost: blocked.example.org:443\r\n\r\n";
    tunnel.write_all(request).await.unwrap();
    assert!(read_to_close(&mut tunnel).await.is_empty());

    let tcp_closed = [("destination_service_name", "BlackHoleCluster")];
    let s = eventually(metrics, |s| {
        !find(s, "istio_tcp_connections_closed_total", &tcp_closed).is_empty()
    })
    .await;
    let requests = "istio_requests_total";
    let known_labels = with_source(&[
        ("destination_service", CNN),
        ("destination_service_name", CNN),
        ("destination_service_namespace", "unknown"),
        ("destination_workload", "unknown"),
        ("destination_principal", "unknown"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ]);
    assert_eq!(value(&s, requests, &known_labels), 2.0);
    let passthrough_labels = with_source(&[
        ("destination_service", "unknown.example.org"),
        ("destination_service_name", "PassthroughCluster"),
        ("response_code", "200"),
        ("connection_security_policy", "unknown"),
    ]);
    assert_eq!(value(&s, requests, &passthrough_labels), 1.0);
    let blackhole_labels = with_source(&[
        ("destination_service", blocked),
        ("destination_service_name", "BlackHoleCluster"),
        ("response_code", "502"),
        ("connection_security_policy", "unknown"),
    ]);
    assert_eq!(value(&s, requests, &blackhole_labels), 1.0);
    assert_eq!(find(&s, requests, &[]).len(), 3);

    // The black-holed connection is counted under the host it asked for.
    let tcp_labels = with_source(&[
        ("destination_service", blocked),
        ("destination_service_name", "BlackHoleCluster"),
        ("request_protocol", "tcp"),
        ("response_flags", "UH"),
        ("connection_security_policy", "unknown"),
    ]);
    assert_eq!(
        value(&s, "istio_tcp_connections_opened_total", &tcp_labels),
        1.0
    );
    assert_eq!(
        value(&s, "istio_tcp_connections_closed_total", &tcp_labels),
        1.0
    );
    assert_eq!(value(&s, "egress_config_version", &[]), 2.0);
    assert_eq!(value(&s, "istio_build", &[("component", "proxy")]), 1.0);

    // The prometheus port shows the same figures.
    let p = scrape(prometheus).await;
    assert_eq!(counters(&p), counters(&s));
    assert!(!counters(&s).is_empty());

    // A refused reload is visible on both.
    sc.record_reload(3, Err("Sidecar default/bad: invalid egress host".into()));
    for addr in [metrics, prometheus] {
        let s = scrape(addr).await;
        let refused = [("result", "refused")];
        assert_eq!(value(&s, "egress_config_reload_total", &refused), 1.0);
        assert_eq!(value(&s, "egress_config_last_reload_success", &[]), 0.0);
        assert_eq!(value(&s, "egress_config_last_reload_version", &[]), 3.0);
        assert_eq!(value(&s, "egress_config_version", &[]), 2.0);
    }
    sc.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_tunnel_counts_as_opened_while_it_is_open() {
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let snap = snapshot(
        1,
        OutboundPolicy::AllowAny,
        vec![(9000, tcp_port(DB, Some("db")))],
        vec![static_cluster(
            DB,
            "db.example.org",
            9000,
            &[recorder.local_addr()],
        )],
    );
    let (sc, _snapshots) = start(snap, options(&[])).await;
    let metrics = sc.metrics_addr().unwrap();
    let opened = "istio_tcp_connections_opened_total";
    let closed = "istio_tcp_connections_closed_total";

    // A TCP port's route, then a passthrough to a port the sidecar does not know.
    let passthrough = recorder.local_addr().to_string();
    for (target, name) in [
        ("db.example.org:9000", "db.example.org"),
        (passthrough.as_str(), "PassthroughCluster"),
    ] {
        let labels = [
            ("destination_service_name", name),
            ("request_protocol", "tcp"),
            ("response_flags", "-"),
        ];
        let (mut stream, head) = connect(sc.proxy_addr(), target).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(WAIT, stream.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&echo, b"ping");

        // Still open: opened 1, closed 0.
        let s = scrape(metrics).await;
        assert_eq!(value(&s, opened, &labels), 1.0, "{target}");
        assert_eq!(value(&s, closed, &labels), 0.0, "{target}");
        assert_eq!(value(&s, "istio_tcp_sent_bytes_total", &labels), 0.0);

        drop(stream);
        let s = eventually(metrics, |s| {
            find(s, closed, &labels)
                .first()
                .is_some_and(|x| matches!(x.value, Value::Counter(v) if v == 1.0))
        })
        .await;
        assert_eq!(value(&s, opened, &labels), 1.0, "{target}");
        assert_eq!(value(&s, closed, &labels), 1.0, "{target}");
        assert_eq!(value(&s, "istio_tcp_received_bytes_total", &labels), 4.0);
        assert_eq!(value(&s, "istio_tcp_sent_bytes_total", &labels), 4.0);
    }
    sc.shutdown(Duration::from_secs(1)).await;
}
