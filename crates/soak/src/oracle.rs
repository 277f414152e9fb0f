//! The oracle: from the declared state (what the churn driver has committed) what each
//! scenario's request must get, and the bookkeeping that sorts every answered request into
//! "inside a change window" or "checked", counts checked requests that got something else
//! (persistent mismatches), and measures propagation (commit → first request showing the new
//! behaviour) and recovery after disruptions.
//!
//! A scenario is inside a change window while a command that changes what it must get is
//! running, for [`Tracker::settle`] after such a command returned (the commit), and while it
//! is disrupted (its gateway being disabled and re-enabled, or `egress up` being restarted)
//! until its serving parts are healthy again plus the settle time. A request is checked only
//! when it was sent outside a window and no window opened before it was answered. Commits
//! that do not change what a scenario must get (unrelated objects, a policy at a gateway the
//! scenario does not use) open no window for it: they must not disturb its traffic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::manifests::{Kind, SCENARIOS};

/// What a request got, in the terms the oracle compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// 200 from the stand-in, which saw the connection come from gateway `gateway`'s static
    /// egress prefix, on upstream port `port`.
    Via {
        /// Index of the gateway's scenario in [`SCENARIOS`].
        gateway: usize,
        /// The stand-in port (80 plain, 443 TLS).
        port: u16,
    },
    /// 200 from the stand-in, which saw the connection come from the workload's pod range
    /// (the sidecar sent it straight to the host).
    Direct {
        /// The stand-in port (80 plain, 443 TLS).
        port: u16,
    },
    /// 200 from the stand-in seen from any other address.
    Elsewhere,
    /// A status other than 200 (from a proxy or the stand-in).
    Status(u16),
    /// The sidecar took the connection and closed it without an answer (TLS handshake or
    /// response cut short): a REGISTRY_ONLY `BlackHoleCluster`, or a TLS route with nowhere to go.
    Refused,
    /// The sidecar could not be reached (connection refused or reset before any byte).
    Unreachable,
    /// No answer within the request timeout.
    Timeout,
}

impl Class {
    /// A failure of the request itself rather than an answer: 5xx, cut short, unreachable or
    /// timed out.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Class::Status(500..=599) | Class::Refused | Class::Unreachable | Class::Timeout
        )
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Class::Via { gateway, port } => {
                let g = SCENARIOS.get(*gateway).map_or("?", |s| s.gateway);
                write!(f, "200 via {g} to :{port}")
            }
            Class::Direct { port } => write!(f, "200 direct to :{port}"),
            Class::Elsewhere => write!(f, "200 from an unknown address"),
            Class::Status(s) => write!(f, "{s}"),
            Class::Refused => write!(f, "refused"),
            Class::Unreachable => write!(f, "sidecar unreachable"),
            Class::Timeout => write!(f, "timeout"),
        }
    }
}

/// What the driver has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// The shared MeshConfig's `outboundTrafficPolicy.mode` is REGISTRY_ONLY (else ALLOW_ANY).
    pub registry_only: bool,
    /// Per scenario: its ServiceEntry exists.
    pub service_entry: [bool; 3],
    /// Per scenario: its VirtualService exists (only ever with its ServiceEntry).
    pub virtual_service: [bool; 3],
    /// Per scenario: its DENY AuthorizationPolicy exists.
    pub deny: [bool; 3],
}

impl Declared {
    /// The state the run starts from: REGISTRY_ONLY and every scenario fully configured, as at
    /// the end of the seed's walk-through.
    pub fn initial() -> Declared {
        Declared {
            registry_only: true,
            service_entry: [true; 3],
            virtual_service: [true; 3],
            deny: [false; 3],
        }
    }

    /// What scenario `i`'s request must get.
    ///
    /// * VirtualService (with its ServiceEntry): through the gateway; a DENY policy on the
    ///   path makes the gateway answer 403.
    /// * ServiceEntry alone: the host is in the registry, the sidecar sends it straight there.
    /// * Neither: ALLOW_ANY passes it straight through; REGISTRY_ONLY answers plain HTTP 502
    ///   (`block_all`) and closes a TLS connection (`BlackHoleCluster`).
    pub fn expected(&self, i: usize) -> Class {
        let s = SCENARIOS[i];
        let direct = Class::Direct {
            port: s.upstream_port_direct(),
        };
        if self.virtual_service[i] && self.service_entry[i] {
            if self.deny[i] && s.has_authz() {
                Class::Status(403)
            } else {
                Class::Via {
                    gateway: i,
                    port: s.upstream_port_via_gateway(),
                }
            }
        } else if self.service_entry[i] || !self.registry_only {
            direct
        } else if s.kind == Kind::Passthrough {
            Class::Refused
        } else {
            Class::Status(502)
        }
    }

