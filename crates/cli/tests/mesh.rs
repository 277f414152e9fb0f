//! `egress mesh …` (the `az aks mesh …` commands) through the real binary and a temporary
//! store: the seed's "Enable an Istio egress gateway" section, az's error texts, and canary
//! upgrades' effect on the gateway objects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use clap::{CommandFactory, Parser};
use common::{Cluster, Run};
use egress_addon::AddonError;
use egress_cli::mesh::{MeshCommand, MeshError};

const NS: &str = "aks-istio-egress";
const GW: &str = "asm-egress-test";
const SGC: &str = "sgc-istio-egress-1";

const SGC_YAML: &str = "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata:
  name: sgc-istio-egress-1
  namespace: aks-istio-egress
spec:
  gatewayNodepoolName: gwpool
  provisionPublicIps: true
  excludeCidrs: [10.0.0.0/8]
";

/// The namespace and the StaticGatewayConfiguration the how-to's prerequisites create.
fn prerequisites(c: &Cluster) {
    c.namespace(NS);
    c.run_stdin(&["apply", "-f", "-"], SGC_YAML).ok();
}

fn enable_gateway(c: &Cluster, name: &str) -> Run {
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--resource-group",
        "rg",
        "--name",
        "c",
        "--istio-egressgateway-name",
        name,
        "--istio-egressgateway-namespace",
        NS,
        "--gateway-configuration-name",
        SGC,
    ])
}

