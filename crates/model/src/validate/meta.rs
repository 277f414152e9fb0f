//! Object metadata rules of the Kubernetes API server (names, namespaces, labels, annotations).

use crate::diag::Report;
use crate::resources::Resource;
use crate::validate::common::{
    is_k8s_dns1123_label, is_k8s_dns1123_subdomain, validate_label_key, validate_label_value,
};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1035_label(s: &str) -> bool {
    is_k8s_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Name, namespace, labels and annotations of any object.
pub fn validate_metadata(resource: &Resource, r: &mut Report) {
    let meta = resource.metadata();
    match meta.name.as_deref() {
        None | Some("") => r.error(
            "metadata.name",
            "metadata.name: Required value: name or generateName is required",
        ),
        Some(name) => {
            let (ok, msg) = match resource {
                Resource::Namespace(_) => (is_k8s_dns1123_label(name), LABEL_MSG),
                Resource::Service(_) => (is_dns1035_label(name), DNS1035_MSG),
                _ => (is_k8s_dns1123_subdomain(name), SUBDOMAIN_MSG),
            };
            if !ok {
                r.error(
                    "metadata.name",
                    format!("metadata.name: Invalid value: {name:?}: {msg}"),
                );
            }
        }
    }
    if let Some(ns) = meta.namespace.as_deref()
        && !is_k8s_dns1123_label(ns)
    {
        r.error(
            "metadata.namespace",
            format!("metadata.namespace: Invalid value: {ns:?}: {LABEL_MSG}"),
        );
    }
    if let Some(labels) = &meta.labels {
        for (k, v) in labels {
            if let Err(e) = validate_label_key(k) {
                r.error(
                    format!("metadata.labels.{k}"),
                    format!("metadata.labels: Invalid value: {k:?}: {e}"),
                );
            }
            if let Err(e) = validate_label_value(v) {
                r.error(
                    format!("metadata.labels.{k}"),
                    format!("metadata.labels: Invalid value: {e}"),
                );
            }
        }
    }
    if let Some(annotations) = &meta.annotations {
        let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > 256 * 1024 {
            r.error(
                "metadata.annotations",
                "metadata.annotations: Too long: must have at most 262144 bytes",
            );
        }
        for k in annotations.keys() {
            if let Err(e) = validate_label_key(k) {
                r.error(
                    format!("metadata.annotations.{k}"),
                    format!("metadata.annotations: Invalid value: {k:?}: {e}"),
                );
            }
        }
        // Istio's webhook wraps every Istio kind's validation with the dry-run check; only an
        // AuthorizationPolicy may carry the annotation (its value is checked with the policy).
        let istio_kind = matches!(
            resource,
            Resource::ServiceEntry(_)
                | Resource::Gateway(_)
                | Resource::VirtualService(_)
                | Resource::DestinationRule(_)
                | Resource::Sidecar(_)
                | Resource::PeerAuthentication(_)
                | Resource::Telemetry(_)
        );
        if istio_kind && annotations.contains_key("istio.io/dry-run") {
            let ns = meta.namespace.as_deref().unwrap_or_default();
            let name = meta.name.as_deref().unwrap_or_default();
            r.error(
                "metadata.annotations.istio.io/dry-run",
                format!(
                    "{ns}/{name} has unsupported annotation istio.io/dry-run, please remove the annotation"
                ),
            );
        }
        if annotations
            .keys()
            .any(|k| k.starts_with("internal.istio.io/parents"))
        {
            r.error(
                "metadata.annotations",
                "annotation internal.istio.io/parents is reserved for internal use",
            );
        }
    }
}
