//! `egress up`'s loop: read the store, run the controllers, commit their plan in one
//! transaction, start and stop gateway instances, refresh the gateways' configuration, then
//! wait for the store's change feed. One `egress up` per store, guarded by an exclusive
//! flock on `<store>/run/up.pid` (which also tells other commands that the cluster runs).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use egress_store::{Store, StoreError, Transaction, Watcher};

use crate::ClusterError;
use crate::controllers::{self, SGC_GROUP, Settings, State, Write};
use crate::runtime::{Runtime, RuntimeOptions};

/// Everything `egress up` is configured with.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Pod range, egress pool, node.
    pub settings: Settings,
    /// Gateway instance options.
    pub runtime: RuntimeOptions,
    /// How long gateways drain on shutdown.
    pub drain_grace: Duration,
    /// Stand-in external hosts to run.
    pub stand_ins: Vec<crate::standin::StandIn>,
    /// The Kubernetes API for kubectl (none: not served).
    pub api: Option<crate::api::ApiOptions>,
}

/// The CA bundle workloads trust (`egress exec`): the system's CAs, `--upstream-ca` and the
/// stand-in CA.
pub fn ca_bundle_path(store_dir: &Path) -> PathBuf {
    run_dir(store_dir).join("ca-bundle.pem")
}

/// The names the cluster resolves itself (`--host`, `--stand-in`), as `/etc/hosts` lines, for
/// workloads run in a capture namespace (`egress exec --capture iptables`).
pub fn hosts_path(store_dir: &Path) -> PathBuf {
    run_dir(store_dir).join("hosts")
}

fn write_hosts(
    store_dir: &Path,
    hosts: &[(String, Vec<std::net::IpAddr>)],
) -> Result<(), ClusterError> {
    let mut text = String::new();
    for (name, ips) in hosts {
        if let Some(ip) = ips.first() {
            text.push_str(&format!("{ip} {name}\n"));
        }
    }
    let path = hosts_path(store_dir);
    std::fs::write(&path, text).map_err(|e| ClusterError::io(&path, e))
}

fn write_ca_bundle(store_dir: &Path, extra: &[String]) -> Result<(), ClusterError> {
    let mut bundle = String::new();
    for system in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(text) = std::fs::read_to_string(system) {
            bundle.push_str(&text);
            break;
        }
    }
    for pem in extra {
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(pem);
    }
    let path = ca_bundle_path(store_dir);
    std::fs::write(&path, bundle).map_err(|e| ClusterError::io(&path, e))
}

/// Callbacks: progress lines, and the moment the first pass has converged.
pub struct Hooks {
    /// A line worth printing (what changed).
    pub note: Box<dyn FnMut(&str) + Send>,
    /// Called once, when the first pass has converged and the gateways run.
    pub ready: Option<Box<dyn FnOnce() + Send>>,
}

/// The directory of the local cluster's run files (pid, log, Pod logs).
pub fn run_dir(store_dir: &Path) -> PathBuf {
    store_dir.join("run")
}

/// The pid file, flocked while `egress up` runs.
pub fn pid_file(store_dir: &Path) -> PathBuf {
    run_dir(store_dir).join("up.pid")
}

/// The log file of a background `egress up`.
pub fn log_file(store_dir: &Path) -> PathBuf {
    run_dir(store_dir).join("up.log")
}

/// The exclusive claim of one `egress up` on a store; released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Claims the store, writing this process's pid; fails if another `egress up` holds it.
    pub fn acquire(store_dir: &Path) -> Result<RunLock, ClusterError> {
        let path = pid_file(store_dir);
        let dir = run_dir(store_dir);
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::io(&dir, e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| ClusterError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(ClusterError::AlreadyRunning {
                    dir: store_dir.to_path_buf(),
                    pid: pid.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(ClusterError::io(&path, e)),
        }
        file.set_len(0).map_err(|e| ClusterError::io(&path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ClusterError::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| ClusterError::io(&path, e))?;
        Ok(RunLock { _file: file, path })
    }

    /// The pid file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid of the `egress up` running on the store, if one runs.
pub fn running_pid(store_dir: &Path) -> Option<u32> {
    let path = pid_file(store_dir);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let mut pid = String::new();
            file.read_to_string(&mut pid).ok()?;
            pid.trim().parse().ok()
        }
    }
}

/// Blocks until no `egress up` holds the store (its process has exited), up to `timeout`.
pub fn wait_stopped(store_dir: &Path, timeout: Duration) -> bool {
    let path = pid_file(store_dir);
    let Ok(file) = File::open(&path) else {
        return true;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(file.lock_shared().is_ok());
    });
    rx.recv_timeout(timeout).unwrap_or(false)
}

