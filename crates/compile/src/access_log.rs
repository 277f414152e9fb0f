//! Access logging: the Telemetry API (root namespace, then the gateway's namespace, then
//! Telemetries selecting the pod; gateways log as CLIENT) over MeshConfig's default providers;
//! without any, MeshConfig `accessLogFile`/`accessLogEncoding`/`accessLogFormat`.

use std::collections::BTreeMap;

use egress_model::resources::core::MESH_CONFIG_NAMESPACE;
use egress_model::resources::mesh::{AccessLogEncoding, MeshConfig};
use egress_model::resources::telemetry::{AccessLogging, Telemetry, WorkloadMode};
use serde_json::Value;

use crate::ctx::{Ctx, name_ns, sorted};
use crate::endpoints::labels_match;
use crate::snapshot::{AccessLog, LogEncoding};

/// The built-in file provider.
const ENVOY_PROVIDER: &str = "envoy";

/// The access-log settings of the instance.
pub(crate) fn build(ctx: &Ctx<'_>) -> AccessLog {
    let logs = applicable(ctx);
    let defaults = default_providers(ctx.mesh);
    if logs.is_empty() && defaults.is_empty() {
        return mesh_file_log(ctx.mesh);
    }
    let providers = merge_logs(ctx, &logs, &defaults);
    let mut files: Vec<AccessLog> = Vec::new();
    for p in providers {
        match provider_log(ctx.mesh, &p) {
            Some(l) => files.push(l),
            None => ctx.warn(format!(
                "access log provider {p:?} is not a file provider egress supports; ignored"
            )),
        }
    }
    if files.len() > 1 {
        ctx.warn("several access log providers apply; only the first (by name) is used");
    }
    files.into_iter().next().unwrap_or_default()
}

/// MeshConfig's own file access log (`accessLogFile`, empty = off).
fn mesh_file_log(mesh: &MeshConfig) -> AccessLog {
    AccessLog {
        path: mesh.access_log_file.clone().filter(|p| !p.is_empty()),
        encoding: encoding(mesh.access_log_encoding()),
        format: mesh.access_log_format.clone().filter(|f| !f.is_empty()),
    }
}

fn encoding(e: AccessLogEncoding) -> LogEncoding {
    match e {
        AccessLogEncoding::Text => LogEncoding::Text,
        AccessLogEncoding::Json => LogEncoding::Json,
    }
}

/// `defaultProviders.accessLogging`.
fn default_providers(mesh: &MeshConfig) -> Vec<String> {
    mesh.default_providers
        .as_ref()
        .and_then(|v| v.get("accessLogging"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Access-logging entries of the Telemetries that apply, least specific first: the root
/// namespace's mesh-wide one, the namespace-wide one, then one selecting the pod (the oldest
/// at each level).
fn applicable<'a>(ctx: &Ctx<'a>) -> Vec<&'a AccessLogging> {
    let all: Vec<_> = sorted::<Telemetry>(&ctx.inputs.telemetries)
        .into_iter()
        .filter(|(_, t)| {
            t.target_ref.is_none() && t.target_refs.as_deref().unwrap_or_default().is_empty()
        })
        .collect();
    let ns = ctx.id.namespace.as_str();
    let no_selector = |t: &Telemetry| {
        t.selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .is_none_or(BTreeMap::is_empty)
    };
    let root = all
        .iter()
        .find(|(m, t)| name_ns(m).1 == MESH_CONFIG_NAMESPACE && no_selector(t));
    let namespace = all
        .iter()
        .find(|(m, t)| ns != MESH_CONFIG_NAMESPACE && name_ns(m).1 == ns && no_selector(t));
    let workload = all.iter().find(|(m, t)| {
        name_ns(m).1 == ns
            && !no_selector(t)
            && t.selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(|l| labels_match(l, Some(ctx.labels())))
    });
    [root, namespace, workload]
        .into_iter()
        .flatten()
        .flat_map(|(_, t)| t.access_logging.iter().flatten())
        .collect()
}

/// Istio's `mergeLogs` for a gateway (mode CLIENT): the last entry naming providers decides
/// which are in scope; each entry, in order, enables or disables its providers (inheriting
/// the previous entry's when it names none).
fn merge_logs(ctx: &Ctx<'_>, logs: &[&AccessLogging], defaults: &[String]) -> Vec<String> {
    let names = |l: &AccessLogging| -> Vec<String> {
        l.providers
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone())
            .collect()
    };
    let mut in_scope = defaults.to_vec();
    for l in logs {
        let n = names(l);
        if !n.is_empty() {
            in_scope = n;
        }
    }
    let mut enabled: BTreeMap<String, bool> = BTreeMap::new();
    let mut parent = defaults.to_vec();
    for l in logs {
        let mut providers = names(l);
        if providers.is_empty() {
            providers = parent.clone();
        }
        parent = providers.clone();
        let mode = l
            .match_
            .as_ref()
            .and_then(|m| m.mode)
            .unwrap_or(WorkloadMode::ClientAndServer);
        if mode == WorkloadMode::Server {
            continue;
        }
        if l.filter.as_ref().is_some_and(|f| f.expression.is_some()) {
            ctx.warn(
                "Telemetry access log filter expressions are not supported; all traffic is logged",
            );
        }
        let on = l.disabled != Some(true);
        for p in providers {
            if in_scope.contains(&p) {
                if on {
                    enabled.insert(p, true);
                } else {
                    enabled.remove(&p);
                }
            }
        }
    }
    if logs.is_empty() {
        return defaults.to_vec();
    }
    enabled.into_keys().collect()
}

/// The file log of provider `name`: an `envoyFileAccessLog` extension provider, or the
/// built-in `envoy` provider (`/dev/stdout`); without its own format, MeshConfig's format
/// and encoding apply.
fn provider_log(mesh: &MeshConfig, name: &str) -> Option<AccessLog> {
    let ext = mesh
        .extension_providers
        .iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name));
    let fallback = |path: String| AccessLog {
        path: Some(path),
        encoding: encoding(mesh.access_log_encoding()),
        format: mesh.access_log_format.clone().filter(|f| !f.is_empty()),
    };
    match ext {
        None if name == ENVOY_PROVIDER => Some(fallback("/dev/stdout".to_owned())),
        None => None,
        Some(p) => {
            let file = p.get("envoyFileAccessLog")?;
            let path = file
                .get("path")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("/dev/stdout")
                .to_owned();
            let format = file.get("logFormat");
            if let Some(text) = format.and_then(|f| f.get("text")).and_then(Value::as_str) {
                return Some(AccessLog {
                    path: Some(path),
                    encoding: LogEncoding::Text,
                    format: Some(text.to_owned()),
                });
            }
            if let Some(labels) = format.and_then(|f| f.get("labels")) {
                return Some(AccessLog {
                    path: Some(path),
                    encoding: LogEncoding::Json,
                    format: Some(labels.to_string()),
                });
            }
            Some(fallback(path))
        }
    }
}
