//! The local cluster's "container runtime": one in-process gateway instance (the data plane
//! `egress gateway run` starts) per gateway Pod that has an IP, listening on the Pod's IP,
//! answering health on `<pod-ip>:15021`, and binding upstream connections to an address of its
//! StaticGatewayConfiguration's egress prefix; and one sidecar per injected Pod, its explicit
//! outbound proxy on `<pod-ip>:15001`. Each is an [`egress_runner::Instance`], the runner
//! `egress gateway run` and `egress sidecar run` use: it reads the store's change feed itself
//! (only changed objects decoded again), compiles its own view and reports its own reload
//! figures, as a Pod on a real cluster does.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_compile::snapshot::GatewayIdentity;
use egress_identity::SpiffeId;
use egress_identity::istioca::{Rotation, RotationOptions};
use egress_proxy::ProxyOptions;
use egress_proxy::accesslog::AccessLogger;
use egress_proxy::metrics::LocalWorkload;
use egress_proxy::sidecar::{SidecarOptions, SidecarTelemetry};
use egress_runner::{ConfigSource, Instance, Plane};
use egress_store::Store;

mod pods;

use pods::{PodKind, PodView, gateway_pods};

use crate::caserver::LocalCa;
use crate::controllers::{Fact, Facts, Instance as InstanceState, SIDECAR_PROXY_PORT, State};

/// Workload certificates live this long; they are renewed through the CA endpoint at
/// half-life.
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The gateway Pods' Prometheus endpoint (`<pod-ip>:15020/stats/prometheus`, Istio's merged
/// metrics port, as the pod template's `prometheus.io/port` annotation says).
pub const METRICS_PORT: u16 = 15020;

/// The same figures on Envoy's `http-envoy-prom` port, as Istio's proxies serve them.
pub const PROMETHEUS_PORT: u16 = 15090;

/// How long a stopped gateway Pod may take to finish in-flight requests.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Options shared by every instance.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Trust domain of workload certificates.
    pub trust_domain: String,
    /// How every gateway and sidecar reaches upstreams (`--host NAME=IP` overrides, DNS, the
    /// address guard, extra roots), as `egress gateway run` takes them.
    pub upstream: egress_proxy::UpstreamOptions,
    /// Where Pod logs go: `<dir>/<namespace>_<pod>/<container>.log`.
    pub pod_log_dir: PathBuf,
    /// Downstream limits of every gateway and sidecar (`egress gateway run`'s limit flags).
    pub limits: egress_proxy::limits::Limits,
}

struct Running {
    ip: Ipv4Addr,
    /// The address upstream connections leave from (the static egress prefix's).
    source: Option<IpAddr>,
    instance: Instance,
    identity: GatewayIdentity,
    /// The shared API watches it reads, when it reads through the API.
    watches: Option<SourceKey>,
    /// Renews the workload certificate; stops when the instance is dropped.
    _rotation: Rotation,
}

/// What a set of API watches is shared by: namespace, revision, gateway or sidecar.
type SourceKey = (String, Option<String>, egress_kube::Workload);

struct Failure {
    message: String,
    /// Failures in a row (the backoff doubles with each).
    in_a_row: u32,
    retry_at: Instant,
}

/// The running gateway instances.
pub struct Runtime {
    options: RuntimeOptions,
    ca: Arc<LocalCa>,
    /// Where every instance reads its configuration.
    store: Store,
    running: BTreeMap<String, Running>,
    failed: BTreeMap<String, Failure>,
    /// Gateways that must not serve, by Pod, and why (their static egress prefix is gone).
    held: BTreeMap<String, String>,
    /// Starts after the first, by Pod (the Pod's `restartCount`).
    restarts: BTreeMap<String, u32>,
    /// Instances still draining, by the address they release when done (a new Pod may get
    /// the same IP and must wait for it).
    draining: BTreeMap<Ipv4Addr, tokio::task::JoinHandle<()>>,
    /// The Kubernetes API client gateways and sidecars read their configuration with (as
    /// `egress gateway run --kube` does in a Pod); without one they read the store.
    kube: Option<egress_kube::Client>,
    /// One set of watches per (namespace, revision, gateway or sidecar), shared by the
    /// instances of that scope (every replica of a Deployment watches the same objects).
    kube_sources: BTreeMap<SourceKey, egress_kube::KubeSource>,
}

impl Runtime {
    /// A runtime whose workloads read their configuration from `store` and get their
    /// certificates from the CA endpoint `ca`, each with its own service account's token (one
    /// client for the local and a real cluster).
    pub fn new(options: RuntimeOptions, ca: Arc<LocalCa>, store: Store) -> Runtime {
        Runtime {
            options,
            ca,
            store,
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
            held: BTreeMap::new(),
            restarts: BTreeMap::new(),
            draining: BTreeMap::new(),
            kube: None,
            kube_sources: BTreeMap::new(),
        }
    }

