//! Waiting for an egress gateway to become ready, the way `az aks mesh
//! enable-egress-gateway` waits for its long-running operation.
//!
//! The contract with the local cluster (`egress up`): while it runs it holds an exclusive
//! flock on `<store dir>/`[`UP_PID`], and it maintains each Deployment's `status` as
//! kube-controller-manager does (`observedGeneration`, `replicas`, `updatedReplicas`,
//! `readyReplicas`, `availableReplicas`). A gateway is ready when every Deployment
//! `<name>-<revision>` has `status.observedGeneration >= metadata.generation` and
//! `status.readyReplicas >= spec.replicas` (`kubectl rollout status`). The wait follows the
//! store's change feed and re-checks on every change of those Deployments; it stops when
//! the gateway is ready, when no local cluster runs (or it stops), or at the timeout.

use std::fs::{File, TryLockError};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use egress_store::{ObjectKey, Store, StoreError, WatchEvent, Watcher};
use serde_json::Value;

use super::MeshError;

/// The file `egress up` holds an exclusive flock on while it runs, relative to the store
/// directory.
pub const UP_PID: &str = "run/up.pid";
/// How long `enable-egress-gateway` waits at most.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a wait with no changes checks that the local cluster still runs.
pub const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// How to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Show progress on standard error (a line rewritten in place; for terminals).
    pub progress: bool,
    /// Give up after this long.
    pub timeout: Duration,
    /// Check that the local cluster still runs at least this often.
    pub liveness_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            progress: false,
            timeout: WAIT_TIMEOUT,
            liveness_interval: LIVENESS_INTERVAL,
        }
    }
}

/// The gateway waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTarget {
    /// Gateway name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its Deployments, `<name>-<revision>` per installed revision.
    pub deployments: Vec<String>,
}

impl WaitTarget {
    /// The gateway `name` in `namespace` with one Deployment per revision.
    pub fn new(name: &str, namespace: &str, revisions: &[String]) -> WaitTarget {
        WaitTarget {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            deployments: revisions.iter().map(|r| format!("{name}-{r}")).collect(),
        }
    }

    fn key(&self, deployment: &str) -> ObjectKey {
        ObjectKey::new("apps", "Deployment", Some(&self.namespace), deployment)
    }

    fn concerns(&self, event: &WatchEvent) -> bool {
        let k = &event.key;
        k.group == "apps"
            && k.kind == "Deployment"
            && k.namespace.as_deref() == Some(self.namespace.as_str())
            && self.deployments.contains(&k.name)
    }
}

/// How the wait ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every Deployment is rolled out and ready.
    Ready,
    /// No local cluster runs (or it stopped while waiting): the gateway starts when it runs.
    NotRunning,
}

/// Pods ready out of pods wanted, over the gateway's Deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Ready pods (each Deployment's `readyReplicas`, at most its `spec.replicas`).
    pub ready: i64,
    /// Wanted pods (the sum of `spec.replicas`).
    pub want: i64,
    /// Whether every Deployment is rolled out and ready.
    pub done: bool,
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

/// `kubectl rollout status` for one Deployment object: `(ready, want, done)`.
pub fn deployment_readiness(d: &Value) -> (i64, i64, bool) {
    let want = int(d, "/spec/replicas").unwrap_or(1).max(0);
    let ready = int(d, "/status/readyReplicas").unwrap_or(0).max(0);
    let generation = int(d, "/metadata/generation").unwrap_or(0);
    let observed = int(d, "/status/observedGeneration").unwrap_or(0);
    (
        ready.min(want),
        want,
        observed >= generation && ready >= want,
    )
}

/// The gateway's readiness now; a Deployment that no longer exists is an error.
pub fn readiness(store: &Store, target: &WaitTarget) -> Result<Readiness, MeshError> {
    let mut r = Readiness {
        done: true,
        ..Readiness::default()
    };
    for name in &target.deployments {
        let Some(d) = store.get(&target.key(name))? else {
            return Err(MeshError::Refused(format!(
                "Deployment {name} of egress gateway {} in {} was deleted while waiting for it to become ready",
                target.name, target.namespace
            )));
        };
        let (ready, want, done) = deployment_readiness(&d);
        r.ready += ready;
        r.want += want;
        r.done &= done;
    }
    Ok(r)
}

/// Whether the local cluster runs: [`UP_PID`] exists and its flock is held.
pub fn local_cluster_running(store_dir: &Path) -> Result<bool, MeshError> {
    let path = store_dir.join(UP_PID);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(running_check_failed(&path, &e)),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(running_check_failed(&path, &e)),
    }
}

