//! A finding: Istio's code, level and message, the resource, and where it is.

use std::fmt;

/// istioctl's message levels, ordered Info < Warning < Error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Informational.
    Info,
    /// A likely problem.
    Warning,
    /// A definite problem.
    Error,
}

impl Level {
    /// `Info`, `Warning`, `Error` as istioctl prints them.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        }
    }

    /// Parse istioctl's threshold names (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One analyzer message about one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Istio's code, e.g. `IST0101`.
    pub code: &'static str,
    /// Istio's name for it, e.g. `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// Its level.
    pub level: Level,
    /// The message text as istioctl prints it.
    pub message: String,
    /// The resource's kind.
    pub kind: String,
    /// Its namespace (may be empty).
    pub namespace: String,
    /// Its name.
    pub name_of_resource: String,
    /// The file it came from, if any.
    pub file: Option<String>,
    /// The line the message points at, if from a file.
    pub line: Option<usize>,
    /// Istio's documentation page for the code.
    pub documentation_url: String,
}

impl Finding {
    /// `ns/name` or `name`.
    pub fn resource_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name_of_resource.clone()
        } else {
            format!("{}/{}", self.namespace, self.name_of_resource)
        }
    }

    /// `KIND ns/name file:line` as in istioctl's origin field.
    pub fn origin(&self) -> String {
        let mut s = format!("{} {}", self.kind, self.resource_name());
        if let Some(file) = &self.file {
            s.push(' ');
            s.push_str(file);
            if let Some(line) = self.line {
                s.push_str(&format!(":{line}"));
            }
        }
        s
    }
}

/// istioctl's `log` line: `Error [IST0101] (VirtualService ns/name file:line) message`.
pub fn format_log(f: &Finding) -> String {
    format!("{} [{}] ({}) {}", f.level, f.code, f.origin(), f.message)
}
