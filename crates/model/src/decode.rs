//! Manifests to typed resources: strict decoding with the API server's messages, then
//! validation, with every finding placed at its file, line, object and field.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Cause, Diagnostic, Finding, ObjectRef, Severity};
use crate::kinds::{self, KindInfo};
use crate::resources::{CustomObject, Resource};
use crate::validate;
use crate::yaml::{self, Pos, Positions, YamlDocument};

/// How documents are placed into namespaces (kubectl's `-n`).
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Namespace for namespaced objects that do not name one.
    pub default_namespace: Option<String>,
    /// When true (the user passed `-n`), an object naming another namespace is an error.
    pub enforce_namespace: bool,
}

/// One successfully decoded object.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The file it came from, as the user named it.
    pub file: String,
    /// Its kind.
    pub info: &'static KindInfo,
    /// 0-based document index in the file.
    pub document: usize,
    /// Where the document starts.
    pub pos: Pos,
    /// The object as written (namespace filled in), the form that is stored.
    pub value: Value,
    /// The typed object.
    pub resource: Resource,
    /// Field positions.
    pub positions: Positions,
    /// Warnings (the object is still valid).
    pub warnings: Vec<Diagnostic>,
}

impl Decoded {
    /// `kind/namespace/name`.
    pub fn object_ref(&self) -> ObjectRef {
        object_ref(&self.value)
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// The object's namespace, for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

/// What became of one document.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Decoded and valid (possibly with warnings).
    Valid(Box<Decoded>),
    /// A kind egress does not model: reported, not judged.
    Unsupported {
        /// 0-based document index.
        document: usize,
        /// Where it starts.
        pos: Pos,
        /// `kind/namespace/name`.
        object: ObjectRef,
        /// Its `apiVersion`.
        api_version: String,
    },
    /// Refused: every error (and warning) found.
    Invalid(Vec<Diagnostic>),
}

impl Outcome {
    /// All diagnostics of this outcome.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Outcome::Valid(d) => d.warnings.clone(),
            Outcome::Unsupported { .. } => Vec::new(),
            Outcome::Invalid(d) => d.clone(),
        }
    }
}

/// Decode every document of a file. A YAML syntax error yields one `Invalid` outcome for the
/// document it is in, after the documents before it.
pub fn decode_file(file: &str, text: &str, opts: &DecodeOptions) -> Vec<Outcome> {
    match yaml::parse_stream(text) {
        Ok(docs) => yaml::expand_lists(docs)
            .into_iter()
            .map(|d| decode_document(file, d, opts))
            .collect(),
        Err(e) => vec![Outcome::Invalid(vec![Diagnostic {
            severity: Severity::Error,
            cause: Cause::Invalid,
            file: file.to_owned(),
            pos: Some(e.pos),
            document: e.document,
            object: None,
            field: String::new(),
            message: format!("error converting YAML to JSON: {}", e.message),
        }])],
    }
}

