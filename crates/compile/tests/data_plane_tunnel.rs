//! DestinationRule `trafficPolicy.tunnel` at the egress gateway, end to end, in the shapes of
//! Istio's `tests/integration/pilot/tunneling_test.go` (testdata `tunneling/gateway/tcp` and
//! `tunneling/gateway/tls/passthrough`): the gateway routes to a forward proxy's host, a
//! DestinationRule subset of it carries `tunnel: {targetHost, targetPort}`, and the proxy is a
//! real tinyproxy on loopback. Covered: plain TCP through the tunnel (a server-first protocol:
//! its banner arrives right behind the proxy's `200`), TLS passthrough through the tunnel
//! (curl's own TLS to the stand-in, SNI kept), and a tunnel the proxy refuses (`UF,URX` and
//! `tunnel_response:403`, as Envoy logs it; the connection closed). Needs tinyproxy (installed by `.ci/run`) and curl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};

use egress_snapshot::snapshot::Snapshot;
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, Curl, HttpsUpstream, TcpRecorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
mod data_plane;
mod forward_proxy;

use common::resources;
use data_plane::{Gw, WAIT, compiled, options, seed_gateway};
use forward_proxy::{TINYPROXY_PORT as PROXY_PORT, Tinyproxy};

const EXTERNAL: &str = "external.example";
const FORWARD_PROXY: &str = "forward-proxy.example";

/// The gateway: TCP on Service port 80 and TLS passthrough on 443 for `external.example`, both
/// routed to the forward proxy's host, whose subsets tunnel to the stand-ins.
fn config(proxy: SocketAddr, tcp_target: SocketAddr, tls_target: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: external}}\n\
spec:\n  hosts: [{EXTERNAL}]\n  ports:\n  - {{number: 80, name: tcp, protocol: TCP}}\n  \
- {{number: 443, name: tls, protocol: TLS}}\n  resolution: DNS\n---\n\
apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: forward-proxy}}\n\
spec:\n  hosts: [{FORWARD_PROXY}]\n  ports:\n  - {{number: {PROXY_PORT}, name: tcp, protocol: TCP}}\n  \
resolution: STATIC\n  endpoints:\n  - address: {pip}\n---\n\
apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\n\
spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n  \
- port: {{number: 80, name: tcp, protocol: TCP}}\n    hosts: [{EXTERNAL}]\n  \
- port: {{number: 443, name: tls, protocol: TLS}}\n    hosts: [{EXTERNAL}]\n    tls: {{mode: PASSTHROUGH}}\n---\n\
apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: through-forward-proxy}}\n\
spec:\n  hosts: [{EXTERNAL}]\n  gateways: [egress]\n  tcp:\n  - match:\n    - port: 80\n    route:\n    \
- destination: {{host: {FORWARD_PROXY}, subset: external-svc-tcp, port: {{number: {PROXY_PORT}}}}}\n  \
tls:\n  - match:\n    - port: 443\n      sniHosts: [{EXTERNAL}]\n    route:\n    \
- destination: {{host: {FORWARD_PROXY}, subset: external-svc-tls, port: {{number: {PROXY_PORT}}}}}\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tunnel-via-forward-proxy}}\n\
spec:\n  host: {FORWARD_PROXY}\n  subsets:\n  - name: external-svc-tcp\n    trafficPolicy:\n      \
tunnel: {{targetHost: \"{th}\", targetPort: {tp}}}\n  - name: external-svc-tls\n    trafficPolicy:\n      \
tunnel: {{targetHost: \"{lh}\", targetPort: {lp}}}\n",
        pip = proxy.ip(),
        th = tcp_target.ip(),
        tp = tcp_target.port(),
        lh = tls_target.ip(),
        lp = tls_target.port(),
    )
}

fn snap(yaml: &str) -> Snapshot {
    let s = compiled(&seed_gateway(8080, 8443), resources(yaml));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    s
}

