//! HTTP routing at the gateway against real loopback upstreams: routing by Host with the
//! Host preserved and the access-log line checked field by field (curl, as a user would),
//! connection-manager headers, path rewrites, redirects and direct responses, h2c, weighted
//! destinations, and a configuration swap that applies to the next request of a keep-alive
//! connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::sync::Arc;

use egress_snapshot::snapshot::{HeaderOps, Redirect, Route, RouteAction, RouteMatch, StringMatch};
use egress_testkit::{HttpUpstream, Reply};
use l7_support::*;

const CNN: &str = "edition.cnn.com";
const CNN_CLUSTER: &str = "outbound|80||edition.cnn.com";

async fn cnn_gateway() -> (Gateway, HttpUpstream) {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward("istio-system.cnn.0", vec![dest(CNN_CLUSTER, 100)])],
        )],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    );
    (Gateway::start(snap).await, upstream)
}

#[tokio::test]
async fn routes_by_host_preserving_it_and_logs_like_istio() {
    require_curl!();
    let (gw, upstream) = cnn_gateway().await;
    upstream.set_reply("/politics", Reply::status(200).with_body("politics\n"));
    let out = gw
        .curl(CNN, "/politics")
        .header("x-request-id", "req-1")
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.body, "politics\n");

    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].path, "/politics");
    assert_eq!(seen[0].host.as_deref(), Some(CNN), "Host is preserved");
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen[0].header("x-request-id"), Some("req-1"));
    assert_eq!(seen[0].header("x-envoy-attempt-count"), Some("1"));

    let line = gw.line(1).await;
    assert_eq!(line.request, "GET /politics HTTP/1.1");
    assert_eq!(line.code, "200");
    assert_eq!(line.flags, "-");
    assert_eq!(line.details, "via_upstream");
    assert_eq!(line.termination, "-");
    assert_eq!(line.transport_failure, "-");
    assert_eq!(line.bytes_received, "0");
    assert_eq!(line.bytes_sent, "9");
    assert!(line.duration.parse::<u64>().is_ok(), "{line:?}");
    assert!(
        line.upstream_service_time.parse::<u64>().is_ok(),
        "{line:?}"
    );
    assert_eq!(line.xff, "127.0.0.1");
    assert!(line.user_agent.starts_with("curl/"), "{line:?}");
    assert_eq!(line.request_id, "req-1");
    assert_eq!(line.authority, CNN);
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    assert_eq!(line.cluster, CNN_CLUSTER);
    assert_eq!(line.upstream_local, seen[0].peer_addr.to_string());
    assert_eq!(line.downstream_local, gw.addr.to_string());
    assert!(line.downstream_remote.starts_with("127.0.0.1:"), "{line:?}");
    assert_eq!(line.sni, "-");
    assert_eq!(line.route, "istio-system.cnn.0");
    assert!(
        line.start_time.ends_with('Z') && line.start_time.len() == 24,
        "{line:?}"
    );
}

#[tokio::test]
async fn connection_manager_headers() {
    let (gw, upstream) = cnn_gateway().await;
    upstream.set_reply(
        "/h",
        Reply::status(201)
            .with_body("x")
            .with_header("server", "upstream")
            .with_header("x-from-upstream", "1"),
    );
    let mut client = h1_client(gw.addr).await;
    let req = http::Request::builder()
        .uri("/h")
        .header("host", "Edition.CNN.com:80")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-client-cert", "By=spoofed")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["server"], "istio-envoy");
    assert_eq!(resp.headers()["x-from-upstream"], "1");
    assert!(resp.headers().contains_key("x-envoy-upstream-service-time"));
    assert_eq!(text(resp).await, "x");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    let r = &seen[0];
    assert_eq!(r.host.as_deref(), Some("Edition.CNN.com:80"));
    assert_eq!(r.header("x-forwarded-for"), Some("10.1.2.3,127.0.0.1"));
    assert_eq!(
        r.header("x-forwarded-client-cert"),
        None,
        "SANITIZE_SET drops it without mTLS"
    );
    assert_eq!(r.header("x-hop"), None);
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a UUID is generated: {id}");
    let line = gw.line(1).await;
    assert_eq!(line.request_id, id);
    assert_eq!(line.xff, "10.1.2.3,127.0.0.1");
}

