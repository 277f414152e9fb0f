//! The gateway's RBAC on a real cluster: read-only, no wider than what the gateway watches,
//! each object decoding into its k8s-openapi type and re-encoding to exactly itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::objects::{self, EgressGatewayObjects};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn render(revisions: &[String]) -> Vec<Value> {
    objects::cluster_gateway_objects(&EgressGatewayObjects {
        name: "asm-egress-test",
        namespace: "aks-istio-egress",
        gateway_configuration_name: "sgc",
        revisions,
        cluster_ip: "",
        image: "img",
    })
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&typed).unwrap(), v, "{}", v["kind"]);
    typed
}

fn find<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    objs.iter().find(|o| o["kind"] == kind).unwrap()
}

fn rule(groups: &[&str], resources: &[&str], names: Option<&[&str]>) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        resource_names: names.map(strings),
        verbs: strings(&["get", "list", "watch"]),
        non_resource_urls: None,
    }
}

#[test]
fn apply_order_puts_identity_and_rbac_before_workloads() {
    let revisions = vec!["asm-1-24".to_string(), "asm-1-25".to_string()];
    let kinds: Vec<String> = render(&revisions)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ]
    );
}

#[test]
fn the_role_reads_secrets_services_and_pods_in_the_gateway_namespace() {
    let objs = render(&["asm-1-24".to_string()]);
    let role: Role = round_trip(find(&objs, "Role"));
    assert_eq!(role.metadata.name.as_deref(), Some("asm-egress-test"));
    assert_eq!(role.metadata.namespace.as_deref(), Some("aks-istio-egress"));
    assert_eq!(
        role.rules.unwrap(),
        [rule(&[""], &["secrets", "services", "pods"], None)]
    );
    let binding: RoleBinding = round_trip(find(&objs, "RoleBinding"));
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "asm-egress-test");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        (
            "ServiceAccount",
            "asm-egress-test",
            Some("aks-istio-egress")
        )
    );
}

#[test]
fn the_cluster_role_reads_istio_kinds_and_the_shared_meshconfigs_only() {
    let objs = render(&["asm-1-24".to_string(), "asm-1-25".to_string()]);
    let cr: ClusterRole = round_trip(find(&objs, "ClusterRole"));
    let name = "asm-egx-aks-istio-egress-asm-egress-test";
    assert_eq!(cr.metadata.name.as_deref(), Some(name));
    assert_eq!(cr.metadata.namespace, None);
    assert_eq!(
        cr.metadata.labels.unwrap()["azureservicemesh/istio.component"],
        "egress-gateway"
    );
    assert_eq!(
        cr.rules.unwrap(),
        [
            rule(
                &["networking.istio.io"],
                &[
                    "gateways",
                    "virtualservices",
                    "destinationrules",
                    "serviceentries",
                    "sidecars"
                ],
                None
            ),
            rule(&["security.istio.io"], &["authorizationpolicies"], None),
            rule(&["telemetry.istio.io"], &["telemetries"], None),
            rule(
                &[""],
                &["configmaps"],
                Some(&[
                    "istio-shared-configmap-asm-1-24",
                    "istio-shared-configmap-asm-1-25"
                ])
            ),
        ]
    );
    let crb: ClusterRoleBinding = round_trip(find(&objs, "ClusterRoleBinding"));
    assert_eq!(crb.metadata.name.as_deref(), Some(name));
    assert_eq!(crb.role_ref.kind, "ClusterRole");
    assert_eq!(crb.role_ref.name, name);
    assert_eq!(crb.subjects.unwrap()[0].name, "asm-egress-test");
}

#[test]
fn no_rule_grants_more_than_reading() {
    let objs = render(&["asm-1-24".to_string()]);
    for o in objs.iter().filter(|o| o["rules"].is_array()) {
        for r in o["rules"].as_array().unwrap() {
            assert_eq!(
                r["verbs"],
                serde_json::json!(["get", "list", "watch"]),
                "{o}"
            );
            let resources = r["resources"].as_array().unwrap();
            assert!(!resources.iter().any(|x| x == "*"), "{o}");
        }
    }
}

#[test]
fn the_local_cluster_objects_are_unchanged() {
    let revisions = vec!["asm-1-24".to_string()];
    let local = objects::egress_gateway_objects(&EgressGatewayObjects {
        name: "asm-egress-test",
        namespace: "aks-istio-egress",
        gateway_configuration_name: "sgc",
        revisions: &revisions,
        cluster_ip: "",
        image: "img",
    });
    let cluster = render(&revisions);
    let without_rbac: Vec<&Value> = cluster
        .iter()
        .filter(|o| !o["apiVersion"].as_str().unwrap().starts_with("rbac."))
        .collect();
    assert_eq!(without_rbac, local.iter().collect::<Vec<_>>());
}
