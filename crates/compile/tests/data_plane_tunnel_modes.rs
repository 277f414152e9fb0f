//! DestinationRule `trafficPolicy.tunnel` in the modes of Istio's
//! `tests/integration/pilot/tunneling_test.go` (testdata `tunneling/sidecar`, `gateway/tcp`,
//! `gateway/tls/istio-mutual`, `gateway/tls/passthrough`), each over every forward proxy of
//! that test: HTTP/1.1 plain (tinyproxy, port 3128), HTTP/1.1 with TLS to the proxy (Envoy,
//! 4128), HTTP/2 plain (Envoy, 5128) and HTTP/2 with TLS (Envoy, 6128), HTTP/2 both with
//! `protocol: CONNECT` and `protocol: POST`. As in Istio, a port is HTTP/2 when its protocol
//! is (the Service port `http2-connect`), and TLS to the proxy comes from the rule's
//! port-level `tls`.
//!
//! Real manifests compiled for a gateway or for the seed's `curl` sidecar, served by the real
//! data plane on claimed loopback addresses, real proxies ([`forward_proxy`]). Each case sends
//! Istio's two requests where the mode carries them: plain bytes through the TCP port (a
//! server-first echo whose banner must arrive through the tunnel) and the client's own TLS
//! through the TLS port (HTTPS to the stand-in, SNI kept). Every case checks the tunnel's
//! cluster in the snapshot (protocol, HTTP version), the data plane's access log (the
//! subset's cluster, the proxy as upstream host) and, for Envoy, the proxy's own log (method,
//! authority, HTTP version, TLS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod data_plane;
mod forward_proxy;
mod sidecar_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::resources;
use data_plane::{Gw, NS, WAIT, compiled, options, seed_gateway};
use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::sidecar::{Sidecar, SidecarOptions};
use egress_snapshot::snapshot::{Snapshot, TunnelProtocol};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpsUpstream, TcpRecorder};
use forward_proxy::{
    ENVOY_H1_TLS_PORT, ENVOY_PLAIN_PORT, ENVOY_TLS_PORT, EnvoyProxy, PROXY_NAME, TINYPROXY_PORT,
    Tinyproxy,
};
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const EXTERNAL: &str = "external.example";
const TINYPROXY: &str = "tinyproxy.example";
const BANNER: &[u8; 20] = b"220 external ready\r\n";

/// One forward proxy of Istio's test, asked one way.
#[derive(Debug, Clone, Copy)]
struct Case {
    /// Istio's name for it.
    label: &'static str,
    host: &'static str,
    port: u16,
    protocol: TunnelProtocol,
    http2: bool,
    tls: bool,
}

const TINYPROXY_CASES: &[Case] = &[Case {
    label: "HTTP/1.1 CONNECT, plain",
    host: TINYPROXY,
    port: TINYPROXY_PORT,
    protocol: TunnelProtocol::Connect,
    http2: false,
    tls: false,
}];

const ENVOY_CASES: &[Case] = &[
    Case {
        label: "HTTP/1.1 CONNECT, TLS to the proxy",
        host: PROXY_NAME,
        port: ENVOY_H1_TLS_PORT,
        protocol: TunnelProtocol::Connect,
        http2: false,
        tls: true,
    },
    Case {
        label: "HTTP/2 CONNECT, plain",
        host: PROXY_NAME,
        port: ENVOY_PLAIN_PORT,
        protocol: TunnelProtocol::Connect,
        http2: true,
        tls: false,
    },
    Case {
        label: "HTTP/2 POST, plain",
        host: PROXY_NAME,
        port: ENVOY_PLAIN_PORT,
        protocol: TunnelProtocol::Post,
        http2: true,
        tls: false,
    },
    Case {
        label: "HTTP/2 CONNECT, TLS to the proxy",
        host: PROXY_NAME,
        port: ENVOY_TLS_PORT,
        protocol: TunnelProtocol::Connect,
        http2: true,
        tls: true,
    },
    Case {
        label: "HTTP/2 POST, TLS to the proxy",
        host: PROXY_NAME,
        port: ENVOY_TLS_PORT,
        protocol: TunnelProtocol::Post,
        http2: true,
        tls: true,
    },
];

impl Case {
    fn subset(&self, kind: &str) -> String {
        match self.protocol {
            TunnelProtocol::Connect => format!("{kind}-connect"),
            TunnelProtocol::Post => format!("{kind}-post"),
        }
    }

