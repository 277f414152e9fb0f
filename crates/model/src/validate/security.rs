//! AuthorizationPolicy and PeerAuthentication validation (Istio's rules and messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::security::{AuthorizationPolicy, PeerAuthentication};

/// Validate an AuthorizationPolicy.
pub fn validate_authorization_policy(obj: &CustomObject<AuthorizationPolicy>, r: &mut Report) {
    let _ = (obj, r);
}

/// Validate a PeerAuthentication.
pub fn validate_peer_authentication(obj: &CustomObject<PeerAuthentication>, r: &mut Report) {
    let _ = (obj, r);
}
