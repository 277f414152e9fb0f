//! The metrics port of a started gateway: known HTTP requests (routed 200s and unrouted 404
//! `NR`s) and a TLS passthrough connection, then `/stats/prometheus` fetched with a real HTTP
//! client and read with a Prometheus text-format parser; counters, histograms and Istio's
//! label values are checked, plus the gateway's own figures; the prometheus port (Envoy's
//! 15090) shows the same, and reported reloads (a refused one) show on both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use egress_proxy::metrics::ReloadResult;
use egress_snapshot::snapshot::{
    Forward, HeaderOps, Listener, ListenerKind, RetryPolicy, Route, RouteAction, RouteConfig,
    RouteMatch, VirtualHost,
};
use egress_testkit::{HttpUpstream, Reply, TcpRecorder};
use http_body_util::{BodyExt, Empty};
use l4_support::{
    Harness, any_port, chains_listener, hello_conn, loopback, options, passthrough, read_exact,
    snapshot, static_cluster, weighted,
};
use prometheus_parse::{Sample, Scrape, Value};
use tokio::io::AsyncWriteExt;

const CNN: &str = "edition.cnn.com";
const HTTP_CLUSTER: &str = "outbound|80||edition.cnn.com";
const TLS_CLUSTER: &str = "outbound|443||edition.cnn.com";

