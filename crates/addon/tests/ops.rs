//! The az decorator rules: one table per rule, every exact message and error class.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::ops::{self, AddonError, EgressRequest, MAX_EGRESS_GATEWAYS};
use egress_addon::profile::{
    DEFAULT_REVISION, IngressGatewayMode, MeshMode, ProxyRedirectionMechanism, SUPPORTED_REVISIONS,
    ServiceMeshProfile,
};

const NOT_ENABLED: &str = "Istio has not been enabled for this cluster, please refer to https://aka.ms/asm-aks-addon-docs for more details on enabling Azure Service Mesh.";

fn off() -> ServiceMeshProfile {
    ServiceMeshProfile::default()
}

fn on(revisions: &[&str]) -> ServiceMeshProfile {
    let mut p = ops::enable(&off(), revisions.first().copied()).unwrap();
    for r in &revisions[1..] {
        p.istio.as_mut().unwrap().revisions.push((*r).to_owned());
    }
    p
}

fn err(r: Result<impl std::fmt::Debug, AddonError>) -> (String, String) {
    let e = r.unwrap_err();
    (e.class().to_owned(), e.to_string())
}

#[test]
fn egress_name_rule() {
    let long53 = "a".repeat(53);
    let long54 = "a".repeat(54);
    let ok = ["a", "asm-egress-test", "a.b-c", "0x", long53.as_str()];
    let bad = [
        "",
        "-a",
        "a-",
        "A",
        "a_b",
        "a..b",
        ".a",
        "a.",
        long54.as_str(),
    ];
    for n in ok {
        assert!(ops::validate_egress_name(n).is_ok(), "{n}");
    }
    for n in bad {
        assert_eq!(
            err(ops::validate_egress_name(n)),
            (
                "InvalidArgumentValueError".into(),
                format!(
                    "Istio egress name {n} is invalid. Name must be between 1 and 53 characters, must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character."
                )
            ),
            "{n}"
        );
        // The validator runs before the decorator, even with the mesh off.
        assert_eq!(
            err(ops::enable_egress_gateway(&off(), n, None, "sgc")).0,
            "InvalidArgumentValueError"
        );
    }
}

#[test]
fn revision_rule() {
    for r in ["asm-1-24", "asm-10-300"] {
        assert!(ops::validate_revision(r).is_ok());
    }
    for r in ["asm-1", "1-24", "asm-1-24-1", "asm-a-b", "ASM-1-24", ""] {
        let want = (
            "InvalidArgumentValueError".to_owned(),
            format!("Revision {r} is not supported by the service mesh add-on."),
        );
        assert_eq!(err(ops::validate_revision(r)), want);
        assert_eq!(err(ops::enable(&off(), Some(r))), want);
        assert_eq!(err(ops::upgrade_start(&on(&["asm-1-24"]), r)), want);
    }
}

#[test]
fn enable_and_disable_mesh() {
    let p = ops::enable(&off(), None).unwrap();
    assert_eq!(p.mode, MeshMode::Istio);
    assert_eq!(p.revisions(), [DEFAULT_REVISION]);
    let p = ops::enable(&off(), Some("asm-1-25")).unwrap();
    assert_eq!(p.revisions(), ["asm-1-25"]);
    assert_eq!(
        err(ops::enable(&p, None)),
        ("ArgumentUsageError".into(), "Istio has already been enabled for this cluster, please refer to https://aka.ms/asm-aks-upgrade-docs for more details on updating the mesh profile.".into())
    );
    let d = ops::disable(&p).unwrap();
    assert_eq!(d.mode, MeshMode::Disabled);
    assert!(d.istio.is_none());
    assert_eq!(
        err(ops::disable(&d)),
        ("ArgumentUsageError".into(), NOT_ENABLED.into())
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json, serde_json::json!({"mode": "Disabled"}));
}

#[test]
fn egress_enable_defaults_and_implicit_mesh_enable() {
    let p = ops::enable_egress_gateway(&off(), "eg", None, "sgc").unwrap();
    assert_eq!(p.mode, MeshMode::Istio);
    assert_eq!(p.revisions(), [DEFAULT_REVISION]);
    let g = &p.egress_gateways()[0];
    assert_eq!(
        (g.enabled, g.name.as_str(), g.namespace.as_str()),
        (true, "eg", "aks-istio-egress")
    );
    assert_eq!(g.gateway_configuration_name.as_deref(), Some("sgc"));
    // An existing revision is kept.
    let p = ops::enable_egress_gateway(&on(&["asm-1-25"]), "eg", Some("ns1"), "sgc").unwrap();
    assert_eq!(p.revisions(), ["asm-1-25"]);
    assert_eq!(p.egress_gateways()[0].namespace, "ns1");
}

