//! The one runner: a configuration source, a workload identity and the data-plane options in,
//! a serving gateway or sidecar out. [`Instance::start`] starts the data plane and its
//! [`reload_loop`]; `egress gateway run`, `egress sidecar run` and every Pod of `egress up`
//! start their proxies through it, and [`run`] serves one until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use egress_compile::snapshot::{GatewayIdentity, Snapshot};
use egress_identity::IdentityHandle;
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::metrics::Metrics;
use egress_proxy::sidecar::{Sidecar, SidecarError, SidecarOptions, SidecarTelemetry};
use egress_proxy::{Proxy, ProxyError, ProxyOptions};
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::reload::reload_loop;
use crate::source::ConfigSource;

/// Which data plane, with its options. (Made once per start and moved; the size difference
/// between the variants costs nothing.)
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Plane {
    /// A gateway (its listeners from the Gateways that select it).
    Gateway(ProxyOptions),
    /// A workload's outbound sidecar.
    Sidecar {
        /// Where it listens and how it reaches upstreams.
        options: SidecarOptions,
        /// Its metrics ports and the workload it reports as.
        telemetry: SidecarTelemetry,
    },
}

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The gateway's data plane.
    #[error("starting the data plane: {0}")]
    Gateway(#[from] ProxyError),
    /// The sidecar's.
    #[error("starting the sidecar: {0}")]
    Sidecar(#[from] SidecarError),
}

/// A running data plane.
enum Running {
    Gateway {
        proxy: Proxy,
        snapshots: watch::Sender<Arc<Snapshot>>,
    },
    Sidecar {
        sidecar: Sidecar,
        snapshots: watch::Sender<Arc<Snapshot>>,
    },
}

/// A gateway or sidecar serving what its source declares.
pub struct Instance {
    running: Running,
    reload: JoinHandle<()>,
}

impl Instance {
    /// Starts `plane` for workload `identity` (its certificate in `workload`), serving what
    /// `source` declares: the data plane first (not ready until its first configuration is
    /// in), then the reload loop that feeds it. `hup` (SIGHUP) makes the loop re-read.
    pub async fn start(
        source: ConfigSource,
        identity: GatewayIdentity,
        plane: Plane,
        workload: Option<Arc<IdentityHandle>>,
        access_log: AccessLogger,
        hup: Option<Signal>,
    ) -> Result<Instance, StartError> {
        match plane {
            Plane::Gateway(options) => {
                let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
                let proxy = Proxy::start(rx, options, workload, access_log).await?;
                let reload = tokio::spawn(reload_loop(
                    source,
                    identity,
                    tx.clone(),
                    Arc::clone(proxy.metrics()),
                    hup,
                    build_gateway,
                ));
                Ok(Instance {
                    running: Running::Gateway {
                        proxy,
                        snapshots: tx,
                    },
                    reload,
                })
            }
            Plane::Sidecar { options, telemetry } => {
                let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
                let sidecar =
                    Sidecar::start_with_telemetry(rx, options, telemetry, workload, access_log)
                        .await?;
                let reload = tokio::spawn(reload_loop(
                    source,
                    identity,
                    tx.clone(),
                    Arc::clone(sidecar.metrics()),
                    hup,
                    build_sidecar,
                ));
                Ok(Instance {
                    running: Running::Sidecar {
                        sidecar,
                        snapshots: tx,
                    },
                    reload,
                })
            }
        }
    }

    /// The instance's metrics (its reload figures among them).
    pub fn metrics(&self) -> &Arc<Metrics> {
        match &self.running {
            Running::Gateway { proxy, .. } => proxy.metrics(),
            Running::Sidecar { sidecar, .. } => sidecar.metrics(),
        }
    }

    /// The gateway's data plane (its bound listeners, health address), when a gateway.
    pub fn proxy(&self) -> Option<&Proxy> {
        match &self.running {
            Running::Gateway { proxy, .. } => Some(proxy),
            Running::Sidecar { .. } => None,
        }
    }

    /// The sidecar, when a sidecar.
    pub fn sidecar(&self) -> Option<&Sidecar> {
        match &self.running {
            Running::Gateway { .. } => None,
            Running::Sidecar { sidecar, .. } => Some(sidecar),
        }
    }

    /// The version of the configuration served (0 until the first one is in).
    pub fn version(&self) -> u64 {
        match &self.running {
            Running::Gateway { snapshots, .. } => snapshots.borrow().version,
            Running::Sidecar { snapshots, .. } => snapshots.borrow().version,
        }
    }

    /// Whether the instance should receive traffic: a gateway when configured and serving
    /// every listener, a sidecar once its first configuration is in.
    pub fn is_ready(&self) -> bool {
        match &self.running {
            Running::Gateway { proxy, .. } => proxy.is_ready(),
            Running::Sidecar { .. } => self.version() > 0,
        }
    }

    /// Why a gateway's listeners are not bound (empty when they are, and for a sidecar).
    pub fn unbound(&self) -> Vec<String> {
        match &self.running {
            Running::Gateway { proxy, .. } => proxy.unbound(),
            Running::Sidecar { .. } => Vec::new(),
        }
    }

    /// Stops reading the configuration and drains: in-flight requests get up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.reload.abort();
        match self.running {
            Running::Gateway { proxy, .. } => proxy.shutdown(grace).await,
            Running::Sidecar { sidecar, .. } => sidecar.shutdown(grace).await,
        }
    }
}

/// Starts an instance (see [`Instance::start`]), calls `started` with it (to log what it
/// bound), serves until `shutdown` completes, then drains for up to `grace`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    source: ConfigSource,
    identity: GatewayIdentity,
    plane: Plane,
    workload: Option<Arc<IdentityHandle>>,
    access_log: AccessLogger,
    hup: Option<Signal>,
    started: impl FnOnce(&Instance),
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), StartError> {
    let instance = Instance::start(source, identity, plane, workload, access_log, hup).await?;
    started(&instance);
    shutdown.await;
    tracing::info!(?grace, "draining");
    instance.shutdown(grace).await;
    Ok(())
}

/// A gateway's snapshot.
fn build_gateway(id: &GatewayIdentity, inputs: &egress_compile::Inputs, version: u64) -> Snapshot {
    let snap = egress_compile::compile(id, inputs, version);
    for w in &snap.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        version,
        listeners = snap.listeners.len(),
        clusters = snap.clusters.len(),
        "configuration loaded"
    );
    snap
}

/// A sidecar's snapshot, in the routable form the data plane serves.
fn build_sidecar(id: &GatewayIdentity, inputs: &egress_compile::Inputs, version: u64) -> Snapshot {
    let snap = egress_compile::compile_sidecar(id, inputs, version);
    for w in &snap.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        version,
        ports = snap.ports.len(),
        clusters = snap.clusters.len(),
        policy = ?snap.outbound,
        "configuration loaded"
    );
    egress_compile::sidecar_view::routable(snap)
}
