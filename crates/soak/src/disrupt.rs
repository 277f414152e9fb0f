//! The faults: every so often one gateway is disabled and enabled again through the add-on's
//! commands (`egress mesh disable-egress-gateway --yes`, then `enable-egress-gateway`, which
//! waits for its Pods), and on a fixed period `egress up` is SIGKILLed and started again. Each
//! opens a window for the scenarios it disrupts until everything they use answers its health
//! probe again; the time each took, and anything that did not converge, is recorded. A sampler
//! reads `egress up`'s RSS and open descriptors every second, per instance.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Shared;
use crate::cluster::{Egress, Up, rss_and_fds};
use crate::manifests::SCENARIOS;
use crate::oracle::Disruption;

/// How long `enable-egress-gateway` may wait for its Pods.
const ENABLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a restarted `egress up` may take to print `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the disrupted parts may take to answer their health probes.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// One disable/enable cycle or restart.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Seconds since the start of the load.
    pub at: f64,
    /// What was disrupted (a gateway's name, or `egress up`).
    pub what: String,
    /// From the first command (or the kill) until every part was healthy again.
    pub took: Duration,
    /// What failed or did not converge in time, if anything.
    pub error: Option<String>,
}

/// One `egress up` instance's samples: (age in seconds, RSS KiB, open descriptors).
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Its pid.
    pub pid: u32,
    /// Samples, oldest first.
    pub samples: Vec<(f64, u64, u64)>,
}

/// The `egress up` currently running, shared by the restarter, the sampler and the end.
#[derive(Debug, Default)]
pub struct Current {
    /// The process (taken by the restarter to kill it, and at the end).
    pub up: Option<Up>,
    /// Every instance so far.
    pub instances: Vec<Instance>,
}

/// Disables and re-enables the scenarios' gateways in turn, one every `every`.
pub async fn cycle_gateways(
    egress: Egress,
    shared: Arc<Shared>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Episode> {
    let mut out = Vec::new();
    let mut next = 0usize;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let i = next % SCENARIOS.len();
        next += 1;
        let g = SCENARIOS[i].gateway;
        let started = Instant::now();
        let at = shared.since_start(started);
        *shared
            .cycling
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(i);
        shared
            .lock()
            .begin_disruption(&[i], Disruption::GatewayCycle, started);
        shared.event(&format!("gateway cycle {g}: disable"));
        let mut errors = Vec::new();
        if let Err(e) = egress
            .mesh(
                &[
                    "disable-egress-gateway",
                    "--istio-egressgateway-name",
                    g,
                    "--yes",
                ],
                Duration::from_secs(30),
            )
            .await
        {
            errors.push(e.to_string());
        }
        if let Err(e) = egress
            .mesh(
                &[
                    "enable-egress-gateway",
                    "--istio-egressgateway-name",
                    g,
                    "--gateway-configuration-name",
                    SCENARIOS[i].sgc,
                ],
                ENABLE_TIMEOUT,
            )
            .await
        {
            errors.push(e.to_string());
        }
        match egress.wait_healthy(&[g], 2, HEALTH_TIMEOUT).await {
            Ok(sidecar) => shared.set_sidecar(sidecar),
            Err(e) => errors.push(e.to_string()),
        }
        let done = Instant::now();
        shared.lock().end_disruption(&[i], done);
        shared.event(&format!("gateway cycle {g}: healthy again {errors:?}"));
        *shared
            .cycling
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        out.push(Episode {
            at,
            what: g.to_owned(),
            took: done - started,
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        });
    }
    out
}

/// SIGKILLs `egress up` every `every` and starts it again with `flags`.
pub async fn restart_up(
    egress: Egress,
    shared: Arc<Shared>,
    current: Arc<Mutex<Current>>,
    flags: Vec<String>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Episode> {
    let all: Vec<usize> = (0..SCENARIOS.len()).collect();
    let mut out = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let Some(up) = current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .up
            .take()
        else {
            break;
        };
        let started = Instant::now();
        let at = shared.since_start(started);
        shared
            .lock()
            .begin_disruption(&all, Disruption::Restart, started);
        shared.event("egress up: SIGKILL");
        let mut error = None;
        if let Err(e) = up.kill().await {
            error = Some(e.to_string());
        }
        match egress.start_up(&flags, START_TIMEOUT).await {
            Ok(up) => {
                let mut c = current.lock().unwrap_or_else(PoisonError::into_inner);
                c.instances.push(Instance {
                    pid: up.pid,
                    samples: Vec::new(),
                });
                c.up = Some(up);
            }
            Err(e) => {
                // Nothing to measure any more: record why and stop restarting.
                shared.event(&format!("egress up: restart failed: {e}"));
                error = Some(e.to_string());
                shared.lock().end_disruption(&all, Instant::now());
                out.push(Episode {
                    at,
                    what: "egress up".to_owned(),
                    took: started.elapsed(),
                    error,
                });
                break;
            }
        }
        let cycling = *shared
            .cycling
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gateways: Vec<&str> = SCENARIOS
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != cycling)
            .map(|(_, s)| s.gateway)
            .collect();
        match egress.wait_healthy(&gateways, 2, HEALTH_TIMEOUT).await {
            Ok(sidecar) => shared.set_sidecar(sidecar),
            Err(e) => error = Some(e.to_string()),
        }
        let done = Instant::now();
        shared.lock().end_disruption(&all, done);
        shared.event(&format!("egress up: restarted, healthy again {error:?}"));
        out.push(Episode {
            at,
            what: "egress up".to_owned(),
            took: done - started,
            error,
        });
    }
    out
}

/// Samples the current `egress up` every second until `stop`.
pub async fn sample(current: Arc<Mutex<Current>>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let mut c = current.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((pid, started)) = c.up.as_ref().map(|u| (u.pid, u.started)) else {
            continue;
        };
        if let Some((rss, fds)) = rss_and_fds(pid)
            && let Some(inst) = c.instances.iter_mut().rev().find(|i| i.pid == pid)
        {
            inst.samples
                .push((started.elapsed().as_secs_f64(), rss, fds));
        }
    }
}
