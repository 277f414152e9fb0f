//! A sidecar's outbound data plane: what Istio's sidecar Envoy does with the traffic its
//! workload sends out (istio-egress.md §3.1–3.4, §3.9, §3.10), serving one
//! configuration at a time from a `watch` channel: a [`Snapshot`] in the routable form
//! (`egress_snapshot::sidecar_view::routable`) carrying its [`SidecarSnapshot`].
//!
//! Two ways in:
//! * the explicit proxy ([`SidecarOptions::proxy_listen`]), for `http_proxy`/`https_proxy`
//!   clients: absolute-form HTTP requests and `CONNECT` tunnels ([`explicit`]);
//! * transparent capture ([`SidecarOptions::capture_listen`]), for connections iptables
//!   REDIRECTs to it, whose original destination is read with `SO_ORIGINAL_DST`
//!   ([`capture`]).
//!
//! Either way a connection to a known destination is handled per destination port
//! ([`outbound`]): HTTP route tables, SNI routes, TCP routes, else the outbound policy
//! (`PassthroughCluster` or `BlackHoleCluster`). The HTTP router, TCP proxy, connector (DNS,
//! pools, TLS origination including ISTIO_MUTUAL with the workload certificate) and access
//! log are the gateway's own, fed the snapshot's route tables as they come ([`plan`] picks
//! what a destination port gets).
//!
//! A new snapshot applies to connections accepted and HTTP requests made after it arrives;
//! the listeners never change. [`Sidecar::shutdown`] drains like [`crate::Proxy::shutdown`].
//!
//! Telemetry: every outbound request and connection is recorded into Istio's standard
//! metrics as the sidecar's outbound listeners report them ([`Metrics::sidecar`]:
//! `reporter="source"`, the workload's own `source_*` labels, `PassthroughCluster` /
//! `BlackHoleCluster` as the catch-alls' `destination_service_name`, the Host as
//! `destination_service` when the cluster names no service, else the SNI), served as
//! `/stats/prometheus` on the ports of [`SidecarTelemetry`]. A TCP connection counts as
//! opened once its upstream connection is established; a passthrough one once its first bytes
//! told what it asked for ([`crate::requested::Tap`]).
//!
//! Authorization: Istio enforces AuthorizationPolicy on the traffic a proxy receives (a
//! sidecar's inbound listeners, gateways, waypoints), never on a sidecar's outbound traffic:
//! "the authorization policy enforces access control to the inbound traffic in the server
//! side Envoy proxy" (istio.io, security concepts), and a policy whose selector matches a
//! client workload does not restrict what that client sends. Controlling egress by identity
//! is done at the egress gateway ([`crate::authz`]), as Istio's egress guides do. So this
//! outbound data plane has no authorization step, deliberately; if inbound capture (15006)
//! is ever added, its chains are where [`crate::authz`] would run.

pub mod capture;
pub mod explicit;
pub mod outbound;
pub mod plan;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_identity::IdentityHandle;
use egress_snapshot::snapshot::{SidecarSnapshot, Snapshot};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::accesslog::AccessLogger;
use crate::connect::{ConnectError, Connector};
use crate::ctx::{Active, Ctx, ProxyOptions, UpstreamOptions};
use crate::drain::Drain;
use crate::health::{Endpoints, Readiness};
use crate::health::{Server, start_metrics_servers, stop_servers};
use crate::limits::accept::Acceptor;
use crate::limits::conn::CURRENT;
use crate::limits::{Connections, Limits};
use crate::listener::BindError;
use crate::metrics::{LocalWorkload, Metrics};

/// Backlog of the listening sockets.
const BACKLOG: u32 = 1024;

/// How long connections get after a forced drain to notice it and close.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Name of the explicit-proxy listener in [`Sidecar::bound`].
pub const EXPLICIT_PROXY_LISTENER: &str = "explicit_proxy";

/// Name of the transparent-capture listener in [`Sidecar::bound`] (Istio's name for 15001).
pub const CAPTURE_LISTENER: &str = "virtualOutbound";

