//! OpenAPI v3 discovery: `/openapi/v3` lists a document per group version, and each document
//! declares the resource paths of its kinds with their operations and query parameters
//! (`x-kubernetes-group-version-kind` on each operation). kubectl reads it to learn that PATCH
//! and POST take `fieldValidation`, and then leaves validation to the server (its default,
//! `--validate=strict`). Object schemas are not published yet: `kubectl explain` is not served.

use std::collections::BTreeMap;

use egress_model::KindInfo;
use egress_model::kinds::KINDS;
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
        "components": {"schemas": {}},
    }))
}
