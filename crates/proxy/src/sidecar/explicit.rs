//! The explicit proxy: what `http_proxy`/`https_proxy` clients (curl `-x`) talk to.
//!
//! * `GET http://host[:port]/path` (absolute form): the destination port (80 by default)
//!   picks the route table ([`plan::http_table`]); the request is then routed by Host exactly
//!   as a gateway routes it (retries, timeouts, pools, header operations, access log) and sent
//!   upstream in origin form with its Host unchanged. `PassthroughCluster` connects to
//!   `host:port` (names resolved like DNS clusters', through the overrides).
//! * `CONNECT host:port`: answered `HTTP/1.1 200 Connection established`, after which the
//!   tunnel is served exactly like a transparently captured connection to `host:port`
//!   ([`super::outbound`]). A destination REGISTRY_ONLY does not allow is answered 200 too and
//!   then closed as `BlackHoleCluster` closes it: Istio's client never learns of a proxy, it
//!   sees its TLS handshake fail (curl exit 35), and so does a client of this proxy. (Refusing
//!   the CONNECT with a status would make curl exit 56 instead.)
//! * Anything else (an origin-form request, a scheme other than `http`, a CONNECT without a
//!   port) is not a proxy request: 400, logged with details `absolute_url_required`.
//!
//! Connections speak HTTP/1.1 (forward-proxy clients do); responses carry `server: envoy`
//! like a sidecar's outbound replies, and `x-forwarded-for` is not appended
//! (`use_remote_address: false`). Access-log lines show the proxy's own address as
//! `%DOWNSTREAM_LOCAL_ADDRESS%` (the destination may be a name, not an address).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::Shared;
use super::outbound;
use super::plan;
use crate::accesslog::LogEntry;
use crate::connect::OriginalDst;
use crate::ctx::ConnInfo;
use crate::http::body::{Body, empty};
use crate::http::{self as router, HttpSettings, limited, local};
use crate::limits::conn::{ConnState, Tracked};

/// The reason phrase of a successful CONNECT, as proxies (and curl's messages) word it.
const CONNECTED: ReasonPhrase = ReasonPhrase::from_static(b"Connection established");

/// `%RESPONSE_CODE_DETAILS%` of a request that is not a proxy request.
pub const NOT_A_PROXY_REQUEST: &str = "absolute_url_required";

/// Serves one client connection of the explicit proxy until it closes or the sidecar drains.
pub(super) async fn serve(stream: TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let conn = Arc::new(ConnInfo {
        downstream_remote: remote,
        downstream_local: local,
        sni: None,
        peer_identity: None,
        server_port: local.port(),
        tls_terminated: false,
    });
    let tracker = crate::limits::conn::current().unwrap_or_else(ConnState::standalone);
    let service = {
        let shared = Arc::clone(&shared);
        let tracker = Arc::clone(&tracker);
        service_fn(move |req: Request<Incoming>| {
            let stream = tracker.begin_stream();
            let shared = Arc::clone(&shared);
            let conn = Arc::clone(&conn);
            async move {
                let resp = request(&shared, &conn, req).await;
                Ok::<_, Infallible>(limited::guard_response(resp, stream, &shared.ctx))
            }
        })
    };
    let limits = &shared.ctx.options.limits;
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&tracker)));
    let connection = hyper::server::conn::http1::Builder::new()
        .max_headers(limits.max_request_headers.max(1))
        .max_buf_size(limits.max_request_headers_bytes.saturating_add(1).max(8192))
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    let drain = shared.ctx.drain.clone();
    tokio::select! {
        res = connection.as_mut() => {
            if let Err(err) = res {
                limited::note_connection_error(&err, &shared.ctx);
                tracing::debug!(error = %err, "explicit proxy connection ended");
            }
        }
        () = drain.signaled() => {
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "explicit proxy connection ended while draining");
            }
        }
        limit = crate::limits::conn::watch(&tracker, limits) => {
            shared.ctx.conns.counters().hit(limit);
            tracing::debug!(limit = limit.name(), "closing explicit proxy connection");
        }
    }
}

/// One request on an explicit-proxy connection.
async fn request(shared: &Arc<Shared>, conn: &ConnInfo, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return match connect_target(req.uri()) {
            Some(dst) => tunnel(shared, conn, dst, req),
            None => not_a_proxy_request(shared, conn, &req),
        };
    }
    let Some(dst) = absolute_target(req.uri()) else {
        return not_a_proxy_request(shared, conn, &req);
    };
    let table = if shared.is_own_port(dst.port) {
        // Loop protection: a request for the sidecar's own port is never passed through.
        egress_snapshot::sidecar_view::policy_table(
            egress_snapshot::snapshot::OutboundPolicy::RegistryOnly,
        )
        .to_owned()
    } else {
        plan::http_table(&shared.current().1, dst.port)
    };
    let mut conn = conn.clone();
    conn.server_port = dst.port;
    let settings = HttpSettings::sidecar_outbound(Some(dst));
    router::handle_request(&shared.ctx, &conn, &table, &settings, req).await
}

