//! The local cluster's one identity: the resource group and name of the single
//! ManagedCluster the store holds. It is recorded by the first `egress up` (`egress-local` in
//! `egress-local`) or, on a store `egress up` never ran on, by the first `egress mesh` command
//! that changes the profile (with its `-g`/`-n`). From then on `-g`/`-n` name it or are
//! left out; any other pair gets az's `ResourceNotFound` and exit code 3, as `az aks` gives
//! for a cluster that does not exist, and never a new profile.

use egress_addon::ManagedCluster;
use egress_addon::profile::{NetworkProfile, StaticEgressGatewayProfile};
use egress_store::{Store, Transaction};
use serde_json::{Value, json};

use super::{ClusterArgs, DEFAULT_CLUSTER, LOCATION, MC_GROUP, MC_KIND, MeshError, cluster_key};

/// az's exit code for a missing ARM resource.
pub const NOT_FOUND_EXIT: u8 = 3;

/// az's text for a ManagedCluster that does not exist (what follows `ERROR: `): the service's
/// `(Code) message`, then its `Code:` and `Message:` lines.
pub fn not_found_message(name: &str, resource_group: &str) -> String {
    let message = format!(
        "The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );
    format!("(ResourceNotFound) {message}\nCode: ResourceNotFound\nMessage: {message}")
}

/// The local cluster as it is before any mesh command: no mesh profile, static egress
/// gateways on.
fn fresh(resource_group: &str, name: &str) -> ManagedCluster {
    ManagedCluster {
        name: name.to_owned(),
        resource_group: resource_group.to_owned(),
        location: LOCATION.to_owned(),
        service_mesh_profile: None,
        network_profile: Some(NetworkProfile {
            static_egress_gateway_profile: Some(StaticEgressGatewayProfile { enabled: true }),
        }),
    }
}

/// The stored cluster among the listed ManagedCluster objects: the only one, or on a store
/// written before the identity was kept, the oldest (by creation time, then name).
fn stored(items: Vec<Value>) -> Result<Option<ManagedCluster>, MeshError> {
    let created = |v: &Value| {
        (
            v.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let Some(obj) = items.into_iter().min_by_key(created) else {
        return Ok(None);
    };
    let name = created(&obj).1;
    let mc: ManagedCluster =
        serde_json::from_value(obj.get("spec").cloned().unwrap_or(Value::Null)).map_err(|e| {
            MeshError::Corrupt {
                name,
                reason: e.to_string(),
            }
        })?;
    Ok(Some(mc))
}

/// The cluster `args` names, given the stored one. `-g`/`-n` must match it (either may be
/// left out). With none stored, the local cluster is `egress-local` in `egress-local`, unless
/// the command `records` the identity (it changes the profile), which takes `-g`/`-n`.
fn resolve(
    stored: Option<ManagedCluster>,
    args: &ClusterArgs,
    records: bool,
) -> Result<ManagedCluster, MeshError> {
    let current = match stored {
        Some(mc) => mc,
        None if records => fresh(
            args.resource_group.as_deref().unwrap_or(DEFAULT_CLUSTER),
            args.name.as_deref().unwrap_or(DEFAULT_CLUSTER),
        ),
        None => fresh(DEFAULT_CLUSTER, DEFAULT_CLUSTER),
    };
    let name = args.name.as_deref().unwrap_or(&current.name);
    let resource_group = args
        .resource_group
        .as_deref()
        .unwrap_or(&current.resource_group);
    if name != current.name || resource_group != current.resource_group {
        return Err(MeshError::NotFound {
            name: name.to_owned(),
            resource_group: resource_group.to_owned(),
        });
    }
    Ok(current)
}

/// The cluster `args` names (committed state), for commands that only read it.
pub fn read_cluster(store: &Store, args: &ClusterArgs) -> Result<ManagedCluster, MeshError> {
    resolve(
        stored(store.list(MC_GROUP, MC_KIND, None)?.items)?,
        args,
        false,
    )
}

/// The cluster `args` names inside a transaction that changes it (and records the identity
/// when none is stored yet).
pub(super) fn cluster_for_change(
    tx: &Transaction<'_>,
    args: &ClusterArgs,
) -> Result<ManagedCluster, MeshError> {
    resolve(stored(tx.list(MC_GROUP, MC_KIND, None)?.items)?, args, true)
}

/// Stages `mc` as the stored ManagedCluster.
pub(super) fn write(tx: &mut Transaction<'_>, mc: &ManagedCluster) -> Result<(), MeshError> {
    let spec = serde_json::to_value(mc).map_err(|e| MeshError::Corrupt {
        name: mc.name.clone(),
        reason: e.to_string(),
    })?;
    tx.apply(
        &cluster_key(&mc.name),
        json!({
            "apiVersion": format!("{MC_GROUP}/v1"),
            "kind": MC_KIND,
            "metadata": {"name": mc.name},
            "spec": spec,
        }),
    )?;
    Ok(())
}

/// What `egress up` does first: records the local cluster's identity (`egress-local` in
/// `egress-local`) unless one is stored, and returns it.
pub fn ensure_local_cluster(store: &Store) -> Result<ManagedCluster, MeshError> {
    let committed = store.transact(|tx| {
        if let Some(mc) = stored(tx.list(MC_GROUP, MC_KIND, None)?.items)? {
            return Ok(mc);
        }
        let mc = fresh(DEFAULT_CLUSTER, DEFAULT_CLUSTER);
        write(tx, &mc)?;
        Ok::<_, MeshError>(mc)
    })?;
    Ok(committed.value)
}
