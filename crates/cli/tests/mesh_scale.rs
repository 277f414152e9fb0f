//! The service's limit of 500 egress gateways per cluster, reached through `mesh::run`
//! against a store (each command touches only its own gateway's objects), and the cluster
//! IPs of gateway Services recorded as `IPAddress` objects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use clap::Parser;
use egress_cli::Io;
use egress_cli::mesh::sync::ip_address_key;
use egress_cli::mesh::{self, MeshCommand, MeshError};
use egress_store::{ObjectKey, Store, StoreError, StoreOptions};
use egress_testkit::addrs::Block;
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(subcommand)]
    command: MeshCommand,
}

/// A store with the namespace and a StaticGatewayConfiguration with its prefix (held with the
/// block that prefix comes from).
fn store() -> ((tempfile::TempDir, Block), Store) {
    let dir = tempfile::tempdir().unwrap();
    // The egress prefix the controllers would have assigned, from a claimed loopback block.
    let pool = Block::claim().unwrap();
    let prefix = pool.subnet(0, 31).to_string();
    let options = StoreOptions {
        fsync: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path().join("store"), options).unwrap();
    store
        .transact(|tx| {
            tx.apply(
                &ObjectKey::for_namespace(NS),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )?;
            tx.apply(
                &ObjectKey::new(
                    mesh::SGC_GROUP,
                    "StaticGatewayConfiguration",
                    Some(NS),
                    "sgc",
                ),
                json!({
                    "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
                    "kind": "StaticGatewayConfiguration",
                    "metadata": {"name": "sgc", "namespace": NS},
                    "spec": {"gatewayNodepoolName": "gw"},
                    "status": {"egressIpPrefix": prefix},
                }),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    ((dir, pool), store)
}

fn run(store: &Store, args: &[&str]) -> Result<String, MeshError> {
    let mut all = vec!["mesh"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-g", "rg", "-n", "c"]);
    let command = Wrapper::try_parse_from(all).unwrap().command;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    mesh::run(store, &command, &mut io, &mut |_: &str| Ok(true))?;
    Ok(String::from_utf8(err).unwrap())
}

fn enable(store: &Store, name: &str) -> Result<String, MeshError> {
    run(
        store,
        &[
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            name,
            "--gateway-configuration-name",
            "sgc",
            "-o",
            "none",
        ],
    )
}

fn cluster_ip(store: &Store, name: &str) -> String {
    let svc = store
        .get(&ObjectKey::new("", "Service", Some(NS), name))
        .unwrap()
        .unwrap_or_else(|| panic!("no Service {name}"));
    svc["spec"]["clusterIP"].as_str().unwrap().to_owned()
}

fn ip_owner(store: &Store, ip: &str) -> Option<String> {
    store
        .get(&ip_address_key(ip.parse().unwrap()))
        .unwrap()
        .map(|r: Value| r["spec"]["parentRef"]["name"].as_str().unwrap().to_owned())
}

#[test]
fn five_hundred_gateways_and_not_one_more() {
    let (_dir, store) = store();
    let start = Instant::now();
    for i in 0..500 {
        enable(&store, &format!("eg-{i}")).unwrap();
    }
    let took = start.elapsed();
    eprintln!("enabling 500 egress gateways one command at a time took {took:?}");
    let e = enable(&store, "eg-500").unwrap_err();
    assert_eq!(
        e.to_string(),
        "(BadRequest) A cluster can have at most 500 Istio egress gateways; 500 are already enabled."
    );
    assert!(
        store
            .get(&ObjectKey::new("", "Service", Some(NS), "eg-500"))
            .unwrap()
            .is_none()
    );
    let services = store.list("", "Service", Some(NS)).unwrap().items;
    assert_eq!(services.len(), 500);
    let records = store
        .list(
            mesh::sync::IP_ADDRESS_GROUP,
            mesh::sync::IP_ADDRESS_KIND,
            None,
        )
        .unwrap()
        .items;
    assert_eq!(records.len(), 500);
    assert_eq!(cluster_ip(&store, "eg-0"), "10.0.0.1");
    assert_eq!(cluster_ip(&store, "eg-254"), "10.0.0.255");
    assert_eq!(cluster_ip(&store, "eg-499"), "10.0.1.244");

    // A revision change touches every gateway.
    let start = Instant::now();
    run(
        &store,
        &["upgrade", "start", "--revision", "asm-1-25", "-o", "none"],
    )
    .unwrap();
    eprintln!(
        "starting an upgrade with 500 egress gateways took {:?}",
        start.elapsed()
    );
    let deployments = store.list("apps", "Deployment", Some(NS)).unwrap().items;
    assert_eq!(deployments.len(), 1000);
}

#[test]
fn cluster_ips_are_recorded_and_released() {
    let (_dir, store) = store();
    enable(&store, "a").unwrap();
    enable(&store, "b").unwrap();
    assert_eq!(cluster_ip(&store, "a"), "10.0.0.1");
    assert_eq!(cluster_ip(&store, "b"), "10.0.0.2");
    assert_eq!(ip_owner(&store, "10.0.0.1").as_deref(), Some("a"));
    let record = store
        .get(&ip_address_key("10.0.0.2".parse().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(record["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        record["spec"]["parentRef"],
        json!({"group": "", "resource": "services", "namespace": NS, "name": "b"})
    );

    run(
        &store,
        &[
            "disable-egress-gateway",
            "--istio-egressgateway-name",
            "a",
            "--yes",
            "-o",
            "none",
        ],
    )
    .unwrap();
    assert_eq!(ip_owner(&store, "10.0.0.1"), None);
    enable(&store, "c").unwrap();
    assert_eq!(cluster_ip(&store, "c"), "10.0.0.1");
    assert_eq!(ip_owner(&store, "10.0.0.1").as_deref(), Some("c"));

    // Re-enabling with another configuration keeps the address.
    store
        .transact(|tx| {
            tx.apply(
                &ObjectKey::new(
                    mesh::SGC_GROUP,
                    "StaticGatewayConfiguration",
                    Some(NS),
                    "sgc2",
                ),
                json!({
                    "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
                    "kind": "StaticGatewayConfiguration",
                    "metadata": {"name": "sgc2", "namespace": NS},
                    "spec": {"gatewayNodepoolName": "gw"},
                }),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    run(
        &store,
        &[
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            "b",
            "--gateway-configuration-name",
            "sgc2",
            "-o",
            "none",
        ],
    )
    .unwrap();
    assert_eq!(cluster_ip(&store, "b"), "10.0.0.2");
    let d = store
        .get(&ObjectKey::new(
            "apps",
            "Deployment",
            Some(NS),
            "b-asm-1-24",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["kubernetes.azure.com/static-gateway-configuration"],
        "sgc2"
    );

    // Disabling the mesh releases every address.
    run(&store, &["disable", "--yes", "-o", "none"]).unwrap();
    let records = store
        .list(
            mesh::sync::IP_ADDRESS_GROUP,
            mesh::sync::IP_ADDRESS_KIND,
            None,
        )
        .unwrap()
        .items;
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn a_service_without_a_record_keeps_its_address() {
    // A gateway Service written before addresses were recorded gets its record on the
    // next change that touches it, and its address is not handed out again.
    let (_dir, store) = store();
    enable(&store, "a").unwrap();
    store
        .transact(|tx| {
            tx.delete(&ip_address_key("10.0.0.1".parse().unwrap()))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    run(
        &store,
        &["upgrade", "start", "--revision", "asm-1-25", "-o", "none"],
    )
    .unwrap();
    assert_eq!(ip_owner(&store, "10.0.0.1").as_deref(), Some("a"));
    enable(&store, "b").unwrap();
    assert_eq!(cluster_ip(&store, "b"), "10.0.0.2");
}
