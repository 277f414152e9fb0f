//! kubectl's client-side apply: a three-way merge of the live object, the last applied
//! configuration (kept in an annotation) and the new one.

use serde_json::{Map, Value};

/// The annotation kubectl keeps the last applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The object to store when `new` is applied over `live`: fields the new configuration sets
/// win, fields the last applied configuration set and the new one dropped are removed, and
/// everything else (status, labels added by `egress label`, server fields) is kept. Lists are
/// replaced whole. The result carries the new last-applied annotation.
pub fn apply_merge(live: Option<&Value>, new: &Value) -> Value {
    let mut applied = new.clone();
    strip_last_applied(&mut applied);
    let mut out = match live {
        None => applied.clone(),
        Some(live) => {
            let last = live["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            merge(live, last.as_ref(), &applied)
        }
    };
    let text = serde_json::to_string(&applied).unwrap_or_default();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = ann.as_object_mut() {
            a.insert(LAST_APPLIED.to_owned(), Value::String(text));
        }
    }
    out
}

fn strip_last_applied(v: &mut Value) {
    if let Some(a) = v
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
    }
}

fn merge(live: &Value, last: Option<&Value>, new: &Value) -> Value {
    match (live, new) {
        (Value::Object(l), Value::Object(n)) => {
            let mut out = l.clone();
            for (k, nv) in n {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, last.and_then(|x| x.get(k)), nv),
                    None => nv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            if let Some(Value::Object(prev)) = last {
                for k in prev.keys() {
                    if !n.contains_key(k) {
                        out.remove(k);
                    }
                }
            }
            out.into_iter().collect::<Map<String, Value>>().into()
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_foreign_labels_and_drops_removed_fields() {
        let first = json!({"kind": "Namespace", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"p": 1, "q": 2}});
        let mut live = apply_merge(None, &first);
        live["metadata"]["labels"]["istio.io/rev"] = json!("asm-1-24");
        live["status"] = json!({"phase": "Active"});
        let second = json!({"kind": "Namespace", "metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"p": 1}});
        let out = apply_merge(Some(&live), &second);
        assert_eq!(
            out["metadata"]["labels"],
            json!({"x": "2", "istio.io/rev": "asm-1-24"})
        );
        assert_eq!(out["spec"], json!({"p": 1}));
        assert_eq!(out["status"], json!({"phase": "Active"}));
        let last: Value = serde_json::from_str(
            out["metadata"]["annotations"][LAST_APPLIED]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(last, second);
    }
}
