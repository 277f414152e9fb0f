//! `egress analyze` (istioctl analyze's analyzers) on the seed's state: the add-on's gateway,
//! the seed's manifests applied as the seed applies them, then the same with the Gateway's
//! selector changed to a label no Pod has, given as a file layered over the store.
//!
//! Without `egress up` no ReplicaSet runs the gateway Deployment, so the test applies the one
//! Pod it would run: the Deployment's own Pod template labels, read back from the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Cluster;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

fn seeded() -> Option<(Cluster, Vec<String>)> {
    let manifests = common::seed()?;
    let c = Cluster::new();
    c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
        .ok();
    c.namespace("aks-istio-system");
    c.namespace(NS);
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n",
    )
    .ok();
    // What the SGC controller of `egress up` (or AKS) does before the seed's next step: the
    // prefix the seed says to wait for (egress's EGR0002 reports a gateway without one).
    let store = egress_store::Store::open(c.store()).unwrap();
    let key = egress_store::ObjectKey::new(
        "egressgateway.kubernetes.azure.com",
        "StaticGatewayConfiguration",
        Some(NS),
        "istio-egress-sgc",
    );
    store
        .transact(|tx| {
            let mut sgc = tx.get(&key)?.unwrap();
            sgc["status"] = serde_json::json!({"egressIpPrefix": "127.200.0.0/31"});
            tx.apply(&key, sgc).map(|_| ())
        })
        .unwrap();
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "asm-egress-test",
        "--istio-egressgateway-namespace",
        NS,
        "--gateway-configuration-name",
        "istio-egress-sgc",
        "-o",
        "none",
    ])
    .ok();
    let labels = c
        .run(&[
            "get",
            "deploy",
            "asm-egress-test-asm-1-24",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.template.metadata.labels}",
        ])
        .ok();
    let labels: Value = serde_json::from_str(&labels.stdout).unwrap();
    assert_eq!(labels["istio"], "asm-egress-test", "{labels}");
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "asm-egress-test-0", "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "istio-proxy", "image": "egress"}]},
    });
    c.run_stdin(&["apply", "-f", "-"], &pod.to_string()).ok();
    Some((c, manifests))
}

fn apply(c: &Cluster, m: &str) {
    if m.contains("kind: ConfigMap") {
        c.run_stdin(&["apply", "-f", "-"], m).ok();
    } else {
        c.run_stdin(&["apply", "-n", NS, "-f", "-"], m).ok();
    }
}

