//! The figures of a run, printed beside the goals (0 persistent mismatches, propagation p99
//! under 1 s, no drift of `egress up`'s RSS or descriptors).
//!
//! Drift compares like with like: `egress up` is restarted every `restart_every`, so each
//! instance is summarised by the medians of its samples taken once it is at least
//! [`SETTLED_AGE`] old (or half its life in short runs), the first instance (which also ran
//! the setup) is left out, and the mean of the last third of instances is compared with the
//! mean of the first third.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use crate::Options;
use crate::churn::ChurnStats;
use crate::disrupt::{Episode, Instance};
use crate::manifests::SCENARIOS;
use crate::oracle::Stats;

/// Samples younger than this (or than half the restart period) are start-up, not steady state.
pub const SETTLED_AGE: f64 = 10.0;
/// RSS may grow by this fraction before it counts as drift.
pub const RSS_TOLERANCE: f64 = 0.10;
/// Descriptors may grow by this many before it counts as drift.
pub const FD_TOLERANCE: f64 = 5.0;

/// Everything a run measured.
#[derive(Debug)]
pub struct Report {
    /// What ran.
    pub options: Options,
    /// Setup time (cluster, gateways, workload) before the load.
    pub setup: Duration,
    /// Seconds the load ran.
    pub load_secs: f64,
    /// Load ticks skipped because too many requests were in flight.
    pub skipped: u64,
    /// The oracle's counts.
    pub stats: Stats,
    /// The churn driver's counts.
    pub churn: ChurnStats,
    /// Gateway disable/enable cycles.
    pub cycles: Vec<Episode>,
    /// Restarts of `egress up`.
    pub restarts: Vec<Episode>,
    /// `egress up` instances and their samples.
    pub instances: Vec<Instance>,
    /// The final SIGTERM: how long `egress up` took to exit, and whether it did so by itself.
    pub stop: Option<(Duration, bool)>,
    /// The kept work directory.
    pub work_dir: Option<PathBuf>,
}

/// Drift of one quantity across instances.
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    /// Mean over the first third of instances.
    pub first: f64,
    /// Mean over the last third.
    pub last: f64,
    /// Largest instance median.
    pub max: f64,
    /// Instances compared.
    pub instances: usize,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The `q` quantile (0..=1) of durations, nearest rank.
pub fn quantile(v: &[Duration], q: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
}

impl Report {
    /// Checked requests that got something else, all scenarios.
    pub fn persistent_mismatches(&self) -> u64 {
        self.stats.mismatches.iter().sum()
    }

    /// Failures (5xx, refused, unreachable, timeout) where an answer was due, outside windows.
    pub fn failed_outside_windows(&self) -> u64 {
        self.stats.failed_outside.iter().sum()
    }

    /// Propagation p99.
    pub fn propagation_p99(&self) -> Option<Duration> {
        quantile(&self.stats.propagation, 0.99)
    }

    /// Completed restarts and gateway cycles (without errors).
    pub fn clean_episodes(&self) -> (usize, usize) {
        let ok = |v: &[Episode]| v.iter().filter(|e| e.error.is_none()).count();
        (ok(&self.restarts), ok(&self.cycles))
    }

    /// RSS (KiB) and descriptor drift across comparable instances.
    pub fn drift(&self) -> Option<(Drift, Drift)> {
        let settled = SETTLED_AGE.min(self.options.restart_every.as_secs_f64() / 2.0);
        let per: Vec<(f64, f64)> = self
            .instances
            .iter()
            .skip(1)
            .filter_map(|i| {
                let s: Vec<_> = i.samples.iter().filter(|s| s.0 >= settled).collect();
                Some((
                    median(s.iter().map(|s| s.1 as f64).collect())?,
                    median(s.iter().map(|s| s.2 as f64).collect())?,
                ))
            })
            .collect();
        if per.len() < 2 {
            return None;
        }
        let third = per.len().div_ceil(3);
        let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            v.iter().map(f).sum::<f64>() / v.len() as f64
        };
        let (head, tail) = (&per[..third], &per[per.len() - third..]);
        let d = |f: fn(&(f64, f64)) -> f64| Drift {
            first: mean(head, f),
            last: mean(tail, f),
            max: per.iter().map(f).fold(0.0, f64::max),
            instances: per.len(),
        };
        Some((d(|p| p.0), d(|p| p.1)))
    }

    /// Whether the drift figures stay within [`RSS_TOLERANCE`] and [`FD_TOLERANCE`].
    pub fn no_drift(&self) -> Option<bool> {
        self.drift().map(|(rss, fds)| {
            rss.last <= rss.first * (1.0 + RSS_TOLERANCE) && fds.last <= fds.first + FD_TOLERANCE
        })
    }
}

