//! The analyzers: each reads the inputs and appends findings with Istio's code, level and
//! message text. One module per analyzer family (Istio's package), the message types in
//! [`messages`], the shared helpers (selectors, hosts, Go formatting) here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Finding, Input};

mod annotations;
mod authz;
mod conditions;
mod credential;
mod deployment;
mod deprecation;
mod destinationhosts;
mod destinationrule;
mod egress;
mod envoyfilter;
mod externalcontrolplane;
mod gateway;
mod hosts;
mod imageauto;
mod injection;
mod jwtclaim;
mod k8sgateway;
mod maturity;
mod mesh;
mod messages;
mod proxyimage;
mod registry;
mod service;
mod serviceentry;
mod sidecar;
mod telemetry;
mod unreachable;
mod virtualservice;
mod webhook;

use messages::Msg;

/// One analyzer: its istioctl name, the codes it can report and its function.
pub struct AnalyzerInfo {
    /// istioctl's analyzer name, e.g. `virtualservice.GatewayAnalyzer`.
    pub name: &'static str,
    /// The codes it reports.
    pub codes: &'static [&'static str],
    /// Runs it.
    pub run: fn(&[Input], &mut Vec<Finding>),
}

/// Every implemented analyzer, in the order they run.
pub const ANALYZERS: &[AnalyzerInfo] = &[
    AnalyzerInfo {
        name: "egress.RegistryOnlyHostAnalyzer",
        codes: &["EGR0001"],
        run: egress::registry_only_hosts,
    },
    AnalyzerInfo {
        name: "egress.GatewayConfigurationAnalyzer",
        codes: &["EGR0002"],
        run: egress::gateway_configurations,
    },
    AnalyzerInfo {
        name: "egress.OriginationSniAnalyzer",
        codes: &["EGR0003"],
        run: egress::origination_sni,
    },
    AnalyzerInfo {
        name: "annotations.K8sAnalyzer",
        codes: &["IST0107", "IST0108", "IST0125", "IST0135"],
        run: annotations::annotations,
    },
    AnalyzerInfo {
        name: "envoyfilter.EnvoyPatchAnalyzer",
        codes: &["IST0151", "IST0152", "IST0153", "IST0154", "IST0155"],
        run: envoyfilter::envoy_patches,
    },
    AnalyzerInfo {
        name: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        codes: &["IST0163", "IST0164"],
        run: externalcontrolplane::external_control_plane,
    },
    AnalyzerInfo {
        name: "gateway.IngressGatewayPortAnalyzer",
        codes: &["IST0101", "IST0162"],
        run: gateway::ingress_gateway_ports,
    },
    AnalyzerInfo {
        name: "gateway.SecretAnalyzer",
        codes: &["IST0101", "IST0161"],
        run: gateway::secrets,
    },
    AnalyzerInfo {
        name: "gateway.ConflictingGatewayAnalyzer",
        codes: &["IST0101", "IST0145"],
        run: gateway::conflicting_gateways,
    },
    AnalyzerInfo {
        name: "gateway.CertificateAnalyzer",
        codes: &["IST0138"],
        run: gateway::duplicate_certificates,
    },
    AnalyzerInfo {
        name: "virtualservice.GatewayAnalyzer",
        codes: &["IST0101", "IST0132", "IST0165"],
        run: virtualservice::gateways,
    },
    AnalyzerInfo {
        name: "virtualservice.DestinationHostAnalyzer",
        codes: &["IST0101", "IST0112", "IST0140"],
        run: destinationhosts::destination_hosts,
    },
    AnalyzerInfo {
        name: "virtualservice.DestinationRuleAnalyzer",
        codes: &["IST0101"],
        run: virtualservice::destination_rule_subsets,
    },
    AnalyzerInfo {
        name: "virtualservice.JWTClaimRouteAnalyzer",
        codes: &["IST0149"],
        run: jwtclaim::jwt_claim_routes,
    },
    AnalyzerInfo {
        name: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        codes: &["IST0109"],
        run: virtualservice::conflicting_mesh_gateway_hosts,
    },
    AnalyzerInfo {
        name: "schema.ValidationAnalyzer.VirtualService",
        codes: &["IST0130", "IST0131"],
        run: unreachable::unreachable_rules,
    },
    AnalyzerInfo {
        name: "serviceentry.Analyzer",
        codes: &["IST0134"],
        run: serviceentry::addresses,
    },
    AnalyzerInfo {
        name: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        codes: &["IST0177"],
        run: serviceentry::conflicting_protocols,
    },
    AnalyzerInfo {
        name: "injection.Analyzer",
        codes: &["IST0102", "IST0103", "IST0123", "IST0148"],
        run: injection::injection,
    },
    AnalyzerInfo {
        name: "injection.ImageAutoAnalyzer",
        codes: &["IST0146", "IST0147"],
        run: imageauto::image_auto,
    },
    AnalyzerInfo {
        name: "injection.ImageAnalyzer",
        codes: &["IST0158"],
        run: proxyimage::proxy_images,
    },
    AnalyzerInfo {
        name: "k8sgateway.SelectorAnalyzer",
        codes: &["IST0166"],
        run: k8sgateway::ineffective_selectors,
    },
    AnalyzerInfo {
        name: "service.PortNameAnalyzer",
        codes: &["IST0118", "IST0150"],
        run: service::port_names,
    },
    AnalyzerInfo {
        name: "sidecar.SelectorAnalyzer",
        codes: &["IST0101", "IST0110", "IST0111", "IST0167"],
        run: sidecar::selectors,
    },
    AnalyzerInfo {
        name: "telemetry.SelectorAnalyzer",
        codes: &["IST0101", "IST0159"],
        run: telemetry::selectors,
    },
    AnalyzerInfo {
        name: "telemetry.DefaultSelectorAnalyzer",
        codes: &["IST0160"],
        run: telemetry::default_selectors,
    },
    AnalyzerInfo {
        name: "telemetry.ProviderAnalyzer",
        codes: &["IST0157"],
        run: telemetry::providers,
    },
    AnalyzerInfo {
        name: "telemetry.LightstepAnalyzer",
        codes: &["IST0002"],
        run: telemetry::lightstep,
    },
    AnalyzerInfo {
        name: "applicationUID.Analyzer",
        codes: &["IST0144"],
        run: deployment::application_uid,
    },
    AnalyzerInfo {
        name: "auth.AuthorizationPoliciesAnalyzer",
        codes: &["IST0101", "IST0127"],
        run: authz::authorization_policies,
    },
    AnalyzerInfo {
        name: "conditions.ConditionAnalyzer",
        codes: &["IST0171"],
        run: conditions::negative_conditions,
    },
    AnalyzerInfo {
        name: "deprecation.DeprecationAnalyzer",
        codes: &["IST0002"],
        run: deprecation::deprecated_fields,
    },
    AnalyzerInfo {
        name: "deployment.MultiServiceAnalyzer",
        codes: &["IST0116", "IST0137"],
        run: deployment::service_association,
    },
    AnalyzerInfo {
        name: "destinationrule.CaCertificateAnalyzer",
        codes: &["IST0128", "IST0129"],
        run: destinationrule::ca_certificates,
    },
    AnalyzerInfo {
        name: "destinationrule.SubsetSelectPodAnalyzer",
        codes: &["IST0173", "IST0174"],
        run: destinationrule::subsets_select_pods,
    },
    AnalyzerInfo {
        name: "webhook.Analyzer",
        codes: &["IST0139"],
        run: webhook::webhooks,
    },
];