/// Reads everything the controllers look at.
pub fn read_state(store: &Store) -> Result<State, StoreError> {
    let list = |g: &str, k: &str| store.list(g, k, None).map(|l| l.items);
    Ok(State {
        sgcs: list(SGC_GROUP, "StaticGatewayConfiguration")?,
        deployments: list("apps", "Deployment")?,
        replica_sets: list("apps", "ReplicaSet")?,
        hpas: list("autoscaling", "HorizontalPodAutoscaler")?,
        pods: list("", "Pod")?,
        events: list("", "Event")?,
        services: list("", "Service")?,
        endpoint_slices: list("discovery.k8s.io", "EndpointSlice")?,
        namespaces: list("", "Namespace")?,
        managed_clusters: list("containerservice.azure.com", "ManagedCluster")?,
    })
}

/// Commits a plan in one transaction; `Ok(false)` when an object changed since the plan was
/// made (the next pass recomputes it).
pub fn commit(store: &Store, writes: &[Write]) -> Result<bool, StoreError> {
    let result = store.transact(|tx: &mut Transaction<'_>| -> Result<(), StoreError> {
        for w in writes {
            match w {
                Write::Put {
                    key,
                    object,
                    expected_rv: None,
                } => {
                    tx.create(key, object.clone())?;
                }
                Write::Put {
                    key,
                    object,
                    expected_rv: Some(rv),
                } => {
                    tx.update(key, object.clone(), Some(*rv))?;
                }
                Write::Delete { key } => {
                    if tx.exists(key)? {
                        tx.delete(key)?;
                    }
                }
            }
        }
        Ok(())
    });
    match result {
        Ok(_) => Ok(true),
        Err(
            StoreError::Conflict { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::NotFound { .. }
            | StoreError::NamespaceNotFound { .. },
        ) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What one controller pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to write: the store is where the controllers want it.
    Idle,
    /// The plan (or its first batch) was committed; `left` writes of the plan remain for the
    /// next passes (0 when the whole plan fit in the batch).
    Committed {
        /// Writes of this plan beyond the batch.
        left: usize,
    },
    /// The transaction was refused (an object changed, or a name was taken, since the
    /// state was read); the next pass recomputes the plan.
    Refused,
}

/// One controller pass: read, plan, commit. Returns whether anything was written (or
/// attempted), and the state read.
pub fn pass(
    store: &Store,
    facts: &controllers::Facts,
    settings: &Settings,
    note: &mut dyn FnMut(&str),
) -> Result<(bool, State), StoreError> {
    pass_outcome(store, facts, settings, note).map(|(o, s)| (o != Outcome::Idle, s))
}

/// [`pass`], telling a committed plan from a refused one.
pub fn pass_outcome(
    store: &Store,
    facts: &controllers::Facts,
    settings: &Settings,
    note: &mut dyn FnMut(&str),
) -> Result<(Outcome, State), StoreError> {
    let state = read_state(store)?;
    let mut settings = settings.clone();
    settings.now = egress_store::rfc3339(SystemTime::now());
    let plan = controllers::reconcile(&state, facts, &settings);
    if plan.writes.is_empty() {
        return Ok((Outcome::Idle, state));
    }
    let n = plan.writes.len().min(settings.batch.max(1));
    let committed = commit(store, &plan.writes[..n])?;
    if !committed {
        return Ok((Outcome::Refused, state));
    }
    for (_, text) in plan.notes.iter().filter(|(i, _)| *i < n) {
        note(text);
    }
    Ok((
        Outcome::Committed {
            left: plan.writes.len() - n,
        },
        state,
    ))
}

/// Back-to-back busy passes (each wrote, was refused or started an instance) after which the
/// loop warns and paces itself: a converging cluster needs a handful; more means something
/// keeps undoing the controllers' work.
pub const BUSY_PASS_LIMIT: u32 = 64;

/// The pause between busy passes once [`BUSY_PASS_LIMIT`] is reached.
pub const BUSY_PASS_PAUSE: Duration = Duration::from_millis(100);

/// Counts back-to-back busy passes and says when the loop must pause (and when to warn).
/// A pass that works through a plan larger than one batch, leaving fewer writes than the
/// pass before, is converging, not fighting: it starts the streak afresh.
#[derive(Debug, Default)]
pub struct BusyPasses {
    streak: u32,
    warned: bool,
    /// Writes the last batched pass left for later.
    left: Option<usize>,
}

/// What the loop does after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the next pass now.
    Again,
    /// Run the next pass after [`BUSY_PASS_PAUSE`]; `warn` once per streak.
    Pause {
        /// The streak just reached the limit.
        warn: bool,
    },
    /// Converged: refresh the configuration, then wait for a change.
    Settle,
}

