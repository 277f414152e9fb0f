//! The gateway rows of Istio's status table (reference §3.10), driven with curl as a user
//! would: unknown Host 404 `NR`, unknown cluster 503 `NC`, no endpoints 503 `UH`, connection
//! refused 503 `UF,URX` after the default retries, route timeout 504 `UT`; plus retries on
//! retriable status codes and circuit-breaker overflow (503 `UO`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::time::Duration;

use egress_snapshot::snapshot::RetryPolicy;
use egress_testkit::{HttpUpstream, Reply};
use l7_support::*;

const CNN: &str = "edition.cnn.com";
const CNN_CLUSTER: &str = "outbound|80||edition.cnn.com";

#[tokio::test]
async fn unknown_host_is_404_nr() {
    require_curl!();
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    ))
    .await;
    let out = gw
        .curl("unknown.example", "/")
        .args(["-i"])
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 404, "{out:?}");
    assert!(out.body.contains("server: istio-envoy"), "{}", out.body);
    assert!(out.body.contains("content-length: 0"), "{}", out.body);
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("404", "NR"));
    assert_eq!(line.details, "route_not_found");
    assert_eq!(
        (
            line.cluster.as_str(),
            line.upstream_host.as_str(),
            line.route.as_str()
        ),
        ("-", "-", "-")
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn vhost_without_matching_route_is_404_nr() {
    require_curl!();
    let mut route = forward("r", vec![dest(CNN_CLUSTER, 1)]);
    route.matcher.uri = Some(egress_snapshot::snapshot::StringMatch::Prefix(
        "/only".into(),
    ));
    let gw = Gateway::start(snapshot(vec![vhost(CNN, vec![route])], vec![])).await;
    let out = gw.curl(CNN, "/other").status().await.unwrap();
    assert_eq!(out.status, 404);
    assert_eq!(gw.line(1).await.flags, "NR");
}

#[tokio::test]
async fn unknown_cluster_is_503_nc() {
    require_curl!();
    let gw = Gateway::start(snapshot(
        vec![vhost(
            CNN,
            vec![forward("r", vec![dest("outbound|80||missing.example", 1)])],
        )],
        vec![],
    ))
    .await;
    let out = gw.curl(CNN, "/").fetch().await.unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert_eq!(out.body, "");
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("503", "NC"));
    assert_eq!(line.details, "cluster_not_found");
    assert_eq!(line.route, "r");
}

#[tokio::test]
async fn no_endpoints_is_503_uh() {
    require_curl!();
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![static_cluster(CNN, 80, &[])],
    ))
    .await;
    let out = gw.curl(CNN, "/").fetch().await.unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert_eq!(out.body, "no healthy upstream");
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("503", "UH"));
    assert_eq!(line.details, "no_healthy_upstream");
    assert_eq!(line.cluster, CNN_CLUSTER);
    assert_eq!(line.bytes_sent, "19");
}

#[tokio::test]
async fn connection_refused_is_503_uf_urx_after_retries() {
    require_curl!();
    let closed = closed_port().await;
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![static_cluster(CNN, 80, &[closed])],
    ))
    .await;
    let out = gw.curl(CNN, "/").fetch().await.unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert!(
        out.body.starts_with(
            "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: \
             connection failure"
        ),
        "{}",
        out.body
    );
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("503", "UF,URX"));
    assert!(
        line.details
            .starts_with("upstream_reset_before_response_started{connection_failure"),
        "{line:?}"
    );
    assert_eq!(line.upstream_host, closed.to_string());
    assert_eq!(line.cluster, CNN_CLUSTER);
}

#[tokio::test]
async fn connection_refused_without_retries_is_503_uf() {
    let closed = closed_port().await;
    let mut route = forward("r", vec![dest(CNN_CLUSTER, 1)]);
    forward_of(&mut route).retry = None;
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![route])],
        vec![static_cluster(CNN, 80, &[closed])],
    ))
    .await;
    let mut client = h1_client(gw.addr).await;
    let resp = client.send_request(get(CNN, "/")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body = text(resp).await;
    assert!(
        body.starts_with("upstream connect error or disconnect/reset before headers. reset reason: connection failure"),
        "{body}"
    );
    assert_eq!(gw.line(1).await.flags, "UF");
}

