//! The kubectl-shaped commands against a real store, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, without_age};

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: asm-egress-test
  namespace: aks-istio-egress
  labels:
    app: asm-egress-test
    istio: asm-egress-test
spec:
  type: ClusterIP
  clusterIP: 10.0.128.17
  selector:
    app: asm-egress-test
  ports:
  - name: status-port
    port: 15021
    targetPort: 15021
  - name: http2
    port: 80
    targetPort: 80
  - name: https
    port: 443
    targetPort: 443
"#;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: asm-egress-test-asm-1-24
  namespace: aks-istio-egress
  labels:
    app: asm-egress-test
    istio: asm-egress-test
    istio.io/rev: asm-1-24
spec:
  replicas: 2
  selector:
    matchLabels:
      app: asm-egress-test
      istio: asm-egress-test
  template:
    metadata:
      labels:
        app: asm-egress-test
        istio: asm-egress-test
      annotations:
        kubernetes.azure.com/static-gateway-configuration: sgc-istio-egress-1
    spec:
      containers:
      - name: istio-proxy
        image: egress:latest
status:
  replicas: 2
  readyReplicas: 2
  updatedReplicas: 2
  availableReplicas: 2
"#;

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: curl-5b549b49b8-bcgts
  namespace: aks-istio-egress
  labels:
    app: curl
    pod-template-hash: 5b549b49b8
spec:
  serviceAccountName: curl
  containers:
  - name: curl
    image: curlimages/curl
  - name: istio-proxy
    image: egress:latest
status:
  phase: Running
  podIP: 10.244.0.12
  containerStatuses:
  - name: curl
    ready: true
    restartCount: 0
    image: curlimages/curl
    imageID: ""
    state:
      running:
        startedAt: "2026-11-24T00:00:00Z"
  - name: istio-proxy
    ready: true
    restartCount: 0
    image: egress:latest
    imageID: ""
    state:
      running:
        startedAt: "2026-11-24T00:00:00Z"
"#;

fn cluster_with_objects() -> Cluster {
    let c = Cluster::new();
    c.namespace("aks-istio-egress");
    let all = format!("{SERVICE}---\n{DEPLOYMENT}---\n{POD}");
    let r = c.run_stdin(&["apply", "-f", "-"], &all).ok();
    assert_eq!(
        r.stdout,
        "service/asm-egress-test created\ndeployment.apps/asm-egress-test-asm-1-24 created\npod/curl-5b549b49b8-bcgts created\n"
    );
    c
}

#[test]
fn get_svc_prints_kubectls_table() {
    let c = cluster_with_objects();
    let r = c
        .run(&["get", "svc", "asm-egress-test", "-n", "aks-istio-egress"])
        .ok();
    assert_eq!(
        without_age(&r.stdout),
        without_age(
            "NAME              TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)                    AGE\n\
             asm-egress-test   ClusterIP   10.0.128.17   <none>        15021/TCP,80/TCP,443/TCP   0s\n"
        )
    );
    let age = r
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    assert!(age.ends_with('s'), "a fresh object is seconds old: {age}");
}

#[test]
fn get_deploy_and_pod_tables() {
    let c = cluster_with_objects();
    let d = c.run(&["get", "deploy", "-n", "aks-istio-egress"]).ok();
    assert_eq!(
        without_age(&d.stdout),
        without_age(
            "NAME                       READY   UP-TO-DATE   AVAILABLE   AGE\nasm-egress-test-asm-1-24   2/2     2            2           0s\n"
        )
    );
    let p = c.run(&["get", "po", "-n", "aks-istio-egress"]).ok();
    assert_eq!(
        without_age(&p.stdout),
        without_age(
            "NAME                    READY   STATUS    RESTARTS   AGE\ncurl-5b549b49b8-bcgts   2/2     Running   0          0s\n"
        )
    );
}

