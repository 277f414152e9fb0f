//! Per-object last-good at a running `egress gateway run`, settled reads of `--config DIR`,
//! and SIGHUP:
//!
//! * a hand-truncated object file in the store keeps its last good version in effect and
//!   never stops another object's deletion from reaching the gateway; `egress apply` repairs
//!   it and `egress delete` removes a damaged one;
//! * a file rewritten in place and held after its first document is never served;
//! * a refused file that is reverted brings `egress_config_last_reload_success` back to 1;
//! * `kill -HUP` re-reads the configuration and leaves the gateway serving.
//!
//! Each test claims a loopback block: its gateway listens on host 1, its upstreams on hosts 11
//! and up (ports the system picks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod gateway_process;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Cluster;
use egress_testkit::addrs::Block;
use egress_testkit::eventually;
use gateway_process::{
    GatewayProcess, MESH_CONFIG, NS, TARGET_PORT, config_figures, gateway_yaml, get,
    service_entry_yaml, upstream, virtual_service_yaml,
};

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep]).unwrap();
}

const HELD: &str = "egress_config_objects_held{kind=ServiceEntry,state=last_good}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_object_never_blocks_a_deletion_and_apply_repairs_it() {
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let c = Cluster::new();
    c.namespace("aks-istio-system");
    c.namespace(NS);
    let se_b = service_entry_yaml("upstream-b", "b.upstream.test", b.local_addr());
    let all = format!(
        "{MESH_CONFIG}---\n{}---\n{}---\n{se_b}---\n{}---\n{}",
        gateway_yaml("lg", &["a.example.com", "b.example.com"]),
        service_entry_yaml("upstream-a", "a.upstream.test", a.local_addr()),
        virtual_service_yaml("lg", "route-a", "a.example.com", "a.upstream.test"),
        virtual_service_yaml("lg", "route-b", "b.example.com", "b.upstream.test"),
    );
    c.run_stdin(&["apply", "-f", "-"], &all).ok();
    let gw = GatewayProcess::start(Some(&c.store()), None, net.ip(1).into(), "lg");
    gw.wait_route("a.example.com", 200, Some(a.local_addr()))
        .await;
    gw.wait_route("b.example.com", 200, Some(b.local_addr()))
        .await;

    // Truncate upstream-b's object file by hand (still starts like JSON).
    let file = c.store().join(format!(
        "objects/networking.istio.io/ServiceEntry/{NS}/upstream-b.json"
    ));
    truncate(&file, 60);
    c.run(&["get", "serviceentry", "upstream-b", "-n", NS])
        .fails();

    // Deleting another object reaches the gateway: a.example.com is no longer routed.
    c.run(&["delete", "virtualservice", "route-a", "-n", NS])
        .ok();
    gw.wait_route("a.example.com", 404, None).await;
    // The damaged object keeps its last good version: b is still served.
    let got = get(gw.addr(), "b.example.com", "/").await.unwrap();
    assert_eq!(got, (200, Some(b.local_addr().to_string())));
    let line = gw
        .wait_log(&[
            "ServiceEntry aks-istio-egress/upstream-b",
            "last good version kept",
        ])
        .await;
    assert!(line.contains("upstream-b.json"), "{line}");
    assert_eq!(
        gw.count("ServiceEntry aks-istio-egress/upstream-b (last good"),
        1,
        "logged once:\n{}",
        gw.lines()
    );
    gw.wait_figures("one ServiceEntry held", |f| f.get(HELD) == Some(&1.0))
        .await;

    // `egress apply` repairs it (the journal holds its last body: unchanged).
    let out = c.run_stdin(&["apply", "-f", "-"], &se_b).ok();
    assert!(out.stdout.contains("serviceentry"), "{}", out.stdout);
    c.run(&["get", "serviceentry", "upstream-b", "-n", NS]).ok();
    gw.wait_log(&["configuration recovered"]).await;
    gw.wait_figures("nothing held, success", |f| {
        f.get(HELD).is_none() && f.get("egress_config_last_reload_success") == Some(&1.0)
    })
    .await;
    gw.wait_route("b.example.com", 200, Some(b.local_addr()))
        .await;

    // `egress delete` removes a damaged object.
    truncate(&file, 10);
    let out = c
        .run(&["delete", "serviceentry", "upstream-b", "-n", NS])
        .ok();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    assert!(!file.exists());
    let addr = gw.addr();
    let gone = eventually(Duration::from_secs(20), || async move {
        matches!(get(addr, "b.example.com", "/").await, Ok((s, _)) if s != 200)
    })
    .await;
    assert!(gone.is_ok(), "b is still served:\n{}", gw.lines());
}

