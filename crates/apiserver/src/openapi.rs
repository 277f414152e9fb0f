//! OpenAPI v3 discovery: `/openapi/v3` lists a document per group version, and each document
//! declares the resource paths of its kinds with their operations and query parameters
//! (`x-kubernetes-group-version-kind` on each operation), and the schemas of its kinds under
//! `components.schemas`. kubectl reads the paths to learn that PATCH and POST take
//! `fieldValidation` (and then leaves validation to the server, its default `--validate=strict`),
//! and the schemas for `kubectl explain`.
//!
//! Schemas come from [`egress_model::schema`]: Kubernetes kinds as `k8s-openapi` describes them
//! (`io.k8s.api.apps.v1.Deployment`), Istio and AKS kinds derived from the model's types, named
//! after the reversed group and the version (`io.istio.networking.v1.ServiceEntry`). Each kind's
//! schema carries `x-kubernetes-group-version-kind`; references point into `components.schemas`,
//! with a field's own description beside an `allOf` reference, as the API server writes them.

use std::collections::BTreeMap;

use egress_model::KindInfo;
use egress_model::kinds::KINDS;
use egress_model::schema::{object_schema, schemars::generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// `api/v1`, `apis/apps/v1`, ... with their kinds.
fn group_versions() -> BTreeMap<String, Vec<(&'static KindInfo, &'static str)>> {
    let mut out: BTreeMap<String, Vec<(&KindInfo, &str)>> = BTreeMap::new();
    for k in KINDS {
        for v in k.versions {
            let gv = if k.group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{}/{v}", k.group)
            };
            out.entry(gv).or_default().push((k, v));
        }
    }
    out
}

/// `/openapi/v3`.
pub fn root() -> Value {
    let paths: Map<String, Value> = group_versions()
        .keys()
        .map(|gv| {
            (
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", env!("CARGO_PKG_VERSION"))}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/{gv}`, if served.
pub fn document(gv: &str) -> Option<Value> {
    let gvs = group_versions();
    let kinds = gvs.get(gv)?;
    let mut paths = Map::new();
    for (k, v) in kinds {
        let gvk = json!({"group": k.group, "version": v, "kind": k.kind});
        let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
        let write = json!({
            "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation")],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        });
        let collection = if k.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("/{gv}/{}", k.plural)
        };
        let mut post = write.clone();
        post["x-kubernetes-action"] = Value::from("post");
        let mut put = write.clone();
        put["x-kubernetes-action"] = Value::from("put");
        let read = json!({
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "get",
            "x-kubernetes-group-version-kind": gvk,
        });
        paths.insert(collection.clone(), json!({"post": post, "get": read}));
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({"get": read, "put": put, "patch": write, "delete": read}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas(kinds)},
    }))
}

/// Where a `$ref` points: `#/components/schemas/{name}`.
const REF_PREFIX: &str = "#/components/schemas/";

/// The schemas of one group version's kinds and everything they reference, by name.
fn schemas(kinds: &[(&KindInfo, &str)]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    // (schema name before renaming, kind, version)
    let mut roots = Vec::new();
    for (k, v) in kinds {
        let Some(schema) = object_schema(&mut generator, k, v) else {
            continue;
        };
        let name = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r.strip_prefix(REF_PREFIX).unwrap_or(r).to_owned(),
            None => {
                generator
                    .definitions_mut()
                    .insert(k.kind.to_owned(), schema.to_value());
                k.kind.to_owned()
            }
        };
        roots.push((name, *k, *v));
    }
    let mut definitions = generator.take_definitions(true);
    // The model's own types get the reversed group and the version in front of their names, as
    // the API server names a CRD's schema; Kubernetes types already carry theirs. Their string
    // enums are written out where used, as a CRD's schema has them.
    let prefix = kinds
        .first()
        .map(|(k, v)| format!("{}.{v}.", reversed_group(k.group)))
        .unwrap_or_default();
    let own: Vec<String> = definitions
        .keys()
        .filter(|n| !n.starts_with("io.k8s."))
        .cloned()
        .collect();
    let mut model = Model::default();
    for name in own {
        match definitions.get(&name).and_then(string_enum) {
            Some(values) => {
                definitions.remove(&name);
                let inline = json!({"type": "string", "enum": values});
                model
                    .enums
                    .insert(name, inline.as_object().cloned().unwrap_or_default());
            }
            None => {
                model
                    .renamed
                    .insert(name.clone(), format!("{prefix}{name}"));
            }
        }
    }
    let mut out = Map::new();
    for (name, mut schema) in definitions {
        let name = match model.renamed.get(&name) {
            Some(new) => {
                tidy(&mut schema, &model, true);
                new.clone()
            }
            None => {
                tidy(&mut schema, &model, false);
                name
            }
        };
        out.insert(name, schema);
    }
    for (name, k, v) in roots {
        let name = model.renamed.get(&name).unwrap_or(&name);
        if let Some(Value::Object(schema)) = out.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": k.group, "kind": k.kind, "version": v}]),
            );
        }
    }
    out
}

/// What [`tidy`] rewrites in the schemas of the model's own types.
#[derive(Default)]
struct Model {
    /// Definition name -> published name.
    renamed: BTreeMap<String, String>,
    /// Definition name -> `type` and `enum` of a string enum, written out where referenced.
    enums: BTreeMap<String, Map<String, Value>>,
}

/// `networking.istio.io` -> `io.istio.networking`; the core group -> `io.k8s.api.core`.
fn reversed_group(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    group.rsplit('.').collect::<Vec<_>>().join(".")
}

