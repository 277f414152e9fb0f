//! Reading `-f FILE|DIR|-` arguments into named texts, as kubectl does.

use std::io::Read;
use std::path::Path;

use crate::error::OpError;

/// The Istio `curl` sample, served for its well-known URL so the seed works offline.
pub const CURL_SAMPLE: &str = include_str!("../../../samples/curl.yaml");

/// One input: the name shown in messages and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name as given (`-` for standard input).
    pub name: String,
    /// Its content.
    pub text: String,
}

/// Read every `-f` argument: files, directories (their `.yaml`, `.yml` and `.json` files in name
/// order; recursively with `recursive`), `-` for standard input, and the Istio curl sample URL.
pub fn read_sources(
    args: &[String],
    recursive: bool,
    stdin: &mut dyn Read,
) -> Result<Vec<Source>, OpError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| OpError::Read {
                    path: "-".into(),
                    source,
                })?;
            out.push(Source {
                name: "-".into(),
                text,
            });
        } else if arg.starts_with("http://") || arg.starts_with("https://") {
            if arg.ends_with("/samples/curl/curl.yaml")
                || arg.ends_with("/samples/sleep/sleep.yaml")
            {
                out.push(Source {
                    name: arg.clone(),
                    text: CURL_SAMPLE.to_owned(),
                });
            } else {
                return Err(OpError::Usage(format!(
                    "unable to read URL {arg:?}: egress reads manifests from files only (download it and pass the file)"
                )));
            }
        } else {
            read_path(Path::new(arg), arg, recursive, true, &mut out)?;
        }
    }
    Ok(out)
}

fn read_path(
    path: &Path,
    shown: &str,
    recursive: bool,
    top: bool,
    out: &mut Vec<Source>,
) -> Result<(), OpError> {
    let meta = std::fs::metadata(path).map_err(|source| OpError::Read {
        path: shown.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        if !top && !recursive {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|source| OpError::Read {
                path: shown.to_owned(),
                source,
            })?
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
    let text = std::fs::read_to_string(path).map_err(|source| OpError::Read {
        path: shown.to_owned(),
        source,
    })?;
    out.push(Source {
        name: shown.to_owned(),
        text,
    });
    Ok(())
}
