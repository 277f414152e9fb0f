//! Certificate, key and CA values of a snapshot: inline PEM, or `file:<path>` read here (the
//! compiler is pure and never reads files). Configs built from them are cached by the callers,
//! so a changed file is picked up when the snapshot that names it changes.

use std::borrow::Cow;

use egress_snapshot::snapshot::PemSource;

/// The PEM text of `value`, reading the file it names if it is a `file:` reference.
pub fn resolve(value: &str) -> Result<Cow<'_, str>, String> {
    match PemSource::of(value) {
        PemSource::Inline(pem) => Ok(Cow::Borrowed(pem)),
        PemSource::File(path) => std::fs::read_to_string(path)
            .map(Cow::Owned)
            .map_err(|e| format!("reading {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_file_values() {
        assert_eq!(resolve("-----BEGIN X-----").unwrap(), "-----BEGIN X-----");
        let dir = std::env::temp_dir().join(format!("egress-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.pem");
        std::fs::write(&p, "PEM").unwrap();
        assert_eq!(resolve(&format!("file:{}", p.display())).unwrap(), "PEM");
        assert!(
            resolve("file:/nonexistent/x.pem")
                .unwrap_err()
                .contains("/nonexistent/x.pem")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
