//! `egress get KIND[,KIND] [NAME...]`: kubectl's tables, `-o wide|yaml|json|name|jsonpath=`,
//! `-l` selectors, `-n`/`-A`.

use std::time::SystemTime;

use egress_model::KindInfo;
use egress_model::kinds;
use egress_printers::{jsonpath, selector, table, yaml};
use egress_store::Store;
use serde_json::Value;

use crate::ops::{key_for, resource_name};
use crate::{Io, OpError};

/// What `get` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct GetArgs {
    /// `KIND[,KIND]`, `KIND/NAME` or `KIND NAME...` as typed.
    pub args: Vec<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `-A`.
    pub all_namespaces: bool,
    /// `-l`.
    pub selector: Option<String>,
    /// `-o`.
    pub output: Option<String>,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-labels`.
    pub show_labels: bool,
    /// `--show-managed-fields`.
    pub show_managed_fields: bool,
}

enum Format {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(jsonpath::Template),
}

fn parse_format(o: Option<&str>) -> Result<Format, OpError> {
    let Some(o) = o else {
        return Ok(Format::Table { wide: false });
    };
    Ok(match o {
        "wide" => Format::Table { wide: true },
        "yaml" => Format::Yaml,
        "json" => Format::Json,
        "name" => Format::Name,
        other => {
            let t = other
                .strip_prefix("jsonpath=")
                .or_else(|| other.strip_prefix("jsonpath-as-json="));
            match t {
                Some(t) => {
                    let t = strip_quotes(t);
                    Format::JsonPath(
                        jsonpath::parse(t).map_err(|e| {
                            OpError::Usage(format!("error parsing jsonpath {t}, {e}"))
                        })?,
                    )
                }
                None => {
                    return Err(OpError::Usage(format!(
                        "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,jsonpath,name,wide,yaml"
                    )));
                }
            }
        }
    })
}

fn strip_quotes(t: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = t.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    t
}

/// The kinds and names a `get` argument list asks for.
pub fn parse_targets(args: &[String]) -> Result<Vec<(&'static KindInfo, Vec<String>)>, OpError> {
    let Some(first) = args.first() else {
        return Err(OpError::Usage(
            "You must specify the type of resource to get. Use \"egress api-resources\" for a complete list of supported resources.".into(),
        ));
    };
    let resolve = |name: &str| {
        kinds::for_cli_name(name).ok_or_else(|| {
            OpError::Usage(format!("the server doesn't have a resource type {name:?}"))
        })
    };
    if first.contains('/') {
        let mut out: Vec<(&'static KindInfo, Vec<String>)> = Vec::new();
        for a in args {
            let Some((k, n)) = a.split_once('/') else {
                return Err(OpError::Usage("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'egress get resource/<resource_name>' instead of 'egress get resource resource/<resource_name>'".to_string()));
            };
            let info = resolve(k)?;
            match out.iter_mut().find(|(i, _)| i.kind == info.kind) {
                Some((_, names)) => names.push(n.to_owned()),
                None => out.push((info, vec![n.to_owned()])),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    let kinds: Vec<&str> = first.split(',').filter(|s| !s.is_empty()).collect();
    if kinds.len() > 1 && !names.is_empty() {
        return Err(OpError::Usage(
            "you may only specify a single resource type when passing names".into(),
        ));
    }
    kinds
        .into_iter()
        .map(|k| resolve(k).map(|i| (i, names.clone())))
        .collect()
}

/// Run `get`.
pub fn run(store: &Store, args: &GetArgs, io: &mut Io<'_>) -> Result<(), OpError> {
    let format = parse_format(args.output.as_deref())?;
    let targets = parse_targets(&args.args)?;
    let sel = match &args.selector {
        Some(s) => Some(selector::parse(s).map_err(|e| OpError::Usage(e.to_string()))?),
        None => None,
    };
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let mut failures = Vec::new();
    let mut groups: Vec<(&'static KindInfo, Vec<Value>)> = Vec::new();
    let mut single = false;
    for (info, names) in &targets {
        let scope = if !info.namespaced || args.all_namespaces {
            None
        } else {
            Some(ns.as_str())
        };
        let mut items = Vec::new();
        if names.is_empty() {
            let listed = store.list(info.group, info.kind, scope)?;
            for c in &listed.corrupt {
                let at = match (c.line, c.column) {
                    (Some(l), Some(col)) => format!(":{l}:{col}"),
                    _ => String::new(),
                };
                failures.push(format!(
                    "error: stored object {} is unreadable: {}{at}: {}",
                    c.key,
                    c.path.display(),
                    c.message
                ));
            }
            items = listed.items;
        } else {
            single = targets.len() == 1 && names.len() == 1;
            for n in names {
                match store.get(&key_for(info, Some(&ns), n)) {
                    Ok(Some(v)) => items.push(v),
                    Ok(None) => failures.push(format!(
                        "Error from server (NotFound): {} {n:?} not found",
                        resource_name(info)
                    )),
                    Err(e) => failures.push(format!("error: {e}")),
                }
            }
        }
        if let Some(sel) = &sel {
            items.retain(|v| {
                v["metadata"]["labels"]
                    .as_object()
                    .map(|m| sel.matches(m))
                    .unwrap_or_else(|| sel.matches(&serde_json::Map::new()))
            });
        }
        groups.push((info, items));
    }
    // Pods the local cluster runs, while no `egress up` runs: what is stored is the last
    // status it recorded, not what runs now. Say so (as kubectl does when it cannot reach
    // the server) and, in tables, show them as a node that stopped reporting: phase
    // `Unknown`, no container ready.
    let local_pods = groups
        .iter()
        .filter(|(info, _)| info.group.is_empty() && info.kind == "Pod")
        .flat_map(|(_, items)| items.iter())
        .filter(|p| is_local_pod(p))
        .count();
    let stopped = local_pods > 0 && egress_cluster::up::running_pid(store.dir()).is_none();
    if stopped {
        writeln!(
            io.err,
            "Warning: the local cluster is not running (start it with \"egress up\"): the status of {local_pods} pod(s) is as last recorded, shown as Unknown"
        )?;
        if matches!(format, Format::Table { .. }) {
            for (info, items) in &mut groups {
                if info.group.is_empty() && info.kind == "Pod" {
                    items
                        .iter_mut()
                        .filter(|p| is_local_pod(p))
                        .for_each(unknown_status);
                }
            }
        }
    }
    let total: usize = groups.iter().map(|(_, i)| i.len()).sum();
    let all: Vec<Value> = groups.iter().flat_map(|(_, i)| i.iter().cloned()).collect();
    match &format {
        Format::Table { wide } => {
            if total == 0 && failures.is_empty() {
                if args.all_namespaces || targets.iter().all(|(i, _)| !i.namespaced) {
                    writeln!(io.err, "No resources found")?;
                } else {
                    writeln!(io.err, "No resources found in {ns} namespace.")?;
                }
            }
            let multi = groups.len() > 1;
            let mut first = true;
            for (info, items) in &groups {
                if items.is_empty() {
                    continue;
                }
                if !first {
                    writeln!(io.out)?;
                }
                first = false;
                let opts = table::TableOptions {
                    wide: *wide,
                    show_namespace: args.all_namespaces && info.namespaced,
                    no_headers: args.no_headers,
                    show_labels: args.show_labels,
                    label_columns: Vec::new(),
                    name_prefix: multi.then(|| info.qualified_singular()),
                };
                let now = SystemTime::now();
                write!(
                    io.out,
                    "{}",
                    table::print_table(info.kind, items, &opts, now)
                )?;
            }
        }
        Format::Name => {
            for (info, items) in &groups {
                for v in items {
                    let name = v["metadata"]["name"].as_str().unwrap_or_default();
                    writeln!(io.out, "{}/{name}", info.qualified_singular())?;
                }
            }
        }
        Format::Yaml | Format::Json | Format::JsonPath(_) => {
            // Field ownership is noise in a manifest: kubectl leaves it out of -o yaml|json.
            let mut all = all;
            if !args.show_managed_fields && matches!(format, Format::Yaml | Format::Json) {
                for v in &mut all {
                    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("managedFields");
                    }
                }
            }
            let data = if single && all.len() == 1 {
                all.into_iter().next().unwrap_or(Value::Null)
            } else {
                yaml::list(all)
            };
            if total != 0 || failures.is_empty() {
                match &format {
                    Format::Yaml => write!(io.out, "{}", yaml::to_yaml(&data))?,
                    Format::Json => write!(io.out, "{}", yaml::to_json(&data))?,
                    Format::JsonPath(t) => {
                        let text = t.execute(&data, true).map_err(|e| {
                            OpError::Usage(format!("error executing jsonpath: {e}"))
                        })?;
                        write!(io.out, "{text}")?;
                    }
                    _ => {}
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        for f in &failures[..failures.len() - 1] {
            writeln!(io.err, "{f}")?;
        }
        let last = failures.last().cloned().unwrap_or_default();
        Err(OpError::Reported(last))
    }
}

/// A Pod the local cluster scheduled (it set `spec.nodeName`) and reports status for.
fn is_local_pod(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some()
        && pod.get("status").is_some()
}

/// The status of a Pod whose node stopped reporting: phase `Unknown`, containers not ready
/// and no longer known to run (restart counts kept).
fn unknown_status(pod: &mut Value) {
    let Some(status) = pod.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    status.insert("phase".into(), Value::from("Unknown"));
    status.remove("reason");
    if let Some(cs) = status
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            c.insert("ready".into(), Value::Bool(false));
            c.insert("started".into(), Value::Bool(false));
            c.insert(
                "state".into(),
                serde_json::json!({"waiting": {"reason": "Unknown"}}),
            );
        }
    }
}
