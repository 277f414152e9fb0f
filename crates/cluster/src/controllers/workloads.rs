//! Deployments → ReplicaSets → Pods, Pod status, and garbage collection of orphans.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use egress_addon::sgc::{PREFIX_NOT_READY, SGC_POD_ANNOTATION, sgc_key};
use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use super::Recur;
use super::inject::{inject, injection_revision};
use super::names::{pod_name_suffix, template_hash};
use super::{
    Facts, Instance, Plan, Settings, State, at, condition, controller_uid, is_terminating, name,
    namespace, normal_event, object_path, owner_ref, uid, warning_event,
};

/// The label carrying the pod-template hash.
const HASH_LABEL: &str = "pod-template-hash";

/// True for Pods whose first container runs a gateway (`egress gateway run`).
pub fn is_gateway_pod(pod: &Value) -> bool {
    at(pod, "/spec/containers/0/args")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.first().and_then(Value::as_str) == Some("gateway")
                && a.get(1).and_then(Value::as_str) == Some("run")
        })
}

fn labels(obj: &Value, pointer: &str) -> Map<String, Value> {
    at(obj, pointer)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    at(obj, pointer).and_then(Value::as_i64)
}

/// Lookups built once per pass, so a pass is linear in the number of objects.
struct Index<'a> {
    state: &'a State,
    /// Live Pods by the uid of their controlling ReplicaSet.
    pods_by_rs: HashMap<&'a str, Vec<&'a Value>>,
    /// ReplicaSets by the uid of their controlling Deployment.
    rs_by_deployment: HashMap<&'a str, Vec<&'a Value>>,
    /// HPAs by (namespace, target Deployment).
    hpa: HashMap<(&'a str, &'a str), &'a Value>,
    /// Every Pod name, by namespace.
    pod_names: HashSet<(&'a str, &'a str)>,
    /// Every ReplicaSet by (namespace, name), whoever owns it.
    rs_by_name: HashMap<(&'a str, &'a str), &'a Value>,
    /// ReplicaSets no Deployment controls, by namespace (candidates for adoption).
    orphans: HashMap<&'a str, Vec<&'a Value>>,
}

impl<'a> Index<'a> {
    fn new(state: &'a State) -> Index<'a> {
        let mut pods_by_rs: HashMap<&str, Vec<&Value>> = HashMap::new();
        for p in state.pods.iter().filter(|p| !is_terminating(p)) {
            if let Some(owner) = controller_uid(p, "ReplicaSet") {
                pods_by_rs.entry(owner).or_default().push(p);
            }
        }
        let mut rs_by_deployment: HashMap<&str, Vec<&Value>> = HashMap::new();
        for r in &state.replica_sets {
            if let Some(owner) = controller_uid(r, "Deployment") {
                rs_by_deployment.entry(owner).or_default().push(r);
            }
        }
        let hpa = state
            .hpas
            .iter()
            .filter(|h| {
                at(h, "/spec/scaleTargetRef/kind").and_then(Value::as_str) == Some("Deployment")
            })
            .filter_map(|h| {
                let target = at(h, "/spec/scaleTargetRef/name").and_then(Value::as_str)?;
                Some(((namespace(h), target), h))
            })
            .collect();
        let pod_names = state.pods.iter().map(|p| (namespace(p), name(p))).collect();
        let rs_by_name = state
            .replica_sets
            .iter()
            .map(|r| ((namespace(r), name(r)), r))
            .collect();
        let mut orphans: HashMap<&str, Vec<&Value>> = HashMap::new();
        for r in state
            .replica_sets
            .iter()
            .filter(|r| controller_uid(r, "Deployment").is_none() && !is_terminating(r))
        {
            orphans.entry(namespace(r)).or_default().push(r);
        }
        Index {
            state,
            pods_by_rs,
            rs_by_deployment,
            hpa,
            pod_names,
            rs_by_name,
            orphans,
        }
    }

    fn pods_of(&self, rs: &Value) -> Vec<&'a Value> {
        self.pods_by_rs.get(uid(rs)).cloned().unwrap_or_default()
    }
}

