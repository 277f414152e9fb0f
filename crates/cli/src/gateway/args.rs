//! The flags of `egress gateway run` and `egress sidecar run`, and turning them into
//! [`GatewayRunArgs`]: the instance's identity (flags, or the downward API through `POD_*`
//! environment variables and a labels file), the configuration source (the local store, a
//! directory, or the Kubernetes API server) and the data-plane options.

use std::path::PathBuf;

use clap::Args;

use super::{ConfigSource, GatewayRunArgs, downward, parse_host, parse_labels, parse_ports};
use crate::OpError;

/// `egress gateway run` / `egress sidecar run`.
#[derive(Args, Debug)]
pub struct GatewayRun {
    /// The instance's namespace (Gateways select it; credentialName Secrets are read here).
    #[arg(long, env = "POD_NAMESPACE", default_value = "aks-istio-egress")]
    pub namespace: String,
    /// The instance's Pod name (logged; the downward API's metadata.name).
    #[arg(long = "pod-name", env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The instance's labels, matched by Gateway selectors (`istio=NAME,app=NAME`).
    #[arg(long, env = "POD_LABELS", default_value = "")]
    pub labels: String,
    /// A downward API labels file (`key="value"` lines); its labels are added to `--labels`.
    #[arg(long = "labels-file")]
    pub labels_file: Option<PathBuf>,
    /// The instance's service account (its SPIFFE identity).
    #[arg(
        long = "service-account",
        env = "SERVICE_ACCOUNT",
        default_value = "default"
    )]
    pub service_account: String,
    /// Control-plane revision (`asm-1-24`): selects the shared MeshConfig.
    #[arg(long, env = "ISTIO_REVISION")]
    pub revision: Option<String>,
    /// The gateway Service's ports, SERVICE:TARGET.
    #[arg(long = "service-ports", default_value = "80:8080,443:8443")]
    pub service_ports: String,
    /// Read configuration from this directory of YAML files instead of the cluster store.
    #[arg(long, conflicts_with_all = ["kube", "kubeconfig", "context"])]
    pub config: Option<PathBuf>,
    /// Read configuration from the Kubernetes API server: `--kubeconfig`, else `KUBECONFIG` or
    /// `~/.kube/config`, else the Pod's service account (in-cluster).
    #[arg(long)]
    pub kube: bool,
    /// Kubernetes mode with this kubeconfig file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes mode with this kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// Kubernetes mode: read Gateways, VirtualServices, DestinationRules, ServiceEntries and
    /// Sidecars only from these namespaces (repeatable; the own and the root namespace are
    /// always read). Default: all namespaces.
    #[arg(long = "watch-namespace")]
    pub watch_namespaces: Vec<String>,
    /// Address listeners bind (the pod IP); default all addresses.
    #[arg(long = "listen-address")]
    pub listen_address: Option<std::net::IpAddr>,
    /// Source address for upstream connections (the static egress IP).
    #[arg(long = "source-address")]
    pub source_address: Option<std::net::IpAddr>,
    /// Health port (`/healthz/ready`).
    #[arg(long = "health-port", default_value_t = 15021)]
    pub health_port: u16,
    /// Resolver override NAME=IP[+IP...], repeatable.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Also resolve names through the system's resolver (by default only `--host` overrides
    /// and IP literals resolve, so nothing leaves the machine unless asked to).
    #[arg(long = "system-dns")]
    pub system_dns: bool,
    /// Ask only this DNS server (IP:PORT; UDP, TCP on truncation) for names without a
    /// `--host` override, instead of the system's resolver; implies `--system-dns`.
    #[arg(long = "dns-server", value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Turn the resolved-address guard off: connect even when a DNS answer for an external
    /// host is a loopback, private, link-local, CGNAT or cloud-metadata address. Off by
    /// default; `--host` overrides and STATIC ServiceEntry endpoints are never guarded.
    #[arg(long = "allow-private-upstreams")]
    pub allow_private_upstreams: bool,
    /// Extra PEM roots trusted for upstream TLS, repeatable.
    #[arg(long = "extra-roots")]
    pub extra_roots: Vec<PathBuf>,
    /// Mesh CA certificate (PEM).
    #[arg(long = "ca-cert", requires = "ca_key", conflicts_with = "ca_address")]
    pub ca_cert: Option<PathBuf>,
    /// Mesh CA key (PEM).
    #[arg(long = "ca-key", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Trust domain.
    #[arg(long = "trust-domain", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Grace period for in-flight requests on SIGTERM, in seconds.
    #[arg(long = "drain-grace", default_value_t = 5.0)]
    pub drain_grace: f64,
    /// The Prometheus endpoint (`/stats/prometheus`, Istio's merged-metrics port); 0 turns it
    /// off.
    #[arg(long = "metrics-port", default_value_t = 15020)]
    pub metrics_port: u16,
    /// The workload certificate from istiod's CA API (`--ca-address`), as Istio's agent.
    #[command(flatten)]
    pub mesh_cert: crate::meshcert::MeshCertArgs,
    /// The same figures on Envoy's `http-envoy-prom` port; 0 turns it off.
    #[arg(long = "prometheus-port", default_value_t = 15090)]
    pub prometheus_port: u16,
    /// Sidecars: the port of the explicit outbound proxy on `--listen-address`.
    #[arg(long = "proxy-port", default_value_t = 15001)]
    pub proxy_port: u16,
    /// Downstream limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The downstream limits of `gateway run` and `sidecar run` (Envoy's edge-proxy values by
