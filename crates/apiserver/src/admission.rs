//! Admission: every object written through the API is decoded and validated as `egress apply`
//! validates it ([`egress_model::decode_file`]) before anything is stored; a refusal stores
//! nothing. Istio kinds are refused as Istio's validating webhook refuses them
//! (`admission webhook "validation.istio.io" denied the request: configuration is invalid: …`,
//! HTTP 400 without a reason, as the API server reports a webhook denial); built-in kinds as
//! the API server's own validation (`The Service "x" is invalid: spec.ports: Required value`,
//! 422 `Invalid`). Warnings go back as `Warning` headers, which kubectl prints.

use egress_model::{DecodeOptions, Diagnostic, Outcome, decode_file};
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
pub fn admit(path: &ResourcePath, mut object: Value) -> Result<Admitted, ApiError> {
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
        Some(Outcome::Valid(d)) if outcomes.is_empty() => Ok(Admitted {
            warnings: d.warnings.iter().map(|w| w.message.clone()).collect(),
            object: d.value,
        }),
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
    let causes: Vec<String> = errors
        .iter()
        .map(|d| {
            let prefixed = d
                .message
                .strip_prefix(d.field.as_str())
                .is_some_and(|rest| rest.starts_with(':'));
            if d.field.is_empty() || prefixed {
                d.message.clone()
            } else {
                format!("{}: {}", d.field, d.message)
            }
        })
        .collect();
    let joined = match causes.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    ApiError::Invalid {
        message: format!("{} {name:?} is invalid: {joined}", path.info.kind),
        kind: path.info.kind.to_owned(),
        name: name.to_owned(),
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
        )
        .unwrap();
        assert_eq!(ok.object["metadata"]["namespace"], "apps");
    }
}
