//! Field ownership (`metadata.managedFields`) and server-side apply's conflicts.
//!
//! Every write records who set which fields: an update (POST, PUT, a merge or strategic
//! patch) gives the fields it changed to its manager (operation `Update`, the
//! `fieldManager` parameter, else the client's program name from its User-Agent, as the API
//! server does); an apply (`application/apply-patch+yaml`) makes its manager (operation
//! `Apply`) own exactly the fields of its configuration. Applying a field another manager
//! owns, with a different value, is a conflict (409, `Apply failed with 1 conflict: conflict
//! with "kubectl-client-side-apply" using v1: .spec.selector`, each field as a
//! `FieldManagerConflict` cause) unless `force=true`, which takes the field over; the same
//! value is shared. A field the applier owned alone and leaves out of its next configuration
//! is removed from the object.
//!
//! Simplification (stated, not hidden): lists are owned whole (as CRDs' atomic lists are);
//! the API server tracks the items of keyed lists of built-in kinds (containers by name)
//! separately. Ownership is recorded in the API server's `FieldsV1` format either way.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// A field's path (object keys from the root).
type FieldPath = Vec<String>;

/// The manager of a request: `fieldManager`, else the User-Agent's program name.
pub fn manager_name(field_manager: Option<&str>, user_agent: &str) -> String {
    match field_manager.filter(|m| !m.is_empty()) {
        Some(m) => m.to_owned(),
        None => {
            let program = user_agent.split('/').next().unwrap_or_default();
            if program.is_empty() {
                "unknown".to_owned()
            } else {
                program.to_owned()
            }
        }
    }
}

/// Fields ownership does not track (identity, bookkeeping, and status).
fn tracked(path: &[String]) -> bool {
    match path.first().map(String::as_str) {
        Some("apiVersion" | "kind" | "status") | None => false,
        Some("metadata") => !matches!(
            path.get(1).map(String::as_str),
            Some(
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "deletionTimestamp"
                    | "deletionGracePeriodSeconds"
                    | "managedFields"
                    | "selfLink"
            ) | None
        ),
        Some(_) => true,
    }
}

/// The leaf fields `v` sets (scalars, lists and empty objects are leaves).
fn leaves(v: &Value) -> BTreeMap<FieldPath, &Value> {
    fn walk<'a>(v: &'a Value, path: &mut FieldPath, out: &mut BTreeMap<FieldPath, &'a Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    if tracked(path) {
                        walk(child, path, out);
                    }
                    path.pop();
                }
            }
            _ if path.is_empty() => {}
            _ => {
                out.insert(path.clone(), v);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// `.spec.http`, as the API server prints a field path.
fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: BTreeSet<FieldPath>,
}

fn decode_fields(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        return;
    }
    for (k, child) in children {
        path.push(k[2..].to_owned());
        decode_fields(child, path, out);
        path.pop();
    }
}

fn encode_fields(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for k in path {
            let slot = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(next) = slot else { break };
            cur = next;
        }
    }
    Value::Object(root)
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                decode_fields(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: s("manager").to_owned(),
                apply: s("operation") == "Apply",
                api_version: s("apiVersion").to_owned(),
                time: s("time").to_owned(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                fields,
            }
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: &[Entry]) {
    let encoded: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": if e.apply { "Apply" } else { "Update" },
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if encoded.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(encoded);
    }
}

/// Who writes, and when.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The manager's name.
    pub manager: &'a str,
    /// The apiVersion it wrote with.
    pub api_version: &'a str,
    /// The subresource written (`status`), if any.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time of the write.
    pub now: &'a str,
}

fn entry_for<'e>(list: &'e mut Vec<Entry>, w: &Writer<'_>, apply: bool) -> &'e mut Entry {
    let found = list.iter().position(|e| {
        e.manager == w.manager && e.apply == apply && e.subresource.as_deref() == w.subresource
    });
    let i = match found {
        Some(i) => i,
        None => {
            list.push(Entry {
                manager: w.manager.to_owned(),
                apply,
                api_version: w.api_version.to_owned(),
                time: w.now.to_owned(),
                subresource: w.subresource.map(str::to_owned),
                fields: BTreeSet::new(),
            });
            list.len() - 1
        }
    };
    let e = &mut list[i];
    e.api_version = w.api_version.to_owned();
    e.time = w.now.to_owned();
    e
}

/// An update from `old` (none: a create) to `new`: the writer owns what it changed, nobody
/// owns what is gone. Managed fields a client sent are replaced by the recorded ones.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut list = entries(old);
    let before = old.map(leaves).unwrap_or_default();
    let after = leaves(new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    for e in &mut list {
        e.fields
            .retain(|p| !changed.contains(p) && present(&after, p));
    }
    if !changed.is_empty() {
        entry_for(&mut list, w, false).fields.extend(changed);
    }
    store_entries(new, &list);
}

