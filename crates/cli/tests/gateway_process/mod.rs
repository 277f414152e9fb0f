//! A running `egress gateway run` process for the reload tests (`gateway_reload`,
//! `gateway_lastgood`): the manifests they feed it, the process with its captured log, HTTP/1.1
//! requests through it, and its `egress_config_*` figures. Each test file passes its own `tag`
//! (`lb`, `lg`), which names its Gateway (`<tag>-gateway`) and its pod labels (`<tag>test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use egress_testkit::{HttpUpstream, eventually};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::common;

/// The header the testkit's upstreams answer with their own address.
pub const UPSTREAM_HEADER: &str = "x-testkit-upstream";
/// The gateway's target port for service port 80.
pub const TARGET_PORT: u16 = 8080;
/// The gateway's namespace.
pub const NS: &str = "aks-istio-egress";
/// The shared MeshConfig with access logs to stdout.
pub const MESH_CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n";

/// A Gateway `<tag>-gateway` selecting `istio=<tag>test`, plain HTTP on port 80 for `hosts`.
pub fn gateway_yaml(tag: &str, hosts: &[&str]) -> String {
    let hosts: String = hosts.iter().map(|h| format!("    - {h}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {tag}-gateway\n  namespace: {NS}\nspec:\n  selector:\n    istio: {tag}test\n  servers:\n  - port:\n      number: 80\n      name: http\n      protocol: HTTP\n    hosts:\n{hosts}"
    )
}

/// A `STATIC` ServiceEntry `name` whose one endpoint is `upstream` (its real port).
pub fn service_entry_yaml(name: &str, host: &str, upstream: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  hosts:\n  - {host}\n  location: MESH_EXTERNAL\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: STATIC\n  endpoints:\n  - address: {}\n    ports:\n      http: {}\n",
        upstream.ip(),
        upstream.port()
    )
}

/// A VirtualService `name` bound to `<tag>-gateway`, routing `host` to `destination` port 80.
pub fn virtual_service_yaml(tag: &str, name: &str, host: &str, destination: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  hosts:\n  - {host}\n  gateways:\n  - {tag}-gateway\n  http:\n  - route:\n    - destination:\n        host: {destination}\n        port:\n          number: 80\n"
    )
}

/// A running `egress gateway run` process and what it printed.
pub struct GatewayProcess {
    /// The process.
    pub child: Child,
    /// Every line it printed so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// The address it listens on.
    pub ip: IpAddr,
}

impl GatewayProcess {
    /// Starts `egress [--store S] gateway run [--config DIR]` as the `<tag>test` pod, listening
    /// on `ip`.
    pub fn start(
        store: Option<&Path>,
        config: Option<&Path>,
        ip: IpAddr,
        tag: &str,
    ) -> GatewayProcess {
        let ports = format!("80:{TARGET_PORT}");
        GatewayProcess::start_with(store, config, ip, tag, &ports, &[])
    }

    /// Like [`GatewayProcess::start`], with the service ports `service_ports`
    /// (`80:8080,443:8443`) and the further `gateway run` flags `extra`.
    pub fn start_with(
        store: Option<&Path>,
        config: Option<&Path>,
        ip: IpAddr,
        tag: &str,
        service_ports: &str,
        extra: &[String],
    ) -> GatewayProcess {
        let mut cmd = Command::new(common::bin());
        cmd.env_remove("EGRESS_STORE");
        if let Some(store) = store {
            cmd.arg("--store").arg(store);
        }
        cmd.args(["gateway", "run"]);
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd
            .args([
                "--namespace",
                NS,
                "--labels",
                &format!("istio={tag}test,app={tag}test"),
                "--service-account",
                &format!("{tag}test"),
                "--revision",
                "asm-1-24",
                "--service-ports",
                service_ports,
                "--listen-address",
                &ip.to_string(),
                "--drain-grace",
                "1",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (log, _) = common::collect_output(&mut child);
        GatewayProcess { child, log, ip }
    }

    /// The HTTP listener (service port 80).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, TARGET_PORT)
    }

    /// Everything printed so far.
    pub fn lines(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// How many printed lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until health on `:15021` answers 200.
    pub async fn wait_ready(&self) {
        let health = SocketAddr::new(self.ip, 15021);
        let ok = eventually(Duration::from_secs(30), || async move {
            matches!(
                get(health, "localhost", "/healthz/ready").await,
                Ok((200, _))
            )
        })
        .await;
        assert!(ok.is_ok(), "gateway never became ready:\n{}", self.lines());
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    pub async fn wait_log(&self, needles: &[&str]) -> String {
        let line = common::wait_for_line(&self.log, needles, Duration::from_secs(20)).await;
        line.unwrap_or_else(|| panic!("no log line containing {needles:?}:\n{}", self.lines()))
    }

    /// Waits until a request for `host` is answered with `status` by `upstream` (when given).
    pub async fn wait_route(&self, host: &str, status: u16, upstream: Option<SocketAddr>) {
        let addr = self.addr();
        let want = upstream.map(|u| u.to_string());
        let ok = eventually(Duration::from_secs(20), || {
            let want = want.clone();
            async move {
                match get(addr, host, "/").await {
                    Ok((s, from)) => s == status && (want.is_none() || from == want),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(
            ok.is_ok(),
            "{host} never answered {status} from {upstream:?}; last: {:?}\n{}",
            get(addr, host, "/").await,
            self.lines()
        );
    }

    /// Waits until the `egress_config_*` figures satisfy `cond`.
    pub async fn wait_figures(&self, what: &str, cond: impl Fn(&BTreeMap<String, f64>) -> bool) {
        let ip = self.ip;
        let ok = eventually(Duration::from_secs(20), || {
            let cond = &cond;
            async move { cond(&config_figures(ip).await.unwrap_or_default()) }
        })
        .await;
        assert!(
            ok.is_ok(),
            "figures never showed {what}: {:?}\n{}",
            config_figures(self.ip).await,
            self.lines()
        );
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `GET path` with `Host: host` on `sender`; returns the status and the answering upstream.
pub async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> Result<(u16, Option<String>), String> {
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let from = resp
        .headers()
        .get(UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok((status, from))
}

/// One request on a new connection.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(u16, Option<String>), String> {
    let mut sender = connect(addr).await?;
    send(&mut sender, host, path).await
}

/// A recording upstream on `ip`, on a port the system picks.
pub async fn upstream(ip: Ipv4Addr) -> HttpUpstream {
    HttpUpstream::start((ip, 0).into()).await.unwrap()
}

/// The `egress_config_*` samples of a gateway's `:15020/stats/prometheus`, parsed with a
/// Prometheus text-format parser, keyed `name{label=value,...}` (labels sorted) or `name`.
pub async fn config_figures(ip: IpAddr) -> Result<BTreeMap<String, f64>, String> {
    let out = egress_testkit::Curl::new(format!("http://{ip}:15020/stats/prometheus"))
        .fetch()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if out.status != 200 {
        return Err(format!("{out:?}"));
    }
    let lines = out.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| e.to_string())?;
    Ok(scrape
        .samples
        .into_iter()
        .filter(|s| s.metric.starts_with("egress_config_"))
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (key, value)
        })
        .collect())
}
