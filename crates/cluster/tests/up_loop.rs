//! `egress up`'s loop answers shutdown however busy its passes are: with another writer
//! undoing the controllers' work on every pass, the loop warns, paces itself, and stops when
//! asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use egress_cluster::controllers::Settings;
use egress_cluster::runtime::RuntimeOptions;
use egress_cluster::up::{self, BUSY_PASS_LIMIT, BusyPasses, Hooks, Next, UpOptions};
use egress_store::{ObjectKey, Store};
use egress_testkit::addrs::Block;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "fight";

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "curl", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "curl"}},
            "template": {
                "metadata": {"labels": {"app": "curl"}},
                "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}]},
            },
        },
    })
}

#[test]
fn busy_passes_run_back_to_back_until_the_limit_then_pause_and_warn_once() {
    let mut busy = BusyPasses::default();
    for _ in 1..BUSY_PASS_LIMIT {
        assert_eq!(busy.after(true), Next::Again);
    }
    assert_eq!(busy.after(true), Next::Pause { warn: true });
    assert_eq!(busy.after(true), Next::Pause { warn: false });
    assert_eq!(busy.after(false), Next::Settle);
    assert_eq!(
        busy.after(true),
        Next::Again,
        "an idle pass ends the streak"
    );
}

#[test]
fn a_batched_plan_that_shrinks_is_converging_and_one_that_does_not_is_a_fight() {
    // `--reconcile-batch 1` over a plan of 200 writes: 200 busy passes, each leaving one write
    // fewer, never warn.
    let mut busy = BusyPasses::default();
    for left in (1..200).rev() {
        assert_eq!(
            busy.after_pass(true, Some(left)),
            Next::Again,
            "{left} left"
        );
    }
    assert_eq!(busy.after_pass(true, None), Next::Again);
    assert_eq!(busy.after_pass(false, None), Next::Settle);
    // The same backlog pass after pass (something undoes each batch): the limit, then a warning.
    for _ in 1..BUSY_PASS_LIMIT {
        assert_eq!(busy.after_pass(true, Some(5)), Next::Again);
    }
    assert_eq!(busy.after_pass(true, Some(5)), Next::Pause { warn: true });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_when_asked_while_another_writer_keeps_undoing_its_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = ObjectKey::new("apps", "Deployment", Some(NS), "curl");
    store
        .transact(|tx| -> Result<(), egress_store::StoreError> {
            tx.apply(
                &ObjectKey::for_namespace(NS),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )?;
            tx.apply(&key, deployment())?;
            Ok(())
        })
        .unwrap();
    let (pods, pool) = (Block::claim().unwrap(), Block::claim().unwrap());
    let options = UpOptions {
        settings: Settings {
            pod_range: pods.net(),
            egress_pool: pool.net().to_string(),
            ..Settings::default()
        },
        runtime: RuntimeOptions {
            trust_domain: "cluster.local".into(),
            pod_log_dir: dir.path().join("pods"),
            ..RuntimeOptions::default()
        },
        drain_grace: Duration::from_millis(500),
        stand_ins: Vec::new(),
        api: None,
    };
    let (notes_tx, notes_rx) = std::sync::mpsc::channel::<String>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let hooks = Hooks {
        note: Box::new(move |n| {
            let _ = notes_tx.send(n.to_owned());
        }),
        ready: None,
    };
    let running = tokio::spawn(up::run(store.clone(), options, hooks, async {
        let _ = stop_rx.await;
    }));

    // The other writer: clears the Deployment's status as fast as it can, so the
    // controllers find something to write on (nearly) every pass.
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, key) = (store.clone(), key.clone());
        let (stop, writes) = (Arc::clone(&stop_writer), Arc::clone(&writes));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = store.transact(|tx| -> Result<(), egress_store::StoreError> {
                    if let Some(mut d) = tx.get(&key)? {
                        d["status"] = json!({"observedGeneration": 0});
                        tx.update(&key, d, None)?;
                    }
                    Ok(())
                });
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The loop notices the fight: BUSY_PASS_LIMIT busy passes in a row, then a warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match notes_rx.recv_timeout(left) {
            Ok(n) if n.contains("controller passes in a row") => break n,
            Ok(n) => seen.push(n),
            Err(_) => panic!(
                "no pacing warning within 60 s ({} writes by the other writer); notes: {:?}",
                writes.load(Ordering::Relaxed),
                &seen[seen.len().saturating_sub(10)..]
            ),
        }
    };
    assert!(warning.starts_with("warning: "), "{warning}");

    // Asked to stop while the writer still fights, the loop stops within the drain grace
    // plus a pass.
    let asked = Instant::now();
    stop_tx.send(()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(5), running).await;
    let took = asked.elapsed();
    stop_writer.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    done.expect("up::run did not stop within 5 s of being asked")
        .unwrap()
        .unwrap();
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    eprintln!(
        "stopped {took:?} after being asked; the other writer wrote {} times",
        writes.load(Ordering::Relaxed)
    );
}