    /// From now on, gateways and sidecars started read their configuration through the
    /// Kubernetes API with `client` (the served API of `egress up`), as a gateway does in a Pod
    /// of a real cluster.
    pub fn read_through_api(&mut self, client: egress_kube::Client) {
        self.kube = Some(client);
    }

    /// Where an instance of `kind` with `identity` reads its configuration, and the key of the
    /// shared API watches it uses, if any.
    fn config_source(
        &mut self,
        kind: &PodKind,
        identity: &GatewayIdentity,
    ) -> Result<(ConfigSource, Option<SourceKey>), String> {
        let Some(client) = &self.kube else {
            return Ok((ConfigSource::Store(self.store.clone()), None));
        };
        let workload = match kind {
            PodKind::Gateway => egress_kube::Workload::Gateway,
            PodKind::Sidecar => egress_kube::Workload::Sidecar,
        };
        let key = (
            identity.namespace.clone(),
            identity.revision.clone(),
            workload,
        );
        if let Some(source) = self.kube_sources.get(&key) {
            return Ok((ConfigSource::Kube(source.clone()), Some(key)));
        }
        let scope = egress_kube::Scope {
            namespace: key.0.clone(),
            revision: key.1.clone(),
            watch_namespaces: Vec::new(),
            workload,
        };
        let source = egress_kube::KubeSource::start(client.clone(), &scope)
            .map_err(|e| format!("Kubernetes API: {e}"))?;
        self.kube_sources.insert(key.clone(), source.clone());
        Ok((ConfigSource::Kube(source), Some(key)))
    }

    /// What the controllers need to know: each instance's state by Pod.
    pub fn facts(&self) -> Facts {
        let mut f = Facts::new();
        for (path, r) in &self.running {
            let state = if r.instance.is_ready() {
                InstanceState::Ready
            } else {
                let unbound = r.instance.unbound();
                if unbound.is_empty() {
                    InstanceState::Starting
                } else {
                    InstanceState::NotReady {
                        message: unbound.join("; "),
                    }
                }
            };
            f.insert(path.clone(), self.fact(path, state));
        }
        for (path, why) in &self.held {
            let state = InstanceState::NotReady {
                message: why.clone(),
            };
            f.insert(path.clone(), self.fact(path, state));
        }
        for (path, fail) in &self.failed {
            let state = InstanceState::Failed {
                message: fail.message.clone(),
            };
            f.insert(path.clone(), self.fact(path, state));
        }
        f
    }

    fn fact(&self, path: &str, instance: InstanceState) -> Fact {
        Fact {
            instance,
            restarts: self.restarts.get(path).copied().unwrap_or(0),
        }
    }

    /// Number of running instances.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// True when nothing runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// When the next failed instance should be retried.
    pub fn next_retry(&self) -> Option<Instant> {
        self.failed.values().map(|f| f.retry_at).min()
    }

    /// Starts instances for gateway Pods with an IP and stops those whose Pod is gone. Returns
    /// true when anything started, stopped or failed (the facts changed).
    pub async fn sync(&mut self, state: &State) -> bool {
        let wanted = gateway_pods(state);
        let mut changed = false;
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for path in gone {
            if let Some(r) = self.running.remove(&path) {
                tracing::info!(pod = %path, "stopping gateway");
                self.stop(r);
                changed = true;
            }
        }
        self.failed.retain(|k, _| wanted.contains_key(k));
        self.restarts.retain(|k, _| wanted.contains_key(k));
        let held_before = std::mem::take(&mut self.held);
        let now = Instant::now();
        for (path, pod) in wanted {
            if let Some(r) = self.running.get(&path) {
                // A changed identity (labels, ports) or egress address (its static egress
                // prefix re-pointed) means a new container: restart it.
                if r.identity == pod.identity && r.source == pod.source && pod.held.is_none() {
                    continue;
                }
                if let Some(r) = self.running.remove(&path) {
                    tracing::info!(pod = %path, "stopping gateway: its identity or egress address changed");
                    self.stop(r);
                    changed = true;
                }
            }
            // Without its static egress prefix a gateway does not serve: it would leave from
            // an address the destination's allowlist does not know.
            if let Some(why) = pod.held.clone() {
                if held_before.get(&path) != Some(&why) {
                    tracing::warn!(pod = %path, "gateway held: {why}");
                    changed = true;
                }
                self.failed.remove(&path);
                self.held.insert(path, why);
                continue;
            }
            if held_before.contains_key(&path) {
                changed = true;
            }
            if self.failed.get(&path).is_some_and(|f| f.retry_at > now) {
                continue;
            }
            changed = true;
            // The first start by this runtime continues the stored count (a Pod whose
            // container had started before ran in an earlier `egress up`).
            let restarts = match self.restarts.get(&path) {
                Some(n) => n.saturating_add(1),
                None => pod
                    .restarts_before
                    .saturating_add(u32::from(pod.started_before)),
            };
            self.restarts.insert(path.clone(), restarts);
            match self.start(&pod).await {
                Ok(r) => {
                    tracing::info!(pod = %path, ip = %pod.ip, source = ?pod.source, "gateway started");
                    self.failed.remove(&path);
                    self.running.insert(path, r);
                }
                Err(message) => {
                    let in_a_row = self.failed.get(&path).map_or(0, |f| f.in_a_row + 1);
                    // Kubernetes' CrashLoopBackOff: 10 s doubling up to 5 minutes.
                    let backoff =
                        Duration::from_secs(10u64 << in_a_row.min(5)).min(Duration::from_secs(300));
                    tracing::warn!(pod = %path, "gateway failed to start: {message}");
                    self.failed.insert(
                        path,
                        Failure {
                            message,
                            in_a_row,
                            retry_at: now + backoff,
                        },
                    );
                }
            }
        }
        // Watches nobody reads any more stop (with the last clone of their source).
        let used: std::collections::BTreeSet<&SourceKey> = self
            .running
            .values()
            .filter_map(|r| r.watches.as_ref())
            .collect();
        self.kube_sources.retain(|k, _| used.contains(k));
        changed
    }

