//! Sources are read incrementally: over a real store and a real directory, a change to one
//! object (one file) decodes and validates that object (file) alone, a deletion decodes
//! nothing, and the merged configuration is still complete each time. The store's change feed
//! wakes a reader for the kinds a proxy reads (that other kinds pass by is `source`'s unit test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use egress_runner::ConfigSource;
use egress_runner::lastgood::LastGood;
use egress_runner::load::{Loaded, Reader};
use egress_store::{ObjectKey, Store};
use serde_json::{Value, json};

fn se(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": [host], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                 "resolution": "DNS"},
    })
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("networking.istio.io", "ServiceEntry", Some("default"), name)
}

fn write(store: &Store, name: &str, host: &str) {
    store
        .transact(|tx| tx.apply(&key(name), se(name, host)))
        .unwrap();
}

fn namespace(store: &Store) {
    store
        .transact(|tx| {
            tx.apply(
                &ObjectKey::for_namespace("default"),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
            )
        })
        .unwrap();
}

fn load(reader: &mut Reader, source: &ConfigSource, lg: &mut LastGood) -> usize {
    match reader.load(source, "default", lg) {
        Loaded::Read { merged, .. } => {
            assert!(merged.problems.is_empty(), "{:?}", merged.lines());
            merged.resources.len()
        }
        other => panic!("not read: {other:?}"),
    }
}

#[test]
fn the_store_is_read_object_by_object_and_only_changed_objects_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    namespace(&store);
    for i in 0..20 {
        write(&store, &format!("se-{i}"), &format!("h{i}.example.com"));
    }
    let source = ConfigSource::Store(store.clone());
    let mut reader = Reader::new();
    let mut lg = LastGood::new();
    assert_eq!(load(&mut reader, &source, &mut lg), 20);
    let first = reader.decoded();
    assert_eq!(first, 20, "every object decoded once at first");
    assert_eq!(load(&mut reader, &source, &mut lg), 20);
    assert_eq!(reader.decoded(), first, "nothing changed: nothing decoded");
    write(&store, "se-7", "changed.example.com");
    assert_eq!(load(&mut reader, &source, &mut lg), 20);
    assert_eq!(
        reader.decoded(),
        first + 1,
        "one object changed: one decoded"
    );
    store.transact(|tx| tx.delete(&key("se-3"))).unwrap();
    assert_eq!(load(&mut reader, &source, &mut lg), 19);
    assert_eq!(reader.decoded(), first + 1, "a deletion decodes nothing");
}

#[test]
fn a_directory_is_read_file_by_file_and_only_changed_files_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let doc =
            serde_json::to_string(&se(&format!("se-{i}"), &format!("h{i}.example.com"))).unwrap();
        std::fs::write(dir.path().join(format!("se-{i}.json")), doc).unwrap();
    }
    let source = ConfigSource::Dir(dir.path().to_path_buf());
    let mut reader = Reader::new();
    let mut lg = LastGood::new();
    assert_eq!(load(&mut reader, &source, &mut lg), 5);
    assert_eq!(reader.decoded(), 5);
    assert_eq!(load(&mut reader, &source, &mut lg), 5);
    assert_eq!(reader.decoded(), 5);
    let doc = serde_json::to_string(&se("se-2", "changed.example.com")).unwrap();
    std::fs::write(dir.path().join("se-2.json"), doc).unwrap();
    assert_eq!(load(&mut reader, &source, &mut lg), 5);
    assert_eq!(reader.decoded(), 6, "one file changed: one decoded");
}

#[tokio::test]
async fn a_change_to_a_watched_kind_wakes_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    namespace(&store);
    let seen = store.resource_version().unwrap();
    let source = ConfigSource::Store(store.clone());
    let wait = source.changed(Some(seen));
    tokio::pin!(wait);
    // An Event first (not configuration), then a ServiceEntry: the wait ends (the timeout
    // only keeps a broken feed from hanging the test).
    store
        .transact(|tx| tx.create(&ObjectKey::new("", "Event", Some("default"), "e1"), json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"}, "reason": "x", "message": "y"})))
        .unwrap();
    write(&store, "se-1", "a.example.com");
    tokio::time::timeout(Duration::from_secs(30), &mut wait)
        .await
        .expect("a ServiceEntry change woke the reader");
}
