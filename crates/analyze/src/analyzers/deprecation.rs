//! Istio's `deprecation` analyzer: deprecated fields and removed custom resource types
//! (IST0002).

use serde_json::Value;

use super::messages::DEPRECATED;
use super::{array, of_kind, report};
use crate::{Finding, Input};

/// The custom resource types Istio removed (group, kind).
const REMOVED_CRDS: [(&str, &str); 4] = [
    ("rbac.istio.io", "ClusterRbacConfig"),
    ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"),
    ("rbac.istio.io", "ServiceRoleBinding"),
];

fn deprecated(out: &mut Vec<Finding>, r: &Input, path: &str, detail: String) {
    report(out, &DEPRECATED, r, path, format!("Deprecated: {detail}"));
}

/// `deprecation.DeprecationAnalyzer`: a VirtualService HTTP fault delay with the old `percent`;
/// a Sidecar's `outboundTrafficPolicy.egressProxy` (ignored); a CustomResourceDefinition of a
/// removed RBAC type.
pub(super) fn deprecated_fields(inputs: &[Input], out: &mut Vec<Finding>) {
    for vs in of_kind(inputs, "VirtualService") {
        for (i, route) in array(vs.get(&["spec", "http"])).iter().enumerate() {
            let percent = route
                .get("fault")
                .and_then(|f| f.get("delay"))
                .and_then(|d| d.get("percent"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if percent > 0 {
                deprecated(
                    out,
                    vs,
                    &format!("spec.http[{i}].fault.delay.percent"),
                    "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage".to_owned(),
                );
            }
        }
    }
    for sc in of_kind(inputs, "Sidecar") {
        if sc
            .get(&["spec", "outboundTrafficPolicy", "egressProxy"])
            .is_some_and(|p| !p.is_null())
        {
            deprecated(
                out,
                sc,
                "spec.outboundTrafficPolicy.egressProxy",
                "OutboundTrafficPolicy.EgressProxy ignored".to_owned(),
            );
        }
    }
    for crd in of_kind(inputs, "CustomResourceDefinition") {
        let group = crd
            .get(&["spec", "group"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = crd
            .get(&["spec", "names", "kind"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        if REMOVED_CRDS.contains(&(group, kind)) {
            deprecated(
                out,
                crd,
                "spec.names.kind",
                format!("Custom resource type {group} {kind} is removed"),
            );
        }
    }
}
