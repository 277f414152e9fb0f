//! StaticGatewayConfiguration (`egressgateway.kubernetes.azure.com/v1alpha1`): the Static
//! Egress Gateway's per-configuration fixed source prefix, as kube-egress-gateway defines it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// StaticGatewayConfiguration gives the pods that use it a fixed egress source prefix through
/// a gateway node pool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StaticGatewayConfiguration {
    /// `egressgateway.kubernetes.azure.com/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `StaticGatewayConfiguration`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<StaticGatewayConfigurationSpec>,
    /// Observed state (the assigned prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StaticGatewayConfigurationStatus>,
}

/// Which route a pod's default traffic takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum DefaultRoute {
    /// Through the pod's own interface.
    #[serde(rename = "azureNetworking")]
    AzureNetworking,
    /// Through the static egress gateway (the default).
    #[serde(rename = "staticEgressGateway")]
    StaticEgressGateway,
}

/// Desired state of a StaticGatewayConfiguration: where pods' egress goes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StaticGatewayConfigurationSpec {
    /// Name of the gateway node pool (AKS: a pool of mode Gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_nodepool_name: Option<String>,
    /// Self-managed clusters: the gateway VMSS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_vmss_profile: Option<GatewayVmssProfile>,
    /// Pod default route; `staticEgressGateway` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<DefaultRoute>,
    /// Whether public IPs are provisioned (required by the CRD schema; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_public_ips: Option<bool>,
    /// Bring-your-own public IP prefix resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_prefix_id: Option<String>,
    /// CIDRs excluded from the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_cidrs: Option<Vec<String>>,
}

/// The gateway VMSS of a self-managed cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GatewayVmssProfile {
    /// Resource group of the VMSS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmss_resource_group: Option<String>,
    /// VMSS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmss_name: Option<String>,
    /// Public IP prefix size (0..31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_prefix_size: Option<i32>,
}

/// Observed state of a StaticGatewayConfiguration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StaticGatewayConfigurationStatus {
    /// The egress prefix CIDR (public mode) or comma-separated IPs (private mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ip_prefix: Option<String>,
    /// The gateway server's WireGuard profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_server_profile: Option<GatewayServerProfile>,
}

/// The gateway server's WireGuard endpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GatewayServerProfile {
    /// ILB frontend IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// LB rule port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// WireGuard public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Secret holding the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret_ref: Option<k8s_openapi::api::core::v1::ObjectReference>,
}
