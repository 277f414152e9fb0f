//! Tests of the mock API server over real HTTP (hyper's client).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::*;

const PATIENCE: Duration = Duration::from_secs(30);

async fn request(
    server: &MockApiServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Value>,
) -> http::Response<Incoming> {
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", server.addr().to_string());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    sender
        .send_request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap()
}

async fn call(
    server: &MockApiServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let response = request(server, method, path, content_type, body).await;
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap())
}

/// Reads a watch response line by line.
struct Events {
    body: Incoming,
    buf: Vec<u8>,
}

impl Events {
    async fn open(server: &MockApiServer, path: &str) -> Events {
        let response = request(server, "GET", path, None, None).await;
        assert_eq!(response.status(), 200);
        Events {
            body: response.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        let read = async {
            loop {
                if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=at).collect();
                    return Some(serde_json::from_slice(&line).unwrap());
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    _ => return None,
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("watch event")
    }
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "ns", "labels": labels}, "data": {"k": name}})
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lists_with_selectors_and_pages() {
    let server = MockApiServer::start().unwrap();
    server.put(cm("a", json!({"app": "x"}))).unwrap();
    server.put(cm("b", json!({"app": "y"}))).unwrap();
    server.put(cm("c", json!({"app": "x"}))).unwrap();

    let (code, list) = call(
        &server,
        "GET",
        "/api/v1/namespaces/ns/configmaps?labelSelector=app%3Dx",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(names(&list), ["a", "c"]);

    let (_, list) = call(
        &server,
        "GET",
        "/api/v1/configmaps?fieldSelector=metadata.name%21%3Da",
        None,
        None,
    )
    .await;
    assert_eq!(names(&list), ["b", "c"]);

    let (_, page) = call(
        &server,
        "GET",
        "/api/v1/namespaces/ns/configmaps?limit=2",
        None,
        None,
    )
    .await;
    assert_eq!(names(&page), ["a", "b"]);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, page) = call(
        &server,
        "GET",
        &format!("/api/v1/namespaces/ns/configmaps?limit=2&continue={token}"),
        None,
        None,
    )
    .await;
    assert_eq!(names(&page), ["c"]);
    assert!(page["metadata"].get("continue").is_none());

    let (code, status) = call(
        &server,
        "GET",
        "/api/v1/namespaces/ns/configmaps/zz",
        None,
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "configmaps \"zz\" not found");
    assert_eq!(status["reason"], "NotFound");
    let (code, _) = call(&server, "GET", "/apis/nope/v1/things", None, None).await;
    assert_eq!(code, 404);

    let logged = server.requests();
    assert_eq!(logged[0].method, "GET");
    assert_eq!(logged[0].path, "/api/v1/namespaces/ns/configmaps");
    assert_eq!(logged[0].param("labelSelector"), Some("app=x"));
}

#[tokio::test]
async fn server_side_apply_creates_then_replaces_keeping_status() {
    let server = MockApiServer::start().unwrap();
    let path = "/apis/apps/v1/namespaces/gw/deployments/d?fieldManager=egress&force=true";
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "gw", "labels": {"a": "1"}}, "spec": {"replicas": 2}});

    let (code, status) = call(
        &server,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(deployment.clone()),
    )
    .await;
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["message"], "namespaces \"gw\" not found");

    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gw"}}))
        .unwrap();
    let (code, created) = call(
        &server,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(deployment.clone()),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "egress");
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );
    let uid = created["metadata"]["uid"].clone();
    assert!(created["metadata"]["creationTimestamp"].is_string());

    server
        .set_status(
            "apps/v1",
            "Deployment",
            Some("gw"),
            "d",
            json!({"readyReplicas": 2}),
        )
        .unwrap();
    let (code, same) = call(
        &server,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(deployment.clone()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(same["metadata"]["generation"], 1);
    assert_eq!(same["status"]["readyReplicas"], 2);

    let mut changed = deployment.clone();
    changed["spec"]["replicas"] = json!(3);
    changed["metadata"]["labels"] = json!({"b": "2"});
    let (_, updated) = call(
        &server,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(changed),
    )
    .await;
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["metadata"]["uid"], uid);
    assert_eq!(updated["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(updated["status"]["readyReplicas"], 2);
    assert_eq!(
        server
            .get("apps/v1", "Deployment", Some("gw"), "d")
            .unwrap(),
        updated
    );

    let (code, status) = call(
        &server,
        "PATCH",
        "/apis/apps/v1/namespaces/gw/deployments/d",
        Some("application/apply-patch+yaml"),
        Some(deployment.clone()),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (400, Some("PATCH, with apply type, requires a fieldManager"))
    );
    let (code, _) = call(
        &server,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        Some(json!([])),
    )
    .await;
    assert_eq!(code, 415);
    let mut renamed = deployment;
    renamed["metadata"]["name"] = json!("other");
    let (code, status) = call(
        &server,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        Some(renamed),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "the name of the object (other) does not match the name on the URL (d)"
    );

    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.param("fieldManager"), Some("egress"));
    assert_eq!(patch.param("force"), Some("true"));
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(patch.json().unwrap()["spec"]["replicas"], 2);
}

#[tokio::test]
async fn create_replace_merge_delete_and_failures() {
    let server = MockApiServer::start().unwrap();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}});
    let (code, _) = call(
        &server,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(ns.clone()),
    )
    .await;
    assert_eq!(code, 201);
    let (code, status) = call(
        &server,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(ns),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(status["message"], "namespaces \"ns\" already exists");

    let (_, created) = call(
        &server,
        "POST",
        "/api/v1/namespaces/ns/configmaps",
        Some("application/json"),
        Some(cm("a", json!({}))),
    )
    .await;
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, _) = call(
        &server,
        "PUT",
        "/api/v1/namespaces/ns/configmaps/a",
        Some("application/json"),
        Some(stale),
    )
    .await;
    assert_eq!(code, 409);
    let (code, merged) = call(
        &server,
        "PATCH",
        "/api/v1/namespaces/ns/configmaps/a",
        Some("application/merge-patch+json"),
        Some(json!({"data": {"z": "1"}})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(merged["data"], json!({"k": "a", "z": "1"}));

    server.fail(
        Failure::new(
            "DELETE",
            "/api/v1/namespaces/ns/configmaps/a",
            403,
            "Forbidden",
            "nope",
        )
        .once(),
    );
    let (code, status) = call(
        &server,
        "DELETE",
        "/api/v1/namespaces/ns/configmaps/a",
        None,
        None,
    )
    .await;
    assert_eq!((code, status["message"].as_str()), (403, Some("nope")));
    let (code, deleted) = call(
        &server,
        "DELETE",
        "/api/v1/namespaces/ns/configmaps/a",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(deleted["metadata"]["name"], "a");
    let (code, _) = call(
        &server,
        "DELETE",
        "/api/v1/namespaces/ns/configmaps/a",
        None,
        None,
    )
    .await;
    assert_eq!(code, 404);

    server.put(cm("b", json!({}))).unwrap();
    server.delete("v1", "Namespace", None, "ns").unwrap();
    assert!(server.list("v1", "ConfigMap", None).is_empty());
}

#[tokio::test]
async fn discovery_lists_registered_types() {
    let server = MockApiServer::start().unwrap();
    server.register(ResourceType::new(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        false,
    ));
    let (_, groups) = call(&server, "GET", "/apis", None, None).await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"apps") && names.contains(&"example.com"),
        "{names:?}"
    );
    let (_, resources) = call(&server, "GET", "/apis/example.com/v1", None, None).await;
    assert_eq!(resources["resources"][0]["kind"], "Widget");
    assert_eq!(resources["resources"][0]["namespaced"], false);
    let (code, _) = call(
        &server,
        "POST",
        "/apis/example.com/v1/widgets",
        Some("application/json"),
        Some(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})),
    )
    .await;
    assert_eq!(code, 201);
    assert!(server.get("example.com/v1", "Widget", None, "w").is_some());
}

