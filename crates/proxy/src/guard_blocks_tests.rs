//! The guard's table checked against every row of IANA's special-purpose registries
//! (`crates/proxy/data/iana-special-purpose.tsv`), and the embedding forms by what they embed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::refusal;

const REGISTRY: &str = include_str!("../data/iana-special-purpose.tsv");

/// Prefixes judged by the IPv4 address they embed, not by their registry row.
const EMBEDDING: [&str; 4] = ["::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "2001::/32"];

struct Row {
    block: String,
    first: IpAddr,
    last: IpAddr,
    reachable: String,
}

fn rows() -> Vec<Row> {
    REGISTRY
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line}");
            let (addr, len) = cols[0].split_once('/').unwrap();
            let len: u32 = len.parse().unwrap();
            let (first, last) = match addr.parse::<IpAddr>().unwrap() {
                IpAddr::V4(a) => {
                    let host = if len == 32 { 0 } else { u32::MAX >> len };
                    let n = u32::from(a);
                    (
                        IpAddr::V4(Ipv4Addr::from(n & !host)),
                        IpAddr::V4(Ipv4Addr::from(n | host)),
                    )
                }
                IpAddr::V6(a) => {
                    let host = if len == 128 { 0 } else { u128::MAX >> len };
                    let n = u128::from(a);
                    (
                        IpAddr::V6(Ipv6Addr::from(n & !host)),
                        IpAddr::V6(Ipv6Addr::from(n | host)),
                    )
                }
            };
            Row {
                block: cols[0].to_owned(),
                first,
                last,
                reachable: cols[2].to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_registry_row_is_judged_as_iana_marks_it() {
    let rows = rows();
    assert!(rows.len() >= 50, "{} rows", rows.len());
    for row in rows
        .iter()
        .filter(|r| !EMBEDDING.contains(&r.block.as_str()))
    {
        for ip in [row.first, row.last] {
            match row.reachable.as_str() {
                "True" => assert_eq!(refusal(ip), None, "{ip} in {}", row.block),
                "False" | "N/A" => assert!(refusal(ip).is_some(), "{ip} in {}", row.block),
                other => panic!("column {other:?} in {}", row.block),
            }
        }
    }
}

#[test]
fn embedding_forms_are_judged_by_the_embedded_address() {
    for (public, refused) in [
        ("::ffff:8.8.8.8", "::ffff:127.0.90.11"),
        ("::8.8.8.8", "::7f00:5a0b"),
        ("64:ff9b::8.8.8.8", "64:ff9b::7f00:5a0b"),
        ("64:ff9b::8.8.8.8", "64:ff9b::a9fe:a9fe"),
        ("2002:0808:0808::1", "2002:7f00:0001::1"),
        ("2002:0808:0808::1", "2002:a83f:8110::1"),
        // Teredo: server 8.8.8.8 in bits 32..64, client in the last 32 bits inverted
        // (f7f7:f7f7 is 8.8.8.8; 80ff:fffe is 127.0.0.1).
        ("2001:0:808:808::f7f7:f7f7", "2001:0:808:808::80ff:fffe"),
        ("2001:0:808:808::f7f7:f7f7", "2001:0:a00:1::f7f7:f7f7"),
    ] {
        assert_eq!(refusal(public.parse().unwrap()), None, "{public}");
        assert!(refusal(refused.parse().unwrap()).is_some(), "{refused}");
    }
    // Local-use NAT64 is not globally reachable whatever it embeds.
    assert!(refusal("64:ff9b:1::808:808".parse().unwrap()).is_some());
}

#[test]
fn the_issue_addresses_and_cloud_endpoints_are_refused() {
    for (addr, why) in [
        ("168.63.129.16", "cloud platform endpoint"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("64:ff9b::7f00:5a0b", "loopback"),
        ("::7f00:5a0b", "loopback"),
        ("198.18.0.1", "benchmarking"),
        ("255.255.255.255", "limited broadcast"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
    ] {
        assert_eq!(refusal(addr.parse().unwrap()), Some(why), "{addr}");
    }
    for addr in [
        "168.63.129.15",
        "168.63.129.17",
        "100.128.0.1",
        "2606:4700::1111",
    ] {
        assert_eq!(refusal(addr.parse().unwrap()), None, "{addr}");
    }
}
