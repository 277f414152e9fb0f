//! The local cluster's controllers as one pure function: the stored objects and what the
//! runtime reports in, the writes that move the store toward the desired state out.
//!
//! They do what a cluster's controllers do for the objects the add-on and users create:
//! - the StaticGatewayConfiguration controller validates each configuration with
//!   kube-egress-gateway's messages and assigns `status.egressIpPrefix` from the local pool
//!   (a prefix is released when its configuration is deleted);
//! - the Deployment controller keeps one ReplicaSet per pod template (named after the
//!   template's hash), scales it to `spec.replicas` clamped by a HorizontalPodAutoscaler, and
//!   reports `status` like kube-controller-manager;
//! - the ReplicaSet controller creates and deletes Pods (`<replicaset>-<5 chars>`);
//! - the "kubelet" gives Pods an IP from the pod range once their static egress prefix is
//!   ready, and reports them Running when their gateway instance is serving;
//! - the EndpointSlice controller lists, for each Service with a selector, the addresses of
//!   the Pods it selects (ready or not) in EndpointSlices, and deletes the slices it manages
//!   once their Service is gone;
//! - the garbage collector deletes ReplicaSets and Pods whose owner is gone.
//!
//! A pass is idempotent: applied to its own output it plans nothing, so a crash between passes
//! (each pass is one store transaction) converges on restart without loss or duplication.

mod endpoints;
mod inject;
mod names;
mod sgc;
mod workloads;

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use egress_store::ObjectKey;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

pub use endpoints::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
pub use inject::{SIDECAR_CONTAINER, SIDECAR_PROXY_PORT, has_sidecar};
pub(crate) use names::short_hash;
pub use names::{pod_name_suffix, template_hash};
pub use sgc::SGC_GROUP;
pub use workloads::is_gateway_pod;

/// What the controllers read: every object of the kinds they manage.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// `egressgateway.kubernetes.azure.com` StaticGatewayConfigurations.
    pub sgcs: Vec<Value>,
    /// `apps` Deployments.
    pub deployments: Vec<Value>,
    /// `apps` ReplicaSets.
    pub replica_sets: Vec<Value>,
    /// `autoscaling` HorizontalPodAutoscalers.
    pub hpas: Vec<Value>,
    /// Pods.
    pub pods: Vec<Value>,
    /// Events (so a warning is recorded once, not on every pass).
    pub events: Vec<Value>,
    /// Services (their ports tell a gateway which target ports to listen on; their selectors
    /// choose the Pods of their EndpointSlices).
    pub services: Vec<Value>,
    /// `discovery.k8s.io` EndpointSlices.
    pub endpoint_slices: Vec<Value>,
    /// Namespaces (their `istio.io/rev` label decides sidecar injection).
    pub namespaces: Vec<Value>,
    /// The add-on's ManagedCluster objects (their installed revisions can inject).
    pub managed_clusters: Vec<Value>,
}

impl State {
    /// Revisions installed by an enabled mesh profile (`serviceMeshProfile.istio.revisions`).
    pub fn installed_revisions(&self) -> Vec<&str> {
        self.managed_clusters
            .iter()
            .filter(|mc| {
                at(mc, "/spec/serviceMeshProfile/mode").and_then(Value::as_str) == Some("Istio")
            })
            .filter_map(|mc| at(mc, "/spec/serviceMeshProfile/istio/revisions")?.as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }
}

/// What the runtime reports about a Pod's gateway instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instance {
    /// Being started.
    Starting,
    /// Serving; health answers 200.
    Ready,
    /// Running, but its readiness probe fails: listeners it must serve are not bound (the
    /// errors, one a line).
    NotReady {
        /// Why (`binding listener … : Permission denied`).
        message: String,
    },
    /// Failed to start (the error); retried with CrashLoopBackOff's backoff.
    Failed {
        /// The start error.
        message: String,
    },
}

/// What the runtime reports about one Pod: its instance's state and how many times the
/// instance was started again after its first start (`restartCount`: after a failure, an
/// identity change, or a restart of `egress up` itself, which continues the stored count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The instance's state.
    pub instance: Instance,
    /// Starts after the first.
    pub restarts: u32,
}

impl From<Instance> for Fact {
    fn from(instance: Instance) -> Fact {
        Fact {
            instance,
            restarts: 0,
        }
    }
}

/// Runtime facts by Pod key `namespace/name`.
pub type Facts = BTreeMap<String, Fact>;

