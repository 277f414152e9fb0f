//! `enable-egress-gateway` waiting for its gateway, against a store, with the test playing
//! the local cluster's part: it holds the flock on `run/up.pid` and writes the Deployment's
//! status through the store from another thread. Synchronised on the store's feed and on
//! channels, never on sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use egress_cli::Io;
use egress_cli::mesh::wait::{self, UP_PID, WaitOptions};
use egress_cli::mesh::{self, MeshCommand, MeshError};
use egress_store::{ObjectKey, Store, StoreOptions};
use egress_testkit::addrs::Block;
use serde_json::{Value, json};

const NS: &str = "aks-istio-egress";
const GW: &str = "asm-egress-test";
const DEPLOYMENT: &str = "asm-egress-test-asm-1-24";
/// Upper bound for a test step that should happen promptly (a failure, not a timing).
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
struct Wrapper {
    #[command(subcommand)]
    command: MeshCommand,
}

fn command(extra: &[&str]) -> MeshCommand {
    let mut args = vec![
        "mesh",
        "enable-egress-gateway",
        "-g",
        "rg",
        "-n",
        "c",
        "--istio-egressgateway-name",
        GW,
        "--gateway-configuration-name",
        "sgc",
    ];
    args.extend_from_slice(extra);
    Wrapper::try_parse_from(args).unwrap().command
}

/// A store with the namespace and StaticGatewayConfiguration the command needs (held with
/// the block its egress prefix comes from).
fn store() -> ((tempfile::TempDir, Block), Store) {
    let dir = tempfile::tempdir().unwrap();
    // The egress prefix the controllers would have assigned, from a claimed loopback block.
    let pool = Block::claim().unwrap();
    let prefix = pool.subnet(0, 31).to_string();
    let options = StoreOptions {
        fsync: false,
        watch_poll_interval: Duration::from_millis(5),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path().join("store"), options).unwrap();
    store
        .transact(|tx| {
            tx.apply(
                &ObjectKey::for_namespace(NS),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )?;
            tx.apply(
                &ObjectKey::new(
                    mesh::SGC_GROUP,
                    "StaticGatewayConfiguration",
                    Some(NS),
                    "sgc",
                ),
                json!({
                    "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
                    "kind": "StaticGatewayConfiguration",
                    "metadata": {"name": "sgc", "namespace": NS},
                    "spec": {"gatewayNodepoolName": "gw"},
                    "status": {"egressIpPrefix": prefix},
                }),
            )?;
            Ok::<_, egress_store::StoreError>(())
        })
        .unwrap();
    ((dir, pool), store)
}

/// Plays `egress up`: holds the exclusive flock on `run/up.pid` while alive.
fn local_cluster(store: &Store) -> File {
    let path = store.dir().join(UP_PID);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = File::create(&path).unwrap();
    file.lock().unwrap();
    file
}

/// Standard error that forwards everything written to a channel.
struct ChannelWriter(Sender<String>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects what arrives on `rx` until it contains `needle` (or gives up after [`PATIENCE`]).
fn await_text(rx: &Receiver<String>, seen: &mut String, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(text) => seen.push_str(&text),
            Err(e) => panic!("waiting for {needle:?}: {e}; got {seen:?}"),
        }
    }
}

/// A command running on its own thread: its result and standard output when joined.
type Running = thread::JoinHandle<(Result<(), MeshError>, String)>;

/// Runs the command on its own thread; returns (result, stdout) when joined, and the
/// receiving end of its standard error.
fn spawn_run(
    store: &Store,
    command: MeshCommand,
    opts: WaitOptions,
) -> (Running, Receiver<String>) {
    let (tx, rx) = channel();
    let store = store.clone();
    let handle = thread::spawn(move || {
        let mut out = Vec::new();
        let mut err = ChannelWriter(tx);
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        let mut confirm = |_: &str| Ok(true);
        let r = mesh::run_with(&store, &command, &mut io, &mut confirm, &opts);
        (r, String::from_utf8(out).unwrap())
    });
    (handle, rx)
}

/// Waits (on the feed) until the Deployment exists and returns it.
fn await_deployment(store: &Store, from_rv: u64) -> Value {
    let key = ObjectKey::new("apps", "Deployment", Some(NS), DEPLOYMENT);
    let mut watcher = store.watch(from_rv).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(d) = store.get(&key).unwrap() {
            return d;
        }
        assert!(Instant::now() < deadline, "no Deployment {DEPLOYMENT}");
        watcher.next_events(Duration::from_secs(1)).unwrap();
    }
}