/// True when the object still sets `p` (or something under it).
fn present(after: &BTreeMap<FieldPath, &Value>, p: &FieldPath) -> bool {
    after
        .range(p.clone()..)
        .next()
        .is_some_and(|(q, _)| q.starts_with(p))
}

/// How an entry is named in a conflict (`"kubectl"`, `"kubectl-edit" using v1`).
fn print_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if !e.apply {
        s.push_str(&format!(" using {}", e.api_version));
    }
    s
}

/// Server-side apply of `config` by `w` over `live` (none: it creates the object). Returns
/// the object to store.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let mut list = entries(live);
    let wanted = leaves(config);
    let empty = Value::Null;
    let current = live.unwrap_or(&empty);
    // Conflicts: a field another manager owns, applied with a different value.
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if e.apply && e.manager == w.manager && e.subresource.is_none() {
            continue;
        }
        for p in &e.fields {
            let overlaps = wanted
                .keys()
                .filter(|q| q.starts_with(p) || p.starts_with(q))
                .any(|q| at(current, q) != wanted.get(q).copied());
            if overlaps {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&list, &conflicts));
    }
    // Forced: the fields change hands. Same values: shared.
    for (i, p) in &conflicts {
        list[*i].fields.remove(p);
    }
    let mut object = current.clone();
    if !object.is_object() {
        object = json!({});
    }
    crate::patch::merge(&mut object, config);
    // Fields this manager applied before, left out now, and owned by nobody else: removed.
    let previous: BTreeSet<FieldPath> = list
        .iter()
        .find(|e| e.apply && e.manager == w.manager && e.subresource.is_none())
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous {
        let kept = wanted.keys().any(|q| q.starts_with(&p) || p.starts_with(q));
        let others = list.iter().any(|e| {
            !(e.apply && e.manager == w.manager && e.subresource.is_none()) && e.fields.contains(&p)
        });
        if !kept && !others {
            remove(&mut object, &p);
        }
    }
    let mine = entry_for(&mut list, w, true);
    mine.fields = wanted.keys().cloned().collect();
    store_entries(&mut object, &list);
    Ok(object)
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn conflict_error(list: &[Entry], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let causes: Vec<(String, String)> = conflicts
        .iter()
        .map(|(i, p)| {
            (
                format!("conflict with {}", print_manager(&list[*i])),
                dotted(p),
            )
        })
        .collect();
    let message = if let [(i, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(&list[*i]),
            dotted(p)
        )
    } else {
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, p) in conflicts {
            by.entry(print_manager(&list[*i]))
                .or_default()
                .push(dotted(p));
        }
        let lines: Vec<String> = by
            .iter()
            .flat_map(|(m, paths)| {
                std::iter::once(format!("conflicts with {m}:"))
                    .chain(paths.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::FieldConflicts { message, causes }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "networking.istio.io/v1",
            subresource: None,
            now: "2026-12-06T00:00:00Z",
        }
    }

    #[test]
    fn updates_own_what_they_change_and_apply_conflicts_name_the_owner() {
        let mut obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"hosts": ["a"], "port": 80}});
        record_update(None, &mut obj, &w("kubectl-create"));
        let e = entries(Some(&obj));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].fields
                .contains(&vec!["spec".to_owned(), "port".to_owned()])
        );
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:hosts"],
            json!({})
        );
        // Same value: shared, no conflict.
        let same = json!({"spec": {"port": 80}});
        let applied = apply(Some(&obj), &same, &w("ci"), false).unwrap();
        // A different value: the owner's name and apiVersion.
        let err = apply(
            Some(&applied),
            &json!({"spec": {"port": 81}}),
            &w("other"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"ci\":\n- .spec.port\nconflicts with \"kubectl-create\" using networking.istio.io/v1:\n- .spec.port"
        );
        // Forced: taken over.
        let forced = apply(
            Some(&applied),
            &json!({"spec": {"port": 81}}),
            &w("other"),
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["port"], 81);
        let owners: Vec<String> = entries(Some(&forced))
            .into_iter()
            .filter(|e| {
                e.fields
                    .contains(&vec!["spec".to_owned(), "port".to_owned()])
            })
            .map(|e| e.manager)
            .collect();
        assert_eq!(owners, ["other"]);
    }

    #[test]
    fn a_field_the_applier_drops_is_removed_unless_another_owns_it() {
        let first = apply(
            None,
            &json!({"metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}}),
            &w("me"),
            false,
        )
        .unwrap();
        let second = apply(
            Some(&first),
            &json!({"metadata": {"name": "a"}, "spec": {"a": 1}}),
            &w("me"),
            false,
        )
        .unwrap();
        assert_eq!(second["spec"], json!({"a": 1}));
        assert_eq!(
            manager_name(None, "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"),
            "kubectl"
        );
        assert_eq!(manager_name(Some("helm"), "x"), "helm");
    }
}
