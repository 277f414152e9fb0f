//! `meta.json`: the applied resourceVersion, the oldest journal entry kept and the journal length.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::fsutil;

/// Contents of `<dir>/meta.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meta {
    /// Highest resourceVersion whose batch has been applied to the object files.
    pub(crate) resource_version: u64,
    /// Oldest resourceVersion still present in the journal (everything before was compacted).
    pub(crate) first_retained_resource_version: u64,
    /// Length in bytes of the journal prefix that has been applied.
    pub(crate) journal_length: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            resource_version: 0,
            first_retained_resource_version: 1,
            journal_length: 0,
        }
    }
}

impl Meta {
    /// Reads `meta.json`; `None` when it does not exist yet.
    pub(crate) fn load(path: &Path) -> Result<Option<Meta>, StoreError> {
        match fsutil::read_optional(path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::corrupt_json(path, &e)),
        }
    }

    /// Replaces `meta.json` atomically.
    pub(crate) fn save(&self, path: &Path, tmp: &Path, fsync: bool) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        fsutil::write_atomic(path, tmp, &bytes, fsync)?;
        if fsync && let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
        Ok(())
    }
}
