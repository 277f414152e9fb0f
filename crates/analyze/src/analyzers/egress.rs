//! egress's own analyzers, for what only an egress gateway deployment knows (codes `EGR…`,
//! documented in `docs/analyze.md`):
//!
//! * EGR0001 `RegistryOnlyHostNotRegistered`: the mesh is REGISTRY_ONLY and a VirtualService
//!   bound to `mesh` routes a host no ServiceEntry (or Service) exports to its namespace: the
//!   sidecars have no route for that host, so its traffic is black-holed (502) before it can
//!   reach the egress gateway.
//! * EGR0002 `GatewayConfigurationWithoutPrefix`: an egress gateway Deployment names a
//!   StaticGatewayConfiguration (`kubernetes.azure.com/static-gateway-configuration` on its Pod
//!   template) that does not exist in its namespace or has no `egressIpPrefix` yet: its traffic
//!   leaves without the static egress IP the allow-lists downstream expect.
//! * EGR0003 `OriginationSniMismatch`: a DestinationRule originates TLS (SIMPLE or MUTUAL) to a
//!   host with an `sni` the host does not cover: the server is asked for another name than the
//!   one the traffic was routed by (and, without `subjectAltNames`, verified against it).

use serde_json::Value;

use super::mesh::mesh_configs;
use super::messages::{CONFIGURATION_WITHOUT_PREFIX, ORIGINATION_SNI_MISMATCH, REGISTRY_ONLY_HOST};
use super::registry::Registry;
use super::{array, of_kind, report, str_of, strings};
use crate::{Finding, Input};

/// The Pod-template annotation naming a gateway's StaticGatewayConfiguration.
const SGC_ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";

/// `ns/name`, or `name` for an input without a namespace.
fn qualified(i: &Input) -> String {
    if i.namespace.is_empty() {
        i.name.clone()
    } else {
        format!("{}/{}", i.namespace, i.name)
    }
}

/// True when a MeshConfig among the inputs sets `outboundTrafficPolicy.mode: REGISTRY_ONLY`.
fn registry_only(inputs: &[Input]) -> bool {
    mesh_configs(inputs).iter().any(|(_, m)| {
        m.pointer("/outboundTrafficPolicy/mode")
            .and_then(Value::as_str)
            == Some("REGISTRY_ONLY")
    })
}

/// EGR0001.
pub(super) fn registry_only_hosts(inputs: &[Input], out: &mut Vec<Finding>) {
    if !registry_only(inputs) {
        return;
    }
    let registry = Registry::new(inputs);
    for vs in of_kind(inputs, "VirtualService") {
        let gateways = strings(vs.get(&["spec", "gateways"]));
        if !(gateways.is_empty() || gateways.iter().any(|g| g == "mesh")) {
            continue;
        }
        for (i, host) in strings(vs.get(&["spec", "hosts"])).iter().enumerate() {
            if host == "*" || registry.lookup(&vs.namespace, &[], host).is_some() {
                continue;
            }
            report(
                out,
                &REGISTRY_ONLY_HOST,
                vs,
                &format!("spec.hosts[{i}]"),
                format!(
                    "The mesh is REGISTRY_ONLY and no ServiceEntry exports host {host} to namespace {}: sidecars block its traffic (502) before VirtualService {} can route it to the egress gateway.",
                    vs.namespace,
                    qualified(vs)
                ),
            );
        }
    }
}

/// EGR0002.
pub(super) fn gateway_configurations(inputs: &[Input], out: &mut Vec<Finding>) {
    for deploy in of_kind(inputs, "Deployment") {
        let Some(sgc) = deploy
            .get(&[
                "spec",
                "template",
                "metadata",
                "annotations",
                SGC_ANNOTATION,
            ])
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let path = format!("spec.template.metadata.annotations.{SGC_ANNOTATION}");
        let found = of_kind(inputs, "StaticGatewayConfiguration")
            .find(|c| c.name == sgc && c.namespace == deploy.namespace);
        let problem = match found {
            None => format!(
                "StaticGatewayConfiguration {}/{sgc} does not exist",
                deploy.namespace
            ),
            Some(c)
                if str_of(c.get(&["status"]).unwrap_or(&Value::Null), "egressIpPrefix")
                    .is_empty() =>
            {
                format!(
                    "StaticGatewayConfiguration {}/{sgc} has no egressIpPrefix yet",
                    deploy.namespace
                )
            }
            Some(_) => continue,
        };
        report(
            out,
            &CONFIGURATION_WITHOUT_PREFIX,
            deploy,
            &path,
            format!(
                "The egress gateway Deployment {} uses {problem}: its traffic does not leave from a static egress IP.",
                qualified(deploy)
            ),
        );
    }
}

/// Does `pattern` (a DestinationRule host, possibly `*.suffix`) cover `name`?
fn covers(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match p.strip_prefix('*') {
        Some(suffix) => n.ends_with(suffix) && n.len() > suffix.len(),
        None => p == n,
    }
}

