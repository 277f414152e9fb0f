//! ServiceEntry validation (Istio's webhook rules and messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::service_entry::ServiceEntry;

/// Validate a ServiceEntry.
pub fn validate(obj: &CustomObject<ServiceEntry>, r: &mut Report) {
    let _ = (obj, r);
}