    fn cluster(&self, kind: &str) -> String {
        format!("outbound|{}|{}|{}", self.port, self.subset(kind), self.host)
    }

    fn destination(&self, kind: &str) -> String {
        format!(
            "{{host: {}, subset: {}, port: {{number: {}}}}}",
            self.host,
            self.subset(kind),
            self.port
        )
    }
}

/// The Istio modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sidecar,
    GatewayTcp,
    GatewayIstioMutual,
    GatewayPassthrough,
}

// ---------------------------------------------------------------- manifests

/// The external service, both proxies' ServiceEntries and their tunnelling rules (Istio's
/// `destination-rule.tmpl.yaml`, with a POST twin of each subset and the TLS rule for the
/// TLS ports).
fn shared_yaml(world: &World) -> String {
    let subsets = |tcp: SocketAddr, tls: SocketAddr| {
        let mut out = String::new();
        for (proto, suffix) in [("CONNECT", "connect"), ("POST", "post")] {
            for (kind, t) in [("tcp", tcp), ("tls", tls)] {
                out.push_str(&format!(
                    "  - name: {kind}-{suffix}\n    trafficPolicy:\n      tunnel: {{protocol: {proto}, \
                     targetHost: \"{}\", targetPort: {}}}\n",
                    t.ip(),
                    t.port()
                ));
            }
        }
        out
    };
    let subsets = subsets(world.tcp.local_addr(), world.https.local_addr());
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: external}}\n\
spec:\n  hosts: [{EXTERNAL}]\n  ports:\n  - {{number: 80, name: tcp, protocol: TCP}}\n  \
- {{number: 443, name: tls, protocol: TLS}}\n  resolution: DNS\n---\n\
apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: tinyproxy}}\n\
spec:\n  hosts: [{TINYPROXY}]\n  ports:\n  - {{number: {TINYPROXY_PORT}, name: tcp, protocol: TCP}}\n  \
resolution: STATIC\n  endpoints:\n  - address: {tiny}\n---\n\
apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: forward-proxy}}\n\
spec:\n  hosts: [{PROXY_NAME}]\n  ports:\n  - {{number: {ENVOY_H1_TLS_PORT}, name: tcp-tls, protocol: TCP}}\n  \
- {{number: {ENVOY_PLAIN_PORT}, name: http2-connect, protocol: HTTP2}}\n  \
- {{number: {ENVOY_TLS_PORT}, name: http2-connect-tls, protocol: HTTP2}}\n  \
resolution: STATIC\n  endpoints:\n  - address: {envoy}\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tunnel-via-tinyproxy}}\n\
spec:\n  host: {TINYPROXY}\n  subsets:\n{subsets}---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tunnel-via-forward-proxy}}\n\
spec:\n  host: {PROXY_NAME}\n  trafficPolicy:\n    portLevelSettings:\n    \
- port: {{number: {ENVOY_H1_TLS_PORT}}}\n      tls: {{mode: SIMPLE, sni: {PROXY_NAME}, caCertificates: {ca}}}\n    \
- port: {{number: {ENVOY_TLS_PORT}}}\n      tls: {{mode: SIMPLE, sni: {PROXY_NAME}, caCertificates: {ca}}}\n  \
subsets:\n{subsets}  - name: refused\n    trafficPolicy:\n      tunnel: {{targetHost: \"{refused_ip}\", targetPort: 1}}\n---\n",
        tiny = world.tinyproxy_ip,
        envoy = world.envoy_ip,
        ca = world.ca.display(),
        refused_ip = world.tcp.local_addr().ip(),
    )
}

fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\n\
         spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n{servers}---\n"
    )
}

fn server(port: u16, protocol: &str, tls: &str) -> String {
    format!(
        "  - port: {{number: {port}, name: p{port}, protocol: {protocol}}}\n    hosts: [{EXTERNAL}]\n{tls}"
    )
}

