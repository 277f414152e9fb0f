//! A mock Kubernetes API server on `127.0.0.1:0`, speaking the API's JSON over plain HTTP, for
//! tests of Kubernetes clients (kube's `Api`, `watcher`, server-side apply) that must pin the
//! exact requests and drive the server's side of list/watch.
//!
//! # Serving
//! [`MockApiServer::start`] binds a port and serves from its own thread (so it works from
//! synchronous tests and from any tokio runtime); dropping the handle stops it.
//! [`MockApiServer::write_kubeconfig`] writes a kubeconfig with one cluster `mock` at
//! `http://127.0.0.1:<port>`, context `mock` (namespace `default`) and a token user `mock`.
//!
//! Objects live per resource type ([`ResourceType`]: group, version, kind, plural, scope);
//! the common core, apps, autoscaling, policy, RBAC, Istio and StaticGatewayConfiguration
//! types are registered, others with [`MockApiServer::register`]. One global resourceVersion
//! increases with every write. Paths are the API's: `/api/v1/namespaces/{ns}/{plural}[/{name}
//! [/status]]`, `/apis/{group}/{version}/...`, cluster-scoped and all-namespaces forms, plus
//! discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`).
//!
//! * LIST: `{"kind":"<Kind>List","apiVersion":..,"metadata":{"resourceVersion":..},"items":[..]}`,
//!   honouring `labelSelector` (`=`, `==`, `!=`, exists, `!key`, `in`, `notin`), `fieldSelector`
//!   (`metadata.name`, `metadata.namespace`) and `limit`/`continue`.
//! * WATCH (`?watch=true`): one JSON event per line. From `resourceVersion` `""`/`"0"` (or with
//!   `sendInitialEvents=true`) the current objects come first as ADDED (then, for
//!   `sendInitialEvents`, a BOOKMARK annotated `k8s.io/initial-events-end: "true"`); from a
//!   resourceVersion N, the retained events after N. Then live ADDED/MODIFIED/DELETED events
//!   (an object entering or leaving the selectors shows as ADDED/DELETED). With
//!   `allowWatchBookmarks=true`, [`MockApiServer::send_bookmarks`] sends BOOKMARKs. A watch
//!   from a resourceVersion older than the oldest retained one gets one `ERROR` event whose
//!   object is a `Status` with code 410, reason `Expired`, message `too old resource version:
//!   N (M)`, and the stream ends, as the real API server does. `timeoutSeconds` ends the stream.
//! * GET, POST (create, 409 `AlreadyExists`), PUT (replace, 409 on a stale resourceVersion),
//!   DELETE (returns the object; deleting a Namespace deletes what is in it).
//! * PATCH with `application/apply-patch+yaml` (server-side apply; the body must be JSON, which
//!   is YAML; `fieldManager` is required): creates the object or replaces its fields with the
//!   applied ones, keeping `status`; sets resourceVersion, uid, creationTimestamp, generation
//!   (bumped when anything outside metadata and status changes) and a managedFields entry per
//!   manager. Field ownership conflicts are not modelled: `force` is only recorded.
//!   `application/merge-patch+json` and `application/strategic-merge-patch+json` are applied
//!   as RFC 7386 merge patches. The `/status` subresource takes GET, PUT and PATCH.
//! * Creating a namespaced object in a Namespace that does not exist is refused with 404
//!   `namespaces "x" not found`, as the real server does.
//! * Errors are `Status` objects with the real server's codes, reasons and messages.
//!
//! # Controls for tests
//! [`put`](MockApiServer::put), [`delete`](MockApiServer::delete) and
//! [`set_status`](MockApiServer::set_status) write objects directly (events reach open
//! watches); [`get`](MockApiServer::get) and [`list`](MockApiServer::list) read them;
//! [`drop_watches`](MockApiServer::drop_watches) ends every open watch stream;
//! [`compact`](MockApiServer::compact) forgets the history before a resourceVersion, so a
//! watch resuming from older gets 410 Gone; [`fail`](MockApiServer::fail) answers matching
//! requests with an error. Every request is logged ([`ApiRequest`]: method, path, decoded
//! query, content type, body) for tests to pin; the waits
//! ([`wait_for_requests`](MockApiServer::wait_for_requests),
//! [`wait_for_watches`](MockApiServer::wait_for_watches) and their blocking forms) are woken by
//! each change, never by polling.