/// Rewrite `schema` (recursively) into the form the API server publishes: references renamed
/// and enums written out per `model`; optional fields (`anyOf` the type or null) as the type
/// alone, with no `nullable` (they are simply not required); enums of documented variants (a
/// `oneOf` of one-value enums) as a plain `enum` of strings. In the model's own schemas
/// (`own`), the line breaks of the doc comments are joined within paragraphs.
fn tidy(schema: &mut Value, model: &Model, own: bool) {
    match schema {
        Value::Object(o) => {
            o.remove("nullable");
            if let Some(Value::Array(alts)) = o.remove("anyOf") {
                let (nulls, mut rest): (Vec<Value>, Vec<Value>) =
                    alts.into_iter().partition(is_null_schema);
                match (nulls.is_empty(), rest.pop()) {
                    (false, Some(Value::Object(alt))) if rest.is_empty() => {
                        if alt.len() == 1 && alt.contains_key("$ref") {
                            o.insert("allOf".into(), json!([alt]));
                        } else {
                            for (k, v) in alt {
                                o.entry(k).or_insert(v);
                            }
                        }
                    }
                    (_, last) => {
                        rest.extend(last);
                        rest.extend(nulls);
                        o.insert("anyOf".into(), Value::from(rest));
                    }
                }
            }
            if let Some(values) = o.get("oneOf").and_then(one_value_enums) {
                o.remove("oneOf");
                o.insert("type".into(), Value::from("string"));
                o.insert("enum".into(), Value::from(values));
            }
            let target = o
                .get("$ref")
                .or_else(|| match o.get("allOf")?.as_array()?.as_slice() {
                    [only] if only.as_object().is_some_and(|r| r.len() == 1) => only.get("$ref"),
                    _ => None,
                })
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
                .map(str::to_owned);
            if let Some(target) = target {
                if let Some(inline) = model.enums.get(&target) {
                    o.remove("$ref");
                    o.remove("allOf");
                    o.extend(inline.clone());
                } else if let Some(new) = model.renamed.get(&target) {
                    let reference = Value::from(format!("{REF_PREFIX}{new}"));
                    if o.contains_key("$ref") {
                        o.insert("$ref".into(), reference);
                    } else {
                        o.insert("allOf".into(), json!([{"$ref": reference}]));
                    }
                }
            }
            if own && let Some(Value::String(d)) = o.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            for v in o.values_mut() {
                tidy(v, model, own);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| tidy(v, model, own)),
        _ => {}
    }
}

/// The values of a string enum schema: an `enum` of strings, or a `oneOf` of them.
fn string_enum(schema: &Value) -> Option<Vec<Value>> {
    if schema.get("properties").is_some() {
        return None;
    }
    match schema.get("enum") {
        Some(Value::Array(values)) if values.iter().all(Value::is_string) => Some(values.clone()),
        Some(_) => None,
        None => one_value_enums(schema.get("oneOf")?),
    }
}

/// `{"type": "null"}` or `{"enum": [null]}`.
fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("enum") == Some(&json!([null]))
}

/// The values of a `oneOf` whose alternatives each allow one string, if it is one.
fn one_value_enums(one_of: &Value) -> Option<Vec<Value>> {
    one_of
        .as_array()?
        .iter()
        .map(|alt| match alt.get("enum")?.as_array()?.as_slice() {
            [v @ Value::String(_)] => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_schema_with_its_group_version_kind() {
        for (gv, kinds) in group_versions() {
            let doc = document(&gv).unwrap_or_default();
            let schemas = &doc["components"]["schemas"];
            for (k, v) in kinds {
                let want = json!([{"group": k.group, "kind": k.kind, "version": v}]);
                let found = schemas
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(_, s)| s["x-kubernetes-group-version-kind"] == want);
                let Some((_, schema)) = found else {
                    panic!("{gv}: no schema for {}", k.kind);
                };
                for field in ["apiVersion", "kind", "metadata"] {
                    assert!(
                        schema["properties"][field].is_object(),
                        "{gv} {} {field}",
                        k.kind
                    );
                }
            }
        }
    }

    /// Every `$ref` in `v`, recursively.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                out.extend(o.get("$ref").and_then(Value::as_str));
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn references_resolve_and_the_model_is_named_and_tidied_as_the_api_server_does() {
        for gv in group_versions().keys() {
            let doc = document(gv).unwrap_or_default();
            let schemas = &doc["components"]["schemas"];
            let mut found = Vec::new();
            refs(schemas, &mut found);
            for r in found {
                let name = r.strip_prefix(REF_PREFIX).unwrap_or(r);
                assert!(schemas.get(name).is_some(), "{gv}: dangling {r}");
            }
            let text = schemas.to_string();
            for gone in ["nullable", "\"anyOf\"", "\"oneOf\"", "$defs"] {
                assert!(!text.contains(gone), "{gv}: {gone}");
            }
        }
        let doc = document("apis/networking.istio.io/v1").unwrap_or_default();
        let schemas = &doc["components"]["schemas"];
        let spec = &schemas["io.istio.networking.v1.ServiceEntry"]["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.istio.networking.v1.ServiceEntrySpec"
        );
        let resolution =
            &schemas["io.istio.networking.v1.ServiceEntrySpec"]["properties"]["resolution"];
        assert_eq!(resolution["type"], "string");
        assert_eq!(resolution["enum"][0], "NONE");
        let core = document("api/v1").unwrap_or_default();
        let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
    }
}
