//! JSON schemas of the kinds, as the API server publishes them in its OpenAPI documents (what
//! `kubectl explain` reads).
//!
//! Kubernetes kinds use the schemas `k8s-openapi` carries (named `io.k8s.api.apps.v1.Deployment`
//! and so on, with the upstream descriptions). Istio kinds wrap the typed `spec` of the model
//! (derived from the serde structs, so field names and descriptions follow them) in the usual
//! object envelope; their status is free-form, as the Istio CRDs declare it. The
//! StaticGatewayConfiguration is derived whole.

use k8s_openapi::api::{apps, autoscaling, core, discovery, policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::kinds::KindInfo;
use crate::resources::{
    destination_rule, gateway, security, service_entry, sgc, sidecar, telemetry, virtual_service,
};

pub use schemars;

/// The schema of a whole object of `kind` served at `version`, its subschemas added to
/// `generator`. Usually a `$ref` to a definition of the generator; None for a kind or version
/// without a schema.
pub fn object_schema(
    generator: &mut SchemaGenerator,
    kind: &KindInfo,
    version: &str,
) -> Option<Schema> {
    let schema = match (kind.group, version, kind.kind) {
        ("", "v1", "Namespace") => generator.subschema_for::<core::v1::Namespace>(),
        ("", "v1", "ConfigMap") => generator.subschema_for::<core::v1::ConfigMap>(),
        ("", "v1", "Secret") => generator.subschema_for::<core::v1::Secret>(),
        ("", "v1", "ServiceAccount") => generator.subschema_for::<core::v1::ServiceAccount>(),
        ("", "v1", "Service") => generator.subschema_for::<core::v1::Service>(),
        ("", "v1", "Pod") => generator.subschema_for::<core::v1::Pod>(),
        ("", "v1", "Event") => generator.subschema_for::<core::v1::Event>(),
        ("apps", "v1", "Deployment") => generator.subschema_for::<apps::v1::Deployment>(),
        ("apps", "v1", "ReplicaSet") => generator.subschema_for::<apps::v1::ReplicaSet>(),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            generator.subschema_for::<autoscaling::v2::HorizontalPodAutoscaler>()
        }
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            generator.subschema_for::<autoscaling::v1::HorizontalPodAutoscaler>()
        }
        ("policy", "v1", "PodDisruptionBudget") => {
            generator.subschema_for::<policy::v1::PodDisruptionBudget>()
        }
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            generator.subschema_for::<discovery::v1::EndpointSlice>()
        }
        ("egressgateway.kubernetes.azure.com", _, "StaticGatewayConfiguration") => {
            generator.subschema_for::<sgc::StaticGatewayConfiguration>()
        }
        ("networking.istio.io", _, "ServiceEntry") => custom::<service_entry::ServiceEntry>(
            generator,
            "ServiceEntry adds hosts outside the mesh (external services, VMs) to Istio's service registry.",
            "The hosts, ports, endpoints and resolution of the service.",
        ),
        ("networking.istio.io", _, "Gateway") => custom::<gateway::Gateway>(
            generator,
            "Gateway describes a load balancer at the edge of the mesh: the ports, hosts and TLS settings its workloads listen with.",
            "The servers (listeners) and the workloads they apply to.",
        ),
        ("networking.istio.io", _, "VirtualService") => custom::<virtual_service::VirtualService>(
            generator,
            "VirtualService defines the routing rules applied when a host is addressed: matches, routes, retries, faults, rewrites.",
            "The hosts and gateways the rules apply to, and the HTTP, TLS and TCP routes.",
        ),
        ("networking.istio.io", _, "DestinationRule") => {
            custom::<destination_rule::DestinationRule>(
                generator,
                "DestinationRule sets the policies applied to traffic for a service after routing: load balancing, connection pools, outlier detection, TLS, subsets.",
                "The host, traffic policy and subsets.",
            )
        }
        ("networking.istio.io", _, "Sidecar") => custom::<sidecar::Sidecar>(
            generator,
            "Sidecar narrows the ports, protocols and hosts a workload's proxy accepts and reaches.",
            "The workloads, ingress and egress listeners and outbound traffic policy.",
        ),
        ("security.istio.io", _, "AuthorizationPolicy") => custom::<security::AuthorizationPolicy>(
            generator,
            "AuthorizationPolicy allows, denies or audits requests to workloads by source, operation and conditions.",
            "The selected workloads, the action and the rules.",
        ),
        ("security.istio.io", _, "PeerAuthentication") => custom::<security::PeerAuthentication>(
            generator,
            "PeerAuthentication sets the mutual TLS mode workloads accept traffic with.",
            "The selected workloads and their (per-port) mutual TLS mode.",
        ),
        ("telemetry.istio.io", _, "Telemetry") => custom::<telemetry::Telemetry>(
            generator,
            "Telemetry configures tracing, metrics and access logging of workloads.",
            "The selected workloads and their tracing, metrics and access logging.",
        ),
        _ => return None,
    };
    Some(schema)
}

/// The envelope of an Istio custom object: type meta, object meta, a typed `spec` described by
/// `spec_description`, a free-form `status`.
fn custom<S: JsonSchema>(
    generator: &mut SchemaGenerator,
    description: &str,
    spec_description: &str,
) -> Schema {
    let metadata = described(
        generator.subschema_for::<ObjectMeta>(),
        "Standard object metadata: name, namespace, labels, annotations.",
    );
    let spec = described(generator.subschema_for::<S>(), spec_description);
    json_schema!({
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "The versioned schema of this representation of an object, `group/version`.",
                "type": "string",
            },
            "kind": {
                "description": "The kind of object this is, in CamelCase.",
                "type": "string",
            },
            "metadata": metadata,
            "spec": spec,
            "status": {
                "description": "Status written by controllers; any fields are kept.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            },
        },
        "required": ["spec"],
    })
}

/// `schema` with `description` set (next to a `$ref`: the generator's transforms move the
/// reference into an `allOf`).
fn described(mut schema: Schema, description: &str) -> Schema {
    schema.insert("description".into(), description.into());
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::KINDS;
    use schemars::generate::SchemaSettings;

    #[test]
    fn every_kind_and_version_has_a_schema() {
        let mut generator = SchemaSettings::openapi3().into_generator();
        for k in KINDS {
            for v in k.versions {
                assert!(
                    object_schema(&mut generator, k, v).is_some(),
                    "{} {v}",
                    k.kind
                );
            }
        }
    }

    #[test]
    fn field_names_and_descriptions_follow_serde_and_the_doc_comments() {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let _ = generator.subschema_for::<service_entry::ServiceEntry>();
        let defs = generator.take_definitions(true);
        let spec = &defs["ServiceEntrySpec"];
        assert!(
            spec["properties"]["hosts"]["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Hosts (DNS names")),
            "{spec}"
        );
        assert!(spec["properties"]["workloadSelector"].is_object(), "{spec}");
        assert!(spec["properties"].get("workload_selector").is_none());
    }
}
