//! Upstream HTTP connection pools, one per (cluster, authority when the SNI comes from it):
//! idle HTTP/1.1 connections are reused last-in first-out, HTTP/2 connections (when the
//! upstream TLS negotiated `h2`, or, in the pools of an ORIGINAL_DST cluster serving HTTP/2
//! clients, plaintext h2c: Envoy's `use_downstream_protocol` on Istio's PassthroughCluster)
//! are shared by concurrent requests, up to
//! [`MAX_STREAMS_PER_H2_CONNECTION`] each; while the pool does not know yet whether its
//! upstream speaks HTTP/2, concurrent requests wait for the connection being opened instead
//! of each opening one. A pool follows its
//! cluster's `PoolSettings`: `max_connections` open at once (more requests wait, up to
//! `http1_max_pending_requests`; beyond that Envoy's overflow, `UO`), connections retired
//! after `max_requests_per_connection` requests, idle connections dropped after
//! `idle_timeout`. When a cluster's definition changes, its pool is replaced.
//!
//! [`HttpState`] also counts upstream connections and TLS handshakes per cluster, so tests and
//! benchmarks can check that connections are reused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use egress_snapshot::snapshot::{Cluster, Discovery};
use hyper::client::conn::{TrySendError, http1, http2};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Notify;

use super::body::Body;
use crate::connect::{ConnectError, OriginalDst};
use crate::ctx::Ctx;

/// Idle timeout when a cluster sets none (Istio's default: 1h).
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Requests one shared HTTP/2 connection carries at once before another is opened: the
/// concurrency servers commonly allow (hyper 200, nginx 128, Go 250; hyper's client does
/// not tell the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`).
pub const MAX_STREAMS_PER_H2_CONNECTION: usize = 100;

/// What a pool's connections turned out to speak (learnt from the first one's ALPN).
const PROTOCOL_UNKNOWN: u8 = 0;
const PROTOCOL_H1: u8 = 1;
const PROTOCOL_H2: u8 = 2;

/// Per-instance HTTP state: the upstream pools and their counters.
#[derive(Default)]
pub struct HttpState {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    stats: Mutex<HashMap<String, Arc<ClusterStats>>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").finish_non_exhaustive()
    }
}

/// Counters of one cluster.
#[derive(Debug, Default)]
struct ClusterStats {
    connections: AtomicU64,
    tls_handshakes: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    cluster: String,
    /// The cluster's generation ([`crate::ctx::Active::cluster_generation`]): a changed
    /// cluster gets new pools.
    generation: u64,
    /// The authority when the cluster's SNI is taken from it (`auto_sni`) or it is a dynamic
    /// forward proxy (DYNAMIC_DNS), else `None`.
    sni_authority: Option<String>,
    /// Plaintext HTTP/2 (h2c) connections (an ORIGINAL_DST cluster serving an HTTP/2 client).
    h2c: bool,
}

impl HttpState {
    /// Upstream TLS handshakes made for `cluster` so far (one per new TLS connection).
    pub fn upstream_tls_handshakes(&self, cluster: &str) -> u64 {
        self.stat(cluster).tls_handshakes.load(Ordering::Relaxed)
    }

    /// Upstream connections opened for `cluster` so far.
    pub fn upstream_connections(&self, cluster: &str) -> u64 {
        self.stat(cluster).connections.load(Ordering::Relaxed)
    }