/// `spec.replicas` (default 1), clamped by an HPA that targets the Deployment.
fn desired_replicas(index: &Index<'_>, d: &Value) -> i64 {
    let replicas = int(d, "/spec/replicas").unwrap_or(1).max(0);
    match index.hpa.get(&(namespace(d), name(d))) {
        Some(h) => {
            let min = int(h, "/spec/minReplicas").unwrap_or(1);
            let max = int(h, "/spec/maxReplicas").unwrap_or(min).max(min);
            replicas.clamp(min, max)
        }
        None => replicas,
    }
}

pub(super) fn is_ready(pod: &Value) -> bool {
    at(pod, "/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

pub(super) fn reconcile(
    state: &State,
    facts: &Facts,
    settings: &Settings,
    prefixes: &BTreeMap<String, Ipv4Net>,
    plan: &mut Plan,
) {
    let deployments: Vec<&Value> = state
        .deployments
        .iter()
        .filter(|d| !is_terminating(d))
        .collect();
    let deployment_uids: BTreeSet<&str> = deployments.iter().map(|d| uid(d)).collect();
    let foreground_owners: BTreeSet<&str> = state
        .deployments
        .iter()
        .filter(|d| is_terminating(d) && held_for_foreground(d))
        .map(uid)
        .collect();
    let index = Index::new(state);

    // ReplicaSets: desired replicas by uid (after this pass), and which are garbage.
    let mut rs_desired: BTreeMap<String, i64> = BTreeMap::new();
    for d in &deployments {
        deployment(&index, settings, d, &mut rs_desired, plan);
    }
    let mut live_rs: Vec<&Value> = Vec::new();
    for rs in &state.replica_sets {
        match controller_uid(rs, "Deployment") {
            // The owner is being deleted in the foreground: so is this (its Pods first).
            Some(owner) if foreground_owners.contains(owner) => {
                if !is_terminating(rs) {
                    let mut marked = rs.clone();
                    marked["metadata"]["deletionTimestamp"] = json!(settings.now);
                    marked["metadata"]["finalizers"] = json!([FOREGROUND]);
                    plan.put(Some(rs), marked);
                }
            }
            Some(owner) if !deployment_uids.contains(owner) => {
                plan.note(format!(
                    "replicaset {} deleted (owner gone)",
                    object_path(rs)
                ));
                plan.delete(rs);
            }
            _ if is_terminating(rs) => {}
            _ => live_rs.push(rs),
        }
    }
    let rs_uids: BTreeSet<&str> = live_rs.iter().map(|r| uid(r)).collect();
    foreground_deletions(state, plan);

    // Pods: garbage, scale, then status.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    for pod in &state.pods {
        if let Some(owner) = controller_uid(pod, "ReplicaSet")
            && !rs_uids.contains(owner)
        {
            plan.note(format!("pod {} deleted (owner gone)", object_path(pod)));
            plan.delete(pod);
            deleted.insert(object_path(pod));
        }
    }
    for rs in &live_rs {
        let want = rs_desired
            .get(uid(rs))
            .copied()
            .unwrap_or_else(|| int(rs, "/spec/replicas").unwrap_or(1));
        scale(&index, settings, rs, want, &mut deleted, plan);
    }
    kubelet(state, facts, settings, prefixes, &deleted, plan);
}

/// The finalizer of a foreground deletion (`kubectl delete --cascade=foreground`).
const FOREGROUND: &str = "foregroundDeletion";

fn held_for_foreground(o: &Value) -> bool {
    at(o, "/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == FOREGROUND))
}

/// Deployments and ReplicaSets deleted in the foreground go once nothing they own is left
/// (their dependents go first: a terminating owner does not count as alive, so the passes
/// collect what it owns).
fn foreground_deletions(state: &State, plan: &mut Plan) {
    delete_in_foreground(
        state.replica_sets.iter().chain(&state.pods),
        state.deployments.iter().chain(&state.replica_sets),
        plan,
    );
}

/// Deletes each of `owners` that is being deleted in the foreground and that none of
/// `dependents` names as an owner any more.
pub(super) fn delete_in_foreground<'a>(
    dependents: impl Iterator<Item = &'a Value>,
    owners: impl Iterator<Item = &'a Value>,
    plan: &mut Plan,
) {
    let owned_by: BTreeSet<&str> = dependents
        .flat_map(|o| {
            at(o, "/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
        })
        .collect();
    for o in owners {
        if is_terminating(o) && held_for_foreground(o) && !owned_by.contains(uid(o)) {
            plan.note(format!(
                "{} {} deleted (foreground: its dependents are gone)",
                o.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                object_path(o)
            ));
            plan.delete(o);
        }
    }
}

/// One Deployment: its current ReplicaSet, old ones scaled to zero, its status and its HPA's.
fn deployment(
    index: &Index<'_>,
    settings: &Settings,
    d: &Value,
    rs_desired: &mut BTreeMap<String, i64>,
    plan: &mut Plan,
) {
    let ns = namespace(d);
    let want = desired_replicas(index, d);
    let mut template = at(d, "/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = template_hash(&template);
    let rs_name = format!("{}-{hash}", name(d));
    let mut pod_labels = labels(&template, "/metadata/labels");
    pod_labels.insert(HASH_LABEL.into(), json!(hash));
    template["metadata"]["labels"] = Value::Object(pod_labels.clone());
    let mut selector = labels(d, "/spec/selector/matchLabels");
    selector.insert(HASH_LABEL.into(), json!(hash));

    let owned: Vec<&Value> = index
        .rs_by_deployment
        .get(uid(d))
        .map(|v| v.iter().copied().filter(|r| namespace(r) == ns).collect())
        .unwrap_or_default();
    let current = owned.iter().find(|r| name(r) == rs_name).copied();
    // The name is taken by a ReplicaSet this Deployment does not own: one left by an earlier
    // Deployment of the same name (deleted and created again before the garbage collector
    // ran, as `disable-egress-gateway` then `enable-egress-gateway` do), which this pass
    // collects, or an orphan, which this Deployment adopts. Creating it would fail the whole
    // transaction on every pass, and the cluster would never converge.
    let squatter = index
        .rs_by_name
        .get(&(ns, rs_name.as_str()))
        .copied()
        .filter(|_| current.is_none());
    // Otherwise the squatter is collected (its owner is gone) or stays another owner's;
    // either way the next pass sees the name free or owned.
    if let Some(other) = squatter
        && controller_uid(other, "Deployment").is_none()
        && !is_terminating(other)
    {
        let mut adopted = other.clone();
        adopted["metadata"]["ownerReferences"] = json!([owner_ref(d)]);
        plan.note(format!("replicaset {ns}/{rs_name} adopted"));
        plan.put(Some(other), adopted);
    }
    // Orphaned ReplicaSets the selector matches (left by `kubectl delete --cascade=orphan`)
    // are adopted, as the Deployment controller does; the next pass scales the old ones down.
    let wanted = labels(d, "/spec/selector/matchLabels");
    if !wanted.is_empty() {
        for orphan in index
            .orphans
            .get(ns)
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| name(r) != rs_name)
        {
            let have = labels(orphan, "/metadata/labels");
            if wanted.iter().all(|(k, v)| have.get(k) == Some(v)) {
                let mut adopted = orphan.clone();
                adopted["metadata"]["ownerReferences"] = json!([owner_ref(d)]);
                plan.note(format!("replicaset {} adopted", object_path(orphan)));
                plan.put(Some(orphan), adopted);
            }
        }
    }
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name,
            "namespace": ns,
            "labels": pod_labels,
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": want.to_string(),
                "deployment.kubernetes.io/max-replicas": want.to_string(),
            },
            "ownerReferences": [owner_ref(d)],
        },
        "spec": {
            "replicas": want,
            "selector": {"matchLabels": selector},
            "template": template,
        },
    });
    // Revisions, as `kubectl rollout history` reads them: each new template gets the next
    // number, and a template that comes back (a rollback) takes the next number again.
    let revision_of = |r: &Value| -> i64 {
        at(
            r,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
    };
    let newest_other = owned
        .iter()
        .filter(|r| name(r) != rs_name)
        .map(|r| revision_of(r))
        .max()
        .unwrap_or(0);
    let revision = match current.map(revision_of) {
        Some(r) if r > newest_other => r,
        _ => newest_other + 1,
    };
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
        json!(revision.to_string());
    let scaled = |plan: &mut Plan, rs_name: &str, from: i64, to: i64| {
        let way = if to > from { "up" } else { "down" };
        normal_event(
            index.state,
            settings,
            plan,
            d,
            (
                "deployment-controller",
                "ScalingReplicaSet",
                &format!("Scaled {way} replica set {rs_name} from {from} to {to}"),
            ),
            Recur::Count,
        );
    };
    if let Some(cur) = current {
        rs["status"] = rs_status(index, cur);
        rs_desired.insert(uid(cur).to_owned(), want);
        let from = int(cur, "/spec/replicas").unwrap_or(1);
        plan.put(current, rs);
        if from != want {
            scaled(plan, &rs_name, from, want);
        }
    } else if squatter.is_none() {
        plan.note(format!(
            "replicaset {ns}/{rs_name} created ({want} replicas)"
        ));
        plan.put(None, rs);
        scaled(plan, &rs_name, 0, want);
    }
    // Old ReplicaSets beyond `revisionHistoryLimit` (default 10) that have no Pods left go,
    // oldest revision first.
    let limit = usize::try_from(int(d, "/spec/revisionHistoryLimit").unwrap_or(10)).unwrap_or(0);
    let mut spent: Vec<&Value> = owned
        .iter()
        .copied()
        .filter(|r| name(r) != rs_name && index.pods_of(r).is_empty())
        .filter(|r| int(r, "/spec/replicas") == Some(0) && !is_terminating(r))
        .collect();
    spent.sort_by_key(|r| revision_of(r));
    let excess = spent.len().saturating_sub(limit);
    let pruned: BTreeSet<&str> = spent.iter().take(excess).map(|r| uid(r)).collect();
    for r in spent.iter().take(excess) {
        plan.note(format!(
            "replicaset {} deleted (revision history limit)",
            object_path(r)
        ));
        plan.delete(r);
    }
    for old in owned
        .iter()
        .filter(|r| name(r) != rs_name && !pruned.contains(uid(r)))
    {
        rs_desired.insert(uid(old).to_owned(), 0);
        let from = int(old, "/spec/replicas").unwrap_or(1);
        let status = rs_status(index, old);
        if from != 0 || old.get("status") != Some(&status) {
            let mut down = (*old).clone();
            down["spec"]["replicas"] = json!(0);
            down["status"] = status;
            plan.put(Some(old), down);
            if from != 0 {
                scaled(plan, name(old), from, 0);
            }
        }
    }

    // Status from the Pods as they are now (the next pass sees this pass's changes).
    let pods_of = |r: &Value| -> Vec<&Value> { index.pods_of(r) };
    let all: Vec<&Value> = owned.iter().flat_map(|r| pods_of(r)).collect();
    let updated: Vec<&Value> = current.map(pods_of).unwrap_or_default();
    let ready = all.iter().filter(|p| is_ready(p)).count();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let available = count(ready);
    let mut status = json!({
        "observedGeneration": int(d, "/metadata/generation").unwrap_or(1),
        "replicas": count(all.len()),
        "updatedReplicas": count(updated.len()),
    });
    if ready > 0 {
        status["readyReplicas"] = json!(available);
        status["availableReplicas"] = json!(available);
    }
    if want > available {
        status["unavailableReplicas"] = json!(want - available);
    }
    let complete = count(updated.len()) == want && available >= want && all.len() == updated.len();
    status["conditions"] = json!([
        condition(
            Some(d),
            "Available",
            available >= want,
            if available >= want {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            &settings.now
        ),
        condition(
            Some(d),
            "Progressing",
            true,
            if complete {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            },
            &settings.now
        ),
    ]);
    let revision_annotation = "/metadata/annotations/deployment.kubernetes.io~1revision";
    let revision = revision.to_string();
    let revised = at(d, revision_annotation).and_then(Value::as_str) == Some(revision.as_str());
    if d.get("status") != Some(&status) || !revised {
        let mut updated_d = d.clone();
        updated_d["status"] = status;
        if !updated_d["metadata"]["annotations"].is_object() {
            updated_d["metadata"]["annotations"] = json!({});
        }
        updated_d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(revision);
        plan.put(Some(d), updated_d);
    }

    // The HPA's status, when one targets this Deployment.
    if let Some(&h) = index.hpa.get(&(ns, name(d))) {
        let status = json!({"currentReplicas": count(all.len()), "desiredReplicas": want});
        if h.get("status") != Some(&status) {
            let mut hh = h.clone();
            hh["status"] = status;
            plan.put(Some(h), hh);
        }
    }
}

fn rs_status(index: &Index<'_>, rs: &Value) -> Value {
    let pods = index.pods_of(rs);
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    let mut s = json!({
        "replicas": n(pods.len()),
        "fullyLabeledReplicas": n(pods.len()),
        "observedGeneration": int(rs, "/metadata/generation").unwrap_or(1),
    });
    if ready > 0 {
        s["readyReplicas"] = json!(n(ready));
        s["availableReplicas"] = json!(n(ready));
    }
    s
}

/// Creates or deletes Pods of `rs` until it has `want`.
fn scale(
    index: &Index<'_>,
    settings: &Settings,
    rs: &Value,
    want: i64,
    deleted: &mut BTreeSet<String>,
    plan: &mut Plan,
) {
    let mut pods = index.pods_of(rs);
    let have = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    if have > want {
        // Not-ready Pods go first, then the youngest.
        pods.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    at(p, "/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
            )
        });
        for p in pods.iter().take(usize::try_from(have - want).unwrap_or(0)) {
            plan.note(format!("pod {} deleted", object_path(p)));
            plan.delete(p);
            rs_event(
                index,
                settings,
                plan,
                rs,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", name(p)),
            );
            deleted.insert(object_path(p));
        }
        return;
    }
    for _ in have..want {
        let mut pod_name = format!("{}-{}", name(rs), pod_name_suffix());
        while index
            .pod_names
            .contains(&(namespace(rs), pod_name.as_str()))
        {
            pod_name = format!("{}-{}", name(rs), pod_name_suffix());
        }
        let template = at(rs, "/spec/template").cloned().unwrap_or(Value::Null);
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        if spec.get("serviceAccountName").is_none() {
            spec["serviceAccountName"] = json!("default");
        }
        spec["nodeName"] = json!(settings.node_name);
        let mut metadata = json!({
            "name": pod_name,
            "generateName": format!("{}-", name(rs)),
            "namespace": namespace(rs),
            "labels": labels(&template, "/metadata/labels"),
            "ownerReferences": [owner_ref(rs)],
        });
        if let Some(a) = at(&template, "/metadata/annotations") {
            metadata["annotations"] = a.clone();
        }
        if let Some(rev) = injection_revision(index.state, namespace(rs), &template) {
            inject(&mut metadata, &mut spec, rev, &settings.image);
        }
        plan.note(format!("pod {}/{pod_name} created", namespace(rs)));
        plan.put(
            None,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}),
        );
        rs_event(
            index,
            settings,
            plan,
            rs,
            "SuccessfulCreate",
            &format!("Created pod: {pod_name}"),
        );
    }
}

