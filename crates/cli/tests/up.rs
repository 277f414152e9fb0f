//! `egress up` end to end: the seed's "Enable an Istio egress gateway" section against the
//! running local cluster, canary upgrades with running Pods, `egress down`, and SIGKILL in the
//! middle of a reconcile followed by a restart that converges with nothing lost or duplicated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Addrs, Cluster, Up, wait_for};
use egress_store::Store;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

fn pods(store: &Store) -> Vec<Value> {
    store.list("", "Pod", Some(NS)).unwrap().items
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn running(store: &Store) -> Vec<Value> {
    common::ready_pods(store, NS)
}

fn deployments(store: &Store) -> Vec<String> {
    store
        .list("apps", "Deployment", Some(NS))
        .unwrap()
        .items
        .iter()
        .map(|d| text(d, "/metadata/name").to_owned())
        .collect()
}

fn health(ip: &str) -> String {
    let o = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{ip}:15021/healthz/ready"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn have_curl() -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        egress_testkit::skip("curl is not installed");
    }
    ok
}

fn prerequisites(c: &Cluster) {
    c.run_stdin(&["apply", "-f", "-"], common::SGC_PREREQUISITES)
        .ok();
}

#[test]
fn seed_enable_section_then_canary_upgrades_on_running_pods() {
    if !have_curl() {
        return;
    }
    let c = Cluster::new();
    prerequisites(&c);
    let addrs = Addrs::claim();
    let up = Up::start(&c, &addrs.flags(&[]));
    let store = Store::open(c.store()).unwrap();
    let vars = "RESOURCE_GROUP=egress-local CLUSTER_NAME=egress-local ISTIO_EGRESS_NAME=asm-egress-test ISTIO_EGRESS_NAMESPACE=aks-istio-egress ISTIO_SGC_NAME=istio-egress-sgc";

    // az aks mesh enable-egress-gateway ... (waits until the gateway is ready).
    c.sh(&format!("{vars}; egress mesh enable-egress-gateway --resource-group $RESOURCE_GROUP --name $CLUSTER_NAME --istio-egressgateway-name $ISTIO_EGRESS_NAME --istio-egressgateway-namespace $ISTIO_EGRESS_NAMESPACE --gateway-configuration-name $ISTIO_SGC_NAME -o none")).ok();
    wait_for(
        &store,
        "2 running gateway pods",
        Duration::from_secs(60),
        |s| running(s).len() == 2,
    );

    // kubectl get svc $ISTIO_EGRESS_NAME -n $ISTIO_EGRESS_NAMESPACE
    let svc = c
        .sh(&format!(
            "{vars}; egress get svc $ISTIO_EGRESS_NAME -n $ISTIO_EGRESS_NAMESPACE"
        ))
        .ok()
        .stdout;
    let row: Vec<&str> = svc.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "asm-egress-test");
    assert_eq!(row[1], "ClusterIP");
    assert!(row[2].starts_with("10.0."), "{svc}");
    assert_eq!(row[4], "15021/TCP,80/TCP,443/TCP", "{svc}");

    // ASM_REVISION from the profile, then the Deployment's SGC annotation.
    let annotation = c
        .sh(&format!(
            "{vars}; ASM_REVISION=$(egress mesh show -g $RESOURCE_GROUP -n $CLUSTER_NAME | jq '.serviceMeshProfile.istio.revisions[0]' | sed 's/\"//g'); egress get deployment $ISTIO_EGRESS_NAME-$ASM_REVISION -n $ISTIO_EGRESS_NAMESPACE -o jsonpath={{.spec.template.metadata.annotations.\"kubernetes\\.azure\\.com\\/static-gateway-configuration\"}}"
        ))
        .ok()
        .stdout;
    assert_eq!(annotation.trim(), "istio-egress-sgc");

    // Every gateway Pod answers on <pod-ip>:15021 and binds its egress prefix's addresses.
    let table = c.run(&["get", "pods", "-A"]).ok().stdout;
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(" 1/1 ") && l.contains("Running"))
            .count(),
        2,
        "{table}"
    );
    for p in running(&store) {
        let ip = text(&p, "/status/podIP");
        assert!(
            addrs
                .pods
                .net()
                .contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()),
            "{ip}"
        );
        assert_eq!(health(ip), "200", "{ip}");
    }
    let sgc = store
        .get(&egress_store::ObjectKey::new(
            "egressgateway.kubernetes.azure.com",
            "StaticGatewayConfiguration",
            Some(NS),
            "istio-egress-sgc",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        text(&sgc, "/status/egressIpPrefix"),
        addrs.pool.subnet(0, 31).to_string()
    );

    // Canary upgrade: start -> two Deployments and one Service; complete -> one.
    c.run(&[
        "mesh",
        "upgrade",
        "start",
        "--revision",
        "asm-1-25",
        "-o",
        "none",
    ])
    .ok();
    wait_for(&store, "4 running pods", Duration::from_secs(60), |s| {
        running(s).len() == 4
    });
    assert_eq!(
        deployments(&store),
        ["asm-egress-test-asm-1-24", "asm-egress-test-asm-1-25"]
    );
    assert_eq!(store.list("", "Service", Some(NS)).unwrap().items.len(), 1);
    for p in running(&store) {
        assert_eq!(health(text(&p, "/status/podIP")), "200");
    }
    c.run(&["mesh", "upgrade", "complete", "--yes", "-o", "none"])
        .ok();
    wait_for(&store, "2 pods of asm-1-25", Duration::from_secs(60), |s| {
        let p = pods(s);
        p.len() == 2
            && p.iter()
                .all(|p| text(p, "/metadata/labels/istio.io~1rev") == "asm-1-25")
            && running(s).len() == 2
    });
    assert_eq!(deployments(&store), ["asm-egress-test-asm-1-25"]);

    // start then rollback -> the old revision only.
    c.run(&[
        "mesh",
        "upgrade",
        "start",
        "--revision",
        "asm-1-26",
        "-o",
        "none",
    ])
    .ok();
    wait_for(&store, "4 running pods", Duration::from_secs(60), |s| {
        running(s).len() == 4
    });
    c.run(&["mesh", "upgrade", "rollback", "--yes", "-o", "none"])
        .ok();
    wait_for(
        &store,
        "2 pods of asm-1-25 after rollback",
        Duration::from_secs(60),
        |s| {
            let p = pods(s);
            p.len() == 2
                && p.iter()
                    .all(|p| text(p, "/metadata/labels/istio.io~1rev") == "asm-1-25")
        },
    );
    assert_eq!(deployments(&store), ["asm-egress-test-asm-1-25"]);

    // Disabling removes the gateway's Pods; the Service goes with the last revision.
    c.run(&[
        "mesh",
        "disable-egress-gateway",
        "--istio-egressgateway-name",
        "asm-egress-test",
        "--yes",
        "-o",
        "none",
    ])
    .ok();
    wait_for(&store, "no pods", Duration::from_secs(60), |s| {
        pods(s).is_empty()
    });
    assert!(
        store
            .list("", "Service", Some(NS))
            .unwrap()
            .items
            .is_empty()
    );

    // egress down stops the foreground cluster too (SIGTERM, drain, exit 0).
    let down = c.run(&["down"]).ok().stdout;
    assert!(
        down.starts_with("egress local cluster stopped (pid "),
        "{down}"
    );
    let mut up = up;
    assert!(up.child.wait().unwrap().success());
    let again = c.run(&["down"]).ok().stdout;
    assert!(
        again.starts_with("egress local cluster is not running"),
        "{again}"
    );
}

