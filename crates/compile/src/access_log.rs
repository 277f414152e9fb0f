//! Access logging: the Telemetry API over MeshConfig's providers; without any Telemetry or
//! `defaultProviders.accessLogging`, MeshConfig `accessLogFile`/`accessLogEncoding`/
//! `accessLogFormat` exactly as before.
//!
//! Which Telemetries apply (Istio's `applicableTelemetries`): the oldest selector-less one in the
//! root namespace (`aks-istio-system`), then the oldest selector-less one in the proxy's
//! namespace, then the oldest one in the proxy's namespace whose `selector.matchLabels` match
//! its labels; each level counts only when it has `accessLogging`. Telemetries attached with
//! `targetRef`/`targetRefs` are not considered (egress has no policy attachment by reference).
//!
//! How they merge (Istio's `mergeLogs`), least specific first:
//! - the providers in scope are those named by the most specific level that names any (all its
//!   entries together), else `defaultProviders.accessLogging`;
//! - each entry applies to the providers it names, or, naming none, to those of the entry
//!   before it (the defaults for the first); `disabled: true` turns them off, otherwise on;
//! - an entry whose `match.mode` is not the proxy's is skipped. Gateways and sidecars (whose
//!   only traffic here is outbound) are CLIENT, as Istio's `workloadMode` has it for the gateway
//!   and sidecar-outbound listener classes; CLIENT_AND_SERVER (the default) matches both;
//! - a provider's `filter` is the one of the last matching entry that names it (an entry naming
//!   it without a filter clears it), or the filter of a later entry that names no provider but
//!   inherits it. Istio ignores the filter of an entry without providers and takes filters from
//!   entries of any mode; egress follows the API's documentation (an entry without providers
//!   applies to the inherited ones) and keeps SERVER-only filters off a CLIENT proxy.
//!
//! Providers: `envoy` (built in: `/dev/stdout`, MeshConfig's format and encoding) and MeshConfig
//! `extensionProviders` of type `envoyFileAccessLog` (`path`, `logFormat.text` or
//! `logFormat.labels` as JSON). Other provider types are ignored with a warning. A filter outside
//! the subset of [`filter`] is reported as a warning and that provider logs every entry (Istio's
//! webhook rejects what does not parse; egress's validation does the same, so what reaches here
//! parses as CEL but may use attributes or functions egress does not evaluate).

pub(crate) use egress_snapshot::log_filter as filter;

use std::collections::{BTreeMap, BTreeSet};

use egress_model::resources::core::MESH_CONFIG_NAMESPACE;
use egress_model::resources::mesh::{AccessLogEncoding, MeshConfig};
use egress_model::resources::telemetry::{AccessLogging, Telemetry, WorkloadMode};
use serde_json::Value;

use crate::ctx::{Ctx, name_ns, sorted};
use crate::endpoints::labels_match;
use crate::snapshot::{AccessLog, LogEncoding};
use filter::LogFilter;

/// The built-in file provider.
const ENVOY_PROVIDER: &str = "envoy";

/// The mode gateways and sidecar outbound listeners log as.
const PROXY_MODE: WorkloadMode = WorkloadMode::Client;

/// The access-log settings of the instance: the first provider that applies (by name, ignoring
/// case), the others in [`AccessLog::additional`].
pub(crate) fn build(ctx: &Ctx<'_>) -> AccessLog {
    let levels = applicable(ctx);
    let defaults = default_providers(ctx.mesh);
    if levels.is_empty() && defaults.is_empty() {
        return mesh_file_log(ctx.mesh);
    }
    let mut providers: Vec<_> = merge_logs(&levels, &defaults, PROXY_MODE)
        .into_iter()
        .collect();
    providers.sort_by_key(|(name, _)| name.to_ascii_lowercase());
    let mut logs: Vec<AccessLog> = Vec::new();
    for (name, expression) in providers {
        match provider_log(ctx.mesh, &name) {
            Some(mut l) => {
                l.filter = expression.and_then(|e| compile_filter(ctx, &name, e));
                l.provider = Some(name);
                logs.push(l);
            }
            None => ctx.warn(format!(
                "access log provider {name:?} is not a file provider egress supports; ignored"
            )),
        }
    }
    let mut logs = logs.into_iter();
    let Some(mut first) = logs.next() else {
        return AccessLog::default();
    };
    first.additional = logs.collect();
    first
}

/// The compiled filter, or `None` (log everything) with a warning when egress cannot evaluate it.
fn compile_filter(ctx: &Ctx<'_>, provider: &str, expression: &str) -> Option<LogFilter> {
    if expression.trim().is_empty() {
        return None;
    }
    match LogFilter::parse(expression) {
        Ok(f) => Some(f),
        Err(e) => {
            ctx.warn(format!(
                "access log filter {expression:?} of provider {provider:?} cannot be evaluated \
                 ({e}); every entry is logged"
            ));
            None
        }
    }
}

