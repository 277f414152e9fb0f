//! Sidecar validation (Istio's webhook rules and messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::sidecar::Sidecar;

/// Validate a Sidecar.
pub fn validate(obj: &CustomObject<Sidecar>, r: &mut Report) {
    let _ = (obj, r);
}
