//! `egress delete KIND NAME...` and `egress delete -f FILE`: remove objects in one transaction.

use egress_model::DecodeOptions;
use egress_store::{Action, Store};

use crate::input::Source;
use crate::ops::get::parse_targets;
use crate::ops::{key_for, resource_name};
use crate::{Io, OpError};

/// What `delete` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct DeleteArgs {
    /// `KIND NAME...` or `KIND/NAME...`.
    pub args: Vec<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `--ignore-not-found`.
    pub ignore_not_found: bool,
}

/// Run `delete` for names on the command line, or for every object in `sources`.
pub fn run(
    store: &Store,
    args: &DeleteArgs,
    sources: &[Source],
    io: &mut Io<'_>,
) -> Result<(), OpError> {
    let ns = args.namespace.clone().unwrap_or_else(|| "default".into());
    let mut targets = Vec::new();
    if sources.is_empty() {
        for (info, names) in parse_targets(&args.args)? {
            if names.is_empty() {
                return Err(OpError::Usage(
                    "resource(s) were provided, but no name was specified".into(),
                ));
            }
            for n in names {
                targets.push((info, key_for(info, Some(&ns), &n), n));
            }
        }
    } else {
        let opts = DecodeOptions {
            default_namespace: Some(ns.clone()),
            enforce_namespace: args.namespace.is_some(),
        };
        for d in crate::ops::apply::decode_all(sources, &opts, io)? {
            let name = d.name().to_owned();
            targets.push((d.info, key_for(d.info, d.namespace(), &name), name));
        }
    }
    let mut missing = Vec::new();
    let committed = store.transact(|tx| -> Result<Vec<bool>, OpError> {
        let mut deleted = Vec::new();
        for (info, key, name) in &targets {
            // `exists`, not `get`: a damaged file is removed like any other.
            if tx.exists(key)? {
                tx.delete(key)?;
                deleted.push(true);
            } else {
                if !args.ignore_not_found {
                    missing.push(format!(
                        "Error from server (NotFound): {} {name:?} not found",
                        resource_name(info)
                    ));
                }
                deleted.push(false);
            }
        }
        Ok(deleted)
    })?;
    let mut outcomes = committed
        .outcomes
        .iter()
        .filter(|o| o.action == Action::Deleted);
    for ((info, key, name), was) in targets.iter().zip(committed.value.iter()) {
        if *was {
            // Skip cascaded deletions (namespace contents) reported before this object.
            for o in outcomes.by_ref() {
                if &o.key == key {
                    break;
                }
            }
            writeln!(io.out, "{} {name:?} deleted", info.qualified_singular())?;
        }
    }
    match missing.pop() {
        None => Ok(()),
        Some(last) => {
            for m in &missing {
                writeln!(io.err, "{m}")?;
            }
            Err(OpError::Reported(last))
        }
    }
}
