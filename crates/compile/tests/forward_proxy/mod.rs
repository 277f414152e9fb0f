//! Real forward proxies on loopback for the tunnel tests, as Istio's `tunneling_test.go` runs
//! its `external-forward-proxy`: tinyproxy (HTTP/1.1 CONNECT, plain; installed by `.ci/run`)
//! and Envoy (`$EGRESS_ENVOY` or `.ci/install-envoy`'s venv) with a plain and a TLS listener
//! whose HTTP connection manager takes HTTP/1.1 and HTTP/2 (`codec_type: AUTO`, ALPN `h2` and
//! `http/1.1` on TLS) and terminates `CONNECT` and, with `allow_post`, `POST`, forwarding the
//! tunnel's bytes to the target its authority names. Both are killed (by their own process id)
//! when dropped; a missing binary is a skip, which fails under `EGRESS_TEST_STRICT=1`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use egress_testkit::{CertFactory, eventually};

/// Upper bound of every wait here (never a performance assertion).
const WAIT: Duration = Duration::from_secs(20);

pub use egress_testkit::forward::{TINYPROXY_PORT, Tinyproxy};
/// Envoy's TLS listener for HTTP/1.1 (Istio's HTTP/1.1 TLS port).
pub const ENVOY_H1_TLS_PORT: u16 = 4128;
/// Envoy's plain listener (Istio's HTTP/2 plain port).
pub const ENVOY_PLAIN_PORT: u16 = 5128;
/// Envoy's TLS listener for HTTP/2 (Istio's HTTP/2 TLS port).
pub const ENVOY_TLS_PORT: u16 = 6128;
/// The name in the Envoy proxy's certificate.
pub const PROXY_NAME: &str = "forward-proxy.example";

