//! `istioctl analyze`'s analyzers over a set of resources, pure and I/O-free: the input is the
//! resources (each with the file and positions it came from, when it came from a file), the
//! output is findings with Istio's code, level and message text.
//!
//! Flow: [`Input::from_documents`] (or [`Input::new`]) builds the inputs; [`analyze`] runs every
//! analyzer in [`ANALYZERS`] and drops what is suppressed ([`Suppression`], the
//! `galley.istio.io/analyze-suppress` annotation); [`format_log`] prints a finding as istioctl's
//! `log` output does.

mod analyzers;
mod finding;
mod suppress;

pub use analyzers::{ANALYZERS, AnalyzerInfo, OPTIONAL_ANALYZERS};
pub use finding::{Finding, Level, format_log};
pub use suppress::{SUPPRESS_ANNOTATION, Suppression, SuppressionError};

use egress_model::yaml::{Positions, YamlDocument};
use serde_json::Value;

/// Where a resource came from: a file and the positions of its fields.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The file name as the user gave it.
    pub file: String,
    /// The line of the document's first value.
    pub line: usize,
    /// Field positions inside the document.
    pub positions: Positions,
}

/// One resource given to the analyzers.
#[derive(Debug, Clone)]
pub struct Input {
    /// `kind` (e.g. `VirtualService`).
    pub kind: String,
    /// `metadata.namespace` (empty for cluster-scoped or when the file gave none).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The whole object.
    pub value: Value,
    /// Where it came from, if from a file.
    pub origin: Option<Origin>,
}

impl Input {
    /// An input from an object (from the store: no origin). Objects without kind or name are
    /// skipped (`None`).
    pub fn new(value: Value, origin: Option<Origin>) -> Option<Input> {
        let kind = value.get("kind")?.as_str()?.to_owned();
        let meta = value.get("metadata")?;
        let name = meta.get("name")?.as_str()?.to_owned();
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Some(Input {
            kind,
            namespace,
            name,
            value,
            origin,
        })
    }

    /// Inputs from a parsed YAML stream of file `file`. Documents without kind or name are
    /// skipped; a missing namespace becomes `default_namespace` when one is given.
    pub fn from_documents(
        file: &str,
        docs: Vec<YamlDocument>,
        default_namespace: Option<&str>,
    ) -> Vec<Input> {
        let mut out = Vec::new();
        for doc in docs {
            let origin = Origin {
                file: file.to_owned(),
                line: doc.pos.line,
                positions: doc.positions,
            };
            if let Some(mut input) = Input::new(doc.value, Some(origin)) {
                if input.namespace.is_empty()
                    && let Some(ns) = default_namespace
                    && !is_cluster_scoped(&input.kind)
                {
                    input.namespace = ns.to_owned();
                }
                out.push(input);
            }
        }
        out
    }

    /// `ns/name`, or `name` without a namespace.
    pub fn full_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    /// The line of field `path` (kubectl notation), or of the document.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let origin = self.origin.as_ref()?;
        Some(
            origin
                .positions
                .lookup(path)
                .map_or(origin.line, |p| p.line),
        )
    }

    /// The value at a JSON pointer-like path of keys.
    pub fn get(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().try_fold(&self.value, |v, k| v.get(*k))
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.get(&["metadata", "annotations", key])?.as_str()
    }
}

/// Kinds without a namespace.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
    )
}

/// Run every analyzer over `inputs`, then drop findings suppressed by `suppressions` or by the
/// resource's `galley.istio.io/analyze-suppress` annotation. Findings are sorted as istioctl
/// sorts them: errors first, then by resource and code; identical findings (several analyzers
/// report a Gateway selector matching no Pod) are kept once, as istioctl dedupes them.
pub fn analyze(inputs: &[Input], suppressions: &[Suppression]) -> Vec<Finding> {
    let mut out = Vec::new();
    for a in ANALYZERS {
        (a.run)(inputs, &mut out);
    }
    out.retain(|f| !suppress::suppressed(f, inputs, suppressions));
    out.sort_by(|a, b| {
        (
            b.level,
            &a.kind,
            &a.namespace,
            &a.name_of_resource,
            a.code,
            &a.message,
        )
            .cmp(&(
                a.level,
                &b.kind,
                &b.namespace,
                &b.name_of_resource,
                b.code,
                &b.message,
            ))
    });
    out.dedup_by(|a, b| {
        (
            a.code,
            &a.kind,
            &a.namespace,
            &a.name_of_resource,
            &a.message,
            a.line,
        ) == (
            b.code,
            &b.kind,
            &b.namespace,
            &b.name_of_resource,
            &b.message,
            b.line,
        )
    });
    out
}
