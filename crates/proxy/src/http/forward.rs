//! The router's forwarding step: pick a weighted destination, rewrite the request, get a
//! pooled upstream connection, send, and retry per the route's policy (Envoy's jittered
//! exponential back-off, 25ms base) within the per-try and route timeouts. Failures and their
//! local replies are in [`super::failure`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_snapshot::snapshot::{Cluster, Forward, Route, RouteMatch, StringMatch};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Incoming};
use rand::Rng;
use tokio::time::Instant;

use super::body::{Body, DownstreamFault, FaultCell, Pooled, full};
use super::failure::{
    Failure, FailureKind, Reset, back_off, no_cluster, outcome_of, retries_on_response,
    timeout_reply,
};
use super::headers::{self, ATTEMPT_COUNT, EXPECTED_TIMEOUT, ORIGINAL_PATH, UPSTREAM_SERVICE_TIME};
use super::pool::{ConnMeta, HttpState, Lease};
use super::route::pick_weighted;
use crate::accesslog::{LogEntry, ResponseFlag};
use crate::connect::OriginalDst;
use crate::ctx::Ctx;

/// Request bodies up to this size are kept so the request can be retried after it was sent.
const MAX_BUFFERED_BODY: u64 = 64 * 1024;
/// How often a request moves on from a pooled connection that died before it was written.
const STALE_CONNECTION_RETRIES: u32 = 3;

/// A request after the connection manager's header handling, ready for the router.
pub struct Prepared {
    /// Method.
    pub method: Method,
    /// `:path` (normalized) with the query.
    pub path_and_query: String,
    /// `:authority` / Host.
    pub authority: String,
    /// Headers without hop-by-hop ones, with `x-forwarded-*` and `x-request-id`.
    pub headers: HeaderMap,
    /// Body.
    pub body: Body,
    /// Where the body's reader records the client's fault, if reading it fails.
    pub fault: FaultCell,
    /// The client spoke HTTP/2 (an ORIGINAL_DST cluster then speaks it upstream too).
    pub downstream_h2: bool,
}

/// Everything the forwarding step reads.
pub struct Env<'a> {
    /// Proxy state.
    pub ctx: &'a Arc<Ctx>,
    /// Upstream pools.
    pub state: &'a HttpState,
    /// The configuration version the request is routed with.
    pub active: &'a crate::ctx::Active,
    /// When the request arrived (the route timeout counts from here).
    pub started: Instant,
    /// Where ORIGINAL_DST clusters connect (sidecars; `None` at gateways).
    pub original_dst: Option<&'a OriginalDst>,
}