    fn stat(&self, cluster: &str) -> Arc<ClusterStats> {
        let mut map = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(cluster.to_owned()).or_default())
    }

    /// The pool for `cluster` (of generation `generation`, see
    /// [`crate::ctx::Active::cluster_generation`]) and `authority`. One lock, no comparison
    /// of clusters: a changed cluster has a new generation and so new pools, and the pools of
    /// its older generations are dropped then (their connections close as their leases end).
    pub fn pool(
        &self,
        cluster: &Cluster,
        generation: u64,
        authority: &str,
        h2c: bool,
    ) -> Arc<Pool> {
        let auto_sni = cluster
            .tls
            .as_ref()
            .is_some_and(|t| t.sni.as_deref().is_none_or(str::is_empty));
        // A dynamic forward proxy's connections belong to the name they were opened for.
        let dynamic = matches!(cluster.discovery, Discovery::DynamicDns { .. });
        let key = PoolKey {
            cluster: cluster.name.clone(),
            generation,
            sni_authority: (auto_sni || dynamic)
                .then(|| super::route::host_without_port(authority)),
            h2c,
        };
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = pools.get(&key) {
            return Arc::clone(pool);
        }
        pools.retain(|k, _| k.cluster != key.cluster || k.generation >= generation);
        let stats = self.stat(&cluster.name);
        let pool = Arc::new(Pool {
            cluster: cluster.clone(),
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(Vec::new()),
            connecting: Mutex::new(HashMap::new()),
            protocol: AtomicU8::new(PROTOCOL_UNKNOWN),
            counters: Arc::new(Counters::default()),
            stats,
            h2c,
        });
        pools.insert(key, Arc::clone(&pool));
        pool
    }
}

/// Open/pending accounting of one pool.
#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    pending: AtomicUsize,
    /// Woken when a connection goes idle or closes.
    changed: Notify,
}

/// Holds one unit of `Counters::open` for the life of a connection.
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// Holds one unit of `Counters::pending` while a request waits for a connection.
struct PendingGuard<'a>(&'a Counters);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Facts about a pooled connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnMeta {
    /// Upstream endpoint.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
}

struct Idle {
    sender: http1::SendRequest<Body>,
    meta: ConnMeta,
    uses: u32,
    since: Instant,
}

struct Shared {
    sender: http2::SendRequest<Body>,
    meta: ConnMeta,
    uses: Arc<AtomicU32>,
    /// Requests in flight on it.
    streams: Arc<AtomicUsize>,
}

/// One request in flight on a shared HTTP/2 connection.
struct StreamSlot(Arc<AtomicUsize>, Weak<Counters>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        if let Some(c) = self.1.upgrade() {
            c.changed.notify_waiters();
        }
    }
}

/// A connection being opened to an endpoint; concurrent requests wait for it when it may
/// turn out to be HTTP/2 (shared) rather than each opening their own.
struct Connecting<'a> {
    pool: &'a Pool,
    addr: SocketAddr,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        let mut connecting = self
            .pool
            .connecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = connecting.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                connecting.remove(&self.addr);
            }
        }
        drop(connecting);
        self.pool.counters.changed.notify_waiters();
    }
}

/// The connections of one cluster (and authority).
pub struct Pool {
    cluster: Cluster,
    idle: Mutex<Vec<Idle>>,
    shared: Mutex<Vec<Shared>>,
    /// Connections being opened, by endpoint.
    connecting: Mutex<HashMap<SocketAddr, usize>>,
    /// `PROTOCOL_*`: what the last connection opened negotiated.
    protocol: AtomicU8,
    counters: Arc<Counters>,
    stats: Arc<ClusterStats>,
    /// New connections speak HTTP/2 without TLS (h2c).
    h2c: bool,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum CheckoutError {
    /// The connector failed (`UH` or `UF`).
    Connect(ConnectError),
    /// Too many connections and pending requests (`UO`).
    Overflow,
    /// The HTTP handshake on a new connection failed.
    Handshake(hyper::Error, ConnMeta),
}

enum Sender {
    H1 {
        sender: http1::SendRequest<Body>,
        uses: u32,
    },
    H2 {
        sender: http2::SendRequest<Body>,
        _slot: StreamSlot,
    },
}

/// A connection lent to one request.
pub struct Lease {
    sender: Sender,
    /// Endpoint and local address.
    pub meta: ConnMeta,
    /// True when the connection had served a request before.
    pub reused: bool,
    pool: Weak<Pool>,
    /// The endpoint choice of this request, held while the request runs (least request).
    _chosen: Option<crate::connect::Chosen>,
}

impl Lease {
    /// True when the connection speaks HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2 { .. })
    }