#[cfg(test)]
mod kube_tests;
mod select;
mod serve;
mod store;
mod support;
#[cfg(test)]
mod tests;
mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::wait::TimedOut;
use crate::{Error, Result, io_err};
use store::State;
pub use types::ResourceType;
use types::builtin_types;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query's pairs, percent-decoded, in order (empty components skipped).
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl ApiRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Whether this is a watch (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch"), Some("true" | "1"))
    }
}

/// An injected failure: requests whose method matches (`*` for any) and whose path starts
/// with `path_prefix` are answered with a `Status` of `code`, `reason` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Method to match, or `*`.
    pub method: String,
    /// Path prefix to match.
    pub path_prefix: String,
    /// HTTP status code.
    pub code: u16,
    /// The Status reason (`Forbidden`, `Invalid`, ...).
    pub reason: String,
    /// The Status message.
    pub message: String,
    /// Only the next matching request fails.
    pub once: bool,
}

impl Failure {
    /// A failure of every matching request until [`MockApiServer::clear_failures`].
    pub fn new(method: &str, path_prefix: &str, code: u16, reason: &str, message: &str) -> Self {
        Failure {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            code,
            reason: reason.to_string(),
            message: message.to_string(),
            once: false,
        }
    }

    /// Fails only the next matching request.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// State shared by the handle, the connections and the watch streams.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    changed: watch::Sender<u64>,
    addr: SocketAddr,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes watches and waiters after a change.
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        self.cond.notify_all();
    }

    /// Runs `f` on the state, then wakes everyone.
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.bump();
        out
    }
}

/// The mock API server. Stops when dropped.
#[derive(Debug)]
pub struct MockApiServer {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for MockApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn object_error(e: store::ApiError) -> Error {
    Error::Io {
        context: "mock API server".to_string(),
        source: std::io::Error::other(e.message),
    }
}

impl MockApiServer {
    /// Binds `127.0.0.1:0` and serves from a thread of its own.
    pub fn start() -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(io_err("binding the mock API server"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("configuring the mock API server's socket"))?;
        let addr = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(builtin_types())),
            cond: Condvar::new(),
            changed: watch::Sender::new(0),
            addr,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("starting the mock API server's runtime"))?;
        let (tx, rx) = oneshot::channel();
        let serving = shared.clone();
        let thread = thread::Builder::new()
            .name("mock-apiserver".into())
            .spawn(move || runtime.block_on(serve::serve(listener, serving, rx)))
            .map_err(io_err("spawning the mock API server's thread"))?;
        Ok(MockApiServer {
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Writes `<dir>/kubeconfig`: cluster `mock` at [`url`](Self::url), context `mock`
    /// (namespace `default`), user `mock` with a bearer token; returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster:\n    server: {}\n\
             contexts:\n- name: mock\n  context:\n    cluster: mock\n    namespace: default\n    user: mock\n\
             current-context: mock\nusers:\n- name: mock\n  user:\n    token: mock-token\n",
            self.url()
        );
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Serves another resource type.
    pub fn register(&self, ty: ResourceType) {
        self.shared.update(|s| {
            s.types.retain(|t| {
                !(t.group == ty.group && t.version == ty.version && t.plural == ty.plural)
            });
            s.types.push(ty);
        });
    }

    fn type_of(&self, api_version: &str, kind: &str) -> Result<ResourceType> {
        self.shared
            .lock()
            .type_of(api_version, kind)
            .ok_or_else(|| Error::Io {
                context: "mock API server".to_string(),
                source: std::io::Error::other(format!(
                    "no resource type registered for {api_version} {kind}"
                )),
            })
    }

    /// Creates or replaces `object` (its apiVersion, kind, metadata.name and, for namespaced
    /// kinds, metadata.namespace, `default` when absent), status included; returns it as
    /// stored. Open watches see the event.
    pub fn put(&self, object: Value) -> Result<Value> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let ty = self.type_of(api_version, kind)?;
        self.shared
            .update(|s| s.put(&ty, object))
            .map_err(object_error)
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let ty = self.type_of(api_version, kind).ok()?;
        self.shared.lock().get(&ty, namespace, name)
    }

