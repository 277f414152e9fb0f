//! Istio's `annotations.AlphaAnalyzer` (package `maturity`): Istio annotations of alpha-phase
//! features on Namespaces, Services, Pods and Deployments (IST0136). istioctl leaves it out of
//! its default analyzers (too noisy with annotations set by default), so it is in
//! [`OPTIONAL_ANALYZERS`](super::OPTIONAL_ANALYZERS), not run by `analyze`.

use super::annotations::{ANNOTATIONS, istio_annotation};
use super::messages::ALPHA_ANNOTATION;
use super::{array, of_kind, quote, report, str_of};
use crate::{Finding, Input};

/// The annotations of istio/api whose feature status is not Alpha (Beta or Stable); every
/// other known annotation is Alpha.
const NOT_ALPHA: [&str; 5] = [
    "ambient.istio.io/redirection",
    "kubernetes.io/ingress.class",
    "proxy.istio.io/config",
    "sidecar.istio.io/inject",
    "traffic.istio.io/nodeSelector",
];

/// Alpha annotations set automatically (by injection, controllers), never reported.
const ALWAYS_IGNORED: [&str; 3] = [
    "sidecar.istio.io/status",
    "gateway.istio.io/controller-version",
    "istio.io/rev",
];

/// Alpha annotations istio-cni sets by default, not reported on Pods without `istio-init`.
const IGNORED_WITH_CNI: [&str; 4] = [
    "sidecar.istio.io/interceptionMode",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
];

/// IST0136 per alpha annotation.
pub(super) fn alpha_annotations(inputs: &[Input], out: &mut Vec<Finding>) {
    for kind in ["Namespace", "Service", "Pod", "Deployment"] {
        for r in of_kind(inputs, kind) {
            let Some(annotations) = r
                .get(&["metadata", "annotations"])
                .and_then(|a| a.as_object())
            else {
                continue;
            };
            let cni = kind == "Pod"
                && !array(r.get(&["spec", "initContainers"]))
                    .iter()
                    .any(|c| str_of(c, "name") == "istio-init");
            for name in annotations.keys() {
                let known = ANNOTATIONS.iter().any(|a| a.name == name);
                if !istio_annotation(name)
                    || !known
                    || NOT_ALPHA.contains(&name.as_str())
                    || ALWAYS_IGNORED.contains(&name.as_str())
                    || (cni && IGNORED_WITH_CNI.contains(&name.as_str()))
                {
                    continue;
                }
                report(
                    out,
                    &ALPHA_ANNOTATION,
                    r,
                    &format!("metadata.annotations.{name}"),
                    format!(
                        "Annotation {} is part of an alpha-phase feature and may be incompletely supported.",
                        quote(name)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn input(v: Value) -> Input {
        Input::new(v, None).unwrap_or_else(|| panic!("not an object"))
    }

    #[test]
    fn alpha_beta_and_ignored_annotations() {
        let pod = input(
            json!({"kind": "Pod", "metadata": {"name": "p", "annotations": {
            "sidecar.istio.io/proxyCPU": "100m",
            "sidecar.istio.io/inject": "true",
            "sidecar.istio.io/status": "{}",
            "sidecar.istio.io/interceptionMode": "REDIRECT",
            "example.com/other": "x"}}}),
        );
        let mut out = Vec::new();
        alpha_annotations(&[pod], &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].message,
            "Annotation \"sidecar.istio.io/proxyCPU\" is part of an alpha-phase feature and may be incompletely supported."
        );
        assert_eq!(out[0].code, "IST0136");
    }
}
