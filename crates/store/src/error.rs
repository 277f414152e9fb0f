//! Errors reported by the store, with texts modelled on the Kubernetes API server.

use std::fmt;
use std::path::PathBuf;

use crate::key::ObjectKey;

/// Everything that can go wrong while reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (`configmaps "foo" not found`).
    #[error("{} \"{}\" not found", .key.qualified_resource(), .key.name)]
    NotFound {
        /// The key that was looked up.
        key: ObjectKey,
    },
    /// A create found an object with the same key.
    #[error("{} \"{}\" already exists", .key.qualified_resource(), .key.name)]
    AlreadyExists {
        /// The key that was created.
        key: ObjectKey,
    },
    /// An update's expected resourceVersion did not match the stored one.
    #[error(
        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
         please apply your changes to the latest version and try again",
        .key.qualified_resource(),
        .key.name
    )]
    Conflict {
        /// The key that was updated.
        key: ObjectKey,
        /// The resourceVersion the caller expected.
        expected: u64,
        /// The resourceVersion actually stored.
        actual: u64,
    },
    /// A namespaced object was written into a namespace that does not exist.
    #[error("namespaces \"{ns}\" not found")]
    NamespaceNotFound {
        /// The missing namespace.
        ns: String,
    },
    /// A file of the store could not be parsed, or does not match its path.
    #[error("{}: {message}", Location { path, line: *line, column: *column })]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An I/O operation on a file of the store failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key component cannot be used as a path component.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidKey {
        /// Which component of the key (`group`, `kind`, `namespace`, `name`).
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The object passed to a write does not fit its key or is not an object.
    #[error("invalid object {key}: {message}")]
    InvalidObject {
        /// The key the object was written under.
        key: ObjectKey,
        /// What is wrong.
        message: String,
    },
    /// A watch asked for history that compaction has already dropped (HTTP 410 Gone).
    #[error("too old resource version: {rv} ({oldest})")]
    Expired {
        /// The resourceVersion the watcher asked to resume after.
        rv: u64,
        /// The oldest resourceVersion still retained in the journal.
        oldest: u64,
    },
    /// No store directory could be derived from the flag and the environment.
    #[error("cannot locate the store: pass --store, or set EGRESS_STORE, XDG_DATA_HOME or HOME")]
    NoStoreDir,
    /// A transaction was started while this thread already holds one on the same store.
    #[error("nested transaction on store {}: use the open transaction instead", .dir.display())]
    NestedTransaction {
        /// The store directory.
        dir: PathBuf,
    },
}

impl StoreError {
    /// Builds an [`StoreError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a [`StoreError::Corrupt`] from a JSON parse error.
    pub(crate) fn corrupt_json(path: impl Into<PathBuf>, err: &serde_json::Error) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            line: Some(err.line()),
            column: Some(err.column()),
            message: err.to_string(),
        }
    }

    /// Builds a [`StoreError::Corrupt`] without a position.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// True for [`StoreError::NotFound`] and [`StoreError::NamespaceNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. } | StoreError::NamespaceNotFound { .. }
        )
    }
}

/// `path`, `path:line` or `path:line:column`.
pub(crate) struct Location<'a> {
    pub(crate) path: &'a std::path::Path,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}
