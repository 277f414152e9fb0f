//! Crash recovery and commit: replaying committed journal batches and compaction.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::StoreError;
use crate::journal::{self, EventType, Scan, Stop, WatchEvent};
use crate::key::ObjectKey;
use crate::meta::Meta;
use crate::objects;
use crate::store::Paths;

/// Brings the object files and `meta.json` in line with the journal.
///
/// Must be called with the exclusive lock held. Replays batches that were committed
/// to the journal but not applied, truncates a torn trailing batch, and rebuilds a missing or
/// damaged `meta.json`.
pub(crate) fn recover(paths: &Paths, fsync: bool) -> Result<Meta, StoreError> {
    // A damaged meta.json is rebuilt from the journal and the object files, like a missing one.
    let stored = match Meta::load(&paths.meta) {
        Ok(meta) => meta,
        Err(StoreError::Corrupt { .. }) => None,
        Err(e) => return Err(e),
    };
    let len = journal::length(&paths.journal)?;
    if let Some(meta) = stored {
        if len == meta.journal_length {
            return Ok(meta);
        }
        if len > meta.journal_length {
            // Usually a crash between the journal append and meta.json: look at the tail only.
            let bytes = journal::read_from(&paths.journal, meta.journal_length)?;
            let next = meta.resource_version + 1;
            let scan = journal::scan(&bytes, meta.journal_length, Some(next));
            if !matches!(scan.stop, Some(Stop::Invalid { .. })) {
                return finish(paths, meta, scan, len, fsync);
            }
        }
    }
    // Missing meta.json, a journal rewritten by compaction, or a tail that does not
    // continue where meta.json says: scan the whole journal.
    let bytes = journal::read_from(&paths.journal, 0)?;
    let scan = journal::scan(&bytes, 0, None);
    if let Some(err) = scan
        .stop
        .as_ref()
        .and_then(|s| s.corruption(&paths.journal))
    {
        return Err(err);
    }
    let mut meta = match stored {
        Some(meta) => meta,
        None => Meta {
            resource_version: max_object_rv(paths)?,
            ..Meta::default()
        },
    };
    let last_rv = scan
        .batches
        .last()
        .and_then(|b| b.events.last())
        .map_or(0, |e| e.rv);
    meta.first_retained_resource_version = match scan.batches.first() {
        Some(batch) => batch.events.first().map_or(1, |e| e.rv),
        None => meta.resource_version.max(last_rv) + 1,
    };
    finish(paths, meta, scan, len, fsync)
}

/// Applies the batches of `scan` newer than `meta`, drops any torn tail, saves meta.
fn finish(
    paths: &Paths,
    mut meta: Meta,
    scan: Scan,
    len: u64,
    fsync: bool,
) -> Result<Meta, StoreError> {
    let mut states: BTreeMap<ObjectKey, Option<Value>> = BTreeMap::new();
    let mut rv = meta.resource_version;
    for event in scan.batches.into_iter().flat_map(|b| b.events) {
        if event.rv <= meta.resource_version {
            continue;
        }
        rv = rv.max(event.rv);
        let state = match event.event_type {
            EventType::Deleted => None,
            EventType::Added | EventType::Modified => Some(event.object),
        };
        states.insert(event.key, state);
    }
    for key in states.keys() {
        key.validate()?;
    }
    objects::apply_states(&paths.objects, &states, fsync)?;
    if len > scan.committed_end {
        journal::truncate(&paths.journal, scan.committed_end, fsync)?;
    }
    meta.resource_version = rv;
    meta.journal_length = scan.committed_end;
    meta.save(&paths.meta, &paths.meta_tmp, fsync)?;
    Ok(meta)
}

/// Highest resourceVersion found in any object file (used when meta.json is missing).
fn max_object_rv(paths: &Paths) -> Result<u64, StoreError> {
    let mut max = 0;
    for gk in objects::kinds(&paths.objects)? {
        let listed = objects::list(&paths.objects, &gk.group, &gk.kind, None)?;
        for item in &listed.items {
            max = max.max(object_rv(item));
        }
    }
    Ok(max)
}

