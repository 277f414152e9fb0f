//! `egress up` and `egress down`: the local cluster in the foreground (Ctrl-C stops it), or in
//! the background with a pid file and a log file (`-d`), and stopping it.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Args;
use egress_addon::ManagedCluster;
use egress_cluster::controllers::Settings;
use egress_cluster::runtime::RuntimeOptions;
use egress_cluster::up::{self, Hooks, RunLock, UpOptions};
use egress_store::Store;
use ipnet::Ipv4Net;

use crate::OpError;
use crate::gateway::parse_host;

/// How long `egress down` waits for the cluster to drain and exit.
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// `egress up` flags.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Run in the background (pid file and log file under `<store>/run/`); stop with
    /// `egress down`.
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Pod IPs come from this range (loopback, so gateways bind addresses of this machine).
    #[arg(long = "pod-range", default_value = "127.1.0.0/16")]
    pub pod_range: Ipv4Net,
    /// StaticGatewayConfiguration prefixes (/31 each) come from this pool.
    #[arg(long = "egress-ip-pool", default_value = egress_addon::sgc::DEFAULT_POOL)]
    pub egress_ip_pool: Ipv4Net,
    /// Resolve NAME to IP in every gateway (`NAME=IP[+IP...]`, repeatable).
    #[arg(long = "host", value_name = "NAME=IP")]
    pub hosts: Vec<String>,
    /// Resolve other names with the system's DNS (off: only `--host` names and IP literals).
    #[arg(long = "system-dns")]
    pub system_dns: bool,
    /// Ask only this DNS server for names missing from `--host` (implies `--system-dns`), as
    /// `egress gateway run --dns-server`.
    #[arg(long = "dns-server", value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Let gateways connect to DNS answers in private, loopback, link-local or metadata
    /// ranges (the resolved-address guard off), as `egress gateway run`.
    #[arg(long = "allow-private-upstreams")]
    pub allow_private_upstreams: bool,
    /// Extra CA certificates (PEM) gateways trust for upstream TLS.
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
    /// Answer for an external host locally (`NAME` or `NAME=IP`, repeatable): HTTP on 80 and
    /// HTTPS on 443 of a loopback address, with a certificate from the cluster's stand-in CA
    /// that gateways and `egress exec` trust. Ports 80/443 need root.
    #[arg(long = "stand-in", value_name = "NAME[=IP]")]
    pub stand_in: Vec<String>,
    /// Trust domain of the mesh.
    #[arg(long = "trust-domain", default_value = "cluster.local")]
    pub trust_domain: String,
    /// At most this many object writes per store transaction.
    #[arg(long = "reconcile-batch", default_value_t = 512)]
    pub reconcile_batch: usize,
    /// How long gateways drain on stop, in seconds.
    #[arg(long = "drain-grace", default_value_t = 5)]
    pub drain_grace: u64,
    /// Serve the Kubernetes API for kubectl on this loopback address (default
    /// 127.0.0.1:6443; when that is taken, the cluster runs without it and says so), or `off`.
    #[arg(long = "api-server", value_name = "IP:PORT|off")]
    pub api_server: Option<String>,
    /// Merge the `egress` kubectl context into this kubeconfig (default: the first path of
    /// $KUBECONFIG, else ~/.kube/config).
    #[arg(long = "write-kubeconfig", value_name = "FILE")]
    pub write_kubeconfig: Option<PathBuf>,
    /// Internal: print `ready` on standard output once running, then log to standard error
    /// only (used by `-d`).
    #[arg(long = "notify-ready", hide = true)]
    pub notify_ready: bool,
    /// Downstream limits of every gateway and sidecar Pod.
    #[command(flatten)]
    pub limits: crate::gateway::args::LimitArgs,
}

