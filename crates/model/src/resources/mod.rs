//! Typed resources: every kind egress decodes, as one enum.
//!
//! Istio kinds are modelled field for field after their protos (so that unknown fields are
//! caught the way the API server's strict decoding catches them); Kubernetes core kinds use the
//! `k8s-openapi` types; the AKS StaticGatewayConfiguration follows kube-egress-gateway's CRD.

pub mod core;
pub mod destination_rule;
pub mod gateway;
pub mod mesh;
pub mod security;
pub mod service_entry;
pub mod sgc;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An Istio-style custom resource: type meta, object meta, a typed `spec` and a free `status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomObject<S> {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<S>,
    /// Status written by controllers; Istio CRDs preserve unknown fields here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// A decoded object of any kind egress knows.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// `networking.istio.io` ServiceEntry.
    ServiceEntry(CustomObject<service_entry::ServiceEntry>),
    /// `networking.istio.io` Gateway.
    Gateway(CustomObject<gateway::Gateway>),
    /// `networking.istio.io` VirtualService.
    VirtualService(CustomObject<virtual_service::VirtualService>),
    /// `networking.istio.io` DestinationRule.
    DestinationRule(CustomObject<destination_rule::DestinationRule>),
    /// `networking.istio.io` Sidecar.
    Sidecar(CustomObject<sidecar::Sidecar>),
    /// `security.istio.io` AuthorizationPolicy.
    AuthorizationPolicy(CustomObject<security::AuthorizationPolicy>),
    /// `security.istio.io` PeerAuthentication.
    PeerAuthentication(CustomObject<security::PeerAuthentication>),
    /// `telemetry.istio.io` Telemetry.
    Telemetry(CustomObject<telemetry::Telemetry>),
    /// `egressgateway.kubernetes.azure.com` StaticGatewayConfiguration.
    StaticGatewayConfiguration(sgc::StaticGatewayConfiguration),
    /// Core Namespace.
    Namespace(k8s_openapi::api::core::v1::Namespace),
    /// Core ConfigMap (the shared MeshConfig lives in one).
    ConfigMap(k8s_openapi::api::core::v1::ConfigMap),
    /// Core Secret.
    Secret(k8s_openapi::api::core::v1::Secret),
    /// Core ServiceAccount.
    ServiceAccount(k8s_openapi::api::core::v1::ServiceAccount),
    /// Core Service.
    Service(k8s_openapi::api::core::v1::Service),
    /// Core Pod.
    Pod(k8s_openapi::api::core::v1::Pod),
    /// `apps/v1` Deployment.
    Deployment(k8s_openapi::api::apps::v1::Deployment),
    /// `apps/v1` ReplicaSet (created by the local cluster for each Deployment revision).
    ReplicaSet(k8s_openapi::api::apps::v1::ReplicaSet),
    /// Core Event (`v1`; `events.k8s.io` is not modelled).
    Event(k8s_openapi::api::core::v1::Event),
    /// `autoscaling` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler(k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler),
    /// `policy/v1` PodDisruptionBudget.
    PodDisruptionBudget(k8s_openapi::api::policy::v1::PodDisruptionBudget),
    /// `discovery.k8s.io/v1` EndpointSlice (kept by the local cluster for Services with a
    /// selector).
    EndpointSlice(k8s_openapi::api::discovery::v1::EndpointSlice),
}

impl Resource {
    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::ServiceEntry(o) => &o.metadata,
            Resource::Gateway(o) => &o.metadata,
            Resource::VirtualService(o) => &o.metadata,
            Resource::DestinationRule(o) => &o.metadata,
            Resource::Sidecar(o) => &o.metadata,
            Resource::AuthorizationPolicy(o) => &o.metadata,
            Resource::PeerAuthentication(o) => &o.metadata,
            Resource::Telemetry(o) => &o.metadata,
            Resource::StaticGatewayConfiguration(o) => &o.metadata,
            Resource::Namespace(o) => &o.metadata,
            Resource::ConfigMap(o) => &o.metadata,
            Resource::Secret(o) => &o.metadata,
            Resource::ServiceAccount(o) => &o.metadata,
            Resource::Service(o) => &o.metadata,
            Resource::Pod(o) => &o.metadata,
            Resource::Deployment(o) => &o.metadata,
            Resource::ReplicaSet(o) => &o.metadata,
            Resource::Event(o) => &o.metadata,
            Resource::HorizontalPodAutoscaler(o) => &o.metadata,
            Resource::PodDisruptionBudget(o) => &o.metadata,
            Resource::EndpointSlice(o) => &o.metadata,
        }
    }

    /// Encode back to JSON (the form stored and printed).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            Resource::ServiceEntry(o) => serde_json::to_value(o),
            Resource::Gateway(o) => serde_json::to_value(o),
            Resource::VirtualService(o) => serde_json::to_value(o),
            Resource::DestinationRule(o) => serde_json::to_value(o),
            Resource::Sidecar(o) => serde_json::to_value(o),
            Resource::AuthorizationPolicy(o) => serde_json::to_value(o),
            Resource::PeerAuthentication(o) => serde_json::to_value(o),
            Resource::Telemetry(o) => serde_json::to_value(o),
            Resource::StaticGatewayConfiguration(o) => serde_json::to_value(o),
            Resource::Namespace(o) => serde_json::to_value(o),
            Resource::ConfigMap(o) => serde_json::to_value(o),
            Resource::Secret(o) => serde_json::to_value(o),
            Resource::ServiceAccount(o) => serde_json::to_value(o),
            Resource::Service(o) => serde_json::to_value(o),
            Resource::Pod(o) => serde_json::to_value(o),
            Resource::Deployment(o) => serde_json::to_value(o),
            Resource::ReplicaSet(o) => serde_json::to_value(o),
            Resource::Event(o) => serde_json::to_value(o),
            Resource::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
            Resource::PodDisruptionBudget(o) => serde_json::to_value(o),
            Resource::EndpointSlice(o) => serde_json::to_value(o),
        }
    }
}