#[tokio::test]
async fn route_matching_rewrites_redirects_and_direct_responses() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut rewrite = forward("ns.rewrite.0", vec![dest(CNN_CLUSTER, 1)]);
    rewrite.matcher = RouteMatch {
        uri: Some(StringMatch::Prefix("/old".into())),
        ..RouteMatch::default()
    };
    forward_of(&mut rewrite).rewrite_uri = Some("/new".into());
    rewrite.request_headers = HeaderOps {
        set: vec![("x-route".into(), "rewrite".into())],
        ..HeaderOps::default()
    };
    rewrite.response_headers = HeaderOps {
        add: vec![("x-resp".into(), "yes".into())],
        ..HeaderOps::default()
    };
    let redirect = Route {
        name: "ns.redirect.0".into(),
        matcher: RouteMatch {
            uri: Some(StringMatch::Exact("/moved".into())),
            ..RouteMatch::default()
        },
        action: RouteAction::Redirect(Redirect {
            uri: Some("/elsewhere".into()),
            authority: Some("other.example".into()),
            scheme: Some("https".into()),
            port: None,
            status: 301,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    };
    let direct = Route {
        name: "ns.direct.0".into(),
        matcher: RouteMatch {
            method: Some(StringMatch::Exact("POST".into())),
            ..RouteMatch::default()
        },
        action: RouteAction::DirectResponse {
            status: 418,
            body: Some("teapot".into()),
        },
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    };
    let mut tls_vhost = vhost(
        "secure.example",
        vec![forward("ns.secure.0", vec![dest(CNN_CLUSTER, 1)])],
    );
    tls_vhost.require_tls = true;
    let snap = snapshot(
        vec![vhost(CNN, vec![rewrite, redirect, direct]), tls_vhost],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    );
    let gw = Gateway::start(snap).await;
    let mut client = h1_client(gw.addr).await;

    let resp = client
        .send_request(get(CNN, "/old/page?x=1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-resp"], "yes");
    text(resp).await;
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].path, "/new/page?x=1");
    assert_eq!(
        seen[0].header("x-envoy-original-path"),
        Some("/old/page?x=1")
    );
    assert_eq!(seen[0].header("x-route"), Some("rewrite"));
    assert_eq!(
        gw.line(1).await.request,
        "GET /old/page?x=1 HTTP/1.1",
        "the log shows the original path"
    );

    let resp = client.send_request(get(CNN, "/moved?q=2")).await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        "https://other.example/elsewhere?q=2"
    );
    text(resp).await;
    let line = gw.line(2).await;
    assert_eq!(
        (line.code.as_str(), line.details.as_str()),
        ("301", "direct_response")
    );

    let post = http::Request::builder()
        .method("POST")
        .uri("/anything")
        .header("host", CNN)
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.send_request(post).await.unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(text(resp).await, "teapot");

    let resp = client
        .send_request(get("secure.example", "/a?b"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "https://secure.example/a?b");
    text(resp).await;

    let resp = client.send_request(get(CNN, "/../old/x")).await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "dot segments are normalized before matching"
    );
    text(resp).await;
    assert_eq!(
        upstream.wait_for_requests(2, WAIT).await.unwrap()[1].path,
        "/new/x"
    );
}

#[tokio::test]
async fn h2c_downstream() {
    let (gw, upstream) = cnn_gateway().await;
    let mut client = h2c_client(gw.addr).await;
    let req = http::Request::builder()
        .uri(format!("http://{CNN}/h2"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["server"], "istio-envoy");
    assert_eq!(text(resp).await, "ok\n");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        seen[0].host.as_deref(),
        Some(CNN),
        ":authority becomes Host upstream"
    );
    assert_eq!(seen[0].version, "HTTP/1.1");
    let line = gw.line(1).await;
    assert_eq!(line.request, "GET /h2 HTTP/2");
    assert_eq!(line.authority, CNN);
}

#[tokio::test]
async fn h2c_with_curl() {
    require_curl!();
    let (gw, _upstream) = cnn_gateway().await;
    let out = gw.curl(CNN, "/x").http2().fetch().await.unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(gw.line(1).await.request, "GET /x HTTP/2");
}

