//! A client's `x-envoy-*` request headers are removed before use: a forged
//! `x-envoy-original-path` neither replaces the logged path nor reaches the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use egress_testkit::{HttpUpstream, Reply};
use l7_support::*;

const CNN: &str = "edition.cnn.com";

#[tokio::test]
async fn client_envoy_headers_do_not_reach_the_log_or_the_upstream() {
    let upstream = HttpUpstream::start("127.110.0.1:0".parse().unwrap())
        .await
        .unwrap();
    upstream.set_reply("/politics", Reply::status(200).with_body("politics\n"));
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward(
                "cnn.0",
                vec![dest("outbound|80||edition.cnn.com", 100)],
            )],
        )],
        vec![static_cluster(CNN, 80, &[upstream.local_addr()])],
    );
    let gw = Gateway::start(snap).await;
    let mut client = h1_client(gw.addr).await;
    let mut req = get(CNN, "/politics");
    req.headers_mut()
        .insert("x-envoy-original-path", "/weather".parse().unwrap());
    req.headers_mut()
        .insert("x-envoy-upstream-service-time", "1".parse().unwrap());
    let resp = tokio::time::timeout(WAIT, client.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].path, "/politics");
    assert_eq!(seen[0].header("x-envoy-original-path"), None);
    assert_eq!(seen[0].header("x-envoy-upstream-service-time"), None);
    let line = gw.line(1).await;
    assert_eq!(line.request, "GET /politics HTTP/1.1");
}
