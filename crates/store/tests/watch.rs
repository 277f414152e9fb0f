//! The change feed: ordering, resuming, deletes, compaction and blocking waits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use egress_store::{EventType, ObjectKey, Store, StoreError, StoreOptions, WatchEvent};
use serde_json::json;

const LONG: Duration = Duration::from_secs(20);

fn summary(events: &[WatchEvent]) -> Vec<(u64, EventType, String)> {
    events
        .iter()
        .map(|e| (e.rv, e.event_type, e.key.name.clone()))
        .collect()
}

/// Collects events until `n` have arrived.
fn collect(watcher: &mut egress_store::Watcher, n: usize) -> Vec<WatchEvent> {
    let mut all = Vec::new();
    while all.len() < n {
        let batch = watcher.next_events(LONG).unwrap();
        assert!(!batch.is_empty(), "timed out after {} events", all.len());
        all.extend(batch);
    }
    all
}

#[test]
fn events_in_order_from_a_given_rv() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    apply(&store, &cm_key("a", "x"), cm("a", "x", json!({"v": 1})));
    tx(&store, |t| {
        t.apply(&cm_key("a", "x"), cm("a", "x", json!({"v": 2})))?;
        t.apply(&cm_key("a", "y"), cm("a", "y", json!({})))
    })
    .unwrap();
    tx(&store, |t| t.delete(&cm_key("a", "x"))).unwrap();

    let mut all = store.watch(0).unwrap();
    let events = collect(&mut all, 5);
    assert_eq!(
        summary(&events),
        [
            (1, EventType::Added, "a".to_owned()),
            (2, EventType::Added, "x".to_owned()),
            (3, EventType::Modified, "x".to_owned()),
            (4, EventType::Added, "y".to_owned()),
            (5, EventType::Deleted, "x".to_owned()),
        ]
    );
    // DELETED carries the last state with the deletion's rv.
    assert_eq!(events[4].object["data"], json!({"v": 2}));
    assert_eq!(rv(&events[4].object), 5);
    assert_eq!(events[2].object, events[2].object.clone());
    assert_eq!(all.resource_version(), 5);
    assert!(
        all.next_events(Duration::from_millis(50))
            .unwrap()
            .is_empty()
    );

    let mut from3 = store.watch(3).unwrap();
    assert_eq!(
        summary(&collect(&mut from3, 2)),
        [
            (4, EventType::Added, "y".to_owned()),
            (5, EventType::Deleted, "x".to_owned())
        ]
    );
    // The event objects are what the store holds.
    let listed = store.list("", "ConfigMap", None).unwrap();
    assert_eq!(listed.items, [events[3].object.clone()]);
    assert_eq!(listed.resource_version, 5);
}

#[test]
fn blocked_watcher_wakes_on_commit_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let start_rv = store.resource_version().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let mut watcher = store.watch(start_rv).unwrap();
    let waiter = std::thread::spawn(move || {
        // Nothing is pending yet: the first call can only return empty or block.
        assert!(watcher.try_next_events().unwrap().is_empty());
        ready_tx.send(()).unwrap();
        let started = Instant::now();
        let events = watcher.next_events(LONG).unwrap();
        done_tx.send(started.elapsed()).unwrap();
        events
    });
    ready_rx.recv().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    apply(&writer, &cm_key("a", "wake"), cm("a", "wake", json!({})));
    let events = waiter.join().unwrap();
    let waited = done_rx.recv().unwrap();
    assert_eq!(summary(&events), [(2, EventType::Added, "wake".to_owned())]);
    assert!(waited < LONG, "woke only at the timeout");
}

