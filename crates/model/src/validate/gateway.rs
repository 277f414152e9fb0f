//! Gateway validation (Istio's webhook rules and messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::gateway::Gateway;

/// Validate a Gateway.
pub fn validate(obj: &CustomObject<Gateway>, r: &mut Report) {
    let _ = (obj, r);
}
