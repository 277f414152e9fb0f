//! HTTP on a gateway listener, as Istio configures Envoy's HTTP connection manager and router:
//! HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN `h2` after TLS termination) on one
//! connection ([`serve_http`]); per request the *current* snapshot's route table picks a
//! virtual host and route ([`route`]); the request is answered locally (404 `NR`, redirects,
//! direct responses) or forwarded through pooled upstream connections with retries and
//! timeouts ([`forward`], [`pool`]); the access-log line is written when the response is done.
//!
//! Connection-manager behaviour: `use_remote_address: true` (`x-forwarded-for` gets the
//! downstream address appended), `x-forwarded-proto` set, `x-request-id` generated when
//! missing, `x-forwarded-client-cert` in `SANITIZE_SET` mode, hop-by-hop headers removed,
//! `server: istio-envoy` on every response, path normalization (MeshConfig `pathNormalization`,
//! see [`normalize`]).
//!
//! A sidecar's outbound connection manager differs in a few settings ([`HttpSettings`]):
//! `use_remote_address: false`, `server: envoy`, and ORIGINAL_DST clusters
//! (`PassthroughCluster`) that connect to the destination the client asked for.

pub mod body;
pub mod failure;
pub mod forward;
pub mod headers;
pub mod limited;
pub mod local;
pub mod normalize;
pub mod pool;
pub mod route;
pub mod sanitize;
pub mod vhost_index;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use egress_snapshot::snapshot::{RouteAction, Snapshot};
use http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::Instrument;

use crate::accesslog::{LogEntry, ResponseFlag};
use crate::authz::{Attributes, HttpAttributes, Verdict};
use crate::ctx::{Active, ConnInfo, Ctx};
use crate::limits::conn::{ConnState, Tracked};
use body::{Body, Counting, Logged, PendingLog};
use forward::{Env, Prepared};
pub use pool::HttpState;

use crate::connect::OriginalDst;

/// The `server` header of every response (Istio gateways overwrite it).
pub const SERVER: &str = "istio-envoy";

/// The `server` header of a sidecar's outbound responses (Envoy's default server name).
pub const SIDECAR_SERVER: &str = "envoy";

/// The connection-manager settings that differ between a gateway and a sidecar's outbound
/// side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The `server` header written on every response (Envoy's `OVERWRITE`).
    pub server_name: &'static str,
    /// Envoy's `use_remote_address`: append the downstream address to `x-forwarded-for`.
    pub use_remote_address: bool,
    /// Where ORIGINAL_DST clusters connect: a captured connection's original destination or
    /// an explicit proxy request's host and port. `None` (gateways): they have no endpoints.
    pub original_dst: Option<OriginalDst>,
}

impl HttpSettings {
    /// Istio's gateway connection manager.
    pub fn gateway() -> HttpSettings {
        HttpSettings {
            server_name: SERVER,
            use_remote_address: true,
            original_dst: None,
        }
    }