impl BusyPasses {
    /// Records a pass (`busy`: it wrote, was refused, or started an instance).
    pub fn after(&mut self, busy: bool) -> Next {
        self.after_pass(busy, None)
    }

    /// Records a pass as [`after`](Self::after) does; `left` is how many writes of a plan
    /// larger than the batch remain after it (`None` when none do).
    pub fn after_pass(&mut self, busy: bool, left: Option<usize>) -> Next {
        let shrinking = matches!((left, self.left), (Some(now), Some(before)) if now < before);
        self.left = left;
        if !busy {
            self.streak = 0;
            self.warned = false;
            return Next::Settle;
        }
        if shrinking {
            self.streak = 0;
        }
        self.streak = self.streak.saturating_add(1);
        if self.streak < BUSY_PASS_LIMIT {
            return Next::Again;
        }
        let warn = !self.warned;
        self.warned = true;
        Next::Pause { warn }
    }

    /// How many busy passes ran back to back.
    pub fn streak(&self) -> u32 {
        self.streak
    }
}

/// Raises the open-file limit to its hard maximum: every gateway instance holds a health
/// socket and a log file, and a thousand of them pass the usual soft limit of 1024.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    getrlimit(Resource::Nofile).current
}

/// Runs the local cluster until `shutdown` completes, then drains the gateways.
pub async fn run(
    store: Store,
    options: UpOptions,
    mut hooks: Hooks,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError> {
    let (ca, token_issuer) = {
        let store = store.clone();
        let td = options.runtime.trust_domain.clone();
        tokio::task::spawn_blocking(move || {
            let ca = crate::ca::load_or_create(&store, &td)?;
            Ok::<_, ClusterError>((ca, crate::caserver::load_or_create_token_issuer(&store)?))
        })
        .await
        .map_err(|e| ClusterError::Settings(e.to_string()))??
    };
    let ca = std::sync::Arc::new(ca);
    // The Kubernetes API for kubectl, with a serving certificate from the same CA.
    let api = match &options.api {
        Some(api_options) => match crate::api::start(&store, &ca, api_options).await? {
            Ok(served) => {
                let context = match &served.kubeconfig {
                    Ok(path) => format!("kubectl context \"egress\" in {}", path.display()),
                    Err(why) => format!("no kubeconfig written: {why}"),
                };
                (hooks.note)(&format!(
                    "  kubernetes API:  https://{} ({context})",
                    served.server.local_addr()
                ));
                Some(served)
            }
            Err(warning) => {
                (hooks.note)(&warning);
                None
            }
        },
        None => None,
    };
    // istiod's CA endpoint: workloads get their certificates through Istio's CA API.
    let local_ca = std::sync::Arc::new(
        crate::caserver::LocalCa::start(
            store.dir(),
            std::sync::Arc::clone(&ca),
            token_issuer,
            &options.runtime.trust_domain,
        )
        .await?,
    );
    if let Some(limit) = raise_open_file_limit() {
        tracing::debug!(limit, "open file limit");
    }
    let mut runtime_options = options.runtime.clone();
    let mut stand_ins = None;
    if !options.stand_ins.is_empty() {
        let store = store.clone();
        let stand_in_ca = tokio::task::spawn_blocking(move || {
            crate::ca::load_or_create_in(
                &store,
                crate::standin::STAND_IN_CA_SECRET,
                "stand-in.local",
            )
        })
        .await
        .map_err(|e| ClusterError::Settings(e.to_string()))??;
        let started = crate::standin::StandIns::start(&options.stand_ins, &stand_in_ca).await;
        for line in &started.report {
            (hooks.note)(line);
        }
        for s in &options.stand_ins {
            runtime_options
                .upstream
                .hosts
                .push((s.host.clone(), vec![s.ip]));
        }
        runtime_options
            .upstream
            .extra_roots_pem
            .push(stand_in_ca.root_pem().to_owned());
        stand_ins = Some(started);
    }
    write_ca_bundle(store.dir(), &runtime_options.upstream.extra_roots_pem)?;
    write_hosts(store.dir(), &runtime_options.upstream.hosts)?;
    let mut runtime = Runtime::new(
        runtime_options,
        std::sync::Arc::clone(&local_ca),
        store.clone(),
    );
    // With the API served, gateways read their configuration through it with the
    // Kubernetes-mode client, as in a Pod; without it (`--api-server off`, the default
    // address taken) they read the store.
    let api = match api {
        Some(served) => {
            match served.client().await {
                Ok(client) => runtime.read_through_api(client),
                Err(e) => (hooks.note)(&format!(
                    "warning: gateways read the store: no client for the Kubernetes API ({e})"
                )),
            }
            Some(served.server)
        }
        None => None,
    };
    let mut config_rv: Option<u64> = None;
    let mut refused_rv: Option<u64> = None;
    // Each object's last good version, and the problems last reported (each reported once).
    let mut last_good = egress_runner::lastgood::LastGood::new();
    let mut decoded = egress_runner::decode::DecodeCache::new();
    let mut reported: Vec<String> = Vec::new();
    let mut last_error: Option<String> = None;
    let mut watcher: Option<Watcher> = None;
    tokio::pin!(shutdown);
    let mut busy = BusyPasses::default();
    loop {
        // Shutdown is answered between any two passes, however busy the loop is.
        if shutdown_requested(&mut shutdown).await {
            break;
        }
        let rv = blocking(&store, |s| s.resource_version()).await?;
        let facts = runtime.facts();
        let seen_facts = facts.clone();
        let settings = options.settings.clone();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let passed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                pass_outcome(&store, &facts, &settings, &mut |n| {
                    let _ = tx.send(n.to_owned());
                })
            })
            .await
            .map_err(|e| ClusterError::Settings(e.to_string()))?
        };
        for n in rx.try_iter() {
            (hooks.note)(&n);
        }
        let (outcome, state) = match passed {
            Ok(r) => {
                last_error = None;
                r
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    (hooks.note)(&format!("error: {msg}"));
                    last_error = Some(msg);
                }
                (Outcome::Idle, State::default())
            }
        };
        let started = runtime.sync(&state).await;
        let left = match outcome {
            Outcome::Committed { left } if left > 0 => Some(left),
            _ => None,
        };
        match busy.after_pass(outcome != Outcome::Idle || started, left) {
            Next::Again => continue,
            Next::Pause { warn } => {
                if warn {
                    let line = format!(
                        "warning: {} controller passes in a row changed the store ({outcome:?}); \
                         something keeps undoing their work, pacing passes to one per {:?}",
                        busy.streak(),
                        BUSY_PASS_PAUSE
                    );
                    tracing::warn!("{line}");
                    (hooks.note)(&line);
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(BUSY_PASS_PAUSE) => {}
                }
                continue;
            }
            Next::Settle => {}
        }
        if config_rv != Some(rv) {
            config_rv = Some(rv);
            let (loaded, kept) = {
                let store = store.clone();
                let mut kept = std::mem::take(&mut last_good);
                let mut cache = std::mem::take(&mut decoded);
                tokio::task::spawn_blocking(move || {
                    let loaded =
                        egress_runner::decode::load_store_last_good(&store, &mut cache, &mut kept);
                    (loaded, (kept, cache))
                })
                .await
                .map_err(|e| ClusterError::Settings(e.to_string()))?
            };
            (last_good, decoded) = kept;
            match loaded {
                // A bad object never blocks the others: they apply, and it stays at its last
                // good version (or absent), reported once.
                Ok((merged, _rv)) => {
                    refused_rv = None;
                    let problems = merged.lines();
                    if problems != reported {
                        for p in &problems {
                            (hooks.note)(&format!("configuration: {p}"));
                        }
                        if problems.is_empty() && !reported.is_empty() {
                            (hooks.note)("configuration recovered: every object applies");
                        }
                        reported = problems.clone();
                        // And a Warning Event on each bad object, once per problem.
                        let store = store.clone();
                        let bad = merged.problems.clone();
                        let now = egress_store::rfc3339(SystemTime::now());
                        let recorded = tokio::task::spawn_blocking(move || {
                            crate::config::record_problem_events(&store, &bad, &now)
                        })
                        .await
                        .map_err(|e| ClusterError::Settings(e.to_string()))?;
                        if let Err(e) = recorded {
                            (hooks.note)(&format!("warning: recording configuration events: {e}"));
                        }
                    }
                }
                // The store could not be read at all: the gateways keep what they have.
                Err(error) => {
                    if refused_rv.is_none() {
                        (hooks.note)(&format!(
                            "configuration unreadable, gateways keep their last good one: {error}"
                        ));
                    }
                    refused_rv = Some(rv);
                }
            }
        }
        if let Some(ready) = hooks.ready.take() {
            ready();
        }
        let deadline = runtime.next_retry();
        let facts_changed = || runtime.facts() != seen_facts;
        tokio::select! {
            () = &mut shutdown => break,
            () = wait_for_change(&store, &mut watcher, rv, deadline, &facts_changed) => {}
        }
    }
    (hooks.note)(&format!(
        "stopping {} gateway instance(s), draining up to {:?}",
        runtime.len(),
        options.drain_grace
    ));
    runtime.shutdown(options.drain_grace).await;
    drop(runtime);
    if let Ok(local_ca) = std::sync::Arc::try_unwrap(local_ca) {
        local_ca.stop().await;
    }
    if let Some(s) = stand_ins {
        s.stop();
    }
    if let Some(api) = api {
        api.shutdown().await;
    }
    Ok(())
}

