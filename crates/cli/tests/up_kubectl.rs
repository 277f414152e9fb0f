//! `egress up` serves the Kubernetes API and writes the `egress` kubectl context: the real
//! `kubectl` then sees what `egress get` sees (the same Service table, the seed's jsonpath
//! query), and what it applies, labels and deletes is what the local cluster acts on: the
//! labelled namespace's Deployment gets an injected sidecar, the add-on's gateway Service is
//! listed by both, and `kubectl describe svc` shows its ready Pods as endpoints (from the
//! EndpointSlice the local cluster keeps). Skips (fails under `EGRESS_TEST_STRICT=1`) where kubectl is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Addrs, Cluster, Up, wait_for, without_age};
use egress_store::Store;
use egress_testkit::kubectl::Kubectl;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

/// kubectl with the cluster's kubeconfig (the one `egress up` writes, see `Cluster::command`).
fn kubectl_for(c: &Cluster) -> Kubectl {
    Kubectl::new(&c.kubeconfig(), c.dir.path())
}

/// `kubectl rollout status deployment/curl`, which returns once the rollout is complete.
fn rollout_status(k: &Kubectl) -> String {
    k.ok(
        &[
            "rollout",
            "status",
            "deployment/curl",
            "-n",
            NS,
            "--timeout=60s",
        ],
        "",
    )
}

/// `kubectl delete <kind> curl --cascade=foreground`: what it printed once the object is gone.
fn delete_in_foreground(k: &Kubectl, kind: &str) -> String {
    k.ok(
        &[
            "delete",
            kind,
            "curl",
            "-n",
            NS,
            "--cascade=foreground",
            "--timeout=60s",
        ],
        "",
    )
    .trim()
    .to_owned()
}

