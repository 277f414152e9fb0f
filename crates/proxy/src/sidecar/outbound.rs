//! One outbound connection whose destination is known: a transparently captured connection
//! (its original destination) or an explicit-proxy `CONNECT` tunnel (its `host:port`). This
//! is what Envoy's `virtualOutbound` listener does when it hands a connection to the
//! `0.0.0.0_<port>` listener of its original destination port (istio-egress.md §3.1, §3.2):
//!
//! * an HTTP port serves HTTP on the stream with the port's route table;
//! * a TLS port peeks the ClientHello (Envoy's `tls_inspector`) and proxies to the route whose
//!   SNI hosts match best (exact, then the longest `*.suffix`, as Envoy matches filter chains'
//!   `server_names`; among equals the first); the client's bytes go as they are, inside TLS
//!   only when the chosen cluster originates it (TLS-in-mTLS to an egress gateway);
//! * a TCP port proxies to its route;
//! * anything else falls to the outbound policy: `PassthroughCluster` to the original
//!   destination (ALLOW_ANY) or `BlackHoleCluster`, which closes the connection at once with
//!   flag `UH` (REGISTRY_ONLY; an HTTPS client sees its TLS handshake fail, curl exit 35).
//!
//! A destination on one of the sidecar's own ports is black-holed whatever the policy (Istio's
//! loop protection for direct connections to 15001).
//!
//! A proxied connection whose destination is one cluster is counted as opened once the
//! upstream is connected ([`OpenNotice`]); with weighted clusters the pick happens inside the
//! TCP proxy, and the connection is counted when it closes.

use std::sync::Arc;

use egress_snapshot::snapshot::{BLACKHOLE_CLUSTER, OutboundPolicy, PASSTHROUGH_CLUSTER};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use super::opened::OpenNotice;
use super::plan::{self, Plan};
use crate::connect::OriginalDst;
use crate::ctx::{Active, ConnInfo};
use crate::http::{HttpSettings, serve_http_with};
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
            let table = port_table(dst.port);
            let settings = HttpSettings::sidecar_outbound(Some(dst));
            serve_http_with(io, conn, table, Arc::clone(&shared.ctx), settings).await;
        }
        Plan::Tcp(route) => {
            let version = (shared.ctx.as_ref(), Arc::clone(&active));
            let name = route.route_name.as_deref();
            let io = noticed(io, &conn, &route.clusters, (shared, &active));
            tcp_proxy::proxy_to(io, &conn, &route.clusters, name, version, Some(&dst)).await;
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
                    let name = route.route_name.as_deref();
                    let io = noticed(io, &conn, &route.clusters, (shared, &active));
                    tcp_proxy::proxy_to(io, &conn, &route.clusters, name, version, Some(&dst))
                        .await;
                }
                None => fallback(io, &conn, (snapshot.outbound, active), &dst, shared).await,
            }
        }
        Plan::Policy => fallback(io, &conn, (snapshot.outbound, active), &dst, shared).await,
    }
}

/// The listener's default filter chain: `PassthroughCluster` under ALLOW_ANY,
/// `BlackHoleCluster` under REGISTRY_ONLY (no endpoints: the TCP proxy logs `UH` and closes).
async fn fallback<I>(
    io: I,
    conn: &ConnInfo,
    (policy, active): (OutboundPolicy, Arc<Active>),
    dst: &OriginalDst,
    shared: &Shared,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin,
{
    let cluster = match policy {
        OutboundPolicy::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundPolicy::RegistryOnly => BLACKHOLE_CLUSTER,
    };
    let clusters = [weighted(cluster)];
    let io = noticed(io, conn, &clusters, (shared, &active));
    let version = (shared.ctx.as_ref(), active);
    tcp_proxy::proxy_to(io, conn, &clusters, None, version, Some(dst)).await;
}

/// `io`, reporting the connection as opened on first use when it goes to a single cluster.
fn noticed<I>(
    io: I,
    conn: &ConnInfo,
    clusters: &[egress_snapshot::snapshot::WeightedCluster],
    (shared, active): (&Shared, &Active),
) -> OpenNotice<I> {
    let logger = match clusters {
        [only]
            if only.cluster != BLACKHOLE_CLUSTER && shared.ctx.access_log.metrics().is_some() =>
        {
            Some(shared.ctx.logger_for(active))
        }
        _ => None,
    };
    let cluster = clusters.first().map_or("", |c| c.cluster.as_str());
    OpenNotice::new(io, conn, cluster, logger)
}