fn mesh(c: &Cluster, args: &[&str]) -> Run {
    let mut all = vec!["mesh"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-g", "rg", "-n", "c"]);
    c.run(&all)
}

/// az's error shape: `ERROR: <message>` on stderr, exit code 1, no error class name.
#[track_caller]
fn az_error(r: Run, message: &str) {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with("ERROR: ") && r.stderr.contains(message),
        "stderr:\n{}",
        r.stderr
    );
    for class in [
        "ArgumentUsageError",
        "InvalidArgumentValueError",
        "RequiredArgumentMissingError",
    ] {
        assert!(!r.stderr.contains(class), "{}", r.stderr);
    }
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

fn names(c: &Cluster, kind: &str) -> Vec<String> {
    let r = c.run(&["get", kind, "-n", NS, "-o", "name"]).ok();
    r.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn seed_enable_an_istio_egress_gateway() {
    let c = Cluster::new();
    prerequisites(&c);
    let r = enable_gateway(&c, GW).ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(mc["name"], "c");
    assert_eq!(mc["resourceGroup"], "rg");
    assert_eq!(mc["serviceMeshProfile"]["mode"], "Istio");
    let eg = &mc["serviceMeshProfile"]["istio"]["components"]["egressGateways"][0];
    assert_eq!(eg["name"], GW);
    assert_eq!(eg["gatewayConfigurationName"], SGC);
    // The SGC has no egressIpPrefix yet: enabled anyway, with a warning.
    assert!(
        r.stderr.contains("WARNING: ")
            && r.stderr.contains("the egress IP prefix is not ready yet."),
        "{}",
        r.stderr
    );

    let svc = c.run(&["get", "svc", GW, "-n", NS]).ok().stdout;
    let lines: Vec<&str> = svc.lines().collect();
    assert_eq!(lines.len(), 2, "{svc}");
    assert!(lines[0].starts_with("NAME"), "{svc}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[0], GW);
    assert_eq!(cols[1], "ClusterIP");
    assert_eq!(cols[2], "10.0.0.1");
    assert_eq!(cols[3], "<none>");
    assert_eq!(cols[4], "15021/TCP,80/TCP,443/TCP");

    if c.sh("command -v jq").code != 0 {
        egress_testkit::skip("jq is not installed; the ASM_REVISION pipeline needs it");
        return;
    }
    let r = c
        .sh(r#"ASM_REVISION=$(egress mesh show -g rg -n c | jq '.serviceMeshProfile.istio.revisions[0]' | sed 's/"//g')
egress get deployment asm-egress-test-$ASM_REVISION -n aks-istio-egress -o jsonpath={.spec.template.metadata.annotations."kubernetes\.azure\.com\/static-gateway-configuration"}"#)
        .ok();
    assert_eq!(r.stdout.trim(), SGC, "stderr: {}", r.stderr);
}

#[test]
fn gateway_objects_and_cluster_ips() {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, GW).ok();
    enable_gateway(&c, "second").ok();
    assert_eq!(
        names(&c, "deployment"),
        [
            "deployment.apps/asm-egress-test-asm-1-24",
            "deployment.apps/second-asm-1-24"
        ]
    );
    assert_eq!(
        names(&c, "sa"),
        ["serviceaccount/asm-egress-test", "serviceaccount/second"]
    );
    assert_eq!(names(&c, "hpa").len(), 2);
    assert_eq!(names(&c, "pdb").len(), 2);
    let ip = |name: &str| {
        c.run(&[
            "get",
            "svc",
            name,
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .ok()
        .stdout
    };
    assert_eq!(ip(GW), "10.0.0.1");
    assert_eq!(ip("second"), "10.0.0.2");

    // Disabling removes the gateway's objects; the entry stays with enabled: false.
    let r = mesh(
        &c,
        &[
            "disable-egress-gateway",
            "--istio-egressgateway-name",
            GW,
            "--istio-egressgateway-namespace",
            NS,
            "--yes",
        ],
    )
    .ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        mc["serviceMeshProfile"]["istio"]["components"]["egressGateways"][0]["enabled"],
        false
    );
    assert_eq!(names(&c, "svc"), ["service/second"]);
    assert_eq!(names(&c, "deployment"), ["deployment.apps/second-asm-1-24"]);
    assert_eq!(names(&c, "sa"), ["serviceaccount/second"]);

    // The freed cluster IP is the lowest free one again.
    enable_gateway(&c, "third").ok();
    assert_eq!(ip("third"), "10.0.0.1");

    // Disabling the mesh removes every gateway object.
    mesh(&c, &["disable", "--yes", "-o", "none"]).ok();
    assert!(names(&c, "svc").is_empty());
    assert!(names(&c, "deployment").is_empty());
    assert!(names(&c, "hpa").is_empty());
}

#[test]
fn short_aliases_no_wait_and_output_none() {
    let c = Cluster::new();
    prerequisites(&c);
    let r = c
        .run(&[
            "mesh",
            "enable-egress-gateway",
            "-g",
            "rg",
            "-n",
            "c",
            "--istio-eg-gtw-name",
            GW,
            "--istio-eg-gtw-ns",
            NS,
            "--gtw-config-name",
            SGC,
            "--no-wait",
        ])
        .ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(
        names(&c, "deployment"),
        ["deployment.apps/asm-egress-test-asm-1-24"]
    );
    let r = mesh(
        &c,
        &["upgrade", "start", "--revision", "asm-1-25", "-o", "none"],
    )
    .ok();
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn prefix_assigned_means_no_warning() {
    let c = Cluster::new();
    c.namespace(NS);
    let pool = egress_testkit::addrs::Block::claim().unwrap();
    c.run_stdin(
        &["apply", "-f", "-"],
        &format!(
            "{SGC_YAML}status:\n  egressIpPrefix: {}\n",
            pool.subnet(0, 31)
        ),
    )
    .ok();
    let r = enable_gateway(&c, GW).ok();
    // No prefix warning; without `egress up` the only warning is that nothing waits.
    assert_eq!(
        r.stderr,
        "WARNING: the local cluster is not running (start it with \"egress up\"); egress gateway asm-egress-test in aks-istio-egress will start when it runs.\n"
    );
}

#[test]
fn error_already_enabled() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    az_error(
        mesh(&c, &["enable"]),
        "Istio has already been enabled for this cluster, please refer to https://aka.ms/asm-aks-upgrade-docs for more details on updating the mesh profile.",
    );
}

#[test]
fn error_gateway_already_enabled_with_same_configuration() {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, GW).ok();
    az_error(
        enable_gateway(&c, GW),
        "Egress gateway asm-egress-test in namespace aks-istio-egress is already enabled with gateway configuration name sgc-istio-egress-1.",
    );
}

#[test]
fn error_already_disabled() {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, GW).ok();
    let disable = [
        "disable-egress-gateway",
        "--istio-egressgateway-name",
        GW,
        "--yes",
    ];
    mesh(&c, &disable).ok();
    az_error(
        mesh(&c, &disable),
        "Egress gateway asm-egress-test in namespace aks-istio-egress is already disabled.",
    );
}

#[test]
fn error_does_not_exist_cannot_disable() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    az_error(
        mesh(
            &c,
            &[
                "disable-egress-gateway",
                "--istio-egressgateway-name",
                "nope",
                "-y",
            ],
        ),
        "Egress gateway nope in namespace aks-istio-egress does not exist, cannot disable.",
    );
}

#[test]
fn error_istio_not_enabled() {
    let c = Cluster::new();
    let text = "Istio has not been enabled for this cluster, please refer to https://aka.ms/asm-aks-addon-docs for more details on enabling Azure Service Mesh.";
    az_error(mesh(&c, &["disable", "--yes"]), text);
    az_error(
        mesh(&c, &["upgrade", "start", "--revision", "asm-1-25"]),
        text,
    );
    az_error(
        mesh(
            &c,
            &[
                "disable-egress-gateway",
                "--istio-egressgateway-name",
                GW,
                "--yes",
            ],
        ),
        text,
    );
}

#[test]
fn error_invalid_name() {
    let c = Cluster::new();
    prerequisites(&c);
    az_error(
        enable_gateway(&c, "Bad_Name"),
        "Istio egress name Bad_Name is invalid. Name must be between 1 and 53 characters, must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character.",
    );
}

#[test]
fn error_invalid_revision() {
    let c = Cluster::new();
    az_error(
        mesh(&c, &["enable", "--revision", "1.24"]),
        "Revision 1.24 is not supported by the service mesh add-on.",
    );
}

#[test]
fn error_more_than_two_revisions() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    mesh(&c, &["upgrade", "start", "--revision", "asm-1-25"]).ok();
    az_error(
        mesh(&c, &["upgrade", "start", "--revision", "asm-1-26"]),
        "(BadRequest) Azure Service Mesh upgrade is already in progress with revisions asm-1-24, asm-1-25",
    );
}

