//! Validation with Istio's rules and messages (errors and warnings kept apart, as Istio's
//! webhook does), the CRD structural rules, and Kubernetes' metadata rules.

pub mod common;
pub mod core;
pub mod destination_rule;
pub mod gateway;
pub mod istioctl;
pub mod meta;
pub mod re2;
pub mod security;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;

use crate::diag::Report;
use crate::resources::Resource;

/// Validate a decoded object: metadata first, then the kind's own rules.
pub fn validate(resource: &Resource) -> Report {
    let mut r = Report::default();
    meta::validate_metadata(resource, &mut r);
    match resource {
        Resource::ServiceEntry(o) => service_entry::validate(o, &mut r),
        Resource::Gateway(o) => gateway::validate(o, &mut r),
        Resource::VirtualService(o) => virtual_service::validate(o, &mut r),
        Resource::DestinationRule(o) => destination_rule::validate(o, &mut r),
        Resource::Sidecar(o) => sidecar::validate(o, &mut r),
        Resource::AuthorizationPolicy(o) => security::validate_authorization_policy(o, &mut r),
        Resource::PeerAuthentication(o) => security::validate_peer_authentication(o, &mut r),
        Resource::Telemetry(o) => telemetry::validate(o, &mut r),
        Resource::StaticGatewayConfiguration(o) => core::validate_sgc(o, &mut r),
        Resource::ConfigMap(o) => core::validate_config_map(o, &mut r),
        Resource::Service(o) => core::validate_service(o, &mut r),
        Resource::Deployment(o) => core::validate_deployment(o, &mut r),
        Resource::ReplicaSet(o) => core::validate_replica_set(o, &mut r),
        Resource::Namespace(_)
        | Resource::Secret(_)
        | Resource::ServiceAccount(_)
        | Resource::Pod(_)
        | Resource::Event(_)
        | Resource::HorizontalPodAutoscaler(_)
        | Resource::PodDisruptionBudget(_)
        | Resource::EndpointSlice(_) => {}
    }
    r
}
