//! The churn driver: every tick (200 ms) it applies or deletes one object — a scenario's
//! VirtualService, DENY AuthorizationPolicy or ServiceEntry, the shared MeshConfig's
//! outboundTrafficPolicy, or an unrelated "noise" object — through `egress apply`/`egress
//! delete`, and tells the oracle what it committed.
//!
//! A change that alters what a scenario's request must get is made only when that scenario's
//! last such change is at least `hold` old (so each outcome is in force long enough to be
//! checked); between those, the tick goes to a change that must not alter any outcome (noise,
//! or a policy at a gateway the scenario does not currently use), which opens no window.
//! A VirtualService is only ever declared with its ServiceEntry: the soak never creates a
//! route to a host the registry does not know, whose outcome Istio leaves to details of
//! listener generation.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

use crate::Shared;
use crate::cluster::Egress;
use crate::manifests::{NOISE_OBJECTS, Noise, SCENARIOS, mesh_config};
use crate::oracle::Declared;

/// One change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set the MeshConfig's mode (REGISTRY_ONLY when true).
    Mode(bool),
    /// Apply (true) or delete a scenario's ServiceEntry.
    ServiceEntry(usize, bool),
    /// Apply or delete a scenario's VirtualService.
    VirtualService(usize, bool),
    /// Apply or delete a scenario's DENY AuthorizationPolicy.
    Deny(usize, bool),
    /// Apply or delete an unrelated object.
    Noise(Noise, bool),
}

impl Action {
    /// The kind of object it changes, for the report.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Mode(_) => "MeshConfig",
            Action::ServiceEntry(..) | Action::Noise(Noise::ServiceEntry(_), _) => "ServiceEntry",
            Action::VirtualService(..) | Action::Noise(Noise::VirtualService(_), _) => {
                "VirtualService"
            }
            Action::Deny(..) | Action::Noise(Noise::AuthorizationPolicy(_), _) => {
                "AuthorizationPolicy"
            }
        }
    }

    /// The declared state after it.
    fn apply_to(&self, d: &Declared) -> Declared {
        let mut n = *d;
        match *self {
            Action::Mode(r) => n.registry_only = r,
            Action::ServiceEntry(i, on) => n.service_entry[i] = on,
            Action::VirtualService(i, on) => n.virtual_service[i] = on,
            Action::Deny(i, on) => n.deny[i] = on,
            Action::Noise(..) => {}
        }
        n
    }
}

/// What the driver did.
#[derive(Debug, Default, Clone)]
pub struct ChurnStats {
    /// Committed changes by object kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Of those, changes that altered some scenario's expected outcome.
    pub outcome_changes: u64,
    /// Commands that failed even after retries (the declared state keeps the old value).
    pub failures: u64,
    /// The first failures' messages.
    pub failure_examples: Vec<String>,
    /// Ticks that started late because the previous change took longer than a tick.
    pub late_ticks: u64,
    /// Slowest command (start to return).
    pub slowest_command: Duration,
}

/// The driver's own state.
pub struct Driver {
    declared: Declared,
    noise: BTreeMap<(u8, usize), bool>,
    rng: StdRng,
    hold: Duration,
    /// What it did.
    pub stats: ChurnStats,
}

impl Driver {
    /// Starts from `declared` (already committed) with no noise objects.
    pub fn new(declared: Declared, rng: StdRng, hold: Duration) -> Driver {
        Driver {
            declared,
            noise: BTreeMap::new(),
            rng,
            hold,
            stats: ChurnStats::default(),
        }
    }

    fn candidates(&self) -> Vec<Action> {
        let d = &self.declared;
        let mut out = vec![Action::Mode(!d.registry_only)];
        for (i, s) in SCENARIOS.iter().enumerate() {
            if !d.service_entry[i] {
                out.push(Action::ServiceEntry(i, true));
            } else if !d.virtual_service[i] {
                out.push(Action::ServiceEntry(i, false));
                out.push(Action::VirtualService(i, true));
            } else {
                out.push(Action::VirtualService(i, false));
            }
            if s.has_authz() {
                out.push(Action::Deny(i, !d.deny[i]));
            }
        }
        for n in 0..NOISE_OBJECTS {
            for (k, noise) in [
                Noise::ServiceEntry(n),
                Noise::VirtualService(n),
                Noise::AuthorizationPolicy(n),
            ]
            .into_iter()
            .enumerate()
            {
                let kind = u8::try_from(k).unwrap_or_default();
                let present = self.noise.get(&(kind, n)).copied().unwrap_or(false);
                out.push(Action::Noise(noise, !present));
            }
        }
        out
    }

