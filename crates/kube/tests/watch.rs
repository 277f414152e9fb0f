//! The Kubernetes configuration source against the test kit's mock API server on loopback:
//! the exact list and watch requests per kind, the generation moving on changes, a dropped
//! watch resumed from the last resourceVersion without a relist, and a 410 Gone answered by a
//! relist after which objects deleted while away are gone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use egress_kube::{KubeOptions, KubeSource, Scope, scope};
use egress_testkit::apiserver::{ApiRequest, Failure, MockApiServer};
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";
const ROOT: &str = "aks-istio-system";
const WAIT: Duration = Duration::from_secs(20);
const SE_PATH: &str = "/apis/networking.istio.io/v1/serviceentries";

fn scope() -> Scope {
    Scope {
        namespace: NS.into(),
        revision: Some("asm-1-24".into()),
        watch_namespaces: Vec::new(),
        workload: egress_kube::Workload::Gateway,
    }
}

fn service_entry(ns: &str, name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"hosts": [host], "location": "MESH_EXTERNAL",
                 "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                 "resolution": "DNS"}
    })
}

async fn start(server: &MockApiServer, dir: &tempfile::TempDir, scope: &Scope) -> KubeSource {
    let kubeconfig = server.write_kubeconfig(dir.path()).unwrap();
    let client = KubeOptions {
        kubeconfig: Some(kubeconfig),
        context: None,
    }
    .client()
    .await
    .unwrap();
    let source = KubeSource::start(client, scope).unwrap();
    tokio::time::timeout(WAIT, source.ready())
        .await
        .unwrap_or_else(|_| panic!("never ready; pending {:?}", source.pending()));
    source
}

