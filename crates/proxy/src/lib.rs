//! The egress gateway's data plane. It serves one [`egress_snapshot::snapshot::Snapshot`] at a
//! time, read from a `tokio::sync::watch` channel: a new snapshot is swapped in for new
//! connections and requests while in-flight ones finish on the old one.
//!
//! Layout: `listener` binds and accepts, `sni` peeks ClientHellos, `tcp_proxy` splices bytes,
//! `tls_server` terminates downstream TLS, `connect` resolves, balances and opens upstream
//! connections (with TLS origination and an optional source address), `http` routes requests,
//! `accesslog` writes Istio-format lines, `metrics` counts Istio's standard metrics (served
//! on the metrics and prometheus ports by `health`), `health` answers 15021, `drain` stops
//! gracefully, `guard` screens DNS answers and checks Host against SNI, `limits` holds clients
//! to the downstream limits (timeouts, header limits, connections per listener).
//!
//! [`Proxy::start`] is the entry point; [`Proxy::shutdown`] drains it.
//!
//! [`sidecar::Sidecar`] is a sidecar's outbound data plane (explicit proxy and transparent
//! capture) built from the same pieces, serving an
//! [`egress_snapshot::snapshot::SidecarSnapshot`].

pub mod accesslog;
pub mod authz;
pub mod connect;
pub mod ctx;
pub mod drain;
pub mod guard;
pub mod health;
pub mod http;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod pem;
pub mod requested;
pub mod sidecar;
pub mod sni;
pub mod tcp_proxy;
pub mod tls_server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_snapshot::snapshot::Snapshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use ctx::{Active, ConnInfo, Ctx, ProxyOptions, UpstreamOptions};

use connect::{ConnectError, Connector};
use drain::Drain;
use health::{Endpoints, Readiness, Server, start_metrics_servers, stop_servers};
use listener::{BindError, Listeners};
use metrics::Metrics;

