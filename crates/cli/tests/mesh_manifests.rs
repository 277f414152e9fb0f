//! `egress mesh manifests` through the binary: multi-document YAML whose every document
//! decodes into its k8s-openapi type and re-encodes to exactly itself (so no field is
//! unknown or misspelt), with the gateway's image, arguments, securityContext, ports,
//! labels, StaticGatewayConfiguration annotation and node affinity; the gateway's read-only
//! RBAC (Role, RoleBinding, ClusterRole, ClusterRoleBinding); and `egress gateway run`
//! accepts the arguments the Deployment passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, Run};
use egress_model::resources::Resource;
use egress_model::yaml::parse_stream;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";
const SGC: &str = "sgc-istio-egress-1";

fn prerequisites(c: &Cluster) {
    c.namespace(NS);
    c.run_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata:
  name: {SGC}
  namespace: {NS}
spec:
  gatewayNodepoolName: gwpool
  provisionPublicIps: true
"
        ),
    )
    .ok();
}

fn mesh(c: &Cluster, args: &[&str]) -> Run {
    let mut all = vec!["mesh"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-g", "rg", "-n", "c"]);
    c.run(&all)
}

fn enable_gateway(c: &Cluster, name: &str) {
    mesh(
        c,
        &[
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            name,
            "--gateway-configuration-name",
            SGC,
            "--no-wait",
        ],
    )
    .ok();
}

/// The documents of a YAML stream, as JSON.
fn documents(text: &str) -> Vec<Value> {
    parse_stream(text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// Decodes `doc` into the k8s-openapi type of its kind (through the resource model's
/// variant for it) and checks that re-encoding gives `doc` back unchanged.
fn typed(doc: &Value) -> Resource {
    let v = doc.clone();
    let decoded = match doc["kind"].as_str().unwrap() {
        "ServiceAccount" => serde_json::from_value(v).map(Resource::ServiceAccount),
        "Service" => serde_json::from_value(v).map(Resource::Service),
        "Deployment" => serde_json::from_value(v).map(Resource::Deployment),
        "HorizontalPodAutoscaler" => {
            serde_json::from_value(v).map(Resource::HorizontalPodAutoscaler)
        }
        "PodDisruptionBudget" => serde_json::from_value(v).map(Resource::PodDisruptionBudget),
        other => panic!("unexpected kind {other}"),
    };
    let r = decoded.unwrap_or_else(|e| panic!("{e}: {doc}"));
    assert_eq!(&r.to_value().unwrap(), doc, "re-encoded {}", doc["kind"]);
    r
}

/// Decodes `doc` as `T` and checks that re-encoding gives `doc` back unchanged.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        doc,
        "re-encoded {}",
        doc["kind"]
    );
    typed
}

/// The RBAC documents through their k8s-openapi types; `false` for other kinds.
fn rbac_round_trips(doc: &Value) -> bool {
    match doc["kind"].as_str().unwrap() {
        "Role" => drop(round_trip::<Role>(doc)),
        "RoleBinding" => drop(round_trip::<RoleBinding>(doc)),
        "ClusterRole" => drop(round_trip::<ClusterRole>(doc)),
        "ClusterRoleBinding" => drop(round_trip::<ClusterRoleBinding>(doc)),
        _ => return false,
    }
    true
}

/// The first document of `kind`, and the `n`th (0-based) of that kind.
fn nth<'a>(docs: &'a [Value], kind: &str, n: usize) -> &'a Value {
    docs.iter().filter(|d| d["kind"] == kind).nth(n).unwrap()
}

fn setup_two_gateways_two_revisions() -> Cluster {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, "asm-egress-test");
    enable_gateway(&c, "second");
    mesh(
        &c,
        &["upgrade", "start", "--revision", "asm-1-25", "-o", "none"],
    )
    .ok();
    c
}

#[test]
fn every_document_round_trips_through_its_kubernetes_type() {
    let c = setup_two_gateways_two_revisions();
    let r = mesh(
        &c,
        &["manifests", "--image", "registry.example/egress:1.2.3"],
    )
    .ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    let docs = documents(&r.stdout);
    assert_eq!(r.stdout.matches("---\n").count() + 1, docs.len());
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let one_gateway = [
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
    ];
    assert_eq!(kinds, [one_gateway, one_gateway].concat());
    for doc in &docs {
        if rbac_round_trips(doc) {
            let labels = &doc["metadata"]["labels"];
            assert_eq!(labels["azureservicemesh/istio.component"], "egress-gateway");
            continue;
        }
        let r = typed(doc);
        let m = r.metadata();
        assert_eq!(m.namespace.as_deref(), Some(NS));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels["azureservicemesh/istio.component"], "egress-gateway");
        assert_eq!(
            &labels["app"],
            m.name.as_ref().unwrap().split("-asm-").next().unwrap()
        );
    }
}

