//! Create/get/update/delete semantics, namespaces, failed transactions and corrupt files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use egress_store::{Action, ObjectKey, Store, StoreError};
use serde_json::json;

#[test]
fn round_trip_sets_server_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.resource_version().unwrap(), 0);
    let ns = create_ns(&store, "default");
    assert_eq!(ns.action, Action::Created);
    assert!(ns.object["metadata"].get("namespace").is_none());
    assert_eq!(rv(&ns.object), 1);

    let key = se_key("default", "httpbin");
    let out = apply(&store, &key, se("default", "httpbin", "httpbin.org"));
    assert_eq!(out.action, Action::Created);
    let stored = store.get(&key).unwrap().unwrap();
    assert_eq!(stored, out.object);
    assert_eq!(rv(&stored), 2);
    assert_eq!(meta(&stored, "generation"), 1);
    assert_eq!(meta(&stored, "namespace"), "default");
    let uid = meta(&stored, "uid").as_str().unwrap().to_owned();
    assert_eq!(uid.len(), 36);
    let ts = meta(&stored, "creationTimestamp")
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ts.len(), 20, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");

    // The file is where the layout says.
    let file = store
        .dir()
        .join("objects/networking.istio.io/ServiceEntry/default/httpbin.json");
    assert!(file.is_file());
    assert!(
        store
            .dir()
            .join("objects/core/Namespace/_cluster/default.json")
            .is_file()
    );

    // Update: caller's uid/creationTimestamp are ignored; generation bumps on spec change.
    let mut changed = se("default", "httpbin", "example.com");
    changed["metadata"]["uid"] = json!("bogus");
    changed["metadata"]["creationTimestamp"] = json!("1999-01-01T00:00:00Z");
    let out = tx(&store, |t| t.update(&key, changed, Some(2)))
        .unwrap()
        .value;
    assert_eq!(out.action, Action::Configured);
    assert_eq!(meta(&out.object, "uid"), uid.as_str());
    assert_eq!(meta(&out.object, "creationTimestamp"), ts.as_str());
    assert_eq!(meta(&out.object, "generation"), 2);
    assert_eq!(rv(&out.object), 3);
    assert_eq!(store.get(&key).unwrap().unwrap(), out.object);

    // Delete.
    let committed = tx(&store, |t| t.delete(&key)).unwrap();
    assert_eq!(committed.value.action, Action::Deleted);
    assert_eq!(rv(&committed.value.object), 4);
    assert_eq!(committed.resource_version, 4);
    assert!(store.get(&key).unwrap().is_none());
    assert!(!file.exists());
    let err = tx(&store, |t| t.delete(&key)).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    assert_eq!(
        err.to_string(),
        "serviceentries.networking.istio.io \"httpbin\" not found"
    );
}

#[test]
fn generation_and_status_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let key = se_key("a", "x");
    apply(&store, &key, se("a", "x", "one.example"));

    // Label-only change: new rv, same generation.
    let mut labelled = se("a", "x", "one.example");
    labelled["metadata"]["labels"] = json!({"app": "x"});
    let out = apply(&store, &key, labelled.clone());
    assert_eq!(out.action, Action::Configured);
    assert_eq!(meta(&out.object, "generation"), 1);
    assert_eq!(rv(&out.object), 3);

    // Status-only change: new rv, same generation.
    let mut with_status = labelled.clone();
    with_status["status"] = json!({"ready": true});
    let out = apply(&store, &key, with_status);
    assert_eq!(out.action, Action::Configured);
    assert_eq!(meta(&out.object, "generation"), 1);

    // An update without status keeps the stored status and is a no-op.
    let out = apply(&store, &key, labelled.clone());
    assert_eq!(out.action, Action::Unchanged);
    assert_eq!(out.object["status"], json!({"ready": true}));
    assert_eq!(rv(&out.object), 4);
    assert_eq!(store.resource_version().unwrap(), 4);

    // Spec change bumps the generation and keeps status.
    let mut respec = labelled;
    respec["spec"]["hosts"] = json!(["two.example"]);
    let out = apply(&store, &key, respec);
    assert_eq!(meta(&out.object, "generation"), 2);
    assert_eq!(out.object["status"], json!({"ready": true}));
    assert_eq!(rv(&out.object), 5);
}

#[test]
fn unchanged_apply_uses_no_rv_and_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let key = cm_key("a", "c");
    apply(&store, &key, cm("a", "c", json!({"k": "v"})));
    let journal_len = std::fs::metadata(store.dir().join("journal.jsonl"))
        .unwrap()
        .len();
    let committed = tx(&store, |t| t.apply(&key, cm("a", "c", json!({"k": "v"})))).unwrap();
    assert_eq!(committed.value.action, Action::Unchanged);
    assert_eq!(committed.resource_version, 2);
    let after = std::fs::metadata(store.dir().join("journal.jsonl"))
        .unwrap()
        .len();
    assert_eq!(journal_len, after);
}

