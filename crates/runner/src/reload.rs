//! The reload loop of every gateway and sidecar (`egress gateway run`, `egress sidecar run`,
//! each Pod of `egress up`): read the configuration source object by object whenever it
//! changes (or on SIGHUP), keep each bad object's last good version ([`LastGood`]), compile
//! and offer a new snapshot when what is in effect changed ([`offer`]: swapped in only when
//! its content differs), and report: one log line per distinct problem (and one when it is
//! gone), the reload figures, and `egress_config_objects_held`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use egress_compile::snapshot::{GatewayIdentity, SameContent};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::lastgood::{LastGood, Merged};
use crate::load::{Loaded, Reader};
use crate::offer::offer;
use crate::settle;
use crate::source::ConfigSource;

/// How often a store is re-read while some of its objects are held at their last good version.
const HELD_REREAD: Duration = Duration::from_secs(2);

/// SIGHUP as a stream: registering it first thing means a SIGHUP never kills the process; it
/// makes the reload loop re-read its source.
pub fn hangup() -> Option<Signal> {
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

/// How a configuration becomes the snapshot one proxy serves.
pub type Build<S> = fn(&GatewayIdentity, &egress_compile::Inputs, u64) -> S;

/// Recompile (with `build`) whenever the source changes or SIGHUP arrives; bad objects keep
/// their last good version. Every accepted and refused configuration is reported to `metrics`.
pub async fn reload_loop<S: SameContent + Send + Sync + 'static>(
    source: ConfigSource,
    identity: GatewayIdentity,
    tx: watch::Sender<Arc<S>>,
    metrics: Arc<egress_proxy::metrics::Metrics>,
    mut hup: Option<Signal>,
    build: Build<S>,
) {
    let mut reader = Reader::new();
    let mut last_good = LastGood::new();
    let mut reported = Reported::default();
    let mut failed: Option<String> = None;
    let mut busy_logged: Option<Vec<String>> = None;
    let mut seen: Option<u64> = None;
    let mut version: u64 = 0;
    source.ready().await;
    loop {
        let src = source.clone();
        let ns = identity.namespace.clone();
        let mut lg = std::mem::take(&mut last_good);
        let mut rd = std::mem::take(&mut reader);
        // A directory's files are stamped before they are read: a change after this point is
        // seen by the wait below.
        let task = tokio::task::spawn_blocking(move || {
            let stamp = match &src {
                ConfigSource::Dir(dir) => Some(settle::dir_stamp(dir)),
                _ => None,
            };
            let loaded = rd.load(&src, &ns, &mut lg);
            // The raw objects read for this load are dropped by now (on this thread).
            crate::memory::release_free_memory();
            (stamp, loaded, lg, rd)
        })
        .await;
        let mut dir_seen = None;
        let mut retry = false;
        match task {
            Ok((stamp, loaded, lg, rd)) => {
                last_good = lg;
                reader = rd;
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
                            &identity,
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
            matches!(source, ConfigSource::Store(_)) && !reported.problems.is_empty();
        let change = async {
            if retry {
                tokio::time::sleep(settle::QUIET).await;
                return;
            }
            if held_in_store {
                let _ = tokio::time::timeout(HELD_REREAD, source.changed(seen)).await;
                return;
            }
            match &source {
                ConfigSource::Dir(_) => source.changed(dir_seen).await,
                _ => source.changed(seen).await,
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
fn apply<S: SameContent>(
    identity: &GatewayIdentity,
    tx: &watch::Sender<Arc<S>>,
    metrics: &egress_proxy::metrics::Metrics,
    build: Build<S>,
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
    let first = *version == 0;
    let changed = merged.changed || first;
    if changed {
        *version += 1;
        let inputs = egress_compile::inputs_from_resources(merged.resources);
        let next = Arc::new(build(identity, &inputs, *version));
        if first {
            // The proxy starts on an empty placeholder (version 0, not ready): the first
            // configuration replaces it even when it declares nothing either.
            tx.send_replace(next);
        } else {
            offer(tx, &next);
        }
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
