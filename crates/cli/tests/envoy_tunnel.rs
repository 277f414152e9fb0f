//! DestinationRule `tunnel` with TLS to the forward proxy, through the real `egress gateway run`
//! and a real Envoy playing the corporate proxy (as Istio's `tunneling_test.go` plays it): the
//! rule's port-level `tls: {mode: SIMPLE, sni, caCertificates}` for the proxy's port and its
//! subset's `tunnel: {targetHost, targetPort}` make the gateway open TLS to the proxy, ask
//! `CONNECT external.example:<port>` inside it, and carry the client's TCP through. Envoy's log
//! shows the CONNECT's authority and the TLS it terminated; the gateway's log shows the
//! forward proxy's cluster. Needs Envoy (`.ci/install-envoy`) and curl.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod envoy;
mod gateway_process;

use std::net::SocketAddr;
use std::time::Duration;

use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, TcpRecorder};
use envoy::{envoy_or_skip, start_envoy};
use gateway_process::{GatewayProcess, MESH_CONFIG, NS, TARGET_PORT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EXTERNAL: &str = "external.example";
const FORWARD_PROXY: &str = "forward-proxy.example";
const PROXY_PORT: u16 = 3128;
const WAIT: Duration = Duration::from_secs(20);

fn config(proxy: SocketAddr, target_port: u16, ca: &std::path::Path) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: external, namespace: {NS}}}\n\
spec:\n  hosts: [{EXTERNAL}]\n  ports:\n  - {{number: 80, name: tcp, protocol: TCP}}\n  resolution: DNS\n---\n\
apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: forward-proxy, namespace: {NS}}}\n\
spec:\n  hosts: [{FORWARD_PROXY}]\n  ports:\n  - {{number: {PROXY_PORT}, name: tcp, protocol: TCP}}\n  \
resolution: STATIC\n  endpoints:\n  - address: {pip}\n---\n\
apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: tun-gateway, namespace: {NS}}}\n\
spec:\n  selector: {{istio: tuntest}}\n  servers:\n  - port: {{number: 80, name: tcp, protocol: TCP}}\n    hosts: [{EXTERNAL}]\n---\n\
apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: through-forward-proxy, namespace: {NS}}}\n\
spec:\n  hosts: [{EXTERNAL}]\n  gateways: [tun-gateway]\n  tcp:\n  - match:\n    - port: 80\n    route:\n    \
- destination: {{host: {FORWARD_PROXY}, subset: external-svc-tcp, port: {{number: {PROXY_PORT}}}}}\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tunnel-via-forward-proxy, namespace: {NS}}}\n\
spec:\n  host: {FORWARD_PROXY}\n  trafficPolicy:\n    portLevelSettings:\n    - port: {{number: {PROXY_PORT}}}\n      \
tls: {{mode: SIMPLE, sni: {FORWARD_PROXY}, caCertificates: {ca}}}\n  subsets:\n  - name: external-svc-tcp\n    \
trafficPolicy:\n      tunnel: {{targetHost: {EXTERNAL}, targetPort: {target_port}}}\n---\n{MESH_CONFIG}",
        pip = proxy.ip(),
        ca = ca.display(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_through_a_tls_forward_proxys_connect_tunnel() {
    let Some(envoy) = envoy_or_skip() else { return };
    let plan = Block::claim().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = CertFactory::new().unwrap();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let proxy_cert = certs.server_cert(&[FORWARD_PROXY]).unwrap();
    let (cert, key) = certs
        .write_cert_files(&proxy_cert, dir.path(), "forward-proxy")
        .unwrap();
    // The stand-in behind the proxy: a server-first echo.
    let target = TcpRecorder::start_with_banner(
        SocketAddr::new(plan.ip(3).into(), 0),
        b"220 external ready\r\n".to_vec(),
    )
    .await
    .unwrap();
    let proxy_ip = plan.ip(2);
    let proxy = start_envoy(
        &envoy,
        dir.path(),
        "forward-proxy",
        "forward_proxy.yaml",
        &proxy_ip.to_string(),
        &[
            ("PROXY_IP", proxy_ip.to_string()),
            ("PROXY_PORT", PROXY_PORT.to_string()),
            ("PROXY_CERT", cert.display().to_string()),
            ("PROXY_KEY", key.display().to_string()),
            ("TARGET_IP", target.local_addr().ip().to_string()),
            ("TARGET_PORT", target.local_addr().port().to_string()),
        ],
    )
    .await;
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("tunnel.yaml"),
        config(
            SocketAddr::new(proxy_ip.into(), PROXY_PORT),
            target.local_addr().port(),
            &ca,
        ),
    )
    .unwrap();
    let gw = GatewayProcess::start(None, Some(&config_dir), plan.ip(1).into(), "tun");
    gw.wait_ready().await;

    let mut client =
        tokio::net::TcpStream::connect(SocketAddr::new(plan.ip(1).into(), TARGET_PORT))
            .await
            .unwrap();
    let mut banner = [0_u8; 20];
    tokio::time::timeout(WAIT, client.read_exact(&mut banner))
        .await
        .unwrap_or_else(|_| panic!("no banner\n{}\n{}", gw.lines(), proxy.dump()))
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

    let line = proxy.wait_line(&["forward-proxy CONNECT"]).await;
    assert!(
        line.contains(&format!(
            "forward-proxy CONNECT {EXTERNAL}:{} 200",
            target.local_addr().port()
        )),
        "{line}"
    );
    assert!(line.contains("TLSv1.3"), "TLS to the proxy: {line}");
    assert!(line.ends_with(FORWARD_PROXY), "the rule's SNI: {line}");
    let gw_line = gw
        .wait_log(&[&format!(
            "outbound|{PROXY_PORT}|external-svc-tcp|{FORWARD_PROXY}"
        )])
        .await;
    assert!(
        gw_line.contains(&format!("{proxy_ip}:{PROXY_PORT}")),
        "upstream host is the proxy: {gw_line}"
    );
}