/// Waits until `addr` accepts TCP connections.
async fn listening(addr: SocketAddr, what: &str) {
    eventually(WAIT, || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
    .unwrap_or_else(|_| panic!("{what} listens on {addr}"));
}

/// Envoy as the forward proxy: plain on 5128, TLS on 4128 and 6128.
pub struct EnvoyProxy {
    child: Child,
    pub ip: IpAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for EnvoyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One listener's HTTP connection manager: each target's authority is a virtual host whose
/// CONNECT and POST requests are terminated into a TCP connection to it.
fn hcm(log: &Path, targets: &[SocketAddr]) -> String {
    let mut vhosts = String::new();
    for (i, t) in targets.iter().enumerate() {
        vhosts.push_str(&format!(
            "            - name: t{i}\n              domains: [\"{t}\"]\n              routes:\n\
             \x20             - match: {{connect_matcher: {{}}}}\n\
             \x20               route: {{cluster: t{i}, upgrade_configs: [{{upgrade_type: CONNECT, connect_config: {{}}}}]}}\n\
             \x20             - match: {{prefix: \"/\", headers: [{{name: \":method\", string_match: {{exact: POST}}}}]}}\n\
             \x20               route: {{cluster: t{i}, upgrade_configs: [{{upgrade_type: CONNECT, connect_config: {{allow_post: true}}}}]}}\n"
        ));
    }
    format!(
        "      - name: envoy.filters.network.http_connection_manager\n\
         \x20       typed_config:\n\
         \x20         \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n\
         \x20         stat_prefix: forward_proxy\n\
         \x20         codec_type: AUTO\n\
         \x20         http2_protocol_options: {{allow_connect: true}}\n\
         \x20         upgrade_configs: [{{upgrade_type: CONNECT}}]\n\
         \x20         access_log:\n\
         \x20         - name: envoy.access_loggers.file\n\
         \x20           typed_config:\n\
         \x20             \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n\
         \x20             path: {log}\n\
         \x20             log_format: {{text_format: \"forward-proxy %REQ(:METHOD)% %REQ(:AUTHORITY)% %PROTOCOL% %RESPONSE_CODE% %DOWNSTREAM_LOCAL_PORT% %DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME%\\n\"}}\n\
         \x20         route_config:\n\
         \x20           virtual_hosts:\n{vhosts}\
         \x20         http_filters:\n\
         \x20         - name: envoy.filters.http.router\n\
         \x20           typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n",
        log = log.display(),
    )
}

impl EnvoyProxy {
    /// Starts Envoy on `ip` forwarding tunnels to `targets` (by their `ip:port` authority),
    /// with a certificate for [`PROXY_NAME`] from `certs`; `None` after reporting the skip.
    pub async fn start(
        ip: IpAddr,
        certs: &CertFactory,
        targets: &[SocketAddr],
    ) -> Option<EnvoyProxy> {
        let envoy = match egress_testkit::envoy::binary() {
            Ok(p) => p,
            Err(reason) => {
                egress_testkit::skip(&reason);
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let cert = certs.server_cert(&[PROXY_NAME]).unwrap();
        let (cert, key) = certs
            .write_cert_files(&cert, dir.path(), "forward-proxy")
            .unwrap();
        let log = dir.path().join("access.log");
        std::fs::write(&log, "").unwrap();
        let hcm = hcm(&log, targets);
        let tls = format!(
            "      transport_socket:\n\
             \x20       name: envoy.transport_sockets.tls\n\
             \x20       typed_config:\n\
             \x20         \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n\
             \x20         common_tls_context:\n\
             \x20           alpn_protocols: [h2, http/1.1]\n\
             \x20           tls_certificates:\n\
             \x20           - certificate_chain: {{filename: {}}}\n\
             \x20             private_key: {{filename: {}}}\n",
            cert.display(),
            key.display()
        );
        let listener = |name: &str, port: u16, tls: &str| {
            format!(
                "  - name: {name}\n    address: {{socket_address: {{address: {ip}, port_value: {port}}}}}\n\
                 \x20   listener_filters:\n\
                 \x20   - name: envoy.filters.listener.tls_inspector\n\
                 \x20     typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}\n\
                 \x20   filter_chains:\n    - filters:\n{hcm}{tls}"
            )
        };
        let mut clusters = String::new();
        for (i, t) in targets.iter().enumerate() {
            clusters.push_str(&format!(
                "  - name: t{i}\n    connect_timeout: 2s\n    type: STATIC\n    load_assignment:\n      \
                 cluster_name: t{i}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: \
                 {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}\n",
                t.ip(),
                t.port()
            ));
        }
        let config = format!(
            "admin:\n  address: {{socket_address: {{address: {ip}, port_value: 15000}}}}\n\
             static_resources:\n  listeners:\n{}{}{}  clusters:\n{clusters}",
            listener("h1_tls", ENVOY_H1_TLS_PORT, &tls),
            listener("plain", ENVOY_PLAIN_PORT, ""),
            listener("tls", ENVOY_TLS_PORT, &tls),
        );
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, &config).unwrap();
        let stderr = std::fs::File::create(dir.path().join("envoy.err")).unwrap();
        let child = Command::new(&envoy)
            .arg("-c")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warning",
                "--file-flush-interval-msec",
                "50",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", envoy.display()));
        let proxy = EnvoyProxy {
            child,
            ip,
            log,
            _dir: dir,
        };
        for port in [ENVOY_H1_TLS_PORT, ENVOY_PLAIN_PORT, ENVOY_TLS_PORT] {
            let addr = SocketAddr::new(ip, port);
            eventually(WAIT, || async move {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await
            .unwrap_or_else(|_| panic!("Envoy listens on {addr}\n{}\n{config}", proxy.stderr()));
        }
        Some(proxy)
    }

    /// What Envoy printed on standard error.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("envoy.err")).unwrap_or_default()
    }

    /// The `n`-th access-log line (1-based), waiting for it.
    pub async fn line(&self, n: usize) -> String {
        let mut got = None;
        let found = eventually(WAIT, || {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let line = text.lines().nth(n - 1).map(str::to_owned);
            let done = line.is_some();
            got = line;
            async move { done }
        })
        .await;
        assert!(
            found.is_ok(),
            "Envoy access-log line {n} never came:\n{}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.stderr()
        );
        got.unwrap()
    }
}
