//! Envoy's `tcp_proxy`: pick one of a chain's weighted clusters, connect, and splice bytes
//! both ways until both sides are done; then write one TCP access-log line
//! (`"- - -" 0 <flags> …` with byte counts, upstream host, cluster and addresses).
//!
//! On a passthrough chain the bytes are the client's own TLS (the replayed ClientHello and
//! everything after it) and TLS is never originated, even when the cluster has `tls`
//! settings: Envoy's tcp_proxy on a passthrough chain uses the cluster's transport as
//! generated for plain TCP, and wrapping the client's TLS in another TLS would break it. On a
//! TLS-terminated chain the decrypted bytes are sent, with TLS originated when the cluster
//! says so. No cluster (`NC`), no endpoint (`UH`) or a failed connect (`UF`) closes the
//! downstream connection.
//!
//! A passthrough chain between two plain TCP sockets is forwarded with `splice(2)`
//! ([`splice`]): the bytes never enter the process. Anything else (TLS on either side) is
//! copied through 64 KiB buffers.

mod splice;

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use egress_snapshot::snapshot::{Snapshot, WeightedCluster};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::accesslog::{LogEntry, ResponseFlag, ResponseFlags};
use crate::connect::OriginalDst;
use crate::ctx::{Active, ConnInfo, Ctx};
use crate::requested::Found;
use crate::sni::Rewind;

/// A TCP access-log entry for `conn`, started at `start`, with nothing else filled in.
pub fn tcp_entry(conn: &ConnInfo, start: SystemTime) -> LogEntry {
    LogEntry {
        start_time: Some(start),
        downstream_local_address: Some(conn.downstream_local),
        downstream_remote_address: Some(conn.downstream_remote),
        requested_server_name: conn.sni.clone(),
        peer_uri_san: conn.peer_identity.clone(),
        ..LogEntry::default()
    }
}

/// Picks one of `clusters` by weight (`None` when the list is empty).
pub fn pick_weighted(clusters: &[WeightedCluster]) -> Option<&WeightedCluster> {
    let total: u64 = clusters.iter().map(|c| u64::from(c.weight.max(1))).sum();
    if total == 0 {
        return None;
    }
    let mut n = rand::rng().random_range(0..total);
    for c in clusters {
        let w = u64::from(c.weight.max(1));
        if n < w {
            return Some(c);
        }
        n -= w;
    }
    clusters.last()
}

/// Proxies `downstream` to one of `clusters`, then logs the connection. `passthrough` means
/// the bytes are the client's TLS and no TLS is originated.
pub async fn proxy<D>(
    downstream: D,
    conn: &ConnInfo,
    clusters: &[WeightedCluster],
    route_name: Option<&str>,
    ctx: &Ctx,
    passthrough: bool,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let target = Target {
        clusters,
        passthrough,
        original_dst: None,
        found: None,
    };
    let version = (ctx, ctx.active());
    forward(
        downstream,
        conn,
        &target,
        route_name,
        version,
        None,
        as_tcp::<D>,
    )
    .await;
}

/// Like [`proxy`], under the configuration version `active` the connection was accepted
/// with (its listener and filter chain came from it), and with
/// `%CONNECTION_TERMINATION_DETAILS%` preset to `termination_details` (a dry-run
/// AuthorizationPolicy's would-be denial, see [`crate::authz`]).
pub async fn proxy_noted<D>(
    downstream: D,
    conn: &ConnInfo,
    clusters: &[WeightedCluster],
    route_name: Option<&str>,
    (ctx, active): (&Ctx, Arc<Active>),
    passthrough: bool,
    termination_details: Option<String>,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let target = Target {
        clusters,
        passthrough,
        original_dst: None,
        found: None,
    };
    let version = (ctx, active);
    forward(
        downstream,
        conn,
        &target,
        route_name,
        version,
        termination_details,
        as_tcp::<D>,
    )
    .await;
}

/// Like [`proxy`] without passthrough, under the configuration version `active` the
/// connection's route came from; an ORIGINAL_DST cluster (`PassthroughCluster`) connects to
/// `original_dst`, the destination the client asked for. What `found` found in the client's
/// first bytes (a sidecar's policy fallback, [`crate::requested`]) fills the log line's SNI
/// and authority where the connection had none.
pub async fn proxy_to<D>(
    downstream: D,
    conn: &ConnInfo,
    (clusters, route_name): (&[WeightedCluster], Option<&str>),
    (ctx, active): (&Ctx, Arc<Active>),
    original_dst: Option<&OriginalDst>,
    found: Option<&Found>,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    let target = Target {
        clusters,
        passthrough: false,
        original_dst,
        found,
    };
    let version = (ctx, active);
    forward(
        downstream,
        conn,
        &target,
        route_name,
        version,
        None,
        not_tcp::<D>,
    )
    .await;
}