/// EGR0003.
pub(super) fn origination_sni(inputs: &[Input], out: &mut Vec<Finding>) {
    for dr in of_kind(inputs, "DestinationRule") {
        let host = str_of(&dr.value["spec"], "host");
        let mut policies: Vec<(String, &Value)> = Vec::new();
        if let Some(tp) = dr.get(&["spec", "trafficPolicy"]) {
            policies.push(("spec.trafficPolicy".into(), tp));
            for (i, pl) in array(tp.get("portLevelSettings")).iter().enumerate() {
                policies.push((format!("spec.trafficPolicy.portLevelSettings[{i}]"), pl));
            }
        }
        for (path, policy) in policies {
            let Some(tls) = policy.get("tls") else {
                continue;
            };
            let mode = str_of(tls, "mode");
            let sni = str_of(tls, "sni");
            if !matches!(mode, "SIMPLE" | "MUTUAL") || sni.is_empty() || covers(host, sni) {
                continue;
            }
            report(
                out,
                &ORIGINATION_SNI_MISMATCH,
                dr,
                &format!("{path}.tls.sni"),
                format!(
                    "DestinationRule {} originates {mode} TLS to host {host} with SNI {sni}, which the host does not cover: the server is asked for another name than the one the traffic is routed by.",
                    qualified(dr)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value) -> Input {
        Input::new(v, None).unwrap_or_else(|| panic!("not an object"))
    }

    fn mesh(mode: &str) -> Input {
        input(json!({"kind": "ConfigMap",
            "metadata": {"name": "istio-shared-configmap-asm-1-24", "namespace": "aks-istio-system"},
            "data": {"mesh": format!("outboundTrafficPolicy:\n  mode: {mode}\n")}}))
    }

    fn codes(out: &[Finding]) -> Vec<(&str, &str)> {
        out.iter()
            .map(|f| (f.code, f.name_of_resource.as_str()))
            .collect()
    }

    #[test]
    fn registry_only_hosts_without_a_service_entry_are_reported() {
        let vs = input(json!({"kind": "VirtualService",
            "metadata": {"name": "direct-cnn", "namespace": "egress"},
            "spec": {"hosts": ["edition.cnn.com"], "gateways": ["mesh", "egress/gw"]}}));
        let se = input(json!({"kind": "ServiceEntry",
            "metadata": {"name": "cnn", "namespace": "egress"},
            "spec": {"hosts": ["edition.cnn.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}}));
        let mut out = Vec::new();
        registry_only_hosts(&[mesh("REGISTRY_ONLY"), vs.clone()], &mut out);
        assert_eq!(codes(&out), [("EGR0001", "direct-cnn")]);
        assert!(
            out[0].message.contains("host edition.cnn.com"),
            "{}",
            out[0].message
        );
        let mut out = Vec::new();
        registry_only_hosts(&[mesh("REGISTRY_ONLY"), vs.clone(), se], &mut out);
        assert!(out.is_empty());
        let mut out = Vec::new();
        registry_only_hosts(&[mesh("ALLOW_ANY"), vs], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn gateways_without_a_prefix_are_reported() {
        let deploy = input(json!({"kind": "Deployment",
            "metadata": {"name": "asm-egress-test-asm-1-24", "namespace": "egress"},
            "spec": {"template": {"metadata": {"annotations": {SGC_ANNOTATION: "sgc"}}}}}));
        let sgc = |status: Value| {
            input(json!({"kind": "StaticGatewayConfiguration",
                "metadata": {"name": "sgc", "namespace": "egress"}, "status": status}))
        };
        let mut out = Vec::new();
        gateway_configurations(std::slice::from_ref(&deploy), &mut out);
        assert_eq!(codes(&out), [("EGR0002", "asm-egress-test-asm-1-24")]);
        assert!(out[0].message.contains("does not exist"));
        let mut out = Vec::new();
        gateway_configurations(&[deploy.clone(), sgc(json!({}))], &mut out);
        assert!(out[0].message.contains("has no egressIpPrefix yet"));
        let mut out = Vec::new();
        gateway_configurations(
            &[deploy, sgc(json!({"egressIpPrefix": "20.1.2.3/31"}))],
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn origination_with_another_sni_is_reported() {
        let dr = |sni: &str| {
            input(json!({"kind": "DestinationRule",
                "metadata": {"name": "originate", "namespace": "egress"},
                "spec": {"host": "edition.cnn.com", "trafficPolicy": {"portLevelSettings": [
                    {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": sni}}]}}}))
        };
        let mut out = Vec::new();
        origination_sni(&[dr("edition.cnn.com"), dr("")], &mut out);
        assert!(out.is_empty());
        origination_sni(&[dr("www.cnn.com")], &mut out);
        assert_eq!(codes(&out), [("EGR0003", "originate")]);
        assert!(covers("*.cnn.com", "edition.cnn.com"));
        assert!(!covers("*.cnn.com", "cnn.com"));
    }
}
