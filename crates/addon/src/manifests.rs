//! The add-on's egress gateway objects for a real cluster: what
//! [`crate::objects::cluster_gateway_objects`] renders (the local objects plus the gateway's
//! RBAC) for every enabled gateway and installed revision, without a cluster IP (the target
//! cluster's API server allocates one).

use serde_json::Value;

use crate::objects::{EgressGatewayObjects, cluster_gateway_objects};
use crate::profile::ServiceMeshProfile;

/// Why there is nothing to render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The mesh is off.
    #[error(
        "Azure Service Mesh is not enabled for cluster {cluster}: there are no egress gateway manifests. Enable the mesh and an egress gateway first (egress mesh enable, egress mesh enable-egress-gateway)."
    )]
    MeshNotEnabled {
        /// Cluster name.
        cluster: String,
    },
    /// The mesh is on, but no egress gateway is enabled.
    #[error(
        "no egress gateway is enabled on cluster {cluster}: there are no egress gateway manifests. Enable one first (egress mesh enable-egress-gateway)."
    )]
    NoGateway {
        /// Cluster name.
        cluster: String,
    },
}

/// Every object the add-on deploys for `profile`'s enabled egress gateways, gateway by
/// gateway in profile order (ServiceAccount, Role, RoleBinding, ClusterRole,
/// ClusterRoleBinding, Service, then Deployment, HPA and PDB per revision), with `image` as
/// the gateway container's image.
pub fn gateway_manifests(
    cluster: &str,
    profile: &ServiceMeshProfile,
    image: &str,
) -> Result<Vec<Value>, ManifestError> {
    if !profile.is_enabled() {
        return Err(ManifestError::MeshNotEnabled {
            cluster: cluster.to_owned(),
        });
    }
    let mut out = Vec::new();
    for g in profile.enabled_egress_gateways() {
        out.extend(cluster_gateway_objects(&EgressGatewayObjects {
            name: &g.name,
            namespace: &g.namespace,
            gateway_configuration_name: g.gateway_configuration_name.as_deref().unwrap_or_default(),
            revisions: profile.revisions(),
            cluster_ip: "",
            image,
        }));
    }
    if out.is_empty() {
        return Err(ManifestError::NoGateway {
            cluster: cluster.to_owned(),
        });
    }
    Ok(out)
}
