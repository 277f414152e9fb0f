//! Discovery: `/version`, `/api`, `/apis`, `/apis/{group}` and the resource lists of each
//! group version, built from the kinds egress models. Clients that ask for aggregated
//! discovery (`as=APIGroupDiscoveryList`, as kubectl 1.32 does) get `/api` and `/apis` as
//! `apidiscovery.k8s.io/v2` documents with every resource in them, so two requests discover
//! the whole API; others get the legacy documents.

use std::collections::BTreeMap;

use egress_model::KindInfo;
use egress_model::kinds::KINDS;
use serde_json::{Value, json};

/// The Kubernetes version this API answers as (the minor version `kubectl` 1.32 expects).
pub const KUBE_MINOR: &str = "32";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+egress-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Groups other than the core one, each with its versions (preferred first).
fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in KINDS.iter().filter(|k| !k.group.is_empty()) {
        let versions = out.entry(k.group).or_default();
        for v in k.versions {
            if !versions.contains(v) {
                versions.push(v);
            }
        }
    }
    out
}

fn group_doc(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions.first().copied().unwrap_or("v1")),
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().iter().map(|(g, v)| group_doc(g, v)).collect::<Vec<_>>(),
    })
}

/// `/apis/{group}`, if the group is served.
pub fn group(name: &str) -> Option<Value> {
    let groups = groups();
    let versions = groups.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = Value::from("APIGroup");
    doc["apiVersion"] = Value::from("v1");
    Some(doc)
}

/// Verbs every served resource takes.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The categories a kind belongs to (`kubectl get all`, `kubectl get istio-io`): the
/// built-in `all` kinds, and the categories Istio's CRDs declare.
pub fn categories(k: &KindInfo) -> Vec<&'static str> {
    match (k.group, k.kind) {
        ("", "Pod" | "Service") | ("apps", "Deployment" | "ReplicaSet") => vec!["all"],
        ("autoscaling", "HorizontalPodAutoscaler") => vec!["all"],
        ("networking.istio.io", _) => vec!["istio-io", "networking-istio-io"],
        ("security.istio.io", _) => vec!["istio-io", "security-istio-io"],
        ("telemetry.istio.io", _) => vec!["istio-io", "telemetry-istio-io"],
        _ => Vec::new(),
    }
}

fn resource_doc(k: &KindInfo) -> Value {
    let mut doc = json!({
        "name": k.plural,
        "singularName": k.singular,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": VERBS,
        "shortNames": k.short_names,
    });
    let categories = categories(k);
    if !categories.is_empty() {
        doc["categories"] = json!(categories);
    }
    doc
}

/// The media type of an aggregated discovery document, when `accept` asks for one (v2 or
/// v2beta1, in the client's order).
pub fn aggregated_type(accept: &str) -> Option<&'static str> {
    accept
        .split(',')
        .filter(|t| t.contains("as=APIGroupDiscoveryList") && t.contains("g=apidiscovery.k8s.io"))
        .find_map(|t| {
            if t.contains("v=v2beta1") {
                Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")
            } else if t.contains("v=v2") {
                Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
            } else {
                None
            }
        })
}

/// `/api` (`core`) or `/apis` as one aggregated discovery document (`media_type` from
/// [`aggregated_type`]).
pub fn aggregated(core: bool, media_type: &str) -> Value {
    let api_version = if media_type.contains("v=v2beta1") {
        "apidiscovery.k8s.io/v2beta1"
    } else {
        "apidiscovery.k8s.io/v2"
    };
    let entry = |group: &str, versions: &[&str]| {
        let versions: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = KINDS
                    .iter()
                    .filter(|k| k.group == group && k.versions.contains(v))
                    .map(|k| aggregated_resource(k, v))
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        json!({"metadata": {"name": group}, "versions": versions})
    };
    let items: Vec<Value> = if core {
        vec![entry("", &["v1"])]
    } else {
        groups().iter().map(|(g, v)| entry(g, v)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(k: &KindInfo, version: &str) -> Value {
    let kind = |kind: &str| json!({"group": k.group, "version": version, "kind": kind});
    let mut subresources = vec![json!({
        "subresource": "status",
        "responseKind": kind(k.kind),
        "verbs": ["get", "patch", "update"],
    })];
    if k.group.is_empty() && k.kind == "Pod" {
        subresources
            .push(json!({"subresource": "log", "responseKind": kind("Pod"), "verbs": ["get"]}));
        subresources.push(json!({"subresource": "exec", "responseKind": kind("PodExecOptions"), "verbs": ["create", "get"]}));
    }
    let mut doc = json!({
        "resource": k.plural,
        "responseKind": kind(k.kind),
        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": k.singular,
        "verbs": VERBS,
        "shortNames": k.short_names,
        "subresources": subresources,
    });
    let categories = categories(k);
    if !categories.is_empty() {
        doc["categories"] = json!(categories);
    }
    doc
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<&KindInfo> = KINDS
        .iter()
        .filter(|k| k.group == group && k.versions.contains(&version))
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut resources: Vec<Value> = kinds.iter().map(|k| resource_doc(k)).collect();
    for k in &kinds {
        resources.push(json!({
            "name": format!("{}/status", k.plural),
            "singularName": "",
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if group.is_empty() && version == "v1" {
        for (sub, verbs) in [("log", json!(["get"])), ("exec", json!(["create", "get"]))] {
            resources.push(json!({
                "name": format!("pods/{sub}"), "singularName": "", "namespaced": true,
                "kind": if sub == "log" { "Pod" } else { "PodExecOptions" }, "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn groups_list_every_modelled_kind_once() {
        let list = group_list();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for g in ["apps", "networking.istio.io", "security.istio.io"] {
            assert!(names.contains(&g), "{names:?}");
        }
        let istio = group("networking.istio.io").unwrap();
        assert_eq!(istio["preferredVersion"]["version"], "v1");
        let v1 = resource_list("", "v1").unwrap();
        let svc = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "services")
            .unwrap();
        assert_eq!(svc["shortNames"][0], "svc");
        assert!(resource_list("apps", "v9").is_none());
    }
}