/// Fixed settings of the local cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pod IPs come from here (loopback by default, so pods bind addresses of this machine).
    pub pod_range: Ipv4Net,
    /// Static egress prefixes come from here.
    pub egress_pool: String,
    /// The node every Pod is scheduled on.
    pub node_name: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: Ipv4Addr,
    /// Current time, RFC 3339 (stamped on conditions and events that change).
    pub now: String,
    /// The image injected sidecars run (`egress sidecar run`).
    pub image: String,
    /// At most this many writes per transaction; the rest waits for the next pass (which
    /// recomputes everything), so transactions stay small however large the cluster is.
    pub batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pod_range: Ipv4Net::new(Ipv4Addr::new(127, 1, 0, 0), 16).unwrap_or_default(),
            egress_pool: egress_addon::sgc::DEFAULT_POOL.to_owned(),
            node_name: "egress-local".to_owned(),
            host_ip: Ipv4Addr::LOCALHOST,
            now: egress_store::rfc3339(std::time::SystemTime::now()),
            batch: 512,
            image: "egress:latest".to_owned(),
        }
    }
}

/// One planned write. `expected_rv` is the resourceVersion the plan was computed from (`None`
/// = create); the transaction refuses the plan if the object changed meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create (`expected_rv: None`) or replace the object.
    Put {
        /// Where.
        key: ObjectKey,
        /// The whole object.
        object: Value,
        /// resourceVersion it replaces.
        expected_rv: Option<u64>,
    },
    /// Delete the object.
    Delete {
        /// Where.
        key: ObjectKey,
    },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
        }
    }
}

/// The plan of one pass, and messages worth printing (what changed, in words).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Writes, in order.
    pub writes: Vec<Write>,
    /// Human-readable notes (`pod ns/name Running 127.1.0.2`), each with the index of the
    /// write it describes (so a plan committed in part prints only what was done).
    pub notes: Vec<(usize, String)>,
}

impl Plan {
    fn note(&mut self, text: String) {
        self.notes.push((self.writes.len(), text));
    }

    fn put(&mut self, old: Option<&Value>, object: Value) {
        let Some(key) = ObjectKey::from_object(&object) else {
            return;
        };
        if let Some(old) = old
            && same_object(old, &object)
        {
            return;
        }
        self.writes.push(Write::Put {
            key,
            expected_rv: old.and_then(resource_version),
            object,
        });
    }

    fn delete(&mut self, obj: &Value) {
        if let Some(key) = ObjectKey::from_object(obj) {
            self.writes.push(Write::Delete { key });
        }
    }
}

/// Runs every controller once over `state`.
pub fn reconcile(state: &State, facts: &Facts, settings: &Settings) -> Plan {
    let mut plan = Plan::default();
    let prefixes = sgc::reconcile(state, settings, &mut plan);
    workloads::reconcile(state, facts, settings, &prefixes, &mut plan);
    endpoints::reconcile(state, &mut plan);
    collect_events(state, &mut plan);
    plan
}

