//! Istio's `externalcontrolplane.ExternalControlPlaneAnalyzer`: the webhook URLs of Istio's
//! validating (`istiod-default-validator`, `istio-validator…`) and injecting
//! (`istio-sidecar-injector…`) webhook configurations, which point at an external control plane
//! when set: blank (no URL and no Service) or malformed (IST0163), an IP address (IST0164).
//!
//! istioctl also resolves the URL's hostname and reports one that does not resolve; the crate
//! does no I/O, so a well-formed hostname passes.

use std::net::IpAddr;

use serde_json::Value;

use super::messages::{EXTERNAL_CONTROL_PLANE_ADDRESS_IS_IP, INVALID_EXTERNAL_CONTROL_PLANE};
use super::{array, of_kind, report, str_of};
use crate::{Finding, Input};

/// Is the webhook configuration one of Istio's?
fn istio_webhooks(r: &Input) -> bool {
    match r.kind.as_str() {
        "ValidatingWebhookConfiguration" => {
            r.name == "istiod-default-validator" || r.name.starts_with("istio-validator")
        }
        "MutatingWebhookConfiguration" => r.name.starts_with("istio-sidecar-injector"),
        _ => false,
    }
}

/// Go's `url.Parse` errors that a webhook URL can hit: control characters, a missing or invalid
/// scheme, a bad percent-escape, a non-numeric port.
fn parse_error(url: &str) -> bool {
    if url.chars().any(|c| c.is_ascii_control()) {
        return true;
    }
    let bad_escape = url.match_indices('%').any(|(i, _)| {
        let hex = url.get(i + 1..i + 3).unwrap_or_default();
        hex.len() != 2 || !hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if bad_escape {
        return true;
    }
    let Some(colon) = url.find(':') else {
        return false;
    };
    let before = &url[..colon];
    if before.contains(['/', '?', '#']) {
        return false;
    }
    let scheme_ok = before
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && before
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return true;
    }
    let rest = &url[colon + 1..];
    let Some(authority) = rest.strip_prefix("//") else {
        return false;
    };
    let host_port = authority_of(authority);
    let port = match host_port.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.is_some_and(|p| !p.chars().all(|c| c.is_ascii_digit()))
}

/// The `host:port` of an authority (after `//`): up to the path, query or fragment, without
/// user information.
fn authority_of(authority: &str) -> &str {
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let authority = &authority[..end];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Go's `url.URL.Hostname()`: the host without port or IPv6 brackets.
fn hostname(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let host_port = authority_of(rest);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(h, _)| h);
    }
    host_port.split_once(':').map_or(host_port, |(h, _)| h)
}

fn check(out: &mut Vec<Finding>, r: &Input, hook: &Value) {
    let name = str_of(hook, "name");
    let client = hook.get("clientConfig");
    match client.and_then(|c| c.get("url")).and_then(Value::as_str) {
        Some(url) if parse_error(url) => report(
            out,
            &INVALID_EXTERNAL_CONTROL_PLANE,
            r,
            "",
            format!(
                "The hostname ({url}) that was provided for the webhook ({name}) to reach the ingress gateway on the external control plane cluster was provided in an invalid format. Traffic may not flow properly."
            ),
        ),
        Some(url) if hostname(url).parse::<IpAddr>().is_ok() => report(
            out,
            &EXTERNAL_CONTROL_PLANE_ADDRESS_IS_IP,
            r,
            "",
            format!(
                "The address ({url}) that was provided for the webhook ({name}) to reach the ingress gateway on the external control plane cluster is an IP address. This is not recommended for a production environment."
            ),
        ),
        Some(_) => {}
        None if client
            .and_then(|c| c.get("service"))
            .is_none_or(Value::is_null) =>
        {
            report(
                out,
                &INVALID_EXTERNAL_CONTROL_PLANE,
                r,
                "",
                format!(
                    "The hostname () that was provided for the webhook ({name}) to reach the ingress gateway on the external control plane cluster is blank. Traffic may not flow properly."
                ),
            )
        }
        None => {}
    }
}

/// IST0163 / IST0164, per webhook of Istio's webhook configurations.
pub(super) fn external_control_plane(inputs: &[Input], out: &mut Vec<Finding>) {
    let configs = of_kind(inputs, "ValidatingWebhookConfiguration")
        .chain(of_kind(inputs, "MutatingWebhookConfiguration"));
    for r in configs.filter(|r| istio_webhooks(r)) {
        for hook in array(r.value.get("webhooks")) {
            check(out, r, hook);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(hooks: Value) -> Vec<Finding> {
        let r = Input::new(
            json!({"kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-sidecar-injector"}, "webhooks": hooks}),
            None,
        )
        .unwrap_or_else(|| panic!("not an object"));
        let mut out = Vec::new();
        external_control_plane(&[r], &mut out);
        out
    }

    #[test]
    fn service_references_and_hostnames_pass() {
        let out = run(json!([
            {"name": "a", "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system"}}},
            {"name": "b", "clientConfig": {"url": "https://istiod.example.com:15017/inject"}},
        ]));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn ipv6_and_malformed_urls() {
        let out = run(json!([
            {"name": "v6", "clientConfig": {"url": "https://[2001:db8::1]:15017/inject"}},
            {"name": "bad-port", "clientConfig": {"url": "https://istiod:abc/inject"}},
            {"name": "bad-scheme", "clientConfig": {"url": "1https://istiod/inject"}},
            {"name": "blank", "clientConfig": {}},
        ]));
        let codes: Vec<&str> = out.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["IST0164", "IST0163", "IST0163", "IST0163"]);
        assert!(out[1].message.contains("(https://istiod:abc/inject)"));
        assert!(
            out[1]
                .message
                .ends_with("was provided in an invalid format. Traffic may not flow properly.")
        );
        assert!(
            out[3]
                .message
                .starts_with("The hostname () that was provided for the webhook (blank)")
        );
    }

    #[test]
    fn other_webhook_configurations_are_ignored() {
        let r = Input::new(
            json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "cert-manager"},
                "webhooks": [{"name": "x", "clientConfig": {}}]}),
            None,
        )
        .unwrap_or_else(|| panic!("not an object"));
        let mut out = Vec::new();
        external_control_plane(&[r], &mut out);
        assert!(out.is_empty());
    }
}
