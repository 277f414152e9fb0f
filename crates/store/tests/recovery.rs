//! Crash recovery from the journal, written by hand in the documented format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::*;
use egress_store::{Store, StoreError};
use serde_json::json;

fn append(path: &std::path::Path, text: &str) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn event_line(rv: u64, kind: &str, ns: &str, name: &str, value: &str) -> String {
    let mut object = cm(ns, name, json!({"v": value}));
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    json!({
        "rv": rv,
        "type": kind,
        "key": {"group": "", "kind": "ConfigMap", "namespace": ns, "name": name},
        "object": object,
    })
    .to_string()
        + "\n"
}

#[test]
fn committed_batch_without_object_files_is_replayed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    apply(&store, &cm_key("a", "gone"), cm("a", "gone", json!({})));
    drop(store);

    // A writer that died right after its journal append (rv 3..=4).
    let journal = dir.path().join("journal.jsonl");
    let mut gone = cm("a", "gone", json!({}));
    gone["metadata"]["resourceVersion"] = json!("4");
    let batch = event_line(3, "ADDED", "a", "new", "1")
        + &json!({"rv": 4, "type": "DELETED",
                  "key": {"group": "", "kind": "ConfigMap", "namespace": "a", "name": "gone"},
                  "object": gone})
        .to_string()
        + "\n{\"commit\":4,\"events\":2}\n";
    append(&journal, &batch);

    let store = open(dir.path());
    assert_eq!(store.resource_version().unwrap(), 4);
    let new = store.get(&cm_key("a", "new")).unwrap().unwrap();
    assert_eq!(new["data"], json!({"v": "1"}));
    assert!(store.get(&cm_key("a", "gone")).unwrap().is_none());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["resourceVersion"], 4);
    assert_eq!(
        meta["journalLength"],
        std::fs::metadata(&journal).unwrap().len()
    );
    // New writes continue after the replayed rvs.
    let out = apply(&store, &cm_key("a", "next"), cm("a", "next", json!({})));
    assert_eq!(rv(&out.object), 5);
}

#[test]
fn torn_tail_is_truncated_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let journal = dir.path().join("journal.jsonl");
    let good = std::fs::read(&journal).unwrap();
    // Two events of a batch were written, the third only half, and no commit marker.
    let line = event_line(4, "ADDED", "a", "z", "1");
    append(
        &journal,
        &(event_line(2, "ADDED", "a", "x", "1")
            + &event_line(3, "ADDED", "a", "y", "1")
            + &line[..line.len() / 2]),
    );
    // Even a plain read (not only open/transact) recovers first.
    assert!(store.get(&cm_key("a", "x")).unwrap().is_none());
    assert_eq!(std::fs::read(&journal).unwrap(), good);
    assert_eq!(store.resource_version().unwrap(), 1);
    let out = apply(&store, &cm_key("a", "x"), cm("a", "x", json!({})));
    assert_eq!(rv(&out.object), 2);
}

#[test]
fn missing_meta_is_rebuilt_from_journal_and_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    apply(&store, &cm_key("a", "x"), cm("a", "x", json!({})));
    std::fs::remove_file(dir.path().join("meta.json")).unwrap();
    let store = open(dir.path());
    assert_eq!(store.resource_version().unwrap(), 2);
    let out = apply(&store, &cm_key("a", "y"), cm("a", "y", json!({})));
    assert_eq!(rv(&out.object), 3);
    // Also without the journal: the objects' rvs are the floor.
    std::fs::remove_file(dir.path().join("meta.json")).unwrap();
    std::fs::remove_file(dir.path().join("journal.jsonl")).unwrap();
    let store = open(dir.path());
    assert_eq!(store.resource_version().unwrap(), 3);
    // History is gone, so watching from the beginning is expired.
    assert!(matches!(store.watch(0), Err(StoreError::Expired { .. })));
    assert!(store.watch(3).is_ok());
}

#[test]
fn corruption_inside_committed_journal_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let journal = dir.path().join("journal.jsonl");
    append(
        &journal,
        &("garbage\n".to_owned()
            + &event_line(2, "ADDED", "a", "x", "1")
            + "{\"commit\":2,\"events\":1}\n"),
    );
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref path, .. } if path.ends_with("journal.jsonl")),
        "{err}"
    );
}