/// An event of the ReplicaSet controller about `rs`; each occurrence counts.
fn rs_event(
    index: &Index<'_>,
    settings: &Settings,
    plan: &mut Plan,
    rs: &Value,
    reason: &str,
    message: &str,
) {
    normal_event(
        index.state,
        settings,
        plan,
        rs,
        ("replicaset-controller", reason, message),
        Recur::Count,
    );
}

/// Pod status: scheduling, IPs (once the static egress prefix is ready), Running when the
/// gateway instance serves.
fn kubelet(
    state: &State,
    facts: &Facts,
    settings: &Settings,
    prefixes: &BTreeMap<String, Ipv4Net>,
    deleted: &BTreeSet<String>,
    plan: &mut Plan,
) {
    let mut used: BTreeSet<Ipv4Addr> = state
        .pods
        .iter()
        .filter_map(|p| at(p, "/status/podIP").and_then(Value::as_str))
        .filter_map(|ip| ip.parse().ok())
        .collect();
    // Pods created in this pass get their status in the next one (they need a uid first);
    // the rest are stored Pods.
    for pod in state.pods.iter().filter(|p| !is_terminating(p)) {
        let path = object_path(pod);
        if deleted.contains(&path) {
            continue;
        }
        let mut ip: Option<Ipv4Addr> = at(pod, "/status/podIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let mut waiting: Option<(&str, String)> = None;
        if ip.is_none() {
            let sgc = at(
                pod,
                &format!(
                    "/metadata/annotations/{}",
                    SGC_POD_ANNOTATION.replace('/', "~1")
                ),
            )
            .and_then(Value::as_str);
            let prefix_ready =
                sgc.is_none_or(|s| prefixes.contains_key(&sgc_key(namespace(pod), s)));
            if prefix_ready {
                ip = next_ip(settings.pod_range, &used);
                if let Some(a) = ip {
                    used.insert(a);
                } else {
                    waiting = Some((
                        "ContainerCreating",
                        format!("pod range {} is exhausted", settings.pod_range),
                    ));
                }
            } else {
                waiting = Some(("ContainerCreating", PREFIX_NOT_READY.to_owned()));
                warning_event(
                    state,
                    settings,
                    plan,
                    pod,
                    "FailedCreatePodSandBox",
                    &format!(
                        "Failed to create pod sandbox: plugin type=\"kube-egress-cni\" failed (add): rpc error: code = FailedPrecondition desc = {PREFIX_NOT_READY}"
                    ),
                );
            }
        }
        let fact = facts.get(&path);
        let instance = fact.map(|f| f.instance.clone());
        match (&instance, ip) {
            (Some(Instance::NotReady { message }), Some(_)) => warning_event(
                state,
                settings,
                plan,
                pod,
                "Unhealthy",
                &format!(
                    "Readiness probe failed: HTTP probe failed with statuscode: 503 ({message})"
                ),
            ),
            (Some(Instance::Failed { message, .. }), Some(_)) => {
                warning_event(state, settings, plan, pod, "Failed", message);
            }
            _ => {}
        }
        let restarts = fact.map_or(0, |f| f.restarts);
        let status = pod_status(pod, settings, ip, waiting, instance.as_ref(), restarts);
        if pod.get("status") != Some(&status) {
            let phase = status["phase"].as_str().unwrap_or_default().to_owned();
            let old_phase = at(pod, "/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if phase != old_phase || ip.is_some() != at(pod, "/status/podIP").is_some() {
                plan.note(format!(
                    "pod {path} {phase}{}",
                    ip.map(|a| format!(" {a}")).unwrap_or_default()
                ));
            }
            let mut p = pod.clone();
            p["status"] = status.clone();
            plan.put(Some(pod), p);
            // After the write that records the step, so a pass cut short by the batch
            // limit never records an event twice.
            pod_events(state, settings, pod, &status, plan);
        }
    }
}

/// The scheduler's and the kubelet's Normal events as a Pod's status moves on: Scheduled
/// when the kubelet first sees it, then Pulled, Created and Started for each container that
/// starts (again after a restart: a restart counts).
fn pod_events(state: &State, settings: &Settings, pod: &Value, status: &Value, plan: &mut Plan) {
    if pod.get("status").is_none() {
        normal_event(
            state,
            settings,
            plan,
            pod,
            (
                "default-scheduler",
                "Scheduled",
                &format!(
                    "Successfully assigned {} to {}",
                    object_path(pod),
                    settings.node_name
                ),
            ),
            Recur::Once,
        );
    }
    let running = |s: Option<&Value>, cname: &str| -> Option<i64> {
        s.and_then(|s| s.get("containerStatuses"))
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(cname))
            .filter(|c| at(c, "/state/running").is_some())
            .map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
    };
    for c in at(status, "/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some(restarts) = running(Some(status), cname) else {
            continue;
        };
        if running(pod.get("status"), cname) == Some(restarts) {
            continue;
        }
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        for (reason, message) in [
            (
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            ("Created", format!("Created container: {cname}")),
            ("Started", format!("Started container {cname}")),
        ] {
            normal_event(
                state,
                settings,
                plan,
                pod,
                ("kubelet", reason, &message),
                Recur::Count,
            );
        }
    }
}

