//! Istio's `tests/integration/telemetry/policy/traffic_allow_any_test.go` and
//! `traffic_registry_only_test.go` (with `helper_test.go`'s setup), reproduced: a client
//! workload whose Sidecar resource imports only the `service` namespace and the gateway's,
//! with `outboundTrafficPolicy` ALLOW_ANY or REGISTRY_ONLY; a destination it does not know
//! (HTTP, HTTPS and TCP ports); and `some-external-site.com` routed through the egress gateway
//! to that destination, which adds `handled-by-egress-gateway`. Istio's manifests are compiled
//! for the client's sidecar and for the gateway and served by the real data planes on a claimed
//! loopback block; the client's connections enter the sidecar as captured connections do
//! (`CONNECT` to the original destination on the explicit proxy), and the checks are Istio's:
//! the status, the header, and `destination_service_name` (PassthroughCluster,
//! BlackHoleCluster, the gateway's Service) in the sidecar's `/stats/prometheus`.
//!
//! Ports: Istio's 80/443/9090 become 18080/18443/19090 (unprivileged; the block is ours alone).
//! Istio's "Conflict" cases: the `istio.io` ServiceEntry declares HTTP on the ports the client
//! sends TLS (19443) and raw TCP (19091) to; the sidecar's HTTP port hands bytes that are not
//! HTTP to the outbound policy, as Envoy's `http_inspector` does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use common::NS;
use egress_compile::sidecar_view::routable;
use egress_compile::snapshot::WorkloadIdentity;
use egress_compile::{GatewayIdentity, compile, compile_sidecar, inputs_from_resources};
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::metrics::LocalWorkload;
use egress_proxy::sidecar::{Sidecar, SidecarOptions, SidecarTelemetry};
use egress_proxy::{Proxy, ProxyOptions, UpstreamOptions};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream, TcpRecorder};
use http_body_util::{BodyExt, Empty};
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Duration, Instant, timeout};

/// Upper bound of every wait (never a performance assertion).
const WAIT: Duration = Duration::from_secs(20);

const APPS: &str = "apps";
const SERVICE: &str = "service";
const EXTERNAL: &str = "some-external-site.com";
const DESTINATION: &str = "destination.apps.svc.cluster.local";
const GATEWAY_HOST: &str = "istio-egressgateway.aks-istio-egress.svc.cluster.local";
const HANDLED: &str = "handled-by-egress-gateway";
const HTTP: u16 = 18080;
const HTTPS: u16 = 18443;
const TCP: u16 = 19090;
/// The ports `istio.io`'s ServiceEntry declares HTTP on, spoken to with TLS and raw TCP.
const HTTPS_CONFLICT: u16 = 19443;
const TCP_CONFLICT: u16 = 19091;

// ---------------------------------------------------------------- Istio's manifests

/// `helper_test.go`'s objects (ServiceEntry `http`, the Sidecar scope, the Gateway,
/// VirtualService and `ext-service-entry`), plus the egress gateway's Service and Pod.
fn manifests(mode: &str, gateway_ip: IpAddr) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: http, namespace: {SERVICE}}}
spec:
  hosts: [istio.io]
  location: MESH_EXTERNAL
  ports:
  - {{name: http-for-https, number: 19443, protocol: HTTP}}
  - {{name: http-for-tcp, number: 19091, protocol: HTTP}}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: restrict-to-service-entry-namespace, namespace: {APPS}}}
spec:
  egress:
  - hosts: ["{SERVICE}/*", "{NS}/*"]
  outboundTrafficPolicy: {{mode: {mode}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: istio-egressgateway, namespace: {SERVICE}}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {HTTP}, name: http, protocol: HTTP}}
    hosts: ["{EXTERNAL}"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: route-via-egressgateway, namespace: {SERVICE}}}
spec:
  hosts: ["{EXTERNAL}"]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: {HTTP}
    route:
    - destination:
        host: {GATEWAY_HOST}
        port: {{number: {HTTP}}}
      weight: 100
  - match:
    - gateways: [istio-egressgateway]
      port: {HTTP}
    route:
    - destination: {{host: {EXTERNAL}}}
    headers:
      request:
        add: {{{HANDLED}: "true"}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-service-entry, namespace: {SERVICE}}}
spec:
  hosts: ["{EXTERNAL}"]
  location: MESH_EXTERNAL
  endpoints:
  - {{address: {DESTINATION}, network: external}}
  ports:
  - {{number: {HTTP}, name: http}}
  resolution: DNS
