//! Admission: every object written through the API is decoded and validated as `egress apply`
//! validates it ([`egress_model::decode_file`]) before anything is stored; a refusal stores
//! nothing. Istio kinds are refused as Istio's validating webhook refuses them
//! (`admission webhook "validation.istio.io" denied the request: configuration is invalid: …`,
//! HTTP 400 without a reason, as the API server reports a webhook denial); built-in kinds as
//! the API server's own validation (`The Service "x" is invalid: spec.ports: Required value`,
//! 422 `Invalid`). Warnings go back as `Warning` headers, which kubectl prints.

use egress_model::{Cause, DecodeOptions, Diagnostic, Outcome, decode_file};
use serde_json::Value;

use crate::path::ResourcePath;
use crate::status::ApiError;

/// An admitted object: what is stored, and the warnings to return.
#[derive(Debug)]
pub struct Admitted {
    /// The object as it is stored.
    pub object: Value,
    /// Warnings (`299 - "..."` headers).
    pub warnings: Vec<String>,
}

/// Validates `object`, written to `path`.
/// What to do with fields the kind does not declare (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refuse the request (kubectl's default, `--validate=strict`).
    Strict,
    /// Drop them, with a warning each (the API server's default without the parameter).
    Warn,
    /// Drop them silently (`--validate=false`).
    Ignore,
}

