//! Kubernetes mode of the mesh commands (`--kubeconfig`) against the mock API server: the
//! exact server-side-apply requests and bodies, the rollout wait on the Deployment status the
//! "cluster" reports, disable's deletions, and the API server's refusals. The mock serves
//! from its own thread; the command runs on another, and the test plays the controllers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use egress_addon::objects::{EgressGatewayObjects, cluster_gateway_objects};
use egress_cli::Io;
use egress_cli::mesh::{self, MeshCommand, MeshError, WaitOptions};
use egress_store::{Store, StoreOptions};
use egress_testkit::apiserver::{ApiRequest, Failure, MockApiServer};
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";
const GW: &str = "asm-egress-test";
const IMAGE: &str = "registry.example/egress:1.0";
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(subcommand)]
    command: MeshCommand,
}

/// A mock cluster with the gateway namespace and its StaticGatewayConfiguration, a
/// kubeconfig for it, and an empty local store.
struct Fixture {
    server: MockApiServer,
    store: Store,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let server = MockApiServer::start().unwrap();
        server
            .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .unwrap();
        server
            .put(json!({
                "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
                "kind": "StaticGatewayConfiguration",
                "metadata": {"name": "sgc", "namespace": NS},
                "spec": {"gatewayNodepoolName": "gw"},
                "status": {"egressIpPrefix": "20.1.2.0/31"},
            }))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
        let options = StoreOptions {
            fsync: false,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("store"), options).unwrap();
        Fixture {
            server,
            store,
            kubeconfig,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> MeshCommand {
        let mut all = vec!["mesh"];
        all.extend_from_slice(args);
        let kubeconfig = self.kubeconfig.to_str().unwrap();
        all.extend_from_slice(&[
            "-g",
            "rg",
            "-n",
            "c",
            "-o",
            "none",
            "--kubeconfig",
            kubeconfig,
        ]);
        all.extend_from_slice(&["--image", IMAGE]);
        Wrapper::try_parse_from(all).unwrap().command
    }

    /// Runs a command to completion on this thread; `(result, stderr)`.
    fn run(&self, args: &[&str]) -> (Result<(), MeshError>, String) {
        let command = self.command(args);
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        let mut confirm = |_: &str| Ok(true);
        let r = mesh::run_with(&self.store, &command, &mut io, &mut confirm, &opts(false));
        (r, String::from_utf8(err).unwrap())
    }

    fn enable_no_wait(&self) {
        let (r, _) = self.run(&enable_args(&["--no-wait"]));
        r.unwrap();
    }

    fn patches(&self) -> Vec<ApiRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect()
    }
}

fn opts(progress: bool) -> WaitOptions {
    WaitOptions {
        progress,
        timeout: PATIENCE,
        ..WaitOptions::default()
    }
}

fn enable_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        GW,
        "--gateway-configuration-name",
        "sgc",
    ];
    v.extend_from_slice(extra);
    v
}

/// What the add-on renders for the gateway and `revisions`, in apply order.
fn expected_objects(revisions: &[&str]) -> Vec<Value> {
    let revisions: Vec<String> = revisions.iter().map(|r| r.to_string()).collect();
    cluster_gateway_objects(&EgressGatewayObjects {
        name: GW,
        namespace: NS,
        gateway_configuration_name: "sgc",
        revisions: &revisions,
        cluster_ip: "",
        image: IMAGE,
    })
}

/// The API paths of the gateway's objects for `revision`, in apply order.
fn paths(revision: &str) -> Vec<String> {
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    let release = format!("asm-egx-{NS}-{GW}");
    let d = format!("{GW}-{revision}");
    vec![
        format!("/api/v1/namespaces/{NS}/serviceaccounts/{GW}"),
        format!("{rbac}/namespaces/{NS}/roles/{GW}"),
        format!("{rbac}/namespaces/{NS}/rolebindings/{GW}"),
        format!("{rbac}/clusterroles/{release}"),
        format!("{rbac}/clusterrolebindings/{release}"),
        format!("/api/v1/namespaces/{NS}/services/{GW}"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/{d}"),
        format!("/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{d}"),
        format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{d}"),
    ]
}

/// Standard error forwarded to a channel, for following the progress line.
struct ChannelWriter(Sender<String>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn await_text(rx: &Receiver<String>, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains(needle) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(text) => seen.push_str(&text),
            Err(e) => panic!("waiting for {needle:?}: {e}; got {seen:?}"),
        }
    }
}

fn deployment_status(ready: i64) -> Value {
    json!({
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": ready,
        "availableReplicas": ready,
    })
}