/// Static options of a sidecar.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// Where the explicit proxy listens (`127.1.0.5:15001`; port 0 = ephemeral).
    pub proxy_listen: SocketAddr,
    /// Where the transparent-capture listener listens, if there is one.
    pub capture_listen: Option<SocketAddr>,
    /// How upstreams are reached (names, DNS, roots). The resolved-address guard does not
    /// apply to sidecars: in-cluster destinations are private by nature.
    pub upstream: UpstreamOptions,
    /// Bind upstream connections to this source address.
    pub source_address: Option<IpAddr>,
    /// Downstream limits (timeouts, request header limits, connections per listener).
    pub limits: Limits,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        SidecarOptions {
            proxy_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15001),
            capture_listen: None,
            upstream: UpstreamOptions::default(),
            source_address: None,
            limits: Limits::default(),
        }
    }
}

impl SidecarOptions {
    /// The options of the shared data-plane pieces (connector and resolver).
    fn proxy_options(&self) -> ProxyOptions {
        ProxyOptions {
            source_address: self.source_address,
            listen_address: None,
            health_port: None,
            metrics_port: None,
            prometheus_port: None,
            upstream: UpstreamOptions {
                // In-cluster destinations are private by nature; the guard is a gateway defence.
                allow_private_upstreams: true,
                ..self.upstream.clone()
            },
            limits: self.limits.clone(),
        }
    }
}

/// A sidecar's telemetry: where its metrics are served and who it reports as.
#[derive(Debug, Clone, Default)]
pub struct SidecarTelemetry {
    /// Istio's merged metrics port (15020): `/stats/prometheus` and `/healthz/ready`, on the
    /// explicit proxy's address; `None` serves none. Port 0 binds an ephemeral port.
    pub metrics_port: Option<u16>,
    /// Envoy's prometheus port (15090): the same text; `None` serves none.
    pub prometheus_port: Option<u16>,
    /// The workload's labels (`source_workload`, namespace, `app`, `version`, canonical
    /// service and revision, cluster); the namespace and principal default to the
    /// certificate's SPIFFE id.
    pub workload: LocalWorkload,
}

/// Why a sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A metrics port could not be bound.
    #[error("binding the sidecar's metrics port on {addr}: {source}")]
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

/// What every connection handler of a sidecar shares.
pub(crate) struct Shared {
    /// The data-plane state; its snapshot is the gateway-shaped view of the sidecar snapshot,
    /// which it carries ([`Snapshot::sidecar`]): one value, swapped once per version.
    ctx: Arc<Ctx>,
    /// Ports of the sidecar's own listeners (loop protection).
    own_ports: Vec<u16>,
}

impl Shared {
    /// The version a new connection runs under, and its sidecar snapshot.
    fn current(&self) -> (Arc<Active>, Arc<SidecarSnapshot>) {
        let active = self.ctx.active();
        let sidecar = active.snapshot.sidecar.clone().unwrap_or_default();
        (active, sidecar)
    }

    /// True if `port` is one of the sidecar's listening ports.
    fn is_own_port(&self, port: u16) -> bool {
        self.own_ports.contains(&port)
    }
}

/// A listener's accept loop.
struct Accepting {
    name: &'static str,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running sidecar.
pub struct Sidecar {
    shared: Arc<Shared>,
    listeners: Vec<Accepting>,
    applied: watch::Receiver<u64>,
    follower: JoinHandle<()>,
    metrics: Arc<Metrics>,
    /// The metrics port's and the prometheus port's servers.
    servers: [Option<Server>; 2],
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("bound", &self.bound())
            .field("applied_version", &self.applied_version())
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// Binds the explicit-proxy listener (and the capture listener when asked for) and starts
    /// serving the current snapshot, then follows the channel. The access logger's format
    /// follows each snapshot's `access_log` settings; `identity` is the workload certificate
    /// used for ISTIO_MUTUAL origination. Metrics are recorded (see [`Sidecar::metrics`]) but
    /// not served; [`Sidecar::start_with_telemetry`] serves them.
    pub async fn start(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        options: SidecarOptions,
        identity: Option<Arc<IdentityHandle>>,
        access_log: AccessLogger,
    ) -> Result<Sidecar, SidecarError> {
        let telemetry = SidecarTelemetry::default();
        Sidecar::start_with_telemetry(snapshots, options, telemetry, identity, access_log).await
    }

