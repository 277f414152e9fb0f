//! The seed walk-through against a real Kubernetes cluster, in Kubernetes mode: `egress mesh
//! enable-egress-gateway --kubeconfig $KUBECONFIG` server-side-applies the add-on's objects
//! and waits for the rollout, `kubectl` checks what the seed checks (Service ports, the
//! Deployment's StaticGatewayConfiguration annotation), the `curl` sample sends the seed's
//! requests through the gateway for each of the seed's three configurations, and disabling
//! removes the objects again.
//!
//! Needs a cluster with Istio (its CRDs, sidecar injection for revision `asm-1-24`, the root
//! namespace `aks-istio-system`), `kubectl` on PATH, outbound internet for `edition.cnn.com`,
//! and the gateway image pushed where the cluster pulls from:
//!
//! ```text
//! KUBECONFIG=~/.kube/config EGRESS_IMAGE=registry.example/egress:dev \
//!   cargo test -p egress-cli --test cluster_seed -- --ignored --nocapture
//! ```
//!
//! Every step is printed with its output. Without `KUBECONFIG` the test fails rather than
//! pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Cluster;

const NS: &str = "aks-istio-egress";
const GW: &str = "asm-egress-test";
const SGC: &str = "istio-egress-sgc";
const REVISION: &str = "asm-1-24";

/// Runs `kubectl args` (input on stdin if any), printing the command and its output;
/// `(exit code, stdout)`.
fn kubectl(kubeconfig: &str, args: &[&str], input: Option<&str>) -> (i32, String) {
    println!("$ kubectl {}", args.join(" "));
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

#[track_caller]
fn kubectl_ok(kubeconfig: &str, args: &[&str], input: Option<&str>) -> String {
    let (code, out) = kubectl(kubeconfig, args, input);
    assert_eq!(code, 0, "kubectl {} failed", args.join(" "));
    out
}

/// Runs `egress args`, printing the command and its output.
#[track_caller]
fn egress(c: &Cluster, args: &[&str]) {
    println!("$ egress {}", args.join(" "));
    let r = c.run(args);
    print!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 0, "egress {} failed", args.join(" "));
}

/// Retries `check` until it holds or `within` passes: the cluster converges on its own time.
#[track_caller]
fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
#[ignore = "needs cluster: a real Kubernetes cluster with Istio at KUBECONFIG and the egress image (EGRESS_IMAGE); run with `cargo test -p egress-cli --test cluster_seed -- --ignored`"]
fn the_seed_walk_through_on_a_real_cluster() {
    let kubeconfig = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must point at a cluster with Istio (see this file's header)");
    let image = std::env::var("EGRESS_IMAGE").unwrap_or_else(|_| "egress:latest".to_owned());
    let seed = common::seed().expect("the seed (../shared) beside the repository");
    let c = Cluster::new();
    let kc = kubeconfig.as_str();

    println!("== 1. prerequisites: the gateway namespace, its StaticGatewayConfiguration");
    kubectl_ok(kc, &["version"], None);
    kubectl_ok(
        kc,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n"
        )),
    );
    let (_, served) = kubectl(
        kc,
        &[
            "api-resources",
            "--api-group=egressgateway.kubernetes.azure.com",
            "-o",
            "name",
        ],
        None,
    );
    if served.contains("staticgatewayconfigurations") {
        kubectl_ok(
            kc,
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: {SGC}\n  namespace: {NS}\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n"
            )),
        );
    } else {
        println!(
            "(StaticGatewayConfiguration is not served: kube-egress-gateway is not installed)"
        );
    }

    println!("== 2. enable the egress gateway (server-side apply, wait for the rollout)");
    egress(
        &c,
        &["mesh", "enable", "--revision", REVISION, "-o", "none"],
    );
    egress(
        &c,
        &[
            "mesh",
            "enable-egress-gateway",
            "--istio-egressgateway-name",
            GW,
            "--istio-egressgateway-namespace",
            NS,
            "--gateway-configuration-name",
            SGC,
            "--kubeconfig",
            kc,
            "--image",
            &image,
            "-o",
            "none",
        ],
    );
    let svc = kubectl_ok(kc, &["get", "svc", GW, "-n", NS], None);
    assert!(svc.contains("ClusterIP"), "{svc}");
    assert!(svc.contains("15021/TCP,80/TCP,443/TCP"), "{svc}");
    let annotation = kubectl_ok(
        kc,
        &[
            "get",
            "deployment",
            &format!("{GW}-{REVISION}"),
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubernetes\\.azure\\.com/static-gateway-configuration}",
        ],
        None,
    );
    assert_eq!(annotation.trim(), SGC);

    println!("== 3. the curl sample with a sidecar");
    kubectl_ok(
        kc,
        &[
            "label",
            "namespace",
            NS,
            &format!("istio.io/rev={REVISION}"),
            "--overwrite",
        ],
        None,
    );
    let curl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    kubectl_ok(kc, &["apply", "-n", NS, "-f", "-"], Some(&curl));
    kubectl_ok(
        kc,
        &[
            "wait",
            "-n",
            NS,
            "--for=condition=ready",
            "pod",
            "-l",
            "app=curl",
            "--timeout=300s",
        ],
        None,
    );
    let pod = kubectl_ok(
        kc,
        &[
            "get",
            "pod",
            "-n",
            NS,
            "-l",
            "app=curl",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
        None,
    );

    println!("== 4. the seed's three configurations, each through the gateway");
    let urls = [
        "http://edition.cnn.com/politics",
        "https://edition.cnn.com/politics",
        "http://edition.cnn.com/politics",
    ];
    for (i, url) in urls.iter().enumerate() {
        let config = seed[1 + 2 * i..3 + 2 * i].join("---\n");
        kubectl_ok(kc, &["apply", "-n", NS, "-f", "-"], Some(&config));
        until(
            &format!("{url} through the gateway"),
            Duration::from_secs(120),
            || {
                let (code, out) = kubectl(
                    kc,
                    &[
                        "exec",
                        "-n",
                        NS,
                        pod.trim(),
                        "-c",
                        "curl",
                        "--",
                        "curl",
                        "-sSL",
                        "-o",
                        "/dev/null",
                        "-D",
                        "-",
                        url,
                    ],
                    None,
                );
                let (_, logs) = kubectl(
                    kc,
                    &["logs", "-l", &format!("istio={GW}"), "-n", NS, "--tail=50"],
                    None,
                );
                code == 0 && out.starts_with("HTTP/") && logs.contains("edition.cnn.com")
            },
        );
        kubectl_ok(kc, &["delete", "-n", NS, "-f", "-"], Some(&config));
    }

    println!("== 5. disable: the add-on's objects are removed");
    egress(
        &c,
        &[
            "mesh",
            "disable-egress-gateway",
            "--istio-egressgateway-name",
            GW,
            "--istio-egressgateway-namespace",
            NS,
            "--kubeconfig",
            kc,
            "--yes",
            "-o",
            "none",
        ],
    );
    let (code, _) = kubectl(kc, &["get", "svc", GW, "-n", NS], None);
    assert_ne!(code, 0, "the Service is still there");
    let (code, _) = kubectl(
        kc,
        &["get", "clusterrole", &format!("asm-egx-{NS}-{GW}")],
        None,
    );
    assert_ne!(code, 0, "the ClusterRole is still there");
    kubectl_ok(kc, &["delete", "-n", NS, "-f", "-"], Some(&curl));
}
