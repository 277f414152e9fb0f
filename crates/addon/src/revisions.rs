//! The mesh revision catalogue: what `az aks mesh get-revisions` and `get-upgrades` report,
//! shaped like the AKS API's `meshRevisionProfiles` and `meshUpgradeProfiles` properties.
//!
//! The local cluster's catalogue is [`CATALOGUE`]: the revisions of
//! [`SUPPORTED_REVISIONS`], each compatible with the Kubernetes versions the add-on's
//! support policy lists for it (the release calendar's "Compatible AKS versions" column as
//! [`KUBERNETES_OFFICIAL`], its "Compatible AKS LTS versions" column as
//! [`AKS_LONG_TERM_SUPPORT`]). A revision's upgrades are the supported revisions of the
//! same major version one or two minors above it (istio-upgrade.md: "n+1 or n+2");
//! when neither is supported, the nearest supported higher revision.

use serde::{Deserialize, Serialize};

use crate::ops::revision_version;
use crate::profile::{SUPPORTED_REVISIONS, ServiceMeshProfile};

/// `compatibleWith[].name` of the Kubernetes versions under the standard support plan.
pub const KUBERNETES_OFFICIAL: &str = "KubernetesOfficial";
/// `compatibleWith[].name` of the Kubernetes versions under long-term support.
pub const AKS_LONG_TERM_SUPPORT: &str = "AKSLongTermSupport";

/// One revision of the local catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// `asm-X-Y`.
    pub revision: &'static str,
    /// Kubernetes minor versions under the standard support plan.
    pub kubernetes: &'static [&'static str],
    /// Kubernetes minor versions under long-term support (may be empty).
    pub long_term_support: &'static [&'static str],
}

/// The local cluster's revisions, lowest first (the add-on support policy's calendar).
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        revision: "asm-1-24",
        kubernetes: &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33"],
        long_term_support: &[],
    },
    CatalogueEntry {
        revision: "asm-1-25",
        kubernetes: &["1.29", "1.30", "1.31", "1.32", "1.33"],
        long_term_support: &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33"],
    },
    CatalogueEntry {
        revision: "asm-1-26",
        kubernetes: &["1.29", "1.30", "1.31", "1.32", "1.33", "1.34"],
        long_term_support: &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"],
    },
];

/// `meshRevisionProfiles/istio` properties: every revision the location offers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevisionProfile {
    /// The revisions, lowest first.
    pub mesh_revisions: Vec<MeshRevision>,
}

/// One revision with its upgrades and compatible versions; also the shape of a
/// `meshUpgradeProfiles/istio` properties object (`az aks mesh get-upgrades`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRevision {
    /// `asm-X-Y`.
    pub revision: String,
    /// Revisions it can be upgraded to.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Products and versions it is compatible with.
    #[serde(default)]
    pub compatible_with: Vec<CompatibleVersions>,
}

/// `compatibleWith[]`: a product and its versions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompatibleVersions {
    /// The product (support plan).
    pub name: String,
    /// Its versions.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// The revisions `revision` can be upgraded to among `supported`: the same major's next two
/// minors that are supported, else the nearest supported higher revision of that major.
pub fn upgrades_from(revision: &str, supported: &[&str]) -> Vec<String> {
    let Some((major, minor)) = revision_version(revision) else {
        return Vec::new();
    };
    let mut higher: Vec<(u64, &str)> = supported
        .iter()
        .filter_map(|r| match revision_version(r) {
            Some((x, y)) if x == major && y > minor => Some((y, *r)),
            _ => None,
        })
        .collect();
    higher.sort_unstable();
    higher.dedup();
    let near: Vec<String> = higher
        .iter()
        .filter(|(y, _)| *y <= minor + 2)
        .map(|(_, r)| (*r).to_owned())
        .collect();
    if !near.is_empty() {
        return near;
    }
    higher
        .first()
        .map(|(_, r)| vec![(*r).to_owned()])
        .unwrap_or_default()
}

