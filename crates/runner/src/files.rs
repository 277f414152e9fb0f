//! Manifest files as kubectl reads `-f`: a file, or a directory's `.yaml`, `.yml` and `.json`
//! files in name order (recursively when asked). The one walker behind `--config DIR` and the
//! command line's `-f`.

use std::path::Path;

/// One input: the name shown in messages and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file name as given (`-` for standard input).
    pub name: String,
    /// Its content.
    pub text: String,
}

/// A path that could not be read, with why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct Unreadable {
    /// The path as shown to the user.
    pub path: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Reads `path` (shown as `shown`): a file as it is, a directory's manifests in name order,
/// its subdirectories' too when `recursive`.
pub fn read_manifests(
    path: &Path,
    shown: &str,
    recursive: bool,
) -> Result<Vec<Source>, Unreadable> {
    let mut out = Vec::new();
    read_path(path, shown, recursive, true, &mut out)?;
    Ok(out)
}

fn read_path(
    path: &Path,
    shown: &str,
    recursive: bool,
    top: bool,
    out: &mut Vec<Source>,
) -> Result<(), Unreadable> {
    let unreadable = |source| Unreadable {
        path: shown.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        if !top && !recursive {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let is_manifest = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            let shown = p.display().to_string();
            if p.is_dir() || is_manifest {
                read_path(&p, &shown, recursive, false, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    out.push(Source {
        name: shown.to_owned(),
        text,
    });
    Ok(())
}