#[test]
fn enable_server_side_applies_the_add_on_objects_in_order() {
    let f = Fixture::new();
    f.enable_no_wait();
    let patches = f.patches();
    let got: Vec<&str> = patches.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(got, paths("asm-1-24"));
    let expected = expected_objects(&["asm-1-24"]);
    for (request, object) in patches.iter().zip(&expected) {
        assert_eq!(
            request.param("fieldManager"),
            Some("egress"),
            "{}",
            request.path
        );
        assert_eq!(request.param("force"), Some("true"), "{}", request.path);
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(&request.json().unwrap(), object, "{}", request.path);
    }
    // The objects are on the cluster; the Service has no cluster IP of ours.
    let svc = f.server.get("v1", "Service", Some(NS), GW).unwrap();
    assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 3);
    assert!(svc["spec"].get("clusterIP").is_none());
    let d = f
        .server
        .get(
            "apps/v1",
            "Deployment",
            Some(NS),
            "asm-egress-test-asm-1-24",
        )
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["kubernetes.azure.com/static-gateway-configuration"],
        "sgc"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    // The profile is in the local store, as without --kubeconfig.
    let mc = mesh::read_cluster(&f.store, &mesh::ClusterArgs::of(None, Some("c".into()))).unwrap();
    assert_eq!(
        mc.mesh_profile_or_disabled()
            .enabled_egress_gateways()
            .count(),
        1
    );
}

#[test]
fn enable_waits_for_the_rollout_reported_by_the_api_server() {
    let f = Fixture::new();
    let (tx, rx) = channel();
    let command = f.command(&enable_args(&[]));
    let store = f.store.clone();
    let running = thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = ChannelWriter(tx);
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        let mut confirm = |_: &str| Ok(true);
        mesh::run_with(&store, &command, &mut io, &mut confirm, &opts(true))
    });
    // The wait watches the gateway's Deployments by label, in its namespace.
    let watches = f
        .server
        .wait_for_requests_blocking(1, PATIENCE, |r| {
            r.is_watch() && r.path == format!("/apis/apps/v1/namespaces/{NS}/deployments")
        })
        .unwrap();
    assert_eq!(
        watches[0].param("labelSelector"),
        Some("app=asm-egress-test,istio=asm-egress-test")
    );
    let list = f
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && !r.is_watch() && r.path.ends_with("/deployments"))
        .unwrap();
    assert_eq!(
        list.path,
        format!("/apis/apps/v1/namespaces/{NS}/deployments")
    );
    assert_eq!(
        list.param("labelSelector"),
        Some("app=asm-egress-test,istio=asm-egress-test")
    );
    // The watch resumes from the list's resourceVersion.
    assert!(
        watches[0]
            .param("resourceVersion")
            .is_some_and(|rv| rv.parse::<u64>().is_ok()),
        "{:?}",
        watches[0]
    );
    let mut seen = String::new();
    await_text(
        &rx,
        &mut seen,
        " - Running .. egress gateway asm-egress-test in aks-istio-egress: 0/2 pods ready",
    );
    let set = |ready| {
        f.server
            .set_status(
                "apps/v1",
                "Deployment",
                Some(NS),
                "asm-egress-test-asm-1-24",
                deployment_status(ready),
            )
            .unwrap();
    };
    set(1);
    await_text(&rx, &mut seen, "1/2 pods ready");
    // A dropped watch is resumed; the next status still arrives.
    f.server.drop_watches();
    set(2);
    running.join().unwrap().unwrap();
    // The progress line was cleared at the end.
    while let Ok(text) = rx.try_recv() {
        seen.push_str(&text);
    }
    assert!(seen.ends_with('\r'), "{seen:?}");
}

#[test]
fn the_wait_resyncs_after_410_gone() {
    let f = Fixture::new();
    let command = f.command(&enable_args(&[]));
    let store = f.store.clone();
    let running = thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        let mut confirm = |_: &str| Ok(true);
        mesh::run_with(&store, &command, &mut io, &mut confirm, &opts(false))
    });
    let is_list =
        |r: &ApiRequest| r.method == "GET" && !r.is_watch() && r.path.ends_with("/deployments");
    f.server
        .wait_for_requests_blocking(1, PATIENCE, |r| r.is_watch())
        .unwrap();
    // History before now is gone: the resumed watch gets 410 and the watcher re-lists.
    f.server.compact(f.server.resource_version() + 1);
    f.server.drop_watches();
    f.server
        .wait_for_requests_blocking(2, PATIENCE, is_list)
        .unwrap();
    f.server
        .set_status(
            "apps/v1",
            "Deployment",
            Some(NS),
            "asm-egress-test-asm-1-24",
            deployment_status(2),
        )
        .unwrap();
    running.join().unwrap().unwrap();
}

#[test]
fn disable_deletes_exactly_the_gateway_objects() {
    let f = Fixture::new();
    f.enable_no_wait();
    f.server.clear_requests();
    let (r, _) = f.run(&[
        "disable-egress-gateway",
        "--istio-egressgateway-name",
        GW,
        "--yes",
    ]);
    r.unwrap();
    let deletes: Vec<String> = f
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    let mut expected = paths("asm-1-24");
    expected.reverse();
    assert_eq!(deletes, expected);
    assert!(f.patches().is_empty());
    // What was there before the gateway is still there.
    assert!(f.server.get("v1", "Namespace", None, NS).is_some());
    assert!(
        f.server
            .get(
                "egressgateway.kubernetes.azure.com/v1alpha1",
                "StaticGatewayConfiguration",
                Some(NS),
                "sgc"
            )
            .is_some()
    );
    assert!(f.server.list("apps/v1", "Deployment", None).is_empty());
    assert!(
        f.server
            .list("rbac.authorization.k8s.io/v1", "ClusterRole", None)
            .is_empty()
    );
}

