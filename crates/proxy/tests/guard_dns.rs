//! The resolved-address guard: a DNS cluster whose name DNS resolves to the metadata service,
//! a private or a loopback address is refused with 503 `UH` and
//! `upstream_address_refused{host->address}`, without connecting; the operator's override
//! table and `allow_private_upstreams` let such addresses through. DNS answers come from a
//! stub server on loopback (`ProxyOptions.dns_server`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod guard_support;
mod l7_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use egress_proxy::ProxyOptions;
use egress_snapshot::snapshot::{Cluster, Discovery, LbPolicy, PoolSettings};
use egress_testkit::HttpUpstream;
use guard_support::StubDns;
use l7_support::*;

const CNN: &str = "edition.cnn.com";

/// `outbound|<port>||edition.cnn.com` resolved by DNS (`resolution: DNS`).
fn dns_cluster(port: u16, discovery: Discovery) -> Cluster {
    Cluster {
        name: format!("outbound|{port}||{CNN}"),
        host: CNN.to_owned(),
        port,
        discovery,
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: Duration::from_secs(5),
        pool: PoolSettings::default(),
        outlier: None,
        external: true,
        tunnel: None,
    }
}

fn strict(port: u16) -> Discovery {
    Discovery::StrictDns {
        hostname: CNN.to_owned(),
        port,
    }
}

async fn gateway(cluster: Cluster, options: ProxyOptions) -> Gateway {
    let name = cluster.name.clone();
    let snap = snapshot(
        vec![vhost(
            CNN,
            vec![forward("default.cnn.0", vec![dest(&name, 1)])],
        )],
        vec![cluster],
    );
    Gateway::start_with(snap, options).await
}

fn via(dns: &StubDns) -> ProxyOptions {
    ProxyOptions {
        upstream: egress_proxy::UpstreamOptions {
            dns_server: Some(dns.addr),
            ..Default::default()
        },
        ..ProxyOptions::default()
    }
}

/// Sends `GET /` with Host edition.cnn.com and returns the status and body.
async fn fetch(gw: &Gateway) -> (u16, String) {
    let mut client = h1_client(gw.addr).await;
    let resp = tokio::time::timeout(WAIT, client.send_request(get(CNN, "/")))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    (status, text(resp).await)
}

async fn assert_refused(answer: Ipv4Addr, discovery: fn(u16) -> Discovery) {
    let dns = StubDns::start(&[(CNN, answer)]).await.unwrap();
    let gw = gateway(dns_cluster(80, discovery(80)), via(&dns)).await;
    let (status, body) = fetch(&gw).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "no healthy upstream");
    let line = gw.line(1).await;
    assert_eq!(line.flags, "UH");
    assert_eq!(
        line.details,
        format!("upstream_address_refused{{{CNN}->{answer}}}")
    );
    assert_eq!(line.upstream_host, "-", "nothing was connected to");
    assert!(dns.queries() >= 1, "the answer came from DNS");
}

#[tokio::test]
async fn metadata_answer_is_refused_with_details() {
    assert_refused(Ipv4Addr::new(169, 254, 169, 254), strict).await;
}

#[tokio::test]
async fn private_answer_is_refused() {
    assert_refused(Ipv4Addr::new(10, 20, 30, 40), strict).await;
}

#[tokio::test]
async fn logical_dns_and_dns_endpoints_are_guarded_too() {
    assert_refused(Ipv4Addr::new(100, 64, 0, 9), |port| Discovery::LogicalDns {
        hostname: CNN.to_owned(),
        port,
    })
    .await;
    assert_refused(Ipv4Addr::new(192, 168, 1, 1), |port| {
        Discovery::DnsEndpoints(vec![(CNN.to_owned(), port, 1)])
    })
    .await;
}

#[tokio::test]
async fn loopback_answer_is_refused_and_the_opt_out_connects() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let dns = StubDns::start(&[(CNN, Ipv4Addr::LOCALHOST)]).await.unwrap();

    let guarded = gateway(dns_cluster(port, strict(port)), via(&dns)).await;
    let (status, _) = fetch(&guarded).await;
    assert_eq!(status, 503);
    assert_eq!(
        guarded.line(1).await.details,
        format!("upstream_address_refused{{{CNN}->127.0.0.1}}")
    );

    let mut options = via(&dns);
    options.upstream.allow_private_upstreams = true;
    let open = gateway(dns_cluster(port, strict(port)), options).await;
    let (status, body) = fetch(&open).await;
    assert_eq!(status, 200, "{body}");
    let line = open.line(1).await;
    assert_eq!(
        (line.flags.as_str(), line.details.as_str()),
        ("-", "via_upstream")
    );
    assert_eq!(line.upstream_host, upstream.local_addr().to_string());
    assert_eq!(upstream.wait_for_requests(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn override_table_answers_are_not_guarded() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    // The stub would say 10.0.0.1; the operator's table wins and is explicit.
    let dns = StubDns::start(&[(CNN, Ipv4Addr::new(10, 0, 0, 1))])
        .await
        .unwrap();
    let mut options = via(&dns);
    options.upstream.hosts = vec![(CNN.to_owned(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])];
    let gw = gateway(dns_cluster(port, strict(port)), options).await;
    let (status, body) = fetch(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dns.queries(), 0, "the table answered");
}

#[tokio::test]
async fn ip_literal_hostnames_are_not_guarded() {
    let upstream = HttpUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let dns = StubDns::start(&[]).await.unwrap();
    let cluster = dns_cluster(
        port,
        Discovery::StrictDns {
            hostname: "127.0.0.1".to_owned(),
            port,
        },
    );
    let gw = gateway(cluster, via(&dns)).await;
    let (status, body) = fetch(&gw).await;
    assert_eq!(status, 200, "{body}");
}