fn config_dir(dir: &Path, a: SocketAddr, b: SocketAddr) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), MESH_CONFIG).unwrap();
    std::fs::write(
        config.join("gateway.yaml"),
        gateway_yaml("lg", &["h.example.com"]),
    )
    .unwrap();
    let entries = format!(
        "{}---\n{}",
        service_entry_yaml("upstream-a", "a.upstream.test", a),
        service_entry_yaml("upstream-b", "b.upstream.test", b)
    );
    std::fs::write(config.join("entries.yaml"), entries).unwrap();
    std::fs::write(
        config.join("vs.yaml"),
        virtual_service_yaml("lg", "route", "h.example.com", "b.upstream.test"),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_is_never_served() {
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let b2 = upstream(net.ip(13)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), a.local_addr(), b.local_addr());
    let gw = GatewayProcess::start(None, Some(&config), net.ip(1).into(), "lg");
    gw.wait_route("h.example.com", 200, Some(b.local_addr()))
        .await;
    gw.wait_figures("version 1", |f| {
        f.get("egress_config_version") == Some(&1.0)
    })
    .await;

    // Rewrite entries.yaml in place; hold the writer after its first document (valid YAML
    // on its own, without upstream-b).
    let first = service_entry_yaml("upstream-a", "a.upstream.test", a.local_addr());
    let rest = format!(
        "---\n{}",
        service_entry_yaml("upstream-b", "b.upstream.test", b2.local_addr())
    );
    let mut writer = std::fs::File::create(config.join("entries.yaml")).unwrap();
    writer.write_all(first.as_bytes()).unwrap();
    writer.flush().unwrap();
    gw.wait_log(&["still being written", "entries.yaml"]).await;
    for _ in 0..5 {
        let got = get(gw.addr(), "h.example.com", "/").await.unwrap();
        assert_eq!(got, (200, Some(b.local_addr().to_string())));
    }
    let f = config_figures(gw.ip).await.unwrap_or_default();
    assert_eq!(f["egress_config_version"], 1.0, "{f:?}");
    assert_eq!(gw.count("configuration loaded"), 1, "{}", gw.lines());

    // The write finishes: the new configuration, whole.
    writer.write_all(rest.as_bytes()).unwrap();
    drop(writer);
    gw.wait_route("h.example.com", 200, Some(b2.local_addr()))
        .await;
    gw.wait_figures("version 2", |f| {
        f.get("egress_config_version") == Some(&2.0)
    })
    .await;
    assert_eq!(gw.count("configuration loaded"), 2, "{}", gw.lines());

    // A refused file, reverted: the success gauge and the log report recovery.
    let vs = config.join("vs.yaml");
    let good = std::fs::read_to_string(&vs).unwrap();
    let tmp = config.join("vs.tmp");
    std::fs::write(&tmp, good.replace("route:", "rooute:")).unwrap();
    std::fs::rename(&tmp, &vs).unwrap();
    gw.wait_log(&["configuration refused", "vs.yaml:"]).await;
    gw.wait_figures("refused", |f| {
        f.get("egress_config_last_reload_success") == Some(&0.0)
    })
    .await;
    std::fs::write(&tmp, &good).unwrap();
    std::fs::rename(&tmp, &vs).unwrap();
    gw.wait_figures("recovered", |f| {
        f.get("egress_config_last_reload_success") == Some(&1.0)
    })
    .await;
    gw.wait_log(&["configuration recovered"]).await;
    let got = get(gw.addr(), "h.example.com", "/").await.unwrap();
    assert_eq!(got, (200, Some(b2.local_addr().to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_configuration_and_never_kills() {
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir(dir.path(), a.local_addr(), b.local_addr());
    let mut gw = GatewayProcess::start(None, Some(&config), net.ip(1).into(), "lg");
    gw.wait_route("h.example.com", 200, Some(b.local_addr()))
        .await;
    for round in 1..=3 {
        let st = Command::new("kill")
            .arg("-HUP")
            .arg(gw.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let ok = eventually(Duration::from_secs(20), || {
            let n = gw.count("SIGHUP: re-reading the configuration source");
            async move { n == round }
        })
        .await;
        assert!(ok.is_ok(), "round {round}:\n{}", gw.lines());
        assert!(gw.child.try_wait().unwrap().is_none(), "{}", gw.lines());
        let got = get(gw.addr(), "h.example.com", "/").await.unwrap();
        assert_eq!(got, (200, Some(b.local_addr().to_string())));
    }
}

/// A YAML manifest as the JSON object an API server would hold.
fn object(yaml: &str) -> serde_json::Value {
    egress_model::yaml::parse_stream(yaml)
        .unwrap()
        .remove(0)
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_mode_keeps_an_invalid_objects_last_good_version() {
    use egress_testkit::apiserver::MockApiServer;
    let net = Block::claim().unwrap();
    let a = upstream(net.ip(11)).await;
    let b = upstream(net.ip(12)).await;
    let server = MockApiServer::start().unwrap();
    let route_b = virtual_service_yaml("lg", "route-b", "b.example.com", "b.upstream.test");
    for yaml in [
        MESH_CONFIG.to_owned(),
        gateway_yaml("lg", &["a.example.com", "b.example.com"]),
        service_entry_yaml("upstream-a", "a.upstream.test", a.local_addr()),
        service_entry_yaml("upstream-b", "b.upstream.test", b.local_addr()),
        virtual_service_yaml("lg", "route-a", "a.example.com", "a.upstream.test"),
        route_b.clone(),
    ] {
        server.put(object(&yaml)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let mut child = Command::new(common::bin())
        .env_remove("EGRESS_STORE")
        .env_remove("KUBECONFIG")
        .env("POD_NAMESPACE", NS)
        .env("POD_NAME", "lgtest-0")
        .env("SERVICE_ACCOUNT", "lgtest")
        .args(["gateway", "run", "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            "--labels",
            "istio=lgtest,app=lgtest",
            "--revision",
            "asm-1-24",
            "--service-ports",
            &format!("80:{TARGET_PORT}"),
            "--listen-address",
            &net.ip(1).to_string(),
            "--drain-grace",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, _) = common::collect_output(&mut child);
    let gw = GatewayProcess {
        child,
        log,
        ip: net.ip(1).into(),
    };
    gw.wait_route("a.example.com", 200, Some(a.local_addr()))
        .await;
    gw.wait_route("b.example.com", 200, Some(b.local_addr()))
        .await;

    // route-b turns invalid (a redirect code that is not 3xx): its last good version stays.
    let mut bad = object(&route_b);
    bad["spec"]["http"] = serde_json::json!([{"redirect": {"uri": "/x", "redirectCode": 200}}]);
    server.put(bad).unwrap();
    let line = gw
        .wait_log(&["VirtualService aks-istio-egress/route-b (last good version kept)"])
        .await;
    assert!(line.contains("must be 3xx"), "{line}");
    // Another object's deletion applies meanwhile.
    server
        .delete(
            "networking.istio.io/v1",
            "VirtualService",
            Some(NS),
            "route-a",
        )
        .unwrap();
    gw.wait_route("a.example.com", 404, None).await;
    let got = get(gw.addr(), "b.example.com", "/").await.unwrap();
    assert_eq!(got, (200, Some(b.local_addr().to_string())));
    let held = "egress_config_objects_held{kind=VirtualService,state=last_good}";
    gw.wait_figures("route-b held", |f| f.get(held) == Some(&1.0))
        .await;
    assert_eq!(
        gw.count("aks-istio-egress/route-b (last good"),
        1,
        "{}",
        gw.lines()
    );
    // Deleting the bad object deletes its last good version too.
    server
        .delete(
            "networking.istio.io/v1",
            "VirtualService",
            Some(NS),
            "route-b",
        )
        .unwrap();
    gw.wait_route("b.example.com", 404, None).await;
    gw.wait_figures("nothing held", |f| f.get(held).is_none())
        .await;
}
