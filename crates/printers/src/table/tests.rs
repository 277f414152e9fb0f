//! Tests for `kubectl get` tables: ages, cells per kind, and exact layouts.

use super::*;
use serde_json::json;

pub(super) fn now() -> SystemTime {
    parse_rfc3339("2026-11-30T14:00:00Z").unwrap()
}

pub(super) fn ago(seconds: u64) -> String {
    let t = now() - std::time::Duration::from_secs(seconds);
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Format back to RFC 3339 via the civil-from-days algorithm.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn table(kind: &str, objs: &[Value]) -> String {
    print_table(kind, objs, &TableOptions::default(), now())
}

#[test]
fn human_durations() {
    let cases: &[(i64, &str)] = &[
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (13, "13s"),
        (119, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (600, "10m"),
        (3900, "65m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (10 * 3600, "10h"),
        (47 * 3600 + 59 * 60, "47h"),
        (6 * 86_400 + 4 * 3600, "6d4h"),
        (7 * 86_400, "7d"),
        (9 * 86_400, "9d"),
        (729 * 86_400, "729d"),
        (3 * 365 * 86_400 + 120 * 86_400, "3y120d"),
        (4 * 365 * 86_400, "4y"),
        (9 * 365 * 86_400 + 5 * 86_400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(*secs), *want, "{secs}s");
    }
}

#[test]
fn ages_from_timestamps() {
    assert_eq!(age("2026-11-24T10:00:00Z", now()), "6d4h");
    assert_eq!(age("2026-11-30T13:59:47Z", now()), "13s");
    assert_eq!(age("2026-11-30T15:59:47+02:00", now()), "13s");
    assert_eq!(age("2026-11-30T13:59:47.999Z", now()), "12s");
    assert_eq!(age("2026-11-30T14:00:10Z", now()), "<invalid>");
    assert_eq!(age("", now()), "<unknown>");
    assert_eq!(age("yesterday", now()), "<unknown>");
    assert_eq!(age("2026-02-30T00:00:00Z", now()), "<unknown>");
    assert_eq!(ago(310), "2026-11-30T13:54:50Z");
}

#[test]
fn service_table_matches_kubectl() {
    let svc = json!({
        "kind": "Service",
        "metadata": {"name": "asm-egress-test", "namespace": "default", "creationTimestamp": "2026-11-24T10:00:00Z"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.0.128.17",
            "clusterIPs": ["10.0.128.17"],
            "ports": [{"name": "status-port", "port": 15021, "protocol": "TCP"}, {"name": "http2", "port": 80}, {"name": "https", "port": 443, "protocol": "TCP"}],
            "selector": {"istio": "egressgateway", "app": "asm"}
        }
    });
    let expected = "\
NAME              TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)                    AGE
asm-egress-test   ClusterIP   10.0.128.17   <none>        15021/TCP,80/TCP,443/TCP   6d4h
";
    assert_eq!(table("Service", std::slice::from_ref(&svc)), expected);
    assert_eq!(
        row("Service", &svc, true, now()).last().unwrap(),
        "app=asm,istio=egressgateway"
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]}});
    assert_eq!(
        row("Service", &lb, false, now()),
        [
            "lb",
            "LoadBalancer",
            "<none>",
            "<pending>",
            "80:30080/TCP",
            "<unknown>"
        ]
    );
    let lb_ready = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "20.1.2.3"}, {"hostname": "a-very-long-hostname.example.com"}]}}});
    assert_eq!(
        row("Service", &lb_ready, false, now())[3],
        "20.1.2.3,a-ve..."
    );
    assert_eq!(
        row("Service", &lb_ready, true, now())[3],
        "20.1.2.3,a-very-long-hostname.example.com"
    );
    let bare = json!({"metadata": {"name": "x"}, "spec": {}});
    assert_eq!(
        row("Service", &bare, true, now()),
        [
            "x",
            "ClusterIP",
            "<none>",
            "<none>",
            "<none>",
            "<unknown>",
            "<none>"
        ]
    );
    let ext = json!({"metadata": {"name": "cnn"}, "spec": {"type": "ExternalName", "externalName": "edition.cnn.com"}});
    assert_eq!(row("Service", &ext, false, now())[3], "edition.cnn.com");
}

