//! `egress mesh get-revisions` and `get-upgrades`: the revision catalogue and the cluster's
//! upgrade profile, as az prints them (`-o json`, or `-o table` with az's columns).

use std::io::Write;

use egress_addon::revisions::{
    self, TABLE_HEADERS, TableRow, mesh_revision_profile, mesh_upgrade_profile,
};

use super::args::ClusterRef;
use super::{MeshError, read_cluster};
use crate::Io;

/// `az aks mesh get-revisions --location L`: the local catalogue (the same in every
/// location).
pub fn get_revisions(output: &str, io: &mut Io<'_>) -> Result<(), MeshError> {
    let profile = mesh_revision_profile();
    match output {
        "table" => {
            let rows: Vec<TableRow> = profile
                .mesh_revisions
                .iter()
                .flat_map(revisions::table_rows)
                .collect();
            write_table(&rows, io.out)
        }
        _ => write_json(serde_json::to_value(&profile), output, io.out),
    }
}

/// `az aks mesh get-upgrades -g RG -n NAME`: the installed revision's upgrades, or az's
/// warning when the mesh is off.
pub fn get_upgrades(
    store: &egress_store::Store,
    cluster: &ClusterRef,
    output: &str,
    io: &mut Io<'_>,
) -> Result<(), MeshError> {
    let mc = read_cluster(store, &cluster.cluster())?;
    let Some(upgrades) = mesh_upgrade_profile(&mc.mesh_profile_or_disabled()) else {
        writeln!(
            io.err,
            "WARNING: No mesh upgrade profiles found for the cluster '{}' in the resource group '{}'.",
            mc.name, mc.resource_group
        )?;
        return Ok(());
    };
    match output {
        "table" => write_table(&revisions::table_rows(&upgrades), io.out),
        _ => write_json(serde_json::to_value(&upgrades), output, io.out),
    }
}

fn write_json(
    value: Result<serde_json::Value, serde_json::Error>,
    output: &str,
    out: &mut dyn Write,
) -> Result<(), MeshError> {
    if output == "none" {
        return Ok(());
    }
    let text = value
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(|e| MeshError::Refused(format!("cannot render the result: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// az's table output (knack over `tabulate`'s "simple" format): each column as wide as its
/// widest cell or its title plus two, cells left-aligned and padded, columns two spaces
/// apart, a dashed rule under the titles; no rows print an empty line.
pub fn write_table(rows: &[TableRow], out: &mut dyn Write) -> Result<(), MeshError> {
    if rows.is_empty() {
        writeln!(out)?;
        return Ok(());
    }
    let width = |i: usize| {
        rows.iter()
            .map(|r| r.cells()[i].chars().count())
            .max()
            .unwrap_or(0)
            .max(TABLE_HEADERS[i].chars().count() + 2)
    };
    let widths: Vec<usize> = (0..TABLE_HEADERS.len()).map(width).collect();
    let line = |cells: [&str; 4]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(TABLE_HEADERS))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", rule.join("  "))?;
    for r in rows {
        writeln!(out, "{}", line(r.cells()))?;
    }
    Ok(())
}