/// `kind/namespace/name` read from a JSON object, as far as it can be read.
pub fn object_ref(v: &Value) -> ObjectRef {
    ObjectRef {
        kind: v["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: v["metadata"]["namespace"].as_str().map(str::to_owned),
        name: v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Decode and validate one document.
pub fn decode_document(file: &str, doc: YamlDocument, opts: &DecodeOptions) -> Outcome {
    let YamlDocument {
        index,
        pos,
        mut value,
        positions,
    } = doc;
    let place = |findings: Vec<Finding>, v: &Value| -> Vec<Diagnostic> {
        findings
            .into_iter()
            .map(|f| Diagnostic {
                severity: f.severity,
                cause: f.cause,
                file: file.to_owned(),
                pos: positions.lookup(&f.field).or(Some(pos)),
                document: index,
                object: Some(object_ref(v)),
                field: f.field,
                message: f.message,
            })
            .collect()
    };
    let Value::Object(map) = &value else {
        return Outcome::Invalid(vec![Diagnostic {
            severity: Severity::Error,
            cause: Cause::Invalid,
            file: file.to_owned(),
            pos: Some(pos),
            document: index,
            object: None,
            field: String::new(),
            message: format!(
                "error unmarshaling JSON: document is {}, not an object",
                json_type(&value)
            ),
        }]);
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // istioctl judges Services and Deployments by kind alone; without an apiVersion they are
    // read as the core kinds they name, not refused.
    let by_kind = match kind.as_str() {
        "Service" => kinds::for_kind("", "Service"),
        "Deployment" => kinds::for_kind("apps", "Deployment"),
        _ => None,
    };
    let api_version = match by_kind {
        Some(info) if api_version.is_empty() => {
            let v = info.api_version();
            if let Value::Object(top) = &mut value {
                top.insert("apiVersion".into(), Value::String(v.clone()));
            }
            v
        }
        _ => api_version,
    };
    let mut missing = Vec::new();
    if api_version.is_empty() {
        missing.push(Finding::error("apiVersion", "apiVersion not set"));
    }
    if kind.is_empty() {
        missing.push(Finding::error("kind", "kind not set"));
    }
    if !missing.is_empty() {
        return Outcome::Invalid(place(missing, &value));
    }
    let Some(info) = kinds::for_manifest(&api_version, &kind) else {
        return Outcome::Unsupported {
            document: index,
            pos,
            object: object_ref(&value),
            api_version,
        };
    };

    // Namespace placement, as kubectl does it.
    let mut findings = Vec::new();
    if info.namespaced {
        let written = value["metadata"]["namespace"].as_str().map(str::to_owned);
        match (&written, &opts.default_namespace) {
            (Some(w), Some(d)) if opts.enforce_namespace && w != d => findings.push(Finding::error(
                "metadata.namespace",
                format!(
                    "the namespace from the provided object \"{w}\" does not match the namespace \"{d}\". You must pass '--namespace={w}' to perform this operation."
                ),
            )),
            (None, Some(d)) => {
                if let Some(Value::Object(m)) = value.get_mut("metadata") {
                    m.insert("namespace".into(), Value::String(d.clone()));
                } else if let Value::Object(top) = &mut value {
                    let mut m = serde_json::Map::new();
                    m.insert("namespace".into(), Value::String(d.clone()));
                    top.insert("metadata".into(), Value::Object(m));
                }
            }
            _ => {}
        }
    }

    let resource = match to_resource(info, &value) {
        Ok((resource, unknown)) => {
            findings.extend(unknown);
            resource
        }
        Err(errs) => {
            findings.extend(errs);
            return Outcome::Invalid(place(findings, &value));
        }
    };
    let report = validate::validate(&resource);
    findings.extend(report.findings);
    let diags = place(findings, &value);
    if diags.iter().any(Diagnostic::is_error) {
        return Outcome::Invalid(diags);
    }
    Outcome::Valid(Box::new(Decoded {
        file: file.to_owned(),
        info,
        document: index,
        pos,
        value,
        resource,
        positions,
        warnings: diags,
    }))
}

/// Decode a JSON object of a known kind into its typed form. Unknown fields come back as
/// errors beside the resource (strict decoding reports all of them, not just the first).
pub fn to_resource(
    info: &KindInfo,
    value: &Value,
) -> Result<(Resource, Vec<Finding>), Vec<Finding>> {
    fn t<T: DeserializeOwned>(v: &Value) -> Result<(T, Vec<Finding>), Vec<Finding>> {
        typed(v)
    }
    macro_rules! custom {
        ($variant:ident) => {
            t::<CustomObject<_>>(value).map(|(o, u)| (Resource::$variant(o), u))
        };
    }
    macro_rules! plain {
        ($variant:ident) => {
            t(value).map(|(o, u)| (Resource::$variant(o), u))
        };
    }
    match info.kind {
        "ServiceEntry" => custom!(ServiceEntry),
        "Gateway" => custom!(Gateway),
        "VirtualService" => custom!(VirtualService),
        "DestinationRule" => custom!(DestinationRule),
        "Sidecar" => custom!(Sidecar),
        "AuthorizationPolicy" => custom!(AuthorizationPolicy),
        "PeerAuthentication" => custom!(PeerAuthentication),
        "Telemetry" => custom!(Telemetry),
        "StaticGatewayConfiguration" => plain!(StaticGatewayConfiguration),
        "Namespace" => plain!(Namespace),
        "ConfigMap" => plain!(ConfigMap),
        "Secret" => plain!(Secret),
        "ServiceAccount" => plain!(ServiceAccount),
        "Service" => plain!(Service),
        "Pod" => plain!(Pod),
        "Deployment" => plain!(Deployment),
        "ReplicaSet" => plain!(ReplicaSet),
        "Event" => plain!(Event),
        "HorizontalPodAutoscaler" => plain!(HorizontalPodAutoscaler),
        "PodDisruptionBudget" => plain!(PodDisruptionBudget),
        "EndpointSlice" => plain!(EndpointSlice),
        other => Err(vec![Finding::error(
            "kind",
            format!("no typed model for kind {other:?}"),
        )]),
    }
}

/// Strictly decode `v` into `T`: type errors in the API server's words, unknown fields listed.
pub fn typed<T: DeserializeOwned>(v: &Value) -> Result<(T, Vec<Finding>), Vec<Finding>> {
    let mut unknown: Vec<String> = Vec::new();
    let result: Result<T, serde_path_to_error::Error<serde_json::Error>> = {
        let mut track = |path: serde_ignored::Path<'_>| {
            unknown.push(ignored_path(&path));
        };
        let de = serde_ignored::Deserializer::new(v, &mut track);
        serde_path_to_error::deserialize(de)
    };
    let unknown_findings: Vec<Finding> = unknown.into_iter().map(Finding::unknown_field).collect();
    match result {
        Ok(t) => {
            if unknown_findings.is_empty() {
                Ok((t, Vec::new()))
            } else {
                Err(unknown_findings)
            }
        }
        Err(e) => {
            let path = kubectl_path(&e.path().to_string());
            let mut out = unknown_findings;
            out.push(structural(&path, &e.inner().to_string(), v));
            Err(out)
        }
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => crate::diag::join(&ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// serde_path_to_error prints `.` for the root and `a.b[0].c` otherwise.
fn kubectl_path(p: &str) -> String {
    if p == "." {
        String::new()
    } else {
        p.to_owned()
    }
}

/// The JSON value at a kubectl-style path, if present.
pub fn value_at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    if path.is_empty() {
        return Some(cur);
    }
    for part in path.split('.') {
        let (name, idxs) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for ix in idxs.split('[').filter(|s| !s.is_empty()) {
            let n: usize = ix.trim_end_matches(']').parse().ok()?;
            cur = cur.get(n)?;
        }
    }
    Some(cur)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Turn a serde error into the API server's structural-schema wording.
fn structural(path: &str, msg: &str, root: &Value) -> Finding {
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let p = crate::diag::join(path, field);
        return Finding::error(p.clone(), format!("{p}: Required value"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let got = rest.split('`').next().unwrap_or_default();
        let supported: Vec<String> = rest
            .split("expected ")
            .nth(1)
            .unwrap_or_default()
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| format!("\"{s}\""))
            .collect();
        return Finding::error(
            path,
            format!(
                "{path}: Unsupported value: \"{got}\": supported values: {}",
                supported.join(", ")
            ),
        );
    }
    if let Some(bound) = unsigned_bound(msg, value_at(root, path)) {
        return Finding::error(path, bound(path));
    }
    if msg.starts_with("invalid type:") || msg.starts_with("invalid value:") {
        let expected = msg.rsplit("expected ").next().unwrap_or_default();
        let want = expected_json_type(expected);
        let got = value_at(root, path).map(json_type).unwrap_or("unknown");
        let shown = value_at(root, path)
            .map(|v| match v {
                Value::String(_) => format!("\"{got}\""),
                other => other.to_string(),
            })
            .unwrap_or_else(|| format!("\"{got}\""));
        return Finding::error(
            path,
            format!(
                "{path}: Invalid value: {shown}: {path} in body must be of type {want}: \"{got}\""
            ),
        );
    }
    Finding::error(path, format!("{path}: Invalid value: {msg}"))
}

/// An integer outside an unsigned field's range breaks the CRD's `minimum: 0` (or the type's
/// `maximum`): the API server's bound message, as a function of the field's path.
fn unsigned_bound(msg: &str, v: Option<&Value>) -> Option<impl Fn(&str) -> String> {
    let expected = msg
        .strip_prefix("invalid value: integer `")?
        .rsplit("expected ")
        .next()?;
    let max: u64 = match expected {
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        "u64" => u64::MAX,
        _ => return None,
    };
    let n = v?.as_i64();
    let shown = v?.to_string();
    let bound = match n {
        Some(n) if n < 0 => "greater than or equal to 0".to_owned(),
        _ => format!("less than or equal to {max}"),
    };
    Some(move |path: &str| {
        format!("{path}: Invalid value: {shown}: {path} in body should be {bound}")
    })
}

fn expected_json_type(expected: &str) -> &'static str {
    let e = expected.to_ascii_lowercase();
    if [
        "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "integer", "usize", "isize",
    ]
    .iter()
    .any(|t| e.contains(t))
    {
        "integer"
    } else if e.contains("f32") || e.contains("f64") || e.contains("float") {
        "number"
    } else if e.contains("bool") {
        "boolean"
    } else if e.contains("string") || e.contains("char") || e.contains("variant") {
        "string"
    } else if e.contains("sequence") || e.contains("array") {
        "array"
    } else {
        "object"
    }
}
