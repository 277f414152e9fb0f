//! Suppressing findings: `--suppress "CODE=KIND ns/name"` (with `*` wildcards) and the
//! `galley.istio.io/analyze-suppress` annotation (comma-separated codes, or `*`).

use crate::{Finding, Input};

/// The annotation that suppresses codes on the resource carrying it.
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

/// A `--suppress` argument could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SuppressionError(pub String);

/// One `--suppress "CODE=KIND ns/name"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The code pattern (`IST0102`, `*`).
    pub code: String,
    /// The resource pattern (`Namespace frod`, `Pod foo.*`, `VirtualService ns/name`).
    pub resource: String,
}

impl Suppression {
    /// Parse `CODE=RESOURCE`.
    pub fn parse(s: &str) -> Result<Suppression, SuppressionError> {
        let (code, resource) = s.split_once('=').ok_or_else(|| {
            SuppressionError(format!(
                "suppression {s:?} is not in the form CODE=KIND NAME"
            ))
        })?;
        if code.trim().is_empty() || resource.trim().is_empty() {
            return Err(SuppressionError(format!(
                "suppression {s:?} is not in the form CODE=KIND NAME"
            )));
        }
        Ok(Suppression {
            code: code.trim().to_owned(),
            resource: resource.trim().to_owned(),
        })
    }

    fn matches(&self, f: &Finding) -> bool {
        if !glob(&self.code, f.code) {
            return false;
        }
        let full = format!("{} {}", f.kind, f.resource_name());
        // istioctl also accepts the older `name.namespace` spelling.
        let dotted = if f.namespace.is_empty() {
            full.clone()
        } else {
            format!("{} {}.{}", f.kind, f.name_of_resource, f.namespace)
        };
        glob(&self.resource, &full) || glob(&self.resource, &dotted)
    }
}

/// True when `f` is suppressed by a flag or by its resource's annotation.
pub(crate) fn suppressed(f: &Finding, inputs: &[Input], flags: &[Suppression]) -> bool {
    if flags.iter().any(|s| s.matches(f)) {
        return true;
    }
    inputs
        .iter()
        .filter(|i| i.kind == f.kind && i.namespace == f.namespace && i.name == f.name_of_resource)
        .filter_map(|i| i.annotation(SUPPRESS_ANNOTATION))
        .any(|codes| {
            codes
                .split(',')
                .map(str::trim)
                .any(|c| c == "*" || c == f.code)
        })
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("IST01*", "IST0101"));
        assert!(glob("*", "x"));
        assert!(glob("Pod foo*bar", "Pod foo-x-bar"));
        assert!(!glob("Pod foo*bar", "Pod foo-x-baz"));
        assert!(!glob("IST0101", "IST0102"));
    }
}