---
apiVersion: v1
kind: Service
metadata: {{name: istio-egressgateway, namespace: {NS}}}
spec:
  clusterIP: 10.0.0.10
  selector: {{istio: egressgateway}}
  ports:
  - {{name: http2, port: {HTTP}, targetPort: {HTTP}, protocol: TCP}}
---
apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-0
  namespace: {NS}
  labels: {{istio: egressgateway, app: istio-egressgateway}}
spec:
  serviceAccountName: istio-egressgateway
  containers: [{{name: istio-proxy, image: egress}}]
status:
  phase: Running
  podIP: {gateway_ip}
  conditions: [{{type: Ready, status: "True"}}]
"#
    )
}

// ---------------------------------------------------------------- the setting

/// The destination (HTTP, HTTPS and TCP on `.10`), the egress gateway (`.1`) and the
/// client's sidecar (`.5`), all serving one outbound policy's configuration.
struct Setting {
    _net: Block,
    _snapshots: (
        watch::Sender<Arc<egress_compile::Snapshot>>,
        watch::Sender<Arc<egress_compile::Snapshot>>,
    ),
    certs: CertFactory,
    http: HttpUpstream,
    https: HttpsUpstream,
    tcp: TcpRecorder,
    /// TLS and TCP on the ports declared HTTP ("Conflict").
    conflict: (HttpsUpstream, TcpRecorder),
    gateway: Proxy,
    sidecar: Sidecar,
}

impl Setting {
    async fn start(mode: &str) -> Setting {
        let net = Block::claim().unwrap();
        let gateway_ip = IpAddr::V4(net.ip(1));
        let destination_ip = IpAddr::V4(net.ip(10));
        let certs = CertFactory::new().unwrap();
        let http = HttpUpstream::start(SocketAddr::new(destination_ip, HTTP))
            .await
            .unwrap();
        let https = HttpsUpstream::start(
            SocketAddr::new(destination_ip, HTTPS),
            &certs,
            &[DESTINATION],
        )
        .await
        .unwrap();
        let tcp = TcpRecorder::start(SocketAddr::new(destination_ip, TCP))
            .await
            .unwrap();
        let conflict = (
            HttpsUpstream::start(
                SocketAddr::new(destination_ip, HTTPS_CONFLICT),
                &certs,
                &[DESTINATION],
            )
            .await
            .unwrap(),
            TcpRecorder::start(SocketAddr::new(destination_ip, TCP_CONFLICT))
                .await
                .unwrap(),
        );

        let inputs = inputs_from_resources(resources(&manifests(mode, gateway_ip)));

        let gateway_id = GatewayIdentity {
            namespace: NS.into(),
            labels: BTreeMap::from([
                ("istio".into(), "egressgateway".into()),
                ("app".into(), "istio-egressgateway".into()),
            ]),
            service_account: "istio-egressgateway".into(),
            revision: None,
            service_ports: BTreeMap::from([(HTTP, HTTP)]),
        };
        let gateway_snapshot = compile(&gateway_id, &inputs, 1);
        let (gateway_tx, gateway_rx) = watch::channel(Arc::new(gateway_snapshot));
        let gateway_options = ProxyOptions {
            listen_address: Some(gateway_ip),
            metrics_port: Some(0),
            upstream: UpstreamOptions {
                hosts: vec![(DESTINATION.into(), vec![destination_ip])],
                ..UpstreamOptions::default()
            },
            ..ProxyOptions::default()
        };
        let gateway = Proxy::start(gateway_rx, gateway_options, None, AccessLogger::disabled())
            .await
            .unwrap();

        let client = WorkloadIdentity {
            namespace: APPS.into(),
            labels: BTreeMap::from([
                ("app".into(), "client".into()),
                ("version".into(), "v1".into()),
            ]),
            service_account: "client".into(),
            revision: None,
            service_ports: BTreeMap::new(),
        };
        let sidecar_snapshot = routable(compile_sidecar(&client, &inputs, 1));
        let (sidecar_tx, sidecar_rx) = watch::channel(Arc::new(sidecar_snapshot));
        let telemetry = SidecarTelemetry {
            metrics_port: Some(0),
            prometheus_port: None,
            workload: LocalWorkload {
                workload: "client-v1".into(),
                namespace: APPS.into(),
                app: "client".into(),
                version: "v1".into(),
                ..LocalWorkload::default()
            },
        };
        let sidecar_options = SidecarOptions {
            proxy_listen: SocketAddr::new(IpAddr::V4(net.ip(5)), 0),
            ..SidecarOptions::default()
        };
        let sidecar = Sidecar::start_with_telemetry(
            sidecar_rx,
            sidecar_options,
            telemetry,
            None,
            AccessLogger::disabled(),
        )
        .await
        .unwrap();
        Setting {
            _net: net,
            _snapshots: (gateway_tx, sidecar_tx),
            certs,
            http,
            https,
            tcp,
            conflict,
            gateway,
            sidecar,
        }
    }