/// On a paused clock: the 300 ms route timeout fires without waiting 300 ms. (The client is
/// in-process: an external one would leave the runtime idle, and the paused clock would then
/// run the gateway's own timers while the client starts.)
#[tokio::test(start_paused = true)]
async fn route_timeout_is_504_ut() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply(
        "/slow",
        Reply::status(200).with_delay(Duration::from_secs(10)),
    );
    let mut route = forward("r", vec![dest(CNN_CLUSTER, 1)]);
    forward_of(&mut route).timeout = Some(Duration::from_millis(300));
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![route])],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    ))
    .await;
    let mut client = h1_client(gw.addr).await;
    let resp = client.send_request(get(CNN, "/slow")).await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(text(resp).await, "upstream request timeout");
    let line = gw.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("504", "UT"));
    assert_eq!(
        line.duration, "300",
        "exactly the route timeout, on the paused clock"
    );
    assert_eq!(line.details, "response_timeout");
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        seen[0].header("x-envoy-expected-rq-timeout-ms"),
        Some("300")
    );
}

#[tokio::test]
async fn retriable_status_is_retried_then_passed_through_with_urx() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply("/flaky", Reply::status(503).with_body("busy"));
    let mut route = forward("r", vec![dest(CNN_CLUSTER, 1)]);
    forward_of(&mut route).retry = Some(RetryPolicy {
        attempts: 2,
        per_try_timeout: None,
        retry_on: vec!["retriable-status-codes".into()],
        retriable_status_codes: vec![503],
    });
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![route])],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    ))
    .await;
    let mut client = h1_client(gw.addr).await;
    let resp = client.send_request(get(CNN, "/flaky")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(text(resp).await, "busy");
    let seen = upstream.wait_for_requests(3, WAIT).await.unwrap();
    let attempts: Vec<_> = seen
        .iter()
        .map(|r| r.header("x-envoy-attempt-count").unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let line = gw.line(1).await;
    assert_eq!(
        (
            line.code.as_str(),
            line.flags.as_str(),
            line.details.as_str()
        ),
        ("503", "URX", "via_upstream")
    );
}

/// On a paused clock: the slow answer takes a minute of the test's time and none of the wall's.
#[tokio::test(start_paused = true)]
async fn pool_overflow_is_503_uo() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply(
        "/slow",
        Reply::status(200).with_delay(Duration::from_secs(60)),
    );
    let mut cluster = static_cluster(CNN, 80, &[upstream.local_addr()]);
    cluster.pool.max_connections = Some(1);
    cluster.pool.http1_max_pending_requests = Some(0);
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![cluster],
    ))
    .await;
    let mut slow_client = h1_client(gw.addr).await;
    let slow = tokio::spawn(async move {
        let resp = slow_client.send_request(get(CNN, "/slow")).await.unwrap();
        resp.status()
    });
    upstream.wait_for_requests(1, WAIT).await.unwrap();
    let mut client = h1_client(gw.addr).await;
    let resp = client.send_request(get(CNN, "/fast")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        text(resp).await,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    );
    let line = gw.line(1).await;
    assert_eq!(
        (line.flags.as_str(), line.details.as_str()),
        ("UO", "upstream_reset_before_response_started{overflow}")
    );
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn connect_method_is_404_nr() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"CONNECT edition.cnn.com:443 HTTP/1.1\r\nHost: edition.cnn.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let line = gw.line(1).await;
    assert_eq!(
        (line.request.as_str(), line.flags.as_str()),
        ("CONNECT - HTTP/1.1", "NR")
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn client_gone_before_the_response_is_logged_dc() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply(
        "/slow",
        Reply::status(200).with_delay(Duration::from_secs(30)),
    );
    let gw = Gateway::start(snapshot(
        vec![vhost(CNN, vec![forward("r", vec![dest(CNN_CLUSTER, 1)])])],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    ))
    .await;
    let mut client = h2c_client(gw.addr).await;
    let req = http::Request::builder()
        .uri(format!("http://{CNN}/slow"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let pending = tokio::spawn(async move { client.send_request(req).await });
    upstream.wait_for_requests(1, WAIT).await.unwrap();
    pending.abort();
    let line = gw.line(1).await;
    assert_eq!(
        (line.code.as_str(), line.flags.as_str()),
        ("0", "DC"),
        "{line:?}"
    );
    assert_eq!(line.details, "downstream_remote_disconnect");
    assert_eq!(line.cluster, CNN_CLUSTER);
}