#[test]
fn conflict_on_stale_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let key = cm_key("a", "c");
    apply(&store, &key, cm("a", "c", json!({"k": "1"})));
    apply(&store, &key, cm("a", "c", json!({"k": "2"})));
    let err = tx(&store, |t| {
        t.update(&key, cm("a", "c", json!({"k": "3"})), Some(2))
    })
    .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: 2,
            actual: 3,
            ..
        }
    ));
    assert!(err.to_string().contains(
        "the object has been modified; please apply your changes to the latest version and try again"
    ));
    let err = tx(&store, |t| {
        t.update(&cm_key("a", "missing"), cm("a", "missing", json!({})), None)
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "configmaps \"missing\" not found");
    let err = tx(&store, |t| t.create(&key, cm("a", "c", json!({})))).unwrap_err();
    assert_eq!(err.to_string(), "configmaps \"c\" already exists");
}

#[test]
fn namespace_is_required_unless_created_in_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = cm_key("foo", "c");
    let err = tx(&store, |t| t.apply(&key, cm("foo", "c", json!({})))).unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound { ref ns } if ns == "foo"));
    assert_eq!(err.to_string(), "namespaces \"foo\" not found");
    assert!(err.is_not_found());

    let committed = tx(&store, |t| {
        t.create(&ObjectKey::for_namespace("foo"), ns_obj("foo"))?;
        let out = t.apply(&key, cm("foo", "c", json!({})))?;
        // Reads inside the transaction see staged writes.
        assert!(t.get(&key)?.is_some());
        assert_eq!(t.list("", "ConfigMap", Some("foo"))?.items.len(), 1);
        Ok(out)
    })
    .unwrap();
    assert_eq!(committed.outcomes.len(), 2);
    assert_eq!(committed.resource_version, 2);
    assert!(store.get(&key).unwrap().is_some());
}

#[test]
fn deleting_a_namespace_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    create_ns(&store, "b");
    apply(&store, &cm_key("a", "c1"), cm("a", "c1", json!({})));
    apply(&store, &se_key("a", "s1"), se("a", "s1", "x.example"));
    apply(&store, &cm_key("b", "c2"), cm("b", "c2", json!({})));
    let committed = tx(&store, |t| {
        // A staged object in the namespace is deleted too.
        t.apply(&cm_key("a", "staged"), cm("a", "staged", json!({})))?;
        t.delete(&ObjectKey::for_namespace("a"))
    })
    .unwrap();
    let deleted: Vec<String> = committed
        .outcomes
        .iter()
        .filter(|o| o.action == Action::Deleted)
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(
        deleted,
        [
            "ConfigMap a/c1",
            "ConfigMap a/staged",
            "ServiceEntry.networking.istio.io a/s1",
            "Namespace a"
        ]
    );
    assert!(
        store
            .list("", "ConfigMap", Some("a"))
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .list("networking.istio.io", "ServiceEntry", None)
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.list("", "ConfigMap", None).unwrap().items.len(), 1);
    assert!(store.get(&ObjectKey::for_namespace("a")).unwrap().is_none());
    assert!(store.get(&ObjectKey::for_namespace("b")).unwrap().is_some());
}

#[test]
fn failing_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let snapshot = |store: &Store| {
        let mut files = Vec::new();
        for entry in walk(store.dir()) {
            files.push((entry.clone(), std::fs::read(&entry).unwrap()));
        }
        files
    };
    let before = snapshot(&store);
    let err = tx(&store, |t| {
        t.apply(&cm_key("a", "one"), cm("a", "one", json!({})))?;
        t.delete(&ObjectKey::for_namespace("a"))?;
        t.apply(&cm_key("a", "two"), cm("a", "two", json!({})))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound { .. }));

    #[derive(Debug)]
    struct MyError;
    impl From<StoreError> for MyError {
        fn from(_: StoreError) -> Self {
            MyError
        }
    }
    let result: Result<_, MyError> = store.transact(|t| {
        t.apply(&cm_key("a", "three"), cm("a", "three", json!({})))?;
        Err::<(), _>(MyError)
    });
    assert!(result.is_err());
    assert_eq!(snapshot(&store), before);
    assert_eq!(store.resource_version().unwrap(), 1);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn invalid_keys_and_objects_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    for name in ["", ".", "..", "../x", "a/b", "nul\0"] {
        let err = tx(&store, |t| {
            t.apply(&cm_key("a", name), cm("a", name, json!({})))
        })
        .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { field: "name", .. }),
            "{name:?}"
        );
        assert!(store.get(&cm_key("a", name)).is_err());
    }
    let err = tx(&store, |t| {
        t.apply(&cm_key("..", "x"), cm("..", "x", json!({})))
    })
    .unwrap_err();
    assert!(matches!(
        err,
        StoreError::InvalidKey {
            field: "namespace",
            ..
        }
    ));
    let err = store.list("", "../etc", None).unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { field: "kind", .. }));
    // Object that does not match its key.
    let err = tx(&store, |t| {
        t.apply(&cm_key("a", "x"), cm("a", "y", json!({})))
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::InvalidObject { .. }), "{err}");
    let err = tx(&store, |t| t.apply(&cm_key("a", "x"), se("a", "x", "h"))).unwrap_err();
    assert!(matches!(err, StoreError::InvalidObject { .. }), "{err}");
    let err = tx(&store, |t| t.apply(&cm_key("a", "x"), json!([1]))).unwrap_err();
    assert!(matches!(err, StoreError::InvalidObject { .. }), "{err}");
    // Missing kind/name/namespace are filled in; a cluster-scoped namespace is dropped.
    let out = apply(
        &store,
        &cm_key("a", "x"),
        json!({"apiVersion": "v1", "data": {}}),
    );
    assert_eq!(out.object["kind"], "ConfigMap");
    assert_eq!(meta(&out.object, "name"), "x");
    assert_eq!(meta(&out.object, "namespace"), "a");
    let mut ns = ns_obj("b");
    ns["metadata"]["namespace"] = json!("a");
    let out = apply(&store, &ObjectKey::for_namespace("b"), ns);
    assert!(out.object["metadata"].get("namespace").is_none());
}

