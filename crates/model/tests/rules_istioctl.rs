//! Table tests for what `istioctl validate` says of Kubernetes Services and Deployments: port
//! names against Istio's naming convention, unnamed ports, `appProtocol` values Istio cannot
//! select (warnings here, in istioctl's words), Services in Istio's namespace left alone, and
//! documents without an `apiVersion` or with a null Deployment `spec` treated as istioctl
//! treats them (judged by kind, accepted).

// Test helpers outside `#[test]` functions fail loudly on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::decode;
use egress_model::decode::Outcome;
use egress_model::diag::{Diagnostic, Severity};
use egress_model::resources::Resource;

const REQUIREMENTS: &str = "https://istio.io/latest/docs/ops/deployment/requirements/";
const SELECTION: &str =
    "https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/";

/// The document is accepted; its warnings as (field, message).
fn warnings(text: &str) -> Vec<(String, String)> {
    match decode(text) {
        Outcome::Valid(d) => d
            .warnings
            .iter()
            .filter(|w| w.severity == Severity::Warning)
            .map(|w| (w.field.clone(), w.message.clone()))
            .collect(),
        Outcome::Invalid(d) => panic!("want valid, got {:?}\n{text}", render(&d)),
        Outcome::Unsupported { .. } => panic!("unsupported:\n{text}"),
    }
}

fn render(d: &[Diagnostic]) -> Vec<String> {
    d.iter().map(ToString::to_string).collect()
}

fn service(ns: &str, port: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: {ns}\nspec:\n  ports:\n  - {port}\n"
    )
}

/// (port, field of the warning, message), or no warning when the field is empty.
#[rustfmt::skip]
const PORTS: &[(&str, &str, &str)] = &[
    ("{port: 80, name: http}", "", ""),
    ("{port: 80, name: http-web}", "", ""),
    ("{port: 80, name: HTTP2-x}", "", ""),
    ("{port: 80, name: grpc-web}", "", ""),
    ("{port: 80, name: tcp-db}", "", ""),
    ("{port: 80, name: tls}", "", ""),
    ("{port: 80, name: foo}", "spec.ports[0].name", "service \"svc/apps/:\" port \"foo\" does not follow the Istio naming convention. See {R}"),
    ("{port: 15021, name: status-port}", "spec.ports[0].name", "service \"svc/apps/:\" port \"status-port\" does not follow the Istio naming convention. See {R}"),
    ("{port: 80, name: \"\"}", "spec.ports[0].name", "service \"svc/apps/:\" port \"\" does not follow the Istio naming convention. See {R}"),
    ("{port: 80}", "spec.ports[0]", "service \"svc/apps/:\" has an unnamed port. This is not recommended, See {R}"),
    ("{port: 80, name: web, appProtocol: http}", "", ""),
    ("{port: 80, appProtocol: https}", "", ""),
    ("{port: 80, name: http, appProtocol: bogus}", "spec.ports[0].appProtocol", "service \"svc/apps/:\" doesn't follow Istio protocol selection. This is not recommended, See {S}"),
    ("{port: 53, protocol: UDP}", "", ""),
];

#[test]
fn service_ports_in_istioctls_words() {
    for (port, field, msg) in PORTS {
        let got = warnings(&service("apps", port));
        let want: Vec<(String, String)> = if field.is_empty() {
            Vec::new()
        } else {
            vec![(
                field.to_string(),
                msg.replace("{R}", REQUIREMENTS).replace("{S}", SELECTION),
            )]
        };
        assert_eq!(got, want, "{port}");
    }
    // istioctl leaves the Services of Istio's own namespace alone.
    for (port, _, _) in PORTS {
        assert!(
            warnings(&service("istio-system", port)).is_empty(),
            "{port}"
        );
    }
}

#[test]
fn documents_istioctl_judges_by_kind() {
    // No apiVersion: a Service is still a Service, its ports judged.
    let text = "kind: Service\nmetadata:\n  name: svc\nspec:\n  ports: [{port: 80, name: foo}]\n";
    let got = warnings(text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]
            .1
            .contains("does not follow the Istio naming convention")
    );
    let Outcome::Valid(d) = decode(text) else {
        panic!()
    };
    assert!(matches!(d.resource, Resource::Service(_)));
    assert_eq!(d.value["apiVersion"], "v1");

    // A Deployment without apiVersion and with a null spec is accepted.
    for text in [
        "kind: Deployment\nmetadata:\n  name: d\nspec:\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n",
    ] {
        let Outcome::Valid(d) = decode(text) else {
            panic!("{text}")
        };
        assert!(matches!(d.resource, Resource::Deployment(_)), "{text}");
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    // Other kinds still need their apiVersion.
    match decode("kind: Gateway\nmetadata:\n  name: g\nspec: {}\n") {
        Outcome::Invalid(d) => assert_eq!(d[0].message, "apiVersion not set"),
        other => panic!("{:?}", other.diagnostics()),
    }
}