    /// Sends `req`; when the connection turned out to be unusable before the request was
    /// written, the error carries the request back for another connection.
    pub async fn send(
        &mut self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Body>>> {
        match &mut self.sender {
            Sender::H1 { sender, uses } => {
                *uses += 1;
                sender.try_send_request(req).await
            }
            Sender::H2 { sender, .. } => sender.try_send_request(req).await,
        }
    }

    /// Hands an HTTP/1.1 connection back for the next request (HTTP/2 ones stay shared).
    pub fn release(self) {
        let Sender::H1 { sender, uses } = self.sender else {
            return;
        };
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let max = pool
            .cluster
            .pool
            .max_requests_per_connection
            .filter(|m| *m > 0);
        if sender.is_closed() || max.is_some_and(|m| uses >= m) {
            return;
        }
        pool.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Idle {
                sender,
                meta: self.meta,
                uses,
                since: Instant::now(),
            });
        pool.counters.changed.notify_waiters();
    }
}

impl Pool {
    fn idle_timeout(&self) -> Duration {
        self.cluster
            .pool
            .idle_timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_IDLE_TIMEOUT)
    }

    /// A connection for one request: an idle or shared one, a new one, or (at
    /// `max_connections`) the next one freed, unless too many requests already wait. An
    /// ORIGINAL_DST cluster connects to `original_dst` (connections are reused per
    /// destination address).
    pub async fn checkout(
        self: &Arc<Self>,
        ctx: &Ctx,
        authority: &str,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Lease, CheckoutError> {
        let counters = Arc::clone(&self.counters);
        let mut pending: Option<PendingGuard<'_>> = None;
        let requested = crate::connect::destination(&self.cluster, Some(authority), original_dst);
        let original_dst = requested.as_deref();
        // Load-balance first, then use a connection to the chosen endpoint (as Envoy does):
        // keep-alive reuse must not pin a cluster's traffic to one endpoint.
        let mut chosen = Some(
            ctx.connector
                .choose_for(ctx, &self.cluster, original_dst)
                .await
                .map_err(CheckoutError::Connect)?,
        );
        loop {
            let notified = counters.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let addr = match &chosen {
                Some(c) => c.addr(),
                None => {
                    let c = ctx
                        .connector
                        .choose_for(ctx, &self.cluster, original_dst)
                        .await
                        .map_err(CheckoutError::Connect)?;
                    let a = c.addr();
                    chosen = Some(c);
                    a
                }
            };
            if let Some(mut lease) = self.take_idle(addr).await {
                lease._chosen = chosen.take();
                return Ok(lease);
            }
            if let Some(mut lease) = self.take_shared(addr) {
                lease._chosen = chosen.take();
                return Ok(lease);
            }
            // Until the pool knows its upstream speaks HTTP/1.1 only, a request waits for a
            // connection being opened to its endpoint: if that one speaks HTTP/2 it is shared.
            let may_share = self.protocol.load(Ordering::Acquire) != PROTOCOL_H1;
            if may_share && self.is_connecting(addr) {
                notified.await;
                continue;
            }
            if let Some(guard) = self.reserve() {
                drop(pending.take());
                let Some(c) = chosen.take() else {
                    continue;
                };
                return self.open(ctx, authority, guard, c).await;
            }
            if pending.is_none() {
                let max_pending = self
                    .cluster
                    .pool
                    .http1_max_pending_requests
                    .map_or(usize::MAX, |m| m as usize);
                if counters.pending.fetch_add(1, Ordering::AcqRel) >= max_pending {
                    counters.pending.fetch_sub(1, Ordering::AcqRel);
                    return Err(CheckoutError::Overflow);
                }
                pending = Some(PendingGuard(&counters));
            }
            notified.await;
        }
    }

    async fn take_idle(self: &Arc<Self>, addr: SocketAddr) -> Option<Lease> {
        let idle_timeout = self.idle_timeout();
        loop {
            let idle = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let at = idle.iter().rposition(|i| i.meta.peer == addr)?;
                idle.remove(at)
            };
            if idle.since.elapsed() >= idle_timeout || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_err() {
                continue;
            }
            return Some(Lease {
                sender: Sender::H1 {
                    sender,
                    uses: idle.uses,
                },
                meta: idle.meta,
                reused: true,
                pool: Arc::downgrade(self),
                _chosen: None,
            });
        }
    }

    fn is_connecting(&self, addr: SocketAddr) -> bool {
        self.connecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&addr)
    }

    fn start_connecting(&self, addr: SocketAddr) -> Connecting<'_> {
        *self
            .connecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr)
            .or_default() += 1;
        Connecting { pool: self, addr }
    }

    fn take_shared(self: &Arc<Self>, addr: SocketAddr) -> Option<Lease> {
        let max = self
            .cluster
            .pool
            .max_requests_per_connection
            .filter(|m| *m > 0);
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.retain(|s| !s.sender.is_closed());
        let at = shared.iter().position(|s| {
            s.meta.peer == addr && s.streams.load(Ordering::Acquire) < MAX_STREAMS_PER_H2_CONNECTION
        })?;
        let s = &shared[at];
        let used = s.uses.fetch_add(1, Ordering::AcqRel) + 1;
        s.streams.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot(Arc::clone(&s.streams), Arc::downgrade(&self.counters));
        let lease = Lease {
            sender: Sender::H2 {
                sender: s.sender.clone(),
                _slot: slot,
            },
            meta: s.meta,
            reused: used > 1,
            pool: Arc::downgrade(self),
            _chosen: None,
        };
        if max.is_some_and(|m| used >= m) {
            shared.remove(at);
        }
        Some(lease)
    }

    fn reserve(&self) -> Option<OpenGuard> {
        let max = self
            .cluster
            .pool
            .max_connections
            .map_or(usize::MAX, |m| m as usize);
        let c = &self.counters;
        let mut open = c.open.load(Ordering::Acquire);
        loop {
            if open >= max {
                return None;
            }
            match c
                .open
                .compare_exchange(open, open + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(OpenGuard(Arc::clone(c))),
                Err(now) => open = now,
            }
        }
    }

    async fn open(
        self: &Arc<Self>,
        ctx: &Ctx,
        authority: &str,
        guard: OpenGuard,
        chosen: crate::connect::Chosen,
    ) -> Result<Lease, CheckoutError> {
        let _connecting = self.start_connecting(chosen.addr());
        let up = ctx
            .connector
            .connect_chosen(ctx, &self.cluster, Some(authority), chosen)
            .await
            .map_err(CheckoutError::Connect)?;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        if up.tls {
            self.stats.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        }
        let meta = ConnMeta {
            peer: up.peer,
            local: up.local,
        };
        let io = TokioIo::new(up.io);
        let h2 = up.alpn.as_deref() == Some(b"h2".as_slice()) || (self.h2c && !up.tls);
        let protocol = if h2 { PROTOCOL_H2 } else { PROTOCOL_H1 };
        self.protocol.store(protocol, Ordering::Release);
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| CheckoutError::Handshake(e, meta))?;
            tokio::spawn(async move {
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "upstream HTTP/2 connection ended");
                }
                drop(guard);
            });
            let uses = Arc::new(AtomicU32::new(1));
            let streams = Arc::new(AtomicUsize::new(1));
            let slot = StreamSlot(Arc::clone(&streams), Arc::downgrade(&self.counters));
            let max = self
                .cluster
                .pool
                .max_requests_per_connection
                .filter(|m| *m > 0);
            if max.is_none_or(|m| m > 1) {
                self.shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Shared {
                        sender: sender.clone(),
                        meta,
                        uses,
                        streams,
                    });
            }
            return Ok(Lease {
                sender: Sender::H2 {
                    sender,
                    _slot: slot,
                },
                meta,
                reused: false,
                pool: Arc::downgrade(self),
                _chosen: None,
            });
        }
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| CheckoutError::Handshake(e, meta))?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "upstream HTTP/1.1 connection ended");
            }
            drop(guard);
        });
        Ok(Lease {
            sender: Sender::H1 { sender, uses: 0 },
            meta,
            reused: false,
            pool: Arc::downgrade(self),
            _chosen: None,
        })
    }
}
