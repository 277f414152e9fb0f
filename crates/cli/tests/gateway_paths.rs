//! Path normalization through a real `egress gateway run --config DIR`, with the real `curl`
//! sending each path byte for byte (`--path-as-is`): the encoded and doubled paths that once
//! slipped past a DENY of `/admin` and an ALLOW of `/public/*` are refused with 403, a `%00`
//! is refused with 400, and what reaches the upstream (and the access log) is the path as
//! MeshConfig `pathNormalization` normalizes it, in each of its four modes.
//!
//! The last test is differential: some 700 raw paths go through Envoy 1.40 configured as
//! istiod configures it for each mode and through egress gateways in the same modes; the status
//! class and the path the upstream receives must agree.
//!
//! Each test claims a loopback block: the upstream on host 1 (a port the system picks), the
//! gateways on hosts 2 to 11 (service port 80 → 8080), Envoy on host 12.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[allow(dead_code)]
mod envoy;
mod gateway_process;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use egress_testkit::addrs::Block;
use egress_testkit::{Curl, HttpUpstream};
use gateway_process::{
    GatewayProcess, NS, gateway_yaml, service_entry_yaml, upstream, virtual_service_yaml,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "paths.example.com";

/// A gateway at `ip` with the MeshConfig's `pathNormalization` set to `mode` (unset: `None`),
/// the AuthorizationPolicy `policy` (a `spec` body, or none) and a route from `HOST` to `up`.
async fn gateway(
    dir: &tempfile::TempDir,
    tag: &str,
    ip: Ipv4Addr,
    mode: Option<&str>,
    policy: Option<&str>,
    up: SocketAddr,
) -> GatewayProcess {
    let config: PathBuf = dir.path().join(tag);
    std::fs::create_dir(&config).unwrap();
    let normalization = mode
        .map(|m| format!("    pathNormalization:\n      normalization: {m}\n"))
        .unwrap_or_default();
    let mesh = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n{normalization}"
    );
    std::fs::write(config.join("mesh.yaml"), mesh).unwrap();
    std::fs::write(config.join("gateway.yaml"), gateway_yaml(tag, &[HOST])).unwrap();
    std::fs::write(
        config.join("route.yaml"),
        format!(
            "{}---\n{}",
            service_entry_yaml("upstream", "up.paths.test", up),
            virtual_service_yaml(tag, "route", HOST, "up.paths.test")
        ),
    )
    .unwrap();
    if let Some(spec) = policy {
        let policy = format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: paths\n  namespace: {NS}\nspec:\n  selector:\n    matchLabels:\n      istio: {tag}test\n{spec}"
        );
        std::fs::write(config.join("policy.yaml"), policy).unwrap();
    }
    let gw = GatewayProcess::start(None, Some(&config), ip.into(), tag);
    gw.wait_ready().await;
    gw.wait_route(HOST, 200, Some(up)).await;
    gw
}

/// `GET <path>` sent as is; the status.
async fn status(gw: &GatewayProcess, path: &str) -> u16 {
    let out = Curl::new(format!("http://{HOST}:{}{path}", gw.addr().port()))
        .args(["--path-as-is"])
        .resolve(HOST, gw.addr().port(), gw.ip)
        .status()
        .await
        .unwrap();
    out.status
}

/// `GET <path>` sent as is must reach `up` as `want`; the gateway's answer must be 200.
async fn forwarded(gw: &GatewayProcess, up: &HttpUpstream, path: &str, want: &str) {
    let before = up.requests().len();
    assert_eq!(status(gw, path).await, 200, "{path}:\n{}", gw.lines());
    let requests = up.requests();
    let seen: Vec<&str> = requests[before..].iter().map(|r| r.path.as_str()).collect();
    assert_eq!(seen, [want], "{path} reached the upstream as {seen:?}");
}

