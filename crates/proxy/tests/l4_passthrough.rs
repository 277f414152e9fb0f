//! TLS passthrough through a gateway listener, end to end on loopback: curl reaches the
//! upstream through the SNI-matched chain and sees the upstream's own certificate; unmatched
//! SNI is closed (`NR filter_chain_not_found`); the static egress source address is used; a
//! cluster without endpoints closes with `UH`, a refused connect with `UF`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;

use std::net::{IpAddr, SocketAddr};

use egress_snapshot::snapshot::{Discovery, UpstreamTls, UpstreamTlsMode};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, Curl, HttpsUpstream, TcpRecorder};
use l4_support::*;

fn skip_without_curl() -> bool {
    if Curl::available() {
        return false;
    }
    egress_testkit::skip("curl is not installed");
    true
}

#[tokio::test]
async fn curl_passthrough_reaches_the_upstream_with_its_own_certificate() {
    if skip_without_curl() {
        return;
    }
    let certs = CertFactory::new().unwrap();
    let dir = tempdir();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let mut cnn = cluster(
        "outbound|443||edition.cnn.com",
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: upstream.local_addr().port(),
        },
    );
    // Passthrough never originates TLS, even when the cluster carries TLS settings.
    cnn.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: None,
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec![],
    });
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &cnn.name)],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![cnn]), options()).await;
    let port = h.addr("0.0.0.0_8443").port();

    let out = Curl::new(format!("https://edition.cnn.com:{port}/politics"))
        .resolve("edition.cnn.com", port, loopback())
        .cacert(&ca)
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");

    let requests = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(requests[0].path, "/politics");
    assert_eq!(requests[0].sni.as_deref(), Some("edition.cnn.com"));
    assert!(requests[0].tls);

    let line = &h.lines(1).await[0];
    eprintln!("access log: {line}");
    let expected = [
        "\"- - -\" 0 - - - \"-\"",
        &format!(
            "\"127.0.0.1:{}\" outbound|443||edition.cnn.com 127.0.0.1:",
            upstream.local_addr().port()
        ),
        &format!(" 127.0.0.1:{port} 127.0.0.1:"),
        " edition.cnn.com -",
    ];
    for part in expected {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
}

#[tokio::test]
async fn unmatched_sni_is_closed_with_nr() {
    if skip_without_curl() {
        return;
    }
    let certs = CertFactory::new().unwrap();
    let dir = tempdir();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let cnn = static_cluster("outbound|443||edition.cnn.com", &[upstream.local_addr()]);
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &cnn.name)],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![cnn]), options()).await;
    let port = h.addr("0.0.0.0_8443").port();

    let out = Curl::new(format!("https://other.example.com:{port}/"))
        .resolve("other.example.com", port, loopback())
        .cacert(&ca)
        .status()
        .await
        .unwrap();
    assert_eq!(out.exit_code, 35, "TLS handshake failure expected: {out:?}");
    let line = &h.lines(1).await[0];
    eprintln!("access log: {line}");
    assert!(
        line.contains("\"- - -\" 0 NR filter_chain_not_found - \"-\""),
        "{line}"
    );
    assert!(line.contains(" other.example.com -"), "{line}");
    assert!(
        upstream.connections().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn upstream_connections_use_the_static_source_address() {
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|443||edition.cnn.com", &[recorder.local_addr()]);
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &c.name)],
    );
    let net = Block::claim().unwrap();
    let source = IpAddr::V4(net.ip(9));
    let mut opts = options();
    opts.source_address = Some(source);
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), opts).await;

    let (mut conn, hello) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    assert_eq!(
        read_exact(&mut conn, hello.len()).await,
        hello,
        "the ClientHello arrives untouched"
    );
    assert_eq!(echo(&mut conn, b"ping").await, b"ping");
    drop(conn);

    let seen = recorder.wait_for_connections(1, WAIT).await.unwrap();
    assert_eq!(seen[0].peer_addr.ip(), source);
    let line = &h.lines(1).await[0];
    assert!(
        line.contains(&format!(" {source}:")),
        "upstream local address in {line}"
    );
    let bytes = format!(" {} {} ", hello.len() + 4, hello.len() + 4);
    assert!(line.contains(&bytes), "byte counts {bytes:?} in {line}");
}