#[test]
fn a_second_up_on_the_same_store_is_refused() {
    let c = Cluster::new();
    let first = Addrs::claim();
    let _up = Up::start(&c, &first.flags(&[]));
    let second = Addrs::claim();
    let mut argv = vec!["up"];
    argv.extend(second.flags(&[]));
    let r = c.run(&argv).fails();
    assert!(
        r.stderr.contains("the local cluster is already running on")
            && r.stderr.contains("stop it with \"egress down\""),
        "{}",
        r.stderr
    );
}

#[test]
fn sigkill_mid_reconcile_then_restart_converges_without_loss_or_duplicates() {
    const GATEWAYS: usize = 25;
    let c = Cluster::new();
    prerequisites(&c);
    for i in 0..GATEWAYS {
        c.run(&[
            "mesh",
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            &format!("gw-{i}"),
            "--gateway-configuration-name",
            "istio-egress-sgc",
            "--no-wait",
            "-o",
            "none",
        ])
        .ok();
    }
    let store = Store::open(c.store()).unwrap();
    // Kill it at three points of its work: after the first Pod exists, after a third of them
    // exist, after some are running.
    type Point = (&'static str, Box<dyn Fn(&Store) -> bool>);
    let points: [Point; 3] = [
        ("a first pod", Box::new(|s: &Store| !pods(s).is_empty())),
        (
            "a third of the pods",
            Box::new(|s: &Store| pods(s).len() >= 2 * GATEWAYS / 3),
        ),
        (
            "some running pods",
            Box::new(|s: &Store| !running(s).is_empty()),
        ),
    ];
    // One write per transaction: many small passes, so the kills land mid-reconcile.
    let addrs = Addrs::claim();
    let flags = addrs.flags(&["--reconcile-batch", "1"]);
    // Pods whose gateway was serving when `egress up` was killed: the next `egress up` starts
    // them again, and their RESTARTS says so.
    let mut served_before: BTreeSet<String> = BTreeSet::new();
    for (what, cond) in points {
        let up = Up::spawn(&c, &flags);
        wait_for(&store, what, Duration::from_secs(60), |s| cond(s));
        up.kill9();
        for p in running(&store) {
            served_before.insert(text(&p, "/metadata/name").to_owned());
        }
        eprintln!(
            "killed after {what}: {} pods, {} running",
            pods(&store).len(),
            running(&store).len()
        );
    }
    // The restart reconciles in full batches (any batch size must reach the same state).
    let _up = Up::spawn(&c, &flags[..4]);
    wait_for(
        &store,
        "every gateway pod running",
        Duration::from_secs(120),
        |s| {
            running(s).len() == 2 * GATEWAYS
                && pods(s).len() == 2 * GATEWAYS
                && s.list("apps", "Deployment", Some(NS))
                    .unwrap()
                    .items
                    .iter()
                    .all(|d| d.pointer("/status/readyReplicas") == Some(&serde_json::json!(2)))
        },
    );
    let all = pods(&store);
    let names: BTreeSet<&str> = all.iter().map(|p| text(p, "/metadata/name")).collect();
    let ips: BTreeSet<&str> = all.iter().map(|p| text(p, "/status/podIP")).collect();
    assert_eq!(names.len(), 2 * GATEWAYS);
    assert_eq!(ips.len(), 2 * GATEWAYS, "pod IPs are unique");
    let rs = store.list("apps", "ReplicaSet", Some(NS)).unwrap().items;
    assert_eq!(rs.len(), GATEWAYS, "one ReplicaSet per Deployment");
    for d in store.list("apps", "Deployment", Some(NS)).unwrap().items {
        let owned = all
            .iter()
            .filter(|p| {
                text(p, "/metadata/name").starts_with(&format!("{}-", text(&d, "/metadata/name")))
            })
            .count();
        assert_eq!(owned, 2, "{}", text(&d, "/metadata/name"));
        assert_eq!(
            d.pointer("/status/readyReplicas"),
            Some(&serde_json::json!(2))
        );
    }
    assert!(!served_before.is_empty());
    for p in &all {
        let restarts = p
            .pointer("/status/containerStatuses/0/restartCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let name = text(p, "/metadata/name");
        if served_before.contains(name) {
            assert!(
                restarts >= 1,
                "{name} served before the kill: RESTARTS {restarts}"
            );
        }
    }
    let table = c.run(&["get", "pods", "-n", NS]).ok().stdout;
    let first = served_before.iter().next().unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with(first.as_str()))
        .unwrap();
    assert!(
        row.split_whitespace().nth(3).is_some_and(|r| r != "0"),
        "{row}"
    );
    if have_curl() {
        for ip in &ips {
            assert_eq!(health(ip), "200", "{ip}");
        }
    }
}

/// The seed's HTTP scenario served by the add-on's gateway Pods: a client sends what the
/// sidecar would (Host edition.cnn.com to the gateway Pod's port 80), the gateway routes it to
/// the stand-in, and the stand-in, which admits only the static egress prefix (the IP-based half
/// of the seed's defense in depth), sees the connection come from that prefix.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_pods_serve_the_seed_http_scenario_from_their_static_egress_ip() {
    let Some(seed) = common::seed() else { return };
    if !have_curl() {
        return;
    }
    let addrs = Addrs::claim();
    let addr = std::net::SocketAddr::from((addrs.pool.ip(100), 80));
    let upstream = match egress_testkit::HttpUpstream::start(addr).await {
        Ok(u) => u,
        Err(e) => {
            egress_testkit::skip(&format!(
                "cannot bind {addr} for the edition.cnn.com stand-in ({e}); run as root"
            ));
            return;
        }
    };
    let first_prefix = addrs.pool.subnet(0, 31).to_string();
    upstream.allow_only(&first_prefix).unwrap();
    let c = Cluster::new();
    prerequisites(&c);
    c.namespace("aks-istio-system");
    // The seed's shared MeshConfig, with access logging on (as the seed's logs section asks).
    let mesh = seed[0].replace(
        "    outboundTrafficPolicy:",
        "    accessLogFile: /dev/stdout\n    outboundTrafficPolicy:",
    );
    assert!(mesh.contains("accessLogFile"), "{mesh}");
    c.run_stdin(&["apply", "-f", "-"], &mesh).ok();
    let host = format!("edition.cnn.com={}", addrs.pool.ip(100));
    let flags = addrs.flags(&["--host", &host]);
    let _up = tokio::task::block_in_place(|| Up::start(&c, &flags));
    let store = Store::open(c.store()).unwrap();
    tokio::task::block_in_place(|| {
        c.run(&[
            "mesh",
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            "asm-egress-test",
            "--gateway-configuration-name",
            "istio-egress-sgc",
            "-o",
            "none",
        ])
        .ok();
        wait_for(
            &store,
            "2 running gateway pods",
            Duration::from_secs(60),
            |s| running(s).len() == 2,
        );
        for m in &seed[1..3] {
            c.run_stdin(&["apply", "-n", NS, "-f", "-"], m).ok();
        }
    });
    let gateway_pods = running(&store);
    for p in &gateway_pods {
        let ip = text(p, "/status/podIP").to_owned();
        let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        egress_testkit::eventually(Duration::from_secs(30), || {
            let ip = ip.clone();
            let last = last.clone();
            async move {
                let out = egress_testkit::Curl::new("http://edition.cnn.com/politics")
                    .connect_to("edition.cnn.com", 80, &ip, 80)
                    .status()
                    .await;
                let ok = matches!(&out, Ok(o) if o.status == 200);
                *last.lock().unwrap() = format!("{out:?}");
                ok
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: gateway {ip}: {}", last.lock().unwrap()));
    }
    let conns = upstream.connections();
    assert!(!conns.is_empty());
    for conn in &conns {
        let src = conn.peer_addr.ip().to_string();
        assert!(
            src == addrs.pool.ip(0).to_string() || src == addrs.pool.ip(1).to_string(),
            "source {src} is not the egress prefix"
        );
        assert!(!conn.refused);
    }
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.host.as_deref() == Some("edition.cnn.com"))
    );
    // Each gateway Pod serves Istio's metrics on <pod-ip>:15020/stats/prometheus.
    for p in &gateway_pods {
        let ip = text(p, "/status/podIP");
        let out = std::process::Command::new("curl")
            .args(["-s", &format!("http://{ip}:15020/stats/prometheus")])
            .output()
            .unwrap();
        let metrics = String::from_utf8_lossy(&out.stdout);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("istio_requests_total{")
                    && l.contains("reporter=\"source\"")
                    && l.contains("destination_service=\"edition.cnn.com\"")
                    && l.contains("response_code=\"200\"")),
            "{metrics}"
        );
    }
    // Each Pod's access log is its container log under the store's run directory.
    let pod = text(&gateway_pods[0], "/metadata/name");
    let log = c
        .store()
        .join(format!("run/pods/{NS}_{pod}/istio-proxy.log"));
    // The line is written once the response is done: wait for it.
    egress_testkit::eventually(Duration::from_secs(10), || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("outbound|80||edition.cnn.com"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()));

    // The StaticGatewayConfiguration deleted: the gateways have no static egress address, so
    // they stop serving and are not Ready, saying why (as AKS's CNI holds Pods without a
    // prefix), instead of leaving from the old prefix.
    let sgc = |name: &str| {
        format!(
            "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n"
        )
    };
    let names: Vec<String> = gateway_pods
        .iter()
        .map(|p| text(p, "/metadata/name").to_owned())
        .collect();
    let named = |s: &Store| -> Vec<Value> {
        pods(s)
            .into_iter()
            .filter(|p| names.iter().any(|n| n == text(p, "/metadata/name")))
            .collect()
    };
    let refused = |ip: String| async move {
        egress_testkit::Curl::new("http://edition.cnn.com/politics")
            .connect_to("edition.cnn.com", 80, &ip, 80)
            .status()
            .await
            .map(|o| o.status)
    };
    tokio::task::block_in_place(|| {
        c.run(&[
            "delete",
            "staticgatewayconfiguration",
            "istio-egress-sgc",
            "-n",
            NS,
        ])
        .ok();
        wait_for(
            &store,
            "both gateway pods not ready",
            Duration::from_secs(30),
            |s| {
                let ps = named(s);
                ps.len() == 2
                    && ps.iter().all(|p| {
                        p.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(false))
                    })
            },
        );
    });
    let table = c.run(&["get", "pods", "-n", NS]).ok().stdout;
    for n in &names {
        let row = table.lines().find(|l| l.starts_with(n.as_str())).unwrap();
        assert!(row.contains(" 0/1 "), "{table}");
    }
    let events = c.run(&["get", "events", "-n", NS]).ok().stdout;
    for n in &names {
        assert!(
            events.lines().any(|l| l.contains("Warning")
                && l.contains("Unhealthy")
                && l.contains(n.as_str())
                && l.contains(
                    "StaticGatewayConfiguration aks-istio-egress/istio-egress-sgc is gone"
                )),
            "{events}"
        );
    }
    for p in &gateway_pods {
        let ip = text(p, "/status/podIP").to_owned();
        let got = refused(ip.clone()).await;
        assert!(
            !matches!(got, Ok(200)),
            "a gateway without its prefix served: {ip} {got:?}"
        );
    }

    // Another configuration takes the freed prefix; the gateways' configuration comes back
    // with a new one, and they follow it: Ready again, leaving from the new prefix.
    let new_prefix = tokio::task::block_in_place(|| {
        c.run_stdin(&["apply", "-f", "-"], &sgc("holder")).ok();
        let prefix_of = |s: &Store, name: &str| -> Option<String> {
            s.list(
                "egressgateway.kubernetes.azure.com",
                "StaticGatewayConfiguration",
                Some(NS),
            )
            .unwrap()
            .items
            .iter()
            .find(|o| text(o, "/metadata/name") == name)
            .map(|o| text(o, "/status/egressIpPrefix").to_owned())
            .filter(|p| !p.is_empty())
        };
        wait_for(
            &store,
            "a prefix for holder",
            Duration::from_secs(30),
            |s| prefix_of(s, "holder").is_some(),
        );
        c.run_stdin(&["apply", "-f", "-"], &sgc("istio-egress-sgc"))
            .ok();
        wait_for(
            &store,
            "a prefix for istio-egress-sgc and two ready gateway pods",
            Duration::from_secs(60),
            |s| {
                prefix_of(s, "istio-egress-sgc").is_some()
                    && named(s).iter().all(|p| {
                        p.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(true))
                    })
            },
        );
        prefix_of(&store, "istio-egress-sgc").unwrap()
    });
    assert_ne!(new_prefix, first_prefix, "the prefix was not re-pointed");
    upstream.allow_only(&new_prefix).unwrap();
    let before = upstream.connections().len();
    for p in &gateway_pods {
        let ip = text(p, "/status/podIP").to_owned();
        egress_testkit::eventually(Duration::from_secs(30), || {
            let got = refused(ip.clone());
            async move { matches!(got.await, Ok(200)) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: gateway {ip} after the prefix moved"));
    }
    let net: ipnet::Ipv4Net = new_prefix.parse().unwrap();
    let after = upstream.connections();
    assert!(after.len() > before);
    for conn in &after[before..] {
        let std::net::IpAddr::V4(src) = conn.peer_addr.ip() else {
            panic!("{conn:?}")
        };
        assert!(net.contains(&src), "source {src} is not in {new_prefix}");
        assert!(!conn.refused);
    }
}
