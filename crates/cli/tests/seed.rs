//! Every resource YAML in the seed document (the AKS egress-gateway how-to), with its shell
//! variables filled in, validates and applies the way the seed applies it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, seed_manifests, shared};

#[test]
fn every_seed_manifest_validates_and_applies() {
    let Some(shared) = shared() else {
        egress_testkit::skip("../shared (the seed) is not beside the repository");
        return;
    };
    let seed = std::fs::read_to_string(shared.join("seed/000_39c6bb10cf1ba6a2.txt")).unwrap();
    let manifests = seed_manifests(&seed);
    // ConfigMap, then three scenarios each with a ServiceEntry and Gateway/DR/VS set.
    assert_eq!(manifests.len(), 7, "seed manifests found: {manifests:#?}");
    let c = Cluster::new();
    c.namespace("aks-istio-egress");
    c.namespace("aks-istio-system");
    let mut applied = 0;
    for (i, m) in manifests.iter().enumerate() {
        assert!(!m.contains('$'), "unfilled variable in manifest {i}:\n{m}");
        let name = format!("seed-{i}.yaml");
        let path = c.write(&name, m);
        let v = c.run(&["validate", "-f", path.to_str().unwrap()]).ok();
        assert!(v.stdout.contains("is valid"), "{}", v.stdout);
        assert!(
            !v.stderr.contains("error"),
            "manifest {i} has errors:\n{}",
            v.stderr
        );
        // The seed applies heredocs with `-n $ISTIO_EGRESS_NAMESPACE -f -`, the ConfigMap as is.
        let run = if m.contains("kind: ConfigMap") {
            c.run(&["apply", "-f", path.to_str().unwrap()])
        } else {
            c.run_stdin(&["apply", "-n", "aks-istio-egress", "-f", "-"], m)
        }
        .ok();
        applied += run.stdout.lines().count();
        println!("manifest {i}:\n{}", run.stdout);
    }
    // 1 ConfigMap + (SE + GW + DR + VS) + (SE + GW + DR + VS) + (SE + GW + DR + VS + DR).
    assert_eq!(applied, 14);
    let cm = c
        .run(&[
            "get",
            "cm",
            "istio-shared-configmap-asm-1-24",
            "-n",
            "aks-istio-system",
            "-o",
            "jsonpath={.data.mesh}",
        ])
        .ok();
    assert_eq!(cm.stdout, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY");
    let dr = c
        .run(&["get", "dr", "-n", "aks-istio-egress", "-o", "name"])
        .ok();
    assert_eq!(
        dr.stdout,
        "destinationrule.networking.istio.io/egressgateway-for-cnn\ndestinationrule.networking.istio.io/originate-tls-for-edition-cnn-com\n"
    );
    // The seed's cleanup commands.
    for cmd in [
        "egress delete serviceentry cnn -n aks-istio-egress",
        "egress delete gateway istio-egressgateway -n aks-istio-egress",
        "egress delete virtualservice direct-cnn-through-egress-gateway -n aks-istio-egress",
        "egress delete destinationrule originate-tls-for-edition-cnn-com -n aks-istio-egress",
        "egress delete destinationrule egressgateway-for-cnn -n aks-istio-egress",
    ] {
        let r = c.sh(cmd).ok();
        assert!(r.stdout.ends_with("deleted\n"), "{cmd}: {}", r.stdout);
    }
    for kind in ["se", "gw", "vs", "dr"] {
        let r = c.run(&["get", kind, "-n", "aks-istio-egress"]).ok();
        assert_eq!(r.stdout, "");
        assert_eq!(
            r.stderr,
            "No resources found in aks-istio-egress namespace.\n"
        );
    }
}
