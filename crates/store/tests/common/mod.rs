//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::path::Path;

use egress_store::{Committed, ObjectKey, Store, StoreError, Transaction, WriteOutcome};
use serde_json::{Value, json};

pub fn cm_key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("", "ConfigMap", Some(ns), name)
}

pub fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    })
}

pub fn se_key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("networking.istio.io", "ServiceEntry", Some(ns), name)
}

pub fn se(ns: &str, name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hosts": [host], "resolution": "DNS"},
    })
}

pub fn ns_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

/// Runs a transaction whose closure only uses store errors.
pub fn tx<T>(
    store: &Store,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
) -> Result<Committed<T>, StoreError> {
    store.transact(f)
}

pub fn create_ns(store: &Store, name: &str) -> WriteOutcome {
    tx(store, |t| {
        t.create(&ObjectKey::for_namespace(name), ns_obj(name))
    })
    .unwrap()
    .value
}

pub fn apply(store: &Store, key: &ObjectKey, obj: Value) -> WriteOutcome {
    tx(store, |t| t.apply(key, obj)).unwrap().value
}

pub fn meta<'a>(obj: &'a Value, field: &str) -> &'a Value {
    &obj["metadata"][field]
}

pub fn rv(obj: &Value) -> u64 {
    meta(obj, "resourceVersion")
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