    /// The scenarios whose expected outcome differs between `self` and `other`.
    pub fn affected(&self, other: &Declared) -> Vec<usize> {
        (0..SCENARIOS.len())
            .filter(|&i| self.expected(i) != other.expected(i))
            .collect()
    }
}

/// Taken when a request is sent: what it must get and whether it is inside a window.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    in_window: bool,
    /// The outcome the declared state asks for at sending time.
    pub expected: Class,
}

/// A checked request that got something else.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// Seconds since the start of the load.
    pub at: f64,
    /// Scenario index.
    pub scenario: usize,
    /// What it must have got.
    pub expected: Class,
    /// What it got.
    pub observed: Class,
    /// Seconds since the scenario's expected outcome last changed (or its last disruption ended).
    pub since_change: f64,
}

#[derive(Debug)]
struct Waiting {
    commit: Instant,
    expected: Class,
}

#[derive(Debug)]
struct ScenarioState {
    expected: Class,
    epoch: u64,
    pending: u32,
    disrupted: u32,
    changed_at: Instant,
    waiting: Option<Waiting>,
    recovering: Option<(Instant, Disruption)>,
}

/// What disrupted a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// `egress up` was killed and restarted.
    Restart,
    /// Its gateway was disabled and enabled again.
    GatewayCycle,
}

/// Counters and samples of a run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Answered (or timed-out) requests, per scenario.
    pub requests: [u64; 3],
    /// Requests inside a change window, per scenario.
    pub in_window: [u64; 3],
    /// Checked requests, per scenario.
    pub checked: [u64; 3],
    /// Checked requests that got something else than the oracle's outcome, per scenario.
    pub mismatches: [u64; 3],
    /// Of those, failures (5xx, refused, unreachable, timeout) where an answer was due.
    pub failed_outside: [u64; 3],
    /// Mismatches by (scenario, expected, observed).
    pub mismatch_kinds: BTreeMap<(usize, Class, Class), u64>,
    /// The first mismatches, for the report.
    pub mismatch_examples: Vec<Mismatch>,
    /// What checked requests got, by (scenario, class): shows every outcome was exercised.
    pub checked_outcomes: BTreeMap<(usize, Class), u64>,
    /// Commit → first request showing the new outcome.
    pub propagation: Vec<Duration>,
    /// Changes overtaken by the next change before any request showed them.
    pub superseded: u64,
    /// Changes whose observation a disruption cut off.
    pub interrupted: u64,
    /// Changes of the expected outcome, per scenario.
    pub changes: [u64; 3],
    /// Disruption start → first request answered as declared, for restarts.
    pub restart_recovery: Vec<Duration>,
    /// The same for gateway disable/enable cycles (of the scenario using that gateway).
    pub gateway_recovery: Vec<Duration>,
}

/// How many mismatch examples are kept.
const EXAMPLES: usize = 20;

/// The shared bookkeeping (behind a mutex in the running soak).
#[derive(Debug)]
pub struct Tracker {
    start: Instant,
    settle: Duration,
    scenarios: Vec<ScenarioState>,
    /// What has been counted so far.
    pub stats: Stats,
}

impl Tracker {
    /// Starts with `declared` in effect, in a window (the cluster has just been set up).
    pub fn new(declared: &Declared, settle: Duration, now: Instant) -> Tracker {
        Tracker {
            start: now,
            settle,
            scenarios: (0..SCENARIOS.len())
                .map(|i| ScenarioState {
                    expected: declared.expected(i),
                    epoch: 0,
                    pending: 0,
                    disrupted: 0,
                    changed_at: now,
                    waiting: None,
                    recovering: None,
                })
                .collect(),
            stats: Stats::default(),
        }
    }

    /// The settle time after a commit or a disruption.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// When scenario `i`'s expected outcome last changed or its last disruption ended.
    pub fn changed_at(&self, i: usize) -> Instant {
        self.scenarios[i].changed_at
    }

    /// Whether scenario `i` is pending a change or disrupted.
    pub fn busy(&self, i: usize) -> bool {
        let s = &self.scenarios[i];
        s.pending > 0 || s.disrupted > 0
    }

    /// Whether scenario `i`'s expected outcome may change at `now`: no change is pending and
    /// the last one is at least `hold` old.
    pub fn can_change(&self, i: usize, now: Instant, hold: Duration) -> bool {
        let s = &self.scenarios[i];
        s.pending == 0 && now.saturating_duration_since(s.changed_at) >= hold
    }

    /// A command changing the expected outcome of `affected` starts.
    pub fn begin_change(&mut self, affected: &[usize]) {
        for &i in affected {
            let s = &mut self.scenarios[i];
            s.pending += 1;
            s.epoch += 1;
        }
    }

