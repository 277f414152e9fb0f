//! `egress mesh manifests`: the add-on's egress gateway objects as multi-document
//! Kubernetes YAML, for applying to a real cluster (`kubectl apply -f -`).

use egress_addon::manifests::gateway_manifests;
use egress_printers::yaml::to_yaml;
use egress_store::Store;

use super::args::ClusterRef;
use super::{MeshError, read_cluster};
use crate::Io;

/// Prints every enabled gateway's objects for every installed revision, `---` between
/// documents, with `image` as the gateway container image.
pub fn print_manifests(
    store: &Store,
    cluster: &ClusterRef,
    image: &str,
    io: &mut Io<'_>,
) -> Result<(), MeshError> {
    let mc = read_cluster(store, &cluster.cluster())?;
    let objects = gateway_manifests(&mc.name, &mc.mesh_profile_or_disabled(), image)
        .map_err(|e| MeshError::Refused(e.to_string()))?;
    let docs: Vec<String> = objects.iter().map(to_yaml).collect();
    write!(io.out, "{}", docs.join("---\n"))?;
    Ok(())
}