#[test]
fn deployment_rows() {
    let d = json!({
        "metadata": {"name": "curl", "creationTimestamp": ago(65 * 60)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "curl"}},
            "template": {"spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}, {"name": "istio-proxy", "image": "proxyv2"}]}}
        },
        "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}
    });
    let expected = "\
NAME   READY   UP-TO-DATE   AVAILABLE   AGE
curl   1/2     2            1           65m
";
    assert_eq!(table("Deployment", std::slice::from_ref(&d)), expected);
    assert_eq!(
        row("Deployment", &d, true, now()),
        [
            "curl",
            "1/2",
            "2",
            "1",
            "65m",
            "curl,istio-proxy",
            "curlimages/curl,proxyv2",
            "app=curl"
        ]
    );
    let fresh = json!({"metadata": {"name": "new"}, "spec": {}});
    assert_eq!(
        row("Deployment", &fresh, false, now()),
        ["new", "0/1", "0", "0", "<unknown>"]
    );
    assert_eq!(
        headers("Deployment", true),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "curl-5b549b49b8-bcgts", "creationTimestamp": ago(13)},
        "spec": {"containers": [{"name": "curl"}, {"name": "istio-proxy"}], "nodeName": "aks-node-1"},
        "status": status
    })
}

#[test]
fn pod_rows() {
    let running = pod(json!({
        "phase": "Running",
        "podIP": "10.244.0.12",
        "podIPs": [{"ip": "10.244.0.12"}],
        "containerStatuses": [
            {"name": "curl", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "istio-proxy", "ready": true, "restartCount": 0, "state": {"running": {}}}
        ]
    }));
    let expected = "\
NAME                    READY   STATUS    RESTARTS   AGE
curl-5b549b49b8-bcgts   2/2     Running   0          13s
";
    assert_eq!(table("Pod", std::slice::from_ref(&running)), expected);
    assert_eq!(
        row("Pod", &running, true, now())[5..],
        ["10.244.0.12", "aks-node-1", "<none>", "<none>"]
    );
    let creating = pod(json!({"phase": "Pending", "containerStatuses": [
        {"name": "curl", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
        {"name": "istio-proxy", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
    ]}));
    assert_eq!(
        row("Pod", &creating, false, now())[1..4],
        ["0/2", "ContainerCreating", "0"]
    );
    let restarted = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "curl", "ready": true, "restartCount": 3, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
        {"name": "istio-proxy", "ready": false, "restartCount": 0, "state": {"running": {}}}
    ]}));
    assert_eq!(
        row("Pod", &restarted, false, now())[1..4],
        ["1/2", "Running", "3 (5m ago)"]
    );
    let crash = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "curl", "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]}));
    assert_eq!(
        row("Pod", &crash, false, now())[2..4],
        ["CrashLoopBackOff", "5"]
    );
    let init = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "istio-init"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "istio-init", "state": {"waiting": {"reason": "PodInitializing"}}}]}
    });
    assert_eq!(row("Pod", &init, false, now())[1..3], ["0/1", "Init:0/1"]);
    let init_failed = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "istio-init"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "istio-init", "state": {"terminated": {"exitCode": 2}}}]}
    });
    assert_eq!(row("Pod", &init_failed, false, now())[2], "Init:ExitCode:2");
    let sidecar = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Running",
            "initContainerStatuses": [{"name": "istio-proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    });
    assert_eq!(
        row("Pod", &sidecar, false, now())[1..4],
        ["2/2", "Running", "1"]
    );
    let done = pod(json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "curl", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    ]}));
    assert_eq!(row("Pod", &done, false, now())[1..3], ["0/2", "Completed"]);
    let mut deleting = running.clone();
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(row("Pod", &deleting, false, now())[2], "Terminating");
    let no_status = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    assert_eq!(
        row("Pod", &no_status, false, now())[1..4],
        ["0/1", "Pending", "0"]
    );
}

