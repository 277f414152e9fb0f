//! The test kit's servers driven by raw sockets, rustls and the real curl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use egress_identity::{RootSource, client_config_simple};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, Curl, HttpUpstream, HttpsUpstream, Reply, TcpRecorder};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn raw_get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, host: &str, path: &str) -> String {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nx-test: 1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn skip_without_curl(test: &str) -> bool {
    if Curl::available() {
        return false;
    }
    egress_testkit::skip(&format!("{test}: curl is not installed"));
    true
}

#[tokio::test]
async fn http_upstream_answers_and_records() {
    let up = HttpUpstream::start(loopback()).await.unwrap();
    up.set_reply(
        "/missing",
        Reply::status(404).with_body("nope").with_header("x-r", "1"),
    );
    let conn = TcpStream::connect(up.local_addr()).await.unwrap();
    let client_addr = conn.local_addr().unwrap();
    let resp = raw_get(conn, "edition.cnn.com", "/politics?a=1").await;
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.ends_with("ok\n"), "{resp}");
    assert!(resp.contains(&format!("x-testkit-upstream: {}", up.local_addr())));

    let resp = raw_get(
        TcpStream::connect(up.local_addr()).await.unwrap(),
        "h",
        "/missing",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert!(resp.contains("x-r: 1") && resp.ends_with("nope"), "{resp}");

    let reqs = up.wait_for_requests(2, WAIT).await.unwrap();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/politics?a=1");
    assert_eq!(reqs[0].host.as_deref(), Some("edition.cnn.com"));
    assert_eq!(reqs[0].header("X-Test"), Some("1"));
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert_eq!(reqs[0].peer_addr, client_addr);
    assert_eq!(reqs[0].local_addr, up.local_addr());
    assert!(!reqs[0].tls);
    assert_eq!(up.connections().len(), 2);
}

#[tokio::test]
async fn delayed_requests_are_recorded_on_arrival() {
    let up = HttpUpstream::start(loopback()).await.unwrap();
    up.set_reply(
        "/slow",
        Reply::default().with_delay(Duration::from_secs(3600)),
    );
    let mut conn = TcpStream::connect(up.local_addr()).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let reqs = up.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(reqs[0].path, "/slow");
    assert!(
        up.wait_for_requests(2, Duration::from_millis(10))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn allow_only_refuses_other_sources() {
    let up = HttpUpstream::start(loopback()).await.unwrap();
    // The one admitted source, on a claimed loopback block.
    let net = Block::claim().unwrap();
    let source = net.ip(9);
    up.allow_only(&format!("{source}/32")).unwrap();

    let mut refused = TcpStream::connect(up.local_addr()).await.unwrap();
    let _ = refused
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    // Reset or EOF: either way, no response bytes.
    let _ = refused.read_to_end(&mut buf).await;
    assert!(buf.is_empty());

    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let allowed = socket.connect(up.local_addr()).await.unwrap();
    let resp = raw_get(allowed, "h", "/").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let conns = up.wait_for_connections(2, WAIT).await.unwrap();
    assert!(conns[0].refused);
    assert_eq!(conns[0].peer_addr.ip().to_string(), "127.0.0.1");
    assert!(!conns[1].refused);
    assert_eq!(conns[1].peer_addr.ip(), source);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].peer_addr.ip(), source);
}

