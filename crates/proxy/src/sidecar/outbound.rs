//! One outbound connection whose destination is known: a transparently captured connection
//! (its original destination) or an explicit-proxy `CONNECT` tunnel (its `host:port`). This
//! is what Envoy's `virtualOutbound` listener does when it hands a connection to the
//! `0.0.0.0_<port>` listener of its original destination port (istio-egress.md §3.1, §3.2):
//!
//! * an HTTP port serves HTTP on the stream with the port's route table; a connection that does
//!   not speak HTTP there (TLS, raw TCP: Istio's "Conflict" cases) goes to the outbound policy,
//!   as Envoy's `http_inspector` sends it to the passthrough chain (a client silent for the
//!   listener-filter timeout too);
//! * a TLS port peeks the ClientHello (Envoy's `tls_inspector`) and proxies to the route whose
//!   SNI hosts match best (exact, then the longest `*.suffix`, as Envoy matches filter chains'
//!   `server_names`; among equals the first); the client's bytes go as they are, inside TLS
//!   only when the chosen cluster originates it (TLS-in-mTLS to an egress gateway);
//! * a TCP port proxies to its route;
//! * anything else falls to the outbound policy: `PassthroughCluster` to the original
//!   destination (ALLOW_ANY) or `BlackHoleCluster`, which closes the connection with flag `UH`
//!   (REGISTRY_ONLY; an HTTPS client sees its TLS handshake fail, curl exit 35).
//!
//! A destination on one of the sidecar's own ports is black-holed whatever the policy (Istio's
//! loop protection for direct connections to 15001).
//!
//! Stricter than Istio, so that denials can be seen: a policy decision's log line and metrics
//! name what the client asked for ([`crate::requested`]), the SNI of its ClientHello or the
//! Host of its HTTP/1 request, next to the original destination (`%DOWNSTREAM_LOCAL_ADDRESS%`).
//! The black hole reads the client's first bytes before closing (at most
//! [`SNIFF_TIMEOUT`](crate::requested::SNIFF_TIMEOUT)); the passthrough connects at once and
//! reads the name from the bytes as they pass ([`Tap`]), so a server-first protocol is never
//! held back. Envoy's catch-all chain has no TLS or HTTP inspector and logs `-` for both.

use std::sync::Arc;

use egress_snapshot::snapshot::{BLACKHOLE_CLUSTER, OutboundPolicy, PASSTHROUGH_CLUSTER};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use super::plan::{self, Plan};
use crate::accesslog::LogEntry;
use crate::connect::OriginalDst;
use crate::ctx::{Active, ConnInfo};
use crate::http::{HttpSettings, serve_http_with};
use crate::requested::{self, Found, Tap};
use crate::sni::{self, Rewind};
use crate::tcp_proxy;
use egress_snapshot::sidecar_view::{port_table, weighted};

/// Serves `io`, a connection from `conn.downstream_remote` to `dst`, with the snapshot
/// current now (HTTP requests are routed with the one current at each request).
pub(super) async fn serve<I>(mut io: I, mut conn: ConnInfo, dst: OriginalDst, shared: &Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    conn.server_port = dst.port;
    if shared.is_own_port(dst.port) {
        tracing::debug!(%dst, "connection to the sidecar's own port: black hole");
        let active = shared.ctx.active();
        return fallback(
            io,
            &conn,
            (OutboundPolicy::RegistryOnly, active),
            &dst,
            shared,
        )
        .await;
    }
    // The plan, the clusters and the log line of a proxied connection all come from this one
    // version; HTTP requests take the version current at each request.
    let (active, snapshot) = shared.current();
    match plan::plan(&snapshot, dst.port) {
        Plan::Http => {
            // Envoy's http_inspector: only HTTP is served on an HTTP port; anything else
            // (TLS, raw TCP) goes to the outbound policy as on a port with no entry.
            let (prefix, speaks) =
                requested::read_protocol(&mut io, sni::CLIENT_HELLO_TIMEOUT).await;
            let io = Rewind::new(prefix, io);
            if speaks == requested::Protocol::Http {
                let table = port_table(dst.port);
                let settings = HttpSettings::sidecar_outbound(Some(dst));
                serve_http_with(io, conn, table, Arc::clone(&shared.ctx), settings).await;
            } else {
                fallback(io, &conn, (snapshot.outbound, active), &dst, shared).await;
            }
        }
        Plan::Tcp(route) => {
            let version = (shared.ctx.as_ref(), Arc::clone(&active));
            let route = (route.clusters.as_slice(), route.route_name.as_deref());
            tcp_proxy::proxy_to(io, &conn, route, version, Some(&dst), None).await;
        }
        Plan::Tls(routes) => {
            let peeked = match sni::read_client_hello(&mut io, sni::CLIENT_HELLO_TIMEOUT).await {
                Ok(peeked) => peeked,
                Err(err) => {
                    tracing::debug!(error = %err, %dst, "closing connection");
                    return;
                }
            };
            conn.sni = peeked.sni().map(str::to_owned);
            let io = Rewind::new(peeked.buffered, io);
            let names = routes.iter().map(|r| r.sni_hosts.as_slice());
            match sni::select_chain(names, conn.sni.as_deref()) {
                Some(index) => {
                    let route = &routes[index];
                    let version = (shared.ctx.as_ref(), Arc::clone(&active));
                    let route = (route.clusters.as_slice(), route.route_name.as_deref());
                    tcp_proxy::proxy_to(io, &conn, route, version, Some(&dst), None).await;
                }
                None => fallback(io, &conn, (snapshot.outbound, active), &dst, shared).await,
            }
        }
        Plan::Policy => fallback(io, &conn, (snapshot.outbound, active), &dst, shared).await,
    }
}

/// The listener's default filter chain: `PassthroughCluster` under ALLOW_ANY,
/// `BlackHoleCluster` under REGISTRY_ONLY (no endpoints: the TCP proxy logs `UH` and closes),
/// each logged and counted with the name the client asked for.
async fn fallback<I>(
    mut io: I,
    conn: &ConnInfo,
    (policy, active): (OutboundPolicy, Arc<Active>),
    dst: &OriginalDst,
    shared: &Shared,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin,
{
    let version = (shared.ctx.as_ref(), Arc::clone(&active));
    match policy {
        OutboundPolicy::AllowAny => {
            let clusters = [weighted(PASSTHROUGH_CLUSTER)];
            let opened = LogEntry {
                downstream_remote_address: Some(conn.downstream_remote),
                downstream_local_address: Some(conn.downstream_local),
                peer_uri_san: conn.peer_identity.clone(),
                upstream_cluster: Some(PASSTHROUGH_CLUSTER.to_owned()),
                requested_server_name: conn.sni.clone(),
                ..LogEntry::default()
            };
            let io = Tap::new(io, Some((shared.ctx.logger_for(&active), opened)));
            let found = io.found();
            let route = (clusters.as_slice(), None);
            tcp_proxy::proxy_to(io, conn, route, version, Some(dst), Some(&found)).await;
        }
        OutboundPolicy::RegistryOnly => {
            let clusters = [weighted(BLACKHOLE_CLUSTER)];
            let (_, asked) = requested::read_requested(&mut io, requested::SNIFF_TIMEOUT).await;
            let found = Found::decided(asked);
            let route = (clusters.as_slice(), None);
            tcp_proxy::proxy_to(io, conn, route, version, Some(dst), Some(&found)).await;
        }
    }
}