/// True once `shutdown` has completed; never waits.
async fn shutdown_requested<F: Future<Output = ()>>(shutdown: &mut std::pin::Pin<&mut F>) -> bool {
    tokio::select! {
        biased;
        () = shutdown.as_mut() => true,
        () = std::future::ready(()) => false,
    }
}

async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ClusterError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ClusterError::Settings(e.to_string()))?
        .map_err(ClusterError::from)
}

/// Returns once the store has an event after `rv`, at `deadline`, or once `facts_changed`
/// (an instance became ready or stopped being ready: checked every slice). The watcher lives across
/// calls, so the journal is read once, incrementally.
async fn wait_for_change(
    store: &Store,
    watcher: &mut Option<Watcher>,
    rv: u64,
    deadline: Option<Instant>,
    facts_changed: &(dyn Fn() -> bool + Sync),
) {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) || facts_changed() {
            return;
        }
        let store = store.clone();
        let current = watcher.take();
        // Short slices: a blocking task cannot be cancelled, and shutdown must not wait long.
        let waited = tokio::task::spawn_blocking(move || -> Result<(bool, Watcher), StoreError> {
            let mut w = match current {
                Some(w) => w,
                None => store.watch(rv)?,
            };
            if w.resource_version() > rv {
                return Ok((true, w));
            }
            let events = w.next_events(Duration::from_millis(250))?;
            Ok((events.iter().any(|e| e.rv > rv), w))
        })
        .await;
        match waited {
            Ok(Ok((changed, w))) => {
                *watcher = Some(w);
                if changed {
                    return;
                }
            }
            // The feed expired or failed: relist (a new watcher is made from then).
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Asks the `egress up` running on the store to stop (SIGTERM) and waits up to `timeout` for
/// it to exit. Returns its pid, or `NotRunning`.
pub fn stop(store_dir: &Path, timeout: Duration) -> Result<u32, ClusterError> {
    let not_running = || ClusterError::NotRunning {
        dir: store_dir.to_path_buf(),
    };
    let pid = running_pid(store_dir).ok_or_else(not_running)?;
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(not_running)?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .map_err(|e| ClusterError::io(pid_file(store_dir), e.into()))?;
    if wait_stopped(store_dir, timeout) {
        Ok(pid)
    } else {
        Err(ClusterError::Settings(format!(
            "the local cluster (pid {pid}) did not stop within {}s",
            timeout.as_secs()
        )))
    }
}
