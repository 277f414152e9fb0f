//! The mock API server with kube's client and watcher, as the code under test uses them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::*;

const PATIENCE: Duration = Duration::from_secs(30);

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "ns", "labels": labels}, "data": {"k": name}})
}

async fn kube_client(server: &MockApiServer, dir: &std::path::Path) -> kube::Client {
    let path = server.write_kubeconfig(dir).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// kube's watcher against the mock: initial list, live events, a dropped watch resumed from
/// the last resourceVersion, and a 410 answered by re-listing.
#[tokio::test]
async fn kube_watcher_resumes_and_relists() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::{self, Event};

    let server = MockApiServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = kube_client(&server, dir.path()).await;
    server.put(cm("a", json!({"app": "x"}))).unwrap();
    server.put(cm("skip", json!({"app": "y"}))).unwrap();

    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "ns");
    let mut stream = watcher::watcher(api, watcher::Config::default().labels("app=x")).boxed();
    let mut next = async || {
        loop {
            let Ok(event) = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .unwrap()
                .unwrap()
            else {
                continue;
            };
            match event {
                Event::Init => {}
                Event::InitApply(cm) => return format!("init {}", cm.metadata.name.unwrap()),
                Event::InitDone => return "init done".to_string(),
                Event::Apply(cm) => return format!("apply {}", cm.metadata.name.unwrap()),
                Event::Delete(cm) => return format!("delete {}", cm.metadata.name.unwrap()),
            }
        }
    };
    assert_eq!(next().await, "init a");
    assert_eq!(next().await, "init done");
    // The watcher opens its watch when polled again; it starts from the list's version, so
    // this write reaches it through the retained history.
    server.put(cm("b", json!({"app": "x"}))).unwrap();
    assert_eq!(next().await, "apply b");

    let resumed_from = server.resource_version().to_string();
    server.drop_watches();
    server.put(cm("c", json!({"app": "x"}))).unwrap();
    assert_eq!(next().await, "apply c");
    let rewatch = server
        .wait_for_requests(2, PATIENCE, |r| r.is_watch())
        .await
        .unwrap();
    assert_eq!(
        rewatch[1].param("resourceVersion"),
        Some(resumed_from.as_str())
    );
    assert_eq!(rewatch[1].param("labelSelector"), Some("app=x"));

    let lists_before = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.is_watch())
        .count();
    server.compact(server.resource_version() + 1);
    server.delete("v1", "ConfigMap", Some("ns"), "b").unwrap();
    server.drop_watches();
    // The watcher's re-list after 410 shows the current state.
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("init done") {
        seen.push(next().await);
    }
    assert_eq!(seen, ["init a", "init c", "init done"]);
    let lists: Vec<ApiRequest> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && !r.is_watch())
        .collect();
    assert_eq!(lists.len(), lists_before + 1);
    assert_eq!(lists[lists.len() - 1].param("labelSelector"), Some("app=x"));
}