    /// That command returned (its change is committed) at `at`; `declared` is now in effect.
    pub fn end_change(&mut self, affected: &[usize], declared: &Declared, at: Instant) {
        for &i in affected {
            let s = &mut self.scenarios[i];
            s.pending = s.pending.saturating_sub(1);
            s.epoch += 1;
            s.changed_at = at;
            let new = declared.expected(i);
            if new != s.expected {
                self.stats.changes[i] += 1;
                if s.waiting.is_some() {
                    self.stats.superseded += 1;
                }
                s.waiting = (s.disrupted == 0).then_some(Waiting {
                    commit: at,
                    expected: new,
                });
                s.expected = new;
            }
        }
    }

    /// `scenarios` are disrupted from `at` (a restart or a gateway cycle begins).
    pub fn begin_disruption(&mut self, scenarios: &[usize], what: Disruption, at: Instant) {
        for &i in scenarios {
            let s = &mut self.scenarios[i];
            s.disrupted += 1;
            s.epoch += 1;
            if s.waiting.take().is_some() {
                self.stats.interrupted += 1;
            }
            if s.recovering.is_none() {
                s.recovering = Some((at, what));
            }
        }
    }

    /// The disruption of `scenarios` ended at `at` (everything they use is healthy again).
    pub fn end_disruption(&mut self, scenarios: &[usize], at: Instant) {
        for &i in scenarios {
            let s = &mut self.scenarios[i];
            s.disrupted = s.disrupted.saturating_sub(1);
            s.epoch += 1;
            s.changed_at = s.changed_at.max(at);
        }
    }

    /// Taken as scenario `i`'s request is sent.
    pub fn ticket(&self, i: usize, now: Instant) -> Ticket {
        let s = &self.scenarios[i];
        Ticket {
            epoch: s.epoch,
            in_window: s.pending > 0
                || s.disrupted > 0
                || now.saturating_duration_since(s.changed_at) < self.settle,
            expected: s.expected,
        }
    }

