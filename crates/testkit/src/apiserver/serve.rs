//! The mock API server's HTTP side: the accept loop, routing of API paths to resource types,
//! the verbs, discovery, and watch streams fed from the retained history.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::select::{FieldSelector, LabelSelector, Selectors, parse_query};
use super::store::{ApiError, State};
use super::{ApiRequest, ResourceType, Shared};

type ResBody = BoxBody<Bytes, Infallible>;

/// Serves until `shutdown` fires.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A response body fed by a channel: a watch stream.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn json_response(code: u16, value: &Value) -> Response<ResBody> {
    let body = Full::new(Bytes::from(value.to_string())).boxed();
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(e: &ApiError) -> Response<ResBody> {
    json_response(e.code, &e.status())
}

/// Where a path points.
enum Route {
    Version,
    CoreVersions,
    Groups,
    GroupVersion(String, String),
    Collection(ResourceType, Option<String>),
    Object(ResourceType, Option<String>, String, Option<String>),
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn route(state: &State, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), (*v).to_string())),
        ["apis", g, v] => return Ok(Route::GroupVersion((*g).to_string(), (*v).to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let namespaced = match rest {
        ["namespaces", _, plural, ..] => state
            .type_at(group, version, plural)
            .filter(|t| t.namespaced),
        _ => None,
    };
    let (ty, ns, rest) = match (namespaced, rest) {
        (Some(ty), ["namespaces", ns, _, rest @ ..]) => (ty, Some((*ns).to_string()), rest),
        (_, [plural, rest @ ..]) => (
            state
                .type_at(group, version, plural)
                .ok_or_else(not_found_path)?,
            None,
            rest,
        ),
        _ => return Err(not_found_path()),
    };
    match rest {
        [] => Ok(Route::Collection(ty, ns)),
        [name] => Ok(Route::Object(ty, ns, (*name).to_string(), None)),
        [name, sub] => Ok(Route::Object(
            ty,
            ns,
            (*name).to_string(),
            Some((*sub).to_string()),
        )),
        _ => Err(not_found_path()),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResBody> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let request = ApiRequest {
        method,
        path,
        query,
        content_type,
        body,
    };
    let failure = shared.update(|s| {
        s.requests.push(request.clone());
        let at = s
            .failures
            .iter()
            .position(|f| f.matches(&request.method, &request.path))?;
        let failure = if s.failures[at].once {
            s.failures.remove(at)
        } else {
            s.failures[at].clone()
        };
        Some(failure)
    });
    if let Some(f) = failure {
        return error_response(&ApiError::new(f.code, &f.reason, f.message));
    }
    match dispatch(&shared, &request) {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Watch(watch)) => start_watch(shared, watch),
        Err(e) => error_response(&e),
    }
}

enum Reply {
    Json(u16, Value),
    Watch(WatchRequest),
}

struct WatchRequest {
    ty: ResourceType,
    ns: Option<String>,
    selectors: Selectors,
    from: Option<u64>,
    initial_events: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
}

fn selectors(req: &ApiRequest) -> Result<Selectors, ApiError> {
    let labels = LabelSelector::parse(req.param("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(req.param("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok(Selectors { labels, fields })
}

fn body_json(req: &ApiRequest) -> Result<Value, ApiError> {
    serde_json::from_str(&req.body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format (the mock API server reads JSON): {e}"
        ))
    })
}

fn manager(req: &ApiRequest) -> String {
    req.param("fieldManager").unwrap_or("unknown").to_string()
}

fn dispatch(shared: &Shared, req: &ApiRequest) -> Result<Reply, ApiError> {
    let mut state = shared.lock();
    let route = route(&state, &req.path)?;
    let method = req.method.as_str();
    let reply = match (method, route) {
        ("GET", Route::Version) => Reply::Json(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-mock", "platform": "linux/amd64"}),
        ),
        ("GET", Route::CoreVersions) => Reply::Json(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        ("GET", Route::Groups) => Reply::Json(200, groups(&state)),
        ("GET", Route::GroupVersion(group, version)) => {
            Reply::Json(200, resources(&state, &group, &version)?)
        }
        ("GET", Route::Collection(ty, ns)) => {
            let selectors = selectors(req)?;
            if req.is_watch() {
                let from = match req.param("resourceVersion").unwrap_or("") {
                    "" | "0" => None,
                    rv => Some(rv.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {rv}"))
                    })?),
                };
                let timeout = req
                    .param("timeoutSeconds")
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(Duration::from_secs);
                Reply::Watch(WatchRequest {
                    ty,
                    ns,
                    selectors,
                    from,
                    initial_events: req.param("sendInitialEvents") == Some("true"),
                    bookmarks: req.param("allowWatchBookmarks") == Some("true"),
                    timeout,
                })
            } else {
                Reply::Json(200, list(&state, req, &ty, ns.as_deref(), &selectors)?)
            }
        }
        ("GET", Route::Object(ty, ns, name, _)) => Reply::Json(
            200,
            state
                .get(&ty, ns.as_deref(), &name)
                .ok_or_else(|| ApiError::not_found(&ty, &name))?,
        ),
        ("POST", Route::Collection(ty, ns)) => {
            if ty.namespaced && ns.is_none() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ));
            }
            let body = body_json(req)?;
            Reply::Json(201, state.create(&ty, ns.as_deref(), body, &manager(req))?)
        }
        ("PUT", Route::Object(ty, ns, name, sub)) => {
            let body = body_json(req)?;
            let object = if sub.as_deref() == Some("status") {
                let status = body.get("status").cloned().unwrap_or(Value::Null);
                state.set_status(&ty, ns.as_deref(), &name, status)?
            } else {
                state.replace(&ty, ns.as_deref(), &name, body, &manager(req))?
            };
            Reply::Json(200, object)
        }
        ("PATCH", Route::Object(ty, ns, name, sub)) => {
            patch(&mut state, req, &ty, ns.as_deref(), &name, sub.as_deref())?
        }
        ("DELETE", Route::Object(ty, ns, name, None)) => Reply::Json(
            200,
            state
                .remove(&ty, ns.as_deref(), &name)
                .ok_or_else(|| ApiError::not_found(&ty, &name))?,
        ),
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    drop(state);
    shared.bump();
    Ok(reply)
}

