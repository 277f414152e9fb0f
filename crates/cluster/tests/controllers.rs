//! The controllers over a real store: passes until nothing is left to do, and what the store
//! then holds (prefixes, ReplicaSets, Pods and their status, events, garbage collection).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::objects::{EgressGatewayObjects, egress_gateway_objects};
use egress_cluster::controllers::{Fact, Facts, Instance, Settings, object_path};
use egress_cluster::up::{pass, read_state};
use egress_store::{ObjectKey, Store};
use egress_testkit::addrs::Block;
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    apply(
        &store,
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})],
    );
    (dir, store)
}

/// A test's Pod range and egress pool: claimed loopback blocks, held as long as the plan.
struct Plan {
    pods: Block,
    pool: Block,
}

impl Plan {
    fn claim() -> Plan {
        Plan {
            pods: Block::claim().unwrap(),
            pool: Block::claim().unwrap(),
        }
    }

    /// The default settings with the plan's Pod range and egress pool.
    fn settings(&self) -> Settings {
        Settings {
            pod_range: self.pods.net(),
            egress_pool: self.pool.net().to_string(),
            ..Settings::default()
        }
    }
}

fn apply(store: &Store, objects: Vec<Value>) {
    store
        .transact(|tx| -> Result<(), egress_store::StoreError> {
            for o in objects {
                let key = ObjectKey::from_object(&o).unwrap();
                tx.apply(&key, o)?;
            }
            Ok(())
        })
        .unwrap();
}

fn delete(store: &Store, key: ObjectKey) {
    store.transact(|tx| tx.delete(&key).map(|_| ())).unwrap();
}