/// Connects, forwards and logs.
async fn forward<D>(
    downstream: D,
    conn: &ConnInfo,
    target: &Target<'_>,
    route_name: Option<&str>,
    (ctx, active): (&Ctx, Arc<Active>),
    termination_details: Option<String>,
    tcp: RawTcp<D>,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    let start = SystemTime::now();
    let began = Instant::now();
    // The connection runs under one configuration version to its end, log line included.
    let mut entry = tcp_entry(conn, start);
    entry.route_name = route_name.map(str::to_owned);
    entry.connection_termination_details = termination_details;
    let counters = Arc::new(Counters::default());
    let mut downstream = Counting {
        io: downstream,
        counters: Arc::clone(&counters),
    };
    let logger = ctx.logger_for(&active);
    run(
        &mut downstream,
        conn,
        target,
        (ctx, &active.snapshot, &logger),
        &mut entry,
        &counters,
        tcp,
    )
    .await;
    entry.bytes_received = counters.received.load(Ordering::Relaxed);
    entry.bytes_sent = counters.sent.load(Ordering::Relaxed);
    entry.duration = Some(began.elapsed());
    if let Some(found) = target.found.and_then(Found::get) {
        found.annotate(&mut entry);
    }
    // Logged before anything else is awaited: a forced drain may drop this future next.
    logger.log(&entry);
    let _ = downstream.shutdown().await;
}

/// Where a connection goes.
struct Target<'a> {
    clusters: &'a [WeightedCluster],
    passthrough: bool,
    original_dst: Option<&'a OriginalDst>,
    /// What the client's first bytes asked for, when they were sniffed.
    found: Option<&'a Found>,
}

async fn run<D>(
    downstream: &mut Counting<D>,
    conn: &ConnInfo,
    target: &Target<'_>,
    (ctx, snapshot, logger): (&Ctx, &Snapshot, &crate::accesslog::AccessLogger),
    entry: &mut LogEntry,
    counters: &Counters,
    tcp: RawTcp<D>,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    let Some(chosen) = pick_weighted(target.clusters) else {
        entry.response_flags = ResponseFlags::from(ResponseFlag::NoClusterFound);
        return;
    };
    entry.upstream_cluster = Some(chosen.cluster.clone());
    let Some(cluster) = snapshot.clusters.get(&chosen.cluster) else {
        tracing::debug!(cluster = %chosen.cluster, "tcp_proxy: cluster not found");
        entry.response_flags = ResponseFlags::from(ResponseFlag::NoClusterFound);
        return;
    };
    let authority = conn.sni.as_deref();
    let connector = &ctx.connector;
    let connected = if let Some(tunnel) = &cluster.tunnel {
        connector.connect_tunneled(ctx, cluster, tunnel).await
    } else if target.passthrough {
        connector
            .connect_tcp_to(ctx, cluster, authority, target.original_dst)
            .await
    } else {
        connector
            .connect_to(ctx, cluster, authority, target.original_dst)
            .await
    };
    let mut upstream = match connected {
        Ok(u) => u,
        Err(err) => {
            tracing::debug!(error = %err, cluster = %cluster.name, "tcp_proxy: upstream connect failed");
            let flag = err.response_flag();
            entry.response_flags.insert(flag);
            // Envoy's tcp_proxy makes one connect attempt (max_connect_attempts 1): a failed
            // one also exhausts its retries (`UF,URX`, as Istio's TCP logs show).
            if flag == ResponseFlag::UpstreamConnectionFailure {
                entry
                    .response_flags
                    .insert(ResponseFlag::UpstreamRetryLimitExceeded);
            }
            entry.upstream_transport_failure_reason = err.transport_failure_reason();
            entry.upstream_host = err.upstream_host();
            if let Some(details) = err.response_code_details() {
                entry.connection_termination_details = Some(details);
            }
            return;
        }
    };
    entry.upstream_host = Some(upstream.peer);
    entry.upstream_local_address = Some(upstream.local);
    // Istio counts a TCP connection as opened when it is established upstream; a sniffed one
    // is counted by its tap once its name is known (crate::requested::Tap).
    if target.found.is_none() {
        logger.tcp_opened(entry);
    }
    // A proxied connection is busy, never shed as idle; its idleness is the TCP idle timeout's.
    let _busy = crate::limits::conn::current().map(|c| c.begin_stream());
    let idle = ctx.options.limits.tcp_idle_timeout;
    tokio::select! {
        result = copy(downstream, &mut upstream, target.passthrough, counters, tcp) => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "tcp_proxy: connection ended with an error");
            }
        }
        () = idle_timeout(counters, idle) => {
            tracing::debug!("tcp_proxy: idle timeout");
            ctx.conns.counters().hit(crate::limits::Limit::TcpIdleTimeout);
            entry.connection_termination_details = Some(IDLE_TIMEOUT_DETAILS.to_owned());
        }
        _ = ctx.drain.forced() => {
            tracing::debug!("tcp_proxy: closed by drain deadline");
        }
    }
    // Dropping the upstream closes it.
}

