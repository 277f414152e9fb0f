//! A gateway Pod is Ready only when it serves: a listener it cannot bind (here, its address
//! is taken) keeps it not Ready, with the reason in an event: `Unhealthy` (running, its
//! readiness probe answering 503 and naming the listener) when the listener came with a
//! later configuration, `Failed` (CrashLoopBackOff, restarted) when its first configuration
//! already had it. Run as an unprivileged user, a gateway that may not bind port 80 is not
//! Ready either, and says `Permission denied`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{Addrs, Cluster, Up, wait_for};
use egress_store::Store;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

fn unhealthy(store: &Store) -> Vec<Value> {
    store
        .list("", "Event", Some(NS))
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e["reason"] == "Unhealthy" || e["reason"] == "Failed")
        .collect()
}

#[test]
fn a_gateway_pod_whose_port_is_taken_is_running_but_not_ready_and_says_why() {
    // The addresses the two gateway Pods get (the range's first hosts), port 80 taken first.
    let addrs = Addrs::claim();
    let taken: Vec<TcpListener> = [addrs.pods.ip(2), addrs.pods.ip(3)]
        .iter()
        .map(|ip| TcpListener::bind((*ip, 80)).unwrap())
        .collect();
    let c = Cluster::new();
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: pool\n  provisionPublicIps: true\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: http\n  namespace: aks-istio-egress\nspec:\n  selector:\n    istio: gw\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n",
    )
    .ok();
    let _up = Up::start(&c, &addrs.flags(&[]));
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "gw",
        "--gateway-configuration-name",
        "sgc",
        "--no-wait",
        "-o",
        "none",
    ])
    .ok();
    let store = Store::open(c.store()).unwrap();
    wait_for(
        &store,
        "an Unhealthy event for each gateway Pod",
        Duration::from_secs(60),
        |s| unhealthy(s).len() == 2,
    );
    for e in unhealthy(&store) {
        let message = e["message"].as_str().unwrap();
        let expected = if e["reason"] == "Unhealthy" {
            "Readiness probe failed: HTTP probe failed with statuscode: 503 (binding listener"
        } else {
            "binding listener"
        };
        assert!(
            message.starts_with(expected) && message.contains(":80: "),
            "{message}"
        );
        assert!(message.contains("in use"), "{message}");
        assert_eq!(e["type"], "Warning");
    }
    eprintln!(
        "events: {:?}",
        unhealthy(&store)
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    );
    // kubectl's view: not ready, running (probe failing) or restarting.
    let probe_failing = unhealthy(&store).iter().all(|e| e["reason"] == "Unhealthy");
    let table = c.run(&["get", "pods", "-n", NS]).ok().stdout;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    for r in &rows {
        assert_eq!(r[1], "0/1", "{table}");
        assert!(["Running", "CrashLoopBackOff"].contains(&r[2]), "{table}");
    }
    let events = c.run(&["get", "events", "-n", NS]).ok().stdout;
    assert!(
        events.contains("Warning") && events.contains("in use"),
        "{events}"
    );
    // The probe itself answers 503 and names the listener.
    let probe = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("http://{}:15021/healthz/ready", addrs.pods.ip(2)),
        ])
        .output();
    if let Ok(out) = probe
        .as_ref()
        .map_err(|_| ())
        .and_then(|o| probe_failing.then_some(o).ok_or(()))
    {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.ends_with("\n503"), "{text}");
        assert!(text.starts_with("not ready\nbinding listener"), "{text}");
    }
    // The deployment is not available.
    let d = c.run(&["get", "deployments", "-n", NS]).ok().stdout;
    assert!(d.lines().nth(1).is_some_and(|l| l.contains(" 0/2 ")), "{d}");
    drop(taken);
}

