//! `egress gateway run`: the process a gateway Deployment's container starts. It reads the
//! configuration (the cluster store's change feed, a directory of YAML files, or the Kubernetes
//! API server's watches), validates and
//! compiles it into one snapshot for this gateway instance, and serves it with the data plane.
//! A configuration that fails validation is refused with a logged error; the last good snapshot
//! keeps serving.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use egress_compile::snapshot::{GatewayIdentity, Snapshot};
use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_proxy::{Proxy, ProxyOptions};
use egress_store::Store;
use tokio::sync::watch;

use crate::OpError;

pub mod args;
pub mod downward;
pub mod load;
mod reload;
pub mod settle;

pub(crate) use reload::{hangup, reload_loop};

/// Namespace and name of the Secret holding the local cluster's mesh root.
pub use egress_cluster::ca::CA_SECRET;

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The cluster store (its change feed).
    Store(Store),
    /// A directory of YAML manifests, re-read when files change.
    Dir(PathBuf),
    /// The Kubernetes API server: watches feeding a cache whose generation is the reload key.
    Kube(egress_kube::KubeSource),
}

/// Everything `egress gateway run` needs.
#[derive(Debug, Clone)]
pub struct GatewayRunArgs {
    /// Who this instance is.
    pub identity: GatewayIdentity,
    /// Configuration source.
    pub source: ConfigSource,
    /// Data-plane options (listen and source addresses, health port, resolver overrides, roots).
    pub options: ProxyOptions,
    /// Mesh CA certificate and key files; without them the store's CA (store mode) or a
    /// generated one (directory mode) is used.
    pub ca_files: Option<(PathBuf, PathBuf)>,
    /// The CA API to get the workload certificate from (Istio's agent's way); when given, it
    /// replaces `ca_files` and the local CA.
    pub mesh_cert: crate::meshcert::MeshCertArgs,
    /// Trust domain for the workload certificate.
    pub trust_domain: String,
    /// How long in-flight requests may take to finish on SIGTERM.
    pub drain_grace: Duration,
}

/// What keeps a workload certificate fresh; dropped (or aborted) at shutdown.
pub(crate) enum Renewal {
    /// Issued by a CA this process holds, re-issued by a local task.
    Local(tokio::task::JoinHandle<()>),
    /// Obtained from the CA API, renewed by its rotation task.
    Remote(egress_identity::istioca::Rotation),
}

impl Renewal {
    /// Stops renewing.
    pub(crate) fn stop(self) {
        match self {
            Renewal::Local(task) => task.abort(),
            Renewal::Remote(rotation) => drop(rotation),
        }
    }
}

/// The workload's identity: from the CA API when `--ca-address` is given, else issued from
/// the mesh CA (files, the store's, or generated), with what renews it.
pub(crate) async fn workload_identity(
    args: &GatewayRunArgs,
) -> Result<(Arc<IdentityHandle>, Renewal), OpError> {
    let spiffe = SpiffeId::new(
        &args.trust_domain,
        &args.identity.namespace,
        &args.identity.service_account,
    )
    .map_err(|e| OpError::failed("workload identity", e))?;
    if let Some(cert) = crate::meshcert::obtain(&args.mesh_cert, &spiffe)
        .await
        .map_err(|e| OpError::failed("workload certificate from the CA", e))?
    {
        tracing::info!(id = %spiffe.principal(), "workload certificate from the CA API");
        return Ok((cert.handle, Renewal::Remote(cert.rotation)));
    }
    let ca = mesh_ca(args)?;
    let ttl = Duration::from_secs(24 * 3600);
    let cert = ca
        .issue(&spiffe, ttl)
        .map_err(|e| OpError::failed("workload certificate", e))?;
    let identity = Arc::new(
        IdentityHandle::new(cert, ca.root_pem())
            .map_err(|e| OpError::failed("workload identity", e))?,
    );
    let rotation = tokio::spawn(rotation_loop(ca, spiffe, Arc::clone(&identity), ttl));
    Ok((identity, Renewal::Local(rotation)))
}

/// Load (or create) the mesh CA.
pub(crate) fn mesh_ca(args: &GatewayRunArgs) -> Result<MeshCa, OpError> {
    if let Some((cert, key)) = &args.ca_files {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|source| OpError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        return MeshCa::from_pem(&read(cert)?, &read(key)?)
            .map_err(|e| OpError::failed("mesh CA", e));
    }
    match &args.source {
        ConfigSource::Store(store) => {
            egress_cluster::ca::load_or_create(store, &args.trust_domain).map_err(OpError::cause)
        }
        ConfigSource::Dir(_) | ConfigSource::Kube(_) => {
            tracing::warn!(
                "no --ca-cert/--ca-key: using a generated mesh CA; ISTIO_MUTUAL clients must trust it"
            );
            MeshCa::generate(&args.trust_domain).map_err(|e| OpError::failed("mesh CA", e))
        }
    }
}