    /// Picks the next change: one that alters an outcome (when some scenario may change) half
    /// of the time, else one that must not.
    pub fn pick(&mut self, shared: &Shared, now: Instant) -> Action {
        let tracker = shared
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (mut altering, mut neutral) = (Vec::new(), Vec::new());
        for a in self.candidates() {
            let affected = self.declared.affected(&a.apply_to(&self.declared));
            if affected.is_empty() {
                neutral.push(a);
            } else if affected
                .iter()
                .all(|&i| tracker.can_change(i, now, self.hold))
            {
                altering.push(a);
            }
        }
        drop(tracker);
        let pool = if !altering.is_empty() && self.rng.random_bool(0.5) {
            altering
        } else {
            neutral
        };
        let i = self.rng.random_range(0..pool.len().max(1));
        pool.get(i).copied().unwrap_or(Action::Mode(true))
    }

    /// Runs `action` through `egress` (up to 3 tries) and records it with the oracle.
    pub async fn commit(&mut self, action: Action, egress: &Egress, shared: &Shared) {
        let next = action.apply_to(&self.declared);
        let affected = self.declared.affected(&next);
        shared.lock().begin_change(&affected);
        let started = Instant::now();
        let mut result = Ok(());
        for _ in 0..3 {
            result = run(action, egress).await;
            if result.is_ok() {
                break;
            }
        }
        let took = started.elapsed();
        self.stats.slowest_command = self.stats.slowest_command.max(took);
        match result {
            Ok(()) => {
                self.declared = next;
                if let Action::Noise(n, on) = action {
                    let key = match n {
                        Noise::ServiceEntry(i) => (0, i),
                        Noise::VirtualService(i) => (1, i),
                        Noise::AuthorizationPolicy(i) => (2, i),
                    };
                    self.noise.insert(key, on);
                }
                *self.stats.by_kind.entry(action.kind()).or_default() += 1;
                if !affected.is_empty() {
                    self.stats.outcome_changes += 1;
                }
            }
            Err(e) => {
                shared.event(&format!("command failed: {e}"));
                self.stats.failures += 1;
                if self.stats.failure_examples.len() < 5 {
                    self.stats.failure_examples.push(e.to_string());
                }
            }
        }
        shared
            .lock()
            .end_change(&affected, &self.declared, Instant::now());
        shared.event(&format!(
            "commit {action:?} ({} ms){}",
            took.as_millis(),
            if affected.is_empty() {
                String::new()
            } else {
                format!(
                    ", now expected: {}",
                    affected
                        .iter()
                        .map(|&i| format!("{} {}", SCENARIOS[i].name, self.declared.expected(i)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    }
}

async fn run(action: Action, egress: &Egress) -> Result<(), crate::SoakError> {
    match action {
        Action::Mode(r) => egress.apply(&mesh_config(r), false).await,
        Action::ServiceEntry(i, true) => egress.apply(&SCENARIOS[i].service_entry(), true).await,
        Action::ServiceEntry(i, false) => {
            egress.delete("serviceentry", &SCENARIOS[i].se_name()).await
        }
        Action::VirtualService(i, true) => {
            egress.apply(&SCENARIOS[i].virtual_service(), true).await
        }
        Action::VirtualService(i, false) => {
            egress
                .delete("virtualservice", &SCENARIOS[i].vs_name())
                .await
        }
        Action::Deny(i, true) => egress.apply(&SCENARIOS[i].authz(), true).await,
        Action::Deny(i, false) => {
            egress
                .delete("authorizationpolicy", &SCENARIOS[i].ap_name())
                .await
        }
        Action::Noise(n, true) => egress.apply(&n.manifest(), true).await,
        Action::Noise(n, false) => {
            let (kind, name) = n.kind_and_name();
            egress.delete(kind, &name).await
        }
    }
}

/// The driver's loop: one change per `every` until `stop` turns true.
pub async fn drive(
    mut driver: Driver,
    egress: Egress,
    shared: Arc<Shared>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ChurnStats {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        if now.duration_since(last) > every + every / 2 {
            driver.stats.late_ticks += 1;
        }
        last = now;
        let action = driver.pick(&shared, now);
        driver.commit(action, &egress, &shared).await;
    }
    driver.stats
}