    fn destination(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.http.local_addr().ip(), port)
    }

    /// A connection from the client to `to`, as the sidecar captures it: a `CONNECT` tunnel
    /// through its explicit proxy, answered 200 (a black hole closes it afterwards).
    async fn captured(&self, to: SocketAddr) -> TcpStream {
        let proxy = self.sidecar.bound()[0].1;
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        let request = format!("CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = timeout(WAIT, stream.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "proxy closed during CONNECT: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream
    }

    /// TLS to the destination's HTTPS port through the sidecar, offering `alpn`.
    async fn tls(
        &self,
        alpn: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.tls_to(HTTPS, alpn).await
    }

    /// TLS to the destination's `port` through the sidecar, offering `alpn`.
    async fn tls_to(
        &self,
        port: u16,
        alpn: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let stream = self.captured(self.destination(port)).await;
        let mut roots = rustls::RootCertStore::empty();
        for der in egress_identity::parse_certs(self.certs.ca_pem(), "test CA").unwrap() {
            roots.add(der).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = rustls::pki_types::ServerName::try_from(DESTINATION).unwrap();
        timeout(
            WAIT,
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream),
        )
        .await
        .unwrap()
    }

    /// The sum of `metric` over the sidecar's samples carrying every pair of `labels`, once
    /// it reaches `at_least` (polled up to [`WAIT`]; the last sum otherwise).
    async fn sidecar_metric(&self, metric: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        poll_metric(
            self.sidecar.metrics_addr().unwrap(),
            metric,
            labels,
            at_least,
        )
        .await
    }

    async fn gateway_metric(&self, metric: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        poll_metric(
            self.gateway.metrics_addr().unwrap(),
            metric,
            labels,
            at_least,
        )
        .await
    }
}

fn resources(yaml: &str) -> Vec<egress_model::Resource> {
    common::resources(yaml)
}

// ---------------------------------------------------------------- clients

/// One HTTP/1.1 `GET /` with `host` over `io`: status.
async fn get_h1<S>(io: S, host: &str) -> u16
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/")
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

/// One HTTP/2 `GET /` with authority `host` over `io` (prior knowledge, or after ALPN h2):
/// status.
async fn get_h2<S>(io: S, host: &str) -> u16
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{host}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

/// Fetches and parses `/stats/prometheus` from `addr`.
async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "GET /stats/prometheus HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Istio's `ValidateMetric`: the query's sum, polled until it reaches `at_least` or [`WAIT`]
/// passes (then the last sum, for the caller's assertion to show).
async fn poll_metric(
    addr: SocketAddr,
    metric: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = sum(&scrape(addr).await, metric, labels);
        if got >= at_least || Instant::now() > deadline {
            return got;
        }
        tokio::task::yield_now().await;
    }
}

const REQUESTS: &str = "istio_requests_total";
const TCP_OPENED: &str = "istio_tcp_connections_opened_total";
const TCP_CLOSED: &str = "istio_tcp_connections_closed_total";

// ---------------------------------------------------------------- ALLOW_ANY