    /// Scenario `i`'s request, sent at `sent` with `ticket`, got `observed` at `done`; the
    /// mismatch, when it is one.
    pub fn record(
        &mut self,
        i: usize,
        ticket: Ticket,
        sent: Instant,
        done: Instant,
        got: Class,
    ) -> Option<Mismatch> {
        let at = sent.saturating_duration_since(self.start).as_secs_f64();
        let stats = &mut self.stats;
        let s = &mut self.scenarios[i];
        stats.requests[i] += 1;
        if let Some(w) = &s.waiting
            && sent >= w.commit
            && got == w.expected
        {
            stats
                .propagation
                .push(done.saturating_duration_since(w.commit));
            s.waiting = None;
        }
        if let Some((start, what)) = s.recovering
            && sent >= start
            && s.disrupted == 0
            && got == s.expected
        {
            let took = done.saturating_duration_since(start);
            match what {
                Disruption::Restart => stats.restart_recovery.push(took),
                Disruption::GatewayCycle => stats.gateway_recovery.push(took),
            }
            s.recovering = None;
        }
        if ticket.in_window || ticket.epoch != s.epoch {
            stats.in_window[i] += 1;
            return None;
        }
        stats.checked[i] += 1;
        *stats.checked_outcomes.entry((i, got)).or_default() += 1;
        if got == ticket.expected {
            return None;
        }
        stats.mismatches[i] += 1;
        if got.is_failure() && !ticket.expected.is_failure() {
            stats.failed_outside[i] += 1;
        }
        *stats
            .mismatch_kinds
            .entry((i, ticket.expected, got))
            .or_default() += 1;
        let m = Mismatch {
            at,
            scenario: i,
            expected: ticket.expected,
            observed: got,
            since_change: sent.saturating_duration_since(s.changed_at).as_secs_f64(),
        };
        if stats.mismatch_examples.len() < EXAMPLES {
            stats.mismatch_examples.push(m.clone());
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const HTTP: usize = 0;
    const PASS: usize = 1;
    const ORIG: usize = 2;

    #[test]
    fn expected_outcomes_follow_the_declared_state() {
        let mut d = Declared::initial();
        assert_eq!(
            d.expected(HTTP),
            Class::Via {
                gateway: 0,
                port: 80
            }
        );
        assert_eq!(
            d.expected(PASS),
            Class::Via {
                gateway: 1,
                port: 443
            }
        );
        assert_eq!(
            d.expected(ORIG),
            Class::Via {
                gateway: 2,
                port: 443
            }
        );
        d.deny = [true; 3];
        assert_eq!(d.expected(HTTP), Class::Status(403));
        assert_eq!(
            d.expected(PASS),
            Class::Via {
                gateway: 1,
                port: 443
            }
        );
        assert_eq!(d.expected(ORIG), Class::Status(403));
        d.virtual_service = [false; 3];
        assert_eq!(d.expected(HTTP), Class::Direct { port: 80 });
        assert_eq!(d.expected(PASS), Class::Direct { port: 443 });
        assert_eq!(d.expected(ORIG), Class::Direct { port: 80 });
        d.service_entry = [false; 3];
        assert_eq!(d.expected(HTTP), Class::Status(502));
        assert_eq!(d.expected(PASS), Class::Refused);
        assert_eq!(d.expected(ORIG), Class::Status(502));
        let mut allow = d;
        allow.registry_only = false;
        assert_eq!(allow.expected(HTTP), Class::Direct { port: 80 });
        assert_eq!(allow.expected(PASS), Class::Direct { port: 443 });
        assert_eq!(d.affected(&allow), vec![HTTP, PASS, ORIG]);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn windows_checks_mismatches_and_propagation() {
        let t0 = Instant::now();
        let mut d = Declared::initial();
        let mut t = Tracker::new(&d, ms(1000), t0);
        let via = d.expected(HTTP);
        // Inside the initial window: not checked.
        let k = t.ticket(HTTP, t0 + ms(10));
        t.record(HTTP, k, t0 + ms(10), t0 + ms(20), Class::Timeout);
        assert_eq!(t.stats.in_window[HTTP], 1);
        // After the settle time: checked, a match and a mismatch.
        let k = t.ticket(HTTP, t0 + ms(1100));
        t.record(HTTP, k, t0 + ms(1100), t0 + ms(1110), via);
        let k = t.ticket(HTTP, t0 + ms(1200));
        t.record(HTTP, k, t0 + ms(1200), t0 + ms(1210), Class::Status(503));
        assert_eq!(t.stats.checked[HTTP], 2);
        assert_eq!(t.stats.mismatches[HTTP], 1);
        assert_eq!(t.stats.failed_outside[HTTP], 1);
        // A change: the request in flight when it begins is not checked.
        let old = d;
        d.deny[HTTP] = true;
        let affected = old.affected(&d);
        assert_eq!(affected, vec![HTTP]);
        let k = t.ticket(HTTP, t0 + ms(2000));
        t.begin_change(&affected);
        t.end_change(&affected, &d, t0 + ms(2050));
        t.record(HTTP, k, t0 + ms(2000), t0 + ms(2060), via);
        assert_eq!(t.stats.in_window[HTTP], 2);
        // The first 403 sent after the commit gives the propagation time.
        let k = t.ticket(HTTP, t0 + ms(2100));
        t.record(HTTP, k, t0 + ms(2100), t0 + ms(2110), via);
        let k = t.ticket(HTTP, t0 + ms(2300));
        t.record(HTTP, k, t0 + ms(2300), t0 + ms(2310), Class::Status(403));
        assert_eq!(t.stats.propagation, vec![ms(260)]);
        // Still the old behaviour 1 s after the commit: a persistent mismatch.
        let k = t.ticket(HTTP, t0 + ms(3100));
        t.record(HTTP, k, t0 + ms(3100), t0 + ms(3110), via);
        assert_eq!(t.stats.mismatches[HTTP], 2);
        assert_eq!(t.stats.failed_outside[HTTP], 1);
        // Other scenarios were never in that window.
        let k = t.ticket(PASS, t0 + ms(2100));
        assert!(!k.in_window);
    }

    #[test]
    fn disruptions_open_windows_and_measure_recovery() {
        let t0 = Instant::now();
        let d = Declared::initial();
        let mut t = Tracker::new(&d, ms(1000), t0);
        let all = [HTTP, PASS, ORIG];
        t.begin_disruption(&all, Disruption::Restart, t0 + ms(5000));
        let k = t.ticket(PASS, t0 + ms(5100));
        t.record(PASS, k, t0 + ms(5100), t0 + ms(5200), Class::Unreachable);
        assert_eq!(t.stats.in_window[PASS], 1);
        t.end_disruption(&all, t0 + ms(7000));
        assert!(t.ticket(PASS, t0 + ms(7500)).in_window);
        let k = t.ticket(PASS, t0 + ms(8100));
        assert!(!k.in_window);
        t.record(PASS, k, t0 + ms(8100), t0 + ms(8150), d.expected(PASS));
        assert_eq!(t.stats.restart_recovery, vec![ms(3150)]);
        assert_eq!(t.stats.mismatches, [0, 0, 0]);
    }

    #[test]
    fn an_overtaken_change_is_counted_as_superseded() {
        let t0 = Instant::now();
        let mut d = Declared::initial();
        let mut t = Tracker::new(&d, ms(1000), t0);
        for (n, deny) in [(1, true), (2, false)] {
            let old = d;
            d.deny[ORIG] = deny;
            let a = old.affected(&d);
            t.begin_change(&a);
            t.end_change(&a, &d, t0 + ms(100 * n));
        }
        assert_eq!(t.stats.superseded, 1);
        assert_eq!(t.stats.changes[ORIG], 2);
    }
}