#[test]
fn simple_kinds() {
    let created = ago(6 * 86_400 + 4 * 3600);
    let meta = |n: &str| json!({"name": n, "creationTimestamp": created});
    assert_eq!(
        row(
            "Namespace",
            &json!({"metadata": meta("aks-istio-egress")}),
            false,
            now()
        ),
        ["aks-istio-egress", "Active", "6d4h"]
    );
    let cm = json!({"metadata": meta("istio-ca-root-cert"), "data": {"root-cert.pem": "x"}, "binaryData": {"b": "eA=="}});
    assert_eq!(
        row("ConfigMap", &cm, false, now()),
        ["istio-ca-root-cert", "2", "6d4h"]
    );
    let secret = json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        row("Secret", &secret, false, now()),
        ["s", "kubernetes.io/tls", "2", "6d4h"]
    );
    assert_eq!(
        row(
            "Secret",
            &json!({"metadata": meta("o"), "stringData": {"a": "b"}}),
            false,
            now()
        )[1..3],
        ["Opaque", "1"]
    );
    assert_eq!(
        row(
            "ServiceAccount",
            &json!({"metadata": meta("default")}),
            false,
            now()
        ),
        ["default", "0", "6d4h"]
    );
    let pdb = json!({"metadata": meta("gw"), "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        headers("PodDisruptionBudget", false),
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(
        row("PodDisruptionBudget", &pdb, false, now()),
        ["gw", "1", "N/A", "1", "6d4h"]
    );
    let pct = json!({"metadata": meta("gw"), "spec": {"maxUnavailable": "25%"}});
    assert_eq!(
        row("PodDisruptionBudget", &pct, false, now())[1..4],
        ["N/A", "25%", "0"]
    );
}

#[test]
fn hpa_rows() {
    let hpa = json!({
        "metadata": {"name": "egress", "creationTimestamp": ago(600)},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "egress"}, "minReplicas": 2, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 3}}}]}
    });
    let expected = "\
NAME     REFERENCE           TARGETS       MINPODS   MAXPODS   REPLICAS   AGE
egress   Deployment/egress   cpu: 3%/80%   2         5         2          10m
";
    assert_eq!(table("HorizontalPodAutoscaler", &[hpa]), expected);
    let v1 = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
    assert_eq!(
        row("HorizontalPodAutoscaler", &v1, false, now())[2..4],
        ["cpu: <unknown>/50%", "<unset>"]
    );
    let many = json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 3, "metrics": [
        {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}},
        {"type": "External", "external": {"target": {"value": "10"}}},
        {"type": "Object", "object": {"target": {"averageValue": "2"}}}
    ]}});
    assert_eq!(
        row("HorizontalPodAutoscaler", &many, false, now())[2],
        "<unknown>/1k, <unknown>/10 + 1 more..."
    );
}

#[test]
fn endpoint_slice_rows() {
    let slice = json!({
        "metadata": {"name": "web-x7k2p", "creationTimestamp": ago(600)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false}}
        ]
    });
    let expected = "\
NAME        ADDRESSTYPE   PORTS       ENDPOINTS           AGE
web-x7k2p   IPv4          8080,9090   10.0.0.1,10.0.0.2   10m
";
    assert_eq!(table("EndpointSlice", &[slice]), expected);
    // No ports and no endpoints (a Service no Pod matches): both unset.
    let empty =
        json!({"metadata": {"name": "e"}, "addressType": "IPv4", "ports": [], "endpoints": []});
    assert_eq!(
        row("EndpointSlice", &empty, false, now())[1..4],
        ["IPv4", "<unset>", "<unset>"]
    );
    // Three shown, then how many more; a port without a number by name, else `*`.
    let addrs: Vec<Value> = (1..=5)
        .map(|i| json!({"addresses": [format!("10.0.0.{i}")]}))
        .collect();
    let many = json!({"metadata": {"name": "m"}, "addressType": "IPv4",
        "ports": [{"port": 1}, {"name": "named"}, {}, {"port": 4}], "endpoints": addrs});
    assert_eq!(
        row("EndpointSlice", &many, false, now())[2..4],
        [
            "1,named,* + 1 more...",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."
        ]
    );
}

