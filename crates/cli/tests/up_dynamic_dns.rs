//! Wildcard egress through the local cluster's gateways: the add-on's gateway Pods of
//! `egress up --dns-server` serve a `DYNAMIC_DNS` ServiceEntry (`*.wiki.test`), each request
//! reaching the stand-in its own Host resolves to, from the static egress prefix.
//!
//! Pods, egress prefixes and the two stand-ins (port 18080) each on a claimed loopback block.
//! Needs root (the gateway Pods bind port 80) and curl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Addrs, Cluster, Up};
use egress_store::Store;
use egress_testkit::HttpUpstream;
use egress_testkit::addrs::Block;
use egress_testkit::dns::StubDns;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

const CONFIG: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki, namespace: aks-istio-egress}
spec:
  hosts: ["*.wiki.test"]
  location: MESH_EXTERNAL
  resolution: DYNAMIC_DNS
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 18080}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wiki-egressgateway, namespace: aks-istio-egress}
spec:
  selector: {istio: asm-egress-test}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.wiki.test"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki, namespace: aks-istio-egress}
spec:
  hosts: ["*.wiki.test"]
  gateways: [wiki-egressgateway]
  http:
  - route:
    - destination: {host: "*.wiki.test", port: {number: 80}}
"#;

/// `GET /` with `Host: host` to `ip:80`: status and the answering stand-in.
fn get(ip: &str, host: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "--max-time", "5"])
        .args(["--connect-to", &format!("{host}:80:{ip}:80")])
        .arg(format!("http://{host}/"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let from = head
        .lines()
        .find_map(|l| l.strip_prefix("x-testkit-upstream: "))
        .unwrap_or("-")
        .trim()
        .to_owned();
    (status, from)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_add_on_gateways_serve_a_dynamic_dns_wildcard() {
    let Some(seed) = common::seed() else { return };
    if !egress_testkit::Curl::available() {
        egress_testkit::skip("needs curl");
        return;
    }
    let addrs = Addrs::claim();
    let stand_ins = Block::claim().unwrap();
    let (a, b) = (stand_ins.ip(1), stand_ins.ip(2));
    let mut upstreams = Vec::new();
    for ip in [a, b] {
        let up = HttpUpstream::start((ip, 18080).into()).await.unwrap();
        // Only the gateways' static egress prefix may connect.
        up.allow_only(&addrs.pool.subnet(0, 31).to_string())
            .unwrap();
        upstreams.push(up);
    }
    let dns = StubDns::start(&[("a.wiki.test", a), ("b.wiki.test", b)])
        .await
        .unwrap();
    let c = Cluster::new();
    c.run_stdin(&["apply", "-f", "-"], common::SGC_PREREQUISITES)
        .ok();
    c.namespace("aks-istio-system");
    c.run_stdin(&["apply", "-f", "-"], &seed[0]).ok();
    let dns_server = dns.addr.to_string();
    let flags = addrs.flags(&[
        "--dns-server",
        &dns_server,
        // The stub answers with loopback addresses, which the guard would refuse.
        "--allow-private-upstreams",
    ]);
    let _up = tokio::task::block_in_place(|| Up::start(&c, &flags));
    let store = Store::open(c.store()).unwrap();
    tokio::task::block_in_place(|| {
        common::enable_seed_gateway(&c, &store);
        c.run_stdin(&["apply", "-f", "-"], CONFIG).ok();
    });
    for pod in common::ready_pods(&store, NS) {
        let ip = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        for (host, want) in [
            ("a.wiki.test", format!("{a}:18080")),
            ("b.wiki.test", format!("{b}:18080")),
        ] {
            let mut last = (0, String::new());
            let ok = egress_testkit::eventually(Duration::from_secs(30), || {
                let got = get(&ip, host);
                let ok = got == (200, want.clone());
                last = got;
                async move { ok }
            })
            .await;
            assert!(ok.is_ok(), "gateway {ip}, {host}: {last:?}");
        }
    }
    for up in &upstreams {
        let conns = up.connections();
        assert!(!conns.is_empty());
        assert!(
            conns.iter().all(|c| !c.refused),
            "only the egress prefix connected"
        );
    }
}