fn skip_without_curl() -> bool {
    if Curl::available() {
        return false;
    }
    egress_testkit::skip("needs curl");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_paths_do_not_slip_past_a_deny() {
    if skip_without_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Block::claim().unwrap();
    let up = upstream(net.ip(1)).await;
    let deny = "  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: [\"/admin\", \"/admin/*\"]\n";
    // Istio's default normalization (BASE): the MeshConfig leaves it unset.
    let gw = gateway(&dir, "pd", net.ip(2), None, Some(deny), up.local_addr()).await;
    let bypasses = [
        "/admin",
        "/admin/x",
        "/%61dmin",
        "/adm%69n/x",
        "/x/%2e%2e/admin",
        "/%2e/admin",
        "/%2E%2E/admin",
        "//admin",
        "/admin%2fx",
        "/admin%2Fx",
        "/\\admin",
        "/admin%5cx",
        "/./admin/",
        "/x/../admin",
    ];
    for path in bypasses {
        assert_eq!(status(&gw, path).await, 403, "{path}:\n{}", gw.lines());
    }
    assert!(
        up.requests().iter().all(|r| !r.path.contains("dmin")),
        "a denied path reached the upstream: {:?}",
        up.requests()
    );
    assert_eq!(status(&gw, "/admin%00").await, 400);
    gw.wait_log(&[
        "\"GET /admin%00 HTTP/1.1\" 400",
        "path_normalization_failed",
    ])
    .await;

    // Everything else is forwarded, normalized, and logged as forwarded.
    forwarded(&gw, &up, "/%6Fther/./x/../y?q=%2e", "/other/y?q=%2e").await;
    gw.wait_log(&["\"GET /other/y?q=%2e HTTP/1.1\" 200"]).await;
    forwarded(&gw, &up, "/a\\b", "/a/b").await;
    forwarded(&gw, &up, "/a%2fb", "/a%2fb").await;
    forwarded(&gw, &up, "/caf%C3%A9/%7e", "/caf%C3%A9/~").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_paths_do_not_escape_an_allow() {
    if skip_without_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Block::claim().unwrap();
    let up = upstream(net.ip(1)).await;
    let allow = "  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        paths: [\"/public/*\", \"/\"]\n";
    let gw = gateway(&dir, "pa", net.ip(3), None, Some(allow), up.local_addr()).await;
    for path in [
        "/public/%2e%2e/admin",
        "/public/..%2fadmin",
        "/public/..%5Cadmin",
        "/public/../admin",
        "/public/%2E./admin",
        "/admin",
    ] {
        assert_eq!(status(&gw, path).await, 403, "{path}:\n{}", gw.lines());
    }
    forwarded(&gw, &up, "/public/x", "/public/x").await;
    forwarded(&gw, &up, "/%70ublic/a/./b", "/public/a/b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_forwards_what_envoy_would() {
    if skip_without_curl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = Block::claim().unwrap();
    let up = upstream(net.ip(1)).await;
    let a = up.local_addr();
    let none = gateway(&dir, "pn", net.ip(4), Some("NONE"), None, a).await;
    let base = gateway(&dir, "pb", net.ip(5), Some("BASE"), None, a).await;
    let merge = gateway(&dir, "pm", net.ip(6), Some("MERGE_SLASHES"), None, a).await;
    let decode = gateway(
        &dir,
        "pe",
        net.ip(7),
        Some("DECODE_AND_MERGE_SLASHES"),
        None,
        a,
    )
    .await;

    // (path sent, NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES)
    let table = [
        ("/a/../b", "/a/../b", "/b", "/b", "/b"),
        ("/a//b", "/a//b", "/a//b", "/a/b", "/a/b"),
        ("/a%2fb", "/a%2fb", "/a%2fb", "/a%2fb", "/a/b"),
        ("/a%5Cb", "/a%5Cb", "/a%5Cb", "/a%5Cb", "/a/b"),
        ("/a\\b", "/a\\b", "/a/b", "/a/b", "/a/b"),
        ("/%61%2D%5f", "/%61%2D%5f", "/a-_", "/a-_", "/a-_"),
        (
            "/a%2f..%2fb",
            "/a%2f..%2fb",
            "/a%2f..%2fb",
            "/a%2f..%2fb",
            "/b",
        ),
        (
            "/some%2fdata/%61%62%63",
            "/some%2fdata/%61%62%63",
            "/some%2fdata/abc",
            "/some%2fdata/abc",
            "/some/data/abc",
        ),
        (
            "/some//data///abc",
            "/some//data///abc",
            "/some//data///abc",
            "/some/data/abc",
            "/some/data/abc",
        ),
        (
            "/public/./data/abc/../xyz",
            "/public/./data/abc/../xyz",
            "/public/data/xyz",
            "/public/data/xyz",
            "/public/data/xyz",
        ),
        ("/%2561", "/%2561", "/%2561", "/%2561", "/%2561"),
    ];
    for (sent, n, b, m, d) in table {
        forwarded(&none, &up, sent, n).await;
        forwarded(&base, &up, sent, b).await;
        forwarded(&merge, &up, sent, m).await;
        forwarded(&decode, &up, sent, d).await;
    }
    for gw in [&none, &base, &merge, &decode] {
        assert_eq!(status(gw, "/a%00").await, 400, "{}", gw.lines());
    }
}

/// An upstream that answers every request with `ECHO <request-target as received>`: what a
/// proxy forwarded, without a recording to search.
async fn echo_upstream(addr: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let target = head.split(|b| *b == b' ').nth(1).unwrap_or_default();
                let mut body = b"ECHO ".to_vec();
                body.extend_from_slice(target);
                let mut response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\
                     {}: {local}\r\n\r\n",
                    body.len(),
                    gateway_process::UPSTREAM_HEADER
                )
                .into_bytes();
                response.extend_from_slice(&body);
                let _ = tcp.write_all(&response).await;
            });
        }
    });
    local
}

/// `GET <path> HTTP/1.1` written byte for byte on a new connection to `addr`: the status
/// (0 when the connection closed without one) and, when the echo upstream answered, the
/// request-target it received.
async fn raw_get(addr: SocketAddr, path: &[u8]) -> (u16, Option<String>) {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(path);
        request.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        tcp.write_all(&request).await.ok()?;
        // Read the head, then exactly content-length bytes: never wait for the close, which
        // Envoy delays.
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        let (head_len, body_len) = loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        };
        while response.len() < head_len + body_len {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let echoed = text
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| body.strip_prefix("ECHO "))
            .map(str::to_owned);
        Some((status, echoed))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {addr} within 20 s"))
        .unwrap_or((0, None))
}