#[test]
fn error_upgrade_not_in_progress() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    let text = "Azure Service Mesh upgrade is not in progress.";
    az_error(mesh(&c, &["upgrade", "complete", "--yes"]), text);
    az_error(mesh(&c, &["upgrade", "rollback", "--yes"]), text);
}

#[test]
fn error_missing_namespace_or_configuration() {
    let c = Cluster::new();
    az_error(
        enable_gateway(&c, GW),
        "namespace \"aks-istio-egress\" not found",
    );
    c.namespace(NS);
    az_error(
        enable_gateway(&c, GW),
        "StaticGatewayConfiguration \"sgc-istio-egress-1\" not found in namespace \"aks-istio-egress\"",
    );
    // Nothing was stored by the refused commands, not even the cluster's identity: `c` does
    // not exist, and the local cluster is still the unconfigured default.
    not_found(c.run(&["mesh", "show", "-n", "c"]), "c", "egress-local");
    let r = c.run(&["mesh", "show"]).ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(mc["name"], "egress-local", "{}", r.stdout);
    assert!(mc["serviceMeshProfile"].is_null(), "{}", r.stdout);
}

#[test]
fn error_confirmation_without_terminal() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    let text = "Unable to prompt for confirmation as no tty available. Use --yes.";
    az_error(mesh(&c, &["disable"]), text);
    mesh(&c, &["upgrade", "start", "--revision", "asm-1-25"]).ok();
    az_error(mesh(&c, &["upgrade", "complete"]), text);
    // Still two revisions.
    let r = mesh(&c, &["show"]).ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        mc["serviceMeshProfile"]["istio"]["revisions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// az's answer for a cluster that does not exist: the service's 404 text, its `Code:` and
/// `Message:` lines, exit code 3 (a missing ARM resource), nothing on standard output.
#[track_caller]
fn not_found(r: Run, name: &str, rg: &str) {
    let message = format!(
        "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );
    assert_eq!(
        r.stderr,
        format!(
            "ERROR: (ResourceNotFound) {message}\nCode: ResourceNotFound\nMessage: {message}\n"
        )
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// The ManagedCluster objects in the store (one per cluster profile).
fn profiles(c: &Cluster) -> Vec<String> {
    let store = egress_store::Store::open(c.store()).unwrap();
    store
        .list("containerservice.azure.com", "ManagedCluster", None)
        .unwrap()
        .items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn error_other_resource_group() {
    let c = Cluster::new();
    mesh(&c, &["enable"]).ok();
    let r = c.run(&["mesh", "show", "-g", "other", "-n", "c"]);
    not_found(r, "c", "other");
    // Without -g the stored resource group is used.
    c.run(&["mesh", "show", "-n", "c"]).ok();
}

/// The local cluster has one resource group and name: set by the first command that
/// configures it, shown by `mesh show`; any other `-g`/`-n`, read or write, is az's
/// ResourceNotFound (exit 3) and never a second profile.
#[test]
fn one_cluster_identity_other_names_are_not_found() {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, GW).ok();
    let show = |args: &[&str]| {
        let mut all = vec!["mesh", "show"];
        all.extend_from_slice(args);
        let r = c.run(&all).ok();
        let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        (mc["resourceGroup"].clone(), mc["name"].clone())
    };
    // Shown with or without -g/-n, each alone included.
    for args in [
        &[][..],
        &["-g", "rg"],
        &["-n", "c"],
        &["-g", "rg", "-n", "c"],
    ] {
        assert_eq!(show(args), ("rg".into(), "c".into()), "{args:?}");
    }
    // The issue's typo, and every other pair, on every kind of command.
    not_found(
        c.run(&["mesh", "show", "-g", "x", "-n", "typo"]),
        "typo",
        "x",
    );
    not_found(c.run(&["mesh", "show", "-n", "typo"]), "typo", "rg");
    not_found(c.run(&["mesh", "show", "-g", "x"]), "c", "x");
    not_found(
        c.run(&["mesh", "get-upgrades", "-g", "rg", "-n", "typo"]),
        "typo",
        "rg",
    );
    not_found(
        c.run(&["mesh", "enable", "-g", "other", "-n", "c", "-o", "none"]),
        "c",
        "other",
    );
    not_found(
        c.run(&[
            "mesh",
            "disable-egress-gateway",
            "-g",
            "rg2",
            "-n",
            "c2",
            "--istio-egressgateway-name",
            GW,
            "--istio-egressgateway-namespace",
            NS,
            "--yes",
        ]),
        "c2",
        "rg2",
    );
    assert_eq!(profiles(&c), ["c"]);
    // The gateway the refused disable named is still enabled; under the real name it goes.
    assert!(names(&c, "deploy").iter().any(|d| d.contains(GW)));
    mesh(
        &c,
        &[
            "disable-egress-gateway",
            "--istio-egressgateway-name",
            GW,
            "--istio-egressgateway-namespace",
            NS,
            "--yes",
            "-o",
            "none",
        ],
    )
    .ok();
    assert!(names(&c, "deploy").is_empty());
}

#[test]
fn canary_upgrade_complete_and_rollback() {
    let c = Cluster::new();
    prerequisites(&c);
    enable_gateway(&c, GW).ok();
    enable_gateway(&c, "second").ok();
    let r = mesh(&c, &["upgrade", "start", "--revision", "asm-1-25"]).ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        mc["serviceMeshProfile"]["istio"]["revisions"],
        serde_json::json!(["asm-1-24", "asm-1-25"])
    );
    assert_eq!(
        names(&c, "deployment"),
        [
            "deployment.apps/asm-egress-test-asm-1-24",
            "deployment.apps/asm-egress-test-asm-1-25",
            "deployment.apps/second-asm-1-24",
            "deployment.apps/second-asm-1-25",
        ]
    );
    assert_eq!(names(&c, "hpa").len(), 4);
    assert_eq!(names(&c, "pdb").len(), 4);
    assert_eq!(
        names(&c, "svc"),
        ["service/asm-egress-test", "service/second"]
    );

    mesh(&c, &["upgrade", "complete", "--yes", "-o", "none"]).ok();
    assert_eq!(
        names(&c, "deployment"),
        [
            "deployment.apps/asm-egress-test-asm-1-25",
            "deployment.apps/second-asm-1-25"
        ]
    );
    assert_eq!(names(&c, "hpa").len(), 2);
    assert_eq!(names(&c, "svc").len(), 2);

    mesh(
        &c,
        &["upgrade", "start", "--revision", "asm-1-26", "-o", "none"],
    )
    .ok();
    assert_eq!(names(&c, "deployment").len(), 4);
    let r = mesh(&c, &["upgrade", "rollback", "--yes"]).ok();
    let mc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        mc["serviceMeshProfile"]["istio"]["revisions"],
        serde_json::json!(["asm-1-25"])
    );
    assert_eq!(
        names(&c, "deployment"),
        [
            "deployment.apps/asm-egress-test-asm-1-25",
            "deployment.apps/second-asm-1-25"
        ]
    );
    assert_eq!(names(&c, "pdb").len(), 2);
    assert_eq!(
        names(&c, "svc"),
        ["service/asm-egress-test", "service/second"]
    );
}

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(subcommand)]
    command: MeshCommand,
}

