//! The ManagedCluster mesh profile, shaped like the AKS REST API (`serviceMeshProfile`,
//! `networkProfile.staticEgressGatewayProfile`) so that `serde_json::to_value` gives what
//! `az aks show` prints and `jq '.serviceMeshProfile.istio.revisions[0]'` works on it.

use serde::{Deserialize, Serialize};

/// `serviceMeshProfile.mode` value for an enabled mesh.
pub const MODE_ISTIO: &str = "Istio";
/// `serviceMeshProfile.mode` value for a disabled mesh.
pub const MODE_DISABLED: &str = "Disabled";
/// Namespace an egress gateway is deployed in when none is given (az's
/// `CONST_AZURE_SERVICE_MESH_DEFAULT_EGRESS_NAMESPACE`).
pub const DEFAULT_EGRESS_NAMESPACE: &str = "aks-istio-egress";
/// Revision installed when the mesh is enabled without `--revision`. The service picks its
/// default (n-1) itself; this local emulation uses `asm-1-24`, the revision the egress how-to
/// shows.
pub const DEFAULT_REVISION: &str = "asm-1-24";
/// Revisions this local emulation supports (what `az aks mesh get-revisions` lists, with
/// the details in [`crate::revisions::CATALOGUE`]); a cluster on another revision gets az's
/// "no longer supported" warning.
pub const SUPPORTED_REVISIONS: &[&str] = &["asm-1-24", "asm-1-25", "asm-1-26"];

/// A managed cluster, as far as the mesh add-on is concerned (`az aks show` output shape).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    /// Cluster name.
    #[serde(default)]
    pub name: String,
    /// Resource group.
    #[serde(default)]
    pub resource_group: String,
    /// Azure location.
    #[serde(default)]
    pub location: String,
    /// The service mesh profile (`null` when never configured, as az prints it).
    #[serde(default)]
    pub service_mesh_profile: Option<ServiceMeshProfile>,
    /// The network profile.
    #[serde(default)]
    pub network_profile: Option<NetworkProfile>,
}

impl ManagedCluster {
    /// The profile the az decorator starts from: a copy of the cluster's, or `mode: Disabled`.
    pub fn mesh_profile_or_disabled(&self) -> ServiceMeshProfile {
        self.service_mesh_profile.clone().unwrap_or_default()
    }

    /// Whether Static Egress Gateway is enabled on the cluster.
    pub fn static_egress_gateway_enabled(&self) -> bool {
        self.network_profile
            .as_ref()
            .and_then(|n| n.static_egress_gateway_profile.as_ref())
            .is_some_and(|p| p.enabled)
    }
}

/// Mesh mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MeshMode {
    /// The Istio add-on is enabled.
    Istio,
    /// The mesh is off.
    #[default]
    Disabled,
}

impl MeshMode {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            MeshMode::Istio => MODE_ISTIO,
            MeshMode::Disabled => MODE_DISABLED,
        }
    }
}

/// `serviceMeshProfile`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMeshProfile {
    /// `Istio` or `Disabled` (required by the API).
    pub mode: MeshMode,
    /// Istio settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioServiceMesh>,
}

impl ServiceMeshProfile {
    /// Whether the mesh is on.
    pub fn is_enabled(&self) -> bool {
        self.mode == MeshMode::Istio
    }

    /// The installed revisions (one normally, two during a canary upgrade).
    pub fn revisions(&self) -> &[String] {
        self.istio.as_ref().map_or(&[], |i| i.revisions.as_slice())
    }

    /// All egress gateway entries (enabled or not).
    pub fn egress_gateways(&self) -> &[IstioEgressGateway] {
        self.istio
            .as_ref()
            .and_then(|i| i.components.as_ref())
            .map_or(&[], |c| c.egress_gateways.as_slice())
    }

    /// The egress gateway entries with `enabled: true`.
    pub fn enabled_egress_gateways(&self) -> impl Iterator<Item = &IstioEgressGateway> {
        self.egress_gateways().iter().filter(|g| g.enabled)
    }
}

/// `serviceMeshProfile.istio`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioServiceMesh {
    /// Gateways and proxy redirection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<IstioComponents>,
    /// Plugin CA settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<IstioCertificateAuthority>,
    /// Control-plane revisions (`asm-X-Y`); two only during a canary upgrade.
    #[serde(default)]
    pub revisions: Vec<String>,
}

/// `serviceMeshProfile.istio.components`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioComponents {
    /// Ingress gateways (at most one External and one Internal).
    #[serde(default)]
    pub ingress_gateways: Vec<IstioIngressGateway>,
    /// Egress gateways; disabled ones stay listed with `enabled: false`.
    #[serde(default)]
    pub egress_gateways: Vec<IstioEgressGateway>,
    /// `InitContainers` or `CNIChaining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_redirection_mechanism: Option<ProxyRedirectionMechanism>,
}

