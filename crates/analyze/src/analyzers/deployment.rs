//! Istio's `deployment` analyzers: application workloads running as the proxy's UID 1337
//! (IST0144).

use serde_json::Value;

use super::messages::INVALID_APPLICATION_UID;
use super::{array, labels_of, of_kind, report, str_of};
use crate::{Finding, Input};

/// The user ID the sidecar proxy runs as.
const PROXY_UID: u64 = 1337;

/// Istio's `IsIstioControlPlane`: an `istio` label, or `release=istio`.
fn control_plane(r: &Input) -> bool {
    let labels = labels_of(r);
    labels.contains_key("istio") || labels.get("release").map(String::as_str) == Some("istio")
}

/// Does a Pod spec run as UID 1337, at Pod level or in a container other than the proxy's and
/// the operator's?
fn runs_as_proxy(spec: &Value) -> bool {
    let uid = |v: &Value| v.get("securityContext")?.get("runAsUser")?.as_u64();
    uid(spec) == Some(PROXY_UID)
        || array(spec.get("containers")).iter().any(|c| {
            !matches!(str_of(c, "name"), "istio-proxy" | "istio-operator")
                && uid(c) == Some(PROXY_UID)
        })
}

/// `applicationUID.Analyzer`: a Pod (its spec) or Deployment (its Pod template) outside the
/// control plane running as UID 1337: IST0144, once per resource.
pub(super) fn application_uid(inputs: &[Input], out: &mut Vec<Finding>) {
    let specs = of_kind(inputs, "Pod")
        .map(|p| (p, p.get(&["spec"]), "spec"))
        .chain(of_kind(inputs, "Deployment").map(|d| {
            (
                d,
                d.get(&["spec", "template", "spec"]),
                "spec.template.spec",
            )
        }));
    for (r, spec, path) in specs {
        if control_plane(r) || !spec.is_some_and(runs_as_proxy) {
            continue;
        }
        report(
            out,
            &INVALID_APPLICATION_UID,
            r,
            path,
            "User ID (UID) 1337 is reserved for the sidecar proxy.".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_proxy_and_the_control_plane_may_run_as_1337() {
        let proxy = json!({"containers": [{"name": "istio-proxy", "securityContext": {"runAsUser": 1337}}]});
        assert!(!runs_as_proxy(&proxy));
        let app = json!({"containers": [{"name": "app", "securityContext": {"runAsUser": 1337}}]});
        assert!(runs_as_proxy(&app));
        let pod = |labels: Value| {
            Input::new(
                json!({"kind": "Pod", "metadata": {"name": "p", "labels": labels}, "spec": app.clone()}),
                None,
            )
            .unwrap_or_else(|| panic!("not an object"))
        };
        let mut out = Vec::new();
        application_uid(
            &[
                pod(json!({"istio": "ingressgateway"})),
                pod(json!({"release": "istio"})),
            ],
            &mut out,
        );
        assert!(out.is_empty());
        application_uid(&[pod(json!({"app": "x"}))], &mut out);
        assert_eq!(out.len(), 1);
    }
}