/// `host:port` of an absolute-form `http://` request target (port 80 by default).
pub fn absolute_target(uri: &Uri) -> Option<OriginalDst> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host().filter(|h| !h.is_empty())?;
    Some(OriginalDst::new(host, uri.port_u16().unwrap_or(80)))
}

/// `host:port` of a CONNECT request target (the port is required).
pub fn connect_target(uri: &Uri) -> Option<OriginalDst> {
    let authority = uri.authority()?;
    let host = authority.host();
    let port = authority.port_u16()?;
    (!host.is_empty()).then(|| OriginalDst::new(host, port))
}

/// Answers a CONNECT with 200 and serves the tunnel, once hyper hands it over, as a
/// connection to `dst`.
fn tunnel(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    dst: OriginalDst,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let upgrade = hyper::upgrade::on(&mut req);
    let guard = shared.ctx.drain.guard();
    let shared = Arc::clone(shared);
    let conn = conn.clone();
    let span = tracing::debug_span!("tunnel", remote = %conn.downstream_remote, %dst);
    tokio::spawn(
        async move {
            let _guard = guard;
            let upgraded = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    tracing::debug!(error = %err, "CONNECT tunnel was not established");
                    return;
                }
            };
            let drain = shared.ctx.drain.clone();
            // The TCP proxy watches the forced drain itself, to log before it is cut.
            tokio::select! {
                biased;
                () = outbound::serve(TokioIo::new(upgraded), conn, dst, &shared) => {}
                () = drain.forced() => tracing::debug!("tunnel closed by drain deadline"),
            }
        }
        .instrument(span),
    );
    let mut resp = Response::new(empty());
    resp.extensions_mut().insert(CONNECTED);
    resp
}

/// 400 for a request that does not name a destination, with its access-log line.
fn not_a_proxy_request(
    shared: &Shared,
    conn: &ConnInfo,
    req: &Request<Incoming>,
) -> Response<Body> {
    let began = Instant::now();
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut resp = local::reply(400, "");
    resp.headers_mut().insert(
        http::header::SERVER,
        http::HeaderValue::from_static(router::SIDECAR_SERVER),
    );
    let entry = LogEntry {
        start_time: Some(SystemTime::now()),
        method: Some(req.method().as_str().to_owned()),
        path: req.uri().path_and_query().map(|p| p.as_str().to_owned()),
        authority: req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header(http::header::HOST)),
        protocol: Some("HTTP/1.1".to_owned()),
        response_code: 400,
        response_code_details: Some(NOT_A_PROXY_REQUEST.to_owned()),
        user_agent: header(http::header::USER_AGENT),
        downstream_local_address: Some(conn.downstream_local),
        downstream_remote_address: Some(conn.downstream_remote),
        duration: Some(began.elapsed()),
        ..LogEntry::default()
    };
    // Logged with the format of the version in effect, as every other line.
    let (active, _) = shared.current();
    shared.ctx.logger_for(&active).log(&entry);
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn absolute_targets() {
        assert_eq!(
            absolute_target(&uri("http://Edition.cnn.com/politics")),
            Some(OriginalDst::new("Edition.cnn.com", 80))
        );
        assert_eq!(
            absolute_target(&uri("http://127.0.0.1:8080/")),
            Some(OriginalDst::new("127.0.0.1", 8080))
        );
        assert_eq!(
            absolute_target(&uri("http://[::1]:81/x")),
            Some(OriginalDst::new("::1", 81))
        );
        assert_eq!(absolute_target(&uri("/politics")), None);
        assert_eq!(absolute_target(&uri("https://edition.cnn.com/")), None);
    }

    #[test]
    fn connect_targets() {
        let dst = connect_target(&uri("edition.cnn.com:443")).unwrap();
        assert_eq!(dst, OriginalDst::new("edition.cnn.com", 443));
        assert_eq!(dst.to_string(), "edition.cnn.com:443");
        let v6 = connect_target(&uri("[::1]:8443")).unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:8443");
        assert_eq!(v6.addr(), Some("[::1]:8443".parse().unwrap()));
        assert_eq!(connect_target(&uri("edition.cnn.com")), None);
    }
}
