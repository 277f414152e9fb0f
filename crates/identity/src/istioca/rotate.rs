//! Keeping a workload's certificate fresh through the CA API: a task that renews the handle's
//! certificate when the [`Rotator`] says it is due (half its lifetime), retries with
//! exponential backoff on failure, and keeps serving the old certificate until a new one
//! arrives.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::CaClient;
use crate::handle::IdentityHandle;
use crate::rotation::Rotator;
use crate::spiffe::SpiffeId;

/// How the rotation task renews.
#[derive(Debug, Clone)]
pub struct RotationOptions {
    /// The lifetime requested for each certificate.
    pub ttl: Duration,
    /// When a certificate is due (half its lifetime by default).
    pub rotator: Rotator,
    /// The first retry delay after a failure; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// The shortest time between two renewals (guards against a CA granting lifetimes so
    /// short that a new certificate is due at once).
    pub min_interval: Duration,
}

impl Default for RotationOptions {
    fn default() -> Self {
        RotationOptions {
            ttl: Duration::from_secs(24 * 3600),
            rotator: Rotator::default(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            min_interval: Duration::from_secs(5),
        }
    }
}

/// What the rotation task has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationStatus {
    /// Certificates installed.
    pub rotations: u64,
    /// Failed attempts since the task started.
    pub failures: u64,
    /// The error of the latest attempt, if it failed.
    pub last_error: Option<String>,
}

/// A running rotation task; dropping it stops the task.
#[derive(Debug)]
pub struct Rotation {
    task: JoinHandle<()>,
    status: watch::Receiver<RotationStatus>,
}

impl Rotation {
    /// Follows the task's progress (wait with `changed()`).
    pub fn status(&self) -> watch::Receiver<RotationStatus> {
        self.status.clone()
    }

    /// Stops the task.
    pub fn stop(self) {}
}

impl Drop for Rotation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A workload identity obtained from the CA and kept fresh: serve `handle`; keep `rotation`
/// alive as long as the handle is used (dropping it stops renewals).
#[derive(Debug)]
pub struct WorkloadCert {
    /// The live identity (certificate and mesh roots) for the proxy.
    pub handle: Arc<IdentityHandle>,
    /// The renewal task.
    pub rotation: Rotation,
}

/// Why no workload certificate could be obtained.
#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    /// The CA call or its certificate failed.
    #[error(transparent)]
    Ca(#[from] super::CaError),
    /// The issued certificate could not be used.
    #[error("workload identity: {0}")]
    Identity(#[from] crate::Error),
}

/// Obtains a certificate for `id` through `client` (lifetime `options.ttl`) and starts
/// renewing it on the current tokio runtime: the one way every gateway and sidecar gets its
/// certificate, a Pod of the local cluster (a client minting its service account's token) or
/// `egress gateway run --ca-address` on a real cluster (the projected token file).
pub async fn obtain(
    client: Arc<CaClient>,
    id: &SpiffeId,
    options: RotationOptions,
) -> Result<WorkloadCert, ObtainError> {
    let cert = client.create_certificate(id, options.ttl).await?;
    let handle = Arc::new(IdentityHandle::new(cert, client.roots_pem())?);
    let rotation = spawn_rotation(client, Arc::clone(&handle), id.clone(), options);
    Ok(WorkloadCert { handle, rotation })
}

/// Starts renewing `handle`'s certificate for `id` through `client` (on the current tokio
/// runtime). The first renewal happens when the current certificate is due.
pub fn spawn_rotation(
    client: Arc<CaClient>,
    handle: Arc<IdentityHandle>,
    id: SpiffeId,
    options: RotationOptions,
) -> Rotation {
    let (tx, status) = watch::channel(RotationStatus::default());
    let task = tokio::spawn(async move {
        let mut backoff = options.initial_backoff;
        let mut pause = Duration::ZERO;
        loop {
            let due = options.rotator.next_rotation(&handle.current());
            let wait = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(pause);
            tokio::time::sleep(wait).await;
            let renewed = match client.create_certificate(&id, options.ttl).await {
                Ok(cert) => handle.rotate(cert).map_err(super::CaError::from),
                Err(e) => Err(e),
            };
            match renewed {
                Ok(()) => {
                    tracing::info!(identity = %id, "workload certificate renewed");
                    backoff = options.initial_backoff;
                    pause = options.min_interval;
                    tx.send_modify(|s| {
                        s.rotations += 1;
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    tracing::warn!(identity = %id, retry_in = ?backoff, "renewing the workload certificate: {e}");
                    tx.send_modify(|s| {
                        s.failures += 1;
                        s.last_error = Some(e.to_string());
                    });
                    pause = Duration::ZERO;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(options.max_backoff);
                }
            }
        }
    });
    Rotation { task, status }
}
