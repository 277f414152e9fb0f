//! The churn soak of the local cluster (`bench/soak`): the real `egress up` on a store of its
//! own runs the seed's three scenarios (HTTP egress by Host, TLS passthrough by SNI, TLS
//! origination), each with its own add-on gateway, while
//!
//! * [`load`] sends a fixed rate of requests per scenario from the `curl` workload's sidecar,
//! * [`churn`] applies or deletes one VirtualService, AuthorizationPolicy, ServiceEntry or
//!   MeshConfig change every 200 ms,
//! * [`disrupt`] disables and re-enables a gateway every so often and SIGKILLs and restarts
//!   `egress up` on a fixed period, sampling its RSS and descriptors,
//!
//! and [`oracle`] checks every request outside a change window against what the declared
//! state says it must get. [`report`] prints the figures beside the goals.
//!
//! Everything is on loopback: pod IPs from `--pod-range`, static egress prefixes from
//! `--egress-ip-pool`, the scenarios' hosts answered by [`upstream`] on one address.

pub mod churn;
pub mod client;
pub mod cluster;
pub mod disrupt;
pub mod load;
pub mod manifests;
pub mod oracle;
pub mod report;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use rand::SeedableRng;

use crate::client::{Addresses, Client};
use crate::cluster::Egress;
use crate::disrupt::{Current, Instance};
use crate::manifests::{CURL, NS, REVISION, SCENARIOS};
use crate::oracle::{Declared, Tracker};
use crate::report::Report;

/// Why a soak could not run.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// A file or process operation failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being worked on.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A listening address could not be bound (ports 80 and 443 need root).
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// An `egress` command failed or timed out.
    #[error("{what}: {detail}")]
    Command {
        /// The command line.
        what: String,
        /// Its exit status and standard error, or the timeout.
        detail: String,
    },
    /// Pods did not become healthy in time.
    #[error("not healthy after {after:?}: {detail}")]
    NotHealthy {
        /// How long it waited.
        after: Duration,
        /// What was still missing.
        detail: String,
    },
    /// Certificates for the stand-in could not be made.
    #[error("stand-in TLS: {0}")]
    Tls(String),
}

