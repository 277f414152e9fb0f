//! `egress label KIND NAME KEY=VALUE... [KEY-] [--overwrite]`.

use egress_model::validate::common::{validate_label_key, validate_label_value};
use egress_store::Store;
use serde_json::{Map, Value};

use crate::ops::get::parse_targets;
use crate::ops::{key_for, resource_name};
use crate::{Io, OpError};

/// What `label` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct LabelArgs {
    /// `KIND NAME KEY=VALUE...` as typed.
    pub args: Vec<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `--overwrite`.
    pub overwrite: bool,
}

enum Change {
    Set(String, String),
    Remove(String),
}

/// Run `label`.
pub fn run(store: &Store, args: &LabelArgs, io: &mut Io<'_>) -> Result<(), OpError> {
    // As kubectl: words with `=` or a trailing `-` are label changes, the rest name objects.
    let (change_args, target_args): (Vec<String>, Vec<String>) = args
        .args
        .iter()
        .cloned()
        .partition(|a| a.contains('=') || (a.ends_with('-') && a.len() > 1));
    if change_args.is_empty() {
        return Err(OpError::Usage(
            "at least one label update is required".into(),
        ));
    }
    let mut changes = Vec::new();
    for c in &change_args {
        if let Some((k, v)) = c.split_once('=') {
            validate_label_key(k)
                .map_err(|e| OpError::Usage(format!("invalid label spec: {c}: {e}")))?;
            validate_label_value(v)
                .map_err(|e| OpError::Usage(format!("invalid label value: {c:?}: {e}")))?;
            changes.push(Change::Set(k.to_owned(), v.to_owned()));
        } else if let Some(k) = c.strip_suffix('-') {
            changes.push(Change::Remove(k.to_owned()));
        } else {
            return Err(OpError::Usage(format!("invalid label spec: {c}")));
        }
    }
    let targets = parse_targets(&target_args)?;
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let mut messages = Vec::new();
    store.transact(|tx| -> Result<(), OpError> {
        for (info, names) in &targets {
            if names.is_empty() {
                return Err(OpError::Usage(
                    "resource(s) were provided, but no name was specified".into(),
                ));
            }
            for name in names {
                let key = key_for(info, Some(&ns), name);
                let Some(mut obj) = tx.get(&key)? else {
                    return Err(OpError::Reported(format!(
                        "Error from server (NotFound): {} {name:?} not found",
                        resource_name(info)
                    )));
                };
                let labels = obj
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                    .map(|m| {
                        m.entry("labels")
                            .or_insert_with(|| Value::Object(Map::new()))
                    });
                let Some(Value::Object(labels)) = labels else {
                    return Err(OpError::Invalid(format!(
                        "{} {name:?} has no metadata",
                        resource_name(info)
                    )));
                };
                let before = labels.clone();
                let mut removed_only = true;
                for c in &changes {
                    match c {
                        Change::Set(k, v) => {
                            removed_only = false;
                            if let Some(old) = labels.get(k).and_then(Value::as_str)
                                && old != v
                                && !args.overwrite
                            {
                                return Err(OpError::Usage(format!(
                                    "'{k}' already has a value ({old}), and --overwrite is false"
                                )));
                            }
                            labels.insert(k.clone(), Value::String(v.clone()));
                        }
                        Change::Remove(k) => {
                            labels.remove(k);
                        }
                    }
                }
                let changed = *labels != before;
                let word = match (changed, removed_only) {
                    (false, _) => "not labeled",
                    (true, true) => "unlabeled",
                    (true, false) => "labeled",
                };
                if changed {
                    tx.update(&key, obj, None)?;
                }
                messages.push(format!("{}/{name} {word}", info.singular));
            }
        }
        Ok(())
    })?;
    for m in messages {
        writeln!(io.out, "{m}")?;
    }
    Ok(())
}
