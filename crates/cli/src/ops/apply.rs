//! `egress apply -f FILE|DIR|-`: validate every document first, then write them all in one
//! transaction (kubectl's client-side apply semantics). One bad document applies nothing.

use egress_model::{DecodeOptions, Outcome, decode_file};
use egress_store::{Action, Store, StoreError};

use crate::input::Source;
use crate::merge::apply_merge;
use crate::ops::{key_for, written_name};
use crate::{Io, OpError};

/// What `apply` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ApplyArgs {
    /// The namespace given with `-n`, if any.
    pub namespace: Option<String>,
    /// Validate and report only (`--dry-run=client`/`server`).
    pub dry_run: bool,
}

/// Decode and validate every source; print every diagnostic; return the valid objects, or an
/// error when anything was refused.
pub fn decode_all(
    sources: &[Source],
    opts: &DecodeOptions,
    io: &mut Io<'_>,
) -> Result<Vec<egress_model::Decoded>, OpError> {
    let mut objects = Vec::new();
    let mut errors = 0usize;
    for src in sources {
        for outcome in decode_file(&src.name, &src.text, opts) {
            match outcome {
                Outcome::Valid(d) => {
                    for w in &d.warnings {
                        writeln!(io.err, "Warning: {w}")?;
                    }
                    objects.push(*d);
                }
                Outcome::Invalid(diags) => {
                    for d in &diags {
                        if d.is_error() {
                            errors += 1;
                            writeln!(io.err, "{d}")?;
                        } else {
                            writeln!(io.err, "Warning: {d}")?;
                        }
                    }
                }
                Outcome::Unsupported {
                    document,
                    pos,
                    object,
                    api_version,
                } => {
                    errors += 1;
                    writeln!(
                        io.err,
                        "{}:{}:{}: error: {object}: resource mapping not found for name: {:?} namespace: {:?} from {:?}: no matches for kind {:?} in version {:?} (document {})",
                        src.name,
                        pos.line,
                        pos.col,
                        object.name,
                        object.namespace.clone().unwrap_or_default(),
                        src.name,
                        object.kind,
                        api_version,
                        document + 1
                    )?;
                }
            }
        }
    }
    if errors > 0 {
        return Err(OpError::Invalid(format!(
            "{errors} error(s) found; nothing was applied"
        )));
    }
    Ok(objects)
}

/// Run `apply`.
pub fn run(
    store: &Store,
    sources: &[Source],
    args: &ApplyArgs,
    io: &mut Io<'_>,
) -> Result<(), OpError> {
    let opts = DecodeOptions {
        default_namespace: Some(args.namespace.clone().unwrap_or_else(|| "default".into())),
        enforce_namespace: args.namespace.is_some(),
    };
    let objects = decode_all(sources, &opts, io)?;
    if objects.is_empty() {
        return Err(OpError::Usage("no objects passed to apply".into()));
    }
    if args.dry_run {
        for d in &objects {
            writeln!(
                io.out,
                "{} configured (dry run)",
                written_name(d.info, d.name())
            )?;
        }
        return Ok(());
    }
    let committed = store.transact(|tx| -> Result<(), OpError> {
        for d in &objects {
            let key = key_for(d.info, d.namespace(), d.name());
            // A damaged file the journal cannot restore is replaced, never a failure.
            let live = match tx.get(&key) {
                Err(StoreError::Corrupt { .. }) => None,
                other => other.map_err(OpError::store)?,
            };
            let merged = apply_merge(live.as_ref(), &d.value);
            let verb = if live.is_some() {
                "patching"
            } else {
                "creating"
            };
            tx.apply(&key, merged).map_err(|source| OpError::Store {
                context: format!("error when {verb} {:?}: ", d.file),
                source: Box::new(source),
            })?;
        }
        Ok(())
    })?;
    for (d, outcome) in objects.iter().zip(committed.outcomes.iter()) {
        let word = match outcome.action {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
        };
        writeln!(io.out, "{} {word}", written_name(d.info, d.name()))?;
    }
    Ok(())
}

impl From<StoreError> for OpError {
    fn from(source: StoreError) -> Self {
        OpError::store(source)
    }
}