#[tokio::test]
async fn watch_replays_streams_selects_and_bookmarks() {
    let server = MockApiServer::start().unwrap();
    server.put(cm("a", json!({"app": "x"}))).unwrap();
    let start = server.resource_version();

    let mut all = Events::open(
        &server,
        "/api/v1/namespaces/ns/configmaps?watch=true&allowWatchBookmarks=true",
    )
    .await;
    let first = all.next().await.unwrap();
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a"))
    );

    let mut selected = Events::open(
        &server,
        &format!(
            "/api/v1/namespaces/ns/configmaps?watch=1&labelSelector=app%3Dx&resourceVersion={start}"
        ),
    )
    .await;
    server.wait_for_watches(2, PATIENCE).await.unwrap();

    server.put(cm("a", json!({"app": "y"}))).unwrap();
    server.put(cm("b", json!({"app": "x"}))).unwrap();
    server.delete("v1", "ConfigMap", Some("ns"), "b").unwrap();
    server.send_bookmarks();

    let seen: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let e = all.next().await.unwrap();
            v.push((
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        v
    };
    assert_eq!(
        seen,
        [
            ("MODIFIED".into(), "a".into()),
            ("ADDED".into(), "b".into()),
            ("DELETED".into(), "b".into()),
            ("BOOKMARK".into(), String::new())
        ]
    );

    let left = selected.next().await.unwrap();
    assert_eq!(
        (
            left["type"].as_str(),
            left["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("a"))
    );
    let added = selected.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    let deleted = selected.next().await.unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(
        deleted["object"]["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );

    server.drop_watches();
    assert!(all.next().await.is_none());
    assert!(selected.next().await.is_none());
    server.wait_for_watches_blocking(0, PATIENCE).ok();
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410() {
    let server = MockApiServer::start().unwrap();
    server.put(cm("a", json!({}))).unwrap();
    let old = server.resource_version();
    server.put(cm("a", json!({"v": "2"}))).unwrap();
    server.compact(server.resource_version());

    let mut events = Events::open(
        &server,
        &format!("/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion={old}"),
    )
    .await;
    let error = events.next().await.unwrap();
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert_eq!(error["object"]["kind"], "Status");
    assert_eq!(
        error["object"]["message"],
        format!(
            "too old resource version: {old} ({})",
            server.resource_version()
        )
    );
    assert!(events.next().await.is_none());

    let mut initial = Events::open(&server, "/api/v1/namespaces/ns/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true").await;
    assert_eq!(initial.next().await.unwrap()["type"], "ADDED");
    let end = initial.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[test]
fn blocking_waits_and_kubeconfig() {
    let server = MockApiServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path()).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(&format!("server: {}", server.url())));
    assert!(text.contains("current-context: mock"));
    let err = server
        .wait_for_requests_blocking(1, Duration::from_millis(10), |_| true)
        .unwrap_err();
    assert!(err.to_string().contains("1 matching API requests"));
}