#[test]
fn istio_kinds_use_crd_columns() {
    let created = ago(6 * 86_400 + 4 * 3600);
    let se = json!({"metadata": {"name": "cnn", "creationTimestamp": created},
        "spec": {"hosts": ["edition.cnn.com"], "location": "MESH_EXTERNAL", "resolution": "DNS", "ports": [{"number": 80}]}});
    let expected = "\
NAME   HOSTS                 LOCATION        RESOLUTION   AGE
cnn    [\"edition.cnn.com\"]   MESH_EXTERNAL   DNS          6d4h
";
    assert_eq!(table("ServiceEntry", &[se]), expected);
    let vs = json!({"metadata": {"name": "direct-cnn", "creationTimestamp": created},
        "spec": {"hosts": ["edition.cnn.com"], "gateways": ["istio-egressgateway", "mesh"]}});
    assert_eq!(
        row("VirtualService", &vs, false, now()),
        [
            "direct-cnn",
            r#"["istio-egressgateway","mesh"]"#,
            r#"["edition.cnn.com"]"#,
            "6d4h"
        ]
    );
    let vs_no_gw = json!({"metadata": {"name": "r"}, "spec": {"hosts": ["r"]}});
    assert_eq!(row("VirtualService", &vs_no_gw, false, now())[1], "");
    let dr = json!({"metadata": {"name": "egress"}, "spec": {"host": "istio-egressgateway.istio-system.svc.cluster.local"}});
    assert_eq!(
        row("DestinationRule", &dr, false, now())[1],
        "istio-egressgateway.istio-system.svc.cluster.local"
    );
    let ap = json!({"metadata": {"name": "deny"}, "spec": {"action": "DENY"}});
    assert_eq!(
        headers("AuthorizationPolicy", false),
        ["NAME", "ACTION", "AGE"]
    );
    assert_eq!(row("AuthorizationPolicy", &ap, false, now())[1], "DENY");
    let pa = json!({"metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}});
    assert_eq!(row("PeerAuthentication", &pa, false, now())[1], "STRICT");
    for kind in ["Gateway", "Sidecar", "Telemetry", "EnvoyFilter", "Whatever"] {
        assert_eq!(headers(kind, true), ["NAME", "AGE"], "{kind}");
    }
    let sgc = json!({"metadata": {"name": "aks-static-egress-gw"}, "status": {"egressIpPrefix": "20.1.2.0/30"}});
    assert_eq!(
        headers("StaticGatewayConfiguration", false),
        ["NAME", "AGE"]
    );
    assert_eq!(
        row("StaticGatewayConfiguration", &sgc, true, now()),
        ["aks-static-egress-gw", "<unknown>", "20.1.2.0/30"]
    );
}

#[test]
fn table_options() {
    let a = json!({"metadata": {"name": "a", "namespace": "default", "labels": {"app": "curl", "app.kubernetes.io/version": "v1"}, "creationTimestamp": ago(13)}});
    let b = json!({"metadata": {"name": "bb", "namespace": "aks-istio-egress", "creationTimestamp": ago(13)}});
    let opts = TableOptions {
        show_namespace: true,
        show_labels: true,
        label_columns: vec!["app.kubernetes.io/version".into()],
        ..TableOptions::default()
    };
    let expected = "\
NAMESPACE          NAME   AGE   VERSION   LABELS
default            a      13s   v1        app.kubernetes.io/version=v1,app=curl
aks-istio-egress   bb     13s             <none>
";
    assert_eq!(
        print_table("Gateway", &[a.clone(), b], &opts, now()),
        expected
    );
    let opts = TableOptions {
        no_headers: true,
        name_prefix: Some("gateway.networking.istio.io".into()),
        ..TableOptions::default()
    };
    assert_eq!(
        print_table("Gateway", &[a], &opts, now()),
        "gateway.networking.istio.io/a   13s\n"
    );
}

#[test]
fn render_layout() {
    let h: Vec<String> = vec!["A".into(), "B".into(), "C".into()];
    let rows = vec![vec![
        "x".to_string(),
        "multi\nline".to_string(),
        "".to_string(),
    ]];
    assert_eq!(
        render(&h, &rows, false),
        "A     B          C\nx     multi...   \n"
    );
    assert_eq!(render(&h, &[], true), "");
    assert_eq!(
        render(&h, &[], false),
        "",
        "kubectl prints no headers without rows"
    );
    let esc = vec![vec!["\u{1b}[31mred".to_string(), "x".to_string()]];
    assert_eq!(render(&h[..2], &esc, true), "^[[31mred   x\n");
}

#[test]
fn names_for_dash_o_name() {
    assert_eq!(resource_name("", "Service", "curl"), "service/curl");
    assert_eq!(
        resource_name("apps", "Deployment", "curl"),
        "deployment.apps/curl"
    );
    assert_eq!(
        resource_name("networking.istio.io", "ServiceEntry", "cnn"),
        "serviceentry.networking.istio.io/cnn"
    );
}