/// The gateway's listen options: its own claimed address, so the Service target ports can be
/// the real gateway's (8080, 8443).
fn gw_options(ip: std::net::Ipv4Addr) -> egress_proxy::ProxyOptions {
    egress_proxy::ProxyOptions {
        listen_address: Some(ip.into()),
        ..options(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_and_tls_passthrough_go_through_the_forward_proxys_tunnel() {
    if !Curl::available() {
        egress_testkit::skip("needs curl");
        return;
    }
    let block = Block::claim().unwrap();
    let stand_ins = Block::claim().unwrap();
    let tcp = TcpRecorder::start_with_banner(
        SocketAddr::new(stand_ins.ip(1).into(), 0),
        b"220 external ready\r\n".to_vec(),
    )
    .await
    .unwrap();
    let certs = CertFactory::new().unwrap();
    let tls = HttpsUpstream::start(
        SocketAddr::new(stand_ins.ip(2).into(), 0),
        &certs,
        &[EXTERNAL],
    )
    .await
    .unwrap();
    let refused_port = tls.local_addr().port().wrapping_add(1).max(1);
    let Some(proxy) = Tinyproxy::start(
        block.ip(1).into(),
        &[tcp.local_addr().port(), tls.local_addr().port()],
    )
    .await
    else {
        return;
    };
    let yaml = config(proxy.addr, tcp.local_addr(), tls.local_addr());
    let s = snap(&yaml);
    let tunnel_cluster = format!("outbound|{PROXY_PORT}|external-svc-tcp|{FORWARD_PROXY}");
    let tunnel = s.clusters[&tunnel_cluster].tunnel.clone().unwrap();
    assert_eq!(
        (tunnel.target_host.as_str(), tunnel.target_port),
        (
            stand_ins.ip(1).to_string().as_str(),
            tcp.local_addr().port()
        )
    );
    let gw = Gw::start(s, gw_options(block.ip(2)), None).await;
    let bound = gw.proxy.bound();
    assert_eq!(bound.len(), 2, "{bound:?}");
    let tcp_listener = SocketAddr::new(block.ip(2).into(), 8080);
    let tls_listener = SocketAddr::new(block.ip(2).into(), 8443);

    // Plain TCP, server first: the banner, then an echo, through the tunnel.
    let mut client = tokio::net::TcpStream::connect(tcp_listener).await.unwrap();
    let mut banner = [0_u8; 20];
    tokio::time::timeout(WAIT, client.read_exact(&mut banner))
        .await
        .expect("banner in time")
        .unwrap();
    assert_eq!(&banner, b"220 external ready\r\n");
    client.write_all(b"hello").await.unwrap();
    let mut echo = [0_u8; 5];
    tokio::time::timeout(WAIT, client.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&echo, b"hello");
    drop(client);
    let conns = tcp.wait_for_connections(1, WAIT).await.unwrap();
    assert_ne!(
        conns[0].peer_addr.ip(),
        IpAddr::from(block.ip(1)),
        "sanity: the stand-in's peer is tinyproxy's outgoing socket"
    );
    let line = gw.line(1).await;
    assert!(line.contains(&tunnel_cluster), "{line}");
    assert!(
        line.contains(&proxy.addr.to_string()),
        "upstream host is the proxy: {line}"
    );

    // TLS passthrough: curl's own TLS to the stand-in (SNI kept) inside the tunnel.
    let dir = tempfile::tempdir().unwrap();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let out = Curl::new(format!("https://{EXTERNAL}:{}/hello", tls_listener.port()))
        .resolve(EXTERNAL, tls_listener.port(), tls_listener.ip())
        .cacert(&ca)
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = tls.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].sni.as_deref(), Some(EXTERNAL));
    let line = gw.line(2).await;
    assert!(
        line.contains(&format!(
            "outbound|{PROXY_PORT}|external-svc-tls|{FORWARD_PROXY}"
        )),
        "{line}"
    );

    // A tunnel the proxy refuses (a port it does not allow CONNECT to): UF, closed.
    gw.proxy.shutdown(std::time::Duration::ZERO).await;
    let refused = config(
        proxy.addr,
        SocketAddr::new(stand_ins.ip(1).into(), refused_port),
        tls.local_addr(),
    );
    let gw = Gw::start(snap(&refused), gw_options(block.ip(3)), None).await;
    let mut client = tokio::net::TcpStream::connect(SocketAddr::new(block.ip(3).into(), 8080))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(n, 0, "nothing comes back through a refused tunnel");
    // As Envoy logs it (checked against Envoy 1.40's tcp_proxy tunneling_config and the same
    // tinyproxy): UF,URX, upstream transport failure reason tunnel_response:403.
    let line = gw.line(1).await;
    assert!(line.contains(" UF,URX "), "{line}");
    assert!(line.contains("\"tunnel_response:403\""), "{line}");
    assert!(line.contains(&proxy.addr.to_string()), "{line}");
}
