//! `egress exec` and `egress logs` against Pods of a running local cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{Addrs, Cluster, Up, wait_for};
use egress_store::Store;
use serde_json::Value;

fn running_pod(store: &Store, ns: &str) -> Option<Value> {
    store
        .list("", "Pod", Some(ns))
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
}

#[test]
fn exec_runs_as_the_pod_and_returns_its_exit_code() {
    let c = Cluster::new();
    c.namespace("apps");
    let addrs = Addrs::claim();
    let _up = Up::start(&c, &addrs.flags(&[]));
    let curl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    c.run_stdin(&["apply", "-n", "apps", "-f", "-"], &curl).ok();
    let store = Store::open(c.store()).unwrap();
    wait_for(&store, "a running curl pod", Duration::from_secs(60), |s| {
        running_pod(s, "apps").is_some()
    });
    let pod = c
        .sh("egress get pod -n apps -l app=curl -o jsonpath={.items..metadata.name}")
        .ok()
        .stdout;
    let pod = pod.trim();
    assert!(pod.starts_with("curl-"), "{pod}");

    let r = c.run(&[
        "exec",
        "-n",
        "apps",
        pod,
        "-c",
        "curl",
        "--",
        "sh",
        "-c",
        "echo $POD_NAMESPACE/$HOSTNAME; echo oops >&2; exit 3",
    ]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout.trim(), format!("apps/{pod}"));
    assert_eq!(r.stderr.trim(), "oops");
    // Without a sidecar nothing is proxied.
    let env = c
        .run(&[
            "exec",
            "-n",
            "apps",
            pod,
            "--",
            "sh",
            "-c",
            "echo proxy=${http_proxy:-none}",
        ])
        .ok();
    assert_eq!(env.stdout.trim(), "proxy=none");
    // The CAs egress up writes for workloads.
    let ca = c
        .run(&[
            "exec",
            "-n",
            "apps",
            pod,
            "--",
            "sh",
            "-c",
            "test -s \"$SSL_CERT_FILE\" && echo $CURL_CA_BUNDLE",
        ])
        .ok();
    assert!(
        ca.stdout.trim().ends_with("run/ca-bundle.pem"),
        "{}",
        ca.stdout
    );

    let missing = c.run(&["exec", "-n", "apps", "nope", "--", "true"]).fails();
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );
    let bad = c
        .run(&["exec", "-n", "apps", pod, "-c", "nginx", "--", "true"])
        .fails();
    assert_eq!(
        bad.stderr.trim(),
        "error: unable to upgrade connection: container not found (\"nginx\")"
    );
    let notfound = c.run(&["exec", "-n", "apps", pod, "--", "no-such-program-xyz"]);
    assert_eq!(notfound.code, 127);
}

#[test]
fn logs_by_pod_and_selector_with_tail_prefix_and_follow() {
    let c = Cluster::new();
    c.namespace("apps");
    let addrs = Addrs::claim();
    let _up = Up::start(&c, &addrs.flags(&[]));
    let curl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    c.run_stdin(&["apply", "-n", "apps", "-f", "-"], &curl).ok();
    let store = Store::open(c.store()).unwrap();
    wait_for(&store, "a running curl pod", Duration::from_secs(60), |s| {
        running_pod(s, "apps").is_some()
    });
    let pod = running_pod(&store, "apps").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    // The container log a gateway or sidecar would write.
    let dir = c.store().join(format!("run/pods/apps_{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = (1..=15).map(|i| format!("line {i}")).collect();
    std::fs::write(dir.join("curl.log"), lines.join("\n") + "\n").unwrap();

    let all = c.run(&["logs", "-n", "apps", &name]).ok().stdout;
    assert_eq!(all.lines().count(), 15);
    let by_label = c.run(&["logs", "-n", "apps", "-l", "app=curl"]).ok().stdout;
    assert_eq!(
        by_label.lines().collect::<Vec<_>>(),
        lines[5..].iter().map(String::as_str).collect::<Vec<_>>(),
        "a selector shows the last 10"
    );
    let tail = c
        .run(&[
            "logs",
            "-n",
            "apps",
            &format!("pod/{name}"),
            "--tail",
            "2",
            "--prefix",
        ])
        .ok()
        .stdout;
    assert_eq!(
        tail,
        format!("[pod/{name}/curl] line 14\n[pod/{name}/curl] line 15\n")
    );
    let missing = c.run(&["logs", "-n", "apps", "nope"]).fails();
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );

    // -f prints what is appended.
    let mut follow = c
        .command(&["logs", "-n", "apps", &name, "-f", "--tail", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The last line first: the initial read is done, so what comes next is appended.
    assert_eq!(out.next().unwrap().unwrap(), "line 15");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("curl.log"))
        .unwrap();
    writeln!(f, "appended").unwrap();
    assert_eq!(out.next().unwrap().unwrap(), "appended");
    follow.kill().unwrap();
    follow.wait().unwrap();
}
