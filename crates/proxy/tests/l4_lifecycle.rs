//! Listener reconciliation across snapshots, readiness, and drain, on loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::time::Duration;

use egress_testkit::TcpRecorder;
use l4_support::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn removing_a_chain_keeps_existing_connections_and_refuses_new_ones() {
    let a = TcpRecorder::start(any_port()).await.unwrap();
    let b = TcpRecorder::start(any_port()).await.unwrap();
    let ca = static_cluster("outbound|443||a.example", &[a.local_addr()]);
    let cb = static_cluster("outbound|443||b.example", &[b.local_addr()]);
    let both = vec![
        passthrough(&["a.example"], &ca.name),
        passthrough(&["b.example"], &cb.name),
    ];
    let h = Harness::start(
        snapshot(
            1,
            vec![chains_listener("0.0.0.0_8443", both)],
            vec![ca.clone(), cb.clone()],
        ),
        options(),
    )
    .await;
    let addr = h.addr("0.0.0.0_8443");

    let (mut kept, hello) = hello_conn(addr, "b.example").await;
    assert_eq!(read_exact(&mut kept, hello.len()).await, hello);

    // Version 2 drops the b.example chain and adds a second listener.
    let only_a = vec![passthrough(&["a.example"], &ca.name)];
    let extra = chains_listener("0.0.0.0_9443", vec![passthrough(&[], &ca.name)]);
    h.apply(snapshot(
        2,
        vec![chains_listener("0.0.0.0_8443", only_a), extra],
        vec![ca.clone(), cb],
    ))
    .await;
    assert_eq!(
        h.addr("0.0.0.0_8443"),
        addr,
        "a listener that stays is not rebound"
    );
    let extra_addr = h.addr("0.0.0.0_9443");

    assert_eq!(
        echo(&mut kept, b"still here").await,
        b"still here",
        "existing connection continues"
    );

    let (mut refused, _) = hello_conn(addr, "b.example").await;
    assert!(
        closed_without_data(&mut refused).await,
        "new b.example connections are closed"
    );
    let (mut fine, hello) = hello_conn(addr, "a.example").await;
    assert_eq!(read_exact(&mut fine, hello.len()).await, hello);
    assert_eq!(a.connections().len(), 1);
    assert_eq!(b.connections().len(), 1);

    // Version 3 removes the second listener: it stops accepting.
    h.apply(snapshot(
        3,
        vec![chains_listener(
            "0.0.0.0_8443",
            vec![passthrough(&["a.example"], &ca.name)],
        )],
        vec![ca],
    ))
    .await;
    assert!(h.proxy.bound().iter().all(|(n, _)| n != "0.0.0.0_9443"));
    assert!(
        TcpStream::connect(extra_addr).await.is_err(),
        "removed listener refuses connections"
    );
    assert_eq!(h.addr("0.0.0.0_8443"), addr);
    assert_eq!(echo(&mut kept, b"and still").await, b"and still");
    assert_eq!(echo(&mut fine, b"ok").await, b"ok");
}

#[tokio::test]
async fn readiness_is_503_until_a_versioned_snapshot_then_200() {
    let h = Harness::start(snapshot(0, vec![], vec![]), options()).await;
    let health = h.proxy.health_addr().unwrap();
    assert_eq!(http_status(health, "/healthz/ready").await, 503);
    h.apply(snapshot(1, vec![], vec![])).await;
    assert_eq!(http_status(health, "/healthz/ready").await, 200);
    assert_eq!(http_status(health, "/nope").await, 404);
    h.proxy.shutdown(Duration::from_secs(1)).await;
    assert!(
        TcpStream::connect(health).await.is_err(),
        "health server stopped"
    );
}

#[tokio::test]
async fn drain_waits_for_an_in_flight_passthrough_connection() {
    let upstream = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|443||edition.cnn.com", &[upstream.local_addr()]);
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &c.name)],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;
    let addr = h.addr("0.0.0.0_8443");
    let health = h.proxy.health_addr().unwrap();
    let (mut conn, hello) = hello_conn(addr, "edition.cnn.com").await;
    assert_eq!(read_exact(&mut conn, hello.len()).await, hello);

    let Harness { proxy, log, .. } = h;
    let ctx = proxy.ctx().clone();
    let shutdown = tokio::spawn(proxy.shutdown(Duration::from_secs(60)));
    ctx.drain.signaled().await;
    // Draining: not ready, not accepting, but the open connection still works.
    assert_eq!(http_status(health, "/healthz/ready").await, 503);
    egress_testkit::eventually(WAIT, || async { TcpStream::connect(addr).await.is_err() })
        .await
        .unwrap();
    assert_eq!(echo(&mut conn, b"in flight").await, b"in flight");
    assert!(!shutdown.is_finished(), "shutdown waits for the connection");

    drop(conn);
    tokio::time::timeout(WAIT, shutdown).await.unwrap().unwrap();
    assert_eq!(ctx.drain.in_flight(), 0);
    let lines = log.wait_for(1, WAIT).await;
    assert!(
        lines[0].contains("outbound|443||edition.cnn.com"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn drain_closes_what_is_left_after_the_grace_period() {
    let upstream = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|443||edition.cnn.com", &[upstream.local_addr()]);
    let listener = chains_listener("0.0.0.0_8443", vec![passthrough(&[], &c.name)]);
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;
    let mut conn = TcpStream::connect(h.addr("0.0.0.0_8443")).await.unwrap();
    assert_eq!(echo(&mut conn, b"hi").await, b"hi");

    let ctx = h.proxy.ctx().clone();
    tokio::time::timeout(WAIT, h.proxy.shutdown(Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(ctx.drain.is_forced());
    assert!(
        closed_without_data(&mut conn).await,
        "connection cut at the deadline"
    );
    let lines = h.log.wait_for(1, WAIT).await;
    assert!(
        lines[0].contains(" 2 2 "),
        "bytes logged for the cut connection: {lines:?}"
    );
}

#[tokio::test]
async fn a_listener_that_cannot_bind_fails_start() {
    let taken = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let mut l = chains_listener("0.0.0.0_8443", vec![]);
    l.port = taken.local_addr().unwrap().port();
    let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(snapshot(1, vec![l], vec![])));
    let mut opts = options();
    opts.health_port = None;
    let err = egress_proxy::Proxy::start(
        rx,
        opts,
        None,
        egress_proxy::accesslog::AccessLogger::disabled(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("0.0.0.0_8443"), "{err}");
}
