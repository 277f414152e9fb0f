//! Damaged object files: repaired from the journal (the object's last committed body), and
//! always replaceable or removable by a write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use egress_store::{Action, Store, StoreOptions};
use serde_json::json;

/// Truncates an object file to its first `keep` bytes, as a hand edit or a full disk might.
fn truncate(store: &Store, rel: &str, keep: usize) -> std::path::PathBuf {
    let path = store.dir().join(rel);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..keep.min(bytes.len() - 1)]).unwrap();
    path
}

#[test]
fn store_repair_restores_damaged_files_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    apply(
        &store,
        &cm_key("a", "one"),
        cm("a", "one", json!({"v": "1"})),
    );
    let good = apply(
        &store,
        &cm_key("a", "one"),
        cm("a", "one", json!({"v": "2"})),
    )
    .object;
    apply(
        &store,
        &cm_key("a", "two"),
        cm("a", "two", json!({"v": "x"})),
    );
    let path = truncate(&store, "objects/core/ConfigMap/a/one.json", 30);
    assert_eq!(store.list("", "ConfigMap", None).unwrap().corrupt.len(), 1);
    // Before any repair, readers that ask for the committed state get the journal's body,
    // listed in its place; a plain list leaves it out.
    let committed = store.list_committed("", "ConfigMap", None).unwrap();
    assert_eq!(
        committed.items,
        vec![
            good.clone(),
            store.list("", "ConfigMap", None).unwrap().items[0].clone()
        ]
    );
    assert!(committed.corrupt[0].recovered);
    assert_eq!(
        store.get_committed(&cm_key("a", "one")).unwrap(),
        Some(good.clone())
    );
    let rv = store.resource_version().unwrap();

    let (repaired, lost) = store.repair().unwrap();
    assert_eq!(repaired, vec![cm_key("a", "one")]);
    assert!(lost.is_empty());
    // The last committed body, byte for byte the object as stored; no new resourceVersion.
    assert_eq!(store.get(&cm_key("a", "one")).unwrap(), Some(good));
    assert!(
        store
            .list("", "ConfigMap", None)
            .unwrap()
            .corrupt
            .is_empty()
    );
    assert_eq!(store.resource_version().unwrap(), rv);
    assert!(path.exists());
}

#[test]
fn apply_of_the_same_content_repairs_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let obj = cm("a", "one", json!({"v": "1"}));
    let stored = apply(&store, &cm_key("a", "one"), obj.clone()).object;
    truncate(&store, "objects/core/ConfigMap/a/one.json", 20);
    let out = apply(&store, &cm_key("a", "one"), obj);
    assert_eq!(out.action, Action::Unchanged);
    assert_eq!(store.get(&cm_key("a", "one")).unwrap(), Some(stored));
}

#[test]
fn a_file_the_journal_no_longer_holds_is_replaced_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        compact_threshold: 4,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    create_ns(&store, "a");
    apply(
        &store,
        &cm_key("a", "old"),
        cm("a", "old", json!({"v": "1"})),
    );
    apply(
        &store,
        &cm_key("a", "gone"),
        cm("a", "gone", json!({"v": "1"})),
    );
    // Enough later writes for compaction to drop the two objects' events.
    for i in 0..8 {
        apply(
            &store,
            &cm_key("a", "churn"),
            cm("a", "churn", json!({"v": i.to_string()})),
        );
    }
    truncate(&store, "objects/core/ConfigMap/a/old.json", 10);
    truncate(&store, "objects/core/ConfigMap/a/gone.json", 10);
    let (repaired, mut lost) = store.repair().unwrap();
    lost.sort();
    assert!(repaired.is_empty());
    assert_eq!(lost, vec![cm_key("a", "gone"), cm_key("a", "old")]);

    // A write replaces the unrecoverable file; a delete removes the other.
    let out = apply(
        &store,
        &cm_key("a", "old"),
        cm("a", "old", json!({"v": "new"})),
    );
    assert_eq!(out.action, Action::Created);
    let got = store.get(&cm_key("a", "old")).unwrap().unwrap();
    assert_eq!(got["data"], json!({"v": "new"}));
    let out = tx(&store, |t| t.delete(&cm_key("a", "gone")))
        .unwrap()
        .value;
    assert_eq!(out.action, Action::Deleted);
    assert_eq!(store.get(&cm_key("a", "gone")).unwrap(), None);
    assert!(
        store
            .list("", "ConfigMap", None)
            .unwrap()
            .corrupt
            .is_empty()
    );
}

#[test]
fn a_damaged_meta_json_is_rebuilt_by_the_next_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    apply(&store, &cm_key("a", "x"), cm("a", "x", json!({"v": "1"})));
    let meta = dir.path().join("meta.json");
    std::fs::write(&meta, "{\"resourceVers").unwrap();
    // A reader of the open store (a gateway) lists and rebuilds meta.json.
    let listed = store.list("", "ConfigMap", None).unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.resource_version, 2);
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(rebuilt["resourceVersion"], 2);
    // Writers continue from there, and the feed is intact.
    let out = apply(&store, &cm_key("a", "y"), cm("a", "y", json!({})));
    assert_eq!(rv(&out.object), 3);
    assert!(store.watch(2).is_ok());
}
