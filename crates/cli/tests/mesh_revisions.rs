//! `egress mesh get-revisions` and `get-upgrades` through the binary: az's JSON shapes, its
//! table columns and rows, and its warning when the mesh is off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Cluster;
use serde_json::{Value, json};

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}:\n{stdout}"))
}

#[test]
fn get_revisions_lists_the_catalogue() {
    let c = Cluster::new();
    let r = c
        .run(&["mesh", "get-revisions", "--location", "eastus"])
        .ok();
    let v = json_of(&r.stdout);
    let revs: Vec<&str> = v["meshRevisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_str().unwrap())
        .collect();
    assert_eq!(revs, ["asm-1-24", "asm-1-25", "asm-1-26"]);
    assert_eq!(
        v["meshRevisions"][1],
        json!({
            "revision": "asm-1-25",
            "upgrades": ["asm-1-26"],
            "compatibleWith": [
                {"name": "KubernetesOfficial", "versions": ["1.29", "1.30", "1.31", "1.32", "1.33"]},
                {"name": "AKSLongTermSupport", "versions": ["1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]},
            ],
        })
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // `-l` is the short form; `--location` is required.
    let short = c.run(&["mesh", "get-revisions", "-l", "local"]).ok();
    assert_eq!(short.stdout, r.stdout);
    let missing = c.run(&["mesh", "get-revisions"]).fails();
    assert!(missing.stderr.contains("--location"), "{}", missing.stderr);
}

#[test]
fn get_revisions_table_has_one_row_per_compatible_entry() {
    let c = Cluster::new();
    let r = c
        .run(&["mesh", "get-revisions", "-l", "eastus", "-o", "table"])
        .ok();
    let expected = "\
Revision    Upgrades            CompatibleWith      CompatibleVersions                      
----------  ------------------  ------------------  ----------------------------------------
asm-1-24    asm-1-25, asm-1-26  KubernetesOfficial  1.28, 1.29, 1.30, 1.31, 1.32, 1.33      
asm-1-25    asm-1-26            KubernetesOfficial  1.29, 1.30, 1.31, 1.32, 1.33            
asm-1-25    asm-1-26            AKSLongTermSupport  1.28, 1.29, 1.30, 1.31, 1.32, 1.33      
asm-1-26    None available      KubernetesOfficial  1.29, 1.30, 1.31, 1.32, 1.33, 1.34      
asm-1-26    None available      AKSLongTermSupport  1.28, 1.29, 1.30, 1.31, 1.32, 1.33, 1.34
";
    assert_eq!(r.stdout, expected);
}

#[test]
fn get_upgrades_warns_when_the_mesh_is_off() {
    let c = Cluster::new();
    // The local cluster before any mesh command (`-g`/`-n` left out: its own).
    for output in ["json", "table"] {
        let r = c.run(&["mesh", "get-upgrades", "-o", output]).ok();
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert_eq!(
            r.stderr,
            "WARNING: No mesh upgrade profiles found for the cluster 'egress-local' in the resource group 'egress-local'.\n"
        );
    }
    // A cluster whose mesh was enabled, then disabled.
    let c = Cluster::new();
    c.run(&["mesh", "enable", "-g", "rg", "-n", "c", "-o", "none"])
        .ok();
    c.run(&[
        "mesh", "disable", "-g", "rg", "-n", "c", "--yes", "-o", "none",
    ])
    .ok();
    for output in ["json", "table"] {
        let r = c
            .run(&["mesh", "get-upgrades", "-g", "rg", "-n", "c", "-o", output])
            .ok();
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert_eq!(
            r.stderr,
            "WARNING: No mesh upgrade profiles found for the cluster 'c' in the resource group 'rg'.\n"
        );
    }
}

#[test]
fn get_upgrades_reports_the_installed_revision() {
    let c = Cluster::new();
    c.run(&["mesh", "enable", "-g", "rg", "-n", "c", "-o", "none"])
        .ok();
    let r = c.run(&["mesh", "get-upgrades", "-g", "rg", "-n", "c"]).ok();
    assert_eq!(
        json_of(&r.stdout),
        json!({
            "revision": "asm-1-24",
            "upgrades": ["asm-1-25", "asm-1-26"],
            "compatibleWith": [{
                "name": "KubernetesOfficial",
                "versions": ["1.28", "1.29", "1.30", "1.31", "1.32", "1.33"],
            }],
        })
    );
    let t = c
        .run(&["mesh", "get-upgrades", "-n", "c", "-o", "table"])
        .ok();
    assert_eq!(
        t.stdout,
        "\
Revision    Upgrades            CompatibleWith      CompatibleVersions                
----------  ------------------  ------------------  ----------------------------------
asm-1-24    asm-1-25, asm-1-26  KubernetesOfficial  1.28, 1.29, 1.30, 1.31, 1.32, 1.33
"
    );
    // After a completed upgrade to the newest revision: nothing to upgrade to.
    c.run(&[
        "mesh",
        "upgrade",
        "start",
        "-n",
        "c",
        "--revision",
        "asm-1-26",
        "-o",
        "none",
    ])
    .ok();
    c.run(&[
        "mesh", "upgrade", "complete", "-n", "c", "--yes", "-o", "none",
    ])
    .ok();
    let t = c
        .run(&["mesh", "get-upgrades", "-n", "c", "-o", "table"])
        .ok();
    let rows: Vec<&str> = t.stdout.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{}", t.stdout);
    assert!(rows[0].starts_with("asm-1-26    None available  KubernetesOfficial"));
    assert!(rows[1].starts_with("asm-1-26    None available  AKSLongTermSupport"));
}