fn compatible_with(revision: &str) -> Vec<CompatibleVersions> {
    let Some(entry) = CATALOGUE.iter().find(|e| e.revision == revision) else {
        return Vec::new();
    };
    let list = |name: &str, versions: &[&str]| CompatibleVersions {
        name: name.to_owned(),
        versions: versions.iter().map(|v| (*v).to_owned()).collect(),
    };
    let mut out = vec![list(KUBERNETES_OFFICIAL, entry.kubernetes)];
    if !entry.long_term_support.is_empty() {
        out.push(list(AKS_LONG_TERM_SUPPORT, entry.long_term_support));
    }
    out
}

/// What the catalogue says about `revision` (an unknown revision has no compatible
/// versions, and upgrades only when a supported revision is above it).
pub fn describe(revision: &str) -> MeshRevision {
    MeshRevision {
        revision: revision.to_owned(),
        upgrades: upgrades_from(revision, SUPPORTED_REVISIONS),
        compatible_with: compatible_with(revision),
    }
}

/// `az aks mesh get-revisions`: the local catalogue. Every location gets the same one.
pub fn mesh_revision_profile() -> MeshRevisionProfile {
    MeshRevisionProfile {
        mesh_revisions: SUPPORTED_REVISIONS.iter().map(|r| describe(r)).collect(),
    }
}

/// `az aks mesh get-upgrades`: `None` when the mesh is off (the service lists no upgrade
/// profile); otherwise the installed revision's entry. During a canary upgrade that is the
/// lower revision, the one the upgrade started from.
pub fn mesh_upgrade_profile(profile: &ServiceMeshProfile) -> Option<MeshRevision> {
    if !profile.is_enabled() {
        return None;
    }
    let current = profile
        .revisions()
        .iter()
        .min_by_key(|r| revision_version(r).unwrap_or_default())?;
    Some(describe(current))
}

/// az's `sort_versions`: dotted numeric versions sorted numerically; anything else (such as
/// `asm-1-25` or `None available`) makes the list come back as it was.
pub fn sort_versions(versions: &[String]) -> Vec<String> {
    let parsed: Option<Vec<Vec<u64>>> = versions
        .iter()
        .map(|v| v.split('.').map(|p| p.parse::<u64>().ok()).collect())
        .collect();
    let Some(keys) = parsed else {
        return versions.to_vec();
    };
    let mut pairs: Vec<(Vec<u64>, String)> =
        keys.into_iter().zip(versions.iter().cloned()).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().map(|(_, v)| v).collect()
}

/// One row of az's `-o table` for mesh revisions and upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    /// `Revision`.
    pub revision: String,
    /// `Upgrades`: joined with `, `, `None available` when empty.
    pub upgrades: String,
    /// `CompatibleWith`: the product.
    pub compatible_with: String,
    /// `CompatibleVersions`: version-sorted, joined with `, `.
    pub compatible_versions: String,
}

/// The column titles of [`TableRow`], as az prints them.
pub const TABLE_HEADERS: [&str; 4] = [
    "Revision",
    "Upgrades",
    "CompatibleWith",
    "CompatibleVersions",
];

fn joined(values: &[String]) -> String {
    if values.is_empty() {
        return "None available".to_owned();
    }
    sort_versions(values).join(", ")
}

/// az's `_format_mesh_revision_entry` and JMESPath projection: one row per
/// `compatibleWith` entry (a revision without any has no row).
pub fn table_rows(revision: &MeshRevision) -> Vec<TableRow> {
    revision
        .compatible_with
        .iter()
        .map(|c| TableRow {
            revision: revision.revision.clone(),
            upgrades: joined(&revision.upgrades),
            compatible_with: c.name.clone(),
            compatible_versions: joined(&c.versions),
        })
        .collect()
}

impl TableRow {
    /// The cells in [`TABLE_HEADERS`] order.
    pub fn cells(&self) -> [&str; 4] {
        [
            &self.revision,
            &self.upgrades,
            &self.compatible_with,
            &self.compatible_versions,
        ]
    }
}