/// default). Timeouts are in seconds; 0 turns one off.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Close a connection whose request headers are not complete this many seconds after
    /// their first byte (HTTP/1.1; Envoy's `request_headers_timeout`).
    #[arg(
        long = "request-headers-timeout",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub request_headers_timeout: f64,
    /// Close an HTTP/1.1 or HTTP/2 connection without requests in flight after this many
    /// seconds (Envoy's connection `idle_timeout`).
    #[arg(
        long = "idle-timeout",
        value_name = "SECONDS",
        default_value_t = 3600.0
    )]
    pub idle_timeout: f64,
    /// End a request whose stream sees no activity for this many seconds: 408 `SI` before
    /// the response started, a reset after (Envoy's `stream_idle_timeout`).
    #[arg(
        long = "stream-idle-timeout",
        value_name = "SECONDS",
        default_value_t = 300.0
    )]
    pub stream_idle_timeout: f64,
    /// Close a TCP proxy connection that moves no bytes either way for this many seconds
    /// (the `idle_timeout` Istio sets on `tcp_proxy`).
    #[arg(
        long = "tcp-idle-timeout",
        value_name = "SECONDS",
        default_value_t = 3600.0
    )]
    pub tcp_idle_timeout: f64,
    /// The most KiB of request line and headers; larger requests are answered 431
    /// (Envoy's `max_request_headers_kb`).
    #[arg(
        long = "max-request-headers-kb",
        value_name = "KIB",
        default_value_t = 60
    )]
    pub max_request_headers_kb: usize,
    /// The most request headers; more are answered 431 (Envoy's `max_headers_count`).
    #[arg(
        long = "max-request-headers",
        value_name = "COUNT",
        default_value_t = 100
    )]
    pub max_request_headers: usize,
    /// The most connections one listener holds open; when reached, the oldest idle
    /// connection is closed to make room, and accepting pauses when none is idle. 0: as many
    /// as the descriptor limit leaves room for ((RLIMIT_NOFILE - 64) / 2), at most 50000.
    #[arg(
        long = "max-connections-per-listener",
        value_name = "COUNT",
        default_value_t = 0
    )]
    pub max_connections_per_listener: usize,
}