/// An HTTP listener routing `edition.cnn.com` to `HTTP_CLUSTER`; other hosts get 404 `NR`.
fn http_listener() -> Listener {
    let route = Route {
        name: "istio-system.cnn.0".into(),
        matcher: RouteMatch::default(),
        action: RouteAction::Forward(Forward {
            clusters: vec![weighted(HTTP_CLUSTER)],
            timeout: None,
            retry: Some(RetryPolicy::istio_default()),
            rewrite_uri: None,
            rewrite_authority: None,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    };
    Listener {
        name: "0.0.0.0_8080".into(),
        bind: Some(loopback()),
        port: 0,
        kind: ListenerKind::Http(RouteConfig {
            name: "http.8080".into(),
            virtual_hosts: vec![VirtualHost {
                name: format!("{CNN}:80"),
                domains: vec![CNN.into()],
                routes: vec![route],
                require_tls: false,
            }],
        }),
    }
}

/// One `GET` over a fresh connection: the status and the body.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(path)
        .header("host", host)
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(l4_support::WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Fetches and parses `/stats/prometheus`.
async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = get(addr, "metrics", "/stats/prometheus").await;
    assert_eq!(status, 200, "{body}");
    eprintln!("{body}");
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

/// The cumulative count of the `le` bucket of the one histogram sample matching `labels`.
fn bucket(scrape: &Scrape, metric: &str, labels: &[(&str, &str)], le: f64) -> f64 {
    let found = find(scrape, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:#?}");
    let Value::Histogram(buckets) = &found[0].value else {
        panic!("{metric} is not a histogram: {:?}", found[0].value);
    };
    buckets
        .iter()
        .find(|b| b.less_than == le)
        .unwrap_or_else(|| panic!("{metric} has no bucket {le}: {buckets:?}"))
        .count
}

#[tokio::test]
async fn metrics_port_reports_istio_metrics_for_requests_and_connections() {
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    upstream.set_reply("/ok", Reply::status(200).with_body("ok\n"));
    let echo = TcpRecorder::start(any_port()).await.unwrap();
    let listeners = vec![
        http_listener(),
        chains_listener("0.0.0.0_8443", vec![passthrough(&[CNN], TLS_CLUSTER)]),
    ];
    let mut http_cluster = static_cluster(HTTP_CLUSTER, &[upstream.local_addr()]);
    http_cluster.port = 80;
    let clusters = vec![
        http_cluster,
        static_cluster(TLS_CLUSTER, &[echo.local_addr()]),
    ];
    let mut opts = options();
    opts.metrics_port = Some(0);
    let h = Harness::start(snapshot(3, listeners, clusters), opts).await;
    let metrics = h.proxy.metrics_addr().expect("metrics port bound");
    let http = h.addr("0.0.0.0_8080");

    for _ in 0..3 {
        assert_eq!(get(http, CNN, "/ok").await, (200, "ok\n".to_owned()));
    }
    for _ in 0..2 {
        assert_eq!(get(http, "nowhere.example.com", "/").await.0, 404);
    }
    let (mut tcp, hello) = hello_conn(h.addr("0.0.0.0_8443"), CNN).await;
    assert_eq!(read_exact(&mut tcp, hello.len()).await, hello);
    assert_eq!(l4_support::echo(&mut tcp, b"ping").await, b"ping");
    tcp.shutdown().await.unwrap();
    assert!(l4_support::closed_without_data(&mut tcp).await);
    h.lines(6).await;

    let s = scrape(metrics).await;
    let ok = [
        ("reporter", "source"),
        ("source_principal", "unknown"),
        ("source_workload", "unknown"),
        ("destination_service", CNN),
        ("destination_service_name", CNN),
        ("destination_service_namespace", "unknown"),
        ("destination_workload", "unknown"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
        ("grpc_response_status", ""),
    ];
    assert_eq!(value(&s, "istio_requests_total", &ok), 3.0);
    let nr = [
        ("reporter", "source"),
        ("destination_service", "unknown"),
        ("request_protocol", "http"),
        ("response_code", "404"),
        ("response_flags", "NR"),
        ("connection_security_policy", "unknown"),
    ];
    assert_eq!(value(&s, "istio_requests_total", &nr), 2.0);
    assert_eq!(find(&s, "istio_requests_total", &[]).len(), 2);

    let duration = "istio_request_duration_milliseconds";
    assert_eq!(bucket(&s, duration, &ok, f64::INFINITY), 3.0);
    assert_eq!(bucket(&s, duration, &nr, f64::INFINITY), 2.0);
    // "ok\n" is 3 bytes: above the 1-byte bucket, within the 10-byte one.
    assert_eq!(bucket(&s, "istio_response_bytes", &ok, 1.0), 0.0);
    assert_eq!(bucket(&s, "istio_response_bytes", &ok, 10.0), 3.0);
    assert_eq!(bucket(&s, "istio_request_bytes", &ok, 1.0), 3.0);

    let tcp_labels = [
        ("reporter", "source"),
        ("destination_service", CNN),
        ("destination_service_name", CNN),
        ("request_protocol", "tcp"),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ];
    let opened = "istio_tcp_connections_opened_total";
    assert_eq!(value(&s, opened, &tcp_labels), 1.0);
    let closed = "istio_tcp_connections_closed_total";
    assert_eq!(value(&s, closed, &tcp_labels), 1.0);
    let bytes = (hello.len() + 4) as f64;
    assert_eq!(
        value(&s, "istio_tcp_received_bytes_total", &tcp_labels),
        bytes
    );
    assert_eq!(value(&s, "istio_tcp_sent_bytes_total", &tcp_labels), bytes);
    let tcp_sample = &find(&s, opened, &tcp_labels)[0];
    assert!(tcp_sample.labels.get("response_code").is_none());

    assert_eq!(
        value(&s, "istio_build", &[("component", "proxy")]),
        1.0,
        "istio_build"
    );
    assert_eq!(value(&s, "egress_config_version", &[]), 3.0);
    assert!(value(&s, "egress_active_connections", &[]) >= 0.0);
    assert_eq!(
        value(&s, "egress_config_reload_total", &[("result", "ok")]),
        0.0
    );

    h.proxy.metrics().record_reload(ReloadResult::Refused);
    let s = scrape(metrics).await;
    assert_eq!(
        value(&s, "egress_config_reload_total", &[("result", "refused")]),
        1.0
    );
    assert_eq!(value(&s, "egress_config_last_reload_success", &[]), 0.0);
    h.proxy.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn metrics_port_also_answers_readiness_and_the_health_port_has_no_metrics() {
    let mut opts = options();
    opts.metrics_port = Some(0);
    let h = Harness::start(snapshot(1, vec![], vec![]), opts).await;
    let metrics = h.proxy.metrics_addr().unwrap();
    let health = h.proxy.health_addr().unwrap();
    assert_eq!(
        l4_support::http_status(metrics, "/healthz/ready").await,
        200
    );
    assert_eq!(
        l4_support::http_status(metrics, "/stats/prometheus").await,
        200
    );
    assert_eq!(
        l4_support::http_status(health, "/stats/prometheus").await,
        404
    );
    let s = scrape(metrics).await;
    assert_eq!(value(&s, "egress_config_version", &[]), 1.0);
    assert!(find(&s, "istio_requests_total", &[]).is_empty());
}

#[tokio::test]
async fn metrics_port_is_off_by_default() {
    let h = Harness::start(snapshot(1, vec![], vec![]), options()).await;
    assert!(h.proxy.metrics_addr().is_none());
    assert!(
        h.proxy
            .metrics()
            .render()
            .contains("egress_config_version 1\n")
    );
}

#[tokio::test]
async fn the_prometheus_port_serves_the_same_figures_and_reloads_show_on_both() {
    let upstream = HttpUpstream::start(any_port()).await.unwrap();
    upstream.set_reply("/ok", Reply::status(200).with_body("ok\n"));
    let mut http_cluster = static_cluster(HTTP_CLUSTER, &[upstream.local_addr()]);
    http_cluster.port = 80;
    let mut opts = options();
    opts.metrics_port = Some(0);
    opts.prometheus_port = Some(0);
    let h = Harness::start(snapshot(3, vec![http_listener()], vec![http_cluster]), opts).await;
    let metrics = h.proxy.metrics_addr().expect("metrics port bound");
    let prometheus = h.proxy.prometheus_addr().expect("prometheus port bound");
    assert_ne!(metrics, prometheus);
    let http = h.addr("0.0.0.0_8080");
    for _ in 0..2 {
        assert_eq!(get(http, CNN, "/ok").await.0, 200);
    }
    assert_eq!(get(http, "nowhere.example.com", "/").await.0, 404);
    h.lines(3).await;

    let ok = [("destination_service", CNN), ("response_code", "200")];
    let nr = [("response_code", "404"), ("response_flags", "NR")];
    for addr in [metrics, prometheus] {
        let s = scrape(addr).await;
        assert_eq!(value(&s, "istio_requests_total", &ok), 2.0);
        assert_eq!(value(&s, "istio_requests_total", &nr), 1.0);
        let duration = "istio_request_duration_milliseconds";
        assert_eq!(bucket(&s, duration, &ok, f64::INFINITY), 2.0);
        assert_eq!(value(&s, "egress_config_version", &[]), 3.0);
        assert!(find(&s, "egress_config_last_reload_success", &[]).is_empty());
    }

    h.proxy
        .record_reload(4, Err("VirtualService default/cnn: invalid".into()));
    for addr in [metrics, prometheus] {
        let s = scrape(addr).await;
        let refused = [("result", "refused")];
        assert_eq!(value(&s, "egress_config_reload_total", &refused), 1.0);
        assert_eq!(value(&s, "egress_config_last_reload_success", &[]), 0.0);
        assert_eq!(value(&s, "egress_config_last_reload_version", &[]), 4.0);
        assert_eq!(value(&s, "egress_config_version", &[]), 3.0, "still served");
        let stamp = "egress_config_last_reload_timestamp_seconds";
        assert!(value(&s, stamp, &[]) > 1.0e9);
    }
    let last = h.proxy.metrics().last_reload().unwrap();
    assert_eq!(
        last.error.as_deref(),
        Some("VirtualService default/cnn: invalid")
    );

    h.proxy.record_reload(5, Ok(()));
    let s = scrape(prometheus).await;
    assert_eq!(
        value(&s, "egress_config_reload_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(value(&s, "egress_config_last_reload_success", &[]), 1.0);
    assert_eq!(value(&s, "egress_config_last_reload_version", &[]), 5.0);
    h.proxy.shutdown(Duration::from_secs(1)).await;
}
