//! Tables for what the local cluster writes: Events, ReplicaSets, and Pods and Deployments with
//! kubectl-like status, as `kubectl get` prints them.

use super::tests::{ago, now};
use super::*;
use serde_json::json;

fn table(kind: &str, objs: &[Value]) -> String {
    print_table(kind, objs, &TableOptions::default(), now())
}

fn wide(kind: &str, objs: &[Value]) -> String {
    let opts = TableOptions {
        wide: true,
        ..TableOptions::default()
    };
    print_table(kind, objs, &opts, now())
}

/// A core v1 Event as the local cluster records it (legacy timestamps and source).
fn event(name: &str, kind: &str, object: &str, reason: &str, message: &str, secs: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "demo", "creationTimestamp": ago(secs)},
        "involvedObject": {"kind": kind, "name": object, "namespace": "demo"},
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "kubelet", "host": "egress-local"},
        "firstTimestamp": ago(secs),
        "lastTimestamp": ago(secs),
        "count": 1
    })
}

fn demo_events() -> Vec<Value> {
    vec![
        event(
            "curl.18a2b3c4d5e6f700",
            "Deployment",
            "curl",
            "ScalingReplicaSet",
            "Scaled up replica set curl-5b5d8f9b7 to 1",
            20,
        ),
        event(
            "curl-5b5d8f9b7.18a2b3c4d5e6f701",
            "ReplicaSet",
            "curl-5b5d8f9b7",
            "SuccessfulCreate",
            "Created pod: curl-5b5d8f9b7-abcde",
            20,
        ),
        event(
            "curl-5b5d8f9b7-abcde.18a2b3c4d5e6f702",
            "Pod",
            "curl-5b5d8f9b7-abcde",
            "Started",
            "Started container curl",
            13,
        ),
    ]
}

#[test]
fn event_headers_match_kubectl() {
    assert_eq!(
        headers("Event", false),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert_eq!(
        headers("Event", true),
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME"
        ]
    );
}

#[test]
fn event_table_matches_kubectl() {
    let expected = "\
LAST SEEN   TYPE     REASON              OBJECT                      MESSAGE
20s         Normal   ScalingReplicaSet   deployment/curl             Scaled up replica set curl-5b5d8f9b7 to 1
20s         Normal   SuccessfulCreate    replicaset/curl-5b5d8f9b7   Created pod: curl-5b5d8f9b7-abcde
13s         Normal   Started             pod/curl-5b5d8f9b7-abcde    Started container curl
";
    assert_eq!(table("Event", &demo_events()), expected);
}

#[test]
fn event_wide_table_matches_kubectl() {
    let mut started = demo_events().remove(2);
    started["involvedObject"]["fieldPath"] = json!("spec.containers{curl}");
    started["count"] = json!(2);
    started["firstTimestamp"] = json!(ago(40));
    let expected = "\
LAST SEEN   TYPE     REASON    OBJECT                     SUBOBJECT               SOURCE                  MESSAGE                  FIRST SEEN   COUNT   NAME
13s         Normal   Started   pod/curl-5b5d8f9b7-abcde   spec.containers{curl}   kubelet, egress-local   Started container curl   40s          2       curl-5b5d8f9b7-abcde.18a2b3c4d5e6f702
";
    assert_eq!(wide("Event", &[started]), expected);
}

#[test]
fn event_times_and_counts_follow_kubectl_fallbacks() {
    // Only eventTime (the newer API): FIRST SEEN and LAST SEEN both from it, count 1.
    let new_api = json!({
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "type": "Warning",
        "reason": "BackOff",
        "message": "  Back-off restarting failed container\n",
        "eventTime": "2026-11-30T13:54:50.123456Z",
        "reportingComponent": "kubelet",
        "reportingInstance": "egress-local"
    });
    assert_eq!(
        row("Event", &new_api, true, now()),
        [
            "5m9s",
            "Warning",
            "BackOff",
            "pod/p",
            "",
            "kubelet, egress-local",
            "Back-off restarting failed container",
            "5m9s",
            "1",
            "e"
        ]
    );
    // A series: LAST SEEN and COUNT come from it.
    let mut series = new_api.clone();
    series["series"] = json!({"count": 7, "lastObservedTime": ago(13)});
    let cells = row("Event", &series, true, now());
    assert_eq!((cells[0].as_str(), cells[8].as_str()), ("13s", "7"));
    // Legacy firstTimestamp without lastTimestamp: LAST SEEN is FIRST SEEN.
    let legacy = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
        "firstTimestamp": ago(600), "count": 3, "source": {"component": "kubelet"}});
    assert_eq!(
        row("Event", &legacy, true, now()),
        ["10m", "", "", "node", "", "kubelet", "", "10m", "3", "e"]
    );
    // No time at all.
    let bare = json!({"metadata": {"name": "e"}, "involvedObject": {}});
    assert_eq!(
        row("Event", &bare, false, now()),
        ["<unknown>", "", "", "", ""]
    );
}