impl LimitArgs {
    /// The flags that ask for these limits again (for a re-executed process).
    pub fn to_args(&self) -> Vec<String> {
        [
            (
                "--request-headers-timeout",
                self.request_headers_timeout.to_string(),
            ),
            ("--idle-timeout", self.idle_timeout.to_string()),
            (
                "--stream-idle-timeout",
                self.stream_idle_timeout.to_string(),
            ),
            ("--tcp-idle-timeout", self.tcp_idle_timeout.to_string()),
            (
                "--max-request-headers-kb",
                self.max_request_headers_kb.to_string(),
            ),
            (
                "--max-request-headers",
                self.max_request_headers.to_string(),
            ),
            (
                "--max-connections-per-listener",
                self.max_connections_per_listener.to_string(),
            ),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }

    /// The limits these flags ask for.
    pub fn limits(&self) -> Result<egress_proxy::limits::Limits, OpError> {
        let seconds = |flag: &str, v: f64| -> Result<Option<std::time::Duration>, OpError> {
            if !(v.is_finite() && v >= 0.0) {
                return Err(OpError::Usage(format!(
                    "--{flag} must be a non-negative number of seconds"
                )));
            }
            Ok((v > 0.0).then(|| std::time::Duration::from_secs_f64(v)))
        };
        if self.max_request_headers_kb == 0 || self.max_request_headers == 0 {
            return Err(OpError::Usage(
                "--max-request-headers-kb and --max-request-headers must be at least 1".into(),
            ));
        }
        Ok(egress_proxy::limits::Limits {
            request_headers_timeout: seconds(
                "request-headers-timeout",
                self.request_headers_timeout,
            )?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            stream_idle_timeout: seconds("stream-idle-timeout", self.stream_idle_timeout)?,
            tcp_idle_timeout: seconds("tcp-idle-timeout", self.tcp_idle_timeout)?,
            max_request_headers_bytes: self.max_request_headers_kb.saturating_mul(1024),
            max_request_headers: self.max_request_headers,
            max_connections_per_listener: (self.max_connections_per_listener > 0)
                .then_some(self.max_connections_per_listener),
        })
    }
}

impl GatewayRun {
    /// Whether the configuration comes from the Kubernetes API server.
    pub fn kube_mode(&self) -> bool {
        self.kube || self.kubeconfig.is_some() || self.context.is_some()
    }
}

fn open_store(flag: Option<PathBuf>) -> Result<egress_store::Store, OpError> {
    let dir = egress_store::default_dir(
        flag,
        None,
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
    .map_err(OpError::store)?;
    egress_store::Store::open(&dir).map_err(OpError::store)
}

/// Runs `egress gateway run` (or `egress sidecar run` when `sidecar`) to completion.
pub fn gateway_run(
    store_flag: Option<PathBuf>,
    g: GatewayRun,
    sidecar: bool,
) -> Result<(), OpError> {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    if !g.watch_namespaces.is_empty() && !g.kube_mode() {
        return Err(OpError::Usage(
            "--watch-namespace needs Kubernetes mode (--kube, --kubeconfig or --context)".into(),
        ));
    }
    let mut labels = parse_labels(&g.labels)?;
    if let Some(path) = &g.labels_file {
        let text = std::fs::read_to_string(path).map_err(|source| OpError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let from_file = downward::parse_labels_file(&text)
            .map_err(|e| OpError::failed(path.display().to_string(), e))?;
        labels.extend(from_file);
    }
    let mut extra_roots_pem = Vec::new();
    for p in &g.extra_roots {
        extra_roots_pem.push(std::fs::read_to_string(p).map_err(|source| OpError::Read {
            path: p.display().to_string(),
            source,
        })?);
    }
    let hosts = g
        .hosts
        .iter()
        .map(|h| parse_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    if !(g.drain_grace.is_finite() && g.drain_grace >= 0.0) {
        return Err(OpError::Usage(
            "--drain-grace must be a non-negative number of seconds".into(),
        ));
    }
    let limits = g.limits.limits()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(OpError::Output)?;
    let source = if g.kube_mode() {
        let options = egress_kube::KubeOptions {
            kubeconfig: g.kubeconfig.clone(),
            context: g.context.clone(),
        };
        let scope = egress_kube::Scope {
            namespace: g.namespace.clone(),
            revision: g.revision.clone(),
            watch_namespaces: g.watch_namespaces.clone(),
            workload: egress_kube::Workload::Gateway,
        };
        let source = runtime.block_on(async {
            let client = options.client().await?;
            egress_kube::KubeSource::start(client, &scope)
        });
        ConfigSource::Kube(source.map_err(OpError::cause)?)
    } else {
        match g.config {
            Some(dir) => ConfigSource::Dir(dir),
            None => ConfigSource::Store(open_store(store_flag)?),
        }
    };
    tracing::info!(
        namespace = %g.namespace,
        pod = g.pod_name.as_deref().unwrap_or("-"),
        service_account = %g.service_account,
        ?labels,
        "starting"
    );
    let args = GatewayRunArgs {
        identity: egress_compile::snapshot::GatewayIdentity {
            namespace: g.namespace,
            labels,
            service_account: g.service_account,
            revision: g.revision,
            service_ports: parse_ports(&g.service_ports)?,
        },
        source,
        options: egress_proxy::ProxyOptions {
            source_address: g.source_address,
            listen_address: g.listen_address,
            health_port: Some(g.health_port),
            metrics_port: (g.metrics_port != 0).then_some(g.metrics_port),
            prometheus_port: (g.prometheus_port != 0).then_some(g.prometheus_port),
            limits,
            upstream: egress_proxy::UpstreamOptions {
                hosts,
                extra_roots_pem,
                system_dns: g.system_dns || g.dns_server.is_some(),
                dns_server: g.dns_server,
                allow_private_upstreams: g.allow_private_upstreams,
            },
        },
        ca_files: g.ca_cert.zip(g.ca_key),
        mesh_cert: g.mesh_cert,
        trust_domain: g.trust_domain,
        drain_grace: std::time::Duration::from_secs_f64(g.drain_grace),
    };
    let proxy_port = g.proxy_port;
    let result = if sidecar {
        runtime.block_on(crate::sidecar::run(args, proxy_port))
    } else {
        runtime.block_on(super::run(args))
    };
    // Do not wait for blocking helpers (a store watch slice) beyond a moment.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