fn sgc(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
        "kind": "StaticGatewayConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

fn gateway(name: &str, sgc: &str, revisions: &[&str]) -> Vec<Value> {
    let revisions: Vec<String> = revisions.iter().map(|r| (*r).to_owned()).collect();
    egress_gateway_objects(&EgressGatewayObjects {
        name,
        namespace: NS,
        gateway_configuration_name: sgc,
        revisions: &revisions,
        cluster_ip: "10.0.0.9",
        image: "egress:test",
    })
}

/// Runs passes until one writes nothing; panics if that takes more than `max` passes.
fn converge(store: &Store, facts: &Facts, settings: &Settings) -> Vec<String> {
    let mut notes = Vec::new();
    for _ in 0..12 {
        let (wrote, _) = pass(store, facts, settings, &mut |n| notes.push(n.to_owned())).unwrap();
        if !wrote {
            return notes;
        }
    }
    panic!("no fixed point after 12 passes; notes: {notes:#?}");
}

fn list(store: &Store, group: &str, kind: &str) -> Vec<Value> {
    store.list(group, kind, Some(NS)).unwrap().items
}

fn all_ready(store: &Store) -> Facts {
    list(store, "", "Pod")
        .iter()
        .map(|p| (object_path(p), Instance::Ready.into()))
        .collect()
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn prefixes_are_assigned_released_and_reused() {
    let (_d, store) = store();
    let plan = Plan::claim();
    let settings = plan.settings();
    // The pool's first two /31s.
    let first = plan.pool.subnet(0, 31).to_string();
    let second = plan.pool.subnet(2, 31).to_string();
    apply(
        &store,
        vec![
            sgc(
                "a",
                json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
            ),
            sgc(
                "b",
                json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
            ),
        ],
    );
    let notes = converge(&store, &Facts::new(), &settings);
    let sgcs = list(
        &store,
        "egressgateway.kubernetes.azure.com",
        "StaticGatewayConfiguration",
    );
    let prefixes: Vec<&str> = sgcs
        .iter()
        .map(|s| text(s, "/status/egressIpPrefix"))
        .collect();
    assert_eq!(prefixes, [first.as_str(), second.as_str()], "{notes:?}");
    // Deleting a frees its prefix; c gets it.
    delete(
        &store,
        ObjectKey::new(
            "egressgateway.kubernetes.azure.com",
            "StaticGatewayConfiguration",
            Some(NS),
            "a",
        ),
    );
    apply(
        &store,
        vec![sgc(
            "c",
            json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
        )],
    );
    converge(&store, &Facts::new(), &settings);
    let sgcs = list(
        &store,
        "egressgateway.kubernetes.azure.com",
        "StaticGatewayConfiguration",
    );
    let got: Vec<(&str, &str)> = sgcs
        .iter()
        .map(|s| (text(s, "/metadata/name"), text(s, "/status/egressIpPrefix")))
        .collect();
    assert_eq!(got, [("b", second.as_str()), ("c", first.as_str())]);
}

#[test]
fn invalid_configurations_get_kube_egress_gateway_messages_and_no_prefix() {
    let (_d, store) = store();
    let cases = [
        (
            "none",
            json!({"provisionPublicIps": true}),
            "Either GatewayNodepoolName or GatewayVmssProfile must be provided",
        ),
        (
            "both",
            json!({"gatewayNodepoolName": "gw", "gatewayVmssProfile": {"vmssResourceGroup": "rg", "vmssName": "v", "publicIpPrefixSize": 31}, "provisionPublicIps": true}),
            "Only one of GatewayNodepoolName and GatewayVmssProfile should be provided",
        ),
        (
            "norg",
            json!({"gatewayVmssProfile": {"vmssName": "v", "publicIpPrefixSize": 31}, "provisionPublicIps": true}),
            "Gateway vmss resource group is empty",
        ),
        (
            "noname",
            json!({"gatewayVmssProfile": {"vmssResourceGroup": "rg", "publicIpPrefixSize": 31}, "provisionPublicIps": true}),
            "Gateway vmss name is empty",
        ),
        (
            "pipid",
            json!({"gatewayNodepoolName": "gw", "provisionPublicIps": false, "publicIpPrefixId": "/x"}),
            "PublicIpPrefixId should be empty when ProvisionPublicIps is false",
        ),
    ];
    apply(
        &store,
        cases
            .iter()
            .map(|(n, spec, _)| sgc(n, spec.clone()))
            .collect(),
    );
    let notes = converge(&store, &Facts::new(), &Settings::default());
    let events = list(&store, "", "Event");
    for (name, _, message) in &cases {
        let e = events
            .iter()
            .find(|e| text(e, "/involvedObject/name") == *name)
            .unwrap_or_else(|| panic!("no event for {name}: {notes:?}"));
        assert_eq!(text(e, "/type"), "Warning");
        assert_eq!(text(e, "/reason"), "InvalidSpec");
        assert_eq!(
            text(e, "/message"),
            format!(
                "StaticGatewayConfiguration.egressgateway.kubernetes.azure.com \"{name}\" is invalid: {message}"
            )
        );
    }
    for s in list(
        &store,
        "egressgateway.kubernetes.azure.com",
        "StaticGatewayConfiguration",
    ) {
        assert!(s.pointer("/status/egressIpPrefix").is_none(), "{s}");
    }
    // Recorded once: another pass adds nothing.
    let again = converge(&store, &Facts::new(), &Settings::default());
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(list(&store, "", "Event").len(), cases.len());
}

#[test]
fn gateway_pods_wait_for_the_prefix_then_run() {
    let (_d, store) = store();
    let plan = Plan::claim();
    let settings = plan.settings();
    // The configuration has no prefix yet: an invalid spec keeps it without one.
    apply(
        &store,
        vec![sgc("sgc", json!({"provisionPublicIps": true}))],
    );
    apply(&store, gateway("egw", "sgc", &["asm-1-24"]));
    converge(&store, &Facts::new(), &settings);
    let rs = list(&store, "apps", "ReplicaSet");
    assert_eq!(rs.len(), 1);
    let rs_name = text(&rs[0], "/metadata/name").to_owned();
    assert!(rs_name.starts_with("egw-asm-1-24-"), "{rs_name}");
    let pods = list(&store, "", "Pod");
    assert_eq!(pods.len(), 2, "HPA minimum 2");
    for p in &pods {
        assert!(text(p, "/metadata/name").starts_with(&format!("{rs_name}-")));
        assert_eq!(text(p, "/status/phase"), "Pending");
        assert_eq!(
            text(p, "/status/containerStatuses/0/state/waiting/message"),
            "the egress IP prefix is not ready yet."
        );
        assert!(p.pointer("/status/podIP").is_none());
        assert_eq!(
            text(p, "/metadata/labels/pod-template-hash"),
            &rs_name["egw-asm-1-24-".len()..]
        );
    }
    assert!(
        list(&store, "", "Event")
            .iter()
            .any(|e| text(e, "/reason") == "FailedCreatePodSandBox"
                && text(e, "/message").ends_with("the egress IP prefix is not ready yet."))
    );
    let d = &list(&store, "apps", "Deployment")[0];
    assert_eq!(d.pointer("/status/readyReplicas"), None);
    assert_eq!(d.pointer("/status/unavailableReplicas"), Some(&json!(2)));

    // The prefix arrives (the spec is fixed): IPs, then Running once the runtime says ready.
    apply(
        &store,
        vec![sgc(
            "sgc",
            json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
        )],
    );
    converge(&store, &Facts::new(), &settings);
    let pods = list(&store, "", "Pod");
    let mut ips: Vec<&str> = pods.iter().map(|p| text(p, "/status/podIP")).collect();
    ips.sort_unstable();
    // The range's first hosts (`.0`, `.1` and `.255` are never handed out).
    let want = [plan.pods.ip(2).to_string(), plan.pods.ip(3).to_string()];
    assert_eq!(ips, want.each_ref().map(String::as_str));
    assert!(pods.iter().all(|p| text(p, "/status/phase") == "Pending"));
    // The gateway Service's EndpointSlice lists both Pods, not ready yet.
    let slice_endpoints = |store: &Store| -> Vec<(String, bool)> {
        let slices = list(store, "discovery.k8s.io", "EndpointSlice");
        assert_eq!(slices.len(), 1, "{slices:#?}");
        assert_eq!(
            text(&slices[0], "/metadata/labels/kubernetes.io~1service-name"),
            "egw"
        );
        slices[0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let ready = e["conditions"]["ready"].as_bool().unwrap();
                (e["addresses"][0].as_str().unwrap().to_owned(), ready)
            })
            .collect()
    };
    let mut endpoints = slice_endpoints(&store);
    endpoints.sort();
    assert_eq!(
        endpoints,
        [(want[0].clone(), false), (want[1].clone(), false)]
    );
    converge(&store, &all_ready(&store), &settings);
    let mut endpoints = slice_endpoints(&store);
    endpoints.sort();
    assert_eq!(
        endpoints,
        [(want[0].clone(), true), (want[1].clone(), true)]
    );
    let slice = &list(&store, "discovery.k8s.io", "EndpointSlice")[0];
    let ports: Vec<i64> = slice["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [15021, 80, 443]);
    let info = egress_model::kinds::for_kind("discovery.k8s.io", "EndpointSlice").unwrap();
    let (_, unknown) = egress_model::decode::to_resource(info, slice).unwrap();
    assert!(unknown.is_empty(), "{unknown:?}");
    let pods = list(&store, "", "Pod");
    assert!(pods.iter().all(|p| text(p, "/status/phase") == "Running"
        && p.pointer("/status/containerStatuses/0/ready") == Some(&json!(true))));
    let d = &list(&store, "apps", "Deployment")[0];
    assert_eq!(d.pointer("/status/readyReplicas"), Some(&json!(2)));
    assert_eq!(d.pointer("/status/updatedReplicas"), Some(&json!(2)));
    assert_eq!(
        d.pointer("/status/observedGeneration"),
        d.pointer("/metadata/generation")
    );
    let hpa = &list(&store, "autoscaling", "HorizontalPodAutoscaler")[0];
    assert_eq!(hpa.pointer("/status/desiredReplicas"), Some(&json!(2)));

    // A failing instance shows CrashLoopBackOff with its error.
    let mut facts = all_ready(&store);
    let first = object_path(&pods[0]);
    facts.insert(
        first.clone(),
        Fact {
            instance: Instance::Failed {
                message: "bind: address in use".into(),
            },
            restarts: 1,
        },
    );
    converge(&store, &facts, &settings);
    let p = store
        .list("", "Pod", Some(NS))
        .unwrap()
        .items
        .into_iter()
        .find(|p| object_path(p) == first)
        .unwrap();
    assert_eq!(
        text(&p, "/status/containerStatuses/0/state/waiting/reason"),
        "CrashLoopBackOff"
    );
    assert_eq!(
        p.pointer("/status/containerStatuses/0/restartCount"),
        Some(&json!(1))
    );

    // Started again and serving: Running, and RESTARTS keeps counting (it is not reset once
    // the instance runs); a pass whose runtime does not know the Pod yet (a new `egress up`)
    // never lowers it.
    let pod_now = |store: &Store| {
        store
            .list("", "Pod", Some(NS))
            .unwrap()
            .items
            .into_iter()
            .find(|p| object_path(p) == first)
            .unwrap()
    };
    facts.insert(
        first.clone(),
        Fact {
            instance: Instance::Ready,
            restarts: 2,
        },
    );
    converge(&store, &facts, &settings);
    let p = pod_now(&store);
    assert_eq!(text(&p, "/status/phase"), "Running");
    assert_eq!(
        p.pointer("/status/containerStatuses/0/restartCount"),
        Some(&json!(2))
    );
    assert!(
        p.pointer("/status/containerStatuses/0/state/running")
            .is_some()
    );
    facts.remove(&first);
    converge(&store, &facts, &settings);
    assert_eq!(
        pod_now(&store).pointer("/status/containerStatuses/0/restartCount"),
        Some(&json!(2))
    );
}

#[test]
fn canary_revisions_template_changes_and_garbage_collection() {
    let (_d, store) = store();
    let settings = Settings::default();
    apply(
        &store,
        vec![sgc(
            "sgc",
            json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
        )],
    );
    apply(&store, gateway("egw", "sgc", &["asm-1-24", "asm-1-25"]));
    converge(&store, &Facts::new(), &settings);
    converge(&store, &all_ready(&store), &settings);
    let pods = list(&store, "", "Pod");
    assert_eq!(pods.len(), 4);
    let revs: std::collections::BTreeSet<&str> = pods
        .iter()
        .map(|p| text(p, "/metadata/labels/istio.io~1rev"))
        .collect();
    assert_eq!(
        revs.into_iter().collect::<Vec<_>>(),
        ["asm-1-24", "asm-1-25"]
    );

    // A template change: a new ReplicaSet with new Pods; the old one is scaled to zero.
    let mut objs = gateway("egw", "sgc", &["asm-1-25"]);
    for o in &mut objs {
        if o["kind"] == "Deployment" {
            o["spec"]["template"]["metadata"]["annotations"]["touched"] = json!("1");
        }
    }
    apply(&store, objs);
    delete(
        &store,
        ObjectKey::new("apps", "Deployment", Some(NS), "egw-asm-1-24"),
    );
    converge(&store, &all_ready(&store), &settings);
    converge(&store, &all_ready(&store), &settings);
    let rs = list(&store, "apps", "ReplicaSet");
    let mut sizes: Vec<(String, i64)> = rs
        .iter()
        .map(|r| {
            (
                text(r, "/metadata/name").to_owned(),
                r["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(
        sizes.iter().all(|(n, _)| n.starts_with("egw-asm-1-25-")),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().map(|(_, n)| n).sum::<i64>(), 2);
    let pods = list(&store, "", "Pod");
    assert_eq!(pods.len(), 2, "asm-1-24's pods were collected");
    assert!(
        pods.iter()
            .all(|p| text(p, "/metadata/annotations/touched") == "1")
    );

    // Deleting the Deployment collects its ReplicaSets and Pods.
    delete(
        &store,
        ObjectKey::new("apps", "Deployment", Some(NS), "egw-asm-1-25"),
    );
    converge(&store, &all_ready(&store), &settings);
    assert!(list(&store, "apps", "ReplicaSet").is_empty());
    assert!(list(&store, "", "Pod").is_empty());
}

#[test]
fn plain_deployments_get_running_pods_and_state_reads_everything() {
    let (_d, store) = store();
    apply(
        &store,
        vec![json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "curl", "namespace": NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "curl"}},
                "template": {
                    "metadata": {"labels": {"app": "curl"}},
                    "spec": {"serviceAccountName": "curl", "containers": [{"name": "curl", "image": "curlimages/curl"}]},
                },
            },
        })],
    );
    converge(&store, &Facts::new(), &Settings::default());
    let pods = list(&store, "", "Pod");
    assert_eq!(pods.len(), 1);
    assert_eq!(text(&pods[0], "/status/phase"), "Running");
    assert_eq!(text(&pods[0], "/spec/nodeName"), "egress-local");
    let state = read_state(&store).unwrap();
    assert_eq!(state.deployments.len(), 1);
    assert_eq!(state.replica_sets.len(), 1);
    assert_eq!(state.pods.len(), 1);
    // No Service: no EndpointSlice.
    assert!(state.endpoint_slices.is_empty());
    // Every stored Pod decodes as a Kubernetes Pod with no unknown field.
    for p in &state.pods {
        let info = egress_model::kinds::for_kind("", "Pod").unwrap();
        let (_, unknown) = egress_model::decode::to_resource(info, p).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}

fn curl_deployment(ns: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "curl", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "curl"}},
            "template": {
                "metadata": {"labels": {"app": "curl"}},
                "spec": {"serviceAccountName": "curl", "containers": [{"name": "curl", "image": "curlimages/curl"}]},
            },
        },
    })
}