    fn stop(&mut self, r: Running) {
        self.draining.retain(|_, h| !h.is_finished());
        let ip = r.ip;
        self.draining
            .insert(ip, tokio::spawn(r.instance.shutdown(STOP_GRACE)));
    }

    async fn start(&mut self, pod: &PodView) -> Result<Running, String> {
        if let Some(previous) = self.draining.remove(&pod.ip) {
            // The address's previous Pod is still draining; its sockets close when done.
            let _ = previous.await;
        }
        let spiffe = SpiffeId::new(
            &self.options.trust_domain,
            &pod.identity.namespace,
            &pod.identity.service_account,
        )
        .map_err(|e| format!("workload identity: {e}"))?;
        let client = Arc::new(
            self.ca
                .client_for(&pod.identity.namespace, &pod.identity.service_account)
                .map_err(|e| format!("workload certificate: {e}"))?,
        );
        let options = RotationOptions {
            ttl: CERT_TTL,
            ..RotationOptions::default()
        };
        let cert = egress_identity::istioca::obtain(client, &spiffe, options)
            .await
            .map_err(|e| format!("workload certificate: {e}"))?;
        let log = self.pod_log(pod)?;
        let plane = match pod.kind {
            PodKind::Gateway => Plane::Gateway(ProxyOptions {
                source_address: pod.source,
                listen_address: Some(IpAddr::V4(pod.ip)),
                health_port: Some(egress_addon::objects::STATUS_PORT.unsigned_abs() as u16),
                metrics_port: Some(METRICS_PORT),
                prometheus_port: Some(PROMETHEUS_PORT),
                limits: self.options.limits.clone(),
                upstream: self.options.upstream.clone(),
            }),
            PodKind::Sidecar => Plane::Sidecar {
                options: SidecarOptions {
                    proxy_listen: std::net::SocketAddr::new(IpAddr::V4(pod.ip), SIDECAR_PROXY_PORT),
                    capture_listen: None,
                    source_address: pod.source,
                    limits: self.options.limits.clone(),
                    upstream: self.options.upstream.clone(),
                },
                telemetry: SidecarTelemetry {
                    metrics_port: Some(METRICS_PORT),
                    prometheus_port: Some(PROMETHEUS_PORT),
                    workload: LocalWorkload::from_pod_labels(
                        &pod.identity.namespace,
                        &pod.identity.labels,
                    ),
                },
            },
        };
        let (source, watches) = self.config_source(&pod.kind, &pod.identity)?;
        let instance = Instance::start(
            source,
            pod.identity.clone(),
            plane,
            Some(Arc::clone(&cert.handle)),
            log,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Running {
            ip: pod.ip,
            source: pod.source,
            instance,
            identity: pod.identity.clone(),
            watches,
            _rotation: cert.rotation,
        })
    }

    fn pod_log(&self, pod: &PodView) -> Result<AccessLogger, String> {
        let dir = self
            .options
            .pod_log_dir
            .join(pod.path.replacen('/', "_", 1));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{}.log", pod.container));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(AccessLogger::to_writer_when_configured(Box::new(file)))
    }

    /// Stops every instance, each draining for up to `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        let all = std::mem::take(&mut self.running);
        let mut tasks: Vec<_> = std::mem::take(&mut self.draining).into_values().collect();
        for (_, r) in all {
            tasks.push(tokio::spawn(r.instance.shutdown(grace)));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