/// The mode's own resources routing to `case` (`tcp_dest`: where the TCP port goes).
fn mode_yaml(mode: Mode, case: &Case, tcp_dest: &str) -> String {
    let tls_dest = case.destination("tls");
    match mode {
        // Istio's `sidecar/virtual-service.tmpl.yaml`.
        Mode::Sidecar => format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: via-proxy}}\n\
             spec:\n  hosts: [{EXTERNAL}]\n  gateways: [mesh]\n  tcp:\n  - match: [{{port: 80}}]\n    \
             route:\n    - destination: {tcp_dest}\n  tls:\n  - match: [{{port: 443, sniHosts: [{EXTERNAL}]}}]\n    \
             route:\n    - destination: {tls_dest}\n"
        ),
        // `gateway/tcp`: TCP servers on 80 and 443.
        Mode::GatewayTcp => format!(
            "{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: via-proxy}}\n\
             spec:\n  hosts: [{EXTERNAL}]\n  gateways: [egress]\n  tcp:\n  - match: [{{port: 80}}]\n    \
             route:\n    - destination: {tcp_dest}\n  - match: [{{port: 443}}]\n    route:\n    - destination: {tls_dest}\n",
            gateway(&(server(80, "TCP", "") + &server(443, "TCP", "")))
        ),
        // `gateway/tls/istio-mutual`: TLS servers terminating ISTIO_MUTUAL, TCP routes.
        Mode::GatewayIstioMutual => format!(
            "{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: via-proxy}}\n\
             spec:\n  hosts: [{EXTERNAL}]\n  gateways: [egress]\n  tcp:\n  - match: [{{port: 80}}]\n    \
             route:\n    - destination: {tcp_dest}\n  - match: [{{port: 443}}]\n    route:\n    - destination: {tls_dest}\n",
            gateway(
                &(server(80, "TLS", "    tls: {mode: ISTIO_MUTUAL}\n")
                    + &server(443, "TLS", "    tls: {mode: ISTIO_MUTUAL}\n"))
            )
        ),
        // `gateway/tls/passthrough`: the client's TLS on 443, routed by SNI.
        Mode::GatewayPassthrough => format!(
            "{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: via-proxy}}\n\
             spec:\n  hosts: [{EXTERNAL}]\n  gateways: [egress]\n  tls:\n  - match: [{{port: 443, sniHosts: [{EXTERNAL}]}}]\n    \
             route:\n    - destination: {tls_dest}\n",
            gateway(&server(443, "TLS", "    tls: {mode: PASSTHROUGH}\n"))
        ),
    }
}

// ---------------------------------------------------------------- the world

/// The stand-ins behind the proxies, the proxies, the certificates and the mesh.
struct World {
    addrs: Block,
    tcp: TcpRecorder,
    https: HttpsUpstream,
    certs: CertFactory,
    ca: std::path::PathBuf,
    tinyproxy_ip: IpAddr,
    envoy_ip: IpAddr,
    mesh: MeshCa,
    _dir: tempfile::TempDir,
    /// Next free host number of `addrs` for a data-plane instance.
    next: std::cell::Cell<u8>,
}

impl World {
    async fn new() -> World {
        let addrs = Block::claim().unwrap();
        let tcp =
            TcpRecorder::start_with_banner(SocketAddr::new(addrs.ip(1).into(), 0), BANNER.to_vec())
                .await
                .unwrap();
        let certs = CertFactory::new().unwrap();
        let https =
            HttpsUpstream::start(SocketAddr::new(addrs.ip(2).into(), 0), &certs, &[EXTERNAL])
                .await
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = certs.write_ca_file(dir.path()).unwrap();
        World {
            tinyproxy_ip: addrs.ip(3).into(),
            envoy_ip: addrs.ip(4).into(),
            addrs,
            tcp,
            https,
            certs,
            ca,
            mesh: MeshCa::generate("cluster.local").unwrap(),
            _dir: dir,
            next: std::cell::Cell::new(10),
        }
    }

    fn fresh_ip(&self) -> Ipv4Addr {
        let n = self.next.get();
        self.next.set(n + 1);
        self.addrs.ip(n)
    }

    fn mesh_handle(&self, sa: &str) -> Arc<IdentityHandle> {
        let id = SpiffeId::new("cluster.local", NS, sa).unwrap();
        let cert = self.mesh.issue(&id, Duration::from_secs(3600)).unwrap();
        Arc::new(IdentityHandle::new(cert, self.mesh.root_pem()).unwrap())
    }

