//! The resource types the mock API server serves: group, version, kind, plural, scope; and
//! the ones registered from the start.

/// One resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name in paths, e.g. `deployments`.
    pub plural: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
}

impl ResourceType {
    /// A resource type.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The types registered from the start.
pub(crate) fn builtin_types() -> Vec<ResourceType> {
    let t = ResourceType::new;
    let mut types = vec![
        t("", "v1", "Namespace", "namespaces", false),
        t("", "v1", "ConfigMap", "configmaps", true),
        t("", "v1", "Secret", "secrets", true),
        t("", "v1", "Service", "services", true),
        t("", "v1", "ServiceAccount", "serviceaccounts", true),
        t("", "v1", "Pod", "pods", true),
        t("", "v1", "Endpoints", "endpoints", true),
        t("", "v1", "Node", "nodes", false),
        t("apps", "v1", "Deployment", "deployments", true),
        t("apps", "v1", "ReplicaSet", "replicasets", true),
        t(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
        t(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        ),
        t("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        t(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
        ),
        t(
            "egressgateway.kubernetes.azure.com",
            "v1alpha1",
            "StaticGatewayConfiguration",
            "staticgatewayconfigurations",
            true,
        ),
    ];
    let istio = [
        ("networking.istio.io", "Gateway", "gateways"),
        ("networking.istio.io", "VirtualService", "virtualservices"),
        ("networking.istio.io", "DestinationRule", "destinationrules"),
        ("networking.istio.io", "ServiceEntry", "serviceentries"),
        ("networking.istio.io", "Sidecar", "sidecars"),
        ("networking.istio.io", "WorkloadEntry", "workloadentries"),
        ("networking.istio.io", "EnvoyFilter", "envoyfilters"),
        (
            "security.istio.io",
            "AuthorizationPolicy",
            "authorizationpolicies",
        ),
        (
            "security.istio.io",
            "PeerAuthentication",
            "peerauthentications",
        ),
        (
            "security.istio.io",
            "RequestAuthentication",
            "requestauthentications",
        ),
        ("telemetry.istio.io", "Telemetry", "telemetries"),
    ];
    for (group, kind, plural) in istio {
        types.push(t(group, "v1", kind, plural, true));
    }
    types
}
