//! Istio's `virtualservice.JWTClaimRouteAnalyzer`: a VirtualService routing on a JWT claim
//! (`@request.auth.claims…` headers) through a Gateway whose Pods no RequestAuthentication
//! covers (IST0149).

use std::collections::BTreeMap;

use serde_json::Value;

use super::messages::JWT_CLAIM_ROUTE_WITHOUT_REQUEST_AUTHN;
use super::{array, labels_of, of_kind, report, selector_matches, string_map, strings};
use crate::{Finding, Input};

/// The header prefix of JWT claim based routing.
const JWT_CLAIM_HEADER: &str = "@request.auth.claims";

/// The first header key (of `headers`, then `withoutHeaders`, match by match) routing on a JWT
/// claim.
fn jwt_claim_key(vs: &Input) -> Option<String> {
    for route in array(vs.get(&["spec", "http"])) {
        for m in array(route.get("match")) {
            for field in ["headers", "withoutHeaders"] {
                if let Some(headers) = m.get(field).and_then(Value::as_object)
                    && let Some(key) = headers.keys().find(|k| k.starts_with(JWT_CLAIM_HEADER))
                {
                    return Some(key.clone());
                }
            }
        }
    }
    None
}

/// IST0149, one per (gateway, selected Pod) without a RequestAuthentication in `istio-system`
/// or the Pod's namespace whose selector matches it. An absent selector selects everything, as
/// Kubernetes' `SelectorFromSet` does.
pub(super) fn jwt_claim_routes(inputs: &[Input], out: &mut Vec<Finding>) {
    let mut request_authn: BTreeMap<&str, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for ra in of_kind(inputs, "RequestAuthentication") {
        request_authn
            .entry(ra.namespace.as_str())
            .or_default()
            .push(string_map(ra.get(&["spec", "selector", "matchLabels"])));
    }
    for vs in of_kind(inputs, "VirtualService") {
        let Some(key) = jwt_claim_key(vs) else {
            continue;
        };
        for gw_name in strings(vs.get(&["spec", "gateways"])) {
            if gw_name == "mesh" {
                continue;
            }
            let (gns, gname) = match gw_name.split_once('/') {
                Some((n, m)) => (n.to_owned(), m.to_owned()),
                None => (vs.namespace.clone(), gw_name.clone()),
            };
            let Some(gw) =
                of_kind(inputs, "Gateway").find(|g| g.namespace == gns && g.name == gname)
            else {
                continue;
            };
            let gw_full = if gns.is_empty() {
                gname.clone()
            } else {
                format!("{gns}/{gname}")
            };
            let selector = string_map(gw.get(&["spec", "selector"]));
            for pod in of_kind(inputs, "Pod") {
                let labels = labels_of(pod);
                if !selector_matches(&selector, &labels) {
                    continue;
                }
                let covered = ["istio-system", pod.namespace.as_str()]
                    .iter()
                    .filter_map(|ns| request_authn.get(ns))
                    .flatten()
                    .any(|sel| selector_matches(sel, &labels));
                if !covered {
                    report(
                        out,
                        &JWT_CLAIM_ROUTE_WITHOUT_REQUEST_AUTHN,
                        vs,
                        "",
                        format!(
                            "The virtual service uses the JWT claim based routing (key: {key}) but found no request authentication for the gateway ({gw_full}) pod ({}). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
                            pod.name
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(yaml: &str) -> Vec<Input> {
        let docs = egress_model::yaml::parse_stream(yaml).unwrap_or_else(|e| panic!("{e}"));
        Input::from_documents("t.yaml", docs, Some("default"))
    }

    const BASE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: foo}
spec:
  hosts: [foo.com]
  gateways: [mesh, istio-system/gw]
  http:
  - match:
    - withoutHeaders:
        "@request.auth.claims.group": {exact: x}
    route: [{destination: {host: foo}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-1, namespace: istio-system, labels: {istio: ingressgateway}}
"#;

    #[test]
    fn without_headers_and_namespaced_gateway() {
        let mut out = Vec::new();
        jwt_claim_routes(&inputs(BASE), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].message.contains("(key: @request.auth.claims.group)"));
        assert!(
            out[0]
                .message
                .contains("gateway (istio-system/gw) pod (ingress-1)")
        );
    }

    #[test]
    fn request_authentication_in_istio_system_covers_the_pod() {
        let covered = format!(
            "{BASE}---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: ra, namespace: istio-system}}\nspec:\n  jwtRules: [{{issuer: x}}]\n"
        );
        let mut out = Vec::new();
        jwt_claim_routes(&inputs(&covered), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let other_selector = covered.replace(
            "spec:\n  jwtRules",
            "spec:\n  selector: {matchLabels: {app: other}}\n  jwtRules",
        );
        jwt_claim_routes(&inputs(&other_selector), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn no_claim_no_message() {
        let plain = BASE.replace("@request.auth.claims.group", "x-group");
        let mut out = Vec::new();
        jwt_claim_routes(&inputs(&plain), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
