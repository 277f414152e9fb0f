//! Errors of the command's operations, printed the way kubectl prints them.

use egress_store::StoreError;

/// An operation failed; `Display` is the text printed after `error: ` (or a full
/// `Error from server (...)` line, as kubectl prints server errors).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The command line was wrong (a flag, an argument, a selector or template).
    #[error("{0}")]
    Usage(String),
    /// This machine or user cannot do what was asked (not root, a tool missing, the local
    /// cluster already running or not starting).
    #[error("{0}")]
    Environment(String),
    /// An operation failed with a typed cause, kept as the error's source; `context` says what
    /// was being done.
    #[error("{context}: {source}")]
    Failed {
        /// e.g. `workload certificate from the CA`.
        context: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An operation failed with a typed cause that says it all.
    #[error(transparent)]
    Cause(Box<dyn std::error::Error + Send + Sync>),
    /// Input was refused; the diagnostics were already printed.
    #[error("{0}")]
    Invalid(String),
    /// A message already in kubectl's full form (`Error from server (...)`, `error: ...`),
    /// printed as it is.
    #[error("{0}")]
    Reported(String),
    /// The store refused or failed; `context` says what was being done.
    #[error("Error from server ({}): {context}{source}", reason(source))]
    Store {
        /// e.g. `error when creating "cnn.yaml": `.
        context: String,
        /// The store's error.
        source: Box<StoreError>,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path as the user gave it.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing output failed (e.g. a closed pipe).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

fn reason(e: &StoreError) -> &'static str {
    if e.is_not_found() {
        "NotFound"
    } else {
        match e {
            StoreError::AlreadyExists { .. } => "AlreadyExists",
            StoreError::Conflict { .. } => "Conflict",
            _ => "InternalError",
        }
    }
}

impl OpError {
    /// `source`, which happened while doing `context`.
    pub fn failed(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        OpError::Failed {
            context: context.into(),
            source: source.into(),
        }
    }

    /// `source` as it is.
    pub fn cause(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        OpError::Cause(source.into())
    }

    /// Prints this error as kubectl would (kubectl's `Error from server` lines and messages
    /// that carry their own `error:` as they are, the others after `error: `) and returns the
    /// exit code: the one reporter of every command.
    pub fn report(&self, err: &mut dyn std::io::Write) -> std::process::ExitCode {
        let _ = if self.is_prefixed() {
            writeln!(err, "{self}")
        } else {
            writeln!(err, "error: {self}")
        };
        std::process::ExitCode::FAILURE
    }

    /// A store error without context.
    pub fn store(source: StoreError) -> Self {
        OpError::Store {
            context: String::new(),
            source: Box::new(source),
        }
    }

    /// True when this error's text is printed as it is (kubectl's `Error from server` lines
    /// and messages that carry their own `error:`); the others get an `error: ` prefix.
    pub fn is_prefixed(&self) -> bool {
        matches!(self, OpError::Store { .. } | OpError::Reported(_))
    }
}
