//! Facts about core objects the add-on relies on: where the shared MeshConfig lives.

use k8s_openapi::api::core::v1::ConfigMap;

/// Namespace of the add-on's control plane and its shared MeshConfig.
pub const MESH_CONFIG_NAMESPACE: &str = "aks-istio-system";
/// Name prefix of the shared MeshConfig ConfigMap: `istio-shared-configmap-<revision>`.
pub const SHARED_MESH_CONFIG_PREFIX: &str = "istio-shared-configmap-";
/// Key under `data` holding the MeshConfig YAML.
pub const MESH_CONFIG_KEY: &str = "mesh";

/// The revision a shared MeshConfig ConfigMap belongs to, when `cm` is one.
pub fn shared_mesh_config_revision(cm: &ConfigMap) -> Option<&str> {
    if cm.metadata.namespace.as_deref() != Some(MESH_CONFIG_NAMESPACE) {
        return None;
    }
    cm.metadata
        .name
        .as_deref()?
        .strip_prefix(SHARED_MESH_CONFIG_PREFIX)
        .filter(|r| !r.is_empty())
}