/// Run the gateway until SIGTERM/SIGINT, then drain; SIGHUP re-reads the configuration.
pub async fn run(args: GatewayRunArgs) -> Result<(), OpError> {
    let hup = hangup();
    let (identity, renewal) = workload_identity(&args).await?;

    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let access_log = egress_proxy::accesslog::AccessLogger::stdout_when_configured();
    let proxy = Proxy::start(rx, args.options.clone(), Some(identity.clone()), access_log)
        .await
        .map_err(|e| OpError::failed("starting the data plane", e))?;
    for (name, addr) in proxy.bound() {
        tracing::info!(listener = %name, %addr, "listening");
    }
    if let Some(h) = proxy.health_addr() {
        tracing::info!(addr = %h, "health on /healthz/ready");
    }

    let metrics = Arc::clone(proxy.metrics());
    let reload = tokio::spawn(reload_loop(
        args.clone(),
        tx,
        metrics,
        hup,
        |id, inputs, version| {
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
        },
    ));

    wait_for_signal().await;
    tracing::info!(grace = ?args.drain_grace, "draining");
    reload.abort();
    renewal.stop();
    proxy.shutdown(args.drain_grace).await;
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Polls a configuration directory until its stamp differs from `seen`.
async fn wait_for_dir_change(dir: &std::path::Path, seen: Option<u64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = dir.to_path_buf();
        match tokio::task::spawn_blocking(move || settle::dir_stamp(&d)).await {
            Ok(now) if Some(now) == seen => {}
            _ => return,
        }
    }
}

/// Wait until the source may have changed since `seen` (the store's resourceVersion the last
/// listing reflected, so nothing committed in between is missed).
async fn wait_for_change(source: &ConfigSource, seen: Option<u64>) {
    let store = match source {
        ConfigSource::Store(store) => store,
        ConfigSource::Kube(source) => return wait_for_generation(source, seen).await,
        ConfigSource::Dir(dir) => return wait_for_dir_change(dir, None).await,
    };
    loop {
        let store = store.clone();
        // Short watch slices: a blocking task cannot be cancelled, and shutdown must not
        // wait long for one.
        let changed =
            tokio::task::spawn_blocking(move || -> Result<bool, egress_store::StoreError> {
                let from = match seen {
                    Some(rv) => rv,
                    None => store.resource_version()?,
                };
                let mut w = store.watch(from)?;
                Ok(!w.next_events(Duration::from_millis(500))?.is_empty())
            })
            .await;
        match changed {
            Ok(Ok(true)) => return,
            Ok(Ok(false)) => {}
            // Expired or unreadable feed: relist.
            Ok(Err(_)) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        }
    }
}

/// Wait until the Kubernetes cache's generation differs from `seen` (the one the last load
/// reflected); without one, until the next change.
async fn wait_for_generation(source: &egress_kube::KubeSource, seen: Option<u64>) {
    let mut rx = source.subscribe();
    if let Some(seen) = seen {
        if *rx.borrow_and_update() != seen {
            return;
        }
    } else {
        rx.mark_unchanged();
    }
    let _ = rx.changed().await;
}

/// Re-issue the workload certificate before it expires.
pub(crate) async fn rotation_loop(
    ca: MeshCa,
    id: SpiffeId,
    handle: Arc<IdentityHandle>,
    ttl: Duration,
) {
    let rotator = egress_identity::Rotator::new(0.5);
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if rotator.needs_rotation(&handle.current(), SystemTime::now()) {
            match ca.issue(&id, ttl) {
                Ok(cert) => {
                    if let Err(e) = handle.rotate(cert) {
                        tracing::error!("rotating the workload certificate: {e}");
                    }
                }
                Err(e) => tracing::error!("issuing the workload certificate: {e}"),
            }
        }
    }
}

/// Parse `k=v,k2=v2`.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, OpError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| OpError::Usage(format!("invalid label {part:?}: want KEY=VALUE")))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Parse `80:8080,443:8443`.
pub fn parse_ports(s: &str) -> Result<BTreeMap<u16, u16>, OpError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || {
            OpError::Usage(format!(
                "invalid port mapping {part:?}: want SERVICE_PORT:TARGET_PORT"
            ))
        };
        let (a, b) = part.split_once(':').ok_or_else(bad)?;
        out.insert(a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    }
    Ok(out)
}

/// Parse resolver overrides `name=ip[+ip...]`.
pub fn parse_host(s: &str) -> Result<(String, Vec<IpAddr>), OpError> {
    let bad = || OpError::Usage(format!("invalid --host {s:?}: want NAME=IP[+IP...]"));
    let (name, ips) = s.split_once('=').ok_or_else(bad)?;
    let ips = ips
        .split('+')
        .map(|i| i.parse::<IpAddr>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_ascii_lowercase(), ips))
}
