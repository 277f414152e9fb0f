//! The EndpointSlice controller: each Service with a selector gets the addresses of the Pods it
//! selects, as `discovery.k8s.io/v1` EndpointSlices (what `kubectl describe service` prints
//! under `Endpoints:`, and what `kubectl get endpointslices` lists).
//!
//! As kube-controller-manager's controller does, for a Service with a non-empty
//! `spec.selector` (and not of type ExternalName) it keeps, in the Service's namespace:
//! - one slice per distinct set of resolved ports (usually one), named
//!   `<service>-<5 chars>`, the suffix derived from the Service (and, for slices after the
//!   first, their ports) so every pass names it the same; with no Pod to list, one empty
//!   slice with no ports (under the first slice's name, which a Service keeps for its life);
//! - labels `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
//!   endpointslice-controller.k8s.io` (and the Service's own labels), an owner reference to
//!   the Service, `addressType: IPv4`;
//! - an endpoint per selected Pod that has `status.podIP` and has not finished (phase
//!   Succeeded or Failed), sorted by Pod name: its address, `conditions` (`serving`: the Pod is
//!   Ready; `terminating`: it is being deleted; `ready`: serving and not terminating, or
//!   always with `publishNotReadyAddresses`), `nodeName` and a `targetRef` to the Pod;
//! - `ports` from the Service's ports, `targetPort` resolved against the Pod: a number, or a
//!   named container port of the same protocol (a Pod without that name does not get the
//!   port); no `targetPort` means the Service's `port`.
//!
//! Slices carrying the managed-by label that no Service wants any more (the Service is gone,
//! lost its selector, is being deleted) are deleted; slices without that label are the user's
//! and never touched. A Service deleted in the foreground (`--cascade=foreground`) goes once
//! no slice refers to it. Unlike the real controller, slices are not split at 100 endpoints.
//!
//! The Pods are read as this pass leaves them (the workload controllers' writes laid over
//! the stored ones), so a Pod's new IP or readiness reaches its Service in the same pass.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::names::stable_suffix;
use super::workloads::{delete_in_foreground, is_ready};
use super::{Plan, State, Write, at, is_terminating, name, namespace, object_path, owner_ref, uid};

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (the real controller's).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label a headless Service's slices carry.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// True for slices this controller manages.
fn is_managed(slice: &Value) -> bool {
    at(slice, "/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(MANAGED_BY)
}

pub(super) fn reconcile(state: &State, plan: &mut Plan) {
    let written = pods_written(&plan.writes);
    let mut pods_by_ns: HashMap<&str, Vec<&Value>> = HashMap::new();
    for p in pods_after(state, &written) {
        pods_by_ns.entry(namespace(p)).or_default().push(p);
    }
    for list in pods_by_ns.values_mut() {
        list.sort_by(|a, b| name(a).cmp(name(b)));
    }
    let existing: HashMap<(&str, &str), &Value> = state
        .endpoint_slices
        .iter()
        .map(|s| ((namespace(s), name(s)), s))
        .collect();

    let mut wanted: HashSet<(String, String)> = HashSet::new();
    for svc in &state.services {
        if is_terminating(svc) || !has_selector(svc) || is_external_name(svc) {
            continue;
        }
        let ns = namespace(svc);
        let selected = pods_by_ns.get(ns).map_or(&[][..], Vec::as_slice);
        for slice in desired_slices(svc, selected) {
            let slice_name = name(&slice).to_owned();
            let old = existing.get(&(ns, slice_name.as_str())).copied();
            wanted.insert((ns.to_owned(), slice_name));
            // A slice of that name the user made stays theirs (the name is taken: no slice).
            if old.is_some_and(|o| !is_managed(o)) {
                continue;
            }
            plan.put(old, slice);
        }
    }
    for slice in state.endpoint_slices.iter().filter(|s| is_managed(s)) {
        let key = (namespace(slice).to_owned(), name(slice).to_owned());
        if !wanted.contains(&key) && !is_terminating(slice) {
            plan.note(format!(
                "endpointslice {} deleted (no Service wants it any more)",
                object_path(slice)
            ));
            plan.delete(slice);
        }
    }
    foreground_deletions(state, plan);
}

/// The Pods this pass has written (by `namespace/name`): their new form, or None if deleted.
fn pods_written(writes: &[Write]) -> HashMap<String, Option<Value>> {
    writes
        .iter()
        .filter(|w| w.key().group.is_empty() && w.key().kind == "Pod")
        .map(|w| {
            let key = w.key();
            let path = format!(
                "{}/{}",
                key.namespace.as_deref().unwrap_or_default(),
                key.name
            );
            let after = match w {
                Write::Put { object, .. } => Some(object.clone()),
                Write::Delete { .. } => None,
            };
            (path, after)
        })
        .collect()
}

/// The stored Pods as the writes planned so far leave them. Pods created by this pass have no
/// IP yet, so they are not endpoints and are left out.
fn pods_after<'a>(state: &'a State, written: &'a HashMap<String, Option<Value>>) -> Vec<&'a Value> {
    state
        .pods
        .iter()
        .filter_map(|p| match written.get(&object_path(p)) {
            Some(after) => after.as_ref(),
            None => Some(p),
        })
        .collect()
}

fn has_selector(svc: &Value) -> bool {
    at(svc, "/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
}

fn is_external_name(svc: &Value) -> bool {
    at(svc, "/spec/type").and_then(Value::as_str) == Some("ExternalName")
}

fn selects(selector: &Map<String, Value>, pod: &Value) -> bool {
    let labels = at(pod, "/metadata/labels").and_then(Value::as_object);
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The slices `svc` should have, given the Pods of its namespace (sorted by name).
fn desired_slices(svc: &Value, pods: &[&Value]) -> Vec<Value> {
    let Some(selector) = at(svc, "/spec/selector").and_then(Value::as_object) else {
        return Vec::new();
    };
    let publish_not_ready =
        at(svc, "/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
    let service_ports = at(svc, "/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    // Endpoints grouped by their resolved ports, in the order their first Pod comes.
    let mut groups: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    for pod in pods.iter().filter(|p| selects(selector, p)) {
        let Some(endpoint) = endpoint(pod, publish_not_ready) else {
            continue;
        };
        let ports: Vec<Value> = service_ports
            .iter()
            .filter_map(|sp| endpoint_port(sp, pod))
            .collect();
        match groups.iter_mut().find(|(p, _)| *p == ports) {
            Some((_, endpoints)) => endpoints.push(endpoint),
            None => groups.push((ports, vec![endpoint])),
        }
    }
    if groups.is_empty() {
        groups.push((Vec::new(), Vec::new()));
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (ports, endpoints))| slice(svc, i == 0, ports, endpoints))
        .collect()
}

/// One slice of `svc`: the first is named after the Service alone, the others after the
/// Service and their ports.
fn slice(svc: &Value, first: bool, ports: Vec<Value>, endpoints: Vec<Value>) -> Value {
    let ports_text = if first {
        String::new()
    } else {
        serde_json::to_string(&ports).unwrap_or_default()
    };
    let suffix = stable_suffix(&[namespace(svc), name(svc), uid(svc), &ports_text]);
    let mut labels: BTreeMap<String, Value> = at(svc, "/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name(svc)));
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    if at(svc, "/spec/clusterIP").and_then(Value::as_str) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{}-{suffix}", name(svc)),
            "namespace": namespace(svc),
            "labels": labels,
            "ownerReferences": [owner_ref(svc)],
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// A Pod's endpoint, if it has an address and has not finished.
fn endpoint(pod: &Value, publish_not_ready: bool) -> Option<Value> {
    let ip = at(pod, "/status/podIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())?;
    if matches!(
        at(pod, "/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return None;
    }
    let serving = is_ready(pod);
    let terminating = is_terminating(pod);
    let mut e = json!({
        "addresses": [ip],
        "conditions": {
            "ready": publish_not_ready || (serving && !terminating),
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": namespace(pod),
            "name": name(pod),
            "uid": uid(pod),
        },
    });
    if let Some(node) = at(pod, "/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        e["nodeName"] = json!(node);
    }
    Some(e)
}

/// A Service port as it reaches `pod`; None when its named target port is not one of the
/// Pod's container ports.
fn endpoint_port(service_port: &Value, pod: &Value) -> Option<Value> {
    let protocol = service_port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    let port = match service_port.get("targetPort") {
        Some(Value::String(port_name)) => named_port(pod, port_name, protocol)?,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n > 0) => n.as_i64()?,
        _ => service_port.get("port").and_then(Value::as_i64)?,
    };
    let mut p = json!({
        "name": service_port.get("name").and_then(Value::as_str).unwrap_or_default(),
        "port": port,
        "protocol": protocol,
    });
    if let Some(app) = service_port.get("appProtocol").and_then(Value::as_str) {
        p["appProtocol"] = json!(app);
    }
    Some(p)
}

/// The number of the container port named `port_name` with `protocol`, in any container.
fn named_port(pod: &Value, port_name: &str, protocol: &str) -> Option<i64> {
    at(pod, "/spec/containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(port_name)
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
        })?
        .get("containerPort")?
        .as_i64()
}

/// Services deleted in the foreground go once no slice refers to them (the slices go first:
/// a terminating Service wants none).
fn foreground_deletions(state: &State, plan: &mut Plan) {
    delete_in_foreground(state.endpoint_slices.iter(), state.services.iter(), plan);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const NS: &str = "web-ns";

    fn service(name: &str, selector: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "resourceVersion": "1"},
            "spec": {"selector": selector, "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "admin", "port": 9000, "protocol": "TCP", "targetPort": "admin"},
                {"name": "plain", "port": 7000},
            ]},
        })
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                         "resourceVersion": "1", "labels": {"app": "web"}},
            "spec": {"nodeName": "egress-local", "containers": [
                {"name": "web", "ports": [{"name": "admin", "containerPort": 9901}]},
            ]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }},
            ]},
        })
    }

    fn run(state: &State) -> Plan {
        let mut plan = Plan::default();
        reconcile(state, &mut plan);
        plan
    }

    /// The store's side of a plan: writes applied to the state's slices and Services.
    fn apply(state: &mut State, plan: &Plan) {
        for w in &plan.writes {
            match w {
                Write::Put { key, object, .. } => {
                    let list = match key.kind.as_str() {
                        "EndpointSlice" => &mut state.endpoint_slices,
                        "Service" => &mut state.services,
                        other => panic!("unexpected write of a {other}"),
                    };
                    let mut object = object.clone();
                    object["metadata"]["uid"] = json!(format!("uid-{}", key.name));
                    object["metadata"]["resourceVersion"] = json!("7");
                    list.retain(|o| name(o) != key.name);
                    list.push(object);
                }
                Write::Delete { key } => {
                    state.endpoint_slices.retain(|o| name(o) != key.name);
                    state.services.retain(|o| name(o) != key.name);
                }
            }
        }
    }

    /// Runs and applies passes until one plans nothing (at most 3).
    fn converge(state: &mut State) {
        for _ in 0..3 {
            let plan = run(state);
            if plan.writes.is_empty() {
                return;
            }
            apply(state, &plan);
        }
        panic!("no fixed point: {:#?}", run(state).writes);
    }

    fn slices_of<'a>(state: &'a State, svc: &str) -> Vec<&'a Value> {
        state
            .endpoint_slices
            .iter()
            .filter(|s| at(s, "/metadata/labels/kubernetes.io~1service-name") == Some(&json!(svc)))
            .collect()
    }

    /// What `kubectl describe service` prints for a port: ready addresses as `ip:port`.
    fn described(state: &State, svc: &str, port_name: &str) -> String {
        let mut out = Vec::new();
        for s in slices_of(state, svc) {
            let ports = s["ports"].as_array().unwrap();
            for p in ports.iter().filter(|p| p["name"] == port_name) {
                for e in s["endpoints"].as_array().unwrap() {
                    if e["conditions"]["ready"] == json!(true) {
                        out.push(format!(
                            "{}:{}",
                            e["addresses"][0].as_str().unwrap(),
                            p["port"]
                        ));
                    }
                }
            }
        }
        out.join(",")
    }

    #[test]
    fn a_ready_pod_is_an_endpoint_of_its_service() {
        let mut state = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![
                pod("web-b", "127.1.0.3", true),
                pod("web-a", "127.1.0.2", true),
            ],
            ..State::default()
        };
        converge(&mut state);
        let slices = slices_of(&state, "web");
        assert_eq!(slices.len(), 1, "{slices:#?}");
        let s = slices[0];
        let slice_name = s["metadata"]["name"].as_str().unwrap();
        let suffix = slice_name.strip_prefix("web-").unwrap();
        assert_eq!(suffix.len(), 5, "{slice_name}");
        assert_eq!(s["metadata"]["namespace"], NS);
        assert_eq!(s["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(
            s["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(s["addressType"], "IPv4");
        // Numbers as they are, named ports looked up in the Pod, no targetPort: the port.
        assert_eq!(
            s["ports"],
            json!([
                {"name": "http", "port": 8080, "protocol": "TCP"},
                {"name": "admin", "port": 9901, "protocol": "TCP"},
                {"name": "plain", "port": 7000, "protocol": "TCP"},
            ])
        );
        // Sorted by Pod name.
        assert_eq!(
            s["endpoints"][0],
            json!({
                "addresses": ["127.1.0.2"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "egress-local",
                "targetRef": {"kind": "Pod", "namespace": NS, "name": "web-a", "uid": "uid-web-a"},
            })
        );
        assert_eq!(
            described(&state, "web", "http"),
            "127.1.0.2:8080,127.1.0.3:8080"
        );
        assert_eq!(
            described(&state, "web", "admin"),
            "127.1.0.2:9901,127.1.0.3:9901"
        );
        // The decoded form is a Kubernetes EndpointSlice with no unknown field.
        let info = egress_model::kinds::for_kind("discovery.k8s.io", "EndpointSlice").unwrap();
        let (_, unknown) = egress_model::decode::to_resource(info, s).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn a_pass_over_its_own_output_plans_nothing() {
        let mut state = State {
            services: vec![
                service("web", json!({"app": "web"})),
                service("none", json!({"app": "nothing-matches"})),
            ],
            pods: vec![
                pod("web-a", "127.1.0.2", true),
                pod("web-b", "127.1.0.3", false),
            ],
            ..State::default()
        };
        let first = run(&state);
        assert_eq!(first.writes.len(), 2, "{:#?}", first.writes);
        apply(&mut state, &first);
        let second = run(&state);
        assert!(second.writes.is_empty(), "{:#?}", second.writes);
        // A Service that selects nothing has one slice, with no ports and no endpoints.
        let none = slices_of(&state, "none");
        assert_eq!(none.len(), 1);
        assert_eq!(none[0]["ports"], json!([]));
        assert_eq!(none[0]["endpoints"], json!([]));
        // A Pod it selects arrives: the same slice is updated in place.
        let placeholder = none[0]["metadata"]["name"].clone();
        let mut late = pod("late", "127.1.0.9", true);
        late["metadata"]["labels"] = json!({"app": "nothing-matches"});
        state.pods.push(late);
        let third = run(&state);
        assert_eq!(third.writes.len(), 1, "{:#?}", third.writes);
        assert!(matches!(
            &third.writes[0],
            Write::Put {
                expected_rv: Some(_),
                ..
            }
        ));
        assert_eq!(third.writes[0].key().name, placeholder.as_str().unwrap());
    }

    #[test]
    fn a_pod_not_ready_is_listed_not_ready_and_a_removed_pod_goes() {
        let mut state = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![
                pod("web-a", "127.1.0.2", true),
                pod("web-b", "127.1.0.3", false),
            ],
            ..State::default()
        };
        converge(&mut state);
        let s = slices_of(&state, "web")[0].clone();
        assert_eq!(
            s["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(described(&state, "web", "http"), "127.1.0.2:8080");
        // Being deleted: still listed, terminating, no longer ready.
        state.pods[0]["metadata"]["deletionTimestamp"] = json!("2026-12-06T00:00:00Z");
        converge(&mut state);
        let s = slices_of(&state, "web")[0].clone();
        assert_eq!(
            s["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        // Gone: so is its endpoint (the slice keeps its name, updated in place).
        state.pods.remove(0);
        converge(&mut state);
        let after = slices_of(&state, "web");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0]["metadata"]["name"], s["metadata"]["name"]);
        let endpoints = after[0]["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["targetRef"]["name"], "web-b");
        // Pods without an IP, finished, or not selected are not endpoints.
        let mut no_ip = pod("web-c", "", true);
        no_ip["status"].as_object_mut().unwrap().remove("podIP");
        let mut done = pod("web-d", "127.1.0.5", false);
        done["status"]["phase"] = json!("Succeeded");
        let mut other = pod("other", "127.1.0.6", true);
        other["metadata"]["labels"] = json!({"app": "other"});
        state.pods.extend([no_ip, done, other]);
        let plan = run(&state);
        assert!(plan.writes.is_empty(), "{:#?}", plan.writes);
    }

    #[test]
    fn the_pods_as_this_pass_leaves_them_are_read() {
        let state = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![
                pod("web-a", "127.1.0.2", false),
                pod("web-b", "127.1.0.3", true),
            ],
            ..State::default()
        };
        let mut plan = Plan::default();
        // The kubelet's write in this pass makes web-a ready; web-b is deleted.
        plan.put(Some(&state.pods[0]), pod("web-a", "127.1.0.2", true));
        plan.delete(&state.pods[1]);
        reconcile(&state, &mut plan);
        let Some(Write::Put { object, .. }) = plan.writes.last() else {
            panic!("{:#?}", plan.writes);
        };
        let endpoints = object["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["targetRef"]["name"], "web-a");
        assert_eq!(endpoints[0]["conditions"]["ready"], true);
    }

    #[test]
    fn a_deleted_service_or_selector_takes_its_slices_and_user_slices_stay() {
        let user = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "manual-1", "namespace": NS, "resourceVersion": "3",
                         "labels": {SERVICE_NAME_LABEL: "manual"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.9.9.9"]}],
        });
        let mut manual = service("manual", json!({}));
        manual["spec"].as_object_mut().unwrap().remove("selector");
        let mut state = State {
            services: vec![
                service("web", json!({"app": "web"})),
                service("db", json!({"app": "web"})),
                manual,
            ],
            pods: vec![pod("web-a", "127.1.0.2", true)],
            endpoint_slices: vec![user.clone()],
            ..State::default()
        };
        converge(&mut state);
        assert_eq!(slices_of(&state, "web").len(), 1);
        assert_eq!(slices_of(&state, "db").len(), 1);
        // The Service without a selector keeps the user's slice, untouched.
        assert_eq!(slices_of(&state, "manual"), [&user]);

        // Deleted: its slice goes.
        state.services.retain(|s| name(s) != "web");
        let plan = run(&state);
        assert_eq!(plan.writes.len(), 1, "{:#?}", plan.writes);
        assert!(matches!(&plan.writes[0], Write::Delete { key } if key.kind == "EndpointSlice"));
        apply(&mut state, &plan);
        assert!(slices_of(&state, "web").is_empty());
        // Its selector removed: the same.
        state.services[0]["spec"]["selector"] = json!({});
        converge(&mut state);
        assert!(slices_of(&state, "db").is_empty());
        assert_eq!(state.endpoint_slices, std::slice::from_ref(&user));

        // A user slice squatting on the name the controller wants is left alone.
        let mut again = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![pod("web-a", "127.1.0.2", true)],
            ..State::default()
        };
        converge(&mut again);
        let mut squatter = again.endpoint_slices[0].clone();
        squatter["metadata"]["labels"] = json!({"owner": "me"});
        squatter["endpoints"] = json!([]);
        again.endpoint_slices = vec![squatter.clone()];
        let plan = run(&again);
        assert!(plan.writes.is_empty(), "{:#?}", plan.writes);
    }

    #[test]
    fn a_service_deleted_in_the_foreground_goes_after_its_slices() {
        let mut state = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![pod("web-a", "127.1.0.2", true)],
            ..State::default()
        };
        converge(&mut state);
        state.services[0]["metadata"]["deletionTimestamp"] = json!("2026-12-06T00:00:00Z");
        state.services[0]["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        let plan = run(&state);
        assert_eq!(plan.writes.len(), 1, "{:#?}", plan.writes);
        assert_eq!(plan.writes[0].key().kind, "EndpointSlice");
        apply(&mut state, &plan);
        let plan = run(&state);
        assert_eq!(plan.writes.len(), 1, "{:#?}", plan.writes);
        assert_eq!(plan.writes[0].key().kind, "Service");
        apply(&mut state, &plan);
        assert!(state.services.is_empty() && state.endpoint_slices.is_empty());
    }

    #[test]
    fn pods_with_different_ports_get_a_slice_each() {
        let mut no_admin = pod("web-b", "127.1.0.3", true);
        no_admin["spec"]["containers"][0]["ports"] = json!([]);
        let mut state = State {
            services: vec![service("web", json!({"app": "web"}))],
            pods: vec![pod("web-a", "127.1.0.2", true), no_admin],
            ..State::default()
        };
        converge(&mut state);
        let slices = slices_of(&state, "web");
        assert_eq!(slices.len(), 2, "{slices:#?}");
        assert_ne!(slices[0]["metadata"]["name"], slices[1]["metadata"]["name"]);
        assert_eq!(
            described(&state, "web", "http"),
            "127.1.0.2:8080,127.1.0.3:8080"
        );
        assert_eq!(described(&state, "web", "admin"), "127.1.0.2:9901");
    }
}
