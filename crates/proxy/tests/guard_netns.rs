//! The guard, end to end, for the addresses the guard used to miss: a stub DNS server on
//! loopback answers `edition.cnn.com` (A or AAAA) with Azure's platform endpoint, a
//! benchmarking address, the limited broadcast address, Alibaba's metadata address, AWS's IPv6
//! metadata address, and loopback and metadata hidden in NAT64, IPv4-compatible, IPv4-mapped,
//! 6to4 and Teredo forms; each request is answered 503 `UH` with
//! `upstream_address_refused{host->address}` and nothing is connected to. The assertions run
//! in a network namespace this test creates (`unshare -n`, only `lo` up), so even a guard
//! failure could not send a packet to those real networks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod guard_support;
mod l7_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use egress_proxy::ProxyOptions;
use egress_snapshot::snapshot::{Cluster, Discovery, LbPolicy, PoolSettings};
use guard_support::StubDns;
use l7_support::*;

const CNN: &str = "edition.cnn.com";
const INSIDE: &str = "EGRESS_GUARD_TEST_IN_NETNS";
const NAME: &str = "issue_addresses_are_refused_inside_a_network_namespace";

fn cluster(port: u16) -> Cluster {
    Cluster {
        name: format!("outbound|{port}||{CNN}"),
        host: CNN.to_owned(),
        port,
        discovery: Discovery::StrictDns {
            hostname: CNN.to_owned(),
            port,
        },
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: Duration::from_secs(5),
        pool: PoolSettings::default(),
        outlier: None,
        external: true,
        tunnel: None,
    }
}

async fn refused(answer: IpAddr) {
    let dns = StubDns::start_any(&[(CNN, answer)]).await.unwrap();
    let c = cluster(80);
    let name = c.name.clone();
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward("default.cnn.0", vec![dest(&name, 1)])],
        )],
        vec![c],
    );
    let options = ProxyOptions {
        upstream: egress_proxy::UpstreamOptions {
            dns_server: Some(dns.addr),
            ..Default::default()
        },
        ..ProxyOptions::default()
    };
    let gw = Gateway::start_with(snap, options).await;
    let mut client = h1_client(gw.addr).await;
    let resp = tokio::time::timeout(WAIT, client.send_request(get(CNN, "/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503, "{answer}");
    let line = gw.line(1).await;
    assert_eq!(line.flags, "UH", "{answer}");
    assert_eq!(
        line.details,
        format!("upstream_address_refused{{{CNN}->{answer}}}")
    );
    assert_eq!(line.upstream_host, "-", "nothing was connected to");
    assert!(dns.queries() >= 1, "the answer came from DNS");
}

#[test]
fn issue_addresses_are_refused_inside_a_network_namespace() {
    if std::env::var_os(INSIDE).is_none() {
        let out = Command::new("unshare")
            .args(["-n", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(INSIDE, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
        return;
    }
    // Inside: a fresh namespace whose only interface is lo.
    let devs = std::fs::read_to_string("/proc/net/dev").unwrap();
    let ifaces: Vec<&str> = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "not in a fresh network namespace");
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for answer in [
            Ipv4Addr::new(168, 63, 129, 16),
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(100, 100, 100, 200),
        ] {
            refused(IpAddr::V4(answer)).await;
        }
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        for answer in [
            v6("64:ff9b::7f00:5a0b"),                   // NAT64 of 127.0.90.11
            v6("64:ff9b:1::a9fe:a9fe"),                 // local-use NAT64 of 169.254.169.254
            v6("::7f00:5a0b"),                          // IPv4-compatible 127.0.90.11
            v6("::ffff:169.254.169.254"),               // IPv4-mapped metadata
            v6("2002:a9fe:a9fe::1"),                    // 6to4 of 169.254.169.254
            v6("2001:0:4136:e378:8000:63bf:5601:5601"), // Teredo, client 169.254.169.254 (obfuscated)
            v6("fd00:ec2::254"),                        // AWS's IPv6 metadata endpoint
            v6("::1"),
            v6("fe80::1"),
        ] {
            refused(IpAddr::V6(answer)).await;
        }
    });
}