/// Analyzers istioctl has but does not run by default; `analyze` does not run them either.
pub const OPTIONAL_ANALYZERS: &[AnalyzerInfo] = &[AnalyzerInfo {
    name: "annotations.AlphaAnalyzer",
    codes: &["IST0136"],
    run: maturity::alpha_annotations,
}];

/// Appends a finding of type `m` about `r`, pointing at field `path` (kubectl notation).
fn report(out: &mut Vec<Finding>, m: &Msg, r: &Input, path: &str, message: String) {
    out.push(Finding {
        code: m.code,
        name: m.name,
        level: m.level,
        message,
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name_of_resource: r.name.clone(),
        file: r.origin.as_ref().map(|o| o.file.clone()),
        line: r.line_of(path),
        documentation_url: if m.code.starts_with("EGR") {
            // egress's own codes are documented with egress.
            format!("docs/analyze.md#{}", m.code.to_ascii_lowercase())
        } else {
            format!(
                "https://istio.io/latest/docs/reference/config/analysis/{}",
                m.code.to_ascii_lowercase()
            )
        },
    });
}

/// Is the input a Kubernetes Gateway API object (`gateway.networking.k8s.io`)?
fn gateway_api(i: &Input) -> bool {
    i.value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"))
}

/// The inputs of a kind. `Gateway` means Istio's (`networking.istio.io`); Kubernetes Gateway API
/// Gateways are `KubernetesGateway` here, as in istioctl.
fn of_kind<'a>(inputs: &'a [Input], kind: &'a str) -> impl Iterator<Item = &'a Input> + 'a {
    inputs.iter().filter(move |i| match kind {
        "Gateway" => i.kind == "Gateway" && !gateway_api(i),
        "KubernetesGateway" => i.kind == "Gateway" && gateway_api(i),
        _ => i.kind == kind,
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The array at `v` (empty when absent or not an array).
fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A string field (empty when absent).
fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Go's `%q` for a plain string.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Go's `%v` for a `[]string`: `[a b]`.
fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", parts.join(" "))
}

/// Kubernetes' `labels.SelectorFromSet(..).String()`: `k=v` sorted by key, comma-joined.
fn selector_string(sel: &BTreeMap<String, String>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Kubernetes' set-based selector match: every `k=v` of `sel` is in `labels` (an empty
/// selector matches everything).
fn selector_matches(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Kubernetes' `LabelSelector` match (`matchLabels` and `matchExpressions`); an absent selector
/// matches everything, an invalid one nothing.
fn label_selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return true;
    };
    let by_labels = string_map(selector.get("matchLabels"))
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && array(selector.get("matchExpressions")).iter().all(|e| {
            let key = str_of(e, "key");
            let values = strings(e.get("values"));
            let value = labels.get(key);
            match str_of(e, "operator") {
                "In" => !values.is_empty() && value.is_some_and(|v| values.contains(v)),
                "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.contains(v)),
                "Exists" => values.is_empty() && value.is_some(),
                "DoesNotExist" => values.is_empty() && value.is_none(),
                _ => false,
            }
        })
}

/// An object's `metadata.labels`.
fn labels_of(r: &Input) -> BTreeMap<String, String> {
    string_map(r.get(&["metadata", "labels"]))
}

/// The field path of a Gateway's first selector label, where istioctl points selector messages.
fn selector_path(sel: &BTreeMap<String, String>) -> String {
    match sel.keys().next() {
        Some(k) => format!("spec.selector.{k}"),
        None => "spec.selector".to_owned(),
    }
}

/// Istio's `host.Name.Matches`: exact, or one side a wildcard covering the other.
fn host_matches(a: &str, b: &str) -> bool {
    let wild = |h: &str| h.starts_with('*');
    match (wild(a), wild(b)) {
        (false, false) => a == b,
        (true, false) => b.ends_with(&a[1..]),
        (false, true) => a.ends_with(&b[1..]),
        (true, true) => {
            let (sa, sb) = (&a[1..], &b[1..]);
            if sa.len() > sb.len() {
                sa.ends_with(sb)
            } else {
                sb.ends_with(sa)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching() {
        assert!(host_matches("*.a.com", "b.a.com"));
        assert!(host_matches("*", "b.a.com"));
        assert!(!host_matches("*.a.com", "a.com"));
        assert!(host_matches("x.com", "x.com"));
        assert!(!host_matches("x.com", "y.com"));
        assert!(host_matches("*.a.com", "*.b.a.com"));
    }

    #[test]
    fn gateway_api_gateways_are_not_istio_gateways() {
        let k8s = Input::new(
            serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "w", "namespace": "n"}, "spec": {"gatewayClassName": "istio"}}),
            None,
        )
        .unwrap_or_else(|| panic!("not an object"));
        let inputs = [k8s];
        assert_eq!(of_kind(&inputs, "Gateway").count(), 0);
        assert_eq!(of_kind(&inputs, "KubernetesGateway").count(), 1);
        let mut out = Vec::new();
        for a in ANALYZERS.iter().filter(|a| a.name.starts_with("gateway.")) {
            (a.run)(&inputs, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_list(&["a/b", "c/d"]), "[a/b c/d]");
        assert_eq!(go_list::<&str>(&[]), "[]");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let sel: BTreeMap<String, String> = [("istio", "x"), ("app", "y")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(selector_string(&sel), "app=y,istio=x");
        assert!(selector_matches(&BTreeMap::new(), &sel));
    }
}