/// The raw paths of the differential test: every pair of the tokens, and a few single paths
/// with characters a path may not carry raw.
fn corpus() -> Vec<Vec<u8>> {
    let tokens = [
        "a", ".", "..", "%2e", "%2E%2e", ".%2e", "%2f", "%2F..%2F", "%5c", "%5C..", "\\", "",
        "%41", "%7e", "%25", "%2561", "%zz", "%", "%C3%A9", "%3f", ";x", "%20", "b%2fc", "~",
        "%00", "%2d%5F",
    ];
    let mut paths = Vec::new();
    for a in tokens {
        paths.push(format!("/{a}").into_bytes());
        for b in tokens {
            paths.push(format!("/{a}/{b}").into_bytes());
        }
    }
    for p in [
        "/a\"b",
        "/a<b>",
        "/a{b}",
        "/a|b",
        "/a^b",
        "/a`b",
        "/x/../..?q=%2e/../%2f",
        "/caf\u{e9}",
        "/a/./b/../../../c",
        "/%2e%2e%2f%2e%2e",
        "/a/%2e%2e%5c..%5cb",
        "/a[b]",
        "/a'b",
        "/a$b!*@:=+,&(c)",
        "/a%5b%5D",
        "/a;b=c/d",
        "/%4",
        "/%%41",
        "/%2",
        "/%7f",
        "/%80",
        "/%ff",
        "/%E2%82%AC",
        "/a%2F%2f%2Fb",
        "//a//b//",
        "///",
        "/%2F",
    ] {
        paths.push(p.as_bytes().to_vec());
    }
    paths
}

/// The two places egress refuses (400) what Envoy forwards, on purpose (docs/limits.md):
/// `%00` under NONE (Istio's table refuses it in every mode; Envoy only when it normalizes),
/// and the raw `<`, `>` and `` ` `` that RFC 3986 does not allow in a path (hyper's parser
/// refuses them; Envoy escapes them).
fn known_stricter(mode: &str, path: &[u8], envoy: u16, egress: u16) -> bool {
    let raw = String::from_utf8_lossy(path);
    egress == 400
        && envoy == 200
        && ((mode == "NONE" && raw.contains("%00")) || raw.contains(['<', '>', '`']))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_egress_normalize_alike() {
    let Some(envoy_bin) = envoy::envoy_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let net = Block::claim().unwrap();
    let a = echo_upstream((net.ip(1), 0).into()).await;
    let envoy_ip = net.ip(12).to_string();
    let envoy = envoy::start_envoy(
        &envoy_bin,
        dir.path(),
        "envoy",
        "paths.yaml",
        &envoy_ip,
        &[
            ("ENVOY_IP", envoy_ip.clone()),
            ("UPSTREAM_IP", a.ip().to_string()),
            ("UPSTREAM_PORT", a.port().to_string()),
        ],
    )
    .await;
    let modes = [
        ("NONE", "dn", net.ip(8), 8081),
        ("BASE", "db", net.ip(9), 8082),
        ("MERGE_SLASHES", "dm", net.ip(10), 8083),
        ("DECODE_AND_MERGE_SLASHES", "de", net.ip(11), 8084),
    ];
    let mut compared = 0;
    let mut differ = Vec::new();
    let mut stricter = 0;
    let (mut envoy_time, mut egress_time) = (Duration::ZERO, Duration::ZERO);
    for (mode, tag, ip, envoy_port) in modes {
        let gw = gateway(&dir, tag, ip, Some(mode), None, a).await;
        let envoy_addr: SocketAddr = format!("{envoy_ip}:{envoy_port}").parse().unwrap();
        for path in corpus() {
            let t = Instant::now();
            let theirs = raw_get(envoy_addr, &path).await;
            envoy_time += t.elapsed();
            let t = Instant::now();
            let ours = raw_get(gw.addr(), &path).await;
            egress_time += t.elapsed();
            compared += 1;
            if known_stricter(mode, &path, theirs.0, ours.0) {
                stricter += 1;
                continue;
            }
            // The status class must agree (a 4xx from Envoy's codec or normalization is a 4xx
            // here too), and so must the forwarded path.
            if theirs.0 / 100 != ours.0 / 100 || theirs.1 != ours.1 {
                let line = format!(
                    "{mode} {:?}: envoy {theirs:?}, egress {ours:?}",
                    String::from_utf8_lossy(&path)
                );
                println!("{line}");
                differ.push(line);
            }
        }
    }
    println!(
        "{compared} requests compared, {} differ, {stricter} refused here on purpose \
         (envoy {envoy_time:?}, egress {egress_time:?})",
        differ.len()
    );
    assert!(
        differ.is_empty(),
        "{} of {compared} differ:\n{}\n{}",
        differ.len(),
        differ
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        envoy.dump().lines().take(20).collect::<Vec<_>>().join("\n")
    );
}
