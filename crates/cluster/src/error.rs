//! The local cluster's errors.

use std::path::PathBuf;

/// What can stop the local cluster or one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] egress_store::StoreError),
    /// A file of the local cluster (pid, log) could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another `egress up` already runs on this store.
    #[error(
        "the local cluster is already running on {dir} (pid {pid}); stop it with \"egress down\""
    )]
    AlreadyRunning {
        /// The store directory.
        dir: PathBuf,
        /// Its pid, as written in the pid file.
        pid: String,
    },
    /// No `egress up` runs on this store.
    #[error("the local cluster is not running on {dir}")]
    NotRunning {
        /// The store directory.
        dir: PathBuf,
    },
    /// The mesh CA could not be loaded or created.
    #[error("mesh CA: {0}")]
    Ca(String),
    /// A setting is invalid.
    #[error("{0}")]
    Settings(String),
}

impl ClusterError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ClusterError {
        ClusterError::Io {
            path: path.into(),
            source,
        }
    }
}