fn patch(
    state: &mut State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
) -> Result<Reply, ApiError> {
    let content_type = req.content_type.as_deref().unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let body = body_json(req)?;
    let manager = manager(req);
    match (media, sub) {
        ("application/apply-patch+yaml", _) if req.param("fieldManager").is_none() => Err(
            ApiError::bad_request("PATCH, with apply type, requires a fieldManager"),
        ),
        ("application/apply-patch+yaml", None) => {
            let (object, created) = state.apply(ty, ns, name, body, &manager)?;
            Ok(Reply::Json(if created { 201 } else { 200 }, object))
        }
        (
            "application/apply-patch+yaml"
            | "application/merge-patch+json"
            | "application/strategic-merge-patch+json",
            Some("status"),
        ) => {
            let old = state
                .get(ty, ns, name)
                .ok_or_else(|| ApiError::not_found(ty, name))?;
            let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
            if let Some(patch) = body.get("status") {
                super::support::merge(&mut status, patch);
            }
            Ok(Reply::Json(200, state.set_status(ty, ns, name, status)?))
        }
        ("application/merge-patch+json" | "application/strategic-merge-patch+json", None) => Ok(
            Reply::Json(200, state.merge_patch(ty, ns, name, &body, &manager)?),
        ),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )),
    }
}

fn list(
    state: &State,
    req: &ApiRequest,
    ty: &ResourceType,
    ns: Option<&str>,
    selectors: &Selectors,
) -> Result<Value, ApiError> {
    let items = state.list(ty, ns, selectors);
    let offset = match req.param("continue").filter(|c| !c.is_empty()) {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("continue key is not valid: {token}")))?,
        None => 0,
    };
    let limit = req
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let total = items.len();
    let end = limit.map_or(total, |l| (offset + l).min(total));
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    let mut metadata = json!({"resourceVersion": state.rv.to_string()});
    if end < total {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(total - end);
    }
    Ok(json!({
        "kind": format!("{}List", ty.kind),
        "apiVersion": ty.api_version(),
        "metadata": metadata,
        "items": page,
    }))
}

fn groups(state: &State) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in state.types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => {
                versions.push(t.version.clone())
            }
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let gv: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            let preferred = gv.first().cloned().unwrap_or(Value::Null);
            json!({"name": name, "versions": gv, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resources(state: &State, group: &str, version: &str) -> Result<Value, ApiError> {
    let resources: Vec<Value> = state
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .map(|t| {
            json!({
                "name": t.plural,
                "singularName": t.kind.to_lowercase(),
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    if resources.is_empty() {
        return Err(not_found_path());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": event_type, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(ty: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": ty.kind, "apiVersion": ty.api_version(), "metadata": metadata}),
    )
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    line(
        "ERROR",
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("too old resource version: {requested} ({oldest})"),
            "reason": "Expired",
            "code": 410,
        }),
    )
}

/// Decrements the open-watch count when a watch stream ends.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0
            .update(|s| s.open_watches = s.open_watches.saturating_sub(1));
    }
}

fn start_watch(shared: Arc<Shared>, watch: WatchRequest) -> Response<ResBody> {
    let (tx, rx) = mpsc::unbounded_channel();
    shared.update(|s| s.open_watches += 1);
    tokio::spawn(run_watch(OpenWatch(shared), watch, tx));
    let mut response = Response::new(ChannelBody(rx).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn run_watch(open: OpenWatch, watch: WatchRequest, tx: mpsc::UnboundedSender<Bytes>) {
    let shared = open.0.clone();
    let mut changes = shared.changed.subscribe();
    let deadline = watch.timeout.map(|t| tokio::time::Instant::now() + t);
    let ns = watch.ns.as_deref();
    let (drop_generation, mut bookmarks, mut cursor) = {
        let state = shared.lock();
        changes.borrow_and_update();
        let start = (state.drop_generation, state.bookmark_generation);
        let cursor = match watch.from {
            Some(from) if !watch.initial_events => {
                if from < state.compacted {
                    let _ = tx.send(expired(from, state.compacted));
                    return;
                }
                from
            }
            _ => {
                for object in state.list(&watch.ty, ns, &watch.selectors) {
                    let _ = tx.send(line("ADDED", &object));
                }
                if watch.initial_events {
                    let _ = tx.send(bookmark(&watch.ty, state.rv, true));
                }
                state.rv
            }
        };
        (start.0, start.1, cursor)
    };
    loop {
        {
            let state = shared.lock();
            changes.borrow_and_update();
            if state.drop_generation != drop_generation {
                return;
            }
            if cursor < state.compacted {
                let _ = tx.send(expired(cursor, state.compacted));
                return;
            }
            for event in state.events_after(cursor, &watch.ty, ns) {
                if let Some((kind, object)) = event.view(&watch.selectors)
                    && tx.send(line(kind, &object)).is_err()
                {
                    return;
                }
            }
            cursor = state.rv;
            if state.bookmark_generation != bookmarks {
                bookmarks = state.bookmark_generation;
                if watch.bookmarks && tx.send(bookmark(&watch.ty, cursor, false)).is_err() {
                    return;
                }
            }
        }
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = timeout => return,
        }
    }
}