/// Ingress gateway mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IngressGatewayMode {
    /// Load balancer with an external IP.
    External,
    /// Load balancer with an internal IP.
    Internal,
}

/// One ingress gateway entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressGateway {
    /// External or Internal.
    pub mode: IngressGatewayMode,
    /// Whether it is deployed.
    pub enabled: bool,
}

/// One egress gateway entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressGateway {
    /// Whether it is deployed.
    pub enabled: bool,
    /// Gateway name (Service name; Deployment `<name>-<revision>`).
    pub name: String,
    /// Namespace; the service defaults it to `aks-istio-egress`.
    #[serde(default = "default_egress_namespace")]
    pub namespace: String,
    /// The StaticGatewayConfiguration (same namespace) its pods use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_configuration_name: Option<String>,
}

fn default_egress_namespace() -> String {
    DEFAULT_EGRESS_NAMESPACE.to_owned()
}

/// Proxy redirection mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyRedirectionMechanism {
    /// istio-init containers.
    InitContainers,
    /// The Istio CNI plugin.
    #[serde(rename = "CNIChaining")]
    CniChaining,
}

impl ProxyRedirectionMechanism {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyRedirectionMechanism::InitContainers => "InitContainers",
            ProxyRedirectionMechanism::CniChaining => "CNIChaining",
        }
    }
}

/// `serviceMeshProfile.istio.certificateAuthority`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioCertificateAuthority {
    /// Plugin CA in Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<IstioPluginCertificateAuthority>,
}

/// Plugin CA object names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioPluginCertificateAuthority {
    /// Key Vault resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_id: Option<String>,
    /// Intermediate certificate object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_object_name: Option<String>,
    /// Intermediate key object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_object_name: Option<String>,
    /// Root certificate object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cert_object_name: Option<String>,
    /// Certificate chain object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain_object_name: Option<String>,
}

/// `networkProfile` (the part the add-on depends on).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// Static Egress Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_egress_gateway_profile: Option<StaticEgressGatewayProfile>,
}

/// `networkProfile.staticEgressGatewayProfile`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticEgressGatewayProfile {
    /// Whether the feature is on.
    pub enabled: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_shape_matches_the_api() {
        let mc = ManagedCluster {
            name: "c".into(),
            resource_group: "rg".into(),
            location: "local".into(),
            service_mesh_profile: Some(ServiceMeshProfile {
                mode: MeshMode::Istio,
                istio: Some(IstioServiceMesh {
                    components: Some(IstioComponents {
                        ingress_gateways: vec![],
                        egress_gateways: vec![IstioEgressGateway {
                            enabled: true,
                            name: "eg".into(),
                            namespace: DEFAULT_EGRESS_NAMESPACE.into(),
                            gateway_configuration_name: Some("sgc".into()),
                        }],
                        proxy_redirection_mechanism: Some(ProxyRedirectionMechanism::CniChaining),
                    }),
                    certificate_authority: None,
                    revisions: vec!["asm-1-24".into()],
                }),
            }),
            network_profile: Some(NetworkProfile {
                static_egress_gateway_profile: Some(StaticEgressGatewayProfile { enabled: true }),
            }),
        };
        let v = serde_json::to_value(&mc).unwrap();
        assert_eq!(v["resourceGroup"], "rg");
        assert_eq!(v["serviceMeshProfile"]["mode"], "Istio");
        assert_eq!(v["serviceMeshProfile"]["istio"]["revisions"][0], "asm-1-24");
        let eg = &v["serviceMeshProfile"]["istio"]["components"]["egressGateways"][0];
        assert_eq!(eg["gatewayConfigurationName"], "sgc");
        assert_eq!(eg["namespace"], "aks-istio-egress");
        assert_eq!(eg["enabled"], true);
        assert_eq!(
            v["serviceMeshProfile"]["istio"]["components"]["proxyRedirectionMechanism"],
            "CNIChaining"
        );
        assert_eq!(
            v["networkProfile"]["staticEgressGatewayProfile"]["enabled"],
            true
        );
        let back: ManagedCluster = serde_json::from_value(v).unwrap();
        assert_eq!(back, mc);
        assert!(back.static_egress_gateway_enabled());
    }

    #[test]
    fn missing_namespace_defaults_and_null_profile_is_disabled() {
        let eg: IstioEgressGateway =
            serde_json::from_value(serde_json::json!({"enabled": true, "name": "x"})).unwrap();
        assert_eq!(eg.namespace, "aks-istio-egress");
        let mc = ManagedCluster::default();
        assert_eq!(
            serde_json::to_value(&mc).unwrap()["serviceMeshProfile"],
            serde_json::Value::Null
        );
        assert_eq!(mc.mesh_profile_or_disabled().mode, MeshMode::Disabled);
        assert_eq!(MeshMode::Disabled.as_str(), "Disabled");
    }
}