    /// [`Sidecar::start`], reporting metrics as `telemetry.workload` and serving them on
    /// `telemetry`'s ports (bound on the explicit proxy's address).
    pub async fn start_with_telemetry(
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        options: SidecarOptions,
        telemetry: SidecarTelemetry,
        identity: Option<Arc<IdentityHandle>>,
        access_log: AccessLogger,
    ) -> Result<Sidecar, SidecarError> {
        let proxy_socket = bind(EXPLICIT_PROXY_LISTENER, options.proxy_listen)?;
        let capture_socket = match options.capture_listen {
            Some(addr) => Some(bind(CAPTURE_LISTENER, addr)?),
            None => None,
        };
        let proxy_options = options.proxy_options();
        let connector = Connector::new(&proxy_options)?;
        let first = snapshots.borrow_and_update().clone();
        let drain = Drain::new();
        let local = telemetry.workload.with_identity(identity.as_deref());
        let metrics = Arc::new(Metrics::sidecar(local).with_connections(drain.clone()));
        let conns = Arc::new(Connections::new(&options.limits, Arc::default()));
        metrics.set_limit_counters(Arc::clone(conns.counters()));
        metrics.set_config_version(first.version);
        let readiness = Arc::new(Readiness::new(drain.clone()));
        readiness.set_loaded();
        let endpoints = Endpoints {
            readiness,
            metrics: Some(Arc::clone(&metrics)),
        };
        let ports = [telemetry.metrics_port, telemetry.prometheus_port];
        let servers = start_metrics_servers(options.proxy_listen.ip(), ports, &endpoints)
            .await
            .map_err(|(addr, source)| SidecarError::Metrics { addr, source })?;
        let ctx = Arc::new(Ctx {
            snapshots: snapshots.clone(),
            options: proxy_options,
            connector,
            identity,
            access_log: access_log.with_metrics(Arc::clone(&metrics)),
            drain,
            http: Arc::default(),
            conns,
            active: Default::default(),
        });
        let mut sockets = vec![(EXPLICIT_PROXY_LISTENER, proxy_socket)];
        sockets.extend(capture_socket.map(|s| (CAPTURE_LISTENER, s)));
        let own_ports = sockets.iter().map(|(_, (_, addr))| addr.port()).collect();
        let shared = Arc::new(Shared { ctx, own_ports });
        // The first version's indexes and access-log format, before any connection.
        shared.ctx.prepare();
        let listeners = sockets
            .into_iter()
            .map(|(name, (socket, addr))| {
                tracing::info!(listener = name, %addr, "sidecar listener bound");
                accept(name, socket, addr, &shared)
            })
            .collect();
        let (applied_tx, applied) = watch::channel(first.version);
        let follower = tokio::spawn(follow(snapshots, Arc::clone(&shared), applied_tx));
        tracing::info!(version = first.version, "sidecar snapshot applied");
        Ok(Sidecar {
            shared,
            listeners,
            applied,
            follower,
            metrics,
            servers,
        })
    }

    /// The sidecar's metrics (what `/stats/prometheus` shows on its metrics ports).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The bound metrics port address, when it is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.servers[0].as_ref().map(Server::addr)
    }

