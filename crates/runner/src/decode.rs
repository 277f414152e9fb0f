//! Reading objects into typed, validated resources, one object at a time, for every source:
//! [`decode_object`] is the one rule (strict decode, then Istio's validation), and
//! [`DecodeCache`] makes every source incremental: an object whose content did not change
//! since the last reading is not decoded or validated again. [`read_store`] reads the cluster
//! store's watched kinds through both.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;

use egress_model::decode::to_resource;
use egress_model::kinds::KindInfo;
use egress_model::{Resource, kinds};
use egress_store::Store;
use serde_json::Value;

use crate::lastgood::{LastGood, Merged, ObjectId, Read, Reading};

/// Kinds a gateway or sidecar reads: the compiler's own list, never a copy.
pub const WATCHED: &[(&str, &str)] = egress_compile::INPUT_KINDS;

/// Decodes one object of kind `info` strictly and validates it: the typed resource, or every
/// problem as `<Kind> <namespace>/<name>: <field>: <message>`. Every source reads its objects
/// through this, so all of them refuse the same configurations.
pub fn decode_object(info: &KindInfo, v: &Value) -> Result<Resource, Vec<String>> {
    let obj = || egress_model::decode::object_ref(v);
    match to_resource(info, v) {
        Ok((r, unknown)) if unknown.is_empty() => {
            let report = egress_model::validate::validate(&r);
            if report.has_errors() {
                let obj = obj();
                Err(report
                    .errors()
                    .map(|f| format!("{obj}: {}: {}", f.field, f.message))
                    .collect())
            } else {
                Ok(r)
            }
        }
        Ok((_, unknown)) | Err(unknown) => {
            let obj = obj();
            Err(unknown
                .iter()
                .map(|f| format!("{obj}: {}", f.message))
                .collect())
        }
    }
}

/// What a source read last time, by object: the hash of its content and what it decoded to.
/// A reading looks every object up here first; only new or changed ones are decoded.
#[derive(Debug, Default)]
pub struct DecodeCache {
    objects: BTreeMap<ObjectId, (u64, Read)>,
    /// Objects decoded (not found unchanged) since the cache was made.
    decoded: u64,
}

impl DecodeCache {
    /// An empty cache.
    pub fn new() -> DecodeCache {
        DecodeCache::default()
    }

    /// How many objects were decoded and validated since the cache was made (objects read
    /// again unchanged are not counted): the measure of incrementality.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// The reading of object `id` (kind `info`, raw `v`): from the cache when its content is
    /// unchanged, else decoded now and remembered.
    pub fn read(&mut self, id: &ObjectId, info: &KindInfo, v: &Value) -> Read {
        let hash = content_hash(v);
        if let Some((h, read)) = self.objects.get(id)
            && *h == hash
        {
            return read.clone();
        }
        self.decoded += 1;
        let read = match decode_object(info, v) {
            Ok(r) => Read::Good(r),
            Err(problems) => Read::Bad(problems),
        };
        self.objects.insert(id.clone(), (hash, read.clone()));
        read
    }

    /// Forgets every object not in `seen` (deleted since).
    pub fn retain(&mut self, seen: &BTreeSet<ObjectId>) {
        self.objects.retain(|id, _| seen.contains(id));
    }
}

/// A hash of a JSON value's serialized form, computed without building the text.
fn content_hash(v: &Value) -> u64 {
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(std::collections::hash_map::DefaultHasher::new());
    // Writing to a hasher cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut w, v);
    w.0.finish()
}

/// The id of a raw object of kind `info`.
pub fn object_id(info: &KindInfo, v: &Value) -> ObjectId {
    let meta = v.get("metadata");
    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
    ObjectId::new(info.kind, field("namespace"), field("name").unwrap_or(""))
}