fn small_store(dir: &std::path::Path, threshold: u64) -> Store {
    let options = StoreOptions {
        compact_threshold: threshold,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

#[test]
fn compaction_expires_old_watchers_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 10);
    create_ns(&store, "a");
    let mut early = store.watch(0).unwrap();
    let first = early.next_events(LONG).unwrap();
    assert_eq!(first.len(), 1);
    let mut inode_before = journal_inode(&store);
    let mut compacted = false;
    let mut recent = store.watch(1).unwrap();
    let mut lagging = store.watch(1).unwrap();
    let mut lagging_seen = Vec::new();
    let mut seen = Vec::new();
    for i in 0..30 {
        let name = format!("c{i}");
        apply(&store, &cm_key("a", &name), cm("a", &name, json!({})));
        // `recent` keeps up across every compaction.
        seen.extend(recent.next_events(LONG).unwrap());
        // `lagging` reads only every third commit, across journal replacements.
        if i % 3 == 2 {
            lagging_seen.extend(lagging.next_events(LONG).unwrap());
        }
        let inode = journal_inode(&store);
        compacted |= inode != inode_before;
        inode_before = inode;
    }
    assert!(compacted, "journal was never rewritten");
    assert_eq!(seen.len(), 30);
    assert!(seen.windows(2).all(|w| w[1].rv == w[0].rv + 1));
    assert_eq!(summary(&lagging_seen), summary(&seen));

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.dir().join("meta.json")).unwrap()).unwrap();
    let oldest = meta["firstRetainedResourceVersion"].as_u64().unwrap();
    assert!(oldest > 2, "{meta}");
    let journal = std::fs::read_to_string(store.dir().join("journal.jsonl")).unwrap();
    let events = journal.lines().filter(|l| l.starts_with("{\"rv\"")).count();
    assert!(events <= 10, "{events} events retained");

    // A new watch from before the retained history is refused up front ...
    let err = store.watch(1).unwrap_err();
    assert!(matches!(err, StoreError::Expired { rv: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("too old resource version: 1"));
    // ... and a watcher that fell behind finds out when it next reads.
    let err = early.next_events(LONG).unwrap_err();
    assert!(matches!(err, StoreError::Expired { .. }), "{err}");
    // Watching from the listed rv works.
    let listed = store.list("", "ConfigMap", None).unwrap();
    assert_eq!(listed.items.len(), 30);
    let mut fresh = store.watch(listed.resource_version).unwrap();
    apply(&store, &cm_key("a", "last"), cm("a", "last", json!({})));
    assert_eq!(
        summary(&fresh.next_events(LONG).unwrap()),
        [(
            listed.resource_version + 1,
            EventType::Added,
            "last".to_owned()
        )]
    );
    // Starting exactly at the oldest retained rv is fine.
    assert!(store.watch(oldest - 1).is_ok());
}

fn journal_inode(store: &Store) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(store.dir().join("journal.jsonl"))
        .unwrap()
        .ino()
}

#[test]
fn watcher_started_before_journal_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut watcher = store.watch(0).unwrap();
    assert!(
        watcher
            .next_events(Duration::from_millis(30))
            .unwrap()
            .is_empty()
    );
    tx(&store, |t| {
        t.create(&ObjectKey::for_namespace("n"), ns_obj("n"))
    })
    .unwrap();
    let events = watcher.next_events(LONG).unwrap();
    assert_eq!(summary(&events), [(1, EventType::Added, "n".to_owned())]);
}

#[test]
fn torn_batch_is_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let mut watcher = store.watch(1).unwrap();
    // Half a batch appears (a writer still writing, or one that died).
    let journal = store.dir().join("journal.jsonl");
    let line = json!({"rv": 2, "type": "ADDED",
                      "key": {"group": "", "kind": "ConfigMap", "namespace": "a", "name": "torn"},
                      "object": cm("a", "torn", json!({}))})
    .to_string()
        + "\n";
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
    assert!(
        watcher
            .next_events(Duration::from_millis(60))
            .unwrap()
            .is_empty()
    );
    // The next writer drops it and commits its own rv 2.
    apply(&store, &cm_key("a", "real"), cm("a", "real", json!({})));
    let events = watcher.next_events(LONG).unwrap();
    assert_eq!(summary(&events), [(2, EventType::Added, "real".to_owned())]);
}

#[test]
fn listing_ten_thousand_objects_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        fsync: false,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    create_ns(&store, "a");
    tx(&store, |t| {
        for i in 0..10_000 {
            let name = format!("obj-{i:05}");
            t.apply(&cm_key("a", &name), cm("a", &name, json!({"i": i})))?;
        }
        Ok(())
    })
    .unwrap();
    let started = Instant::now();
    let listed = store.list("", "ConfigMap", None).unwrap();
    let took = started.elapsed();
    assert_eq!(listed.items.len(), 10_000);
    eprintln!("listed 10000 objects in {took:?}");
    // Figures only: performance is measured by benchmarks, not asserted in tests.
    // Small transactions afterwards do not rescan everything (the first one compacts
    // the 10001-event journal, the next ones only append).
    for name in ["one-more", "two-more", "three-more"] {
        let started = Instant::now();
        apply(&store, &cm_key("a", name), cm("a", name, json!({})));
        let took = started.elapsed();
        eprintln!("{name} transaction after 10000 objects took {took:?}");
    }
}

#[test]
fn watching_from_now_starts_at_the_journal_end_and_from_the_past_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    for i in 0..50 {
        apply(
            &store,
            &cm_key("a", &format!("c{i}")),
            cm("a", &format!("c{i}"), json!({"v": i})),
        );
    }
    let now = store.resource_version().unwrap();
    let mut from_now = store.watch(now).unwrap();
    let mut from_past = store.watch(now - 3).unwrap();
    assert!(from_now.try_next_events().unwrap().is_empty());
    apply(
        &store,
        &cm_key("a", "late"),
        cm("a", "late", json!({"v": 0})),
    );
    let got = summary(&collect(&mut from_now, 1));
    assert_eq!(got, [(now + 1, EventType::Added, "late".to_owned())]);
    let past = summary(&collect(&mut from_past, 4));
    let rvs: Vec<u64> = past.iter().map(|e| e.0).collect();
    assert_eq!(rvs, [now - 2, now - 1, now, now + 1]);
}
