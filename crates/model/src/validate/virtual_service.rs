//! VirtualService validation (Istio's webhook rules and messages).

use crate::diag::Report;
use crate::resources::CustomObject;
use crate::resources::virtual_service::VirtualService;

/// Validate a VirtualService.
pub fn validate(obj: &CustomObject<VirtualService>, r: &mut Report) {
    let _ = (obj, r);
}
