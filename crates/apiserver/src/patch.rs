//! PATCH bodies: JSON merge patch (RFC 7386, `application/merge-patch+json`, what kubectl
//! sends for custom resources) and strategic merge patch
//! (`application/strategic-merge-patch+json`, for built-in kinds): a merge patch in which the
//! lists the built-in types declare with a patch merge key are merged element by element by
//! that key (containers by `name`, container ports by `containerPort`, Service ports by
//! `port`, ...), `$patch: delete` removes an element, `$retainKeys` and
//! `$deleteFromPrimitiveList/<field>` are honoured, and other lists are replaced.

use serde_json::{Map, Value};

/// RFC 7386: `patch` applied to `target`.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The patch merge key of the list at `field` (the last path segment), as the built-in types
/// declare it (`patchMergeKey` struct tags of k8s.io/api).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "readinessGates" => "conditionType",
        "hostAliases" => "ip",
        "ports" => "port",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Container ports merge by `containerPort`, Service ports by `port`.
fn port_key(list: &[Value]) -> &'static str {
    if list.iter().any(|p| p.get("containerPort").is_some()) {
        "containerPort"
    } else {
        "port"
    }
}

/// Strategic merge patch: `patch` applied to `target`.
pub fn strategic(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "");
}

fn strategic_at(target: &mut Value, patch: &Value, field: &str) {
    match (patch, &mut *target) {
        (Value::Object(p), Value::Object(_)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replaced = p.clone();
                replaced.remove("$patch");
                *target = Value::Object(replaced);
                return;
            }
            let retain: Option<Vec<String>> = p.get("$retainKeys").and_then(|r| {
                r.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
            });
            let Value::Object(t) = target else { return };
            if let Some(keep) = retain {
                t.retain(|k, _| keep.contains(k));
            }
            for (k, v) in p {
                if k == "$retainKeys" || k.starts_with("$setElementOrder/") {
                    continue;
                }
                if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let (Some(Value::Array(items)), Value::Array(gone)) = (t.get_mut(list), v) {
                        items.retain(|i| !gone.contains(i));
                    }
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(existing) => strategic_at(existing, v, k),
                    None => {
                        let mut fresh = Value::Null;
                        strategic_at(&mut fresh, v, k);
                        t.insert(k.clone(), fresh);
                    }
                }
            }
        }
        (Value::Array(p), Value::Array(t)) => match merge_key(field) {
            Some(key) => {
                let key = if key == "port" {
                    port_key(if p.is_empty() { t } else { p })
                } else {
                    key
                };
                merge_list(t, p, key);
            }
            None => *target = Value::Array(p.clone()),
        },
        (_, _) => {
            *target = strip_directives(patch);
        }
    }
}

/// Merges `patch` into `target` element by element, matching on `key`.
fn merge_list(target: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key);
        let pos = id.and_then(|id| target.iter().position(|t| t.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_at(&mut target[i], item, ""),
            (None, false) => target.push(strip_directives(item)),
        }
    }
}

/// A patch value with its `$`-directives removed (for values inserted as they are).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_is_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_keyed_lists_and_replaces_others() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "curl", "image": "curl:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "istio-proxy", "image": "proxy:1"}
        ]}}, "args": ["a", "b"]}});
        strategic(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "curl", "image": "curl:2", "ports": [{"containerPort": 8080}]},
                {"name": "istio-proxy", "$patch": "delete"}
            ]}}, "args": ["c"]}}),
        );
        let containers = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 1);
        assert_eq!(containers[0]["image"], "curl:2");
        assert_eq!(containers[0]["ports"].as_array().unwrap().len(), 2);
        assert_eq!(d["spec"]["args"], json!(["c"]));
    }

    #[test]
    fn service_ports_merge_by_port_and_directives_apply() {
        let mut s = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]},
            "spec": {"ports": [{"port": 80, "name": "http"}]}});
        strategic(
            &mut s,
            &json!({"metadata": {"labels": {"b": "2"}, "$deleteFromPrimitiveList/finalizers": ["x"]},
                "spec": {"ports": [{"port": 443, "name": "https"}]}}),
        );
        assert_eq!(s["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(s["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(s["spec"]["ports"].as_array().unwrap().len(), 2);
    }
}
