//! Telemetry access-log control end to end: manifests decoded by `egress_model`, compiled by
//! `egress_compile` for the seed's gateway, served by a started [`Proxy`] with a capturing
//! access logger, and real HTTP requests through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use egress_compile::{GatewayIdentity, compile, inputs_from_resources};
use egress_model::{DecodeOptions, Outcome, decode_file};
mod data_plane;

use data_plane::{CNN, Gw, NS, WAIT, cnn_to_loopback, loopback};
use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_snapshot::snapshot::Snapshot;
use egress_testkit::HttpUpstream;
use http_body_util::{BodyExt, Empty};

/// The seed's gateway with both Service ports on ephemeral target ports.
fn identity() -> GatewayIdentity {
    GatewayIdentity {
        namespace: NS.into(),
        labels: BTreeMap::from([("istio".into(), "asm-egress-test".into())]),
        service_account: "asm-egress-test".into(),
        revision: None,
        service_ports: BTreeMap::from([(80, 0), (443, 0)]),
    }
}

fn compile_yaml(yaml: &str) -> Snapshot {
    let opts = DecodeOptions {
        default_namespace: Some(NS.into()),
        enforce_namespace: false,
    };
    let resources: Vec<_> = decode_file("telemetry.yaml", yaml, &opts)
        .into_iter()
        .map(|o| match o {
            Outcome::Valid(d) => d.resource,
            other => panic!("manifest is not valid: {other:?}"),
        })
        .collect();
    compile(&identity(), &inputs_from_resources(resources), 1)
}

/// An HTTP gateway for `edition.cnn.com` to a ServiceEntry on `port`, plus `extra` documents.
fn manifests(port: u16, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\n\
         spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n  \
         - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: ['*']\n---\n\
         apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: cnn}}\n\
         spec:\n  hosts: ['{CNN}']\n  ports:\n  - {{number: {port}, name: http, protocol: HTTP}}\n  \
         resolution: DNS\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: cnn}}\n\
         spec:\n  hosts: ['{CNN}']\n  gateways: [egress]\n  http:\n  - route:\n    \
         - destination: {{host: '{CNN}', port: {{number: {port}}}}}\n---\n{extra}"
    )
}

fn telemetry(spec: &str) -> String {
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: logs}}\nspec:\n{spec}"
    )
}

impl Gw {
    async fn cnn(snapshot: Snapshot) -> Gw {
        Gw::start(snapshot, cnn_to_loopback(), None).await
    }

    async fn cnn_logging(snapshot: Snapshot, logger: AccessLogger, log: CapturedLines) -> Gw {
        Gw::start_logging(snapshot, cnn_to_loopback(), None, logger, log).await
    }

    /// Sends `GET /<path>` with `host`; returns the status once the body has been read.
    async fn get(&self, host: &str, path: &str) -> u16 {
        let stream = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri(path)
            .header("host", host)
            .header("connection", "close")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(WAIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        status
    }

    /// Waits until the proxy has finished (logged or not) `n` requests answered with `code`:
    /// every finished entry is recorded into the metrics just before its line is written.
    async fn wait_finished(&self, code: u16, n: usize) {
        let metrics = Arc::clone(self.proxy.metrics());
        let needle = format!("response_code=\"{code}\"");
        let seen = egress_testkit::eventually(WAIT, || {
            let text = metrics.render();
            let count = text
                .lines()
                .filter(|l| l.starts_with("istio_requests_total{") && l.contains(&needle))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            async move { count >= n as f64 }
        })
        .await;
        assert!(seen.is_ok(), "{n} requests with {code} never finished");
    }
}

#[tokio::test]
async fn filter_logs_the_404_but_not_the_200() {
    let upstream = HttpUpstream::start(SocketAddr::new(loopback(), 0))
        .await
        .unwrap();
    let yaml = manifests(
        upstream.local_addr().port(),
        &telemetry(
            "  accessLogging:\n  - providers: [{name: envoy}]\n    filter:\n      expression: response.code >= 400\n",
        ),
    );
    let s = compile_yaml(&yaml);
    assert_eq!(
        s.access_log.filter.as_ref().map(|f| f.expression.as_str()),
        Some("response.code >= 400")
    );
    let gw = Gw::cnn(s).await;

    assert_eq!(gw.get(CNN, "/ok").await, 200);
    gw.wait_finished(200, 1).await;
    assert_eq!(gw.get("unknown.example.org", "/missing").await, 404);
    let lines = gw.log.wait_for(1, WAIT).await;
    assert_eq!(lines.len(), 1, "only the 404 is logged: {lines:?}");
    assert!(
        lines[0].contains("\"GET /missing HTTP/1.1\" 404 NR "),
        "{}",
        lines[0]
    );
    assert_eq!(upstream.requests().len(), 1);

    // Later 200s stay out, later errors come in.
    assert_eq!(gw.get(CNN, "/ok-again").await, 200);
    gw.wait_finished(200, 2).await;
    assert_eq!(gw.get("other.example.org", "/second").await, 404);
    let lines = gw.log.wait_for(2, WAIT).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("/second"), "{}", lines[1]);
}

/// A writer whose bytes the test reads (a gateway's container log).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A gateway writing its log the way a gateway process does: only while the snapshot's
/// settings ask for logging.
async fn gated(snapshot: Snapshot) -> (Gw, Shared) {
    let out = Shared::default();
    let logger = AccessLogger::to_writer_when_configured(Box::new(out.clone()));
    let (_, unused) = AccessLogger::capture();
    (Gw::cnn_logging(snapshot, logger, unused).await, out)
}

#[tokio::test]
async fn disabled_telemetry_logs_nothing_and_no_telemetry_keeps_mesh_config() {
    let upstream = HttpUpstream::start(SocketAddr::new(loopback(), 0))
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let mesh = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  \
                namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    \
                accessLogFormat: \"%RESPONSE_CODE% %REQ(:PATH)%\"\n---\n";

    // MeshConfig alone: every request, MeshConfig's format.
    let s = compile_yaml(&manifests(port, mesh));
    assert_eq!(s.access_log.provider, None);
    let (gw, out) = gated(s).await;
    assert_eq!(gw.get(CNN, "/a").await, 200);
    let logged = egress_testkit::eventually(WAIT, || {
        let text = out.text();
        async move { text == "200 /a\n" }
    })
    .await;
    assert!(logged.is_ok(), "{:?}", out.text());

    // A namespace Telemetry disabling logging wins over MeshConfig.
    let off = telemetry("  accessLogging:\n  - providers: [{name: envoy}]\n    disabled: true\n");
    let s = compile_yaml(&manifests(port, &format!("{mesh}{off}")));
    assert_eq!(s.access_log.path, None);
    let (gw, out) = gated(s).await;
    assert_eq!(gw.get(CNN, "/b").await, 200);
    assert_eq!(gw.get("unknown.example.org", "/c").await, 404);
    gw.wait_finished(200, 1).await;
    gw.wait_finished(404, 1).await;
    assert_eq!(out.text(), "");
}
