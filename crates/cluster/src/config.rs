//! The configuration a gateway reads from the store: every object of the kinds it uses,
//! decoded and validated. [`read_store`] reads each object on its own (for
//! [`crate::lastgood::LastGood`], where a bad object keeps its last good version and never
//! blocks the others), which [`load_store_last_good`] merges.

use egress_model::decode::to_resource;
use egress_model::kinds::KindInfo;
use egress_model::{Resource, kinds};
use egress_store::Store;

use crate::lastgood::{ObjectId, Read, Reading};
use serde_json::Value;

/// Kinds a gateway or sidecar reads: the compiler's own list, never a copy.
const WATCHED: &[(&str, &str)] = egress_compile::INPUT_KINDS;

/// Decodes one object of kind `info` strictly and validates it: the typed resource, or every
/// problem as `<Kind> <namespace>/<name>: <field>: <message>`. The store and the Kubernetes
/// source both read their objects through this, so both refuse the same configurations.
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

/// One reading of the store, object by object: every watched object with its id and whether
/// it could be read and validated, and the resourceVersion it reflects. `Err` when the store
/// itself could not be listed (its `meta.json` or journal unreadable).
pub fn read_store(store: &Store) -> Result<(Vec<Reading>, u64), String> {
    let mut out = Vec::new();
    let mut rv = 0;
    for (group, kind) in WATCHED {
        let Some(info) = kinds::for_kind(group, kind) else {
            continue;
        };
        let listed = store.list(group, kind, None).map_err(|e| e.to_string())?;
        rv = rv.max(listed.resource_version);
        for c in &listed.corrupt {
            let id = ObjectId::new(&c.key.kind, c.key.namespace.as_deref(), &c.key.name);
            let problem = match c.line {
                Some(line) => format!("{}:{line}: {}", c.path.display(), c.message),
                None => format!("{}: {}", c.path.display(), c.message),
            };
            out.push((id, None, Read::Bad(vec![problem])));
        }
        for v in &listed.items {
            let meta = v.get("metadata");
            let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
            let id = ObjectId::new(info.kind, field("namespace"), field("name").unwrap_or(""));
            let read = match decode_object(info, v) {
                Ok(r) => Read::Good(r),
                Err(problems) => Read::Bad(problems),
            };
            out.push((id, None, read));
        }
    }
    Ok((out, rv))
}

/// [`read_store`] merged into `last_good`: the objects in effect (bad ones at their last good
/// version) with every problem, and the resourceVersion: what `egress up` and a store-fed
/// `egress gateway run` serve.
pub fn load_store_last_good(
    store: &Store,
    last_good: &mut crate::lastgood::LastGood,
) -> Result<(crate::lastgood::Merged, u64), String> {
    let (reads, rv) = read_store(store)?;
    Ok((last_good.merge(reads, &Default::default()), rv))
}

/// Records a Warning Event for each object held at its last good version or refused
/// (`LastGoodConfigurationKept` / `ConfigurationRefused`, the problem as the message), once per
/// (object, problem): an event already in the store is not written again. Objects whose
/// namespace is gone get no event. Returns how many events were created.
pub fn record_problem_events(
    store: &Store,
    problems: &[crate::lastgood::Problem],
    now: &str,
) -> Result<usize, egress_store::StoreError> {
    use egress_store::ObjectKey;
    let mut events: Vec<(ObjectKey, Value)> = Vec::new();
    for p in problems {
        let reason = match p.held {
            crate::lastgood::Held::LastGood => "LastGoodConfigurationKept",
            crate::lastgood::Held::Refused => "ConfigurationRefused",
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