/// MeshConfig's own file access log (`accessLogFile`, empty = off).
fn mesh_file_log(mesh: &MeshConfig) -> AccessLog {
    AccessLog {
        path: mesh.access_log_file.clone().filter(|p| !p.is_empty()),
        encoding: encoding(mesh.access_log_encoding()),
        format: mesh.access_log_format.clone().filter(|f| !f.is_empty()),
        ..AccessLog::default()
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

/// Access-logging entries of the Telemetries that apply, one list per level, least specific
/// first: the root namespace's mesh-wide one, the namespace-wide one, then one selecting the
/// pod (the oldest at each level). Levels without `accessLogging` are left out.
fn applicable<'a>(ctx: &Ctx<'a>) -> Vec<Vec<&'a AccessLogging>> {
    let all: Vec<_> = sorted::<Telemetry>(&ctx.inputs.telemetries)
        .into_iter()
        .filter(|(_, t)| {
            t.target_ref.is_none() && t.target_refs.as_deref().unwrap_or_default().is_empty()
        })
        .collect();
    let ns = ctx.id.namespace.as_str();
    let root = all
        .iter()
        .find(|(m, t)| name_ns(m).1 == MESH_CONFIG_NAMESPACE && selector(t).is_none());
    let namespace = all
        .iter()
        .find(|(m, t)| ns != MESH_CONFIG_NAMESPACE && name_ns(m).1 == ns && selector(t).is_none());
    let workload = all.iter().find(|(m, t)| {
        name_ns(m).1 == ns && selector(t).is_some_and(|l| labels_match(l, Some(ctx.labels())))
    });
    [root, namespace, workload]
        .into_iter()
        .flatten()
        .map(|(_, t)| t.access_logging.iter().flatten().collect::<Vec<_>>())
        .filter(|level| !level.is_empty())
        .collect()
}

/// A Telemetry's non-empty `selector.matchLabels`.
fn selector(t: &Telemetry) -> Option<&BTreeMap<String, String>> {
    t.selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .filter(|l| !l.is_empty())
}

/// The provider names an entry lists.
fn named(l: &AccessLogging) -> Vec<String> {
    l.providers
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Istio's `mergeLogs` (see the module documentation): the providers that log for a proxy in
/// `mode`, each with its filter expression.
fn merge_logs<'a>(
    levels: &[Vec<&'a AccessLogging>],
    defaults: &[String],
    mode: WorkloadMode,
) -> BTreeMap<String, Option<&'a str>> {
    if levels.is_empty() {
        return defaults.iter().map(|d| (d.clone(), None)).collect();
    }
    let mut in_scope: BTreeSet<String> = defaults.iter().cloned().collect();
    for level in levels {
        let names: BTreeSet<String> = level.iter().flat_map(|l| named(l)).collect();
        if !names.is_empty() {
            in_scope = names;
        }
    }
    let mut filters: BTreeMap<String, Option<&'a str>> = BTreeMap::new();
    let mut enabled: BTreeSet<String> = BTreeSet::new();
    let mut parent = defaults.to_vec();
    for l in levels.iter().flatten() {
        let names = named(l);
        let explicit = !names.is_empty();
        let providers = if explicit { names } else { parent.clone() };
        parent.clone_from(&providers);
        let entry_mode = l.match_.as_ref().and_then(|m| m.mode).unwrap_or_default();
        if entry_mode != WorkloadMode::ClientAndServer && entry_mode != mode {
            continue;
        }
        let expression = l.filter.as_ref().and_then(|f| f.expression.as_deref());
        for p in providers.into_iter().filter(|p| in_scope.contains(p)) {
            if explicit || expression.is_some() {
                filters.insert(p.clone(), expression);
            }
            if l.disabled == Some(true) {
                enabled.remove(&p);
            } else {
                enabled.insert(p);
            }
        }
    }
    enabled
        .into_iter()
        .map(|p| {
            let f = filters.get(&p).copied().flatten();
            (p, f)
        })
        .collect()
}

/// The file log of provider `name`: an `envoyFileAccessLog` extension provider, or the
/// built-in `envoy` provider (`/dev/stdout`); without its own format, MeshConfig's format
/// and encoding apply.
fn provider_log(mesh: &MeshConfig, name: &str) -> Option<AccessLog> {
    let ext = mesh.extension_providers.iter().flatten().find(|p| {
        p.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    let fallback = |path: String| AccessLog {
        path: Some(path),
        encoding: encoding(mesh.access_log_encoding()),
        format: mesh.access_log_format.clone().filter(|f| !f.is_empty()),
        ..AccessLog::default()
    };
    match ext {
        None if name.eq_ignore_ascii_case(ENVOY_PROVIDER) => {
            Some(fallback("/dev/stdout".to_owned()))
        }
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
                    ..AccessLog::default()
                });
            }
            if let Some(labels) = format.and_then(|f| f.get("labels")) {
                return Some(AccessLog {
                    path: Some(path),
                    encoding: LogEncoding::Json,
                    format: Some(labels.to_string()),
                    ..AccessLog::default()
                });
            }
            Some(fallback(path))
        }
    }
}
