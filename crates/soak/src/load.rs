//! Fixed-rate load: per scenario, one request every `1/rate` s (open loop: a slow answer does
//! not slow the sending), at most `max_in_flight` at once (a tick finding that many still out
//! is counted as skipped, never queued), each through the workload's sidecar with
//! [`Client::request`]. Each request takes its oracle ticket as it is sent and is recorded
//! when answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::Shared;
use crate::client::Client;
use crate::manifests::SCENARIOS;
use crate::oracle::Class;

/// Sends scenario `i`'s requests at `rate` per second until `stop`; then waits for the ones
/// in flight. Returns how many ticks were skipped.
pub async fn run(
    i: usize,
    rate: u32,
    max_in_flight: usize,
    client: Arc<Client>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let skipped = AtomicU64::new(0);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut inflight = JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        while inflight.try_join_next().is_some() {}
        if inflight.len() >= max_in_flight {
            skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (client, shared) = (Arc::clone(&client), Arc::clone(&shared));
        inflight.spawn(async move {
            let sidecar = shared.sidecar();
            let sent = Instant::now();
            let ticket = shared.lock().ticket(i, sent);
            let got = match sidecar {
                Some(addr) => client.request(&SCENARIOS[i], addr).await,
                None => Class::Unreachable,
            };
            let done = Instant::now();
            let mismatch = shared.lock().record(i, ticket, sent, done, got);
            if let Some(m) = mismatch {
                shared.event(&format!(
                    "mismatch {}: expected {}, got {} ({:.2} s after its last change)",
                    SCENARIOS[i].name, m.expected, m.observed, m.since_change
                ));
            }
        });
    }
    while inflight.join_next().await.is_some() {}
    skipped.load(Ordering::Relaxed)
}