fn running_check_failed(path: &Path, e: &std::io::Error) -> MeshError {
    MeshError::Refused(format!(
        "cannot tell whether the local cluster runs: {}: {e}",
        path.display()
    ))
}

/// `10m`, `1m30s`, `45s`, `250ms`: Go's duration format, to the second past one second.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.subsec_millis();
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 || (h > 0 && s > 0) {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The progress line, rewritten in place on a terminal.
pub(super) struct Progress<'a> {
    err: &'a mut dyn Write,
    enabled: bool,
    shown: Option<String>,
}

impl<'a> Progress<'a> {
    /// A progress line on `err`, shown only when `enabled`.
    pub(super) fn new(err: &'a mut dyn Write, enabled: bool) -> Self {
        Progress {
            err,
            enabled,
            shown: None,
        }
    }

    /// The line for `target` with `r`'s counts, as the local wait shows it.
    pub(super) fn show_readiness(
        &mut self,
        target: &WaitTarget,
        r: &Readiness,
    ) -> std::io::Result<()> {
        self.show(format!(
            " - Running .. egress gateway {} in {}: {}/{} pods ready",
            target.name, target.namespace, r.ready, r.want
        ))
    }

    pub(super) fn show(&mut self, line: String) -> std::io::Result<()> {
        if !self.enabled || self.shown.as_ref() == Some(&line) {
            return Ok(());
        }
        let pad = self
            .shown
            .as_ref()
            .map_or(0, |old| old.len().saturating_sub(line.len()));
        write!(self.err, "\r{line}{}", " ".repeat(pad))?;
        self.err.flush()?;
        self.shown = Some(line);
        Ok(())
    }

    pub(super) fn clear(&mut self) -> std::io::Result<()> {
        if let Some(old) = self.shown.take() {
            write!(self.err, "\r{}\r", " ".repeat(old.len()))?;
            self.err.flush()?;
        }
        Ok(())
    }
}

/// Waits until `target` is ready, following the store's feed from `from_rv` (the commit
/// that changed it). Progress goes to `err` when `opts.progress`.
pub fn wait_for_gateway(
    store: &Store,
    target: &WaitTarget,
    from_rv: u64,
    opts: &WaitOptions,
    err: &mut dyn Write,
) -> Result<WaitOutcome, MeshError> {
    let mut progress = Progress {
        err,
        enabled: opts.progress,
        shown: None,
    };
    let result = wait_loop(store, target, from_rv, opts, &mut progress);
    progress.clear()?;
    result
}

/// A watch from `rv`, or from now when compaction already dropped what followed `rv` (the
/// caller re-reads the Deployments either way).
fn watch_from(store: &Store, rv: u64) -> Result<Watcher, MeshError> {
    match store.watch(rv) {
        Err(StoreError::Expired { .. }) => Ok(store.watch(store.resource_version()?)?),
        other => Ok(other?),
    }
}

fn wait_loop(
    store: &Store,
    target: &WaitTarget,
    from_rv: u64,
    opts: &WaitOptions,
    progress: &mut Progress<'_>,
) -> Result<WaitOutcome, MeshError> {
    let start = Instant::now();
    if !local_cluster_running(store.dir())? {
        return Ok(WaitOutcome::NotRunning);
    }
    let mut watcher = watch_from(store, from_rv)?;
    let mut recheck = true;
    let mut last = Readiness::default();
    loop {
        if recheck {
            last = readiness(store, target)?;
            progress.show_readiness(target, &last)?;
            if last.done {
                return Ok(WaitOutcome::Ready);
            }
        }
        if !local_cluster_running(store.dir())? {
            return Ok(WaitOutcome::NotRunning);
        }
        let elapsed = start.elapsed();
        if elapsed >= opts.timeout {
            return Err(MeshError::Timeout {
                after: human_duration(opts.timeout),
                name: target.name.clone(),
                namespace: target.namespace.clone(),
                ready: last.ready,
                want: last.want,
            });
        }
        let slice = (opts.timeout - elapsed).min(opts.liveness_interval);
        recheck = match watcher.next_events(slice) {
            Ok(events) => events.iter().any(|e| target.concerns(e)),
            Err(StoreError::Expired { .. }) => {
                watcher = watch_from(store, store.resource_version()?)?;
                true
            }
            Err(e) => return Err(e.into()),
        };
    }
}