impl SoakError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SoakError {
        SoakError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether it failed only for lack of the privilege to bind ports 80/443.
    pub fn needs_root(&self) -> bool {
        matches!(self, SoakError::Bind { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `egress` binary under test.
    pub egress_bin: PathBuf,
    /// How long the load runs (setup and teardown come on top).
    pub duration: Duration,
    /// Requests per second per scenario.
    pub rate: u32,
    /// Bound on requests in flight per scenario.
    pub max_in_flight: usize,
    /// Bound on one request.
    pub request_timeout: Duration,
    /// One churn change per this period.
    pub churn_every: Duration,
    /// At least this long between two changes of one scenario's expected outcome.
    pub hold: Duration,
    /// A change window lasts this long after a commit or the end of a disruption.
    pub settle: Duration,
    /// One gateway disable/enable cycle per this period.
    pub gateway_every: Duration,
    /// `egress up` is SIGKILLed and restarted with this period.
    pub restart_every: Duration,
    /// Pod IPs.
    pub pod_range: Ipv4Net,
    /// Static egress prefixes.
    pub egress_pool: Ipv4Net,
    /// The stand-in's address.
    pub upstream_ip: IpAddr,
    /// Seed of the churn driver's choices.
    pub seed: u64,
    /// Keep the work directory (store, `egress up`'s log) instead of deleting it.
    pub keep: bool,
}

impl Options {
    /// The full soak: 10 minutes, 20 req/s per scenario, a change every 200 ms, a gateway
    /// cycle every 20 s, a restart every 30 s.
    pub fn full(egress_bin: PathBuf) -> Options {
        Options {
            egress_bin,
            duration: Duration::from_secs(600),
            rate: 20,
            max_in_flight: 40,
            request_timeout: Duration::from_secs(2),
            churn_every: Duration::from_millis(200),
            hold: Duration::from_secs(2),
            settle: Duration::from_secs(1),
            gateway_every: Duration::from_secs(20),
            restart_every: Duration::from_secs(30),
            pod_range: Ipv4Net::new(std::net::Ipv4Addr::new(127, 90, 1, 0), 24).unwrap_or_default(),
            egress_pool: Ipv4Net::new(std::net::Ipv4Addr::new(127, 91, 1, 0), 24)
                .unwrap_or_default(),
            upstream_ip: IpAddr::from([127, 90, 200, 1]),
            seed: 13,
            keep: false,
        }
    }

    /// The short mode (the test suite's): 30 s of load, a gateway cycle every 8 s and a
    /// restart every 12 s, so every phase runs at least twice.
    pub fn short(egress_bin: PathBuf) -> Options {
        Options {
            duration: Duration::from_secs(30),
            gateway_every: Duration::from_secs(8),
            restart_every: Duration::from_secs(12),
            ..Options::full(egress_bin)
        }
    }
}

/// What the concurrent parts share.
#[derive(Debug)]
pub struct Shared {
    start: Instant,
    tracker: Mutex<Tracker>,
    sidecar: Mutex<Option<SocketAddr>>,
    /// The gateway being disabled and re-enabled, if any.
    pub cycling: Mutex<Option<usize>>,
    events: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
}

impl Shared {
    /// The oracle's tracker, locked.
    pub fn lock(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The workload sidecar's explicit-proxy address.
    pub fn sidecar(&self) -> Option<SocketAddr> {
        *self.sidecar.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets it (after a restart the Pod may have moved).
    pub fn set_sidecar(&self, addr: SocketAddr) {
        *self.sidecar.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
    }

    /// Appends a line to the event log (`events.log` in the work directory), stamped with the
    /// seconds since the start of the load.
    pub fn event(&self, line: &str) {
        use std::io::Write as _;
        let at = self.since_start(Instant::now());
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = events.as_mut() {
            let _ = writeln!(w, "{at:9.3} {line}");
        }
    }

    /// Flushes the event log.
    pub fn flush_events(&self) {
        use std::io::Write as _;
        if let Some(w) = self
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let _ = w.flush();
        }
    }

    /// Seconds from the start of the load to `t`.
    pub fn since_start(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// `egress up`'s flags for `o` with the stand-in's CA at `ca`.
fn up_flags(o: &Options, ca: &Path) -> Vec<String> {
    let mut f = vec![
        "--pod-range".to_owned(),
        o.pod_range.to_string(),
        "--egress-ip-pool".to_owned(),
        o.egress_pool.to_string(),
        "--upstream-ca".to_owned(),
        ca.display().to_string(),
    ];
    for s in SCENARIOS {
        f.push("--host".to_owned());
        f.push(format!("{}={}", s.host, o.upstream_ip));
    }
    f
}

/// Sets up the cluster and the scenarios; the egress prefixes of the gateways, in order.
async fn set_up(egress: &Egress) -> Result<Vec<Ipv4Net>, SoakError> {
    let long = Duration::from_secs(120);
    egress
        .mesh(&["enable", "--revision", REVISION], long)
        .await?;
    egress.apply(&manifests::base(), false).await?;
    egress.apply(&manifests::mesh_config(true), false).await?;
    let mut prefixes = Vec::new();
    for s in SCENARIOS {
        let deadline = Instant::now() + Duration::from_secs(30);
        let prefix = loop {
            if let Some(p) = egress.egress_prefix(s.sgc).await? {
                break p;
            }
            if Instant::now() >= deadline {
                return Err(SoakError::NotHealthy {
                    after: Duration::from_secs(30),
                    detail: format!("{} has no egress prefix", s.sgc),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        prefixes.push(prefix.parse().map_err(|_| SoakError::Command {
            what: format!("egress get sgc {}", s.sgc),
            detail: format!("not a prefix: {prefix}"),
        })?);
        egress
            .mesh(
                &[
                    "enable-egress-gateway",
                    "--istio-egressgateway-name",
                    s.gateway,
                    "--gateway-configuration-name",
                    s.sgc,
                ],
                long,
            )
            .await?;
    }
    egress
        .run(
            &[
                "label",
                "namespace",
                NS,
                &format!("istio.io/rev={REVISION}"),
            ],
            None,
            long,
        )
        .await?;
    egress.apply(CURL, true).await?;
    for s in SCENARIOS {
        egress.apply(&s.fixed(), true).await?;
        egress.apply(&s.service_entry(), true).await?;
        egress.apply(&s.virtual_service(), true).await?;
    }
    Ok(prefixes)
}

/// Runs the soak described by `o` and returns its figures.
pub async fn run(o: &Options) -> Result<Report, SoakError> {
    let work = tempfile::Builder::new()
        .prefix("egress-soak-")
        .tempdir()
        .map_err(|e| SoakError::io(Path::new("temporary directory"), e))?;
    let dir = work.path().to_owned();
    let upstream = upstream::Upstream::start(o.upstream_ip, &dir).await?;
    let egress = Egress::new(&o.egress_bin, &dir.join("store"), &dir.join("up.log"));
    let flags = up_flags(o, upstream.ca_file());
    let first = egress.start_up(&flags, Duration::from_secs(60)).await?;
    let current = Arc::new(Mutex::new(Current {
        instances: vec![Instance {
            pid: first.pid,
            samples: Vec::new(),
        }],
        up: Some(first),
    }));
    let result = soak(o, &dir, &egress, &upstream, &flags, &current).await;
    let up = current
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .up
        .take();
    let stop = match up {
        Some(up) => {
            let t = Instant::now();
            let clean = up.stop(Duration::from_secs(15)).await;
            Some((t.elapsed(), clean))
        }
        None => None,
    };
    upstream.stop();
    let kept = if o.keep { Some(work.keep()) } else { None };
    let mut report = result?;
    report.stop = stop;
    report.work_dir = kept;
    report.instances = std::mem::take(
        &mut current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .instances,
    );
    Ok(report)
}

async fn soak(
    o: &Options,
    work: &Path,
    egress: &Egress,
    upstream: &upstream::Upstream,
    flags: &[String],
    current: &Arc<Mutex<Current>>,
) -> Result<Report, SoakError> {
    let setup_started = Instant::now();
    let prefixes = set_up(egress).await?;
    let gateways: Vec<&str> = SCENARIOS.iter().map(|s| s.gateway).collect();
    let sidecar = egress
        .wait_healthy(&gateways, 2, Duration::from_secs(60))
        .await?;
    let setup = setup_started.elapsed();
    let client = Arc::new(Client {
        tls: upstream.client_tls(),
        addresses: Addresses {
            prefixes,
            pod_range: o.pod_range,
        },
        timeout: o.request_timeout,
    });
    let declared = Declared::initial();
    let events_path = work.join("events.log");
    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        tracker: Mutex::new(Tracker::new(&declared, o.settle, start)),
        sidecar: Mutex::new(Some(sidecar)),
        cycling: Mutex::new(None),
        events: Mutex::new(
            std::fs::File::create(events_path)
                .ok()
                .map(std::io::BufWriter::new),
        ),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loads: Vec<_> = (0..SCENARIOS.len())
        .map(|i| {
            tokio::spawn(load::run(
                i,
                o.rate,
                o.max_in_flight,
                Arc::clone(&client),
                Arc::clone(&shared),
                stop_rx.clone(),
            ))
        })
        .collect();
    let driver = churn::Driver::new(declared, rand::rngs::StdRng::seed_from_u64(o.seed), o.hold);
    let churn = tokio::spawn(churn::drive(
        driver,
        egress.clone(),
        Arc::clone(&shared),
        o.churn_every,
        stop_rx.clone(),
    ));
    let cycles = tokio::spawn(disrupt::cycle_gateways(
        egress.clone(),
        Arc::clone(&shared),
        o.gateway_every,
        stop_rx.clone(),
    ));
    let restarts = tokio::spawn(disrupt::restart_up(
        egress.clone(),
        Arc::clone(&shared),
        Arc::clone(current),
        flags.to_vec(),
        o.restart_every,
        stop_rx.clone(),
    ));
    let sampler = tokio::spawn(disrupt::sample(Arc::clone(current), stop_rx));
    tokio::time::sleep(o.duration).await;
    let _ = stop_tx.send(true);
    let mut skipped = 0;
    for l in loads {
        skipped += l.await.unwrap_or_default();
    }
    let load_secs = start.elapsed().as_secs_f64();
    let churn = churn.await.unwrap_or_default();
    let cycles = cycles.await.unwrap_or_default();
    let restarts = restarts.await.unwrap_or_default();
    let _ = sampler.await;
    shared.flush_events();
    let stats = shared.lock().stats.clone();
    Ok(Report {
        options: o.clone(),
        setup,
        load_secs,
        skipped,
        stats,
        churn,
        cycles,
        restarts,
        instances: Vec::new(),
        stop: None,
        work_dir: None,
    })
}
