//! The generated gateway objects decode through the resource model's strict decoder, and match
//! what the egress how-to shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::objects::{self, EgressGatewayObjects};
use egress_model::resources::Resource;
use egress_model::{DecodeOptions, Outcome, decode::to_resource, decode_file, kinds};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

fn render(revisions: &[String]) -> Vec<Value> {
    objects::egress_gateway_objects(&EgressGatewayObjects {
        name: "asm-egress-test",
        namespace: "istio-egress-ns",
        gateway_configuration_name: "sgc-istio-egress",
        revisions,
        cluster_ip: "10.0.128.17",
        image: "egress:local",
    })
}

fn decode_all(objs: &[Value]) -> Vec<Resource> {
    objs.iter()
        .map(|v| {
            let info = kinds::for_manifest(
                v["apiVersion"].as_str().unwrap(),
                v["kind"].as_str().unwrap(),
            )
            .unwrap_or_else(|| panic!("unknown kind {}", v["kind"]));
            let (res, unknown) = to_resource(info, v).unwrap_or_else(|e| panic!("{v}: {e:?}"));
            assert!(unknown.is_empty(), "{}: {unknown:?}", v["kind"]);
            let text = serde_json::to_string_pretty(v).unwrap();
            match decode_file("gen.json", &text, &DecodeOptions::default())
                .pop()
                .unwrap()
            {
                // istioctl validate warns that the gateway Service's `status-port` (Istio's own
                // gateway chart names it so) does not follow the port naming convention; that
                // is the one warning the add-on's objects may get.
                Outcome::Valid(d) => assert!(
                    d.warnings.iter().all(|w| w.message.contains(
                        "port \"status-port\" does not follow the Istio naming convention"
                    )),
                    "{:?}",
                    d.warnings
                ),
                other => panic!("{}: {other:?}", v["kind"]),
            }
            res
        })
        .collect()
}

#[test]
fn every_object_decodes_strictly() {
    let revs = vec!["asm-1-24".to_owned(), "asm-1-25".to_owned()];
    let objs = render(&revs);
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    let res = decode_all(&objs);
    for r in &res {
        let m = r.metadata();
        assert_eq!(m.namespace.as_deref(), Some("istio-egress-ns"));
        assert_eq!(
            m.annotations.as_ref().unwrap()["meta.helm.sh/release-name"],
            "asm-egx-istio-egress-ns-asm-egress-test"
        );
    }
    let Resource::Service(svc) = &res[1] else {
        panic!()
    };
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.128.17"));
    let names: Vec<_> = spec
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["status-port", "http2", "https"]);

    let Resource::Deployment(d) = &res[2] else {
        panic!()
    };
    assert_eq!(d.metadata.name.as_deref(), Some("asm-egress-test-asm-1-24"));
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.name, "istio-proxy");
    assert_eq!(c.image.as_deref(), Some("egress:local"));
    assert_eq!(
        c.args.as_ref().unwrap()[..2],
        ["gateway".to_owned(), "run".to_owned()]
    );
    let probe = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/healthz/ready"));
    assert_eq!(probe.port, IntOrString::Int(15021));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL".to_owned()]
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("asm-egress-test"));

    let Resource::HorizontalPodAutoscaler(h) = &res[3] else {
        panic!()
    };
    let hs = h.spec.as_ref().unwrap();
    assert_eq!((hs.min_replicas, hs.max_replicas), (Some(2), 5));
    assert_eq!(hs.scale_target_ref.name, "asm-egress-test-asm-1-24");
    let cpu = hs.metrics.as_ref().unwrap()[0].resource.as_ref().unwrap();
    assert_eq!(cpu.target.average_utilization, Some(80));

    let Resource::PodDisruptionBudget(p) = &res[4] else {
        panic!()
    };
    assert_eq!(
        p.spec.as_ref().unwrap().min_available,
        Some(IntOrString::Int(1))
    );

    let Resource::Deployment(d2) = &res[5] else {
        panic!()
    };
    assert_eq!(
        d2.metadata.name.as_deref(),
        Some("asm-egress-test-asm-1-25")
    );
}

#[test]
fn seed_expectations() {
    let objs = render(&["asm-1-24".to_owned()]);
    let svc = &objs[1];
    assert_eq!(svc["metadata"]["name"], "asm-egress-test");
    assert_eq!(
        objects::service_ports_column(svc),
        "15021/TCP,80/TCP,443/TCP"
    );
    assert_eq!(svc["metadata"]["labels"]["app"], "asm-egress-test");
    assert_eq!(svc["metadata"]["labels"]["istio"], "asm-egress-test");
    assert_eq!(
        svc["metadata"]["labels"]["azureservicemesh/istio.component"],
        "egress-gateway"
    );
    let dep = &objs[2];
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["kubernetes.azure.com/static-gateway-configuration"],
        "sgc-istio-egress"
    );
    // The Gateway selector the how-to builds: `istio: <deployment .metadata.labels.istio>`.
    assert_eq!(dep["metadata"]["labels"]["istio"], "asm-egress-test");
    assert_eq!(dep["metadata"]["labels"]["istio.io/rev"], "asm-1-24");
    // The Service selects the pods of every revision.
    let sel = svc["spec"]["selector"].as_object().unwrap();
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert!(sel.iter().all(|(k, v)| &pod_labels[k] == v));
}

#[test]
fn node_affinity_flips_at_asm_1_30() {
    let weights = |rev: &str| {
        let objs = render(&[rev.to_owned()]);
        objs[2]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
            ["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["weight"].as_i64().unwrap(),
                    t["preference"]["matchExpressions"][0]["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let system = "kubernetes.azure.com/mode".to_owned();
    let preferred = "azureservicemesh/istio.replica.preferred".to_owned();
    for rev in ["asm-1-24", "asm-1-29"] {
        assert_eq!(
            weights(rev),
            [(100, system.clone()), (50, preferred.clone())],
            "{rev}"
        );
    }
    for rev in ["asm-1-30", "asm-1-31", "asm-2-0"] {
        assert_eq!(
            weights(rev),
            [(100, preferred.clone()), (50, system.clone())],
            "{rev}"
        );
    }
}

#[test]
fn long_release_names_are_shortened() {
    let name = objects::helm_release_name(
        "istio-egress-namespace",
        "asm-egress-gateway-with-a-long-name-1",
    );
    assert_eq!(name.len(), "asm-egx-".len() + 45);
    assert!(name.starts_with("asm-egx-istio-egress-na"));
    assert!(name.ends_with("h-a-long-name-1"), "{name}");
    assert!(
        name["asm-egx-".len() + 15..][..15]
            .chars()
            .all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    assert_eq!(
        objects::helm_release_name("aks-istio-egress", "aks-istio-egressgateway"),
        "asm-egx-aks-istio-egress-aks-istio-egressgateway"
    );
}
