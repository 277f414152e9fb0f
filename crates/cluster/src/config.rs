//! Warning Events for the configuration objects a gateway cannot apply as written: what
//! `egress up` records so `egress get events` and `egress describe` show them. Reading and
//! decoding the configuration itself is the runner's ([`egress_runner::decode`]).

use egress_model::kinds;
use egress_model::kinds::KindInfo;
use egress_runner::decode::WATCHED;
use egress_runner::lastgood::{Held, Problem};
use egress_store::Store;
use serde_json::Value;

/// Records a Warning Event for each object held at its last good version or refused
/// (`LastGoodConfigurationKept` / `ConfigurationRefused`, the problem as the message), once per
/// (object, problem): an event already in the store is not written again. Objects whose
/// namespace is gone get no event. Returns how many events were created.
pub fn record_problem_events(
    store: &Store,
    problems: &[Problem],
    now: &str,
) -> Result<usize, egress_store::StoreError> {
    use egress_store::ObjectKey;
    let mut events: Vec<(ObjectKey, Value)> = Vec::new();
    for p in problems {
        let reason = match p.held {
            Held::LastGood => "LastGoodConfigurationKept",
            Held::Refused => "ConfigurationRefused",
        };
        let ns = p.id.namespace.as_deref().unwrap_or("default");
        let group = WATCHED
            .iter()
            .find(|(_, k)| *k == p.id.kind)
            .map_or("", |(g, _)| *g);
        let api_version = kinds::for_kind(group, &p.id.kind)
            .map(KindInfo::api_version)
            .unwrap_or_default();
        for message in &p.problems {
            let name = format!(
                "{}.{}",
                p.id.name,
                crate::controllers::short_hash(&[&p.id.kind, reason, message])
            );
            let key = ObjectKey::new("", "Event", Some(ns), name.clone());
            let event = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "apiVersion": api_version,
                    "kind": p.id.kind,
                    "name": p.id.name,
                    "namespace": ns,
                },
                "type": "Warning",
                "reason": reason,
                "message": message,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": "egress-local"},
            });
            events.push((key, event));
        }
    }
    if events.is_empty() {
        return Ok(0);
    }
    // Nothing to write (every event exists already) is decided before taking the write lock.
    let missing: Vec<(ObjectKey, Value)> = events
        .into_iter()
        .filter(|(k, _)| !matches!(store.get(k), Ok(Some(_))))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let committed = store.transact(|tx| {
        let mut created = 0;
        for (key, event) in missing {
            let ns = key.namespace.clone().unwrap_or_default();
            if tx.exists(&key)? || !tx.exists(&ObjectKey::for_namespace(ns))? {
                continue;
            }
            tx.create(&key, event)?;
            created += 1;
        }
        Ok::<usize, egress_store::StoreError>(created)
    })?;
    Ok(committed.value)
}
