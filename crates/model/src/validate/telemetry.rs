//! Telemetry validation (Istio's rules and the CRD's structural messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::telemetry::Telemetry;

/// Validate a Telemetry.
pub fn validate(obj: &CustomObject<Telemetry>, r: &mut Report) {
    let _ = (obj, r);
}