#[tokio::test]
async fn https_upstream_records_sni_with_a_rustls_client() {
    let certs = CertFactory::new().unwrap();
    let up = HttpsUpstream::start(loopback(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let config = client_config_simple(
        &RootSource::Pem(certs.ca_pem().to_string()),
        None,
        false,
        vec![b"http/1.1".to_vec()],
    )
    .unwrap();
    let tcp = TcpStream::connect(up.local_addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("edition.cnn.com").unwrap(), tcp)
        .await
        .unwrap();
    let resp = raw_get(tls, "edition.cnn.com", "/politics").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let reqs = up.wait_for_requests(1, WAIT).await.unwrap();
    assert!(reqs[0].tls);
    assert_eq!(reqs[0].sni.as_deref(), Some("edition.cnn.com"));
    let conns = up.connections();
    assert_eq!(conns[0].alpn.as_deref(), Some("http/1.1"));
    assert_eq!(conns[0].handshake_error, None);
}

#[tokio::test]
async fn tcp_recorder_echoes_and_records() {
    let rec = TcpRecorder::start_with_banner(loopback(), b"hi\n".to_vec())
        .await
        .unwrap();
    let mut conn = TcpStream::connect(rec.local_addr()).await.unwrap();
    let mut banner = [0u8; 3];
    conn.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"hi\n");
    conn.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    conn.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    let conns = rec.wait_for_connections(1, WAIT).await.unwrap();
    assert_eq!(conns[0].peer_addr, conn.local_addr().unwrap());
    assert_eq!(rec.bytes_received(), 4);

    // Another source only (a claimed address nothing connects from).
    let net = Block::claim().unwrap();
    rec.allow_only(&net.ip(2).to_string()).unwrap();
    let mut refused = TcpStream::connect(rec.local_addr()).await.unwrap();
    let mut buf = Vec::new();
    let _ = refused.read_to_end(&mut buf).await;
    assert!(buf.is_empty());
    assert!(rec.wait_for_connections(2, WAIT).await.unwrap()[1].refused);
}

#[tokio::test]
async fn curl_https_round_trip() {
    if skip_without_curl("curl_https_round_trip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = CertFactory::new().unwrap();
    let ca_file = certs.write_ca_file(dir.path()).unwrap();
    let up = HttpsUpstream::start(loopback(), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let port = up.local_addr().port();
    let ip = up.local_addr().ip();

    let ok = Curl::new(up.url_for("edition.cnn.com", "/politics"))
        .resolve("edition.cnn.com", port, ip)
        .cacert(&ca_file)
        .http1_1()
        .fetch()
        .await
        .unwrap();
    assert_eq!((ok.status, ok.exit_code), (200, 0), "{ok:?}");
    assert_eq!(ok.body, "ok\n");

    let h2 = Curl::new(up.url_for("edition.cnn.com", "/h2"))
        .resolve("edition.cnn.com", port, ip)
        .cacert(&ca_file)
        .http2()
        .status()
        .await
        .unwrap();
    assert_eq!(h2.status, 200, "{h2:?}");

    let reqs = up.wait_for_requests(2, WAIT).await.unwrap();
    assert_eq!(reqs[0].sni.as_deref(), Some("edition.cnn.com"));
    assert_eq!(reqs[0].host, Some(format!("edition.cnn.com:{port}")));
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert_eq!(reqs[1].version, "HTTP/2.0");
    // h2 has no Host header; the :authority stands in.
    assert_eq!(reqs[1].host, Some(format!("edition.cnn.com:{port}")));
    assert!(reqs[0].header("user-agent").unwrap().starts_with("curl/"));

    // Without the CA the certificate is not trusted (curl exit 60).
    let untrusted = Curl::new(up.url_for("edition.cnn.com", "/"))
        .resolve("edition.cnn.com", port, ip)
        .status()
        .await
        .unwrap();
    assert_eq!(
        (untrusted.status, untrusted.exit_code),
        (0, 60),
        "{untrusted:?}"
    );
    assert!(!untrusted.stderr.is_empty());
}

#[tokio::test]
async fn curl_mutual_tls_and_plain_statuses() {
    if skip_without_curl("curl_mutual_tls_and_plain_statuses") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = CertFactory::new().unwrap();
    let clients = CertFactory::new().unwrap();
    let ca_file = certs.write_ca_file(dir.path()).unwrap();
    let client = clients.client_cert(&["client.example"]).unwrap();
    let (cert, key) = clients
        .write_cert_files(&client, dir.path(), "client")
        .unwrap();
    let up =
        HttpsUpstream::start_mutual(loopback(), &certs, &["partner.example"], clients.ca_pem())
            .await
            .unwrap();
    let port = up.local_addr().port();
    let ip = up.local_addr().ip();
    let base = Curl::new(up.url_for("partner.example", "/"))
        .resolve("partner.example", port, ip)
        .cacert(&ca_file);

    let with_cert = base
        .clone()
        .client_cert(&cert, &key)
        .status()
        .await
        .unwrap();
    assert_eq!(with_cert.status, 200, "{with_cert:?}");
    let conns = up.wait_for_connections(1, WAIT).await.unwrap();
    assert_eq!(conns[0].peer_sans, vec!["client.example".to_string()]);

    let without = base.status().await.unwrap();
    assert_ne!(without.exit_code, 0, "{without:?}");
    assert_eq!(without.status, 0);

    let plain = HttpUpstream::start(loopback()).await.unwrap();
    plain.set_reply("/down", Reply::status(503).with_body("down"));
    let out = Curl::new(plain.url("/down")).fetch().await.unwrap();
    assert_eq!(
        (out.status, out.body.as_str(), out.exit_code),
        (503, "down", 0)
    );
    let out = Curl::new(plain.url("/"))
        .method("POST")
        .data("payload")
        .http2()
        .status()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let reqs = plain.wait_for_requests(2, WAIT).await.unwrap();
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(&reqs[1].body[..], b"payload");
    assert_eq!(reqs[1].version, "HTTP/2.0");
}
