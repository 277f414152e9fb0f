//! The local cluster's Kubernetes API: what `egress up` serves on `https://127.0.0.1:6443` so
//! that the real `kubectl` (and any client-go or kube-rs tool given the kubeconfig) works
//! against the store the local cluster already keeps.
//!
//! Layout: [`path`] parses request paths against the modelled kinds, [`discovery`] and
//! [`openapi`] describe what is served, [`objects`] implements the verbs over the store,
//! [`watch`] streams the change feed, [`table`] prints server-side Tables with `egress get`'s
//! columns, [`admission`] validates every write as `egress apply` does (Istio kinds refused with
//! Istio's webhook message), [`patch`] applies merge and strategic merge patches, [`status`]
//! turns typed failures into `Status` objects, and [`kubeconfig`] merges the `egress` context
//! into the user's kubeconfig.
//!
//! Security: the listener binds loopback addresses only ([`ApiServerError::NotLoopback`]),
//! speaks TLS with a serving certificate from the local cluster's CA, and every request needs
//! the bearer token (401 otherwise, before anything is read). Request bodies are limited to
//! [`MAX_BODY`]; request heads are read within [`HEADER_TIMEOUT`]; connections are capped at
//! [`MAX_CONNECTIONS`].

pub mod admission;
pub mod body;
pub mod discovery;
pub mod exec;
pub mod feed;
pub mod kubeconfig;
pub mod logs;
pub mod managed;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod protobuf;
pub mod pty;
pub mod requestlog;
pub mod status;
pub mod table;
pub mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_store::Store;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch as signal};
use tokio::task::JoinHandle;

use body::Body;
use objects::{PatchType, Query, blocking};
use path::{ResourcePath, Target};
use status::ApiError;

/// Largest request body read (the API server's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a client has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The address is not a loopback address.
    #[error("the Kubernetes API binds loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("binding the Kubernetes API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// What the API server serves with.
pub struct Config {
    /// Where to listen (loopback only).
    pub addr: SocketAddr,
    /// The store.
    pub store: Store,
    /// The TLS configuration (serving certificate).
    pub tls: Arc<rustls::ServerConfig>,
    /// The bearer token every request must carry.
    pub token: String,
    /// Where the Pods' container logs are (`<dir>/<namespace>_<pod>/<container>.log`).
    pub pod_logs: Option<std::path::PathBuf>,
    /// How `kubectl exec` commands run (none: exec is not served).
    pub exec: Option<Arc<dyn exec::Runner>>,
    /// Where each request is recorded (none: not recorded).
    pub request_log: Option<requestlog::RequestLog>,
}

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    stop: signal::Sender<bool>,
    task: JoinHandle<()>,
}

/// Shared state of the request handlers.
struct State {
    store: Store,
    feed: feed::Feed,
    token: String,
    server_address: String,
    pod_logs: Option<std::path::PathBuf>,
    exec: Option<Arc<dyn exec::Runner>>,
    request_log: Option<requestlog::RequestLog>,
}

