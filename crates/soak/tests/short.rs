//! The soak's short mode in the test suite: 30 s of fixed-rate load through the seed's three
//! scenarios under the real `egress up`, while the churn driver changes VirtualServices,
//! AuthorizationPolicies, ServiceEntries and the MeshConfig every 200 ms, a gateway is
//! disabled and re-enabled every 8 s and `egress up` is SIGKILLed and restarted every 12 s.
//! It asserts that no checked request got something other than what the declared state says
//! (0 persistent mismatches) and that every phase ran.
//!
//! It needs the `egress` binary (`EGRESS_BIN`, else the one cargo builds beside this test,
//! which `cargo test --workspace` builds; `cargo build -p egress-cli` for this crate alone) and
//! root (the stand-in binds ports 80 and 443, the gateways port 80 and 443 on their pod IPs).
//! Without either it prints SKIPPED, and fails under `EGRESS_TEST_STRICT=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use egress_soak::{Options, run};
use egress_testkit::addrs::Block;
use egress_testkit::skip;

/// The newest modification time under `dir` (recursively).
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).ok()
        };
        best = best.max(t);
    }
    best
}

/// The `egress` binary to soak, if one that is not older than the sources exists.
fn egress_bin() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("EGRESS_BIN") {
        return Ok(PathBuf::from(p));
    }
    // target/<profile>/deps/short-<hash> -> target/<profile>/egress
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("egress"))
        .ok_or("no target directory")?;
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .map_err(|_| {
            format!(
                "{} is missing (cargo build -p egress-cli, or EGRESS_BIN)",
                bin.display()
            )
        })?;
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for c in std::fs::read_dir(&crates)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if c.file_name() == "soak" {
            continue;
        }
        if newest(&c.path().join("src")).is_some_and(|t| t > built) {
            return Err(format!(
                "{} is older than crates/{}/src (cargo build -p egress-cli, or EGRESS_BIN)",
                bin.display(),
                c.file_name().to_string_lossy()
            ));
        }
    }
    Ok(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_soak_has_no_persistent_mismatches_and_runs_every_phase() {
    let bin = match egress_bin() {
        Ok(b) => b,
        Err(why) => return skip(&why),
    };
    let mut o = Options::short(bin);
    // Claimed loopback blocks (away from bench/soak's defaults and from every other test), so
    // all can run at once.
    let [pods, pool, stand_in] = [(); 3].map(|()| Block::claim().unwrap());
    o.pod_range = pods.net();
    o.egress_pool = pool.net();
    o.upstream_ip = stand_in.ip(1).into();
    o.keep = std::env::var("EGRESS_SOAK_KEEP").is_ok_and(|v| v == "1");
    let report = match run(&o).await {
        Ok(r) => r,
        Err(e) if e.needs_root() => return skip(&format!("{e} (run as root)")),
        Err(e) => panic!("the soak could not run: {e}"),
    };
    println!("{report}");
    let s = &report.stats;
    assert_eq!(report.persistent_mismatches(), 0, "\n{report}");
    for (i, name) in ["http", "passthrough", "originate"].iter().enumerate() {
        assert!(s.requests[i] > 0, "{name}: no requests\n{report}");
        assert!(s.checked[i] > 0, "{name}: no checked requests\n{report}");
        assert!(
            s.changes[i] > 0,
            "{name}: its outcome never changed\n{report}"
        );
    }
    for kind in [
        "VirtualService",
        "AuthorizationPolicy",
        "ServiceEntry",
        "MeshConfig",
    ] {
        assert!(
            report.churn.by_kind.get(kind).is_some_and(|n| *n > 0),
            "no {kind} change committed\n{report}"
        );
    }
    assert!(
        !s.propagation.is_empty(),
        "no propagation measured\n{report}"
    );
    let (restarts, cycles) = report.clean_episodes();
    assert!(restarts >= 1, "no restart of egress up completed\n{report}");
    assert!(cycles >= 1, "no gateway cycle completed\n{report}");
    assert!(
        report.restarts.iter().all(|e| e.error.is_none())
            && report.cycles.iter().all(|e| e.error.is_none()),
        "a restart or gateway cycle did not converge\n{report}"
    );
}