#[test]
fn a_listener_added_later_on_a_taken_port_turns_a_ready_pod_not_ready_with_the_reason() {
    let c = Cluster::new();
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: pool\n  provisionPublicIps: true\n",
    )
    .ok();
    let addrs = Addrs::claim();
    let _up = Up::start(&c, &addrs.flags(&[]));
    // Ready with nothing to serve yet.
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "gw",
        "--gateway-configuration-name",
        "sgc",
        "-o",
        "none",
    ])
    .ok();
    let store = Store::open(c.store()).unwrap();
    let pods = store.list("", "Pod", Some(NS)).unwrap().items;
    let ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_owned())
        .collect();
    let taken: Vec<TcpListener> = ips
        .iter()
        .map(|ip| TcpListener::bind(format!("{ip}:80")).unwrap())
        .collect();
    // Now a Gateway asks for port 80.
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: http\n  namespace: aks-istio-egress\nspec:\n  selector:\n    istio: gw\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n",
    )
    .ok();
    wait_for(
        &store,
        "an Unhealthy event for each gateway Pod",
        Duration::from_secs(60),
        |s| {
            unhealthy(s)
                .iter()
                .filter(|e| e["reason"] == "Unhealthy")
                .count()
                == 2
        },
    );
    for e in unhealthy(&store) {
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(
                "Readiness probe failed: HTTP probe failed with statuscode: 503 (binding listener"
            ) && message.contains(":80: Address already in use"),
            "{message}"
        );
    }
    wait_for(
        &store,
        "both pods not ready",
        Duration::from_secs(30),
        |s| {
            s.list("", "Pod", Some(NS)).unwrap().items.iter().all(|p| {
                p.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(false))
            })
        },
    );
    let table = c.run(&["get", "pods", "-n", NS]).ok().stdout;
    for r in table.lines().skip(1) {
        let r: Vec<&str> = r.split_whitespace().collect();
        assert_eq!((r[1], r[2], r[3]), ("0/1", "Running", "0"), "{table}");
    }
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            &format!("http://{}:15021/healthz/ready", ips[0]),
        ])
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.starts_with("not ready\nbinding listener"), "{text}");
        assert!(text.ends_with("\n503"), "{text}");
    }
    drop(taken);
}

/// `egress up` and the add-on commands as the unprivileged user `nobody` (the machine refuses
/// ports below 1024 to it): the gateway Pods cannot bind port 80, so they are not Ready, and
/// `egress get pods` / `egress get events` say why.
#[test]
fn as_a_non_root_user_a_gateway_that_may_not_bind_port_80_is_not_ready_and_says_why() {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        egress_testkit::skip("needs root to run the cluster as the unprivileged user nobody");
        return;
    }
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if start <= 80 {
        egress_testkit::skip("this machine lets unprivileged users bind port 80");
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        egress_testkit::skip("needs setpriv (util-linux)");
        return;
    }
    let c = Cluster::as_user(65534);
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: pool\n  provisionPublicIps: true\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: http\n  namespace: aks-istio-egress\nspec:\n  selector:\n    istio: gw\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n",
    )
    .ok();
    let addrs = Addrs::claim();
    let _up = Up::start(&c, &addrs.flags(&[]));
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "gw",
        "--gateway-configuration-name",
        "sgc",
        "--no-wait",
        "-o",
        "none",
    ])
    .ok();
    let store = Store::open(c.store()).unwrap();
    wait_for(
        &store,
        "a warning event for each gateway Pod",
        Duration::from_secs(60),
        |s| unhealthy(s).len() == 2,
    );
    for e in unhealthy(&store) {
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("binding listener") && message.contains(":80: "),
            "{message}"
        );
        assert!(message.contains("Permission denied"), "{message}");
        assert_eq!(e["type"], "Warning");
    }
    let table = c.run(&["get", "pods", "-n", NS]).ok().stdout;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    for r in &rows {
        assert_eq!(r[1], "0/1", "{table}");
    }
    let events = c.run(&["get", "events", "-n", NS]).ok().stdout;
    assert!(events.contains("Permission denied"), "{events}");
    println!("{table}\n{events}");
}
