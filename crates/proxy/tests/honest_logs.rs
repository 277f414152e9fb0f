//! A client's `x-envoy-*` request headers are removed before use: a forged
//! `x-envoy-original-path` neither replaces the logged path nor reaches the upstream. A TLS
//! ClientHello whose SNI carries a newline and a whole forged log line, sent on a real socket
//! to a running proxy, still yields exactly one line in the log file's bytes, TEXT and JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod l4_support;
mod l7_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use egress_proxy::Proxy;
use egress_proxy::accesslog::AccessLogger;
use egress_snapshot::snapshot::{AccessLog, LogEncoding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use egress_testkit::addrs::Block;
use egress_testkit::{HttpUpstream, Reply};
use l7_support::*;

const CNN: &str = "edition.cnn.com";

#[tokio::test]
async fn client_envoy_headers_do_not_reach_the_log_or_the_upstream() {
    let net = Block::claim().unwrap();
    let upstream = HttpUpstream::start((net.ip(1), 0).into()).await.unwrap();
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

/// The log's raw bytes, as a file would hold them.
#[derive(Clone, Default)]
struct Bytes(Arc<Mutex<Vec<u8>>>);

impl Write for Bytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Bytes {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A valid DNS name exactly `len` bytes long (labels of at most 63 bytes).
fn name_of_len(len: usize) -> String {
    let mut name = String::new();
    while name.len() < len {
        if !name.is_empty() {
            name.push('.');
        }
        let take = (len - name.len()).min(63);
        name.push_str(&"a".repeat(take));
    }
    assert_eq!(name.len(), len, "no valid name of {len} bytes");
    name
}

#[tokio::test]
async fn a_crafted_sni_cannot_forge_a_log_line() {
    let hostile = "x\n[2026-12-05T00:00:00.000Z] \"- - -\" 0 - - - \"-\" 0 0 1 - \"-\" \"-\" \"-\" \"-\" \"1.2.3.4:443\" outbound|443||evil.example - 10.0.0.1:443 10.0.0.2:1 evil.example -\r\u{1b}[2K";
    // A real rustls ClientHello for a name of the same length, the name's bytes then replaced.
    let placeholder = name_of_len(hostile.len());
    let mut hello = l4_support::client_hello(&placeholder);
    let at = hello
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_bytes())
        .unwrap();
    hello[at..at + hostile.len()].copy_from_slice(hostile.as_bytes());

    let cluster = "outbound|443||edition.cnn.com";
    let dead = l4_support::dead_port().await;
    let snapshot = |version, encoding| {
        let mut s = l4_support::snapshot(
            version,
            vec![l4_support::chains_listener(
                "tls",
                vec![l4_support::passthrough(&["edition.cnn.com"], cluster)],
            )],
            vec![l4_support::static_cluster(cluster, &[dead])],
        );
        s.access_log = AccessLog {
            path: Some("/dev/stdout".into()),
            encoding,
            ..AccessLog::default()
        };
        s
    };
    let log = Bytes::default();
    let logger = AccessLogger::to_writer(Box::new(log.clone()));
    let (tx, rx) = watch::channel(Arc::new(snapshot(1, LogEncoding::Text)));
    let proxy = Proxy::start(rx, l4_support::options(), None, logger)
        .await
        .unwrap();
    let addr = proxy
        .bound()
        .into_iter()
        .find(|(n, _)| n == "tls")
        .map(|(_, a)| a)
        .unwrap();

    for (version, encoding) in [(1, LogEncoding::Text), (2, LogEncoding::Json)] {
        if version > 1 {
            tx.send_replace(Arc::new(snapshot(version, encoding)));
            tokio::time::timeout(WAIT, proxy.wait_applied(version))
                .await
                .unwrap();
        }
        let before = log.text().len();
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&hello).await.unwrap();
        // No chain matches that name: the gateway closes, then logs the connection.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
        let written = egress_testkit::eventually(WAIT, || {
            let log = log.clone();
            async move { log.text().len() > before && log.text().ends_with('\n') }
        })
        .await;
        assert!(written.is_ok(), "nothing logged: {:?}", log.text());
        let text = log.text();
        let new = &text[before..];
        let lines: Vec<&str> = new.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{encoding:?}: one connection, one line: {new:?}"
        );
        assert!(
            !lines[0].chars().any(|c| c.is_control()),
            "{encoding:?}: {new:?}"
        );
        assert!(
            lines[0].contains("evil.example"),
            "the SNI is kept, escaped: {new:?}"
        );
        if encoding == LogEncoding::Json {
            let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
            // Server names are lowercased, as Envoy does.
            assert_eq!(
                v["requested_server_name"],
                hostile.to_ascii_lowercase(),
                "{new:?}"
            );
        }
    }
}