#[test]
fn pods_in_revision_labelled_namespaces_get_a_sidecar() {
    let (_d, store) = store();
    let ns = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    apply(
        &store,
        vec![
            json!({
                "apiVersion": "containerservice.azure.com/v1", "kind": "ManagedCluster",
                "metadata": {"name": "egress-local"},
                "spec": {"serviceMeshProfile": {"mode": "Istio", "istio": {"revisions": ["asm-1-24"]}}},
            }),
            ns(NS, json!({"istio.io/rev": "asm-1-24"})),
            ns("legacy", json!({"istio-injection": "enabled"})),
            ns("other-rev", json!({"istio.io/rev": "asm-1-99"})),
        ],
    );
    apply(
        &store,
        vec![
            curl_deployment(NS),
            curl_deployment("legacy"),
            curl_deployment("other-rev"),
        ],
    );
    let settings = Settings::default();
    converge(&store, &Facts::new(), &settings);
    let pod = |ns: &str| store.list("", "Pod", Some(ns)).unwrap().items.remove(0);
    let injected = pod(NS);
    let names: Vec<&str> = injected["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| text(c, "/name"))
        .collect();
    assert_eq!(names, ["curl", "istio-proxy"]);
    assert!(egress_cluster::controllers::has_sidecar(&injected));
    assert_eq!(
        text(&injected, "/metadata/annotations/istio.io~1rev"),
        "asm-1-24"
    );
    assert_eq!(
        text(&injected, "/metadata/labels/security.istio.io~1tlsMode"),
        "istio"
    );
    // The sidecar is not running yet: 1/2, Pending.
    assert_eq!(text(&injected, "/status/phase"), "Pending");
    assert_eq!(
        injected.pointer("/status/containerStatuses/0/ready"),
        Some(&json!(true))
    );
    assert_eq!(
        injected.pointer("/status/containerStatuses/1/ready"),
        Some(&json!(false))
    );
    for plain in ["legacy", "other-rev"] {
        let p = pod(plain);
        assert_eq!(
            p["spec"]["containers"].as_array().unwrap().len(),
            1,
            "{plain}"
        );
        assert_eq!(text(&p, "/status/phase"), "Running");
    }
    // The runtime reports the sidecar ready: 2/2 Running.
    let mut facts = Facts::new();
    facts.insert(object_path(&injected), Instance::Ready.into());
    converge(&store, &facts, &settings);
    let injected = pod(NS);
    assert_eq!(text(&injected, "/status/phase"), "Running");
    assert!(
        injected["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ready"] == json!(true))
    );
    let row = egress_printers::table::row("Pod", &injected, false, std::time::SystemTime::now());
    assert_eq!(
        row[1..3],
        ["2/2".to_owned(), "Running".to_owned()],
        "{row:?}"
    );
}