#[test]
fn event_name_prefix_goes_to_the_name_column() {
    let ev = demo_events().remove(2);
    let mut opts = TableOptions {
        no_headers: true,
        name_prefix: Some("event".into()),
        ..TableOptions::default()
    };
    assert_eq!(
        print_table("Event", std::slice::from_ref(&ev), &opts, now()),
        "13s   Normal   Started   pod/curl-5b5d8f9b7-abcde   Started container curl\n",
        "no NAME column without -o wide: nothing to prefix"
    );
    opts.wide = true;
    let out = print_table("Event", &[ev], &opts, now());
    assert!(
        out.ends_with("   event/curl-5b5d8f9b7-abcde.18a2b3c4d5e6f702\n"),
        "{out}"
    );
    assert!(out.starts_with("13s   "), "{out}");
}

fn replica_set(ready: Option<i64>, current: Option<i64>) -> Value {
    let mut status = serde_json::Map::new();
    if let Some(c) = current {
        status.insert("replicas".into(), json!(c));
    }
    if let Some(r) = ready {
        status.insert("readyReplicas".into(), json!(r));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "curl-5b5d8f9b7", "namespace": "demo", "creationTimestamp": ago(65 * 60),
            "labels": {"app": "curl", "pod-template-hash": "5b5d8f9b7"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "curl", "pod-template-hash": "5b5d8f9b7"}},
            "template": {
                "metadata": {"labels": {"app": "curl", "pod-template-hash": "5b5d8f9b7"}},
                "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}]}
            }
        },
        "status": status
    })
}

#[test]
fn replica_set_rows_use_status_replicas_and_ready_replicas() {
    let expected = "\
NAME             DESIRED   CURRENT   READY   AGE
curl-5b5d8f9b7   2         2         1       65m
";
    assert_eq!(
        table("ReplicaSet", &[replica_set(Some(1), Some(2))]),
        expected
    );
    assert_eq!(
        row("ReplicaSet", &replica_set(Some(2), Some(2)), true, now()),
        [
            "curl-5b5d8f9b7",
            "2",
            "2",
            "2",
            "65m",
            "curl",
            "curlimages/curl",
            "app=curl,pod-template-hash=5b5d8f9b7"
        ]
    );
    // A ReplicaSet just created: no status counts yet.
    assert_eq!(
        row("ReplicaSet", &replica_set(None, None), false, now())[1..4],
        ["2", "0", "0"]
    );
    let scaled_to_zero =
        json!({"metadata": {"name": "old"}, "spec": {"replicas": 0, "selector": {}}});
    assert_eq!(
        row("ReplicaSet", &scaled_to_zero, true, now())[1..],
        ["0", "0", "0", "<unknown>", "", "", "<none>"]
    );
    assert_eq!(
        resource_name("apps", "ReplicaSet", "curl-5b5d8f9b7"),
        "replicaset.apps/curl-5b5d8f9b7"
    );
}

#[test]
fn deployment_ready_when_all_replicas_are() {
    let d = json!({
        "metadata": {"name": "curl", "creationTimestamp": ago(20)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "curl"}},
                 "template": {"spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    });
    let expected = "\
NAME   READY   UP-TO-DATE   AVAILABLE   AGE
curl   2/2     2            2           20s
";
    assert_eq!(table("Deployment", &[d]), expected);
}

fn one_container_pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "curl-5b5d8f9b7-abcde", "namespace": "demo", "creationTimestamp": ago(13)},
        "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}], "nodeName": "egress-local"},
        "status": status
    })
}

#[test]
fn pod_lifecycle_as_the_local_cluster_writes_it() {
    let creating = one_container_pod(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "curl", "ready": false, "restartCount": 0,
            "image": "curlimages/curl", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]
    }));
    let expected = "\
NAME                   READY   STATUS              RESTARTS   AGE
curl-5b5d8f9b7-abcde   0/1     ContainerCreating   0          13s
";
    assert_eq!(table("Pod", std::slice::from_ref(&creating)), expected);
    assert_eq!(
        row("Pod", &creating, true, now())[5..],
        ["<none>", "egress-local", "<none>", "<none>"],
        "no IP before the sandbox exists"
    );

    let running = one_container_pod(json!({
        "phase": "Running",
        "podIP": "127.0.10.5",
        "podIPs": [{"ip": "127.0.10.5"}],
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
            {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "curl", "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": ago(10)}}}]
    }));
    let expected = "\
NAME                   READY   STATUS    RESTARTS   AGE   IP           NODE           NOMINATED NODE   READINESS GATES
curl-5b5d8f9b7-abcde   1/1     Running   0          13s   127.0.10.5   egress-local   <none>           <none>
";
    assert_eq!(wide("Pod", &[running]), expected);

    let pending_unscheduled = one_container_pod(json!({"phase": "Pending"}));
    assert_eq!(
        row("Pod", &pending_unscheduled, true, now())[1..6],
        ["0/1", "Pending", "0", "13s", "<none>"]
    );
    let only_pod_ip = one_container_pod(json!({"phase": "Running", "podIP": "127.0.10.6"}));
    assert_eq!(row("Pod", &only_pod_ip, true, now())[5], "127.0.10.6");
}