/// Waits (on the generation channel) until `pred` holds for the cache's objects.
async fn wait_objects(source: &KubeSource, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let mut rx = source.subscribe();
    let done = tokio::time::timeout(WAIT, async {
        loop {
            rx.borrow_and_update();
            let objs: Vec<Value> = source
                .snapshot()
                .objects
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            if pred(&objs) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "cache never reached: {what}: {:?}",
        source.snapshot()
    );
}

fn names(objs: &[Value], kind: &str) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// The names of the `kind` objects in `source`'s current snapshot, sorted.
fn snapshot_names(source: &KubeSource, kind: &str) -> Vec<String> {
    let objects: Vec<Value> = source
        .snapshot()
        .objects
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    names(&objects, kind)
}

fn query(r: &ApiRequest) -> Vec<(String, String)> {
    let mut q = r.query.clone();
    q.sort();
    q
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

/// The path a planned watch lists and watches.
fn path(s: &scope::WatchSpec) -> String {
    let ar = s.api_resource().unwrap();
    let base = if ar.group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    match &s.namespace {
        egress_kube::Namespace::All => format!("{base}/{}", ar.plural),
        egress_kube::Namespace::One(ns) => format!("{base}/namespaces/{ns}/{}", ar.plural),
    }
}

#[tokio::test]
async fn lists_then_watches_every_kind_with_its_scope() {
    let server = MockApiServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = start(&server, &dir, &scope()).await;
    let plan = scope::plan(&scope());
    server
        .wait_for_watches(plan.len(), WAIT)
        .await
        .expect("every kind watched");
    let requests = server.requests();
    let expected_paths = [
        "/apis/networking.istio.io/v1/gateways",
        "/apis/networking.istio.io/v1/virtualservices",
        "/apis/networking.istio.io/v1/destinationrules",
        "/apis/networking.istio.io/v1/serviceentries",
        "/apis/networking.istio.io/v1/sidecars",
        "/apis/security.istio.io/v1/namespaces/aks-istio-egress/authorizationpolicies",
        "/apis/security.istio.io/v1/namespaces/aks-istio-system/authorizationpolicies",
        "/apis/telemetry.istio.io/v1/namespaces/aks-istio-egress/telemetries",
        "/apis/telemetry.istio.io/v1/namespaces/aks-istio-system/telemetries",
        "/api/v1/namespaces/aks-istio-egress/services",
        "/api/v1/namespaces/aks-istio-egress/pods",
        "/api/v1/namespaces/aks-istio-egress/secrets",
        "/api/v1/namespaces/aks-istio-system/configmaps",
    ];
    let planned: Vec<String> = plan.iter().map(path).collect();
    assert_eq!(planned, expected_paths);
    for spec in &plan {
        let p = path(spec);
        let on_path: Vec<&ApiRequest> = requests.iter().filter(|r| r.path == p).collect();
        assert_eq!(
            on_path.len(),
            2,
            "one list and one watch on {p}: {on_path:#?}"
        );
        let (list, watch) = (on_path[0], on_path[1]);
        assert_eq!(
            (list.method.as_str(), watch.method.as_str()),
            ("GET", "GET")
        );
        let selector = spec.field_selector.as_deref();
        let mut want_list = vec![("limit", "500")];
        let mut want_watch = vec![
            ("watch", "true"),
            ("timeoutSeconds", "290"),
            ("allowWatchBookmarks", "true"),
        ];
        if let Some(f) = selector {
            want_list.push(("fieldSelector", f));
            want_watch.push(("fieldSelector", f));
        }
        assert_eq!(query(list), pairs(&want_list), "list on {p}");
        let rv = watch.param("resourceVersion").unwrap().to_owned();
        want_watch.push(("resourceVersion", &rv));
        assert_eq!(query(watch), pairs(&want_watch), "watch on {p}");
        assert!(
            rv.parse::<u64>().is_ok(),
            "watch from the list's resourceVersion: {rv}"
        );
    }
    assert_eq!(
        plan.iter()
            .find(|s| s.kind == "ConfigMap")
            .unwrap()
            .field_selector
            .as_deref(),
        Some("metadata.name=istio-shared-configmap-asm-1-24")
    );
    assert_eq!(
        requests.len(),
        2 * plan.len(),
        "nothing else: {requests:#?}"
    );
    drop(source);
}

#[tokio::test]
async fn watch_namespaces_narrow_the_routing_kinds() {
    let server = MockApiServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = scope();
    s.watch_namespaces = vec!["apps".into()];
    let _source = start(&server, &dir, &s).await;
    let lists: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.is_watch() && r.path.ends_with("/virtualservices"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        lists,
        [
            "/apis/networking.istio.io/v1/namespaces/aks-istio-egress/virtualservices",
            "/apis/networking.istio.io/v1/namespaces/aks-istio-system/virtualservices",
            "/apis/networking.istio.io/v1/namespaces/apps/virtualservices",
        ]
    );
}

#[tokio::test]
async fn changes_move_the_generation_and_selectors_keep_other_objects_out() {
    let server = MockApiServer::start().unwrap();
    server
        .put(service_entry("apps", "before", "before.example.com"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = start(&server, &dir, &scope()).await;
    let g0 = source.snapshot().generation;
    assert_eq!(snapshot_names(&source, "ServiceEntry"), ["before"]);

    server
        .put(service_entry("apps", "after", "after.example.com"))
        .unwrap();
    // A ConfigMap of another name and a Secret elsewhere are outside the watches.
    server
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"namespace": ROOT, "name": "unrelated"}, "data": {}}))
        .unwrap();
    server
        .put(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"namespace": "apps", "name": "other"}, "data": {}}))
        .unwrap();
    server
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"namespace": ROOT, "name": "istio-shared-configmap-asm-1-24"},
                    "data": {"mesh": "accessLogFile: /dev/stdout\n"}}))
        .unwrap();
    wait_objects(&source, "after and the mesh config", |o| {
        names(o, "ServiceEntry") == ["after", "before"]
            && names(o, "ConfigMap") == ["istio-shared-configmap-asm-1-24"]
    })
    .await;
    let snap = source.snapshot();
    assert!(snap.generation >= g0 + 2, "{} -> {}", g0, snap.generation);
    assert!(
        names(
            &snap
                .objects
                .iter()
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>(),
            "Secret"
        )
        .is_empty()
    );
    // Objects carry apiVersion and kind, as the decoder needs.
    for (_, v) in &snap.objects {
        assert!(v["apiVersion"].is_string() && v["kind"].is_string(), "{v}");
    }

    server.delete(
        "networking.istio.io/v1",
        "ServiceEntry",
        Some("apps"),
        "before",
    );
    wait_objects(&source, "before deleted", |o| {
        names(o, "ServiceEntry") == ["after"]
    })
    .await;
}

