//! `egress validate -f FILE...`: istioctl-style validation; every error listed, exit non-zero
//! when any document is invalid.

use egress_model::{DecodeOptions, Outcome, decode_file};

use crate::input::Source;
use crate::{Io, OpError};

/// Validate every source; print findings; `Err` when any error was found.
pub fn run(sources: &[Source], io: &mut Io<'_>) -> Result<(), OpError> {
    let opts = DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    };
    let mut errors = 0usize;
    let mut clean = Vec::new();
    for src in sources {
        let mut file_errors = 0usize;
        for outcome in decode_file(&src.name, &src.text, &opts) {
            match outcome {
                Outcome::Valid(d) => {
                    for w in &d.warnings {
                        writeln!(io.err, "Warning: {w}")?;
                    }
                }
                Outcome::Invalid(diags) => {
                    for d in &diags {
                        if d.is_error() {
                            file_errors += 1;
                            writeln!(io.err, "{d}")?;
                        } else {
                            writeln!(io.err, "Warning: {d}")?;
                        }
                    }
                }
                Outcome::Unsupported {
                    pos,
                    object,
                    api_version,
                    ..
                } => {
                    writeln!(
                        io.err,
                        "{}:{}:{}: skipped: {object} ({api_version}) is not a kind egress validates",
                        src.name, pos.line, pos.col
                    )?;
                }
            }
        }
        errors += file_errors;
        if file_errors == 0 {
            clean.push(src.name.clone());
        }
    }
    if errors > 0 {
        return Err(OpError::Invalid(format!("{errors} error(s) occurred")));
    }
    for name in clean {
        if name == "-" {
            writeln!(io.out, "validation succeed")?;
        } else {
            writeln!(io.out, "{name:?} is valid")?;
        }
    }
    Ok(())
}