#[test]
fn command_line_is_well_formed() {
    Wrapper::command().debug_assert();
}

#[test]
fn bad_request_is_shown_with_its_code() {
    let e = MeshError::from(AddonError::BadRequest("x".into()));
    assert_eq!(e.to_string(), "(BadRequest) x");
    let e = MeshError::from(AddonError::ArgumentUsageError("y".into()));
    assert_eq!(e.to_string(), "y");
}

/// `egress up` records the local cluster (`egress-local` in `egress-local`) on its first run
/// and keeps it on later ones; `egress mesh` then accepts that pair (or none) only.
#[test]
fn egress_up_records_the_one_local_cluster() {
    let c = Cluster::new();
    let addrs = common::Addrs::claim();
    let flags = addrs.flags(&[]);
    let up = common::Up::start(&c, &flags);
    assert_eq!(profiles(&c), ["egress-local"]);
    not_found(
        c.run(&["mesh", "enable", "-g", "rg", "-n", "c", "-o", "none"]),
        "c",
        "rg",
    );
    not_found(
        c.run(&["mesh", "show", "-g", "x", "-n", "typo"]),
        "typo",
        "x",
    );
    c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
        .ok();
    let seed_line = "RESOURCE_GROUP=egress-local CLUSTER_NAME=egress-local; egress mesh show -g $RESOURCE_GROUP -n $CLUSTER_NAME | jq -r '.serviceMeshProfile.istio.revisions[0]'";
    assert_eq!(c.sh(seed_line).ok().stdout.trim(), "asm-1-24");
    // A typo in the seed's variables fails the pipeline's first command instead of
    // inventing a cluster.
    let typo = c.sh("set -o pipefail; egress mesh show -g egress-local -n typo | jq -r '.serviceMeshProfile.istio.revisions[0]'");
    assert_eq!(typo.code, 3, "{}", typo.stderr);
    up.kill9();
    // A restart keeps the identity and the profile.
    let _up = common::Up::start(&c, &flags);
    assert_eq!(profiles(&c), ["egress-local"]);
    assert_eq!(c.sh(seed_line).ok().stdout.trim(), "asm-1-24");
}
