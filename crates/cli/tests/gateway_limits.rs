//! The downstream limit flags of `egress gateway run` and `egress sidecar run`: shown by
//! `--help`, and taking effect in a real gateway process (header limits answered 431 and
//! counted on its metrics endpoint).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use egress_testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLAGS: [&str; 7] = [
    "--request-headers-timeout",
    "--idle-timeout",
    "--stream-idle-timeout",
    "--tcp-idle-timeout",
    "--max-request-headers-kb",
    "--max-request-headers",
    "--max-connections-per-listener",
];

#[test]
fn help_shows_every_limit_with_its_default() {
    for command in [["gateway", "run"], ["sidecar", "run"]] {
        let out = Command::new(common::bin())
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in FLAGS {
            assert!(
                help.contains(flag),
                "{command:?} --help lacks {flag}:\n{help}"
            );
        }
        assert!(help.contains("[default: 10]"), "{help}");
        assert!(help.contains("[default: 3600]"), "{help}");
    }
    let bad = Command::new(common::bin())
        .args([
            "gateway",
            "run",
            "--config",
            "/nonexistent",
            "--idle-timeout",
            "-1",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: limits
  namespace: aks-istio-egress
spec:
  selector:
    istio: asm-egress-test
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - \"*\"
";

/// Sends `request` on a new connection; the response's status.
async fn status(addr: &str, request: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(out.get(9..12)?).parse().ok()
}

#[tokio::test]
async fn header_limit_flags_take_effect_and_are_counted() {
    let net = egress_testkit::addrs::Block::claim().unwrap();
    let ip = net.ip(1).to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).unwrap();
    let mut child = Command::new(common::bin())
        .args(["gateway", "run", "--config"])
        .arg(dir.path())
        .args([
            "--labels",
            "istio=asm-egress-test",
            "--listen-address",
            &ip,
            "--metrics-port",
            "15020",
            "--prometheus-port",
            "0",
            "--max-request-headers",
            "3",
            "--max-request-headers-kb",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, _) = common::collect_output(&mut child);
    let health = format!("{ip}:15021");
    let ready = eventually(Duration::from_secs(30), || async {
        status(
            &health,
            "GET /healthz/ready HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await
            == Some(200)
    })
    .await;
    assert!(
        ready.is_ok(),
        "not ready:\n{}",
        log.lock().unwrap().join("\n")
    );
    let gw = format!("{ip}:8080");
    let plain = "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&gw, plain).await, Some(404), "no route: 404 NR");
    let many = "GET / HTTP/1.1\r\nHost: a.example\r\nx-a: 1\r\nx-b: 2\r\nConnection: close\r\n\r\n";
    assert_eq!(status(&gw, many).await, Some(431));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a.example\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(2048)
    );
    assert_eq!(status(&gw, &big).await, Some(431));
    let metrics = status_text(&format!("{ip}:15020")).await;
    assert!(
        metrics.contains("egress_downstream_limit_total{limit=\"request_headers_too_large\"} 2"),
        "{metrics}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

async fn status_text(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /stats/prometheus HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
