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

use egress_compile::snapshot::GatewayIdentity;
use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_proxy::ProxyOptions;
pub use egress_runner::ConfigSource;
use egress_runner::reload::hangup;
use egress_runner::{Plane, run as run_instance};

use crate::OpError;

pub mod args;
pub mod downward;

/// Namespace and name of the Secret holding the local cluster's mesh root.
pub use egress_cluster::ca::CA_SECRET;

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
    let access_log = egress_proxy::accesslog::AccessLogger::stdout_when_configured();
    let served = run_instance(
        args.source.clone(),
        args.identity.clone(),
        Plane::Gateway(args.options.clone()),
        Some(identity),
        access_log,
        hup,
        |instance| {
            let Some(proxy) = instance.proxy() else {
                return;
            };
            for (name, addr) in proxy.bound() {
                tracing::info!(listener = %name, %addr, "listening");
            }
            if let Some(h) = proxy.health_addr() {
                tracing::info!(addr = %h, "health on /healthz/ready");
            }
        },
        wait_for_signal(),
        args.drain_grace,
    )
    .await;
    renewal.stop();
    served.map_err(|e| OpError::failed("serving", e))
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