#[test]
fn seed_jsonpath_queries_print_what_kubectl_prints() {
    let c = cluster_with_objects();
    // The seed's commands, verbatim through a shell, with kubectl replaced by egress.
    let ns = "ISTIO_EGRESS_NAMESPACE=aks-istio-egress; ISTIO_EGRESS_NAME=asm-egress-test; ASM_REVISION=asm-1-24; ISTIO_EGRESS_DEPLOYMENT=$ISTIO_EGRESS_NAME-$ASM_REVISION;";
    let r = c
        .sh(&format!(
            r#"{ns} egress get deployment $ISTIO_EGRESS_NAME-$ASM_REVISION -n $ISTIO_EGRESS_NAMESPACE -o jsonpath={{.spec.template.metadata.annotations."kubernetes\.azure\.com\/static-gateway-configuration"}}"#
        ))
        .ok();
    assert_eq!(r.stdout, "sgc-istio-egress-1");
    let r = c
        .sh(&format!(
            "{ns} EGRESS_GTW_SELECTOR=$(egress get deployment $ISTIO_EGRESS_DEPLOYMENT -n $ISTIO_EGRESS_NAMESPACE -o jsonpath={{.metadata.labels.istio}}); echo \"selector=$EGRESS_GTW_SELECTOR\""
        ))
        .ok();
    assert_eq!(r.stdout, "selector=asm-egress-test\n");
    let r = c
        .sh(&format!(
            "{ns} SOURCE_POD=$(egress get pod -n $ISTIO_EGRESS_NAMESPACE -l app=curl -o jsonpath={{.items..metadata.name}}); echo \"pod=$SOURCE_POD\""
        ))
        .ok();
    assert_eq!(r.stdout, "pod=curl-5b549b49b8-bcgts\n");
    // A selector that matches nothing prints nothing, like kubectl.
    let r = c
        .run(&[
            "get",
            "pod",
            "-n",
            "aks-istio-egress",
            "-l",
            "app=nope",
            "-o",
            "jsonpath={.items..metadata.name}",
        ])
        .ok();
    assert_eq!(r.stdout, "");
}

