//! Configuration versions and requests: a request runs to its end under the version it started
//! under (its route, upstream and access-log line), while a request that starts after a new
//! snapshot, on a new connection or on the same kept-alive one, uses the new version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l7_support;

use std::net::SocketAddr;
use std::sync::Arc;

use egress_snapshot::snapshot::{AccessLog, Snapshot};
use l7_support::{
    Gateway, WAIT, dest, forward, get, h1_client, snapshot, static_cluster, text, vhost,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

const HOST: &str = "versions.example";

/// An upstream answering every request with `body`; with a gate, the first request's answer
/// waits until the gate opens (its arrival is signalled on `arrived`).
async fn upstream(
    body: &'static str,
    gate: Option<oneshot::Receiver<()>>,
    arrived: Arc<Notify>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut gate = gate;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut hold = gate.take();
            let arrived = Arc::clone(&arrived);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head at a time (GETs without a body).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    arrived.notify_one();
                    if let Some(h) = hold.take() {
                        let _ = h.await;
                    }
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Version `version` of the configuration: `HOST` routed to `up`, each line written as
/// `<tag> <path> <upstream host>`.
fn version(version: u64, tag: &str, up: SocketAddr) -> Snapshot {
    let cluster = static_cluster(HOST, 80, &[up]);
    let mut s = snapshot(
        vec![vhost(
            HOST,
            vec![forward("r", vec![dest(&cluster.name, 100)])],
        )],
        vec![cluster],
    );
    s.version = version;
    s.access_log = AccessLog {
        path: Some("/dev/stdout".into()),
        format: Some(format!("{tag} %REQ(:PATH)% %UPSTREAM_HOST%\n")),
        ..AccessLog::default()
    };
    s
}

#[tokio::test]
async fn a_request_ends_on_its_version_and_the_next_one_uses_the_new_one() {
    let arrived_a = Arc::new(Notify::new());
    let (open_a, gate_a) = oneshot::channel();
    let a = upstream("A", Some(gate_a), Arc::clone(&arrived_a)).await;
    let b = upstream("B", None, Arc::new(Notify::new())).await;
    let gw = Gateway::start(version(1, "v1", a)).await;

    // Request 1 starts under version 1 and waits at upstream A.
    let mut kept = h1_client(gw.addr).await;
    let first = tokio::spawn(async move {
        let resp = kept.send_request(get(HOST, "/first")).await.unwrap();
        (text(resp).await, kept)
    });
    tokio::time::timeout(WAIT, arrived_a.notified())
        .await
        .expect("request 1 reached upstream A");

    // Version 2 routes to B and logs differently.
    let v2 = version(2, "v2", b);
    // What preparing a new version does: the logger's last prepared settings change.
    gw.ctx.access_log.prepare(&v2.access_log);
    gw.snapshots.send(Arc::new(v2)).unwrap();

    // A request on a new connection uses version 2.
    let mut fresh = h1_client(gw.addr).await;
    let resp = fresh.send_request(get(HOST, "/second")).await.unwrap();
    assert_eq!(text(resp).await, "B");

    // Request 1 still ends under version 1: upstream A's answer, logged in version 1's format.
    open_a.send(()).unwrap();
    let (body, mut kept) = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(body, "A");

    // The next request on the kept-alive connection uses version 2.
    let resp = kept.send_request(get(HOST, "/third")).await.unwrap();
    assert_eq!(text(resp).await, "B");

    let mut lines = gw.log.wait_for(3, WAIT).await;
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("v1 /first {a}"),
            format!("v2 /second {b}"),
            format!("v2 /third {b}"),
        ],
        "each request is logged under the version it started under"
    );
}