#[test]
fn egress_names_unique_per_namespace() {
    let p = ops::enable_egress_gateway(&off(), "eg", Some("a"), "sgc").unwrap();
    let p = ops::enable_egress_gateway(&p, "eg", Some("b"), "sgc").unwrap();
    assert_eq!(p.egress_gateways().len(), 2);
    assert_eq!(
        err(ops::enable_egress_gateway(&p, "eg", Some("a"), "sgc")),
        (
            "ArgumentUsageError".into(),
            "Egress gateway eg in namespace a is already enabled with gateway configuration name sgc.".into()
        )
    );
}

#[test]
fn egress_switch_config_and_disable_keeps_entry() {
    let p = ops::enable_egress_gateway(&off(), "eg", None, "sgc1").unwrap();
    let p = ops::enable_egress_gateway(&p, "eg", None, "sgc2").unwrap();
    assert_eq!(p.egress_gateways().len(), 1);
    assert_eq!(
        p.egress_gateways()[0].gateway_configuration_name.as_deref(),
        Some("sgc2")
    );
    let d = ops::disable_egress_gateway(&p, "eg", None).unwrap();
    assert_eq!(d.egress_gateways().len(), 1);
    assert!(!d.egress_gateways()[0].enabled);
    assert_eq!(
        d.egress_gateways()[0].gateway_configuration_name.as_deref(),
        Some("sgc2")
    );
    assert_eq!(d.mode, MeshMode::Istio);
    assert_eq!(
        err(ops::disable_egress_gateway(&d, "eg", None)),
        (
            "ArgumentUsageError".into(),
            "Egress gateway eg in namespace aks-istio-egress is already disabled.".into()
        )
    );
    // Re-enabling a disabled entry with the same config name is allowed.
    let e = ops::enable_egress_gateway(&d, "eg", None, "sgc2").unwrap();
    assert!(e.egress_gateways()[0].enabled);
    assert_eq!(e.egress_gateways().len(), 1);
}

#[test]
fn egress_error_texts_in_az_order() {
    let enabled = on(&["asm-1-24"]);
    let cases: Vec<(ServiceMeshProfile, EgressRequest<'static>, &str, String)> = vec![
        (
            off(),
            EgressRequest {
                disable: true,
                name: Some("eg"),
                ..Default::default()
            },
            "ArgumentUsageError",
            NOT_ENABLED.into(),
        ),
        // Disable with the mesh off is checked before "both".
        (
            off(),
            EgressRequest {
                enable: true,
                disable: true,
                name: Some("eg"),
                ..Default::default()
            },
            "ArgumentUsageError",
            NOT_ENABLED.into(),
        ),
        (
            enabled.clone(),
            EgressRequest {
                enable: true,
                disable: true,
                name: Some("eg"),
                ..Default::default()
            },
            "MutuallyExclusiveArgumentError",
            "Cannot both enable and disable azure service mesh egress gateway at the same time."
                .into(),
        ),
        (
            off(),
            EgressRequest {
                enable: true,
                name: Some("eg"),
                ..Default::default()
            },
            "RequiredArgumentMissingError",
            "--gateway-configuration-name is required.".into(),
        ),
        // The config name is checked before the gateway name.
        (
            off(),
            EgressRequest {
                enable: true,
                ..Default::default()
            },
            "RequiredArgumentMissingError",
            "--gateway-configuration-name is required.".into(),
        ),
        (
            off(),
            EgressRequest {
                enable: true,
                gateway_configuration_name: Some("s"),
                ..Default::default()
            },
            "RequiredArgumentMissingError",
            "--istio-egressgateway-name is required.".into(),
        ),
        (
            enabled.clone(),
            EgressRequest {
                disable: true,
                ..Default::default()
            },
            "RequiredArgumentMissingError",
            "--istio-egressgateway-name is required.".into(),
        ),
        (
            enabled.clone(),
            EgressRequest {
                disable: true,
                name: Some("eg"),
                namespace: Some("ns"),
                ..Default::default()
            },
            "ArgumentUsageError",
            "Egress gateway eg in namespace ns does not exist, cannot disable.".into(),
        ),
    ];
    for (p, req, class, msg) in cases {
        let e = ops::egress_gateway(&p, &req).unwrap_err();
        assert_eq!((e.class(), e.to_string()), (class, msg), "{req:?}");
    }
}

#[test]
fn egress_limit_of_500() {
    let mut p = off();
    for i in 0..MAX_EGRESS_GATEWAYS {
        p = ops::enable_egress_gateway(&p, &format!("eg-{i}"), None, "sgc").unwrap();
    }
    assert_eq!(p.enabled_egress_gateways().count(), 500);
    let e = ops::enable_egress_gateway(&p, "eg-500", None, "sgc").unwrap_err();
    assert_eq!(e.class(), "BadRequest");
    assert_eq!(
        e.to_string(),
        "A cluster can have at most 500 Istio egress gateways; 500 are already enabled."
    );
    // Disabling one frees a slot; switching a config name does not count twice.
    let p = ops::disable_egress_gateway(&p, "eg-0", None).unwrap();
    let p = ops::enable_egress_gateway(&p, "eg-500", None, "sgc").unwrap();
    assert!(ops::enable_egress_gateway(&p, "eg-1", None, "other").is_ok());
}