impl FieldValidation {
    /// From the request's `fieldValidation` parameter.
    pub fn of(q: &crate::objects::Query) -> FieldValidation {
        match q.get("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

/// Admits `object` for `path`; fields the kind does not declare are handled as `validation`
/// says, as the API server's strict decoding does.
pub fn admit(
    path: &ResourcePath,
    object: Value,
    validation: FieldValidation,
) -> Result<Admitted, ApiError> {
    match admit_decoded(path, object.clone())? {
        Ok(admitted) => Ok(admitted),
        Err(unknown) if validation == FieldValidation::Strict => {
            let kind = path.info.kind;
            let version = path.api_version();
            let version = version.rsplit('/').next().unwrap_or_default();
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::BadRequest(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                fields.join(", ")
            )))
        }
        Err(unknown) => {
            let mut pruned = object;
            for f in &unknown {
                prune(&mut pruned, f);
            }
            match admit_decoded(path, pruned)? {
                Ok(mut admitted) => {
                    if validation == FieldValidation::Warn {
                        admitted
                            .warnings
                            .extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
                    }
                    Ok(admitted)
                }
                Err(still) => Err(ApiError::BadRequest(format!(
                    "unknown fields remain after pruning: {}",
                    still.join(", ")
                ))),
            }
        }
    }
}

/// Removes the field at a kubectl path (`spec.ports[1].nme`).
fn prune(v: &mut Value, field: &str) {
    let mut steps: Vec<Result<usize, String>> = Vec::new();
    for part in field.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            steps.push(Err(key.to_owned()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse::<usize>() {
                steps.push(Ok(i));
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut cur = v;
    for s in parents {
        let next = match s {
            Ok(i) => cur.get_mut(*i),
            Err(k) => cur.get_mut(k.as_str()),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let (Err(k), Some(m)) = (last, cur.as_object_mut()) {
        m.remove(k.as_str());
    }
}

/// Decodes and validates; `Ok(Err(fields))` when the only errors are undeclared fields.
fn admit_decoded(
    path: &ResourcePath,
    mut object: Value,
) -> Result<Result<Admitted, Vec<String>>, ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::BadRequest("the body is not a JSON object".into()));
    };
    // The path decides kind, version and namespace, as the API server does.
    map.entry("apiVersion")
        .or_insert_with(|| Value::from(path.api_version()));
    map.entry("kind")
        .or_insert_with(|| Value::from(path.info.kind));
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != path.info.kind {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            map.get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            path.api_version()
        )));
    }
    let text = serde_json::to_string(&object).map_err(|e| ApiError::Internal(e.to_string()))?;
    let opts = DecodeOptions {
        default_namespace: path.namespace.clone(),
        enforce_namespace: path.namespace.is_some(),
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut outcomes = decode_file("-", &text, &opts);
    match outcomes.pop() {
        Some(Outcome::Valid(d)) if outcomes.is_empty() => Ok(Ok(Admitted {
            warnings: d.warnings.iter().map(|w| w.message.clone()).collect(),
            object: d.value,
        })),
        // Decoding comes before validation: undeclared fields first, alone.
        Some(Outcome::Invalid(diags))
            if diags
                .iter()
                .any(|d| d.is_error() && d.cause == Cause::UnknownField) =>
        {
            Ok(Err(diags
                .iter()
                .filter(|d| d.is_error() && d.cause == Cause::UnknownField)
                .map(|d| d.field.clone())
                .collect()))
        }
        Some(Outcome::Invalid(diags)) => Err(refusal(path, &name, &diags)),
        _ => Err(ApiError::BadRequest(format!(
            "no matches for kind {:?} in version {:?}",
            path.info.kind,
            path.api_version()
        ))),
    }
}

/// The error a refused object gets.
fn refusal(path: &ResourcePath, name: &str, diags: &[Diagnostic]) -> ApiError {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    if path.info.group.ends_with("istio.io") {
        let message = match errors.as_slice() {
            [one] => one.message.clone(),
            many => {
                // hashicorp/go-multierror's format, which Istio's webhook returns.
                let mut m = format!("{} errors occurred:\n", many.len());
                for d in many {
                    m.push_str(&format!("\t* {}\n", d.message));
                }
                m.push('\n');
                m
            }
        };
        return ApiError::Denied(format!(
            "admission webhook \"validation.istio.io\" denied the request: configuration is invalid: {message}"
        ));
    }
    let causes: Vec<(String, String)> = errors
        .iter()
        .map(|d| {
            let message = d
                .message
                .strip_prefix(d.field.as_str())
                .and_then(|rest| rest.strip_prefix(':'))
                .map_or(d.message.as_str(), str::trim_start);
            (d.field.clone(), message.to_owned())
        })
        .collect();
    let printed: Vec<String> = causes
        .iter()
        .map(|(field, message)| {
            if field.is_empty() {
                message.clone()
            } else {
                format!("{field}: {message}")
            }
        })
        .collect();
    let joined = match printed.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    ApiError::Invalid {
        message: format!("{} {name:?} is invalid: {joined}", path.info.kind),
        kind: path.info.kind.to_owned(),
        name: name.to_owned(),
        causes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::path::{Target, parse};
    use serde_json::json;

    fn at(path: &str) -> ResourcePath {
        match parse(path).unwrap() {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_invalid_virtual_service_is_denied_as_istios_webhook_denies_it() {
        let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "bad"}, "spec": {"hosts": ["a.example.org"], "http": [{"route": [{"destination": {"host": ""}}]}]}});
        let err = admit(
            &at("/apis/networking.istio.io/v1/namespaces/apps/virtualservices"),
            vs,
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!((err.code(), err.reason()), (400, ""));
        let m = err.to_string();
        assert!(
            m.starts_with("admission webhook \"validation.istio.io\" denied the request: configuration is invalid: "),
            "{m}"
        );
    }

    #[test]
    fn a_valid_object_is_admitted_with_its_namespace() {
        let se = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "cnn"}, "spec": {"hosts": ["edition.cnn.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "DNS"}});
        let ok = admit(
            &at("/apis/networking.istio.io/v1/namespaces/apps/serviceentries"),
            se,
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(ok.object["metadata"]["namespace"], "apps");
    }

    #[test]
    fn undeclared_fields_are_refused_warned_about_or_dropped_as_asked() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x"}, "spec": {"replicass": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "y", "imagee": "z"}]}}}});
        let path = at("/apis/apps/v1/namespaces/apps/deployments");
        let err = admit(&path, deploy.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!((err.code(), err.reason()), (400, "BadRequest"));
        assert_eq!(
            err.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\", unknown field \"spec.template.spec.containers[0].imagee\""
        );
        let warned = admit(&path, deploy.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            warned.warnings,
            [
                "unknown field \"spec.replicass\"",
                "unknown field \"spec.template.spec.containers[0].imagee\""
            ]
        );
        assert!(warned.object["spec"].get("replicass").is_none());
        let ignored = admit(&path, deploy, FieldValidation::Ignore).unwrap();
        assert!(ignored.warnings.is_empty());
        assert!(
            ignored.object["spec"]["template"]["spec"]["containers"][0]
                .get("imagee")
                .is_none()
        );
        // Undeclared fields of an Istio kind too: decoding comes before the webhook.
        let se = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "cnn"}, "spec": {"hostz": ["a"], "hosts": ["edition.cnn.com"]}});
        let err = admit(
            &at("/apis/networking.istio.io/v1/namespaces/apps/serviceentries"),
            se,
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServiceEntry in version \"v1\" cannot be handled as a ServiceEntry: strict decoding error: unknown field \"spec.hostz\""
        );
        // A value the kind refuses: 422 with one cause per field, as kubectl prints them.
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": -1}]}});
        let err = admit(
            &at("/api/v1/namespaces/apps/services"),
            svc,
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        let status = err.status();
        let causes = status["details"]["causes"].as_array().unwrap();
        assert!(!causes.is_empty(), "{status}");
        assert!(
            causes.iter().all(|c| c["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("spec.ports[0]"))),
            "{status}"
        );
    }
}