/// How long connections get after a forced drain to notice it and close.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener of the first snapshot could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The health port could not be bound.
    #[error("binding the health port on {addr}: {source}")]
    Health {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The metrics port or the prometheus port could not be bound.
    #[error("binding the metrics port on {addr}: {source}")]
    Metrics {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The upstream connector could not be built.
    #[error(transparent)]
    Connector(#[from] ConnectError),
}

/// A running proxy instance.
pub struct Proxy {
    ctx: Arc<Ctx>,
    listeners: Arc<Listeners>,
    readiness: Arc<Readiness>,
    applied: watch::Receiver<u64>,
    reconciler: JoinHandle<()>,
    health: Option<Server>,
    metrics_server: Option<Server>,
    prometheus_server: Option<Server>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listeners", &self.listeners)
            .field("health", &self.health_addr())
            .field("metrics", &self.metrics_addr())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts serving: binds the health port (when `options.health_port` is set; port 0 binds
    /// an ephemeral port) and the listeners of the current snapshot, then follows the channel,
    /// re-binding only what changes. Fails if the health port or a listener of the first
    /// snapshot cannot be bound; later bind failures are logged and retried with the next
    /// snapshot. The access logger's format follows each snapshot's `access_log` settings.
    ///
    /// Every request and connection is also recorded into the instance's [`Metrics`]
    /// (served as `/stats/prometheus` when `options.metrics_port` or
    /// `options.prometheus_port` is set, see [`Proxy::metrics`]); the identity's SPIFFE id is
    /// the `source_principal` of ISTIO_MUTUAL clusters.
    pub async fn start(
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        options: ProxyOptions,
        identity: Option<Arc<egress_identity::IdentityHandle>>,
        access_log: accesslog::AccessLogger,
    ) -> Result<Proxy, ProxyError> {
        let connector = Connector::new(&options)?;
        let drain = Drain::new();
        let local = metrics::LocalWorkload::default().with_identity(identity.as_deref());
        let metrics = Metrics::gateway().with_connections(drain.clone());
        metrics.set_local_workload(local);
        let metrics = Arc::new(metrics);
        let conns = Arc::new(limits::Connections::new(&options.limits, Arc::default()));
        metrics.set_limit_counters(Arc::clone(conns.counters()));
        let access_log = access_log.with_metrics(Arc::clone(&metrics));
        let ctx = Arc::new(Ctx {
            snapshots: snapshots.clone(),
            options,
            connector,
            identity,
            access_log,
            drain: drain.clone(),
            http: Arc::default(),
            conns,
            active: Default::default(),
        });
        let readiness = Arc::new(Readiness::new(drain));
        let endpoints = |metrics: Option<Arc<Metrics>>| Endpoints {
            readiness: Arc::clone(&readiness),
            metrics,
        };
        let ip = ctx
            .options
            .listen_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let health = match ctx.options.health_port {
            None => None,
            Some(port) => Some(
                Server::start(ip, port, endpoints(None))
                    .await
                    .map_err(|(addr, source)| ProxyError::Health { addr, source })?,
            ),
        };
        let ports = [ctx.options.metrics_port, ctx.options.prometheus_port];
        let [metrics_server, prometheus_server] =
            match start_metrics_servers(ip, ports, &endpoints(Some(Arc::clone(&metrics)))).await {
                Ok(servers) => servers,
                Err((addr, source)) => {
                    stop_servers([health]).await;
                    return Err(ProxyError::Metrics { addr, source });
                }
            };
        let listeners = Arc::new(Listeners::new(Arc::clone(&ctx)));
        let first = snapshots.borrow_and_update().clone();
        let (applied_tx, applied) = watch::channel(first.version);
        if let Some(err) = apply(&ctx, &listeners, &readiness, &first)
            .await
            .into_iter()
            .next()
        {
            listeners.stop_all().await;
            stop_servers([health, metrics_server, prometheus_server]).await;
            return Err(err.into());
        }
        let reconciler = tokio::spawn(follow(
            snapshots,
            Arc::clone(&ctx),
            Arc::clone(&listeners),
            Arc::clone(&readiness),
            applied_tx,
        ));
        Ok(Proxy {
            ctx,
            listeners,
            readiness,
            applied,
            reconciler,
            health,
            metrics_server,
            prometheus_server,
            metrics,
        })
    }

    /// Listener name → the address it is bound to, sorted by name. A listener whose port is 0
    /// is bound to an ephemeral port, shown here.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.bound()
    }

    /// The bound health address, when the health server runs.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(Server::addr)
    }

    /// The bound metrics address (`/stats/prometheus`), when the metrics port is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(Server::addr)
    }

    /// The bound prometheus address (Envoy's 15090), when the prometheus port is served.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_server.as_ref().map(Server::addr)
    }

    /// The instance's metrics: what `/stats/prometheus` shows, and the setters the embedding
    /// process reports to ([`Metrics::reload`], [`Metrics::set_local_workload`]).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Reports a configuration reload of `version` by the embedding process: `Ok(())` when
    /// it was accepted (and sent to the snapshot channel), `Err(reason)` when it was refused
    /// (the last good snapshot keeps serving). Shown as the `egress_config_reload_total`,
    /// `egress_config_last_reload_*` figures (see [`metrics::reload`]); a refusal is logged.
    pub fn record_reload(&self, version: u64, result: Result<(), String>) {
        if let Err(reason) = &result {
            tracing::warn!(version, %reason, "configuration refused; the previous one keeps serving");
        }
        self.metrics.reload(version, result);
    }

    /// Version of the last snapshot applied (listeners reconciled).
    pub fn applied_version(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until a snapshot with version `version` or later has been applied; false if the
    /// proxy stopped following snapshots first.
    pub async fn wait_applied(&self, version: u64) -> bool {
        let mut applied = self.applied.clone();
        applied.wait_for(|v| *v >= version).await.is_ok()
    }

    /// True when the readiness probe answers 200.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// The listeners of the current snapshot that could not be bound, each as its error.
    pub fn unbound(&self) -> Vec<String> {
        self.readiness.unbound()
    }

    /// The shared state (test hook, feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Drains: stops accepting (readiness turns 503), lets in-flight connections and requests
    /// finish for up to `grace`, then closes whatever is left and stops the health server.
    pub async fn shutdown(self, grace: Duration) {
        let drain = &self.ctx.drain;
        drain.signal();
        self.reconciler.abort();
        let _ = self.reconciler.await;
        self.listeners.stop_all().await;
        if !drain.wait_idle(grace).await {
            tracing::info!(
                in_flight = drain.in_flight(),
                "drain grace period over; closing connections"
            );
            drain.force();
            drain.wait_idle(FORCE_CLOSE_WAIT).await;
        }
        stop_servers([self.health, self.metrics_server, self.prometheus_server]).await;
    }
}

/// Applies one snapshot: access-log format, listeners, readiness.
async fn apply(
    ctx: &Ctx,
    listeners: &Listeners,
    readiness: &Readiness,
    snapshot: &Snapshot,
) -> Vec<BindError> {
    // The version's indexes and access-log format are built here, before any connection of
    // it is accepted.
    ctx.prepare();
    let errors = listeners.reconcile(snapshot).await;
    if let Some(metrics) = ctx.access_log.metrics() {
        metrics.set_config_version(snapshot.version);
    }
    readiness.set_unbound(errors.iter().map(ToString::to_string).collect());
    if snapshot.version > 0 {
        readiness.set_loaded();
    }
    tracing::info!(
        version = snapshot.version,
        listeners = snapshot.listeners.len(),
        "snapshot applied"
    );
    errors
}

/// Applies every new snapshot until the sender goes away (then the last one keeps serving).
async fn follow(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    ctx: Arc<Ctx>,
    listeners: Arc<Listeners>,
    readiness: Arc<Readiness>,
    applied: watch::Sender<u64>,
) {
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        if ctx.drain.is_draining() {
            return;
        }
        apply(&ctx, &listeners, &readiness, &snapshot).await;
        applied.send_replace(snapshot.version);
    }
}