/// Writes the Deployment's status as kube-controller-manager would.
fn set_status(store: &Store, ready: i64) {
    let key = ObjectKey::new("apps", "Deployment", Some(NS), DEPLOYMENT);
    store
        .transact(|tx| {
            let mut d = tx.get(&key)?.unwrap();
            let generation = d["metadata"]["generation"].clone();
            d["status"] = json!({
                "observedGeneration": generation,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": ready,
                "availableReplicas": ready,
            });
            tx.apply(&key, d)?;
            Ok::<_, egress_store::StoreError>(())
        })
        .unwrap();
}

#[test]
fn waits_until_the_deployments_are_ready() {
    let (_dir, store) = store();
    let up = local_cluster(&store);
    let rv = store.resource_version().unwrap();
    let opts = WaitOptions {
        progress: true,
        ..WaitOptions::default()
    };
    let (handle, rx) = spawn_run(&store, command(&[]), opts);
    // The cluster's side, from its own thread: status updates through the store.
    let cluster = {
        let store = store.clone();
        thread::spawn(move || {
            let d = await_deployment(&store, rv);
            assert_eq!(d["metadata"]["generation"], 1);
            let mut seen = String::new();
            await_text(&rx, &mut seen, "0/2 pods ready");
            set_status(&store, 1);
            await_text(&rx, &mut seen, "1/2 pods ready");
            set_status(&store, 2);
            (rx, seen)
        })
    };
    let (result, stdout) = handle.join().unwrap();
    result.unwrap();
    let (rx, mut seen) = cluster.join().unwrap();
    seen.extend(rx.try_iter());
    let mc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(mc["serviceMeshProfile"]["mode"], "Istio");
    assert!(
        seen.starts_with(&format!(
            "\r - Running .. egress gateway {GW} in {NS}: 0/2 pods ready"
        )),
        "{seen:?}"
    );
    assert!(!seen.contains("WARNING"), "{seen:?}");
    // The line is cleared at the end.
    assert!(seen.ends_with('\r'), "{seen:?}");
    drop(up);
}

#[test]
fn no_progress_line_when_not_a_terminal() {
    let (_dir, store) = store();
    let _up = local_cluster(&store);
    let rv = store.resource_version().unwrap();
    let (handle, rx) = spawn_run(&store, command(&[]), WaitOptions::default());
    await_deployment(&store, rv);
    set_status(&store, 2);
    let (result, stdout) = handle.join().unwrap();
    result.unwrap();
    assert!(stdout.contains("\"serviceMeshProfile\""), "{stdout}");
    let stderr: String = rx.try_iter().collect();
    assert_eq!(stderr, "");
}

#[test]
fn without_a_local_cluster_nothing_waits() {
    let (_dir, store) = store();
    let warning = "WARNING: the local cluster is not running (start it with \"egress up\"); egress gateway asm-egress-test in aks-istio-egress will start when it runs.\n";
    // No run/up.pid at all.
    let (handle, rx) = spawn_run(&store, command(&[]), WaitOptions::default());
    let (result, stdout) = handle.join().unwrap();
    result.unwrap();
    assert!(stdout.contains("\"serviceMeshProfile\""), "{stdout}");
    assert_eq!(rx.try_iter().collect::<String>(), warning);
    // The file exists but nobody holds its lock (a stopped `egress up`).
    drop(local_cluster(&store));
    assert!(!wait::local_cluster_running(store.dir()).unwrap());
    let (handle, rx) = spawn_run(
        &store,
        Wrapper::try_parse_from([
            "mesh",
            "enable-egress-gateway",
            "-n",
            "c",
            "--istio-egressgateway-name",
            "second",
            "--gateway-configuration-name",
            "sgc",
        ])
        .unwrap()
        .command,
        WaitOptions::default(),
    );
    let (result, _) = handle.join().unwrap();
    result.unwrap();
    assert_eq!(
        rx.try_iter().collect::<String>(),
        warning.replace("asm-egress-test", "second")
    );
}