#[test]
fn upgrades_hold_two_revisions_and_finish_by_semver() {
    let p = ops::upgrade_start(&on(&["asm-1-9"]), "asm-1-10").unwrap();
    assert_eq!(p.revisions(), ["asm-1-9", "asm-1-10"]);
    let e = ops::upgrade_start(&p, "asm-1-11").unwrap_err();
    assert_eq!(e.class(), "BadRequest");
    assert!(e.to_string().contains("already in progress"), "{e}");

    let c = ops::upgrade_complete(&p).unwrap();
    assert_eq!(
        (c.remove.as_str(), c.keep.as_str()),
        ("asm-1-9", "asm-1-10")
    );
    assert_eq!(c.profile.revisions(), ["asm-1-10"]);
    assert_eq!(
        c.prompt,
        "This operation will remove Istio control plane for revision asm-1-9. Please ensure all data plane workloads have been rolled over to revision asm-1-10 so that they are still part of the mesh.\nAre you sure you want to proceed?"
    );
    let r = ops::upgrade_rollback(&p).unwrap();
    assert_eq!(
        (r.remove.as_str(), r.keep.as_str()),
        ("asm-1-10", "asm-1-9")
    );
    assert_eq!(r.profile.revisions(), ["asm-1-9"]);

    for bad in ["asm-1-9", "asm-1-8", "asm-1-12", "asm-2-10"] {
        let e = ops::upgrade_start(&on(&["asm-1-9"]), bad).unwrap_err();
        assert_eq!(e.class(), "BadRequest", "{bad}");
    }
    assert!(ops::upgrade_start(&on(&["asm-1-9"]), "asm-1-11").is_ok());

    let not_in_progress = (
        "ArgumentUsageError".to_owned(),
        "Azure Service Mesh upgrade is not in progress.".to_owned(),
    );
    assert_eq!(
        err(ops::upgrade_complete(&on(&["asm-1-24"]))),
        not_in_progress
    );
    assert_eq!(
        err(ops::upgrade_rollback(&on(&["asm-1-24"]))),
        not_in_progress
    );
    let not_enabled = ("ArgumentUsageError".to_owned(), NOT_ENABLED.to_owned());
    assert_eq!(err(ops::upgrade_complete(&off())), not_enabled);
    assert_eq!(err(ops::upgrade_rollback(&off())), not_enabled);
    assert_eq!(err(ops::upgrade_start(&off(), "asm-1-25")), not_enabled);
}

#[test]
fn unsupported_revision_warning() {
    let w = ops::unsupported_revision_warning(&on(&["asm-1-20"]), SUPPORTED_REVISIONS).unwrap();
    assert_eq!(
        w,
        "Istio mesh revision asm-1-20 currently in use in your cluster is no longer supported.\nPlease upgrade for continued support. Use `az aks mesh get-upgrades` to check for available upgrades.\nMore information about mesh upgrades and version support can be found here: https://aka.ms/asm-aks-upgrade-docs"
    );
    assert!(ops::unsupported_revision_warning(&on(&["asm-1-24"]), SUPPORTED_REVISIONS).is_none());
    // Skipped during an upgrade (two revisions).
    assert!(
        ops::unsupported_revision_warning(&on(&["asm-1-20", "asm-1-21"]), SUPPORTED_REVISIONS)
            .is_none()
    );
}

#[test]
fn ingress_and_proxy_redirection() {
    assert_eq!(
        err(ops::ingress_gateway(
            &off(),
            false,
            Some(IngressGatewayMode::External)
        )),
        ("ArgumentUsageError".into(), NOT_ENABLED.into())
    );
    assert_eq!(
        err(ops::ingress_gateway(&off(), true, None)),
        (
            "RequiredArgumentMissingError".into(),
            "--ingress-gateway-type is required.".into()
        )
    );
    let p = ops::ingress_gateway(&off(), true, Some(IngressGatewayMode::External)).unwrap();
    assert!(p.is_enabled());
    let p = ops::ingress_gateway(&p, false, Some(IngressGatewayMode::Internal)).unwrap();
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(
        v["istio"]["components"]["ingressGateways"],
        serde_json::json!([{"mode": "External", "enabled": true}, {"mode": "Internal", "enabled": false}])
    );
    let m = ProxyRedirectionMechanism::CniChaining;
    assert_eq!(
        err(ops::set_proxy_redirection_mechanism(&off(), m)),
        ("ArgumentUsageError".into(), NOT_ENABLED.into())
    );
    let p = ops::set_proxy_redirection_mechanism(&p, m).unwrap();
    assert_eq!(
        err(ops::set_proxy_redirection_mechanism(&p, m)),
        (
            "ArgumentUsageError".into(),
            "Proxy redirection mechanism is already set to 'CNIChaining' for this cluster.".into()
        )
    );
}