/// Deletes every object of gateway `name` (what `disable-egress-gateway` does) and writes them
/// again (what `enable-egress-gateway` does): the Deployment comes back with a new uid while its
/// old ReplicaSet and Pods, of the same names, may still be in the store.
fn disable_enable(store: &Store, name: &str, sgc_name: &str, before_enable: usize) {
    let objects = gateway(name, sgc_name, &["asm-1-25"]);
    for o in &objects {
        delete(store, ObjectKey::from_object(o).unwrap());
    }
    // `before_enable` passes of `egress up` run between the two commands, each with the
    // runtime's view of the Pods as it was.
    for _ in 0..before_enable {
        let facts = all_ready(store);
        pass(store, &facts, &Settings::default(), &mut |_| {}).unwrap();
    }
    apply(store, objects);
}

/// Passes (with every Pod's instance serving) until one writes nothing; the number of passes.
fn passes_to_converge(store: &Store, max: usize) -> Option<usize> {
    for n in 1..=max {
        let facts = all_ready(store);
        let (wrote, _) = pass(store, &facts, &Settings::default(), &mut |_| {}).unwrap();
        if !wrote {
            return Some(n);
        }
    }
    None
}

fn deployment_ready(store: &Store, name: &str) -> (i64, i64) {
    let d = store
        .get(&ObjectKey::new("apps", "Deployment", Some(NS), name))
        .unwrap()
        .unwrap();
    (
        d.pointer("/status/readyReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap(),
    )
}

#[test]
fn disable_enable_race_converges_in_every_interleaving_100_times() {
    let (_d, store) = store();
    apply(
        &store,
        vec![sgc(
            "sgc",
            json!({"gatewayNodepoolName": "gw", "provisionPublicIps": true}),
        )],
    );
    apply(&store, gateway("gw", "sgc", &["asm-1-25"]));
    assert!(passes_to_converge(&store, 12).is_some());
    let d = "gw-asm-1-25";
    assert_eq!(deployment_ready(&store, d), (2, 2));
    let mut worst = 0;
    for i in 0..100 {
        // 0, 1 or 2 passes between disable and enable; and the pass may stop part-way
        // through the disable's garbage (the batch size).
        disable_enable(&store, "gw", "sgc", i % 3);
        let n = passes_to_converge(&store, 12)
            .unwrap_or_else(|| panic!("iteration {i}: no fixed point after 12 passes"));
        worst = worst.max(n);
        assert_eq!(deployment_ready(&store, d), (2, 2), "iteration {i}");
        let pods = list(&store, "", "Pod");
        assert_eq!(pods.len(), 2, "iteration {i}: {pods:#?}");
        let rs = list(&store, "apps", "ReplicaSet");
        assert_eq!(rs.len(), 1, "iteration {i}");
        // The Service came back with a new uid: one slice, of the new Service, with both Pods.
        let slices = list(&store, "discovery.k8s.io", "EndpointSlice");
        assert_eq!(slices.len(), 1, "iteration {i}: {slices:#?}");
        let svc = store
            .get(&ObjectKey::new("", "Service", Some(NS), "gw"))
            .unwrap()
            .unwrap();
        assert_eq!(
            slices[0]["metadata"]["ownerReferences"][0]["uid"], svc["metadata"]["uid"],
            "iteration {i}"
        );
        assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 2);
    }
    assert!(worst <= 6, "worst {worst} passes");
}

#[test]
fn an_invalid_configuration_deleted_and_created_again_is_reported_again() {
    let (_d, store) = store();
    let bad = sgc("bad", json!({"provisionPublicIps": true}));
    let key = ObjectKey::from_object(&bad).unwrap();
    apply(&store, vec![bad.clone()]);
    converge(&store, &Facts::new(), &Settings::default());
    let first = list(&store, "", "Event");
    assert_eq!(first.len(), 1);
    delete(&store, key.clone());
    apply(&store, vec![bad]);
    // The event of the same name about the old object must not wedge the passes.
    converge(&store, &Facts::new(), &Settings::default());
    let new_uid = store.get(&key).unwrap().unwrap()["metadata"]["uid"].clone();
    let events = list(&store, "", "Event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["involvedObject"]["uid"], new_uid);
    assert_ne!(
        first[0]["involvedObject"]["uid"], new_uid,
        "the configuration was created again with a new uid"
    );
}