    /// The bound prometheus port address, when it is served.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.servers[1].as_ref().map(Server::addr)
    }

    /// Reports a configuration reload of `version` (see [`crate::Proxy::record_reload`]).
    pub fn record_reload(&self, version: u64, result: Result<(), String>) {
        if let Err(reason) = &result {
            tracing::warn!(version, %reason, "sidecar configuration refused; the previous one keeps serving");
        }
        self.metrics.reload(version, result);
    }

    /// Listener name ([`EXPLICIT_PROXY_LISTENER`], [`CAPTURE_LISTENER`]) → bound address,
    /// sorted by name.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        let mut bound: Vec<(String, SocketAddr)> = self
            .listeners
            .iter()
            .map(|l| (l.name.to_owned(), l.addr))
            .collect();
        bound.sort();
        bound
    }

    /// The explicit proxy's bound address (what `http_proxy` points at).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.address_of(EXPLICIT_PROXY_LISTENER)
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// The transparent-capture listener's bound address, when there is one.
    pub fn capture_addr(&self) -> Option<SocketAddr> {
        self.address_of(CAPTURE_LISTENER)
    }

    fn address_of(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.addr)
    }

    /// Version of the snapshot being served.
    pub fn applied_version(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until a snapshot with version `version` or later is served; false if the sidecar
    /// stopped following snapshots first.
    pub async fn wait_applied(&self, version: u64) -> bool {
        let mut applied = self.applied.clone();
        applied.wait_for(|v| *v >= version).await.is_ok()
    }

    /// The shared data-plane state (connector, HTTP pools and counters, access log); a test
    /// hook (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.shared.ctx
    }

    /// Drains: stops accepting, lets connections, tunnels and requests finish for up to
    /// `grace`, then closes whatever is left.
    pub async fn shutdown(self, grace: Duration) {
        let drain = &self.shared.ctx.drain;
        drain.signal();
        self.follower.abort();
        let _ = self.follower.await;
        for l in self.listeners {
            let _ = l.stop.send(());
            let _ = l.task.await;
        }
        if !drain.wait_idle(grace).await {
            tracing::info!(
                in_flight = drain.in_flight(),
                "drain grace period over; closing connections"
            );
            drain.force();
            drain.wait_idle(FORCE_CLOSE_WAIT).await;
        }
        stop_servers(self.servers).await;
    }
}

/// Binds a listening socket with SO_REUSEADDR; returns it with its bound address.
fn bind(name: &str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let error = |source| BindError {
        listener: name.to_owned(),
        addr,
        source,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_reuseaddr(true).map_err(error)?;
    socket.bind(addr).map_err(error)?;
    let listener = socket.listen(BACKLOG).map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Starts the accept loop of one listener.
fn accept(
    name: &'static str,
    socket: TcpListener,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> Accepting {
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(name, socket, Arc::clone(shared), stopped));
    Accepting {
        name,
        addr,
        stop,
        task,
    }
}

async fn accept_loop(
    name: &'static str,
    socket: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let drain = shared.ctx.drain.clone();
    let mut acceptor = Acceptor::new(Arc::clone(&shared.ctx.conns), name);
    loop {
        let (stream, remote, slot) = tokio::select! {
            _ = &mut stopped => return,
            () = drain.signaled() => return,
            accepted = acceptor.accept(&socket) => accepted,
        };
        let span = tracing::debug_span!("conn", listener = name, %remote);
        let guard = drain.guard();
        let shared = Arc::clone(&shared);
        let drain = drain.clone();
        let state = Arc::clone(slot.state());
        let work = async move {
            let _slot = slot;
            let _guard = guard;
            tokio::select! {
                biased;
                () = CURRENT.scope(state, handle(name, stream, remote, shared)) => {}
                () = drain.forced() => tracing::debug!("connection closed by drain deadline"),
            }
        };
        tokio::spawn(work.instrument(span));
    }
}

async fn handle(name: &'static str, stream: TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    if name == CAPTURE_LISTENER {
        capture::serve(stream, remote, shared).await;
    } else {
        explicit::serve(stream, remote, shared).await;
    }
}

/// Serves every new snapshot until the sender goes away (then the last one keeps serving).
async fn follow(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    shared: Arc<Shared>,
    applied: watch::Sender<u64>,
) {
    while snapshots.changed().await.is_ok() {
        let snapshot = snapshots.borrow_and_update().clone();
        if shared.ctx.drain.is_draining() {
            return;
        }
        if let Some(metrics) = shared.ctx.access_log.metrics() {
            metrics.set_config_version(snapshot.version);
        }
        shared.ctx.prepare();
        applied.send_replace(snapshot.version);
        tracing::info!(
            version = snapshot.version,
            ports = snapshot.sidecar.as_ref().map_or(0, |s| s.ports.len()),
            "sidecar snapshot applied"
        );
    }
}