/// Istio: `TestOutboundTrafficPolicy_AllowAny` — "HTTP Traffic", "HTTP H2 Traffic", "HTTPS
/// Traffic", "HTTPS H2 Traffic", "HTTP Traffic Egress", "HTTP H2 Traffic Egress", "TCP",
/// "HTTPS Traffic Conflict", "HTTPS H2 Traffic Conflict", "TCP Conflict".
#[tokio::test]
async fn istio_test_outbound_traffic_policy_allow_any() {
    let s = Setting::start("ALLOW_ANY").await;
    let passthrough_200 = [
        ("reporter", "source"),
        ("destination_service_name", "PassthroughCluster"),
        ("response_code", "200"),
    ];

    // "HTTP Traffic": an HTTP port the sidecar has a listener for, no route ⇒ passthrough.
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h1(stream, &s.destination(HTTP).to_string()).await, 200);
    assert_eq!(s.http.requests().last().unwrap().version, "HTTP/1.1");
    let got = s.sidecar_metric(REQUESTS, &passthrough_200, 1.0).await;
    assert!(got >= 1.0, "HTTP Traffic: {got}");

    // "HTTP H2 Traffic": h2c with prior knowledge (the destination sees HTTP/2: see
    // `istio_test_outbound_traffic_policy_allow_any_h2_passthrough_protocol`).
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h2(stream, &s.destination(HTTP).to_string()).await, 200);
    let got = s.sidecar_metric(REQUESTS, &passthrough_200, 2.0).await;
    assert!(got >= 2.0, "HTTP H2 Traffic: {got}");

    // "HTTPS Traffic": no listener for the port ⇒ TCP passthrough, TLS end to end.
    let passthrough_tcp = [
        ("reporter", "source"),
        ("destination_service_name", "PassthroughCluster"),
    ];
    let tls = s.tls(b"http/1.1").await.unwrap();
    assert_eq!(get_h1(tls, DESTINATION).await, 200);
    assert_eq!(s.https.requests().last().unwrap().version, "HTTP/1.1");
    let got = s.sidecar_metric(TCP_OPENED, &passthrough_tcp, 1.0).await;
    assert!(got >= 1.0, "HTTPS Traffic: {got}");

    // "HTTPS H2 Traffic"
    let tls = s.tls(b"h2").await.unwrap();
    assert_eq!(get_h2(tls, DESTINATION).await, 200);
    assert_eq!(s.https.requests().last().unwrap().version, "HTTP/2.0");
    let got = s.sidecar_metric(TCP_OPENED, &passthrough_tcp, 2.0).await;
    assert!(got >= 2.0, "HTTPS H2 Traffic: {got}");

    // "HTTP Traffic Egress": Host some-external-site.com ⇒ the mesh route to the egress
    // gateway, which adds the header and sends it to the destination.
    let gateway_200 = [
        ("reporter", "source"),
        ("destination_service_name", "istio-egressgateway"),
        ("response_code", "200"),
    ];
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h1(stream, EXTERNAL).await, 200);
    let last = s.http.requests().last().unwrap().clone();
    assert_eq!(last.header(HANDLED), Some("true"), "{last:?}");
    assert_eq!(last.version, "HTTP/1.1");
    let got = s.sidecar_metric(REQUESTS, &gateway_200, 1.0).await;
    assert!(got >= 1.0, "HTTP Traffic Egress: {got}");
    let at_gateway = [
        ("destination_service_name", EXTERNAL),
        ("response_code", "200"),
    ];
    let got = s.gateway_metric(REQUESTS, &at_gateway, 1.0).await;
    assert!(got >= 1.0, "the gateway's own count: {got}");

    // "HTTP H2 Traffic Egress": h2 to the sidecar; the gateway still speaks HTTP/1.1 to the
    // destination, as its ServiceEntry port says.
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h2(stream, EXTERNAL).await, 200);
    let last = s.http.requests().last().unwrap().clone();
    assert_eq!(last.header(HANDLED), Some("true"), "{last:?}");
    assert_eq!(last.version, "HTTP/1.1");
    let got = s.sidecar_metric(REQUESTS, &gateway_200, 2.0).await;
    assert!(got >= 2.0, "HTTP H2 Traffic Egress: {got}");

    // "TCP": no listener for the port ⇒ passthrough; counted when the connection closes.
    let mut stream = s.captured(s.destination(TCP)).await;
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    drop(stream);
    let closed = [
        ("reporter", "source"),
        ("destination_service_name", "PassthroughCluster"),
        ("source_workload", "client-v1"),
    ];
    let got = s.sidecar_metric(TCP_CLOSED, &closed, 1.0).await;
    assert!(got >= 1.0, "TCP: {got}");
    assert!(!s.tcp.connections().is_empty());

    // "HTTPS Traffic Conflict" / "HTTPS H2 Traffic Conflict": TLS to a port declared HTTP ⇒
    // not HTTP, so the passthrough, TLS end to end.
    let before = s.sidecar_metric(TCP_OPENED, &passthrough_tcp, 0.0).await;
    let tls = s.tls_to(HTTPS_CONFLICT, b"http/1.1").await.unwrap();
    assert_eq!(get_h1(tls, DESTINATION).await, 200);
    let tls = s.tls_to(HTTPS_CONFLICT, b"h2").await.unwrap();
    assert_eq!(get_h2(tls, DESTINATION).await, 200);
    assert_eq!(s.conflict.0.requests().len(), 2);
    let got = s
        .sidecar_metric(TCP_OPENED, &passthrough_tcp, before + 2.0)
        .await;
    assert!(
        got >= before + 2.0,
        "HTTPS Traffic Conflict: {got} (before {before})"
    );

    // "TCP Conflict": raw TCP to a port declared HTTP ⇒ the passthrough.
    let mut stream = s.captured(s.destination(TCP_CONFLICT)).await;
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    drop(stream);
    let got = s.sidecar_metric(TCP_CLOSED, &closed, 2.0).await;
    assert!(got >= 2.0, "TCP Conflict: {got}");
    assert!(!s.conflict.1.connections().is_empty());
}