/// Forwards `req` along `route`; fills the upstream fields of `entry`.
pub async fn forward(
    env: &Env<'_>,
    route: &Route,
    fwd: &Forward,
    req: Prepared,
    entry: &mut LogEntry,
) -> Response<Body> {
    let roll = rand::rng().random::<u64>();
    let Some(dest) = pick_weighted(&fwd.clusters, roll) else {
        return no_cluster(entry);
    };
    let Some(cluster) = env.active.snapshot.clusters.get(&dest.cluster) else {
        return no_cluster(entry);
    };
    entry.upstream_cluster = Some(cluster.name.clone());

    let Prepared {
        method,
        mut path_and_query,
        mut authority,
        mut headers,
        body,
        fault,
        downstream_h2,
    } = req;
    if let Some(rewrite) = &fwd.rewrite_uri {
        let rewritten = rewrite_path(&route.matcher, rewrite, &path_and_query);
        if rewritten != path_and_query {
            if let Ok(v) = HeaderValue::from_str(&path_and_query) {
                headers.insert(ORIGINAL_PATH, v);
            }
            path_and_query = rewritten;
        }
    }
    if let Some(a) = &fwd.rewrite_authority {
        authority.clone_from(a);
    }
    headers::apply_ops(&mut headers, &route.request_headers, Some(&mut authority));
    headers::apply_ops(&mut headers, &dest.request_headers, Some(&mut authority));
    headers.remove(header::HOST);
    let policy = fwd.retry.as_ref().filter(|p| p.attempts > 0);
    let route_timeout = fwd.timeout.filter(|t| !t.is_zero());
    let per_try = policy
        .and_then(|p| p.per_try_timeout)
        .filter(|t| !t.is_zero());
    if let Some(t) = per_try.or(route_timeout) {
        headers.insert(
            EXPECTED_TIMEOUT,
            HeaderValue::from(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    entry.path = Some(path_and_query.clone());
    entry.authority = Some(authority.clone());
    if env.ctx.access_log.is_enabled() {
        entry.request_headers = headers.clone();
    }

    let deadline = route_timeout.map(|t| env.started + t);
    let template = Template {
        method,
        path_and_query,
        authority,
        headers,
        tls: cluster.tls.is_some(),
        downstream_h2,
    };
    let mut body = match ReplayBody::new(body, policy.is_some(), deadline).await {
        Some(b) => b,
        None => return timeout_reply(entry, None, "response_timeout"),
    };
    if let Some(fault) = fault.get() {
        return downstream_fault_reply(*fault, entry);
    }

    let max_retries = policy.map_or(0, |p| p.attempts);
    let mut retries = 0;
    loop {
        let mut tried: Option<ConnMeta> = None;
        let try_fut = attempt(env, cluster, &template, &mut body, retries + 1, &mut tried);
        let result = match (per_try, deadline) {
            (None, None) => try_fut.await,
            _ => {
                let per_try_deadline = per_try.map(|t| Instant::now() + t);
                let until = match (per_try_deadline, deadline) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => Instant::now(),
                };
                match tokio::time::timeout_at(until, try_fut).await {
                    Ok(r) => r,
                    Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        return timeout_reply(entry, tried, "response_timeout");
                    }
                    Err(_) => Err(Failure::new(FailureKind::PerTryTimeout, tried)),
                }
            }
        };
        let failure = match result {
            Ok((resp, lease, service_time)) => {
                let status = resp.status().as_u16();
                let retriable =
                    policy.is_some_and(|p| retries_on_response(p, status, resp.headers()));
                if retriable && retries < max_retries && body.replayable() {
                    env.ctx
                        .connector
                        .report(cluster, lease.meta.peer, outcome_of(status));
                    drop(resp);
                    retries += 1;
                    if !back_off(retries, deadline).await {
                        return timeout_reply(entry, Some(lease.meta), "response_timeout");
                    }
                    continue;
                }
                if retriable && max_retries > 0 {
                    entry
                        .response_flags
                        .insert(ResponseFlag::UpstreamRetryLimitExceeded);
                }
                return respond(
                    env,
                    cluster,
                    route,
                    &dest.response_headers,
                    resp,
                    lease,
                    service_time,
                    entry,
                );
            }
            Err(f) => f,
        };
        // The request failed because the client's body did: the client's fault, no retry.
        if let Some(fault) = fault.get() {
            return downstream_fault_reply(*fault, entry);
        }
        let retriable = policy.is_some_and(|p| failure.retriable(p)) && body.replayable();
        if retriable && retries < max_retries {
            retries += 1;
            if !back_off(retries, deadline).await {
                return timeout_reply(entry, failure.meta, "response_timeout");
            }
            continue;
        }
        if retriable && max_retries > 0 {
            entry
                .response_flags
                .insert(ResponseFlag::UpstreamRetryLimitExceeded);
        }
        return failure.reply(retries > 0, entry);
    }
}

/// The reply when the client's request body failed: 400, `DPE` for a malformed body, `DC`
/// for one the client abandoned (the upstream is not blamed).
fn downstream_fault_reply(fault: DownstreamFault, entry: &mut LogEntry) -> Response<Body> {
    entry.upstream_host = None;
    entry.upstream_local_address = None;
    let (flag, details) = match fault {
        DownstreamFault::Malformed => (
            ResponseFlag::DownstreamProtocolError,
            "downstream_protocol_error",
        ),
        DownstreamFault::Abandoned => (
            ResponseFlag::DownstreamConnectionTermination,
            "downstream_remote_disconnect",
        ),
    };
    entry.response_flags.insert(flag);
    entry.response_code_details = Some(details.to_owned());
    super::local::reply(400, "")
}

/// The upstream request of every attempt, before the body and the connection are known.
struct Template {
    method: Method,
    path_and_query: String,
    authority: String,
    headers: HeaderMap,
    tls: bool,
    downstream_h2: bool,
}

impl Template {
    fn build(&self, lease: &Lease, body: Body, attempt: u32) -> Request<Body> {
        let mut headers = self.headers.clone();
        headers.insert(ATTEMPT_COUNT, HeaderValue::from(attempt));
        let (uri, version) = if lease.is_h2() {
            let scheme = if self.tls { "https" } else { "http" };
            let uri = format!("{scheme}://{}{}", self.authority, self.path_and_query);
            (uri.parse::<Uri>().ok(), Version::HTTP_2)
        } else {
            if let Ok(host) = HeaderValue::from_str(&self.authority) {
                headers.insert(header::HOST, host);
            }
            (self.path_and_query.parse::<Uri>().ok(), Version::HTTP_11)
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri.unwrap_or_else(|| Uri::from_static("/"));
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        req
    }
}

/// One try: a connection, the request, the response headers.
async fn attempt(
    env: &Env<'_>,
    cluster: &Cluster,
    template: &Template,
    body: &mut ReplayBody,
    attempt_no: u32,
    tried: &mut Option<ConnMeta>,
) -> Result<(Response<Incoming>, Lease, Duration), Failure> {
    let generation = env.active.cluster_generation(&cluster.name);
    // Envoy's `use_downstream_protocol` on Istio's PassthroughCluster: an ORIGINAL_DST
    // cluster without TLS speaks the client's HTTP version upstream (h2c for HTTP/2).
    let h2c = template.downstream_h2
        && cluster.tls.is_none()
        && matches!(
            cluster.discovery,
            egress_snapshot::snapshot::Discovery::OriginalDst
        );
    let pool = env
        .state
        .pool(cluster, generation, &template.authority, h2c);
    let mut stale_left = STALE_CONNECTION_RETRIES;
    loop {
        let mut lease = pool
            .checkout(env.ctx, &template.authority, env.original_dst)
            .await
            .map_err(Failure::from_checkout)?;
        *tried = Some(lease.meta);
        let Some(b) = body.take() else {
            return Err(Failure::new(
                FailureKind::Reset(Reset::ConnectionTermination),
                Some(lease.meta),
            ));
        };
        let req = template.build(&lease, b, attempt_no);
        let sent = Instant::now();
        match lease.send(req).await {
            Ok(resp) => return Ok((resp, lease, sent.elapsed())),
            Err(mut err) => {
                let unsent = err.take_message();
                if let Some(req) = unsent {
                    body.put_back(req.into_body());
                    if lease.reused && stale_left > 0 {
                        stale_left -= 1;
                        continue;
                    }
                }
                return Err(Failure::from_send(&err.into_error(), lease.meta));
            }
        }
    }
}

/// The request body, kept when it may have to be sent again.
enum ReplayBody {
    Buffered(Bytes),
    Stream(Option<Body>),
}

impl ReplayBody {
    /// Buffers small bodies when a retry policy applies; `None` if the route deadline passed
    /// while reading the body.
    async fn new(body: Body, retries: bool, deadline: Option<Instant>) -> Option<ReplayBody> {
        let small = body.is_end_stream()
            || body
                .size_hint()
                .upper()
                .is_some_and(|u| u <= MAX_BUFFERED_BODY);
        if !retries || !small {
            return Some(ReplayBody::Stream(Some(body)));
        }
        let collect = body.collect();
        let collected = match deadline {
            Some(d) => tokio::time::timeout_at(d, collect).await.ok()?,
            None => collect.await,
        };
        Some(match collected {
            Ok(c) => ReplayBody::Buffered(c.to_bytes()),
            // The downstream went away mid-body; forward what we have, once.
            Err(_) => ReplayBody::Stream(None),
        })
    }

    fn take(&mut self) -> Option<Body> {
        match self {
            ReplayBody::Buffered(b) if b.is_empty() => Some(super::body::empty()),
            ReplayBody::Buffered(b) => Some(full(b.clone())),
            ReplayBody::Stream(s) => s.take(),
        }
    }

    fn put_back(&mut self, body: Body) {
        if let ReplayBody::Stream(s) = self {
            *s = Some(body);
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, ReplayBody::Buffered(_) | ReplayBody::Stream(Some(_)))
    }
}

/// The downstream response for an upstream one.
#[allow(clippy::too_many_arguments)]
fn respond(
    env: &Env<'_>,
    cluster: &Cluster,
    route: &Route,
    dest_ops: &egress_snapshot::snapshot::HeaderOps,
    resp: Response<Incoming>,
    lease: Lease,
    service_time: Duration,
    entry: &mut LogEntry,
) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    env.ctx
        .connector
        .report(cluster, lease.meta.peer, outcome_of(parts.status.as_u16()));
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(
        UPSTREAM_SERVICE_TIME,
        HeaderValue::from(u64::try_from(service_time.as_millis()).unwrap_or(u64::MAX)),
    );
    headers::apply_ops(&mut parts.headers, dest_ops, None);
    headers::apply_ops(&mut parts.headers, &route.response_headers, None);
    parts.version = Version::HTTP_11;
    entry.upstream_host = Some(lease.meta.peer);
    entry.upstream_local_address = Some(lease.meta.local);
    entry.upstream_service_time = Some(service_time);
    entry.response_code_details = Some("via_upstream".to_owned());
    let body = Pooled::new(incoming, lease).boxed_unsync();
    Response::from_parts(parts, body)
}

/// Applies a route's `rewrite.uri` (Envoy `prefix_rewrite`): the matched prefix (or the whole
/// path for exact and regex matches) is replaced; the query is kept.
pub fn rewrite_path(matcher: &RouteMatch, rewrite: &str, path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let new_path = match &matcher.uri {
        Some(StringMatch::Prefix(p)) if path.len() >= p.len() && path.is_char_boundary(p.len()) => {
            format!("{rewrite}{}", &path[p.len()..])
        }
        Some(StringMatch::Exact(_) | StringMatch::Regex(_)) => rewrite.to_owned(),
        _ => format!("{rewrite}{}", path.strip_prefix('/').unwrap_or(path)),
    };
    match query {
        Some(q) if !new_path.contains('?') => format!("{new_path}?{q}"),
        _ => new_path,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn prefix_rewrites() {
        let m = |uri| RouteMatch {
            uri,
            ..RouteMatch::default()
        };
        let prefix = m(Some(StringMatch::Prefix("/old".into())));
        assert_eq!(rewrite_path(&prefix, "/new", "/old/x?q=1"), "/new/x?q=1");
        assert_eq!(rewrite_path(&prefix, "/", "/old"), "/");
        let exact = m(Some(StringMatch::Exact("/a".into())));
        assert_eq!(rewrite_path(&exact, "/b", "/a?z"), "/b?z");
        assert_eq!(rewrite_path(&m(None), "/v2/", "/x"), "/v2/x");
    }
}