/// Runs kubectl until `ok` accepts its output, for up to 30 s (the controllers write the
/// EndpointSlices in the pass after the one that starts seeing Pods ready at the latest).
fn until_kubectl(k: &Kubectl, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = k.ok(args, "");
        if ok(&out) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl {args:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kubectl_works_against_the_local_cluster() {
    if !Kubectl::available() {
        egress_testkit::skip("kubectl is not installed");
        return;
    }
    let addrs = Addrs::claim();
    let c = Cluster::new();
    let _up = Up::start(&c, &addrs.flags(&[]));
    let store = Store::open(c.store()).unwrap();
    let k = kubectl_for(&c);
    let config = std::fs::read_to_string(c.kubeconfig()).unwrap();
    assert!(config.contains("current-context: egress"), "{config}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(c.kubeconfig()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
        .ok();
    // The seed's namespace and its gateway, with the real kubectl where the seed uses it.
    k.ok(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"),
    );
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n",
    )
    .ok();
    common::enable_seed_gateway(&c, &store);
    let prefix = k.ok(
        &[
            "get",
            "staticgatewayconfiguration",
            "istio-egress-sgc",
            "-n",
            NS,
            "-o",
            "jsonpath={.status.egressIpPrefix}",
        ],
        "",
    );
    assert_eq!(prefix, addrs.pool.subnet(0, 31).to_string());

    // `kubectl get svc` prints the table `egress get svc` prints.
    let theirs = without_age(&k.ok(&["get", "svc", "-n", NS], ""));
    let ours = without_age(&c.run(&["get", "svc", "-n", NS]).ok().stdout);
    assert_eq!(theirs, ours);
    assert!(theirs.contains("asm-egress-test"), "{theirs}");

    // The gateway Service's endpoints: `kubectl describe svc` reads its EndpointSlices and
    // shows the ready gateway Pods' `ip:port` (in Pod name order) for each port.
    let mut gateway_pods: Vec<(String, String)> = common::ready_pods(&store, NS)
        .iter()
        .map(|p| {
            let field = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap().to_owned();
            (field("/metadata/name"), field("/status/podIP"))
        })
        .collect();
    gateway_pods.sort();
    let endpoints_of = |port: u16| {
        gateway_pods
            .iter()
            .map(|(_, ip)| format!("{ip}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let shows = |out: &str, port: u16| {
        let want = endpoints_of(port);
        out.lines().any(|l| {
            l.strip_prefix("Endpoints:")
                .is_some_and(|v| v.trim() == want)
        })
    };
    let described = until_kubectl(
        &k,
        &["describe", "svc", "asm-egress-test", "-n", NS],
        |out| shows(out, 80),
    );
    for port in [15021, 443] {
        assert!(shows(&described, port), "{port}: {described}");
    }
    // `kubectl get endpointslices` lists the slice the local cluster keeps (the table `egress
    // get` prints), labelled with its Service.
    let slices = k.ok(
        &[
            "get",
            "endpointslices",
            "-n",
            NS,
            "-l",
            "kubernetes.io/service-name=asm-egress-test",
        ],
        "",
    );
    let ips: Vec<&str> = gateway_pods.iter().map(|(_, ip)| ip.as_str()).collect();
    let row: Vec<&str> = slices
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(
        row.first()
            .is_some_and(|n| n.starts_with("asm-egress-test-") && n.len() == 21),
        "{slices}"
    );
    assert_eq!(
        row[1..4],
        ["IPv4", "15021,80,443", &ips.join(",")],
        "{slices}"
    );
    assert_eq!(slices.lines().count(), 2, "{slices}");
    let ours = c.run(&["get", "endpointslices", "-n", NS]).ok().stdout;
    assert_eq!(
        without_age(&k.ok(&["get", "endpointslices", "-n", NS], "")),
        without_age(&ours)
    );

    // The seed's label and curl sample: the local cluster injects the sidecar.
    assert_eq!(
        k.ok(&["label", "namespace", NS, "istio.io/rev=asm-1-24"], "")
            .trim(),
        format!("namespace/{NS} labeled")
    );
    let curl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    let applied = k.ok(&["apply", "-n", NS, "-f", "-"], &curl);
    assert!(
        applied.contains("deployment.apps/curl created"),
        "{applied}"
    );
    wait_for(&store, "curl 2/2 Running", Duration::from_secs(60), |s| {
        s.list("", "Pod", Some(NS)).unwrap().items.iter().any(|p| {
            p.pointer("/metadata/labels/app").and_then(Value::as_str) == Some("curl")
                && p.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.len() == 2 && cs.iter().all(|c| c["ready"] == Value::Bool(true))
                    })
        })
    });
    // `kubectl wait` on the Pod's Ready condition and on the prefix by jsonpath.
    let waited = k.ok(
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "app=curl",
            "-n",
            NS,
            "--timeout=60s",
        ],
        "",
    );
    assert!(
        waited
            .lines()
            .all(|l| l.starts_with("pod/curl-") && l.ends_with(" condition met")),
        "{waited}"
    );
    let waited = k.ok(
        &[
            "wait",
            "--for=jsonpath={.status.egressIpPrefix}",
            "sgc/istio-egress-sgc",
            "-n",
            NS,
            "--timeout=10s",
        ],
        "",
    );
    assert_eq!(
        waited.trim(),
        "staticgatewayconfiguration.egressgateway.kubernetes.azure.com/istio-egress-sgc condition met"
    );
    let pods = k.ok(&["get", "pods", "-n", NS, "-l", "app=curl"], "");
    assert!(
        pods.lines()
            .any(|l| l.starts_with("curl-") && l.contains(" 2/2 ")),
        "{pods}"
    );
    // The seed's exec line shape: the command runs as the Pod (as `egress exec` runs it),
    // its exit code is kubectl's.
    let pod = k.ok(
        &[
            "get",
            "pod",
            "-n",
            NS,
            "-l",
            "app=curl",
            "-o",
            "jsonpath={.items..metadata.name}",
        ],
        "",
    );
    let out = k.run(
        &[
            "exec",
            "-n",
            NS,
            &pod,
            "-c",
            "curl",
            "--",
            "sh",
            "-c",
            "echo $POD_NAME; exit 4",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pod);
    // describe: the Pod with the Events the scheduler and the kubelet would record.
    let described = k.ok(&["describe", "pod", "-n", NS, &pod], "");
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Name:") && l.ends_with(pod.as_str())),
        "{described}"
    );
    let events = described
        .split_once("\nEvents:\n")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no Events section: {described}"));
    let event = |from: &str, reason: &str, message: &str| {
        events.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"Normal")
                && f.get(1) == Some(&reason)
                && f.get(3) == Some(&from)
                && l.trim_end().ends_with(message)
        })
    };
    assert!(
        event(
            "default-scheduler",
            "Scheduled",
            &format!("Successfully assigned {NS}/{pod} to")
        ) || events.contains(&format!("Successfully assigned {NS}/{pod} to ")),
        "{events}"
    );
    for c in ["curl", "istio-proxy"] {
        assert!(
            event("kubelet", "Started", &format!("Started container {c}")),
            "{events}"
        );
        assert!(
            event("kubelet", "Created", &format!("Created container: {c}")),
            "{events}"
        );
    }
    // The Deployment's rollout: status, restart (a new ReplicaSet, the old one scaled
    // down, both recorded as events), history with both revisions.
    let rollout = rollout_status(&k);
    assert_eq!(
        rollout.trim(),
        "deployment \"curl\" successfully rolled out"
    );
    let first_rs = k.ok(
        &[
            "get",
            "rs",
            "-n",
            NS,
            "-l",
            "app=curl",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
        "",
    );
    let restarted = k.ok(&["rollout", "restart", "deployment/curl", "-n", NS], "");
    assert_eq!(restarted.trim(), "deployment.apps/curl restarted");
    let rollout = rollout_status(&k);
    assert!(
        rollout.ends_with("deployment \"curl\" successfully rolled out\n"),
        "{rollout}"
    );
    let history = k.ok(&["rollout", "history", "deployment/curl", "-n", NS], "");
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let described = k.ok(&["describe", "deployment", "curl", "-n", NS], "");
    for message in [
        format!("Scaled up replica set {first_rs} from 0 to 1"),
        format!("Scaled down replica set {first_rs} from 1 to 0"),
    ] {
        assert!(
            described.lines().any(|l| l.contains("ScalingReplicaSet")
                && l.contains("deployment-controller")
                && l.trim_end().ends_with(&message)),
            "{message}: {described}"
        );
    }
    let all = k.ok(&["get", "events", "-A"], "");
    assert!(all.lines().count() > 5, "{all}");
    // The local gateways (and sidecars) read their configuration through this API with the
    // Kubernetes-mode client (as `egress gateway run --kube` in a Pod): the API's request log
    // has their
    // lists and watches of every routing kind, and the changes applied above reached them
    // (the seed's walk-through with kubectl checks the traffic).
    let requests = std::fs::read_to_string(c.store().join("run/api-requests.log")).unwrap();
    for plural in [
        "gateways",
        "virtualservices",
        "destinationrules",
        "serviceentries",
        "sidecars",
    ] {
        let path = format!("GET /apis/networking.istio.io/v1/{plural}?");
        let by_gateways = |watch: bool| {
            requests.lines().any(|l| {
                l.contains(&path)
                    && l.contains("watch=true") == watch
                    && l.contains(" 200 \"egress/")
            })
        };
        assert!(
            by_gateways(false) && by_gateways(true),
            "{plural}: {requests}"
        );
    }
    // The curl Pod's sidecar too: it watches every namespace's Services (its destinations),
    // which no gateway does.
    assert!(
        requests.lines().any(|l| l.contains("GET /api/v1/services?")
            && l.contains("watch=true")
            && l.contains(" 200 \"egress/")),
        "{requests}"
    );
    // kubectl's own requests are there too, under its name.
    assert!(requests.contains(" \"kubectl/v1.32"), "{requests}");
    // The gateway's log through kubectl logs -l (the seed's step).
    let logs = k.run(&["logs", "-l", "istio=asm-egress-test", "-n", NS], "");
    assert!(logs.status.success(), "{logs:?}");
    // Applying again changes nothing.
    let again = k.ok(&["apply", "-n", NS, "-f", "-"], &curl);
    assert!(again.contains("deployment.apps/curl unchanged"), "{again}");

    // Deletion with each propagation policy. Orphan: the ReplicaSet and its Pod stay,
    // without their owner; applying the Deployment again adopts them.
    let rs_of = |k: &Kubectl| {
        k.ok(
            &["get", "rs", "-n", NS, "-l", "app=curl", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.ownerReferences[*].kind}{\"\\n\"}{end}"],
            "",
        )
    };
    let before = rs_of(&k);
    let deleted = k.ok(
        &["delete", "deployment", "curl", "-n", NS, "--cascade=orphan"],
        "",
    );
    assert_eq!(deleted.trim(), "deployment.apps \"curl\" deleted");
    let orphans = rs_of(&k);
    assert_eq!(
        orphans.lines().count(),
        before.lines().count(),
        "{before} -> {orphans}"
    );
    assert!(orphans.lines().all(|l| l.ends_with('=')), "{orphans}");
    k.ok(&["apply", "-n", NS, "-f", "-"], &curl);
    rollout_status(&k);
    // Foreground: kubectl waits until the Deployment is gone, and its ReplicaSets and Pods
    // went first.
    assert_eq!(
        delete_in_foreground(&k, "deployment"),
        "deployment.apps \"curl\" deleted"
    );
    assert_eq!(rs_of(&k), "");
    let left = k.ok(
        &["get", "pods", "-n", NS, "-l", "app=curl", "-o", "name"],
        "",
    );
    assert_eq!(left, "", "the Pods went before the Deployment");
    // The curl Service (no Pod left) keeps an empty slice; deleted in the foreground, the
    // Service goes once its slice has gone.
    let curl_slices = || {
        k.ok(
            &[
                "get",
                "endpointslices",
                "-n",
                NS,
                "-l",
                "kubernetes.io/service-name=curl",
                "-o",
                "name",
            ],
            "",
        )
    };
    assert!(
        curl_slices().starts_with("endpointslice.discovery.k8s.io/curl-"),
        "{}",
        curl_slices()
    );
    assert_eq!(
        delete_in_foreground(&k, "service"),
        "service \"curl\" deleted"
    );
    assert_eq!(curl_slices(), "");

    // The seed's cleanup line.
    let seed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples/seed-http-egress.yaml"),
    )
    .unwrap();
    k.ok(&["apply", "-n", NS, "-f", "-"], &seed);
    let deleted = k.ok(&["delete", "-n", NS, "-f", "-"], &seed);
    assert!(deleted.contains("deleted"), "{deleted}");
    let left = c.run(&["get", "gateway,virtualservice,destinationrule", "-n", NS]);
    assert!(
        !left.stdout.contains("istio-egressgateway"),
        "{}",
        left.stdout
    );
}