    /// The stored objects of a kind, in a namespace or everywhere.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        match self.type_of(api_version, kind) {
            Ok(ty) => self.shared.lock().list(&ty, namespace, &Default::default()),
            Err(_) => Vec::new(),
        }
    }

    /// Deletes an object; returns it, if it existed.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let ty = self.type_of(api_version, kind).ok()?;
        self.shared.update(|s| s.remove(&ty, namespace, name))
    }

    /// Replaces an object's `status` (a controller's write; e.g. a Deployment's
    /// `readyReplicas`); returns the object.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<Value> {
        let ty = self.type_of(api_version, kind)?;
        self.shared
            .update(|s| s.set_status(&ty, namespace, name, status))
            .map_err(object_error)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Forgets the history before `before`: a watch resuming from an older resourceVersion
    /// gets 410 Gone. `before` may exceed the current resourceVersion; the counter then jumps
    /// there, as if other resources had been written meanwhile.
    pub fn compact(&self, before: u64) {
        self.shared.update(|s| {
            s.rv = s.rv.max(before);
            s.compact(before);
        });
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.shared.update(|s| s.drop_generation += 1);
    }

    /// Sends a BOOKMARK at the current resourceVersion to every watch that allows them.
    pub fn send_bookmarks(&self) {
        self.shared.update(|s| s.bookmark_generation += 1);
    }

    /// Answers matching requests with an error until cleared (or once).
    pub fn fail(&self, failure: Failure) {
        self.shared.update(|s| s.failures.push(failure));
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        self.shared.update(|s| s.failures.clear());
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the logged requests.
    pub fn clear_requests(&self) {
        self.shared.update(|s| s.requests.clear());
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().open_watches
    }

    /// Waits until `pred` holds for the state, woken by each change.
    async fn wait<T>(
        &self,
        timeout: Duration,
        what: String,
        mut f: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, TimedOut> {
        let mut rx = self.shared.changed.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                if let Some(out) = f(&self.shared.lock()) {
                    return Some(out);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(out)) => Ok(out),
            _ => Err(TimedOut {
                what,
                after: timeout,
            }),
        }
    }

    /// The blocking form of [`wait`](Self::wait), for synchronous tests.
    fn wait_blocking<T>(
        &self,
        timeout: Duration,
        what: String,
        mut f: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, TimedOut> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(out) = f(&state) {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TimedOut {
                    what,
                    after: timeout,
                });
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until at least `n` logged requests satisfy `pred`; returns those.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&ApiRequest) -> bool,
    ) -> Result<Vec<ApiRequest>, TimedOut> {
        self.wait(timeout, format!("{n} matching API requests"), |s| {
            matching(s, n, &pred)
        })
        .await
    }

    /// The blocking form of [`wait_for_requests`](Self::wait_for_requests).
    pub fn wait_for_requests_blocking(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&ApiRequest) -> bool,
    ) -> Result<Vec<ApiRequest>, TimedOut> {
        self.wait_blocking(timeout, format!("{n} matching API requests"), |s| {
            matching(s, n, &pred)
        })
    }

    /// Waits until at least `n` watch streams are open.
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) -> Result<(), TimedOut> {
        self.wait(timeout, format!("{n} open watches"), |s| {
            (s.open_watches >= n).then_some(())
        })
        .await
    }

    /// The blocking form of [`wait_for_watches`](Self::wait_for_watches).
    pub fn wait_for_watches_blocking(&self, n: usize, timeout: Duration) -> Result<(), TimedOut> {
        self.wait_blocking(timeout, format!("{n} open watches"), |s| {
            (s.open_watches >= n).then_some(())
        })
    }
}

fn matching(
    state: &State,
    n: usize,
    pred: &impl Fn(&ApiRequest) -> bool,
) -> Option<Vec<ApiRequest>> {
    let found: Vec<ApiRequest> = state.requests.iter().filter(|r| pred(r)).cloned().collect();
    (found.len() >= n).then_some(found)
}