/// The `metadata.resourceVersion` of a stored object (0 when absent or malformed).
pub(crate) fn object_rv(object: &Value) -> u64 {
    object
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The last committed state of `key` the journal holds: its body after its last added or
/// modified event, `None` when that was a deletion or the journal no longer holds it.
pub(crate) fn journal_state(paths: &Paths, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
    let bytes = journal::read_from(&paths.journal, 0)?;
    let scan = journal::scan(&bytes, 0, None);
    let last = scan
        .batches
        .into_iter()
        .rev()
        .flat_map(|b| b.events.into_iter().rev())
        .find(|e| e.key == *key);
    Ok(match last {
        Some(WatchEvent {
            event_type: EventType::Added | EventType::Modified,
            object,
            ..
        }) => Some(object),
        _ => None,
    })
}

/// Durably commits a batch (journal, then objects, then meta) and compacts if due.
pub(crate) fn commit(
    paths: &Paths,
    mut meta: Meta,
    events: &[WatchEvent],
    states: &BTreeMap<ObjectKey, Option<Value>>,
    fsync: bool,
    compact_threshold: u64,
) -> Result<Meta, StoreError> {
    let Some(last) = events.last() else {
        // Only repairs (bodies already committed): rewrite the files, nothing to journal.
        objects::apply_states(&paths.objects, states, fsync)?;
        return Ok(meta);
    };
    let batch = journal::encode_batch(events)?;
    journal::append(&paths.journal, &batch, fsync)?;
    #[cfg(test)]
    if crash_hook::armed() {
        return Ok(meta);
    }
    objects::apply_states(&paths.objects, states, fsync)?;
    meta.resource_version = last.rv;
    meta.journal_length += batch.len() as u64;
    meta.save(&paths.meta, &paths.meta_tmp, fsync)?;

    let retained = (meta.resource_version + 1).saturating_sub(meta.first_retained_resource_version);
    if retained > compact_threshold {
        let keep = (compact_threshold / 2).max(1);
        let keep_from = meta.resource_version + 1 - keep.min(meta.resource_version);
        if let Some((len, first)) =
            journal::compact(&paths.journal, &paths.journal_tmp, keep_from, fsync)?
        {
            meta.journal_length = len;
            meta.first_retained_resource_version = first;
            meta.save(&paths.meta, &paths.meta_tmp, fsync)?;
        }
    }
    Ok(meta)
}

/// Test-only switch that makes the next commits stop right after the journal append,
/// as if the process had died there.
#[cfg(test)]
pub(crate) mod crash_hook {
    use std::cell::Cell;

    thread_local! {
        static ARMED: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether commits on this thread should "crash" after the journal append.
    pub(crate) fn armed() -> bool {
        ARMED.with(Cell::get)
    }

    /// Arms or disarms the crash for this thread.
    pub(crate) fn set(armed: bool) {
        ARMED.with(|a| a.set(armed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ObjectKey, Store};
    use serde_json::json;

    fn cm(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}})
    }

    #[test]
    fn crash_after_journal_append_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ns = ObjectKey::for_namespace("a");
        let (x, y) = (
            ObjectKey::new("", "ConfigMap", Some("a"), "x"),
            ObjectKey::new("", "ConfigMap", Some("a"), "y"),
        );
        store
            .transact(|tx| {
                tx.create(&ns, json!({"apiVersion": "v1", "kind": "Namespace"}))?;
                tx.create(&x, cm("a", "x"))
            })
            .unwrap();

        crash_hook::set(true);
        let crashed = store.transact(|tx| {
            tx.delete(&x)?;
            tx.create(&y, cm("a", "y"))
        });
        crash_hook::set(false);
        let crashed = crashed.unwrap();
        // The "dead" writer got as far as the journal: files and meta are untouched.
        let meta = Meta::load(&dir.path().join("meta.json")).unwrap().unwrap();
        assert_eq!(meta.resource_version, 2);
        assert!(dir.path().join("objects/core/ConfigMap/a/x.json").is_file());
        assert!(!dir.path().join("objects/core/ConfigMap/a/y.json").exists());

        // The next reader recovers under the lock.
        let reader = Store::open_with(dir.path(), store.options().clone()).unwrap();
        assert!(reader.get(&x).unwrap().is_none());
        assert_eq!(reader.get(&y).unwrap().unwrap(), crashed.value.object);
        assert_eq!(reader.resource_version().unwrap(), 4);
        let meta = Meta::load(&dir.path().join("meta.json")).unwrap().unwrap();
        assert_eq!(
            meta.journal_length,
            journal::length(&dir.path().join("journal.jsonl")).unwrap()
        );
        let out = store.transact(|tx| tx.apply(&x, cm("a", "x"))).unwrap();
        assert_eq!(out.resource_version, 5);
    }

    #[test]
    fn torn_batch_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ns = ObjectKey::for_namespace("a");
        store
            .transact(|tx| tx.create(&ns, json!({"apiVersion": "v1", "kind": "Namespace"})))
            .unwrap();
        let journal_path = dir.path().join("journal.jsonl");
        let good_len = journal::length(&journal_path).unwrap();
        let key = ObjectKey::new("", "ConfigMap", Some("a"), "torn");
        let event = WatchEvent {
            rv: 2,
            event_type: EventType::Added,
            key: key.clone(),
            object: cm("a", "torn"),
        };
        let batch = journal::encode_batch(&[event]).unwrap();
        // Everything but the commit marker, plus half of it.
        journal::append(&journal_path, &batch[..batch.len() - 10], false).unwrap();
        assert!(journal::length(&journal_path).unwrap() > good_len);

        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(journal::length(&journal_path).unwrap(), good_len);
        assert!(reopened.get(&key).unwrap().is_none());
        let out = reopened
            .transact(|tx| tx.create(&key, cm("a", "torn")))
            .unwrap();
        assert_eq!(out.resource_version, 2);
        let bytes = std::fs::read(&journal_path).unwrap();
        let scan = journal::scan(&bytes, 0, None);
        assert!(scan.stop.is_none());
        assert_eq!(scan.batches.len(), 2);
    }
}