/// A bulk transfer both ways through the spliced passthrough path: every byte arrives in
/// order, the client's half-close reaches the upstream (which then closes), and the access
/// log counts every byte.
#[tokio::test]
async fn bulk_both_ways_with_half_close_arrives_intact_and_is_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let recorder = TcpRecorder::start(any_port()).await.unwrap();
    let c = static_cluster("outbound|443||edition.cnn.com", &[recorder.local_addr()]);
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &c.name)],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;
    let (conn, hello) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    let payload: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = conn.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.unwrap();
        wr.shutdown().await.unwrap();
        wr
    });
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, rd.read_to_end(&mut back))
        .await
        .expect("the upstream's close arrives after the echo")
        .unwrap();
    let _wr = writer.await.unwrap();
    assert_eq!(back.len(), hello.len() + payload.len());
    assert_eq!(
        &back[..hello.len()],
        &hello[..],
        "the ClientHello comes back first"
    );
    assert!(
        back[hello.len()..] == payload[..],
        "the payload arrives intact, in order"
    );
    let line = &h.lines(1).await[0];
    let total = hello.len() + payload.len();
    let bytes = format!(" {total} {total} ");
    assert!(line.contains(&bytes), "byte counts {bytes:?} in {line}");
}

#[tokio::test]
async fn no_endpoints_closes_with_uh() {
    let empty = static_cluster("outbound|443||edition.cnn.com", &[]);
    let unresolvable = cluster(
        "outbound|443||nowhere.example",
        Discovery::StrictDns {
            hostname: "nowhere.example".into(),
            port: 443,
        },
    );
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![
            passthrough(&["edition.cnn.com"], &empty.name),
            passthrough(&["nowhere.example"], &unresolvable.name),
        ],
    );
    let h = Harness::start(
        snapshot(1, vec![listener], vec![empty, unresolvable]),
        options(),
    )
    .await;

    let (mut conn, _) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    assert!(closed_without_data(&mut conn).await);
    let line = &h.lines(1).await[0];
    assert!(line.contains("\"- - -\" 0 UH "), "{line}");
    assert!(line.contains(" outbound|443||edition.cnn.com "), "{line}");

    // A DNS cluster whose name does not resolve has no hosts either.
    let (mut conn, _) = hello_conn(h.addr("0.0.0.0_8443"), "nowhere.example").await;
    assert!(closed_without_data(&mut conn).await);
    let line = &h.lines(2).await[1];
    assert!(line.contains("\"- - -\" 0 UH "), "{line}");
}

#[tokio::test]
async fn refused_connect_closes_with_uf() {
    let dead: SocketAddr = dead_port().await;
    let c = static_cluster("outbound|443||edition.cnn.com", &[dead]);
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &c.name)],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![c]), options()).await;

    let (mut conn, _) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    assert!(closed_without_data(&mut conn).await);
    let line = &h.lines(1).await[0];
    assert!(
        line.contains("\"- - -\" 0 UF,URX - - \"delayed_connect_error:_Connection_refused\""),
        "{line}"
    );
    assert!(
        line.contains(&format!("\"{dead}\" outbound|443||edition.cnn.com ")),
        "{line}"
    );
}

#[tokio::test]
async fn missing_cluster_closes_with_nc() {
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&[], "outbound|443||missing")],
    );
    let h = Harness::start(snapshot(1, vec![listener], vec![]), options()).await;
    let (mut conn, _) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    assert!(closed_without_data(&mut conn).await);
    let line = &h.lines(1).await[0];
    assert!(line.contains("\"- - -\" 0 NC "), "{line}");
}

/// A temporary directory for certificate files.
fn tempdir() -> TempDir {
    TempDir::new()
}

/// A minimal temporary directory (removed on drop), to avoid a dependency for two files.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "egress-l4-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