/// `egress up`.
pub fn cli_main(store: Result<Store, OpError>, args: &UpArgs) -> ExitCode {
    let result = store.and_then(|s| {
        if args.detach {
            detach(&s, args)
        } else {
            foreground(s, args)
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(&mut std::io::stderr()),
    }
}

/// `egress down`.
pub fn down_main(store: Result<Store, OpError>) -> ExitCode {
    let store = match store {
        Ok(s) => s,
        Err(e) => return e.report(&mut std::io::stderr()),
    };
    match up::stop(store.dir(), DOWN_TIMEOUT) {
        Ok(pid) => {
            println!("egress local cluster stopped (pid {pid})");
            ExitCode::SUCCESS
        }
        Err(egress_cluster::ClusterError::NotRunning { dir }) => {
            println!("egress local cluster is not running ({})", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => OpError::cause(e).report(&mut std::io::stderr()),
    }
}

fn options(args: &UpArgs) -> Result<UpOptions, OpError> {
    let hosts = args
        .hosts
        .iter()
        .map(|h| parse_host(h))
        .collect::<Result<Vec<(String, Vec<IpAddr>)>, _>>()?;
    let mut extra_roots_pem = Vec::new();
    for p in &args.upstream_ca {
        extra_roots_pem.push(std::fs::read_to_string(p).map_err(|source| OpError::Read {
            path: p.display().to_string(),
            source,
        })?);
    }
    Ok(UpOptions {
        settings: Settings {
            pod_range: args.pod_range.trunc(),
            egress_pool: args.egress_ip_pool.trunc().to_string(),
            batch: args.reconcile_batch,
            ..Settings::default()
        },
        runtime: RuntimeOptions {
            trust_domain: args.trust_domain.clone(),
            pod_log_dir: PathBuf::new(),
            limits: args.limits.limits()?,
            upstream: egress_proxy::UpstreamOptions {
                hosts,
                system_dns: args.system_dns || args.dns_server.is_some(),
                dns_server: args.dns_server,
                allow_private_upstreams: args.allow_private_upstreams,
                extra_roots_pem,
            },
        },
        drain_grace: Duration::from_secs(args.drain_grace),
        stand_ins: egress_cluster::standin::parse(&args.stand_in).map_err(OpError::cause)?,
        api: api_options(args)?,
    })
}

/// `--api-server` and `--write-kubeconfig`.
fn api_options(args: &UpArgs) -> Result<Option<egress_cluster::api::ApiOptions>, OpError> {
    let (addr, explicit) = match args.api_server.as_deref() {
        Some("off") => return Ok(None),
        Some(a) => (a, true),
        None => (egress_cluster::api::DEFAULT_ADDR, false),
    };
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| OpError::Usage(format!("--api-server: {addr:?} is not IP:PORT (or off)")))?;
    if !addr.ip().is_loopback() {
        return Err(OpError::Usage(format!(
            "--api-server: the Kubernetes API binds loopback addresses only, not {addr}"
        )));
    }
    let kubeconfig = args
        .write_kubeconfig
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    Ok(Some(egress_cluster::api::ApiOptions {
        addr,
        explicit,
        kubeconfig,
        exec: None,
    }))
}

fn banner(store: &Store, args: &UpArgs, lock: &Path, cluster: &ManagedCluster) -> String {
    format!(
        "egress local cluster (pid {pid})\n  cluster:        {name} in resource group {rg} (egress mesh show)\n  store:          {store}\n  pid file:       {lock}\n  pod IPs:        {pods} (loopback)\n  egress IP pool: {pool} (a /31 per StaticGatewayConfiguration)\n  service IPs:    10.0.0.0/16 (cluster IPs, not bound)\n  runs:           the add-on's controllers, and one gateway per gateway Pod on its pod IP\n                  (health http://<pod-ip>:15021/healthz/ready)",
        pid = std::process::id(),
        name = cluster.name,
        rg = cluster.resource_group,
        store = store.dir().display(),
        lock = lock.display(),
        pods = args.pod_range,
        pool = args.egress_ip_pool,
    )
}

fn foreground(store: Store, args: &UpArgs) -> Result<(), OpError> {
    let lock = RunLock::acquire(store.dir()).map_err(OpError::cause)?;
    // The local cluster's one identity (what `egress mesh -g/-n` must name).
    let cluster = crate::mesh::ensure_local_cluster(&store)
        .map_err(|e| OpError::failed("recording the local cluster", e))?;
    let mut opts = options(args)?;
    opts.runtime.pod_log_dir = up::run_dir(store.dir()).join("pods");
    if let Some(api) = opts.api.as_mut() {
        api.exec = Some(std::sync::Arc::new(crate::ops::exec::PodRunner::new(
            store.clone(),
        )));
    }
    // With --notify-ready standard output belongs to the parent until `ready`; everything
    // else goes to standard error (the log file).
    let to_stderr = args.notify_ready;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(!to_stderr && std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let say = move |line: &str| {
        if to_stderr {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    };
    say(&banner(&store, args, lock.path(), &cluster));
    let notify = args.notify_ready;
    let hooks = Hooks {
        note: Box::new(move |n| say(n)),
        ready: Some(Box::new(move || {
            if notify {
                let _ = writeln!(std::io::stdout(), "ready");
                let _ = std::io::stdout().flush();
            } else {
                let _ = writeln!(std::io::stdout(), "ready (Ctrl-C to stop)");
            }
        })),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(OpError::Output)?;
    let result = runtime.block_on(up::run(
        store,
        opts,
        hooks,
        crate::gateway::wait_for_signal(),
    ));
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(lock);
    result.map_err(OpError::cause)
}

/// Starts `egress up --notify-ready` in its own process group with its output in the log
/// file, and returns once it reports ready (or fails with the end of its log).
fn detach(store: &Store, args: &UpArgs) -> Result<(), OpError> {
    let dir = store.dir();
    if let Some(pid) = up::running_pid(dir) {
        return Err(OpError::Environment(format!(
            "the local cluster is already running on {} (pid {pid}); stop it with \"egress down\"",
            dir.display()
        )));
    }
    let run_dir = up::run_dir(dir);
    std::fs::create_dir_all(&run_dir).map_err(|source| OpError::Read {
        path: run_dir.display().to_string(),
        source,
    })?;
    let log_path = up::log_file(dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| OpError::Read {
            path: log_path.display().to_string(),
            source,
        })?;
    let exe = std::env::current_exe().map_err(OpError::Output)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--store").arg(dir).arg("up").arg("--notify-ready");
    cmd.arg("--pod-range").arg(args.pod_range.to_string());
    cmd.arg("--egress-ip-pool")
        .arg(args.egress_ip_pool.to_string());
    for h in &args.hosts {
        cmd.arg("--host").arg(h);
    }
    for s in &args.stand_in {
        cmd.arg("--stand-in").arg(s);
    }
    if args.system_dns {
        cmd.arg("--system-dns");
    }
    if let Some(dns) = args.dns_server {
        cmd.arg("--dns-server").arg(dns.to_string());
    }
    if args.allow_private_upstreams {
        cmd.arg("--allow-private-upstreams");
    }
    for ca in &args.upstream_ca {
        let abs = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
        cmd.arg("--upstream-ca").arg(abs);
    }
    if let Some(api) = &args.api_server {
        cmd.arg("--api-server").arg(api);
    }
    if let Some(k) = &args.write_kubeconfig {
        let abs = std::path::absolute(k).unwrap_or_else(|_| k.clone());
        cmd.arg("--write-kubeconfig").arg(abs);
    }
    cmd.arg("--trust-domain").arg(&args.trust_domain);
    cmd.arg("--drain-grace").arg(args.drain_grace.to_string());
    cmd.arg("--reconcile-batch")
        .arg(args.reconcile_batch.to_string());
    cmd.args(args.limits.to_args());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(OpError::Output)?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(OpError::Environment(format!(
            "the local cluster did not start; the end of {}:\n{}",
            log_path.display(),
            tail.join("\n")
        )));
    }
    println!(
        "egress local cluster running in the background (pid {})\n  store: {}\n  log:   {}\n  stop it with: egress down",
        child.id(),
        dir.display(),
        log_path.display()
    );
    Ok(())
}
