//! AuthorizationPolicy and PeerAuthentication validation (Istio's rules and messages).
//!
//! Both kinds are checked in two layers, as the API server does: the CRD's structural schema and
//! CEL rules first (messages in the API server's words, e.g. `spec: Invalid value: "object":
//! portLevelMtls requires selector`), then Istio's validating webhook (its exact texts). Both
//! layers are reported, so that every message Istio can give for a mistake is shown.

mod attributes;
mod authz;
pub(crate) mod policy;

use crate::diag::{Report, join};
use crate::resources::CustomObject;
use crate::resources::security::{AuthorizationPolicy, PeerAuthentication};

use policy::Layers;

/// Validate an AuthorizationPolicy.
pub fn validate_authorization_policy(obj: &CustomObject<AuthorizationPolicy>, r: &mut Report) {
    authz::validate(obj, r);
}

/// The result of the CRD's `int(key)` on a `portLevelMtls` key.
fn port_key(key: &str) -> Option<i64> {
    // CEL's string-to-int conversion is Go's strconv.ParseInt(s, 10, 64).
    let digits = key.strip_prefix(['+', '-']).unwrap_or(key);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<i64>().ok()
}

/// Validate a PeerAuthentication.
pub fn validate_peer_authentication(obj: &CustomObject<PeerAuthentication>, r: &mut Report) {
    let default = PeerAuthentication::default();
    let spec = obj.spec.as_ref().unwrap_or(&default);
    let mut layers = Layers::default();
    let crd = &mut layers.crd;

    if let Some(s) = &spec.selector {
        policy::selector_crd(crd, "spec.selector", s);
    }
    if let Some(ports) = &spec.port_level_mtls {
        let path = "spec.portLevelMtls";
        policy::min_properties(crd, path, ports.len());
        // `self.all(key, 0 < int(key) && int(key) <= 65535)`: a false element decides the
        // result; otherwise a conversion error surfaces as an evaluation error.
        let parsed: Vec<Option<i64>> = ports.keys().map(|k| port_key(k)).collect();
        const PORT_MSG: &str = "port must be between 1-65535";
        if parsed.iter().flatten().any(|p| !(1..=65535).contains(p)) {
            policy::cel(crd, path, "object", PORT_MSG);
        } else if parsed.iter().any(Option::is_none) {
            policy::cel_eval_error(
                crd,
                path,
                "object",
                "type conversion error from 'string' to 'int'",
                PORT_MSG,
            );
        }
    }
    let has_labels = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .is_some_and(|l| !l.is_empty());
    if spec.port_level_mtls.is_some() && !has_labels {
        policy::cel(crd, "spec", "object", "portLevelMtls requires selector");
    }

    // Istio's ValidatePeerAuthentication.
    let hook = &mut layers.hook;
    if let Some(ports) = &spec.port_level_mtls {
        if !has_labels && !ports.is_empty() {
            hook.error(
                "spec.portLevelMtls",
                "mesh/namespace peer authentication cannot have port level mTLS",
            );
        }
        if ports.is_empty() {
            hook.error(
                "spec.portLevelMtls",
                "port level mTLS, if defined, must have at least one element",
            );
        }
        for key in ports.keys() {
            if !port_key(key).is_some_and(|p| (1..=65535).contains(&p)) {
                hook.error(
                    join("spec.portLevelMtls", key),
                    "port must be in range 1..65535",
                );
            }
        }
    }
    policy::selector_webhook(hook, "spec.selector", spec.selector.as_ref());
    layers.finish(r);
}