/// Istio: `TestOutboundTrafficPolicy_AllowAny`/"HTTP H2 Traffic", its `Protocol: "HTTP/2.0"`
/// expectation: Istio's PassthroughCluster uses the downstream protocol, so h2c from the
/// client reaches the destination as HTTP/2.
#[tokio::test]
async fn istio_test_outbound_traffic_policy_allow_any_h2_passthrough_protocol() {
    let s = Setting::start("ALLOW_ANY").await;
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h2(stream, &s.destination(HTTP).to_string()).await, 200);
    assert_eq!(s.http.requests().last().unwrap().version, "HTTP/2.0");
}

// ---------------------------------------------------------------- REGISTRY_ONLY

/// Istio: `TestOutboundTrafficPolicy_RegistryOnly` — "HTTP Traffic", "HTTPS Traffic", "HTTP
/// Traffic Egress", "TCP", "HTTPS Traffic Conflict", "TCP Conflict".
#[tokio::test]
async fn istio_test_outbound_traffic_policy_registry_only() {
    let s = Setting::start("REGISTRY_ONLY").await;

    // "HTTP Traffic": 502 from the sidecar's block_all route.
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h1(stream, &s.destination(HTTP).to_string()).await, 502);
    let blackhole_502 = [
        ("reporter", "source"),
        ("destination_service_name", "BlackHoleCluster"),
        ("response_code", "502"),
    ];
    let got = s.sidecar_metric(REQUESTS, &blackhole_502, 1.0).await;
    assert!(got >= 1.0, "HTTP Traffic: {got}");
    assert!(s.http.requests().is_empty());

    // "HTTPS Traffic": the black hole closes the connection; the handshake fails.
    assert!(s.tls(b"http/1.1").await.is_err());
    let blackhole = [("destination_service_name", "BlackHoleCluster")];
    let got = s.sidecar_metric(TCP_CLOSED, &blackhole, 1.0).await;
    assert!(got >= 1.0, "HTTPS Traffic: {got}");
    assert!(s.https.connections().is_empty());

    // "HTTP Traffic Egress": the gateway route is in the registry ⇒ 200 through it.
    let stream = s.captured(s.destination(HTTP)).await;
    assert_eq!(get_h1(stream, EXTERNAL).await, 200);
    let last = s.http.requests().last().unwrap().clone();
    assert_eq!(last.header(HANDLED), Some("true"), "{last:?}");
    let gateway_200 = [
        ("destination_service_name", "istio-egressgateway"),
        ("response_code", "200"),
    ];
    let got = s.sidecar_metric(REQUESTS, &gateway_200, 1.0).await;
    assert!(got >= 1.0, "HTTP Traffic Egress: {got}");

    // "TCP": closed at once by the black hole.
    let tcp_blackhole = [
        ("reporter", "source"),
        ("destination_service_name", "BlackHoleCluster"),
        ("source_workload", "client-v1"),
    ];
    let before = s.sidecar_metric(TCP_CLOSED, &tcp_blackhole, 0.0).await;
    let mut stream = s.captured(s.destination(TCP)).await;
    let _ = stream.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    let read = timeout(WAIT, stream.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let got = s
        .sidecar_metric(TCP_CLOSED, &tcp_blackhole, before + 1.0)
        .await;
    assert!(got >= before + 1.0, "TCP: {got} (before {before})");
    assert!(s.tcp.connections().is_empty());

    // "HTTPS Traffic Conflict" and "TCP Conflict": not HTTP on a port declared HTTP ⇒ the
    // black hole.
    let before = s.sidecar_metric(TCP_CLOSED, &tcp_blackhole, 0.0).await;
    assert!(s.tls_to(HTTPS_CONFLICT, b"http/1.1").await.is_err());
    let mut stream = s.captured(s.destination(TCP_CONFLICT)).await;
    let _ = stream.write_all(b"ping").await;
    let read = timeout(WAIT, stream.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let got = s
        .sidecar_metric(TCP_CLOSED, &tcp_blackhole, before + 2.0)
        .await;
    assert!(got >= before + 2.0, "Conflict: {got} (before {before})");
    assert!(s.conflict.0.connections().is_empty());
    assert!(s.conflict.1.connections().is_empty());
}