    /// A client trusting the test CA (the stand-in's and the proxy's issuer).
    fn https_client(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in egress_identity::parse_certs(self.certs.ca_pem(), "test CA").unwrap() {
            roots.add(der).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

// ---------------------------------------------------------------- clients

/// Istio's plain request, server first: the banner through the tunnel, then an echo.
async fn tcp_request<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, what: &str) {
    let mut banner = [0_u8; 20];
    tokio::time::timeout(WAIT, io.read_exact(&mut banner))
        .await
        .unwrap_or_else(|_| panic!("{what}: no banner in time"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(&banner, BANNER, "{what}");
    io.write_all(b"hello").await.unwrap();
    let mut echo = [0_u8; 5];
    tokio::time::timeout(WAIT, io.read_exact(&mut echo))
        .await
        .unwrap_or_else(|_| panic!("{what}: no echo in time"))
        .unwrap();
    assert_eq!(&echo, b"hello", "{what}");
}

/// Istio's HTTPS request: the client's own TLS to the stand-in (SNI external.example).
async fn https_request<S>(io: S, world: &World, what: &str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = rustls::pki_types::ServerName::try_from(EXTERNAL).unwrap();
    let tls = tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(world.https_client()).connect(name, io),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: no TLS handshake in time"))
    .unwrap_or_else(|e| panic!("{what}: TLS to the stand-in: {e}"));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/tunnelled")
        .header("host", EXTERNAL)
        .header("connection", "close")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no response in time"))
        .unwrap();
    assert_eq!(resp.status(), 200, "{what}");
    let _ = resp.into_body().collect().await;
}

/// `CONNECT host:port` through a sidecar's explicit proxy.
async fn sidecar_connect(proxy: SocketAddr, target: &str) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the sidecar closed during its answer: {head:?}");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    stream
}

/// An ISTIO_MUTUAL connection to the gateway as the `curl` workload (SNI external.example).
async fn mesh_tls(
    world: &World,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = world
        .mesh_handle("curl")
        .client_config(&[], vec![b"istio".to_vec()])
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(EXTERNAL).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

// ---------------------------------------------------------------- the data plane

/// A gateway or a sidecar serving the mode's compiled configuration, with its access log.
enum Plane {
    Gateway(Gw),
    Sidecar {
        sidecar: Sidecar,
        log: egress_proxy::accesslog::CapturedLines,
        _snapshots: tokio::sync::watch::Sender<Arc<Snapshot>>,
    },
}

impl Plane {
    async fn start(world: &World, mode: Mode, yaml: &str) -> (Plane, Snapshot, Ipv4Addr) {
        let ip = world.fresh_ip();
        if mode == Mode::Sidecar {
            let mut s = sidecar_common::sidecar(yaml);
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);
            s.access_log.path = Some("/dev/stdout".into());
            let routable = egress_snapshot::sidecar_view::routable(s);
            let (tx, rx) = tokio::sync::watch::channel(Arc::new(routable.clone()));
            let (logger, log) = AccessLogger::capture();
            let options = SidecarOptions {
                proxy_listen: SocketAddr::new(ip.into(), 0),
                ..SidecarOptions::default()
            };
            let sidecar = Sidecar::start(rx, options, None, logger).await.unwrap();
            let plane = Plane::Sidecar {
                sidecar,
                log,
                _snapshots: tx,
            };
            return (plane, routable, ip);
        }
        let s = compiled(&seed_gateway(8080, 8443), resources(yaml));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let id = (mode == Mode::GatewayIstioMutual).then(|| world.mesh_handle("asm-egress-test"));
        let opts = egress_proxy::ProxyOptions {
            listen_address: Some(ip.into()),
            ..options(Vec::new())
        };
        (Plane::Gateway(Gw::start(s.clone(), opts, id).await), s, ip)
    }

    async fn line(&self, n: usize) -> String {
        match self {
            Plane::Gateway(gw) => gw.line(n).await,
            Plane::Sidecar { log, .. } => {
                let lines = log.wait_for(n, WAIT).await;
                assert!(lines.len() >= n, "expected {n} access-log lines: {lines:?}");
                lines[n - 1].clone()
            }
        }
    }

    async fn stop(self) {
        match self {
            Plane::Gateway(gw) => gw.proxy.shutdown(Duration::ZERO).await,
            Plane::Sidecar { sidecar, .. } => sidecar.shutdown(Duration::ZERO).await,
        }
    }
}

/// Runs Istio's requests of `mode` through each of `cases`; `envoy` is the proxy to check
/// the log of, when the cases are Envoy's.
async fn run(world: &World, mode: Mode, cases: &[Case], envoy: Option<&EnvoyProxy>) {
    let mut envoy_lines = 0;
    for case in cases {
        let what = format!("{mode:?}, {}", case.label);
        let yaml = shared_yaml(world) + &mode_yaml(mode, case, &case.destination("tcp"));
        let (plane, snapshot, ip) = Plane::start(world, mode, &yaml).await;
        let proxy_addr = SocketAddr::new(
            if case.host == TINYPROXY {
                world.tinyproxy_ip
            } else {
                world.envoy_ip
            },
            case.port,
        );
        let mut requests = Vec::new();
        if mode != Mode::GatewayPassthrough {
            requests.push(("tcp", world.tcp.local_addr()));
        }
        requests.push(("tls", world.https.local_addr()));
        for (n, (kind, target)) in requests.iter().enumerate() {
            let tunnel = snapshot.clusters[&case.cluster(kind)]
                .tunnel
                .clone()
                .unwrap_or_else(|| panic!("{what}: {} tunnels", case.cluster(kind)));
            assert_eq!(
                (tunnel.protocol, tunnel.http2, tunnel.target_port),
                (case.protocol, case.http2, target.port()),
                "{what}"
            );
            let what = format!("{what}, {kind} request");
            match (mode, *kind) {
                (Mode::Sidecar, "tcp") => {
                    let io = sidecar_connect(sidecar_addr(&plane), &format!("{EXTERNAL}:80")).await;
                    tcp_request(io, &what).await;
                }
                (Mode::Sidecar, _) => {
                    let io =
                        sidecar_connect(sidecar_addr(&plane), &format!("{EXTERNAL}:443")).await;
                    https_request(io, world, &what).await;
                }
                (Mode::GatewayIstioMutual, "tcp") => {
                    let io = mesh_tls(world, SocketAddr::new(ip.into(), 8080)).await;
                    tcp_request(io, &what).await;
                }
                (Mode::GatewayIstioMutual, _) => {
                    let io = mesh_tls(world, SocketAddr::new(ip.into(), 8443)).await;
                    https_request(io, world, &what).await;
                }
                (_, "tcp") => {
                    let io = tokio::net::TcpStream::connect(SocketAddr::new(ip.into(), 8080))
                        .await
                        .unwrap();
                    tcp_request(io, &what).await;
                }
                (_, _) => {
                    let io = tokio::net::TcpStream::connect(SocketAddr::new(ip.into(), 8443))
                        .await
                        .unwrap();
                    https_request(io, world, &what).await;
                }
            }
            let line = plane.line(n + 1).await;
            assert!(line.contains(&case.cluster(kind)), "{what}: {line}");
            assert!(
                line.contains(&proxy_addr.to_string()),
                "{what}: the upstream host is the proxy: {line}"
            );
            if let Some(envoy) = envoy {
                envoy_lines += 1;
                let seen = envoy.line(envoy_lines).await;
                let method = match case.protocol {
                    TunnelProtocol::Connect => "CONNECT",
                    TunnelProtocol::Post => "POST",
                };
                let version = if case.http2 { "HTTP/2" } else { "HTTP/1.1" };
                assert!(
                    seen.starts_with(&format!(
                        "forward-proxy {method} {target} {version} 200 {}",
                        case.port
                    )),
                    "{what}: {seen}"
                );
                assert_eq!(
                    seen.ends_with(&format!("TLSv1.3 {PROXY_NAME}")),
                    case.tls,
                    "{what}: TLS to the proxy: {seen}"
                );
            }
        }
        plane.stop().await;
    }
}

fn sidecar_addr(plane: &Plane) -> SocketAddr {
    match plane {
        Plane::Sidecar { sidecar, .. } => sidecar.proxy_addr(),
        Plane::Gateway(_) => panic!("not a sidecar"),
    }
}

async fn tinyproxy(world: &World) -> Option<Tinyproxy> {
    Tinyproxy::start(
        world.tinyproxy_ip,
        &[
            world.tcp.local_addr().port(),
            world.https.local_addr().port(),
        ],
    )
    .await
}

async fn envoy(world: &World) -> Option<EnvoyProxy> {
    EnvoyProxy::start(
        world.envoy_ip,
        &world.certs,
        &[world.tcp.local_addr(), world.https.local_addr()],
    )
    .await
}

// ---------------------------------------------------------------- the cases

/// Istio `HTTP/1.1/TLS disabled/sidecar/{HTTP,HTTPS}-request` (tinyproxy, CONNECT).
#[tokio::test(flavor = "multi_thread")]
async fn sidecar_through_an_http1_proxy() {
    let world = World::new().await;
    let Some(_proxy) = tinyproxy(&world).await else {
        return;
    };
    run(&world, Mode::Sidecar, TINYPROXY_CASES, None).await;
}

/// Istio `HTTP/1.1/TLS disabled/gateway/tls/istio-mutual/{HTTP,HTTPS}-request` (tinyproxy,
/// CONNECT). (`gateway/tcp` and `gateway/tls/passthrough` over tinyproxy:
/// `data_plane_tunnel.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn istio_mutual_gateway_through_an_http1_proxy() {
    let world = World::new().await;
    let Some(_proxy) = tinyproxy(&world).await else {
        return;
    };
    run(&world, Mode::GatewayIstioMutual, TINYPROXY_CASES, None).await;
}

/// Istio `HTTP/1.1/TLS enabled`, `HTTP/2/TLS disabled` and `HTTP/2/TLS enabled` ×
/// `sidecar/{HTTP,HTTPS}-request`, HTTP/2 with `protocol: CONNECT` and `protocol: POST`
/// (Envoy as the proxy).
#[tokio::test(flavor = "multi_thread")]
async fn sidecar_through_envoy_over_http1_tls_and_http2() {
    let world = World::new().await;
    let Some(proxy) = envoy(&world).await else {
        return;
    };
    run(&world, Mode::Sidecar, ENVOY_CASES, Some(&proxy)).await;
}

/// Istio `HTTP/1.1/TLS enabled`, `HTTP/2/TLS disabled` and `HTTP/2/TLS enabled` ×
/// `gateway/tcp/{HTTP,HTTPS}-request`, HTTP/2 with `protocol: CONNECT` and `protocol: POST`
/// (Envoy as the proxy); and a tunnel the proxy refuses over HTTP/2 (Envoy's 404 for an
/// authority it has no route for): `UF,URX` with `tunnel_response:404`, as Envoy logs it.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_gateway_through_envoy_over_http1_tls_and_http2() {
    let world = World::new().await;
    let Some(proxy) = envoy(&world).await else {
        return;
    };
    run(&world, Mode::GatewayTcp, ENVOY_CASES, Some(&proxy)).await;

    let case = ENVOY_CASES[1];
    let refused =
        format!("{{host: {PROXY_NAME}, subset: refused, port: {{number: {ENVOY_PLAIN_PORT}}}}}");
    let yaml = shared_yaml(&world) + &mode_yaml(Mode::GatewayTcp, &case, &refused);
    let (plane, _, ip) = Plane::start(&world, Mode::GatewayTcp, &yaml).await;
    let mut client = tokio::net::TcpStream::connect(SocketAddr::new(ip.into(), 8080))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(n, 0, "nothing comes back through a refused tunnel");
    let line = plane.line(1).await;
    assert!(line.contains(" UF,URX "), "{line}");
    assert!(line.contains("\"tunnel_response:404\""), "{line}");
    assert!(
        line.contains(&format!("outbound|{ENVOY_PLAIN_PORT}|refused|{PROXY_NAME}")),
        "{line}"
    );
    plane.stop().await;
}

/// Istio `HTTP/1.1/TLS enabled`, `HTTP/2/TLS disabled` and `HTTP/2/TLS enabled` ×
/// `gateway/tls/istio-mutual/{HTTP,HTTPS}-request`, HTTP/2 with `protocol: CONNECT` and
/// `protocol: POST` (Envoy as the proxy).
#[tokio::test(flavor = "multi_thread")]
async fn istio_mutual_gateway_through_envoy_over_http1_tls_and_http2() {
    let world = World::new().await;
    let Some(proxy) = envoy(&world).await else {
        return;
    };
    run(&world, Mode::GatewayIstioMutual, ENVOY_CASES, Some(&proxy)).await;
}

/// Istio `HTTP/1.1/TLS enabled`, `HTTP/2/TLS disabled` and `HTTP/2/TLS enabled` ×
/// `gateway/tls/passthrough/HTTPS-request`, HTTP/2 with `protocol: CONNECT` and `protocol:
/// POST` (Envoy as the proxy). Istio's `HTTP-request` in this mode is TLS-originated by the
/// sidecar before it reaches the gateway, so the gateway sees the same TLS passthrough.
#[tokio::test(flavor = "multi_thread")]
async fn passthrough_gateway_through_envoy_over_http1_tls_and_http2() {
    let world = World::new().await;
    let Some(proxy) = envoy(&world).await else {
        return;
    };
    run(&world, Mode::GatewayPassthrough, ENVOY_CASES, Some(&proxy)).await;
}
