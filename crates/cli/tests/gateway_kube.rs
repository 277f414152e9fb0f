//! `egress gateway run` in Kubernetes mode: the real binary reading the seed's HTTP egress
//! configuration (Gateway, DestinationRule, VirtualService, ServiceEntry and the shared
//! MeshConfig) from egress's own Kubernetes API server (the one `egress up` serves: TLS, a
//! bearer token, watches from the store's change feed) through `--kubeconfig`, with its identity
//! from the downward API (`POD_NAMESPACE`, `POD_NAME`, `SERVICE_ACCOUNT` and a labels file).
//! curl goes through it to a stand-in `edition.cnn.com` on loopback port 80; changes pushed on
//! the watch take effect without a restart; an invalid object is refused on its own while the
//! others apply, deletions included. Also in this mode: a TCP tunnel through a real tinyproxy
//! (the DYNAMIC_DNS wildcard's Kubernetes-mode test is in `gateway_dynamic_dns.rs`).
//!
//! The stand-in (host 1) and the gateway (host 2) live on a claimed loopback block; the
//! stand-in binds port 80 there, which needs root (CI runs as root); without it the test prints
//! SKIPPED.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_apiserver::{ApiServer, Config, kubeconfig, requestlog::RequestLog};
use egress_identity::MeshCa;
use egress_store::{ObjectKey, Store};
use egress_testkit::addrs::Block;
use egress_testkit::{Curl, HttpUpstream, eventually};
use serde_json::Value;

/// egress's Kubernetes API over a store of its own, on a claimed loopback address, with a
/// kubeconfig for it and its request log. (Fault injection, dropped watches and compaction are
/// the test kit's mock API server's, in `crates/kube/tests`.)
struct ProductApi {
    store: Store,
    kubeconfig: std::path::PathBuf,
    requests: std::path::PathBuf,
    _server: ApiServer,
    _block: Block,
}

impl ProductApi {
    async fn start(dir: &std::path::Path) -> ProductApi {
        let store = Store::open(dir.join("store")).unwrap();
        for ns in [NS, "aks-istio-system"] {
            store
                .transact(|tx| {
                    tx.apply(
                        &ObjectKey::new("", "Namespace", None, ns),
                        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    )
                    .map(|_| ())
                })
                .unwrap();
        }
        let block = Block::claim().unwrap();
        let ip = IpAddr::V4(block.ip(1));
        let ca = MeshCa::generate("cluster.local").unwrap();
        let tls = ca
            .server_config(&[ip.to_string()], Duration::from_secs(3600), Vec::new())
            .unwrap();
        let token = egress_apiserver::new_token();
        let requests = dir.join("api-requests.log");
        let server = ApiServer::start(Config {
            addr: SocketAddr::new(ip, 6443),
            store: store.clone(),
            tls,
            token: token.clone(),
            pod_logs: None,
            exec: None,
            request_log: Some(RequestLog::open(&requests).unwrap()),
        })
        .await
        .unwrap();
        let kubeconfig = dir.join("kubeconfig");
        kubeconfig::merge(
            &kubeconfig,
            &kubeconfig::Entry {
                server: &format!("https://{}", server.local_addr()),
                ca_pem: ca.root_pem(),
                token: &token,
            },
        )
        .unwrap();
        ProductApi {
            store,
            kubeconfig,
            requests,
            _server: server,
            _block: block,
        }
    }

    /// Stores `object` as is (as an earlier writer left it: no admission on this path).
    fn put(&self, object: Value) {
        let key = ObjectKey::from_object(&object).unwrap();
        self.store
            .transact(|tx| tx.apply(&key, object.clone()).map(|_| ()))
            .unwrap();
    }

    fn delete(&self, kind: &str, name: &str) {
        let key = ObjectKey::new("networking.istio.io", kind, Some(NS), name);
        self.store
            .transact(|tx| tx.delete(&key).map(|_| ()))
            .unwrap();
    }

    /// The request targets (`/path?query`) in its log.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.requests)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(2).map(str::to_owned))
            .collect()
    }
}

const NS: &str = "aks-istio-egress";
const WAIT: Duration = Duration::from_secs(30);

