//! Several handles, threads and processes writing the same store at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use common::*;
use egress_store::{Action, Store};
use serde_json::json;

const PER_WRITER: usize = 200;
const CHILD_ENV: &str = "EGRESS_STORE_CHILD";

/// Applies `PER_WRITER` objects named `<prefix>-<i>`, one transaction each, through
/// a handle of its own.
fn write_objects(dir: &Path, prefix: &str) {
    let store = Store::open(dir).unwrap();
    for i in 0..PER_WRITER {
        let name = format!("{prefix}-{i}");
        let out = apply(
            &store,
            &cm_key("shared", &name),
            cm("shared", &name, json!({"i": i})),
        );
        assert_eq!(out.action, Action::Created);
    }
}

fn check(dir: &Path, expected: usize) {
    let store = open(dir);
    let listed = store.list("", "ConfigMap", Some("shared")).unwrap();
    assert!(listed.corrupt.is_empty(), "{:?}", listed.corrupt);
    assert_eq!(listed.items.len(), expected);
    let rvs: BTreeSet<u64> = listed.items.iter().map(rv).collect();
    assert_eq!(rvs.len(), expected);
    // One rv for the namespace, one per object, no gaps.
    assert_eq!(listed.resource_version, expected as u64 + 1);
    assert_eq!(rvs.last().copied(), Some(expected as u64 + 1));
    // The journal agrees: every event once, in order.
    let mut watcher = store.watch(0).unwrap();
    let events = watcher.try_next_events().unwrap();
    assert_eq!(events.len(), expected + 1);
    assert!(events.windows(2).all(|w| w[1].rv == w[0].rv + 1));
}

#[test]
fn threads_with_their_own_handles() {
    let dir = tempfile::tempdir().unwrap();
    create_ns(&open(dir.path()), "shared");
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.path().to_path_buf();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                write_objects(&dir, &format!("t{t}"));
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    check(dir.path(), 4 * PER_WRITER);
}

/// Child-process entry point; does nothing unless started by `processes_write_concurrently`.
#[test]
fn child_writer() {
    if let Some(spec) = std::env::var_os(CHILD_ENV) {
        let spec = spec.into_string().unwrap();
        let (dir, prefix) = spec.split_once('|').unwrap();
        write_objects(Path::new(dir), prefix);
    }
}

#[test]
fn processes_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    create_ns(&open(dir.path()), "shared");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p0", "p1"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{}|{prefix}", dir.path().display()))
                // Keep the children's test-runner lines out of this run's output.
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The child really ran the writer rather than filtering it out.
        assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
    }
    check(dir.path(), 2 * PER_WRITER);
}