/// The value at a JSON pointer (`/a/b`), without allocating for plain tokens (the
/// controllers look up a handful of fields on thousands of objects per pass).
pub fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut cur = v;
    for token in pointer.split('/').skip(1) {
        cur = match cur {
            Value::Object(m) if token.contains('~') => {
                m.get(&token.replace("~1", "/").replace("~0", "~"))?
            }
            Value::Object(m) => m.get(token)?,
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `namespace/name` of an object.
pub fn object_path(obj: &Value) -> String {
    format!("{}/{}", namespace(obj), name(obj))
}

fn name(obj: &Value) -> &str {
    at(obj, "/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace(obj: &Value) -> &str {
    at(obj, "/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn uid(obj: &Value) -> &str {
    at(obj, "/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The stored resourceVersion of an object.
pub fn resource_version(obj: &Value) -> Option<u64> {
    at(obj, "/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn is_terminating(obj: &Value) -> bool {
    at(obj, "/metadata/deletionTimestamp").is_some()
}

/// Equal apart from what the store maintains.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "managedFields",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// An owner reference to `owner` (which must have been read from the store, for its uid).
fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The uid of the controlling owner of kind `kind`, if any.
fn controller_uid<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    at(obj, "/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("kind").and_then(Value::as_str) == Some(kind)
                && r.get("controller").and_then(Value::as_bool) == Some(true)
        })?
        .get("uid")?
        .as_str()
}

/// A condition list entry that keeps its transition time while its status stays the same.
fn condition(old: Option<&Value>, kind: &str, status: bool, reason: &str, now: &str) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old
        .and_then(|o| at(o, "/status/conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        });
    let kept = previous.filter(|c| {
        c.get("status").and_then(Value::as_str) == Some(status)
            && c.get("reason").and_then(Value::as_str).unwrap_or_default() == reason
    });
    let since = kept
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .unwrap_or(now);
    let mut c = json!({"type": kind, "status": status, "lastTransitionTime": since});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    c
}

/// How an event that happens again is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recur {
    /// Once per (object, reason, message): a condition that holds on every pass (a warning
    /// about an object as it is) or a step an object takes once (scheduled, started).
    Once,
    /// Each occurrence counts: `count` goes up and `lastTimestamp` moves, as the API
    /// server's event correlation does for a repeated event (a ReplicaSet scaled to the same
    /// size again, a Pod of the same name created again).
    Count,
}

/// What an event says.
struct EventText<'a> {
    kind: &'a str,
    reason: &'a str,
    message: &'a str,
    /// `source.component`, kubectl's "From" column.
    component: &'a str,
}

/// A Warning event about `obj`, recorded once per (object, reason, message).
fn warning_event(
    state: &State,
    settings: &Settings,
    plan: &mut Plan,
    obj: &Value,
    reason: &str,
    message: &str,
) {
    let text = EventText {
        kind: "Warning",
        reason,
        message,
        component: "egress-local",
    };
    record_event(state, settings, plan, obj, &text, Recur::Once);
}

/// A Normal event about a stored `obj` from the controller that stands in for `component`
/// (`default-scheduler`, `kubelet`, `replicaset-controller`, `deployment-controller`).
fn normal_event(
    state: &State,
    settings: &Settings,
    plan: &mut Plan,
    obj: &Value,
    (component, reason, message): (&str, &str, &str),
    recur: Recur,
) {
    let text = EventText {
        kind: "Normal",
        reason,
        message,
        component,
    };
    record_event(state, settings, plan, obj, &text, recur);
}

fn record_event(
    state: &State,
    settings: &Settings,
    plan: &mut Plan,
    obj: &Value,
    text: &EventText<'_>,
    recur: Recur,
) {
    let EventText {
        kind,
        reason,
        message,
        component,
    } = *text;
    let event_name = format!("{}.{}", name(obj), names::short_hash(&[reason, message]));
    let ns = namespace(obj);
    let same_name = state
        .events
        .iter()
        .find(|e| name(e) == event_name && namespace(e) == ns);
    let same_object = same_name
        .filter(|e| at(e, "/involvedObject/uid").and_then(Value::as_str) == Some(uid(obj)));
    if let Some(e) = same_object {
        if recur == Recur::Count {
            let mut again = e.clone();
            let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            again["count"] = json!(count.saturating_add(1));
            again["lastTimestamp"] = json!(settings.now);
            plan.put(Some(e), again);
        }
        return;
    }
    if kind == "Warning" {
        plan.note(format!(
            "Warning {reason} {}/{}: {message}",
            obj.get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase(),
            object_path(obj)
        ));
    }
    // An event of the same name about an earlier object of the same name (deleted and
    // created again) is replaced: creating it would fail the pass's transaction every time.
    plan.put(
        same_name,
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion").cloned().unwrap_or(Value::Null),
                "kind": obj.get("kind").cloned().unwrap_or(Value::Null),
                "name": name(obj),
                "namespace": ns,
                "uid": uid(obj),
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": settings.now,
            "lastTimestamp": settings.now,
            "source": {"component": component},
            "reportingComponent": component,
        }),
    );
}

/// Events about Pods, ReplicaSets and Deployments that are gone (the API server lets them
/// expire after an hour; here they go with their object, so churn does not grow the store).
fn collect_events(state: &State, plan: &mut Plan) {
    let live: HashSet<&str> = state
        .pods
        .iter()
        .chain(&state.replica_sets)
        .chain(&state.deployments)
        .map(uid)
        .collect();
    for e in &state.events {
        let kind = at(e, "/involvedObject/kind").and_then(Value::as_str);
        let of = at(e, "/involvedObject/uid").and_then(Value::as_str);
        if matches!(kind, Some("Pod" | "ReplicaSet" | "Deployment"))
            && of.is_some_and(|u| !live.contains(u))
            && !is_terminating(e)
        {
            plan.delete(e);
        }
    }
}