#[test]
fn upgrades_apply_the_new_revision_and_complete_removes_the_old_one() {
    let f = Fixture::new();
    f.enable_no_wait();
    f.server.clear_requests();
    f.run(&["upgrade", "start", "--revision", "asm-1-25"])
        .0
        .unwrap();
    let applied: Vec<String> = f.patches().into_iter().map(|r| r.path).collect();
    let mut expected = paths("asm-1-24");
    expected.extend(paths("asm-1-25").into_iter().skip(6));
    assert_eq!(applied, expected);
    // The ClusterRole now names both revisions' shared MeshConfigs.
    let release = format!("asm-egx-{NS}-{GW}");
    let cr = f
        .server
        .get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            &release,
        )
        .unwrap();
    assert_eq!(
        cr["rules"][3]["resourceNames"],
        json!([
            "istio-shared-configmap-asm-1-24",
            "istio-shared-configmap-asm-1-25"
        ])
    );

    f.server.clear_requests();
    f.run(&["upgrade", "complete", "--yes"]).0.unwrap();
    let deleted: Vec<String> = f
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    let mut old: Vec<String> = paths("asm-1-24").into_iter().skip(6).collect();
    old.reverse();
    assert_eq!(deleted, old);
    let names: Vec<String> = f
        .server
        .list("apps/v1", "Deployment", Some(NS))
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["asm-egress-test-asm-1-25"]);
}

#[test]
fn api_server_refusals_name_the_object_and_keep_the_profile() {
    let f = Fixture::new();
    f.server.fail(Failure::new(
        "PATCH",
        "/apis/apps/v1/namespaces/aks-istio-egress/deployments/",
        403,
        "Forbidden",
        "deployments.apps \"asm-egress-test-asm-1-24\" is forbidden: User \"dev\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"aks-istio-egress\"",
    ));
    let (r, _) = f.run(&enable_args(&["--no-wait"]));
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "applying Deployment aks-istio-egress/asm-egress-test-asm-1-24: deployments.apps \"asm-egress-test-asm-1-24\" is forbidden: User \"dev\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"aks-istio-egress\" (Forbidden, 403)"
    );
    // The store's transaction was not committed: not even the cluster's identity was
    // recorded, and enabling again is not "already enabled".
    let e =
        mesh::read_cluster(&f.store, &mesh::ClusterArgs::of(None, Some("c".into()))).unwrap_err();
    assert!(matches!(e, MeshError::NotFound { .. }), "{e}");
    let mc = mesh::read_cluster(&f.store, &mesh::ClusterArgs::of(None, None)).unwrap();
    assert_eq!(mc.service_mesh_profile, None);
    f.server.clear_failures();
    f.enable_no_wait();
}

#[test]
fn enable_checks_the_namespace_and_configuration_on_the_cluster() {
    let f = Fixture::new();
    let (r, _) = f.run(&enable_args(&[
        "--istio-egressgateway-namespace",
        "missing",
        "--no-wait",
    ]));
    assert_eq!(
        r.unwrap_err().to_string(),
        "namespace \"missing\" not found: egress gateway asm-egress-test is deployed in the namespace of its StaticGatewayConfiguration; create the namespace and StaticGatewayConfiguration \"sgc\" in it first"
    );
    let (r, _) = f.run(&[
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        GW,
        "--gateway-configuration-name",
        "other",
        "--no-wait",
    ]);
    assert_eq!(
        r.unwrap_err().to_string(),
        "StaticGatewayConfiguration \"other\" not found in namespace \"aks-istio-egress\": create it in the egress gateway's namespace before enabling egress gateway asm-egress-test"
    );
    assert!(f.patches().is_empty());
    f.server
        .set_status(
            "egressgateway.kubernetes.azure.com/v1alpha1",
            "StaticGatewayConfiguration",
            Some(NS),
            "sgc",
            json!({}),
        )
        .unwrap();
    let (r, err) = f.run(&enable_args(&["--no-wait"]));
    r.unwrap();
    assert!(
        err.contains(
            "WARNING: StaticGatewayConfiguration aks-istio-egress/sgc has no egressIpPrefix yet"
        ),
        "{err}"
    );
}

#[test]
fn context_and_image_require_kubeconfig() {
    for extra in [["--context", "x"], ["--image", "y"]] {
        let mut args = vec!["mesh"];
        args.extend(enable_args(&extra));
        let e = Wrapper::try_parse_from(args).unwrap_err();
        assert!(e.to_string().contains("--kubeconfig"), "{e}");
    }
}