fn goal(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

fn episodes(out: &mut String, name: &str, v: &[Episode], recovery: &[Duration]) -> fmt::Result {
    let took: Vec<Duration> = v.iter().map(|e| e.took).collect();
    writeln!(
        out,
        "{name}: {} ({} with errors); until healthy p50 {}, max {}; first request as declared after it: p50 {}, max {}",
        v.len(),
        v.iter().filter(|e| e.error.is_some()).count(),
        ms(quantile(&took, 0.5)),
        ms(quantile(&took, 1.0)),
        ms(quantile(recovery, 0.5)),
        ms(quantile(recovery, 1.0)),
    )?;
    for e in v.iter().filter(|e| e.error.is_some()).take(5) {
        writeln!(
            out,
            "  at {:.1} s, {}: {}",
            e.at,
            e.what,
            e.error.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let s = &self.stats;
        let o = &self.options;
        let total: u64 = s.requests.iter().sum();
        writeln!(
            out,
            "egress soak: {:.0} s of load after {:.1} s of setup; {} req/s per scenario, a change every {} ms, a gateway cycle every {} s, egress up SIGKILLed every {} s; seed {}",
            self.load_secs,
            self.setup.as_secs_f64(),
            o.rate,
            o.churn_every.as_millis(),
            o.gateway_every.as_secs(),
            o.restart_every.as_secs(),
            o.seed
        )?;
        writeln!(
            out,
            "requests: {total} ({}); checked {}, inside change windows {}; load ticks skipped (in-flight bound) {}",
            SCENARIOS
                .iter()
                .enumerate()
                .map(|(i, sc)| format!("{} {}", sc.name, s.requests[i]))
                .collect::<Vec<_>>()
                .join(", "),
            s.checked.iter().sum::<u64>(),
            s.in_window.iter().sum::<u64>(),
            self.skipped
        )?;
        writeln!(
            out,
            "persistent mismatches: {}   [goal: 0 — {}]",
            self.persistent_mismatches(),
            goal(Some(self.persistent_mismatches() == 0))
        )?;
        for ((i, exp, got), n) in &s.mismatch_kinds {
            writeln!(
                out,
                "  {}: expected {exp}, got {got}: {n}",
                SCENARIOS[*i].name
            )?;
        }
        for m in s.mismatch_examples.iter().take(10) {
            writeln!(
                out,
                "  e.g. at {:.2} s {}: expected {}, got {} ({:.2} s after its last change)",
                m.at, SCENARIOS[m.scenario].name, m.expected, m.observed, m.since_change
            )?;
        }
        writeln!(
            out,
            "failed requests outside change windows: {}",
            self.failed_outside_windows()
        )?;
        let p99 = self.propagation_p99();
        writeln!(
            out,
            "propagation (commit -> first request showing it): {} changes measured, p50 {}, p99 {}, max {}   [goal: p99 < 1 s — {}]; {} overtaken by the next change, {} cut off by a disruption",
            s.propagation.len(),
            ms(quantile(&s.propagation, 0.5)),
            ms(p99),
            ms(quantile(&s.propagation, 1.0)),
            goal(p99.map(|p| p < Duration::from_secs(1))),
            s.superseded,
            s.interrupted
        )?;
        writeln!(
            out,
            "churn: {} commits ({}), {} of them changed an outcome; {} failed commands; {} late ticks; slowest command {}",
            self.churn.by_kind.values().sum::<u64>(),
            self.churn
                .by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.churn.outcome_changes,
            self.churn.failures,
            self.churn.late_ticks,
            ms(Some(self.churn.slowest_command))
        )?;
        for e in &self.churn.failure_examples {
            writeln!(out, "  {e}")?;
        }
        for (i, sc) in SCENARIOS.iter().enumerate() {
            let seen: Vec<String> = s
                .checked_outcomes
                .iter()
                .filter(|((j, _), _)| *j == i)
                .map(|((_, c), n)| format!("{c}: {n}"))
                .collect();
            writeln!(out, "checked {}: {}", sc.name, seen.join(", "))?;
        }
        episodes(
            &mut out,
            "gateway disable/enable cycles",
            &self.cycles,
            &s.gateway_recovery,
        )?;
        episodes(
            &mut out,
            "egress up SIGKILL + restart",
            &self.restarts,
            &s.restart_recovery,
        )?;
        match self.drift() {
            Some((rss, fds)) => writeln!(
                out,
                "egress up, {} restarted instances compared at like ages: RSS {:.1} -> {:.1} MiB (max {:.1}), open descriptors {:.0} -> {:.0} (max {:.0})   [goal: no drift (RSS within +{:.0} %, descriptors within +{FD_TOLERANCE}) — {}]",
                rss.instances,
                rss.first / 1024.0,
                rss.last / 1024.0,
                rss.max / 1024.0,
                fds.first,
                fds.last,
                fds.max,
                RSS_TOLERANCE * 100.0,
                goal(self.no_drift())
            )?,
            None => writeln!(
                out,
                "egress up drift: fewer than 2 restarted instances with settled samples — not measured"
            )?,
        }
        if let Some(last) = self.instances.last().and_then(|i| i.samples.last()) {
            writeln!(
                out,
                "last instance at {:.0} s of age: RSS {:.1} MiB, {} open descriptors",
                last.0,
                last.1 as f64 / 1024.0,
                last.2
            )?;
        }
        match self.stop {
            Some((t, true)) => writeln!(
                out,
                "final SIGTERM: egress up exited in {} ms",
                t.as_millis()
            )?,
            Some((t, false)) => writeln!(
                out,
                "final SIGTERM: egress up had not exited after {} ms (SIGKILLed)",
                t.as_millis()
            )?,
            None => writeln!(out, "final SIGTERM: no egress up was running")?,
        }
        if let Some(d) = &self.work_dir {
            writeln!(out, "work directory kept: {}", d.display())?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&v, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
