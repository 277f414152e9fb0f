//! `gateway_manifests`: every enabled gateway's objects for every installed revision, each
//! one decoding into its k8s-openapi type and re-encoding to exactly itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::manifests::{ManifestError, gateway_manifests};
use egress_addon::ops;
use egress_addon::profile::ServiceMeshProfile;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn with_gateways(revisions: &[&str], gateways: &[(&str, &str)]) -> ServiceMeshProfile {
    let mut p = ops::enable(&ServiceMeshProfile::default(), revisions.first().copied()).unwrap();
    for r in &revisions[1..] {
        p = ops::upgrade_start(&p, r).unwrap();
    }
    for (name, ns) in gateways {
        p = ops::enable_egress_gateway(&p, name, Some(ns), "sgc").unwrap();
    }
    p
}

/// Decodes `v` as `T` and back; unknown or misspelt fields would be dropped and differ.
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&typed).unwrap(), v, "{}", v["kind"]);
    typed
}

#[test]
fn refused_without_mesh_or_gateway() {
    let off = ServiceMeshProfile::default();
    let e = gateway_manifests("c", &off, "img").unwrap_err();
    assert_eq!(
        e,
        ManifestError::MeshNotEnabled {
            cluster: "c".into()
        }
    );
    assert!(e.to_string().contains("not enabled"), "{e}");
    let on = with_gateways(&["asm-1-24"], &[]);
    assert_eq!(
        gateway_manifests("c", &on, "img").unwrap_err(),
        ManifestError::NoGateway {
            cluster: "c".into()
        }
    );
    let disabled = ops::disable_egress_gateway(
        &with_gateways(&["asm-1-24"], &[("eg", "ns")]),
        "eg",
        Some("ns"),
    )
    .unwrap();
    assert!(matches!(
        gateway_manifests("c", &disabled, "img"),
        Err(ManifestError::NoGateway { .. })
    ));
}

#[test]
fn every_gateway_and_revision_round_trips_through_k8s_openapi() {
    let p = with_gateways(
        &["asm-1-24", "asm-1-25"],
        &[("eg-a", "ns-a"), ("eg-b", "ns-b")],
    );
    let objs = gateway_manifests("c", &p, "registry.example/egress:1.0").unwrap();
    assert_eq!(objs.len(), 2 * (2 + 4 + 3 * 2));
    let mut deployments = 0;
    for v in &objs {
        match v["kind"].as_str().unwrap() {
            "ServiceAccount" => {
                round_trip::<ServiceAccount>(v);
            }
            "Service" => {
                let svc = round_trip::<Service>(v);
                let spec = svc.spec.unwrap();
                // The target cluster allocates the cluster IP.
                assert_eq!(spec.cluster_ip, None);
                assert_eq!(spec.cluster_ips, None);
                let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
                assert_eq!(ports, [15021, 80, 443]);
            }
            "Deployment" => {
                deployments += 1;
                let d = round_trip::<Deployment>(v);
                let pod = d.spec.unwrap().template.spec.unwrap();
                assert_eq!(
                    pod.containers[0].image.as_deref(),
                    Some("registry.example/egress:1.0")
                );
            }
            "HorizontalPodAutoscaler" => {
                round_trip::<HorizontalPodAutoscaler>(v);
            }
            "PodDisruptionBudget" => {
                round_trip::<PodDisruptionBudget>(v);
            }
            "Role" => {
                round_trip::<Role>(v);
            }
            "RoleBinding" => {
                round_trip::<RoleBinding>(v);
            }
            "ClusterRole" => {
                round_trip::<ClusterRole>(v);
            }
            "ClusterRoleBinding" => {
                round_trip::<ClusterRoleBinding>(v);
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    assert_eq!(deployments, 4);
    let names: Vec<&str> = objs
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "eg-a-asm-1-24",
            "eg-a-asm-1-25",
            "eg-b-asm-1-24",
            "eg-b-asm-1-25"
        ]
    );
}

#[test]
fn the_container_is_locked_down_like_istios_gateway_chart() {
    let p = with_gateways(&["asm-1-24"], &[("eg", "ns")]);
    let objs = gateway_manifests("c", &p, "img").unwrap();
    let d = round_trip::<Deployment>(objs.iter().find(|o| o["kind"] == "Deployment").unwrap());
    let pod = d.spec.unwrap().template.spec.unwrap();
    let sysctls = pod.security_context.unwrap().sysctls.unwrap();
    assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
    assert_eq!(sysctls[0].value, "0");
    let sc = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.run_as_user, Some(1337));
    assert_eq!(sc.run_as_group, Some(1337));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    assert_eq!(
        pod.containers[0].args.clone().unwrap(),
        egress_addon::objects::gateway_args("asm-1-24")
    );
}
