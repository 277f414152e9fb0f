//! The reload loop of `egress gateway run` and `egress sidecar run`: read the configuration
//! source object by object whenever it changes (or on SIGHUP), keep each bad object's last
//! good version ([`LastGood`]), compile and swap in a new snapshot when what is in effect
//! changed, and report: one log line per distinct problem (and one when it is gone), the
//! reload figures, and `egress_config_objects_held`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use egress_cluster::lastgood::{LastGood, Merged};
use egress_compile::snapshot::GatewayIdentity;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use super::load::{Loaded, load};
use super::{ConfigSource, GatewayRunArgs, settle, wait_for_change, wait_for_dir_change};

/// How often a store is re-read while some of its objects are held at their last good version.
const HELD_REREAD: Duration = Duration::from_secs(2);

/// SIGHUP as a stream: registering it first thing means a SIGHUP never kills the process; it
/// makes the reload loop re-read its source.
pub(crate) fn hangup() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("SIGHUP handler: {e}");
            None
        }
    }
}

/// What the loop last reported, so each problem is logged once.
#[derive(Default)]
struct Reported {
    /// Problem lines currently logged.
    problems: BTreeSet<String>,
    /// Whether any reload was reported yet.
    any: bool,
}

/// Recompile (with `build`) whenever the source changes or SIGHUP arrives; bad objects keep
/// their last good version. Every accepted and refused configuration is reported to `metrics`.
pub(crate) async fn reload_loop<S: Send + Sync + 'static>(
    args: GatewayRunArgs,
    tx: watch::Sender<Arc<S>>,
    metrics: Arc<egress_proxy::metrics::Metrics>,
    mut hup: Option<Signal>,
    build: fn(&GatewayIdentity, &egress_compile::Inputs, u64) -> S,
) {
    let mut last_good = LastGood::new();
    let mut reported = Reported::default();
    let mut failed: Option<String> = None;
    let mut busy_logged: Option<Vec<String>> = None;
    let mut seen: Option<u64> = None;
    let mut version: u64 = 0;
    if let ConfigSource::Kube(source) = &args.source {
        wait_kube_ready(source).await;
    }
    loop {
        let source = args.source.clone();
        let ns = args.identity.namespace.clone();
        let mut lg = std::mem::take(&mut last_good);
        // A directory's files are stamped before they are read: a change after this point is
        // seen by the wait below.
        let task = tokio::task::spawn_blocking(move || {
            let stamp = match &source {
                ConfigSource::Dir(dir) => Some(settle::dir_stamp(dir)),
                _ => None,
            };
            let loaded = load(&source, &ns, &mut lg);
            // The raw objects read for this load are dropped by now (on this thread).
            crate::memory::release_free_memory();
            (stamp, loaded, lg)
        })
        .await;
        let mut dir_seen = None;
        let mut retry = false;
        match task {
            Ok((stamp, loaded, lg)) => {
                last_good = lg;
                dir_seen = stamp;
                match loaded {
                    Loaded::Read {
                        merged,
                        source_problems,
                        key,
                    } => {
                        failed = None;
                        busy_logged = None;
                        seen = Some(key);
                        apply(
                            &args,
                            &tx,
                            &metrics,
                            build,
                            &mut version,
                            &mut reported,
                            merged,
                            source_problems,
                        );
                    }
                    Loaded::Failed(e) => {
                        if failed.as_ref() != Some(&e) {
                            tracing::error!(
                                "configuration source unreadable, last good snapshot keeps serving: {e}"
                            );
                            metrics.reload(version + 1, Err(e.clone()));
                            reported.any = true;
                            failed = Some(e);
                        }
                        retry = true;
                    }
                    Loaded::Unsettled(files) => {
                        if busy_logged.as_ref() != Some(&files) {
                            tracing::info!(
                                ?files,
                                "configuration files still being written; waiting for them to settle"
                            );
                            busy_logged = Some(files);
                        }
                        retry = true;
                    }
                }
            }
            Err(e) => tracing::error!("configuration load task failed: {e}"),
        }
        // A store object repaired from the journal comes back without a change event: while
        // objects are held, the store is re-read now and then.
        let held_in_store =
            matches!(args.source, ConfigSource::Store(_)) && !reported.problems.is_empty();
        let change = async {
            if retry {
                tokio::time::sleep(settle::QUIET).await;
                return;
            }
            if held_in_store {
                let _ =
                    tokio::time::timeout(HELD_REREAD, wait_for_change(&args.source, seen)).await;
                return;
            }
            match &args.source {
                ConfigSource::Dir(dir) => wait_for_dir_change(dir, dir_seen).await,
                source => wait_for_change(source, seen).await,
            }
        };
        tokio::select! {
            () = change => {}
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                tracing::info!("SIGHUP: re-reading the configuration source");
            }
        }
    }
}

/// Swaps in a new snapshot when what is in effect changed, and reports problems once each.
#[allow(clippy::too_many_arguments)]
fn apply<S>(
    args: &GatewayRunArgs,
    tx: &watch::Sender<Arc<S>>,
    metrics: &egress_proxy::metrics::Metrics,
    build: fn(&GatewayIdentity, &egress_compile::Inputs, u64) -> S,
    version: &mut u64,
    reported: &mut Reported,
    merged: Merged,
    source_problems: Vec<String>,
) {
    let mut problems: Vec<String> = merged.lines();
    problems.extend(source_problems);
    let now: BTreeSet<String> = problems.iter().cloned().collect();
    for p in now.difference(&reported.problems) {
        tracing::error!("configuration refused for one object, the others apply: {p}");
    }
    let held: BTreeMap<(String, String), u64> = merged
        .counts()
        .into_iter()
        .map(|((kind, held), n)| ((kind, held.as_str().to_owned()), n))
        .collect();
    metrics.set_objects_held(held);
    let changed = merged.changed || *version == 0;
    if changed {
        *version += 1;
        let inputs = egress_compile::inputs_from_resources(merged.resources);
        let _ = tx.send(Arc::new(build(&args.identity, &inputs, *version)));
        drop(inputs);
        // The decoded objects are gone; keep only the snapshot resident.
        crate::memory::release_free_memory();
    }
    let problems_moved = now != reported.problems;
    if changed || problems_moved || !reported.any {
        if now.is_empty() {
            if !reported.problems.is_empty() {
                tracing::info!(
                    version = *version,
                    "configuration recovered: every object is applied"
                );
            }
            metrics.reload(*version, Ok(()));
        } else {
            let offered = if changed { *version } else { *version + 1 };
            metrics.reload(offered, Err(problems.join("; ")));
        }
        reported.any = true;
    }
    reported.problems = now;
}

/// Waits until every watch of the Kubernetes source has listed once, logging what is still
/// missing now and then, so the first snapshot is never built from half the configuration.
async fn wait_kube_ready(source: &egress_kube::KubeSource) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), source.ready()).await {
            Ok(()) => return,
            Err(_) => tracing::warn!(
                pending = ?source.pending(),
                "waiting for the API server to list every watched kind"
            ),
        }
    }
}
