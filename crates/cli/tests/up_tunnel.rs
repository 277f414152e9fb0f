//! Tunnelling through a corporate forward proxy from the local cluster's gateways: the
//! add-on's gateway Pods of `egress up` serve Istio's `tunneling/gateway/tcp` shape (a TCP
//! server for `external.example` routed to the forward proxy's host, whose DestinationRule
//! subset carries `tunnel: {targetHost, targetPort}`), and a server-first TCP stand-in answers
//! through a real tinyproxy's CONNECT tunnel. Pods, egress prefixes, the proxy and the stand-in
//! each on a claimed loopback block. Needs root (the gateway Pods bind port 80) and tinyproxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Addrs, Cluster, Up};
use egress_store::Store;
use egress_testkit::TcpRecorder;
use egress_testkit::addrs::Block;
use egress_testkit::forward::{TINYPROXY_PORT, Tinyproxy};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "aks-istio-egress";
const EXTERNAL: &str = "external.example";
const FORWARD_PROXY: &str = "forward-proxy.example";

fn config(proxy: SocketAddr, target: SocketAddr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external, namespace: {NS}}}
spec:
  hosts: [{EXTERNAL}]
  ports:
  - {{number: 80, name: tcp, protocol: TCP}}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: forward-proxy, namespace: {NS}}}
spec:
  hosts: [{FORWARD_PROXY}]
  ports:
  - {{number: {TINYPROXY_PORT}, name: tcp, protocol: TCP}}
  resolution: STATIC
  endpoints:
  - address: {pip}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress, namespace: {NS}}}
spec:
  selector: {{istio: asm-egress-test}}
  servers:
  - port: {{number: 80, name: tcp, protocol: TCP}}
    hosts: [{EXTERNAL}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: through-forward-proxy, namespace: {NS}}}
spec:
  hosts: [{EXTERNAL}]
  gateways: [egress]
  tcp:
  - match:
    - port: 80
    route:
    - destination: {{host: {FORWARD_PROXY}, subset: external-svc-tcp, port: {{number: {TINYPROXY_PORT}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tunnel-via-forward-proxy, namespace: {NS}}}
spec:
  host: {FORWARD_PROXY}
  subsets:
  - name: external-svc-tcp
    trafficPolicy:
      tunnel: {{protocol: CONNECT, targetHost: "{th}", targetPort: {tp}}}
"#,
        pip = proxy.ip(),
        th = target.ip(),
        tp = target.port(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_add_on_gateways_tunnel_tcp_through_a_forward_proxy() {
    let Some(seed) = common::seed() else { return };
    let addrs = Addrs::claim();
    let stand_ins = Block::claim().unwrap();
    let target = TcpRecorder::start_with_banner(
        SocketAddr::new(stand_ins.ip(1).into(), 18025),
        b"220 external ready\r\n".to_vec(),
    )
    .await
    .unwrap();
    let Some(proxy) = Tinyproxy::start(stand_ins.ip(2).into(), &[18025]).await else {
        return;
    };
    let c = Cluster::new();
    c.run_stdin(&["apply", "-f", "-"], common::SGC_PREREQUISITES)
        .ok();
    c.namespace("aks-istio-system");
    c.run_stdin(&["apply", "-f", "-"], &seed[0]).ok();
    let flags = addrs.flags(&[]);
    let _up = tokio::task::block_in_place(|| Up::start(&c, &flags));
    let store = Store::open(c.store()).unwrap();
    tokio::task::block_in_place(|| {
        common::enable_seed_gateway(&c, &store);
        c.run_stdin(
            &["apply", "-f", "-"],
            &config(proxy.addr, target.local_addr()),
        )
        .ok();
    });
    for pod in common::ready_pods(&store, NS) {
        let ip: std::net::IpAddr = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .unwrap()
            .parse()
            .unwrap();
        // Server first: the stand-in's banner arrives through the tunnel, then an echo.
        let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reached = egress_testkit::eventually(Duration::from_secs(30), || {
            let attempt = async move {
                let mut s = tokio::net::TcpStream::connect((ip, 80)).await.ok()?;
                let mut banner = [0u8; 20];
                tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut banner))
                    .await
                    .ok()?
                    .ok()?;
                s.write_all(b"ping").await.ok()?;
                let mut echo = [0u8; 4];
                tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
                    .await
                    .ok()?
                    .ok()?;
                Some((banner, echo))
            };
            let last = std::sync::Arc::clone(&last);
            async move {
                match attempt.await {
                    Some((banner, echo)) => {
                        *last.lock().unwrap() =
                            format!("{:?} {:?}", String::from_utf8_lossy(&banner), echo);
                        &banner == b"220 external ready\r\n" && &echo == b"ping"
                    }
                    None => false,
                }
            }
        })
        .await;
        assert!(reached.is_ok(), "gateway {ip}: {}", last.lock().unwrap());
    }
    assert!(!target.connections().is_empty());
}