#[tokio::test]
async fn weighted_destinations_share_traffic() {
    let a = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward(
                "ns.split.0",
                vec![dest("outbound|80|a|cnn", 50), dest("outbound|80|b|cnn", 50)],
            )],
        )],
        vec![
            {
                let mut c = static_cluster(CNN, 80, &[a.local_addr()]);
                c.name = "outbound|80|a|cnn".into();
                c
            },
            {
                let mut c = static_cluster(CNN, 80, &[b.local_addr()]);
                c.name = "outbound|80|b|cnn".into();
                c
            },
        ],
    );
    let gw = Gateway::start(snap).await;
    let mut client = h1_client(gw.addr).await;
    for _ in 0..40 {
        let resp = client.send_request(get(CNN, "/w")).await.unwrap();
        assert_eq!(resp.status(), 200);
        text(resp).await;
    }
    let (na, nb) = (a.requests().len(), b.requests().len());
    assert_eq!(na + nb, 40);
    assert!(na > 0 && nb > 0, "both destinations get traffic: {na}/{nb}");
}

#[tokio::test]
async fn config_swap_applies_to_next_request_on_keep_alive_connection() {
    let a = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let b = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let snap_a = snapshot(
        vec![vhost(
            CNN,
            vec![forward("ns.v1.0", vec![dest(CNN_CLUSTER, 1)])],
        )],
        vec![static_cluster(CNN, 80, &[a.local_addr()])],
    );
    let gw = Gateway::start(snap_a).await;
    let mut client = h1_client(gw.addr).await;
    let resp = client.send_request(get(CNN, "/one")).await.unwrap();
    assert_eq!(resp.status(), 200);
    text(resp).await;
    assert_eq!(a.requests().len(), 1);

    let mut snap_b = snapshot(
        vec![
            vhost(CNN, vec![forward("ns.v2.0", vec![dest(CNN_CLUSTER, 1)])]),
            vhost(
                "new.example",
                vec![forward("ns.v2.1", vec![dest(CNN_CLUSTER, 1)])],
            ),
        ],
        vec![static_cluster(CNN, 80, &[b.local_addr()])],
    );
    snap_b.version = 2;
    gw.snapshots.send_replace(Arc::new(snap_b));

    let resp = client.send_request(get(CNN, "/two")).await.unwrap();
    assert_eq!(resp.status(), 200);
    text(resp).await;
    let resp = client
        .send_request(get("new.example", "/three"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    text(resp).await;
    assert_eq!(a.requests().len(), 1, "the old upstream sees nothing more");
    let seen = b.wait_for_requests(2, WAIT).await.unwrap();
    assert_eq!(seen[0].path, "/two");
    assert_eq!(gw.line(2).await.route, "ns.v2.0");
    assert_eq!(gw.line(3).await.route, "ns.v2.1");
    let conns: std::collections::HashSet<_> = gw
        .log
        .lines()
        .iter()
        .map(|l| AccessLine::parse(l).downstream_remote)
        .collect();
    assert_eq!(
        conns.len(),
        1,
        "all three requests came on one downstream connection"
    );
}

#[tokio::test]
async fn drain_closes_keep_alive_after_the_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, _upstream) = cnn_gateway().await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /before HTTP/1.1\r\nHost: edition.cnn.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n\r\nok\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    gw.ctx.drain.signal();
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n, 0,
        "the idle keep-alive connection is closed once draining starts"
    );
}

#[tokio::test]
async fn json_access_log_with_request_body() {
    require_curl!();
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply("/post", Reply::status(200).with_body("created"));
    let mut snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward("ns.post.0", vec![dest(CNN_CLUSTER, 1)])],
        )],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    );
    snap.access_log.encoding = egress_snapshot::snapshot::LogEncoding::Json;
    let gw = Gateway::start(snap).await;
    let out = gw.curl(CNN, "/post").data("hello").fetch().await.unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(
        upstream.wait_for_requests(1, WAIT).await.unwrap()[0].body,
        "hello"
    );
    let lines = gw.log.wait_for(1, WAIT).await;
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/post");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["response_code"], 200);
    assert_eq!(v["response_flags"], "-");
    assert_eq!(v["bytes_received"], 5);
    assert_eq!(v["bytes_sent"], 7);
    assert_eq!(v["upstream_cluster"], CNN_CLUSTER);
    assert_eq!(v["route_name"], "ns.post.0");
    assert_eq!(v["requested_server_name"], serde_json::Value::Null);
    assert!(v["upstream_service_time"].is_string(), "{v}");
}
