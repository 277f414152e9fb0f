//! `egress analyze [-f FILE|DIR|-]... [-R] [-n NS | -A]`: istioctl analyze's analyzers over the
//! files given, layered over the store's objects (a file's object replaces the stored object of
//! the same kind, namespace and name), as `istioctl analyze -f` does over a live cluster.
//!
//! Output `log` (istioctl's `Error [IST0101] (VirtualService ns/name file:line) message`), `json`
//! or `yaml`; `--output-threshold` hides lower levels, `--failure-threshold` sets what makes the
//! exit code istioctl's 79. Unparseable files exit 65, usage errors 64, as istioctl does.

use std::io::Read;

use egress_analyze::{Finding, Input, Level, Suppression, analyze, format_log};
use egress_store::Store;
use serde_json::{Value, json};

use crate::input::read_sources;
use crate::{Io, OpError};

/// istioctl's exit code when analyzers found issues at or above the failure threshold.
pub const EXIT_FOUND_ISSUES: u8 = 79;
/// istioctl's exit code when a file could not be parsed.
pub const EXIT_DATA_ERROR: u8 = 65;
/// istioctl's exit code for a wrong command line.
pub const EXIT_USAGE: u8 = 64;

/// What `egress analyze` was asked.
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// `-f` arguments.
    pub files: Vec<String>,
    /// `-R`.
    pub recursive: bool,
    /// `-n`: the namespace analysed (and given to file objects without one); `default` if unset.
    pub namespace: Option<String>,
    /// `-A`.
    pub all_namespaces: bool,
    /// Read the store (`--use-kube`, default true).
    pub use_store: bool,
    /// `-o`: `log`, `json` or `yaml`.
    pub output: String,
    /// `--failure-threshold`.
    pub failure_threshold: String,
    /// `--output-threshold`.
    pub output_threshold: String,
    /// `--suppress`.
    pub suppress: Vec<String>,
}

fn level(s: &str) -> Result<Level, OpError> {
    Level::parse(s).ok_or_else(|| {
        OpError::Usage(format!(
            "invalid level {s:?}: valid levels are Info, Warning, Error"
        ))
    })
}

/// Run the analysis; returns the exit code (0, 79), or an error with its exit code.
pub fn run(
    store: Option<&Store>,
    args: &ConfigArgs,
    stdin: &mut dyn Read,
    io: &mut Io<'_>,
) -> Result<u8, (u8, OpError)> {
    let usage = |e: OpError| (EXIT_USAGE, e);
    let fail_at = level(&args.failure_threshold).map_err(usage)?;
    let show_at = level(&args.output_threshold).map_err(usage)?;
    if !matches!(args.output.as_str(), "log" | "json" | "yaml") {
        return Err(usage(OpError::Usage(format!(
            "invalid output format {:?}: valid formats are log, json, yaml",
            args.output
        ))));
    }
    let suppressions = args
        .suppress
        .iter()
        .map(|s| Suppression::parse(s).map_err(|e| usage(OpError::Usage(e.to_string()))))
        .collect::<Result<Vec<_>, _>>()?;
    let namespace = args.namespace.clone().unwrap_or_else(|| "default".into());

    let mut inputs = Vec::new();
    if args.use_store
        && let Some(store) = store
    {
        inputs = store_inputs(store).map_err(|e| (1, e))?;
    }
    let sources =
        read_sources(&args.files, args.recursive, stdin).map_err(|e| (EXIT_DATA_ERROR, e))?;
    let mut parse_failed = false;
    for src in &sources {
        match egress_model::yaml::parse_stream(&src.text) {
            Ok(docs) => {
                let docs = egress_model::yaml::expand_lists(docs);
                for input in Input::from_documents(&src.name, docs, Some(&namespace)) {
                    inputs.retain(|i: &Input| {
                        !(i.kind == input.kind
                            && i.namespace == input.namespace
                            && i.name == input.name)
                    });
                    inputs.push(input);
                }
            }
            Err(e) => {
                parse_failed = true;
                let _ = writeln!(io.err, "Error(s) adding {}: {e}", src.name);
            }
        }
    }

    let findings: Vec<Finding> = analyze(&inputs, &suppressions)
        .into_iter()
        .filter(|f| args.all_namespaces || f.namespace.is_empty() || f.namespace == namespace)
        .collect();
    let shown: Vec<&Finding> = findings.iter().filter(|f| f.level >= show_at).collect();
    write_findings(&shown, &args.output, &namespace, args.all_namespaces, io)
        .map_err(|e| (1, e))?;
    if parse_failed {
        return Err((
            EXIT_DATA_ERROR,
            OpError::Invalid("Some files couldn't be parsed.".into()),
        ));
    }
    if findings.iter().any(|f| f.level >= fail_at) {
        return Ok(EXIT_FOUND_ISSUES);
    }
    Ok(0)
}

fn write_findings(
    shown: &[&Finding],
    output: &str,
    namespace: &str,
    all: bool,
    io: &mut Io<'_>,
) -> Result<(), OpError> {
    match output {
        "json" | "yaml" => {
            let items: Vec<Value> = shown.iter().map(|f| finding_json(f)).collect();
            let text = if output == "json" {
                egress_printers::yaml::to_json(&Value::Array(items))
            } else {
                egress_printers::yaml::to_yaml(&Value::Array(items))
            };
            write!(io.out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(io.out)?;
            }
        }
        _ => {
            if shown.is_empty() {
                let scope = if all {
                    "all namespaces".to_owned()
                } else {
                    format!("namespace: {namespace}")
                };
                writeln!(
                    io.err,
                    "\u{2714} No validation issues found when analyzing {scope}."
                )?;
            }
            for f in shown {
                writeln!(io.out, "{}", format_log(f))?;
            }
        }
    }
    Ok(())
}

fn finding_json(f: &Finding) -> Value {
    let mut origin = format!("{} {}", f.kind, f.resource_name());
    let mut v = json!({
        "code": f.code,
        "documentationUrl": f.documentation_url,
        "level": f.level.as_str(),
        "message": f.message,
    });
    if let Some(file) = &f.file {
        let reference = match f.line {
            Some(l) => format!("{file}:{l}"),
            None => file.clone(),
        };
        v["reference"] = Value::String(reference.clone());
        origin = format!("{origin} {reference}");
    }
    v["origin"] = Value::String(origin);
    v
}

/// Every object in the store, as inputs without an origin.
fn store_inputs(store: &Store) -> Result<Vec<Input>, OpError> {
    let mut out = Vec::new();
    for gk in store.kinds().map_err(OpError::store)? {
        let list = store
            .list(&gk.group, &gk.kind, None)
            .map_err(OpError::store)?;
        out.extend(list.items.into_iter().filter_map(|v| Input::new(v, None)));
    }
    Ok(out)
}