#[test]
fn seed_state_is_clean_and_a_wrong_selector_is_found_with_its_line() {
    let Some((c, manifests)) = seeded() else {
        return;
    };
    assert_eq!(manifests.len(), 7);
    // The ConfigMap and the first two scenarios (plain HTTP through the gateway).
    for m in &manifests[..3] {
        apply(&c, m);
    }
    let r = c.run(&["analyze", "-A"]);
    println!("scenarios 1-2: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "nothing at any level");
    assert!(
        r.stderr
            .contains("No validation issues found when analyzing all namespaces")
    );

    // The walk-through's cleanup, then scenario 2 (HTTPS passthrough): nothing either.
    let cleanup = |c: &Cluster, drs: &[&str]| {
        for obj in [
            "serviceentry/cnn",
            "gateway/istio-egressgateway",
            "virtualservice/direct-cnn-through-egress-gateway",
        ]
        .iter()
        .chain(drs)
        {
            c.run(&["delete", obj, "-n", NS]).ok();
        }
    };
    cleanup(&c, &["destinationrule/egressgateway-for-cnn"]);
    for m in &manifests[3..5] {
        apply(&c, m);
    }
    let r = c.run(&["analyze", "-A"]);
    println!("scenario 2: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    // Scenario 3 originates TLS at the gateway without caCertificates. istioctl warns (IST0129:
    // its CaCertificateAnalyzer reports any SIMPLE/MUTUAL port without caCertificates), though
    // the server is verified against the system trust store; egress reports the same code and
    // text at Info, so nothing reaches warning level (docs/analyze.md says why).
    cleanup(&c, &["destinationrule/egressgateway-for-cnn"]);
    for m in &manifests[5..] {
        apply(&c, m);
    }
    let r = c.run(&["analyze", "-A"]);
    println!("scenario 3: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let line = r.stdout.trim_end();
    assert!(
        line.starts_with(
            "Info [IST0129] (DestinationRule aks-istio-egress/originate-tls-for-edition-cnn-com)"
        ) && line.ends_with("at port number:443"),
        "{line}"
    );
    let r = c.run(&["analyze", "-A", "--output-threshold", "Warning"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = c.run(&["analyze", "-A", "--failure-threshold", "Warning"]);
    assert_eq!((r.code, r.stdout.trim_end()), (0, line));
    let r = c.run(&["analyze", "-A", "--failure-threshold", "Info"]);
    assert_eq!(r.code, 79, "istioctl's exit code for issues found");
    let r = c.run(&["analyze", "-A", "--suppress", "IST0129=DestinationRule *"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));

    // With insecureSkipVerify the server really goes unverified: then it is istioctl's Warning.
    let originate = manifests
        .iter()
        .flat_map(|m| m.split("\n---\n"))
        .find(|d| d.contains("name: originate-tls-for-edition-cnn-com"))
        .expect("the seed's TLS-origination DestinationRule");
    let insecure = originate
        .replace(
            "mode: SIMPLE",
            "mode: SIMPLE\n        insecureSkipVerify: true",
        )
        .replace(
            "name: originate-tls-for-edition-cnn-com",
            "name: originate-tls-for-edition-cnn-com\n  namespace: aks-istio-egress",
        );
    assert_ne!(
        insecure, originate,
        "the seed's DestinationRule sets mode: SIMPLE"
    );
    let file = c.write("insecure-dr.yaml", &insecure);
    let r = c.run(&["analyze", "-A", "-f", file.to_str().unwrap()]);
    assert!(
        r.stdout.starts_with(
            "Warning [IST0129] (DestinationRule aks-istio-egress/originate-tls-for-edition-cnn-com"
        ),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let r = c.run(&[
        "analyze",
        "-A",
        "-f",
        file.to_str().unwrap(),
        "--failure-threshold",
        "Warning",
    ]);
    assert_eq!(r.code, 79, "{}", r.stdout);

    // The walk-through's end state (scenario 3 cleaned up as the seed does): nothing.
    let last = manifests[6].clone();
    cleanup(
        &c,
        &[
            "destinationrule/originate-tls-for-edition-cnn-com",
            "destinationrule/egressgateway-for-cnn",
        ],
    );
    let r = c.run(&["analyze", "-A"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    for m in &manifests[5..] {
        apply(&c, m);
    }
    assert_eq!(last, manifests[6]);

    // The last scenario's Gateway with a selector no Pod has, as a file over the store.
    let gw = manifests[6]
        .split("\n---\n")
        .find(|d| d.contains("kind: Gateway"))
        .unwrap()
        .replace("istio: asm-egress-test", "istio: wrong-label");
    let path = c.write("gateway.yaml", &gw);
    let want_line = gw
        .lines()
        .position(|l| l.contains("istio: wrong-label"))
        .unwrap()
        + 1;
    let file = path.to_str().unwrap();
    let r = c.run(&["analyze", "-n", NS, "-f", file]);
    println!("wrong selector: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    assert_eq!(r.code, 79);
    let expected = format!(
        "Error [IST0101] (Gateway {NS}/istio-egressgateway {file}:{want_line}) Referenced selector not found: \"istio=wrong-label\""
    );
    assert!(
        r.stdout.lines().any(|l| l == expected),
        "want {expected}\n{}",
        r.stdout
    );
    // JSON names the code, level and file:line too.
    let r = c.run(&["analyze", "-n", NS, "-f", file, "-o", "json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let hit = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == "IST0101")
        .unwrap();
    assert_eq!(hit["level"], "Error");
    assert_eq!(hit["reference"], format!("{file}:{want_line}"));
    // The store itself is unchanged: without the file, the error is gone.
    let r = c.run(&["analyze", "-n", NS, "--output-threshold", "Error"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

#[test]
fn files_only_exit_codes_and_stdin() {
    let c = Cluster::new();
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec:\n  hosts:\n  - a.example.com\n  gateways:\n  - missing-gw\n  http:\n  - route:\n    - destination:\n        host: a.example.com\n";
    let r = c.run_stdin(&["analyze", "--use-kube=false", "-f", "-"], vs);
    assert_eq!(r.code, 79, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "Error [IST0101] (VirtualService default/vs -:9) Referenced gateway not found: \"missing-gw\""
        ),
        "{}",
        r.stdout
    );
    let r = c.run_stdin(&["analyze", "--use-kube=false", "-f", "-"], "a: [\n");
    assert_eq!(r.code, 65, "{}{}", r.stdout, r.stderr);
    let r = c.run(&["analyze", "--failure-threshold", "bogus"]);
    assert_eq!(r.code, 64, "{}{}", r.stdout, r.stderr);
    // `analyze traffic` is still a subcommand.
    let r = c.run(&["analyze", "traffic", "--help"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