#[tokio::test]
async fn a_dropped_watch_resumes_from_the_last_resource_version_without_relisting() {
    let server = MockApiServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = start(&server, &dir, &scope()).await;
    let n = scope::plan(&scope()).len();
    server.wait_for_watches(n, WAIT).await.unwrap();
    let stored = server
        .put(service_entry("apps", "one", "one.example.com"))
        .unwrap();
    let rv = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_objects(&source, "one", |o| names(o, "ServiceEntry") == ["one"]).await;
    let lists_before = server.requests().iter().filter(|r| !r.is_watch()).count();

    server.clear_requests();
    server.drop_watches();
    let rewatch = server
        .wait_for_requests(1, WAIT, |r| r.path == SE_PATH && r.is_watch())
        .await
        .unwrap();
    assert_eq!(rewatch[0].param("resourceVersion"), Some(rv.as_str()));
    server
        .wait_for_requests(n, WAIT, ApiRequest::is_watch)
        .await
        .unwrap();
    server.wait_for_watches(n, WAIT).await.unwrap();

    server
        .put(service_entry("apps", "two", "two.example.com"))
        .unwrap();
    wait_objects(&source, "two after the reconnect", |o| {
        names(o, "ServiceEntry") == ["one", "two"]
    })
    .await;
    let relists: Vec<ApiRequest> = server
        .requests()
        .into_iter()
        .filter(|r| !r.is_watch())
        .collect();
    assert!(
        relists.is_empty(),
        "no relist after a dropped watch: {relists:#?}"
    );
    assert!(lists_before >= n);
}

#[tokio::test]
async fn gone_relists_and_drops_what_was_deleted_while_away() {
    let server = MockApiServer::start().unwrap();
    for name in ["keep", "gone"] {
        server
            .put(service_entry("apps", name, &format!("{name}.example.com")))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let source = start(&server, &dir, &scope()).await;
    let n = scope::plan(&scope()).len();
    server.wait_for_watches(n, WAIT).await.unwrap();
    assert_eq!(snapshot_names(&source, "ServiceEntry"), ["gone", "keep"]);

    // Keep the ServiceEntry watch away: its reconnects fail until the history it needs is
    // compacted away, then it is answered 410 Gone.
    server.fail(Failure::new(
        "GET",
        SE_PATH,
        503,
        "ServiceUnavailable",
        "away",
    ));
    server.clear_requests();
    server.drop_watches();
    server
        .wait_for_requests(1, WAIT, |r| r.path == SE_PATH && r.is_watch())
        .await
        .unwrap();
    server.wait_for_watches(n - 1, WAIT).await.unwrap();
    server.delete(
        "networking.istio.io/v1",
        "ServiceEntry",
        Some("apps"),
        "gone",
    );
    server
        .put(service_entry("apps", "new", "new.example.com"))
        .unwrap();
    server.compact(server.resource_version());
    let g = source.snapshot().generation;
    assert_eq!(
        snapshot_names(&source, "ServiceEntry"),
        ["gone", "keep"],
        "the last listed state keeps serving while away"
    );
    server.clear_failures();

    wait_objects(&source, "relisted state", |o| {
        names(o, "ServiceEntry") == ["keep", "new"]
    })
    .await;
    let se: Vec<ApiRequest> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == SE_PATH)
        .collect();
    let relist = se
        .iter()
        .position(|r| !r.is_watch())
        .unwrap_or_else(|| panic!("no relist: {se:#?}"));
    assert!(
        relist > 0,
        "a watch came first and was answered 410: {se:#?}"
    );
    assert_eq!(se[relist].param("resourceVersion"), None);
    // One atomic replace: the relisted state appears in one step.
    assert_eq!(source.snapshot().generation, g + 1);
}
