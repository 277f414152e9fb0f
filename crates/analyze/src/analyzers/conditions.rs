//! Istio's `conditions.ConditionAnalyzer`: status conditions Istio sets that report a problem
//! (IST0171), on Services, ServiceEntries, AuthorizationPolicies and Gateway API Gateways and
//! routes.

use serde_json::Value;

use super::messages::NEGATIVE_CONDITION_STATUS;
use super::{array, of_kind, report, str_of};
use crate::{Finding, Input};

/// Per kind, the condition types whose `False` status is negative.
const NEGATIVE: &[(&str, &[&str])] = &[
    ("Service", &["istio.io/WaypointBound"]),
    ("ServiceEntry", &["istio.io/WaypointBound"]),
    (
        "AuthorizationPolicy",
        &["ZtunnelAccepted", "WaypointAccepted"],
    ),
    (
        "KubernetesGateway",
        &["Accepted", "Programmed", "ResolvedRefs"],
    ),
    ("HTTPRoute", &["Accepted", "Programmed", "ResolvedRefs"]),
    ("GRPCRoute", &["Accepted", "Programmed", "ResolvedRefs"]),
];

/// A resource's conditions: `status.conditions`, or for routes each parent's conditions.
fn conditions<'a>(r: &'a Input, kind: &str) -> Vec<&'a Value> {
    if matches!(kind, "HTTPRoute" | "GRPCRoute") {
        array(r.get(&["status", "parents"]))
            .iter()
            .flat_map(|p| array(p.get("conditions")))
            .collect()
    } else {
        array(r.get(&["status", "conditions"])).iter().collect()
    }
}

/// `conditions.ConditionAnalyzer`: a condition of a negative type with status `False`, or an
/// AuthorizationPolicy's `WaypointAccepted` with reason `PartiallyInvalid`: IST0171, once per
/// such condition (twice for a `PartiallyInvalid` one that is also `False`, as in istioctl).
pub(super) fn negative_conditions(inputs: &[Input], out: &mut Vec<Finding>) {
    for (kind, types) in NEGATIVE {
        for r in of_kind(inputs, kind) {
            for c in conditions(r, kind) {
                let (ty, status, reason) =
                    (str_of(c, "type"), str_of(c, "status"), str_of(c, "reason"));
                let message = format!(
                    "A condition with a negative status is present: type={ty}, reason={reason}, message={}.",
                    str_of(c, "message")
                );
                if types.contains(&ty) && status == "False" {
                    report(out, &NEGATIVE_CONDITION_STATUS, r, "", message.clone());
                }
                if *kind == "AuthorizationPolicy"
                    && ty == "WaypointAccepted"
                    && reason == "PartiallyInvalid"
                {
                    report(out, &NEGATIVE_CONDITION_STATUS, r, "", message);
                }
            }
        }
    }
}
