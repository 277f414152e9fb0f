//! A gateway's TCP connection counts as opened while it is still open (istio_stats reports
//! "opened" once the connection is under way, not when it closes): a TLS passthrough
//! connection is held open while the metrics port is scraped, then closed.
//!
//! Ignored until the TCP proxy reports the opening: `Metrics::tcp_opened(entry)` right after
//! the upstream connection is established (see `egress_proxy::metrics`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::net::SocketAddr;
use std::time::Duration;

use egress_testkit::TcpRecorder;
use l4_support::{
    Harness, any_port, chains_listener, hello_conn, options, passthrough, read_exact, snapshot,
    static_cluster,
};
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CNN: &str = "edition.cnn.com";
const TLS_CLUSTER: &str = "outbound|443||edition.cnn.com";

/// Fetches and parses `/stats/prometheus`.
async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "GET /stats/prometheus HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(l4_support::WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the one sample of `metric` for the passthrough cluster's TCP series.
fn tcp_value(scrape: &Scrape, metric: &str) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && s.labels.get("destination_service") == Some(CNN))
        .collect();
    assert_eq!(found.len(), 1, "{metric}: {found:#?}");
    match &found[0].value {
        Value::Counter(v) => *v,
        other => panic!("{metric} is not a counter: {other:?}"),
    }
}

#[tokio::test]
async fn a_passthrough_connection_counts_as_opened_while_open() {
    let echo = TcpRecorder::start(any_port()).await.unwrap();
    let listeners = vec![chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&[CNN], TLS_CLUSTER)],
    )];
    let clusters = vec![static_cluster(TLS_CLUSTER, &[echo.local_addr()])];
    let mut opts = options();
    opts.metrics_port = Some(0);
    let h = Harness::start(snapshot(1, listeners, clusters), opts).await;
    let metrics = h.proxy.metrics_addr().unwrap();

    let (mut tcp, hello) = hello_conn(h.addr("0.0.0.0_8443"), CNN).await;
    assert_eq!(read_exact(&mut tcp, hello.len()).await, hello);
    let s = scrape(metrics).await;
    assert_eq!(tcp_value(&s, "istio_tcp_connections_opened_total"), 1.0);
    assert_eq!(tcp_value(&s, "istio_tcp_connections_closed_total"), 0.0);

    tcp.shutdown().await.unwrap();
    assert!(l4_support::closed_without_data(&mut tcp).await);
    h.lines(1).await;
    let s = scrape(metrics).await;
    assert_eq!(tcp_value(&s, "istio_tcp_connections_opened_total"), 1.0);
    assert_eq!(tcp_value(&s, "istio_tcp_connections_closed_total"), 1.0);
    let bytes = hello.len() as f64;
    assert_eq!(tcp_value(&s, "istio_tcp_received_bytes_total"), bytes);
    h.proxy.shutdown(Duration::from_secs(1)).await;
}