#[test]
fn service_and_deployment_key_fields() {
    let c = setup_two_gateways_two_revisions();
    let docs = documents(
        &mesh(
            &c,
            &["manifests", "--image", "registry.example/egress:1.2.3"],
        )
        .ok()
        .stdout,
    );

    let Resource::Service(svc) = typed(nth(&docs, "Service", 0)) else {
        panic!()
    };
    assert_eq!(svc.metadata.name.as_deref(), Some("asm-egress-test"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.cluster_ip, None, "the real cluster allocates it");
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        [
            ("status-port".to_owned(), 15021),
            ("http2".to_owned(), 80),
            ("https".to_owned(), 443)
        ]
    );
    let selector = spec.selector.unwrap();
    assert_eq!(selector["app"], "asm-egress-test");
    assert_eq!(selector["istio"], "asm-egress-test");

    for (index, rev) in [(0, "asm-1-24"), (1, "asm-1-25")] {
        let Resource::Deployment(d) = typed(nth(&docs, "Deployment", index)) else {
            panic!()
        };
        assert_eq!(
            d.metadata.name.as_deref(),
            Some(format!("asm-egress-test-{rev}").as_str())
        );
        assert_eq!(d.metadata.labels.as_ref().unwrap()["istio.io/rev"], rev);
        let template = d.spec.unwrap().template;
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(
            annotations["kubernetes.azure.com/static-gateway-configuration"],
            SGC
        );
        let pod = template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("asm-egress-test"));
        let weights: Vec<(i32, String)> = pod
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap()
            .into_iter()
            .map(|t| {
                let key = t.preference.match_expressions.unwrap()[0].key.clone();
                (t.weight, key)
            })
            .collect();
        assert_eq!(
            weights,
            [
                (100, "kubernetes.azure.com/mode".to_owned()),
                (50, "azureservicemesh/istio.replica.preferred".to_owned())
            ]
        );
        let sysctls = pod.security_context.unwrap().sysctls.unwrap();
        assert_eq!(
            (sysctls[0].name.as_str(), sysctls[0].value.as_str()),
            ("net.ipv4.ip_unprivileged_port_start", "0")
        );
        let container = &pod.containers[0];
        assert_eq!(container.name, "istio-proxy");
        assert_eq!(
            container.image.as_deref(),
            Some("registry.example/egress:1.2.3")
        );
        assert_eq!(
            container.args.clone().unwrap(),
            [
                "gateway",
                "run",
                "--revision",
                rev,
                "--service-ports",
                "80:80,443:443",
                "--health-port",
                "15021",
                "--kube",
                "--ca-address",
                &format!("istiod-{rev}.aks-istio-system.svc:15012"),
                "--ca-server-name",
                &format!("istiod-{rev}.aks-istio-system.svc"),
                "--ca-root",
                "/var/run/secrets/istio/root-cert.pem",
                "--token-file",
                "/var/run/secrets/tokens/istio-token",
            ]
        );
        let mounts: Vec<(String, String)> = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.clone(), m.mount_path.clone()))
            .collect();
        assert_eq!(
            mounts,
            [
                (
                    "istiod-ca-cert".to_owned(),
                    "/var/run/secrets/istio".to_owned()
                ),
                (
                    "istio-token".to_owned(),
                    "/var/run/secrets/tokens".to_owned()
                ),
            ]
        );
        let volumes = pod.volumes.as_ref().unwrap();
        let token = volumes[1]
            .projected
            .as_ref()
            .unwrap()
            .sources
            .as_ref()
            .unwrap()[0]
            .service_account_token
            .as_ref()
            .unwrap();
        assert_eq!(
            (token.audience.as_deref(), token.path.as_str()),
            (Some("istio-ca"), "istio-token")
        );
        let sc = serde_json::to_value(container.security_context.as_ref().unwrap()).unwrap();
        assert_eq!(
            sc,
            json!({
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "runAsGroup": 1337,
                "runAsNonRoot": true,
                "runAsUser": 1337,
            })
        );
        let ports: Vec<i32> = container
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [15021, 80, 443, 15090]);
        let env: Vec<&str> = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        for name in [
            "POD_NAMESPACE",
            "POD_LABELS",
            "SERVICE_ACCOUNT",
            "ISTIO_REVISION",
        ] {
            assert!(env.contains(&name), "{name} missing from {env:?}");
        }
        let probe = container.readiness_probe.as_ref().unwrap();
        assert_eq!(
            probe.http_get.as_ref().unwrap().path.as_deref(),
            Some("/healthz/ready")
        );
    }
}

#[test]
fn default_image_and_refusals() {
    let c = Cluster::new();
    // The local cluster before any mesh command (`-g`/`-n` left out: its own).
    let off = c.run(&["mesh", "manifests"]).fails();
    assert_eq!(
        off.stderr,
        "ERROR: Azure Service Mesh is not enabled for cluster egress-local: there are no egress gateway manifests. Enable the mesh and an egress gateway first (egress mesh enable, egress mesh enable-egress-gateway).\n"
    );
    assert!(off.stdout.is_empty());
    mesh(&c, &["enable", "-o", "none"]).ok();
    let none = mesh(&c, &["manifests"]).fails();
    assert_eq!(
        none.stderr,
        "ERROR: no egress gateway is enabled on cluster c: there are no egress gateway manifests. Enable one first (egress mesh enable-egress-gateway).\n"
    );
    prerequisites(&c);
    enable_gateway(&c, "eg");
    let docs = documents(&mesh(&c, &["manifests"]).ok().stdout);
    assert_eq!(docs.len(), 9);
    assert_eq!(
        nth(&docs, "Deployment", 0)["spec"]["template"]["spec"]["containers"][0]["image"],
        egress_cli::mesh::IMAGE
    );
}

#[test]
fn gateway_run_accepts_the_deployment_arguments() {
    let c = setup_two_gateways_two_revisions();
    let docs = documents(&mesh(&c, &["manifests"]).ok().stdout);
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 4);
    for d in deployments {
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        // clap rejects an unknown flag or a bad value before it reaches `--help`.
        let mut with_help = args.clone();
        with_help.push("--help");
        let mut cmd = c.command(&with_help);
        for e in container["env"].as_array().unwrap() {
            if let Some(value) = e["value"].as_str() {
                cmd.env(e["name"].as_str().unwrap(), value);
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check has teeth: an argument `gateway run` does not know fails.
    let bad = c.run(&["gateway", "run", "--no-such-flag", "--help"]);
    assert_ne!(bad.code, 0);
}
