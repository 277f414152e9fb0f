//! Istio's `serviceentry` analyzers: addresses required for TCP ports (IST0134).

use serde_json::Value;

use super::messages::ADDRESSES_REQUIRED;
use super::{of_kind, report};
use crate::{Finding, Input};

/// `serviceentry.ProtocolAddressesAnalyzer`: a ServiceEntry without `addresses` and a port whose
/// protocol is TCP or unset: IST0134, once per such port. (istioctl skips this when the
/// MeshConfig's proxy metadata turns on DNS capture with auto-allocation; egress has no such
/// mode, so it always checks.)
pub(super) fn addresses(inputs: &[Input], out: &mut Vec<Finding>) {
    for se in of_kind(inputs, "ServiceEntry") {
        if se.get(&["spec", "addresses"]).is_some_and(|a| !a.is_null()) {
            continue;
        }
        let ports = se
            .get(&["spec", "ports"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if proto.is_empty() || proto == "TCP" {
                report(
                    out,
                    &ADDRESSES_REQUIRED,
                    se,
                    &format!("spec.ports[{i}]"),
                    "ServiceEntry addresses are required for this protocol.".to_owned(),
                );
            }
        }
    }
}