#[test]
fn corrupt_files_are_reported_and_others_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    create_ns(&store, "b");
    for (ns, name) in [
        ("a", "one"),
        ("a", "two"),
        ("b", "three"),
        ("b", "mismatch"),
    ] {
        apply(&store, &cm_key(ns, name), cm(ns, name, json!({"n": name})));
    }
    let bad = store.dir().join("objects/core/ConfigMap/a/two.json");
    std::fs::write(&bad, "{\n  \"apiVersion\": \"v1\",\n  oops\n}\n").unwrap();
    let mismatch = store.dir().join("objects/core/ConfigMap/b/mismatch.json");
    std::fs::write(&mismatch, cm("b", "other", json!({})).to_string()).unwrap();

    let listed = store.list("", "ConfigMap", None).unwrap();
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|o| meta(o, "name").as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "three"]);
    assert_eq!(listed.corrupt.len(), 2);
    let c = &listed.corrupt[0];
    assert_eq!(c.path, bad);
    assert_eq!(c.key, cm_key("a", "two"));
    assert_eq!((c.line, c.column), (Some(3), Some(3)));
    assert_eq!(listed.corrupt[1].path, mismatch);
    assert!(listed.corrupt[1].message.contains("metadata.name"));

    let err = store.get(&cm_key("a", "two")).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { ref path, line: Some(3), .. } if *path == bad));
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3:3: ", bad.display())),
        "{err}"
    );
    // A corrupt object can still be deleted.
    let out = tx(&store, |t| t.delete(&cm_key("a", "two"))).unwrap().value;
    assert_eq!(out.action, Action::Deleted);
    assert!(!bad.exists());
    // Namespace deletion copes with corrupt members too.
    tx(&store, |t| t.delete(&ObjectKey::for_namespace("b"))).unwrap();
    assert!(!mismatch.exists());
}

#[test]
fn list_sorts_and_reports_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for ns in ["zeta", "alpha", "0digits"] {
        create_ns(&store, ns);
        for name in ["b", "a"] {
            apply(&store, &cm_key(ns, name), cm(ns, name, json!({})));
        }
    }
    apply(&store, &se_key("alpha", "s"), se("alpha", "s", "h"));
    let listed = store.list("", "ConfigMap", None).unwrap();
    let got: Vec<String> = listed
        .items
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                meta(o, "namespace").as_str().unwrap(),
                meta(o, "name").as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "0digits/a",
            "0digits/b",
            "alpha/a",
            "alpha/b",
            "zeta/a",
            "zeta/b"
        ]
    );
    assert_eq!(listed.resource_version, 10);
    let namespaces = store.list("", "Namespace", None).unwrap();
    assert_eq!(namespaces.items.len(), 3);
    let kinds: Vec<String> = store
        .kinds()
        .unwrap()
        .into_iter()
        .map(|gk| format!("{}/{}", gk.group, gk.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            "/ConfigMap",
            "/Namespace",
            "networking.istio.io/ServiceEntry"
        ]
    );
}

#[test]
fn nested_transaction_is_an_error_not_a_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    create_ns(&store, "a");
    let other = Store::open(dir.path()).unwrap();
    let result = tx(&store, |t| {
        t.apply(&cm_key("a", "x"), cm("a", "x", json!({})))?;
        // Reads through another handle on this thread see committed state.
        assert!(other.get(&cm_key("a", "x"))?.is_none());
        assert_eq!(other.list("", "Namespace", None)?.items.len(), 1);
        tx(&other, |_| Ok(()))
    });
    assert!(matches!(result, Err(StoreError::NestedTransaction { .. })));
}
