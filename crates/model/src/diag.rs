//! Diagnostics: what is wrong, in which file, line, object and field.

use std::fmt;

use crate::yaml::Pos;

/// Errors stop an object from being applied; warnings are printed and let it through
/// (as Istio's webhook distinguishes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The object is refused.
    Error,
    /// The object is accepted; the user is told.
    Warning,
}

/// A finding about one field of one object, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem it is.
    pub cause: Cause,
    /// kubectl-style field path (`spec.ports[1].name`); empty for the whole object.
    pub field: String,
    /// The message, in Istio's or the API server's words.
    pub message: String,
}

impl Finding {
    /// An error on `field`.
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            cause: Cause::Invalid,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A field the kind does not have (the API server's strict decoding error).
    pub fn unknown_field(field: impl Into<String>) -> Self {
        let field = field.into();
        Finding {
            severity: Severity::Error,
            cause: Cause::UnknownField,
            message: format!("unknown field \"{field}\""),
            field,
        }
    }

    /// A warning on `field`.
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            cause: Cause::Invalid,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What kind of problem a finding is, as the API server tells them apart: a field the kind
/// does not have is refused while decoding (`strict decoding error: unknown field "x"`,
/// 400), anything else by validation (422, or Istio's webhook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// A value the field does not admit (or a missing required one).
    #[default]
    Invalid,
    /// A field the kind does not declare.
    UnknownField,
}

/// `kind/namespace/name` of the object a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    /// The object's kind (`ServiceEntry`), or empty when it could not be read.
    pub kind: String,
    /// Namespace, when namespaced and known.
    pub namespace: Option<String>,
    /// Name, or empty when missing.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind.is_empty() {
            "<unknown kind>"
        } else {
            &self.kind
        };
        let name = if self.name.is_empty() {
            "<no name>"
        } else {
            &self.name
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind}/{ns}/{name}"),
            None => write!(f, "{kind}/{name}"),
        }
    }
}

/// A finding placed in its source: file, line, column, document and object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem it is.
    pub cause: Cause,
    /// The file as the user named it (`-` for standard input).
    pub file: String,
    /// Line and column of the field (or of the nearest enclosing field that exists).
    pub pos: Option<Pos>,
    /// 0-based index of the YAML document in the file.
    pub document: usize,
    /// The object, when known.
    pub object: Option<ObjectRef>,
    /// kubectl-style field path; empty for the whole object or file.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {sev}: ")?;
        match &self.object {
            Some(o) => write!(f, "{o}")?,
            None => write!(f, "document {}", self.document + 1)?,
        }
        // Structural messages already start with their field (`spec.hosts: Required value`).
        let prefixed = self
            .message
            .strip_prefix(self.field.as_str())
            .is_some_and(|rest| rest.starts_with(':'));
        if self.field.is_empty() || prefixed {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Findings collected while validating one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Everything found, in order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Record an error on `field`.
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding::error(field, message));
    }

    /// Record a warning on `field`.
    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding::warning(field, message));
    }

    /// True when any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The error messages only.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warning messages only.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }
}

/// Join a field path and a child name: `join("spec", "hosts")` = `spec.hosts`.
pub fn join(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_owned()
    } else {
        format!("{path}.{child}")
    }
}

/// Index a field path: `idx("spec.hosts", 2)` = `spec.hosts[2]`.
pub fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