/// `%CONNECTION_TERMINATION_DETAILS%` of a connection closed by the TCP idle timeout.
pub const IDLE_TIMEOUT_DETAILS: &str = "tcp_proxy_idle_timeout";

/// Resolves once no byte moved either way for `idle` (never when `None`). Checked at a
/// tenth of the timeout, so it fires between `idle` and 1.1 × `idle` after the last byte.
async fn idle_timeout(counters: &Counters, idle: Option<Duration>) {
    let Some(idle) = idle.filter(|d| !d.is_zero()) else {
        return std::future::pending().await;
    };
    let tick = (idle / 10).max(Duration::from_millis(1));
    let moved =
        || counters.received.load(Ordering::Relaxed) + counters.sent.load(Ordering::Relaxed);
    let mut last = moved();
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        let now = moved();
        if now == last {
            quiet += tick;
            if quiet >= idle {
                return;
            }
        } else {
            last = now;
            quiet = Duration::ZERO;
        }
    }
}

/// Finds the plain TCP socket (behind the replayed ClientHello) a downstream stream is, if it
/// is one.
type RawTcp<D> = fn(&mut D) -> Option<&mut Rewind<TcpStream>>;

fn as_tcp<D: 'static>(d: &mut D) -> Option<&mut Rewind<TcpStream>> {
    (d as &mut dyn Any).downcast_mut()
}

fn not_tcp<D>(_: &mut D) -> Option<&mut Rewind<TcpStream>> {
    None
}

/// Buffer size of each direction of a buffered copy.
const COPY_BUFFER: usize = 64 * 1024;

/// Moves bytes both ways until both directions end: spliced when this is a passthrough
/// between two plain TCP sockets, else through buffers.
async fn copy<D>(
    downstream: &mut Counting<D>,
    upstream: &mut crate::connect::Upstream,
    passthrough: bool,
    counters: &Counters,
    tcp: RawTcp<D>,
) -> io::Result<()>
where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    if passthrough && let (Some(up), Some(down)) = (upstream.tcp(), tcp(&mut downstream.io)) {
        let (unread, down) = down.take_unread();
        splice::write_all(up, &unread).await?;
        counters
            .received
            .fetch_add(unread.len() as u64, Ordering::Relaxed);
        return splice::bidirectional(down, up, counters).await;
    }
    tokio::io::copy_bidirectional_with_sizes(downstream, &mut upstream.io, COPY_BUFFER, COPY_BUFFER)
        .await
        .map(|_| ())
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
}

/// Counts bytes read from (received) and written to (sent) the downstream.
struct Counting<D> {
    io: D,
    counters: Arc<Counters>,
}

impl<D: AsyncRead + Unpin> AsyncRead for Counting<D> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.counters
            .received
            .fetch_add(n as u64, Ordering::Relaxed);
        result
    }
}

impl<D: AsyncWrite + Unpin> AsyncWrite for Counting<D> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            self.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use egress_snapshot::snapshot::HeaderOps;

    fn wc(name: &str, weight: u32) -> WeightedCluster {
        WeightedCluster {
            cluster: name.into(),
            weight,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }
    }

    #[test]
    fn weighted_pick() {
        assert!(pick_weighted(&[]).is_none());
        let one = [wc("a", 5)];
        assert_eq!(pick_weighted(&one).unwrap().cluster, "a");
        let two = [wc("a", 1), wc("b", 1000)];
        let picks: Vec<_> = (0..20)
            .map(|_| pick_weighted(&two).unwrap().cluster.clone())
            .collect();
        assert!(picks.iter().any(|c| c == "b"));
    }
}