    /// Istio's sidecar outbound connection manager, for traffic to `original_dst`.
    pub fn sidecar_outbound(original_dst: Option<OriginalDst>) -> HttpSettings {
        HttpSettings {
            server_name: SIDECAR_SERVER,
            use_remote_address: false,
            original_dst,
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on `io` until the client closes or the proxy drains (then
/// in-flight requests finish and keep-alive stops). Every request is routed with the route
/// table `route_config` of the snapshot current *at that request*.
pub async fn serve_http<I>(io: I, conn: ConnInfo, route_config: String, ctx: Arc<Ctx>)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    serve_http_with(io, conn, route_config, ctx, HttpSettings::gateway()).await;
}

/// [`serve_http`] with the connection-manager `settings` given.
pub async fn serve_http_with<I>(
    io: I,
    conn: ConnInfo,
    route_config: String,
    ctx: Arc<Ctx>,
    settings: HttpSettings,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(conn);
    let settings = Arc::new(settings);
    let conn_span = Arc::clone(&conn);
    let route_config: Arc<str> = route_config.into();
    let state = state(&ctx);
    let tracker = crate::limits::conn::current().unwrap_or_else(ConnState::standalone);
    let service = {
        let ctx = Arc::clone(&ctx);
        let tracker = Arc::clone(&tracker);
        service_fn(move |req: Request<Incoming>| {
            let stream = tracker.begin_stream();
            let ctx = Arc::clone(&ctx);
            let conn = Arc::clone(&conn);
            let route_config = Arc::clone(&route_config);
            let state = Arc::clone(&state);
            let settings = Arc::clone(&settings);
            async move {
                let resp = handle(&ctx, &state, &conn, &route_config, &settings, req).await;
                Ok::<_, Infallible>(limited::guard_response(resp, stream, &ctx))
            }
        })
    };
    let span = tracing::debug_span!(
        "http_connection",
        remote = %conn_span.downstream_remote,
        local = %conn_span.downstream_local,
        sni = conn_span.sni.as_deref().unwrap_or("-"),
    );
    async move {
        let limits = &ctx.options.limits;
        let builder = limited::server_builder(limits);
        let io = TokioIo::new(Tracked::new(io, Arc::clone(&tracker)));
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let drain = ctx.drain.clone();
        tokio::select! {
            res = connection.as_mut() => {
                if let Err(err) = res {
                    limited::note_connection_error(&*err, &ctx);
                    tracing::debug!(error = %err, "downstream HTTP connection ended");
                }
            }
            () = drain.signaled() => {
                connection.as_mut().graceful_shutdown();
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, "downstream HTTP connection ended while draining");
                }
            }
            limit = crate::limits::conn::watch(&tracker, limits) => {
                ctx.conns.counters().hit(limit);
                tracing::debug!(limit = limit.name(), "closing downstream HTTP connection");
                if limit != crate::limits::Limit::RequestHeadersTimeout {
                    // Idle: let HTTP/2 say GOAWAY; nothing is in flight.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limited::CLOSE_WAIT, connection).await;
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Routes one request that arrived on `conn` with the route table `route_config` and answers
/// it (locally or from upstream), writing its access-log line when the response is done: the
/// per-request step of [`serve_http_with`], for servers that read requests themselves (a
/// sidecar's explicit proxy picks the route table per request).
pub async fn handle_request(
    ctx: &Arc<Ctx>,
    conn: &ConnInfo,
    route_config: &str,
    settings: &HttpSettings,
    req: Request<Incoming>,
) -> Response<Body> {
    let state = state(ctx);
    handle(ctx, &state, conn, route_config, settings, req).await
}

/// The HTTP state (upstream pools and counters) of the proxy instance `ctx` belongs to.
pub fn state(ctx: &Arc<Ctx>) -> Arc<HttpState> {
    Arc::clone(&ctx.http)
}

/// Upstream TLS handshakes made for `cluster` by the proxy instance of `ctx` (each new TLS
/// connection makes one; reused connections make none).
pub fn upstream_tls_handshakes(ctx: &Arc<Ctx>, cluster: &str) -> u64 {
    state(ctx).upstream_tls_handshakes(cluster)
}

/// Upstream connections opened for `cluster` by the proxy instance of `ctx`.
pub fn upstream_connections(ctx: &Arc<Ctx>, cluster: &str) -> u64 {
    state(ctx).upstream_connections(cluster)
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

async fn handle(
    ctx: &Arc<Ctx>,
    state: &HttpState,
    conn: &ConnInfo,
    route_config: &str,
    settings: &HttpSettings,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let (mut parts, incoming) = req.into_parts();
    let too_large = limited::headers_too_large(&parts, &ctx.options.limits);
    let received = Arc::new(AtomicU64::new(0));
    let fault = body::FaultCell::default();
    let body = Counting::new(incoming, Arc::clone(&received))
        .with_fault(Arc::clone(&fault))
        .boxed_unsync();
    let scheme = if conn.tls_terminated { "https" } else { "http" };
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    // One version for the whole request: its snapshot and its access-log settings.
    let active = ctx.active();
    let snapshot = Arc::clone(&active.snapshot);
    let logger = ctx.logger_for(&active);
    // Normalized once, before anything reads it: routing, AuthorizationPolicy, the upstream
    // and the access log all see the same path (see `normalize`).
    let raw_path = parts.uri.path();
    let (path, bad_path) = match normalize::normalize(raw_path, snapshot.mesh.path_normalization) {
        Ok(p) => (p.into_owned(), None),
        Err(e) => (raw_path.to_owned(), Some(e)),
    };
    // The strictest reading, when it differs, is also checked against the policies.
    let strictest = if snapshot.authz.http.is_empty() || bad_path.is_some() {
        None
    } else {
        normalize::strictest(raw_path)
            .ok()
            .filter(|s| *s != path)
            .map(std::borrow::Cow::into_owned)
    };
    let query = parts.uri.query().map(str::to_owned);
    let path_and_query = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };

    sanitize::strip_envoy_headers(&mut parts.headers);
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::EXPECT);
    if settings.use_remote_address {
        headers::append_xff(&mut parts.headers, conn.downstream_remote.ip());
    }
    headers::set_xfp(&mut parts.headers, scheme);
    let request_id = headers::ensure_request_id(&mut parts.headers);
    let peer = conn
        .peer_identity
        .as_deref()
        .filter(|_| conn.tls_terminated);
    // The gateway's own id only goes into an XFCC element, which needs a peer.
    let gateway_id = peer
        .and_then(|_| ctx.identity.as_ref())
        .and_then(|i| i.spiffe_id_shared());
    headers::sanitize_set_xfcc(&mut parts.headers, gateway_id.as_deref(), peer);

    let text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Header copies for the access log are only made when there is one.
    let logging = ctx.access_log.is_enabled();
    let entry = LogEntry {
        start_time: Some(start_time),
        method: Some(parts.method.as_str().to_owned()),
        path: Some(path_and_query.clone()).filter(|p| !p.is_empty()),
        authority: Some(authority.clone()),
        scheme: Some(scheme.to_owned()),
        protocol: Some(protocol_name(parts.version).to_owned()),
        x_forwarded_for: text(header::HeaderName::from_static("x-forwarded-for")),
        user_agent: text(header::USER_AGENT),
        request_id: Some(request_id),
        request_headers: if logging {
            parts.headers.clone()
        } else {
            HeaderMap::new()
        },
        downstream_local_address: Some(conn.downstream_local),
        downstream_remote_address: Some(conn.downstream_remote),
        requested_server_name: conn.sni.clone(),
        peer_uri_san: conn.peer_identity.clone(),
        ..LogEntry::default()
    };

    let mut pending = Unanswered {
        entry,
        log: Some((logger.clone(), started)),
    };
    let entry = &mut pending.entry;
    let view = route::RequestView {
        method: parts.method.as_str(),
        scheme,
        authority: &authority,
        path: &path,
        query: query.as_deref(),
        headers: &parts.headers,
    };
    // Domain-fronting defence on TLS this gateway terminated (see `crate::guard`).
    let misdirected = conn
        .tls_terminated
        .then(|| crate::guard::check_sni_host(conn.sni.as_deref(), &authority).err())
        .flatten();
    let selected = match misdirected {
        _ if too_large => Selected::TooLarge,
        _ if let Some(rejected) = bad_path => Selected::BadPath(rejected),
        Some(m) => Selected::Misdirected(m),
        None => match authorize(&snapshot, conn, &view, strictest.as_deref()) {
            Verdict::Denied(details) => Selected::Denied(details),
            Verdict::Allowed { dry_run_denied } => {
                entry.connection_termination_details = dry_run_denied;
                select(&active, route_config, &view, conn.tls_terminated)
            }
        },
    };
    let mut response = match selected {
        Selected::TooLarge => limited::headers_too_large_reply(entry, ctx.conns.counters()),
        Selected::Misdirected(m) => {
            tracing::debug!(%m, "refusing request: Host does not match SNI");
            entry.response_code_details = Some(crate::guard::SNI_HOST_MISMATCH.to_owned());
            local::reply(crate::guard::MISDIRECTED_STATUS, &m.to_string())
        }
        Selected::BadPath(rejected) => {
            if rejected == normalize::PathRejected::NonAscii {
                entry
                    .response_flags
                    .insert(ResponseFlag::DownstreamProtocolError);
            }
            entry.response_code_details = Some(rejected.details().to_owned());
            local::reply(400, "")
        }
        Selected::Denied(details) => {
            entry.response_code_details = Some(details);
            local::reply(403, crate::authz::DENIED_BODY)
        }
        Selected::NotFound => {
            entry.response_flags.insert(ResponseFlag::NoRouteFound);
            entry.response_code_details = Some("route_not_found".to_owned());
            local::reply(404, "")
        }
        Selected::TlsRedirect => {
            entry.response_code_details = Some("direct_response".to_owned());
            local::redirect(301, &format!("https://{authority}{path_and_query}"))
        }
        Selected::Route(route) => {
            entry.route_name = Some(route.name.clone()).filter(|n| !n.is_empty());
            match &route.action {
                RouteAction::DirectResponse { status, body } => {
                    entry.response_code_details = Some("direct_response".to_owned());
                    let mut resp = local::reply(*status, body.as_deref().unwrap_or(""));
                    headers::apply_ops(resp.headers_mut(), &route.response_headers, None);
                    resp
                }
                RouteAction::Redirect(r) => {
                    entry.response_code_details = Some("direct_response".to_owned());
                    let location = local::redirect_location(r, scheme, &authority, &path_and_query);
                    let mut resp = local::redirect(r.status, &location);
                    headers::apply_ops(resp.headers_mut(), &route.response_headers, None);
                    resp
                }
                RouteAction::Forward(fwd) => {
                    let env = Env {
                        ctx,
                        state,
                        active: &active,
                        started,
                        original_dst: settings.original_dst.as_ref(),
                    };
                    let prepared = Prepared {
                        method: parts.method.clone(),
                        path_and_query,
                        authority,
                        headers: parts.headers,
                        body,
                        fault,
                        downstream_h2: parts.version == http::Version::HTTP_2,
                    };
                    let idle = ctx.options.limits.stream_idle_timeout;
                    let forwarded = forward::forward(&env, route, fwd, prepared, entry);
                    match crate::limits::conn::idle_bound(forwarded, idle, &received).await {
                        Some(response) => response,
                        None => limited::stream_idle_reply(entry, ctx.conns.counters()),
                    }
                }
            }
        }
    };
    response.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static(settings.server_name),
    );
    entry.response_code = response.status().as_u16();
    if logging {
        entry.response_headers = response.headers().clone();
    }
    let (parts, body) = response.into_parts();
    let log = PendingLog {
        entry: pending.answered(),
        logger,
        started,
        received,
    };
    Response::from_parts(parts, Logged::new(body, log).boxed_unsync())
}

/// The gateway's AuthorizationPolicies for one request (before routing, as Envoy's RBAC
/// filter runs before the router).
///
/// With `strictest` (the path as DECODE_AND_MERGE_SLASHES reads it, when that differs from the
/// configured normalization's), the request must be allowed under both readings: a DENY that
/// matches either refuses, an ALLOW must match both. Stricter than Envoy, which only checks the
/// forwarded path; an upstream that decodes `%2F` or merges slashes itself can then not be
/// reached past a path rule (docs/limits.md).
fn authorize(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    view: &route::RequestView<'_>,
    strictest: Option<&str>,
) -> Verdict {
    if snapshot.authz.http.is_empty() {
        return Verdict::ALLOWED;
    }
    let attrs = |path| {
        Attributes::of_conn(conn).with_http(HttpAttributes {
            authority: view.authority,
            method: view.method,
            path,
            headers: view.headers,
        })
    };
    let first = crate::authz::evaluate(&snapshot.authz.http, &attrs(view.path));
    let Some(strict) = strictest else {
        return first;
    };
    match first {
        Verdict::Denied(_) => first,
        Verdict::Allowed { dry_run_denied } => {
            match crate::authz::evaluate(&snapshot.authz.http, &attrs(strict)) {
                Verdict::Denied(details) => Verdict::Denied(details),
                Verdict::Allowed {
                    dry_run_denied: strict_dry_run,
                } => Verdict::Allowed {
                    dry_run_denied: dry_run_denied.or(strict_dry_run),
                },
            }
        }
    }
}

/// A request still waiting for its response. If the downstream goes away first (the request
/// future is dropped), the line is logged with `DC` and status 0, as Envoy does.
struct Unanswered {
    entry: LogEntry,
    log: Option<(crate::accesslog::AccessLogger, Instant)>,
}

impl Unanswered {
    /// The response is on its way: the line will be written by the response body.
    fn answered(&mut self) -> LogEntry {
        self.log = None;
        std::mem::take(&mut self.entry)
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some((logger, started)) = self.log.take() {
            self.entry.response_code = 0;
            self.entry
                .response_flags
                .insert(ResponseFlag::DownstreamConnectionTermination);
            self.entry.response_code_details = Some("downstream_remote_disconnect".to_owned());
            self.entry.duration = Some(started.elapsed());
            logger.log(&self.entry);
        }
    }
}

/// What the route table says about a request.
enum Selected<'a> {
    /// Over the request header limits (431).
    TooLarge,
    /// A path normalization refuses (400).
    BadPath(normalize::PathRejected),
    /// Refused by an AuthorizationPolicy (the access-log details).
    Denied(String),
    /// Host disagrees with the TLS server name (421).
    Misdirected(crate::guard::Misdirected),
    NotFound,
    TlsRedirect,
    Route(&'a egress_snapshot::snapshot::Route),
}

fn select<'a>(
    active: &'a Active,
    name: &str,
    view: &route::RequestView<'_>,
    tls: bool,
) -> Selected<'a> {
    // Gateway routes have no CONNECT matchers: Envoy answers CONNECT with 404 NR.
    if view.method == "CONNECT" {
        return Selected::NotFound;
    }
    let Some(table) = active.route_table(name) else {
        return Selected::NotFound;
    };
    let Some(vh) = table.select_vhost(view.authority) else {
        return Selected::NotFound;
    };
    if vh.require_tls && !tls {
        return Selected::TlsRedirect;
    }
    match vh
        .routes
        .iter()
        .find(|r| route::route_matches(&r.matcher, view, active.regexes()))
    {
        Some(r) => Selected::Route(r),
        None => Selected::NotFound,
    }
}