impl ApiServer {
    /// Binds and starts serving.
    pub async fn start(config: Config) -> Result<ApiServer, ApiServerError> {
        if !config.addr.ip().is_loopback() {
            return Err(ApiServerError::NotLoopback(config.addr));
        }
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| ApiServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let mut tls = (*config.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let state = Arc::new(State {
            feed: feed::Feed::start(&config.store),
            store: config.store,
            token: config.token,
            server_address: addr.to_string(),
            pod_logs: config.pod_logs,
            exec: config.exec,
            request_log: config.request_log,
        });
        let (stop, stopped) = signal::channel(false);
        let task = tokio::spawn(accept_loop(listener, acceptor, state, stopped));
        Ok(ApiServer { addr, stop, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    mut stopped: signal::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let Ok((tcp, _peer)) = accepted else {
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Whether `req` carries the token.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant time in the token's length.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn respond(code: u16, value: &Value, warnings: &[String]) -> Response<Body> {
    let mut resp = Response::new(body::json(value));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        // RFC 9110 quoted-string: `"` and `\` escaped with a backslash, as the API server does.
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!("299 - \"{quoted}\"");
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn failure(e: &ApiError) -> Response<Body> {
    respond(e.code(), &e.status(), &[])
}

async fn handle(req: Request<Incoming>, state: &Arc<State>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let resp = if authorized(&req, &state.token) {
        match route(req, state).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(%method, %uri, error = %e, "kubernetes API request failed");
                failure(&e)
            }
        }
    } else {
        failure(&ApiError::Unauthorized)
    };
    if let Some(log) = &state.request_log {
        log.record(
            method.as_str(),
            &uri.to_string(),
            resp.status().as_u16(),
            &agent,
        );
    }
    resp
}

async fn read_body(req: Request<Incoming>) -> Result<(Bytes, String), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?
        .to_bytes();
    Ok((bytes, content_type))
}

/// A JSON (or YAML, for server-side apply) request body.
fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(bytes).map_err(|e| match e {
            protobuf::ProtoError::Malformed(_) => ApiError::BadRequest(e.to_string()),
            protobuf::ProtoError::Kind(_) | protobuf::ProtoError::Field { .. } => {
                ApiError::UnsupportedMediaType(e.to_string())
            }
        });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("the request body is not UTF-8".into()))?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let mut docs = egress_model::yaml::parse_stream(text).map_err(|e| {
        ApiError::BadRequest(format!("the request body is not valid JSON or YAML: {e}"))
    })?;
    match docs.len() {
        1 => Ok(docs.remove(0).value),
        n => Err(ApiError::BadRequest(format!(
            "the request body holds {n} documents; one object is expected"
        ))),
    }
}

async fn route(req: Request<Incoming>, state: &Arc<State>) -> Result<Response<Body>, ApiError> {
    let target = path::parse(req.uri().path()).map_err(|_| ApiError::NoSuchPath)?;
    let mut query = Query::parse(req.uri().query());
    // A write's field manager: as asked, else the client's program name.
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    query.or_insert("fieldManager", &managed::manager_name(None, agent));
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let ok = |v: Value| Ok(respond(200, &v, &[]));
    match (req.method().clone(), target) {
        (Method::GET, Target::Version) => ok(discovery::version()),
        (Method::GET, Target::CoreVersions | Target::Groups)
            if discovery::aggregated_type(&accept).is_some() =>
        {
            let media = discovery::aggregated_type(&accept).unwrap_or_default();
            let core = req.uri().path().trim_end_matches('/') == "/api";
            let mut resp = respond(200, &discovery::aggregated(core, media), &[]);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
            Ok(resp)
        }
        (Method::GET, Target::CoreVersions) => ok(discovery::core_versions(&state.server_address)),
        (Method::GET, Target::Groups) => ok(discovery::group_list()),
        (Method::GET, Target::Group(g)) => {
            discovery::group(&g).map_or(Err(ApiError::NoSuchPath), ok)
        }
        (Method::GET, Target::Resources { group, version }) => {
            discovery::resource_list(&group, &version).map_or(Err(ApiError::NoSuchPath), ok)
        }
        (Method::GET, Target::OpenApi(rest)) => match rest.as_str() {
            "v3" => ok(openapi::root()),
            gv => gv
                .strip_prefix("v3/")
                .and_then(openapi::document)
                .map_or(Err(ApiError::NoSuchPath), ok),
        },
        (method, Target::Resource(rp)) => resource(req, method, rp, query, &accept, state).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn resource(
    req: Request<Incoming>,
    method: Method,
    rp: ResourcePath,
    query: Query,
    accept: &str,
    state: &Arc<State>,
) -> Result<Response<Body>, ApiError> {
    let store = state.store.clone();
    let table = table::wanted(accept);
    let name = rp.name.clone();
    match (rp.subresource.as_deref(), rp.info.kind, &method, &name) {
        (None | Some("status"), _, _, _) => {}
        (Some("log"), "Pod", &Method::GET, Some(pod)) => {
            let dir = state.pod_logs.clone().ok_or(ApiError::NoSuchPath)?;
            let pod = pod.clone();
            let (file, rp, pod) =
                blocking(move || logs::file(&store, &dir, &rp, &pod, &query).map(|f| (f, rp, pod)))
                    .await?;
            let query = Query::parse(req.uri().query());
            let (tx, body) = body::Stream::channel(16);
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || {
                logs::stream(&store, (&rp, &pod), &file, &query, &tx);
            });
            let mut resp = Response::new(body);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
        (Some("exec"), "Pod", &Method::GET | &Method::POST, Some(pod)) => {
            let runner = state.exec.clone().ok_or(ApiError::NoSuchPath)?;
            let ns = rp.namespace.clone().unwrap_or_else(|| "default".into());
            let request = exec::Request::from_query(&ns, pod, &query, req.uri().query());
            return exec::upgrade(req, request, runner);
        }
        _ => return Err(ApiError::NoSuchPath),
    }
    match (method, name) {
        (Method::GET, _) if query.flag("watch") => {
            let (tx, body) = body::Stream::channel(64);
            let shape = if table {
                watch::Shape::Table
            } else {
                watch::Shape::Object
            };
            let state = Arc::clone(state);
            tokio::spawn(async move {
                if let Err(e) = watch::run(&store, &state.feed, &rp, &query, shape, &tx).await {
                    let line = serde_json::json!({"type": "ERROR", "object": e.status()});
                    let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
                }
            });
            let mut resp = Response::new(body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        (Method::GET, Some(name)) => {
            let obj = blocking(move || objects::get(&store, &rp, &name).map(|o| (o, rp))).await?;
            let (obj, rp) = obj;
            if table {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                return Ok(respond(200, &table::table(rp.info.kind, &[obj], rv), &[]));
            }
            Ok(respond(200, &obj, &[]))
        }
        (Method::GET, None) => {
            let filter = objects::Filter::from_query(&query, None)?;
            let (items, rv, rp) =
                blocking(move || objects::list(&store, &rp, &filter).map(|(i, rv)| (i, rv, rp)))
                    .await?;
            if table {
                return Ok(respond(200, &table::table(rp.info.kind, &items, rv), &[]));
            }
            Ok(respond(200, &objects::list_doc(&rp, items, rv), &[]))
        }
        (Method::POST, None) => {
            let (bytes, ct) = read_body(req).await?;
            let body = parse_body(&bytes, &ct)?;
            let w = blocking(move || objects::create(&store, &rp, body, &query)).await?;
            Ok(respond(201, &w.object, &w.warnings))
        }
        (Method::PUT, Some(name)) => {
            let (bytes, ct) = read_body(req).await?;
            let body = parse_body(&bytes, &ct)?;
            let w = blocking(move || objects::replace(&store, &rp, &name, body, &query)).await?;
            Ok(respond(200, &w.object, &w.warnings))
        }
        (Method::PATCH, Some(name)) => {
            let (bytes, ct) = read_body(req).await?;
            let kind = PatchType::from_content_type(&ct)?;
            let body = parse_body(&bytes, "application/json")?;
            let w =
                blocking(move || objects::patch(&store, &rp, &name, (kind, body), &query)).await?;
            Ok(respond(
                if w.created { 201 } else { 200 },
                &w.object,
                &w.warnings,
            ))
        }
        (Method::DELETE, Some(name)) => {
            let (bytes, ct) = read_body(req).await?;
            let options = if bytes.is_empty() {
                None
            } else {
                Some(parse_body(&bytes, &ct)?)
            };
            let propagation = objects::Propagation::of(options.as_ref(), &query)?;
            let obj =
                blocking(move || objects::delete(&store, &rp, &name, &query, propagation)).await?;
            Ok(respond(200, &obj, &[]))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// A random bearer token (32 bytes, hex).
pub fn new_token() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
