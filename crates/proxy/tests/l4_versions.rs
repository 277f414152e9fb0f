//! Configuration versions and TCP proxy connections: a passthrough connection accepted under
//! version N keeps N's route (its upstream and its log line) to its end, while connections
//! accepted after version N+1 is applied take N+1's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use egress_testkit::TcpRecorder;
use l4_support::*;

const SNI: &str = "versions.example";

/// Version `version`: SNI `versions.example` on listener `tls` passed through to `cluster`,
/// whose one endpoint is `upstream`.
fn version(
    version: u64,
    cluster: &str,
    upstream: &TcpRecorder,
) -> egress_snapshot::snapshot::Snapshot {
    snapshot(
        version,
        vec![chains_listener("tls", vec![passthrough(&[SNI], cluster)])],
        vec![static_cluster(cluster, &[upstream.local_addr()])],
    )
}

#[tokio::test]
async fn a_connection_keeps_the_version_it_was_accepted_with() {
    let a = TcpRecorder::start_with_banner(any_port(), b"A".to_vec())
        .await
        .unwrap();
    let b = TcpRecorder::start_with_banner(any_port(), b"B".to_vec())
        .await
        .unwrap();
    let h = Harness::start(version(1, "outbound|443||a.example", &a), options()).await;
    let addr = h.addr("tls");

    // Accepted under version 1: upstream A.
    let (mut first, hello) = hello_conn(addr, SNI).await;
    assert_eq!(read_exact(&mut first, 1).await, b"A");
    assert_eq!(read_exact(&mut first, hello.len()).await, hello);

    // Version 2 passes the same SNI to B.
    h.apply(version(2, "outbound|443||b.example", &b)).await;
    assert_eq!(h.addr("tls"), addr, "the listener's socket is kept");

    // A new connection takes version 2.
    let (mut second, hello2) = hello_conn(addr, SNI).await;
    assert_eq!(read_exact(&mut second, 1).await, b"B");
    assert_eq!(read_exact(&mut second, hello2.len()).await, hello2);

    // The first connection still talks to A, and ends logged under version 1's cluster.
    assert_eq!(
        echo(&mut first, b"still version 1").await,
        b"still version 1"
    );
    drop(first);
    drop(second);
    let lines = h.lines(2).await;
    assert!(
        lines.iter().any(|l| l.contains("outbound|443||a.example")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("outbound|443||b.example")),
        "{lines:?}"
    );
    assert_eq!(a.connections().len(), 1);
    assert_eq!(b.connections().len(), 1);
}