fn next_ip(range: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    range.hosts().find(|a| {
        let last = a.octets()[3];
        last != 0 && last != 1 && last != 255 && !used.contains(a)
    })
}

/// True for a container the local cluster runs itself (a gateway or a sidecar).
fn is_managed_container(c: &Value) -> bool {
    let args = c.get("args").and_then(Value::as_array);
    let arg = |i: usize| args.and_then(|a| a.get(i)).and_then(Value::as_str);
    matches!(arg(0), Some("gateway" | "sidecar")) && arg(1) == Some("run")
}

fn pod_status(
    pod: &Value,
    settings: &Settings,
    ip: Option<Ipv4Addr>,
    waiting: Option<(&str, String)>,
    instance: Option<&Instance>,
    restarts: u32,
) -> Value {
    let old = pod.get("status");
    let now = settings.now.as_str();
    let host = settings.host_ip.to_string();
    let old_container = |name: &str| -> Option<&Value> {
        old.and_then(|s| s.get("containerStatuses"))
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            })
    };
    // A count never goes down: the runtime continues the stored one, and a pass that runs
    // before the runtime knows the Pod keeps it.
    let old_restarts = |name: &str| -> u32 {
        old_container(name)
            .and_then(|c| c.get("restartCount"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    // A restarted container starts anew; a running one keeps its start time.
    let old_started = |name: &str, restarts: u32| -> String {
        old_container(name)
            .filter(|_| old_restarts(name) == restarts)
            .and_then(|c| at(c, "/state/running/startedAt"))
            .and_then(Value::as_str)
            .unwrap_or(now)
            .to_owned()
    };
    let containers: Vec<&Value> = at(pod, "/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().collect())
        .unwrap_or_default();
    let mut statuses = Vec::new();
    let (mut all_ready, mut any_running, mut creating) = (true, false, false);
    for c in &containers {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        // (ready, waiting reason/message)
        let (ready, wait) = match (&waiting, ip) {
            (Some((reason, message)), _) => (false, Some(((*reason).to_owned(), message.clone()))),
            (None, None) => (false, Some(("ContainerCreating".to_owned(), String::new()))),
            (None, Some(_)) if !is_managed_container(c) => (true, None),
            (None, Some(_)) => match instance {
                Some(Instance::Ready) => (true, None),
                // Running, its readiness probe failing (the reason is in an Unhealthy event).
                Some(Instance::NotReady { .. }) => (false, None),
                Some(Instance::Failed { message }) => (
                    false,
                    Some(("CrashLoopBackOff".to_owned(), message.clone())),
                ),
                Some(Instance::Starting) | None => {
                    (false, Some(("ContainerCreating".to_owned(), String::new())))
                }
            },
        };
        let restarts = if is_managed_container(c) {
            restarts.max(old_restarts(cname))
        } else {
            old_restarts(cname)
        };
        all_ready &= ready;
        any_running |= wait.is_none();
        creating |= wait
            .as_ref()
            .is_some_and(|(reason, _)| reason == "ContainerCreating");
        let state = match &wait {
            None => json!({"running": {"startedAt": old_started(cname, restarts)}}),
            Some((reason, message)) if message.is_empty() => json!({"waiting": {"reason": reason}}),
            Some((reason, message)) => json!({"waiting": {"reason": reason, "message": message}}),
        };
        statuses.push(json!({
            "name": cname,
            "image": image,
            "imageID": "",
            "ready": ready,
            "started": wait.is_none(),
            "restartCount": restarts,
            "state": state,
        }));
    }
    let ready = all_ready && !containers.is_empty();
    let phase = if !creating && (any_running || !statuses.is_empty()) && ip.is_some() {
        "Running"
    } else {
        "Pending"
    };
    let cond = |kind: &str, ok: bool| condition(Some(pod), kind, ok, "", now);
    let start_time = old
        .and_then(|s| s.get("startTime"))
        .and_then(Value::as_str)
        .unwrap_or(now)
        .to_owned();
    let mut status = json!({
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", ip.is_some()),
            cond("Initialized", true),
            cond("Ready", ready),
            cond("ContainersReady", ready),
            cond("PodScheduled", true),
        ],
        "hostIP": host,
        "hostIPs": [{"ip": host}],
        "containerStatuses": statuses,
        "startTime": start_time,
    });
    if let Some(a) = ip {
        status["podIP"] = json!(a.to_string());
        status["podIPs"] = json!([{"ip": a.to_string()}]);
    }
    status
}