#[test]
fn no_wait_returns_at_once_even_with_a_local_cluster() {
    let (_dir, store) = store();
    let _up = local_cluster(&store);
    assert!(wait::local_cluster_running(store.dir()).unwrap());
    let (handle, rx) = spawn_run(&store, command(&["--no-wait"]), WaitOptions::default());
    let (result, stdout) = handle.join().unwrap();
    result.unwrap();
    assert_eq!(stdout, "");
    assert_eq!(rx.try_iter().collect::<String>(), "");
}

#[test]
fn stops_waiting_when_the_local_cluster_stops() {
    let (_dir, store) = store();
    let up = local_cluster(&store);
    let opts = WaitOptions {
        progress: true,
        liveness_interval: Duration::from_millis(20),
        ..WaitOptions::default()
    };
    let (handle, rx) = spawn_run(&store, command(&[]), opts);
    let mut seen = String::new();
    await_text(&rx, &mut seen, "0/2 pods ready");
    drop(up);
    let (result, stdout) = handle.join().unwrap();
    result.unwrap();
    seen.extend(rx.try_iter());
    assert!(stdout.contains("\"serviceMeshProfile\""), "{stdout}");
    assert!(
        seen.ends_with("\rWARNING: the local cluster is not running (start it with \"egress up\"); egress gateway asm-egress-test in aks-istio-egress will start when it runs.\n"),
        "{seen:?}"
    );
}

#[test]
fn times_out_with_the_pods_ready_so_far() {
    let (_dir, store) = store();
    let _up = local_cluster(&store);
    let opts = WaitOptions {
        timeout: Duration::ZERO,
        ..WaitOptions::default()
    };
    let (handle, _rx) = spawn_run(&store, command(&[]), opts);
    let (result, stdout) = handle.join().unwrap();
    assert_eq!(
        result.unwrap_err().to_string(),
        "timed out after 0s waiting for egress gateway asm-egress-test in aks-istio-egress to become ready: 0/2 pods ready"
    );
    assert_eq!(stdout, "");
    assert_eq!(wait::human_duration(wait::WAIT_TIMEOUT), "10m");
    assert_eq!(wait::human_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(wait::human_duration(Duration::from_secs(3600)), "1h");
    assert_eq!(wait::human_duration(Duration::from_millis(250)), "250ms");
}

#[test]
fn ready_means_observed_and_enough_ready_replicas() {
    let d = |generation: i64, observed: i64, replicas: i64, ready: Option<i64>| {
        let mut status = json!({"observedGeneration": observed});
        if let Some(r) = ready {
            status["readyReplicas"] = json!(r);
        }
        json!({
            "metadata": {"generation": generation},
            "spec": {"replicas": replicas},
            "status": status,
        })
    };
    assert_eq!(
        wait::deployment_readiness(&d(1, 1, 2, Some(2))),
        (2, 2, true)
    );
    assert_eq!(
        wait::deployment_readiness(&d(1, 1, 2, Some(3))),
        (2, 2, true)
    );
    // readyReplicas is left out while zero.
    assert_eq!(wait::deployment_readiness(&d(1, 1, 2, None)), (0, 2, false));
    assert_eq!(
        wait::deployment_readiness(&d(1, 1, 2, Some(1))),
        (1, 2, false)
    );
    // A spec change the controller has not seen yet is not ready, whatever the counts.
    assert_eq!(
        wait::deployment_readiness(&d(2, 1, 2, Some(2))),
        (2, 2, false)
    );
    // No status at all.
    let fresh = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}});
    assert_eq!(wait::deployment_readiness(&fresh), (0, 2, false));
}

#[test]
fn every_revision_deployment_must_be_ready() {
    let (_dir, store) = store();
    let _up = local_cluster(&store);
    let run = |cmd: MeshCommand| {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = Io {
            out: &mut out,
            err: &mut err,
        };
        mesh::run(&store, &cmd, &mut io, &mut |_: &str| Ok(true)).unwrap();
    };
    run(command(&["--no-wait"]));
    run(Wrapper::try_parse_from([
        "mesh",
        "upgrade",
        "start",
        "-n",
        "c",
        "--revision",
        "asm-1-25",
        "-o",
        "none",
    ])
    .unwrap()
    .command);
    set_status(&store, 2);
    let target = mesh::WaitTarget::new(GW, NS, &["asm-1-24".into(), "asm-1-25".into()]);
    let r = wait::readiness(&store, &target).unwrap();
    assert_eq!((r.ready, r.want, r.done), (2, 4, false));
}