/// A running `egress gateway run --kubeconfig` process and what it printed.
struct Gateway {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Its listen address.
    ip: IpAddr,
}

impl Gateway {
    /// On `ip`, resolving edition.cnn.com to `upstream_ip`.
    fn start(
        kubeconfig: &std::path::Path,
        labels_file: &std::path::Path,
        ip: IpAddr,
        upstream_ip: IpAddr,
    ) -> Gateway {
        let host = format!("edition.cnn.com={upstream_ip}");
        Gateway::start_with(kubeconfig, labels_file, ip, &["--host", &host])
    }

    /// On `ip`, with `extra` flags (`--host NAME=IP` overrides).
    fn start_with(
        kubeconfig: &std::path::Path,
        labels_file: &std::path::Path,
        ip: IpAddr,
        extra: &[&str],
    ) -> Gateway {
        let mut child = Command::new(common::bin())
            .env_remove("EGRESS_STORE")
            .env_remove("KUBECONFIG")
            .env("POD_NAMESPACE", NS)
            .env("POD_NAME", "asm-egress-test-5d9c8f7b6-x2x4z")
            .env("SERVICE_ACCOUNT", "asm-egress-test")
            .args(["gateway", "run", "--kubeconfig"])
            .arg(kubeconfig)
            .arg("--labels-file")
            .arg(labels_file)
            .args([
                "--revision",
                "asm-1-24",
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
        Gateway { child, log, ip }
    }

    fn lines(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    async fn wait_ready(&self) {
        let url = format!("http://{}:15021/healthz/ready", self.ip);
        let ok = eventually(WAIT, || {
            let url = url.clone();
            async move {
                Curl::new(url)
                    .status()
                    .await
                    .map(|o| o.status == 200)
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(ok.is_ok(), "gateway never became ready:\n{}", self.lines());
    }

    /// Waits until a log line contains every one of `needles`.
    async fn wait_log(&self, needles: &[&str]) -> String {
        let line = common::wait_for_line(&self.log, needles, WAIT).await;
        line.unwrap_or_else(|| panic!("no log line containing {needles:?}:\n{}", self.lines()))
    }

    /// Waits until `GET http://edition.cnn.com/politics` through the gateway answers `status`.
    async fn wait_status(&self, status: u16) {
        let ok = eventually(WAIT, || async move {
            get_politics(self.ip).await == Some(status)
        })
        .await;
        assert!(
            ok.is_ok(),
            "never answered {status}; last: {:?}\n{}",
            get_politics(self.ip).await,
            self.lines()
        );
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// What the sidecar sends: Host edition.cnn.com to the gateway's port 80 (target 8080) on
/// `gateway_ip`.
async fn get_politics(gateway_ip: IpAddr) -> Option<u16> {
    Curl::new("http://edition.cnn.com/politics")
        .connect_to("edition.cnn.com", 80, &gateway_ip.to_string(), 8080)
        .status()
        .await
        .ok()
        .map(|o| o.status)
}

/// The seed's MeshConfig and first scenario (ServiceEntry, then Gateway + DestinationRule +
/// VirtualService), as JSON objects in the gateway's namespace.
fn seed_objects() -> Option<Vec<Value>> {
    let all = common::seed()?;
    let mut out = Vec::new();
    for (i, manifest) in all[0..3].iter().enumerate() {
        for doc in egress_model::yaml::parse_stream(manifest).unwrap() {
            let mut v = doc.value;
            if i > 0 {
                v["metadata"]["namespace"] = Value::from(NS);
            }
            out.push(v);
        }
    }
    Some(out)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap()
}

#[tokio::test]
async fn kube_mode_serves_the_seed_and_follows_the_watch() {
    let Some(objects) = seed_objects() else {
        return;
    };
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return;
    }
    let net = Block::claim().unwrap();
    let (upstream_ip, gateway_ip) = (IpAddr::V4(net.ip(1)), IpAddr::V4(net.ip(2)));
    let upstream = match HttpUpstream::start(SocketAddr::new(upstream_ip, 80)).await {
        Ok(u) => u,
        Err(e) => {
            egress_testkit::skip(&format!(
                "cannot bind {upstream_ip}:80 for edition.cnn.com ({e}); run as root"
            ));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let api = ProductApi::start(dir.path()).await;
    for o in &objects {
        api.put(o.clone());
    }
    let kubeconfig = api.kubeconfig.clone();
    let labels = dir.path().join("labels");
    std::fs::write(
        &labels,
        "app=\"asm-egress-test\"\nistio=\"asm-egress-test\"\npod-template-hash=\"5d9c8f7b6\"\n",
    )
    .unwrap();
    let mut gw = Gateway::start(&kubeconfig, &labels, gateway_ip, upstream_ip);
    gw.wait_ready().await;

    // The seed's HTTP egress: 200 from the stand-in, Host preserved.
    assert_eq!(get_politics(gateway_ip).await, Some(200), "{}", gw.lines());
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/politics");
    assert_eq!(reqs[0].host.as_deref(), Some("edition.cnn.com"));

    // Scoped watches: Secrets only in the own namespace, the MeshConfig by name.
    let requests = api.requests();
    let secrets: Vec<&str> = requests
        .iter()
        .map(|r| r.split('?').next().unwrap_or_default())
        .filter(|p| p.ends_with("/secrets"))
        .collect();
    assert!(
        !secrets.is_empty()
            && secrets
                .iter()
                .all(|p| *p == "/api/v1/namespaces/aks-istio-egress/secrets"),
        "{secrets:?}"
    );
    assert!(
        requests.iter().any(
            |r| r.starts_with("/api/v1/namespaces/aks-istio-system/configmaps?")
                && r.contains("fieldSelector=metadata.name%3Distio-shared-configmap-asm-1-24")
        ),
        "{requests:?}"
    );

    // A change on the watch: the VirtualService removed -> no route (404 NR) ...
    let vs = find(&objects, "VirtualService");
    let vs_name = vs["metadata"]["name"].as_str().unwrap();
    api.delete("VirtualService", vs_name);
    gw.wait_status(404).await;
    // ... and back, without a restart.
    api.put(vs.clone());
    gw.wait_status(200).await;
    assert!(gw.still_running());

    // An invalid object is refused on its own (it never had a good version: absent); the
    // rest keeps serving.
    let broken = serde_json::json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {
            "hosts": ["broken.example.com"],
            "gateways": ["istio-egressgateway"],
            "http": [{"redirect": {"uri": "/x", "redirectCode": 200}}]
        }
    });
    api.put(broken);
    let refused = gw
        .wait_log(&["configuration refused", "broken", "must be 3xx"])
        .await;
    assert!(
        refused.contains("VirtualService aks-istio-egress/broken (not applied"),
        "{refused}"
    );
    assert_eq!(get_politics(gateway_ip).await, Some(200), "{}", gw.lines());
    // A valid change while the invalid object is there applies (per-object last-good): the
    // deletion reaches the gateway, and the refusal is not logged again.
    api.delete("VirtualService", vs_name);
    gw.wait_status(404).await;
    let refusals = gw
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("configuration refused") && l.contains("must be 3xx"))
        .count();
    assert_eq!(refusals, 1, "{}", gw.lines());
    // Removing the invalid object: every object applies again.
    api.delete("VirtualService", "broken");
    gw.wait_log(&["configuration recovered"]).await;
    gw.wait_status(404).await;
    assert!(gw.still_running());
}

#[test]
fn kube_mode_usage_errors_name_the_file_and_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    let out = Command::new(common::bin())
        .env_remove("KUBECONFIG")
        .args(["gateway", "run", "--kubeconfig"])
        .arg(&missing)
        .args(["--context", "prod", "--health-port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("\"prod\""), "{err}");

    // Neither a kubeconfig nor a Pod's service account: both reasons are given.
    let out = Command::new(common::bin())
        .env("KUBECONFIG", &missing)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .args(["gateway", "run", "--kube", "--health-port", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no Kubernetes configuration"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("in-cluster"), "{err}");

    let out = Command::new(common::bin())
        .args(["gateway", "run", "--watch-namespace", "apps", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--watch-namespace needs Kubernetes mode"),
        "{err}"
    );

    let out = Command::new(common::bin())
        .args(["gateway", "run", "--kubeconfig", "k", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn a_malformed_labels_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "istio=\"ok\"\napp=unquoted\n").unwrap();
    let out = Command::new(common::bin())
        .args(["gateway", "run", "--config"])
        .arg(dir.path())
        .arg("--labels-file")
        .arg(&labels)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains(&labels.display().to_string()), "{err}");
}

/// The gateway's labels as the downward API writes them.
const LABELS: &str =
    "app=\"asm-egress-test\"\nistio=\"asm-egress-test\"\npod-template-hash=\"5d9c8f7b6\"\n";

/// Objects of a YAML stream, in the gateway's namespace.
fn objects(yaml: &str) -> Vec<Value> {
    egress_model::yaml::parse_stream(yaml)
        .unwrap()
        .into_iter()
        .map(|d| {
            let mut v = d.value;
            v["metadata"]["namespace"] = Value::from(NS);
            v
        })
        .collect()
}

/// Kubernetes mode: TCP through a corporate forward proxy's CONNECT tunnel
/// (Istio's `tunneling/gateway/tcp`), a server-first stand-in behind a real tinyproxy.
#[tokio::test(flavor = "multi_thread")]
async fn kube_mode_tunnels_tcp_through_a_forward_proxy() {
    use egress_testkit::forward::{TINYPROXY_PORT, Tinyproxy};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let net = Block::claim().unwrap();
    let gateway_ip = IpAddr::V4(net.ip(3));
    let target = egress_testkit::TcpRecorder::start_with_banner(
        SocketAddr::new(IpAddr::V4(net.ip(1)), 18025),
        b"220 external ready\r\n".to_vec(),
    )
    .await
    .unwrap();
    let Some(proxy) = Tinyproxy::start(IpAddr::V4(net.ip(2)), &[18025]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = ProductApi::start(dir.path()).await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: external}}\nspec:\n  hosts: [external.example]\n  ports:\n  - {{number: 80, name: tcp, protocol: TCP}}\n  resolution: DNS\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: forward-proxy}}\nspec:\n  hosts: [forward-proxy.example]\n  ports:\n  - {{number: {TINYPROXY_PORT}, name: tcp, protocol: TCP}}\n  resolution: STATIC\n  endpoints:\n  - address: {pip}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\nspec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n  - port: {{number: 80, name: tcp, protocol: TCP}}\n    hosts: [external.example]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: through-forward-proxy}}\nspec:\n  hosts: [external.example]\n  gateways: [egress]\n  tcp:\n  - match:\n    - port: 80\n    route:\n    - destination: {{host: forward-proxy.example, subset: external-svc-tcp, port: {{number: {TINYPROXY_PORT}}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tunnel-via-forward-proxy}}\nspec:\n  host: forward-proxy.example\n  subsets:\n  - name: external-svc-tcp\n    trafficPolicy:\n      tunnel: {{protocol: CONNECT, targetHost: \"{th}\", targetPort: {tp}}}\n",
        pip = proxy.addr.ip(),
        th = target.local_addr().ip(),
        tp = target.local_addr().port(),
    );
    for mut o in objects(&yaml) {
        if o["metadata"]["namespace"].is_null() {
            o["metadata"]["namespace"] = Value::from(NS);
        }
        api.put(o);
    }
    let kubeconfig = api.kubeconfig.clone();
    let labels = dir.path().join("labels");
    std::fs::write(&labels, LABELS).unwrap();
    let gw = Gateway::start_with(&kubeconfig, &labels, gateway_ip, &[]);
    gw.wait_ready().await;
    let ok = eventually(WAIT, || async move {
        let Ok(mut s) = tokio::net::TcpStream::connect((gateway_ip, 8080)).await else {
            return false;
        };
        let mut banner = [0u8; 20];
        let got = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut banner)).await;
        if !matches!(got, Ok(Ok(_))) || &banner != b"220 external ready\r\n" {
            return false;
        }
        let _ = s.write_all(b"ping").await;
        let mut echo = [0u8; 4];
        let got = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo)).await;
        matches!(got, Ok(Ok(_))) && &echo == b"ping"
    })
    .await;
    assert!(
        ok.is_ok(),
        "no banner and echo through the tunnel:\n{}",
        gw.lines()
    );
    assert!(!target.connections().is_empty());
}
