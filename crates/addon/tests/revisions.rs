//! The revision catalogue behind `get-revisions` and `get-upgrades`: one test per rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_addon::ops;
use egress_addon::profile::{SUPPORTED_REVISIONS, ServiceMeshProfile};
use egress_addon::revisions::{
    self, AKS_LONG_TERM_SUPPORT, CATALOGUE, KUBERNETES_OFFICIAL, MeshRevision, TableRow,
};
use serde_json::json;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn on(revisions: &[&str]) -> ServiceMeshProfile {
    let mut p = ops::enable(&ServiceMeshProfile::default(), revisions.first().copied()).unwrap();
    for r in &revisions[1..] {
        p.istio.as_mut().unwrap().revisions.push((*r).to_owned());
    }
    p
}

#[test]
fn the_catalogue_is_the_supported_revisions_lowest_first() {
    let listed: Vec<&str> = CATALOGUE.iter().map(|e| e.revision).collect();
    assert_eq!(listed, SUPPORTED_REVISIONS);
    let profile = revisions::mesh_revision_profile();
    let names: Vec<&str> = profile
        .mesh_revisions
        .iter()
        .map(|r| r.revision.as_str())
        .collect();
    assert_eq!(names, ["asm-1-24", "asm-1-25", "asm-1-26"]);
}

#[test]
fn upgrades_are_the_next_two_supported_minors() {
    let supported = ["asm-1-24", "asm-1-25", "asm-1-26"];
    assert_eq!(
        revisions::upgrades_from("asm-1-24", &supported),
        strings(&["asm-1-25", "asm-1-26"])
    );
    assert_eq!(
        revisions::upgrades_from("asm-1-25", &supported),
        strings(&["asm-1-26"])
    );
    assert!(revisions::upgrades_from("asm-1-26", &supported).is_empty());
    // n+1 unsupported: only n+2.
    assert_eq!(
        revisions::upgrades_from("asm-1-24", &["asm-1-24", "asm-1-26", "asm-1-27"]),
        strings(&["asm-1-26"])
    );
    // Another major is never an upgrade target.
    assert!(revisions::upgrades_from("asm-1-26", &["asm-2-0", "asm-2-1"]).is_empty());
}

#[test]
fn an_unsupported_revision_upgrades_to_the_nearest_supported_one() {
    let supported = ["asm-1-24", "asm-1-25", "asm-1-26"];
    assert_eq!(
        revisions::upgrades_from("asm-1-21", &supported),
        strings(&["asm-1-24"])
    );
    assert_eq!(
        revisions::upgrades_from("asm-1-23", &supported),
        strings(&["asm-1-24", "asm-1-25"])
    );
    assert!(revisions::upgrades_from("asm-1-30", &supported).is_empty());
    assert!(revisions::upgrades_from("1.24", &supported).is_empty());
}

#[test]
fn compatible_versions_come_from_the_support_calendar() {
    let profile = revisions::mesh_revision_profile();
    let v = serde_json::to_value(&profile).unwrap();
    assert_eq!(
        v["meshRevisions"][0],
        json!({
            "revision": "asm-1-24",
            "upgrades": ["asm-1-25", "asm-1-26"],
            "compatibleWith": [{
                "name": "KubernetesOfficial",
                "versions": ["1.28", "1.29", "1.30", "1.31", "1.32", "1.33"],
            }],
        })
    );
    let r25 = &profile.mesh_revisions[1];
    let names: Vec<&str> = r25
        .compatible_with
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, [KUBERNETES_OFFICIAL, AKS_LONG_TERM_SUPPORT]);
    assert_eq!(
        r25.compatible_with[0].versions,
        strings(&["1.29", "1.30", "1.31", "1.32", "1.33"])
    );
    let r26 = &profile.mesh_revisions[2];
    assert!(r26.upgrades.is_empty());
    assert_eq!(r26.compatible_with[0].versions.last().unwrap(), "1.34");
    // A revision outside the catalogue has no compatible versions.
    assert!(revisions::describe("asm-1-21").compatible_with.is_empty());
    // Round trip through the API shape.
    let back: revisions::MeshRevisionProfile = serde_json::from_value(v).unwrap();
    assert_eq!(back, profile);
}

#[test]
fn the_upgrade_profile_is_the_installed_revision_or_none() {
    assert_eq!(
        revisions::mesh_upgrade_profile(&ServiceMeshProfile::default()),
        None
    );
    let p = on(&["asm-1-25"]);
    let up = revisions::mesh_upgrade_profile(&p).unwrap();
    assert_eq!(up, revisions::describe("asm-1-25"));
    assert_eq!(up.upgrades, strings(&["asm-1-26"]));
    // During a canary upgrade: the revision the upgrade started from.
    let p = on(&["asm-1-25", "asm-1-24"]);
    assert_eq!(
        revisions::mesh_upgrade_profile(&p).unwrap().revision,
        "asm-1-24"
    );
    // A disabled mesh keeps no upgrade profile even with revisions left in the profile.
    let mut off = on(&["asm-1-24"]);
    off.mode = egress_addon::profile::MeshMode::Disabled;
    assert_eq!(revisions::mesh_upgrade_profile(&off), None);
}

#[test]
fn sort_versions_sorts_numeric_versions_only() {
    assert_eq!(
        revisions::sort_versions(&strings(&["1.30", "1.9", "1.28"])),
        strings(&["1.9", "1.28", "1.30"])
    );
    // az's sort_versions gives up on anything that is not all dotted integers.
    assert_eq!(
        revisions::sort_versions(&strings(&["asm-1-26", "asm-1-25"])),
        strings(&["asm-1-26", "asm-1-25"])
    );
    assert_eq!(
        revisions::sort_versions(&strings(&["1.30", "None available"])),
        strings(&["1.30", "None available"])
    );
}

#[test]
fn table_rows_are_one_per_compatible_entry() {
    let r = MeshRevision {
        revision: "asm-1-26".into(),
        upgrades: vec![],
        compatible_with: vec![
            revisions::CompatibleVersions {
                name: "KubernetesOfficial".into(),
                versions: strings(&["1.34", "1.29", "1.30"]),
            },
            revisions::CompatibleVersions {
                name: "AKSLongTermSupport".into(),
                versions: vec![],
            },
        ],
    };
    assert_eq!(
        revisions::table_rows(&r),
        [
            TableRow {
                revision: "asm-1-26".into(),
                upgrades: "None available".into(),
                compatible_with: "KubernetesOfficial".into(),
                compatible_versions: "1.29, 1.30, 1.34".into(),
            },
            TableRow {
                revision: "asm-1-26".into(),
                upgrades: "None available".into(),
                compatible_with: "AKSLongTermSupport".into(),
                compatible_versions: "None available".into(),
            },
        ]
    );
    let upgrades = revisions::table_rows(&revisions::describe("asm-1-24"));
    assert_eq!(upgrades.len(), 1);
    assert_eq!(upgrades[0].upgrades, "asm-1-25, asm-1-26");
    // No compatibleWith entry, no row.
    assert!(revisions::table_rows(&revisions::describe("asm-1-21")).is_empty());
}