/// Why the store could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("reading the store: {0}")]
pub struct StoreUnreadable(#[from] pub egress_store::StoreError);

/// One reading of the store, object by object: every watched object with its id and whether
/// it could be read and validated (through `cache`), and a resourceVersion it reflects at
/// least (the store's before the first list). An object whose file cannot be read is
/// [`Read::Damaged`] when the journal still holds a valid committed version of it.
/// `Err` when the store itself could not be listed (its `meta.json` or journal unreadable).
pub fn read_store(
    store: &Store,
    cache: &mut DecodeCache,
) -> Result<(Vec<Reading>, u64), StoreUnreadable> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    // The kinds are listed one after another: the reading reflects at least the store as it
    // was before the first list (a write landing between two lists has a later
    // resourceVersion, so the caller's watch from `rv` sees it).
    let rv = store.resource_version()?;
    for (group, kind) in WATCHED {
        let Some(info) = kinds::for_kind(group, kind) else {
            continue;
        };
        // Damaged files come back as last committed (from the journal) where it holds them;
        // that version stays in effect, with the damage reported.
        let listed = store.list_committed(group, kind, None)?;
        let mut damaged = BTreeMap::new();
        for c in &listed.corrupt {
            let id = ObjectId::new(&c.key.kind, c.key.namespace.as_deref(), &c.key.name);
            let problem = match c.line {
                Some(line) => format!("{}:{line}: {}", c.path.display(), c.message),
                None => format!("{}: {}", c.path.display(), c.message),
            };
            if c.recovered {
                damaged.insert(id, problem);
            } else {
                out.push((id, None, Read::Bad(vec![problem])));
            }
        }
        for v in &listed.items {
            let id = object_id(info, v);
            let read = match (cache.read(&id, info, v), damaged.remove(&id)) {
                (read, None) => read,
                (Read::Good(committed), Some(problem)) => Read::Damaged {
                    problems: vec![problem],
                    committed,
                },
                (_, Some(problem)) => Read::Bad(vec![problem]),
            };
            seen.insert(id.clone());
            out.push((id, None, read));
        }
    }
    cache.retain(&seen);
    Ok((out, rv))
}

/// [`read_store`] merged into `last_good`: the objects in effect (bad ones at their last good
/// version) with every problem, and the resourceVersion.
pub fn load_store_last_good(
    store: &Store,
    cache: &mut DecodeCache,
    last_good: &mut LastGood,
) -> Result<(Merged, u64), StoreUnreadable> {
    let (reads, rv) = read_store(store, cache)?;
    Ok((last_good.merge(reads, &BTreeSet::new()), rv))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn se(host: &str) -> Value {
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "se", "namespace": "default"},
            "spec": {"hosts": [host], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                     "resolution": "DNS"},
        })
    }

    #[test]
    fn an_unchanged_object_is_not_decoded_again_and_a_changed_one_is() {
        let info = kinds::for_kind("networking.istio.io", "ServiceEntry").unwrap();
        let mut cache = DecodeCache::new();
        let v = se("a.example.com");
        let id = object_id(info, &v);
        assert!(matches!(cache.read(&id, info, &v), Read::Good(_)));
        assert!(matches!(cache.read(&id, info, &v), Read::Good(_)));
        assert_eq!(cache.decoded(), 1);
        let bad = se("-bad-");
        assert!(matches!(cache.read(&id, info, &bad), Read::Bad(_)));
        assert_eq!(cache.decoded(), 2);
        cache.retain(&BTreeSet::new());
        assert!(matches!(cache.read(&id, info, &bad), Read::Bad(_)));
        assert_eq!(cache.decoded(), 3, "a forgotten object is decoded again");
    }

    /// A store object whose file was cut short by hand reads as damaged with its committed
    /// version from the journal, so a reader that never saw it good still has it in effect.
    #[test]
    fn a_damaged_store_file_is_read_at_its_committed_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = egress_store::ObjectKey::new(
            "networking.istio.io",
            "ServiceEntry",
            Some("default"),
            "se",
        );
        store
            .transact(|tx| {
                tx.apply(
                    &egress_store::ObjectKey::for_namespace("default"),
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "default"}}),
                )?;
                tx.apply(&key, se("a.example.com")).map(|_| ())
            })
            .unwrap();
        let file = dir
            .path()
            .join("objects/networking.istio.io/ServiceEntry/default/se.json");
        let body = std::fs::read(&file).unwrap();
        std::fs::write(&file, &body[..body.len() / 3]).unwrap();

        let (reads, _) = read_store(&store, &mut DecodeCache::new()).unwrap();
        let damaged: Vec<_> = reads.iter().filter(|(id, _, _)| id.name == "se").collect();
        assert_eq!(damaged.len(), 1);
        assert!(
            matches!(&damaged[0].2, Read::Damaged { problems, .. } if problems[0].contains("se.json")),
            "{:?}",
            damaged[0].2
        );
        let (merged, _) =
            load_store_last_good(&store, &mut DecodeCache::new(), &mut LastGood::new()).unwrap();
        assert_eq!(merged.resources.len(), 1);
        assert_eq!(merged.problems.len(), 1);
        assert_eq!(merged.problems[0].held, crate::lastgood::Held::LastGood);
    }
}