#[test]
fn output_formats_name_yaml_json() {
    let c = cluster_with_objects();
    let r = c
        .run(&["get", "svc,deploy", "-n", "aks-istio-egress", "-o", "name"])
        .ok();
    assert_eq!(
        r.stdout,
        "service/asm-egress-test\ndeployment.apps/asm-egress-test-asm-1-24\n"
    );
    let y = c
        .run(&[
            "get",
            "svc",
            "asm-egress-test",
            "-n",
            "aks-istio-egress",
            "-o",
            "yaml",
        ])
        .ok();
    assert!(
        y.stdout.starts_with("apiVersion: v1\nkind: Service\n"),
        "{}",
        y.stdout
    );
    assert!(y.stdout.contains("\n  resourceVersion: \""), "{}", y.stdout);
    let j = c
        .run(&["get", "svc", "-n", "aks-istio-egress", "-o", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][0]["metadata"]["name"], "asm-egress-test");
    assert!(v["items"][0]["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert_eq!(v["items"][0]["metadata"]["generation"], 1);
}

#[test]
fn one_invalid_document_applies_nothing_and_names_file_line_object_field() {
    let c = Cluster::new();
    c.namespace("egress");
    let path = c.write(
        "two.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: good\nspec:\n  hosts: [edition.cnn.com]\n  resolution: DNS\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: bad\nspec:\n  hosts:\n  - edition.cnn.com\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  resolution: DNS\n  foo: 1\n",
    );
    let r = c
        .run(&["apply", "-n", "egress", "-f", path.to_str().unwrap()])
        .fails();
    let line = r.stderr.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "{}:23:3: error: ServiceEntry/egress/bad: spec.foo: unknown field \"spec.foo\"",
            path.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    let g = c.run(&["get", "se", "-n", "egress"]).ok();
    assert_eq!(g.stdout, "", "nothing was applied");
}

#[test]
fn namespace_flag_fills_and_conflicts_like_kubectl() {
    let c = Cluster::new();
    c.namespace("a");
    c.namespace("b");
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: a\ndata:\n  k: v\n";
    let r = c.run_stdin(&["apply", "-n", "b", "-f", "-"], cm).fails();
    assert!(r.stderr.contains("the namespace from the provided object \"a\" does not match the namespace \"b\". You must pass '--namespace=a' to perform this operation."), "{}", r.stderr);
    c.run_stdin(&["apply", "-n", "a", "-f", "-"], cm).ok();
    let bare = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  k: v\n";
    c.run_stdin(&["apply", "-n", "b", "-f", "-"], bare).ok();
    assert_eq!(
        c.run(&["get", "cm", "-n", "b", "-o", "name"]).ok().stdout,
        "configmap/other\n"
    );
    let missing = c
        .run_stdin(&["apply", "-n", "nope", "-f", "-"], bare)
        .fails();
    assert!(
        missing.stderr.contains("namespaces \"nope\" not found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn apply_twice_is_unchanged_then_configured() {
    let c = Cluster::new();
    c.namespace("a");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n";
    assert_eq!(
        c.run_stdin(&["apply", "-n", "a", "-f", "-"], cm)
            .ok()
            .stdout,
        "configmap/x created\n"
    );
    assert_eq!(
        c.run_stdin(&["apply", "-n", "a", "-f", "-"], cm)
            .ok()
            .stdout,
        "configmap/x unchanged\n"
    );
    let cm2 = cm.replace("k: v", "k: w");
    assert_eq!(
        c.run_stdin(&["apply", "-n", "a", "-f", "-"], &cm2)
            .ok()
            .stdout,
        "configmap/x configured\n"
    );
    let v = c
        .run(&["get", "cm", "x", "-n", "a", "-o", "jsonpath={.data.k}"])
        .ok();
    assert_eq!(v.stdout, "w");
}

#[test]
fn label_namespace_like_the_seed() {
    let c = Cluster::new();
    c.namespace("aks-istio-egress");
    let r = c.sh("ISTIO_EGRESS_NAMESPACE=aks-istio-egress; ASM_REVISION=asm-1-24; egress label namespace $ISTIO_EGRESS_NAMESPACE istio.io/rev=$ASM_REVISION").ok();
    assert_eq!(r.stdout, "namespace/aks-istio-egress labeled\n");
    let again = c
        .run(&[
            "label",
            "namespace",
            "aks-istio-egress",
            "istio.io/rev=asm-1-25",
        ])
        .fails();
    assert!(
        again
            .stderr
            .contains("'istio.io/rev' already has a value (asm-1-24), and --overwrite is false"),
        "{}",
        again.stderr
    );
    c.run(&[
        "label",
        "ns",
        "aks-istio-egress",
        "istio.io/rev=asm-1-25",
        "--overwrite",
    ])
    .ok();
    let v = c
        .run(&[
            "get",
            "ns",
            "aks-istio-egress",
            "-o",
            "jsonpath={.metadata.labels.istio\\.io/rev}",
        ])
        .ok();
    assert_eq!(v.stdout, "asm-1-25");
    // The label survives a re-apply of the namespace manifest (three-way merge).
    c.namespace("aks-istio-egress");
    let v = c
        .run(&[
            "get",
            "ns",
            "aks-istio-egress",
            "-o",
            "jsonpath={.metadata.labels.istio\\.io/rev}",
        ])
        .ok();
    assert_eq!(v.stdout, "asm-1-25");
    let r = c
        .run(&["label", "namespace", "aks-istio-egress", "istio.io/rev-"])
        .ok();
    assert_eq!(r.stdout, "namespace/aks-istio-egress unlabeled\n");
    let missing = c.run(&["label", "namespace", "nope", "a=b"]).fails();
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): namespaces \"nope\" not found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn delete_by_name_and_by_file() {
    let c = cluster_with_objects();
    let r = c
        .run(&["delete", "svc", "asm-egress-test", "-n", "aks-istio-egress"])
        .ok();
    assert_eq!(r.stdout, "service \"asm-egress-test\" deleted\n");
    let again = c
        .run(&["delete", "svc", "asm-egress-test", "-n", "aks-istio-egress"])
        .fails();
    assert!(
        again
            .stderr
            .contains("Error from server (NotFound): services \"asm-egress-test\" not found"),
        "{}",
        again.stderr
    );
    let f = c.write("pod.yaml", POD);
    let r = c.run(&["delete", "-f", f.to_str().unwrap()]).ok();
    assert_eq!(r.stdout, "pod \"curl-5b549b49b8-bcgts\" deleted\n");
}

#[test]
fn corrupt_object_file_is_named_and_others_stay_readable() {
    let c = Cluster::new();
    c.namespace("a");
    for n in ["one", "two", "three"] {
        c.run_stdin(
            &["apply", "-n", "a", "-f", "-"],
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n"),
        )
        .ok();
    }
    let file = c.store().join("objects/core/ConfigMap/a/two.json");
    assert!(file.is_file(), "layout changed? {}", file.display());
    std::fs::write(&file, "{ \"apiVersion\": \"v1\", oops").unwrap();
    let r = c.run(&["get", "cm", "-n", "a", "-o", "name"]).fails();
    assert_eq!(r.stdout, "configmap/one\nconfigmap/three\n");
    assert!(
        r.stderr.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
}

#[test]
fn two_apply_processes_at_once_leave_all_objects() {
    let c = Cluster::new();
    c.namespace("load");
    let mut paths = Vec::new();
    for w in 0..2 {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w{w}-cm-{i}\ndata:\n  i: \"{i}\"\n---\n"));
        }
        paths.push(c.write(&format!("w{w}.yaml"), &text));
    }
    let children: Vec<_> = paths
        .iter()
        .map(|p| {
            c.command(&["apply", "-n", "load", "-f", p.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.ends_with(" created"))
                .count(),
            200
        );
    }
    let names = c.run(&["get", "cm", "-n", "load", "-o", "name"]).ok();
    assert_eq!(names.stdout.lines().count(), 400);
    let json = c.run(&["get", "cm", "-n", "load", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let mut rvs: Vec<u64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    rvs.sort_unstable();
    rvs.dedup();
    assert_eq!(rvs.len(), 400, "every object got its own resourceVersion");
}

#[test]
fn validate_reports_every_error_and_exit_code() {
    let c = Cluster::new();
    let good = c.write("good.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: cnn\nspec:\n  hosts: [edition.cnn.com]\n  ports:\n  - {number: 443, name: tls, protocol: TLS}\n  resolution: DNS\n");
    let r = c.run(&["validate", "-f", good.to_str().unwrap()]).ok();
    assert_eq!(
        r.stdout,
        format!("{:?} is valid\n", good.display().to_string())
    );
    let bad = c.write("bad.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: a\nspec: {}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: b\n");
    let r = c.run(&["validate", "-f", bad.to_str().unwrap()]).fails();
    assert!(
        r.stderr.contains(&format!(
            "{}:5:1: error: ServiceEntry/default/a: spec.hosts: Required value",
            bad.display()
        )) || r
            .stderr
            .contains("ServiceEntry/default/a: spec.hosts: Required value"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("ServiceEntry/default/b: spec: Required value"),
        "{}",
        r.stderr
    );
}

#[test]
fn apply_of_a_list_applies_each_item_and_a_bad_item_is_named() {
    let c = Cluster::new();
    c.namespace("default");
    let item = |name: &str, resolution: &str| {
        format!(
            "- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {{name: {name}, namespace: default}}\n  spec:\n    hosts: [{name}.example.com]\n    ports: [{{number: 80, name: http, protocol: HTTP}}]\n    resolution: {resolution}\n"
        )
    };
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}",
        item("one", "DNS"),
        item("two", "DNS")
    );
    let r = c.run_stdin(&["apply", "-f", "-"], &list).ok();
    assert_eq!(
        r.stdout,
        "serviceentry.networking.istio.io/one created\nserviceentry.networking.istio.io/two created\n"
    );
    let names = c.run(&["get", "serviceentries", "-o", "name"]).ok().stdout;
    assert_eq!(
        names,
        "serviceentry.networking.istio.io/one\nserviceentry.networking.istio.io/two\n"
    );
    let bad = c.write(
        "list.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n{}",
            item("three", "DNSX")
        ),
    );
    let r = c.run(&["validate", "-f", bad.to_str().unwrap()]).fails();
    assert!(
        r.stderr.contains(&format!(
            "{}:10:5: error: ServiceEntry/default/three: spec.resolution: Unsupported value: \"DNSX\"",
            bad.display()
        )),
        "{}",
        r.stderr
    );
}
