//! Denials you can see, end to end on the local cluster: the seed's curl workload reaches two
//! stand-in hosts under ALLOW_ANY (HTTP by Host, HTTPS by SNI, both on ports no ServiceEntry
//! declares); `egress analyze traffic` reads the sidecar's log and lists both, per source
//! identity, host and port, with ServiceEntries; applied, and with the mesh switched to
//! REGISTRY_ONLY, both keep working and a third host is blocked, its denial logged with the
//! Host it asked for. Pods and stand-ins come from claimed loopback blocks; the stand-ins use
//! unprivileged ports, and `egress exec` captures transparently where it can (root and
//! iptables), else goes through the sidecar as an explicit proxy: both are covered by the same
//! assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Addrs, Cluster, Up, until, wait_for};
use egress_store::Store;
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream};
use serde_json::Value;

const NS: &str = "apps";
const SOURCE: &str = "cluster.local/ns/apps/sa/curl";

fn mesh_config(mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    outboundTrafficPolicy:\n      mode: {mode}\n"
    )
}

/// The rows of `analyze traffic`'s sidecar table, split on whitespace.
fn policy_rows(stderr: &str) -> Vec<Vec<String>> {
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("Outside the service registry"))
        .skip(2)
        .take_while(|l| l.starts_with(SOURCE))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_any_traffic_becomes_service_entries_that_keep_it_working_under_registry_only() {
    let addrs = Addrs::claim();
    let stand_ins = Block::claim().unwrap();
    let ip = |n| IpAddr::V4(stand_ins.ip(n));
    let certs = CertFactory::new().unwrap();
    let a = HttpUpstream::start(SocketAddr::new(ip(1), 8080))
        .await
        .unwrap();
    let b = HttpsUpstream::start(SocketAddr::new(ip(2), 8443), &certs, &["b.example.org"])
        .await
        .unwrap();
    let third = HttpUpstream::start(SocketAddr::new(ip(3), 8080))
        .await
        .unwrap();
    let c = Cluster::new();
    let ca_file = certs.write_ca_file(c.dir.path()).unwrap();
    tokio::task::block_in_place(|| {
        let hosts = [
            format!("a.example.org={}", ip(1)),
            format!("b.example.org={}", ip(2)),
            format!("c.example.org={}", ip(3)),
        ];
        let mut flags = vec!["--upstream-ca", ca_file.to_str().unwrap()];
        for h in &hosts {
            flags.extend(["--host", h.as_str()]);
        }
        let _up = Up::start(&c, &addrs.flags(&flags));
        let store = Store::open(c.store()).unwrap();
        c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
            .ok();
        c.namespace("aks-istio-system");
        c.run_stdin(&["apply", "-f", "-"], &mesh_config("ALLOW_ANY"))
            .ok();
        c.namespace(NS);
        c.run(&["label", "namespace", NS, "istio.io/rev=asm-1-24"])
            .ok();
        let curl = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
        )
        .unwrap();
        c.run_stdin(&["apply", "-n", NS, "-f", "-"], &curl).ok();
        wait_for(&store, "curl 2/2 Running", Duration::from_secs(60), |s| {
            s.list("", "Pod", Some(NS)).unwrap().items.iter().any(|p| {
                p.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.len() == 2 && cs.iter().all(|c| c["ready"] == Value::Bool(true))
                    })
            })
        });
        let exec = format!(
            "POD=$(egress get pod -n {NS} -l app=curl -o jsonpath={{.items..metadata.name}}); egress exec -n {NS} \"$POD\" -c curl -- curl -sS -o /dev/null -w '%{{http_code}}'"
        );
        let code = |r: &common::Run| r.stdout.trim().to_owned();

        // ALLOW_ANY: both stand-ins are reached directly, past the registry.
        for url in [
            "http://a.example.org:8080/a",
            "https://b.example.org:8443/b",
        ] {
            until(&c, &format!("{exec} {url}"), url, |r| code(r) == "200");
        }
        assert!(!a.connections().is_empty());
        assert!(!b.connections().is_empty());

        // The report lists both, for the curl workload's identity.
        let report = until(&c, "egress analyze traffic", "both hosts reported", |r| {
            let rows = policy_rows(&r.stderr);
            ["a.example.org", "b.example.org"]
                .iter()
                .all(|h| rows.iter().any(|row| row[1] == *h))
        });
        println!(
            "$ egress analyze traffic\n{}{}",
            report.stderr, report.stdout
        );
        let rows = policy_rows(&report.stderr);
        let row = |host: &str| {
            rows.iter()
                .find(|r| r[1] == host)
                .unwrap_or_else(|| panic!("{host} in {}", report.stderr))
                .clone()
        };
        let a_row = row("a.example.org");
        assert_eq!(a_row[..4], [SOURCE, "a.example.org", "8080", "HTTP"]);
        assert_ne!(a_row[4], "0", "passed through: {a_row:?}");
        assert_eq!(a_row[5], "0", "blocked: {a_row:?}");
        let b_row = row("b.example.org");
        assert_eq!(b_row[..4], [SOURCE, "b.example.org", "8443", "TLS"]);
        assert!(
            !rows.iter().any(|r| r[1] == "c.example.org"),
            "{}",
            report.stderr
        );
        for host in ["a.example.org", "b.example.org"] {
            assert!(
                report.stdout.contains(&format!("- {host}")),
                "{}",
                report.stdout
            );
        }

        // Apply the suggestions, switch to REGISTRY_ONLY: both keep working, the third is
        // blocked by the sidecar (502 from block_all on the now-declared HTTP port).
        c.run_stdin(&["apply", "-n", NS, "-f", "-"], &report.stdout)
            .ok();
        c.run_stdin(&["apply", "-f", "-"], &mesh_config("REGISTRY_ONLY"))
            .ok();
        until(
            &c,
            &format!("{exec} http://c.example.org:8080/c"),
            "the third host blocked",
            |r| code(r) == "502",
        );
        for url in [
            "http://a.example.org:8080/a",
            "https://b.example.org:8443/b",
        ] {
            let r = c.sh(&format!("{exec} {url}"));
            assert_eq!(code(&r), "200", "{url} under REGISTRY_ONLY: {}", r.stderr);
        }
        assert!(third.connections().is_empty(), "the third host was reached");

        // The denial is reported as blocked, with the host it asked for.
        let after = c.run(&["analyze", "traffic"]).ok();
        let blocked = policy_rows(&after.stderr)
            .into_iter()
            .find(|r| r[1] == "c.example.org")
            .unwrap_or_else(|| panic!("{}", after.stderr));
        assert_eq!(blocked[..4], [SOURCE, "c.example.org", "8080", "HTTP"]);
        assert_ne!(blocked[5], "0", "{blocked:?}");
    });
}
