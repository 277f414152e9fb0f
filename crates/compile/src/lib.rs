//! Resources to snapshots: the pure function from the cluster's Istio objects to the one
//! immutable [`snapshot::Snapshot`] a gateway instance serves (listeners, filter chains, route
//! tables, upstream clusters, TLS settings, access-log settings), following Istio's gateway
//! translation (`istio-egress.md` §3.5). No I/O: table-tested.
//!
//! [`compile`] runs in four steps: select and merge the Gateways whose selector matches the
//! instance (module `gateways`); build a listener per target port with route tables from the
//! bound VirtualServices (`http`, `routes`) or SNI filter chains (`chains`); build a cluster
//! for every cluster name used (`clusters`, with `destination_rule` policies and `endpoints`);
//! and settle access logging (`access_log`). Anything Istio would skip or reject is skipped
//! too and reported in [`snapshot::Snapshot::warnings`].
//!
//! [`compile_sidecar`] is the same translation for a sidecar's outbound traffic (module
//! `sidecar`): the [`snapshot::SidecarSnapshot`] of one workload.

mod access_log;
pub mod authz;
mod chains;
mod clusters;
mod ctx;
mod destination_rule;
mod endpoints;
mod gateways;
mod host;
mod http;
mod listeners;
mod registry;
mod retry;
mod routes;
mod secrets;
pub mod sidecar;

use std::collections::BTreeMap;
use std::time::Duration;

use egress_model::Resource;
use egress_model::resources::CustomObject;
use egress_model::resources::core::{MESH_CONFIG_KEY, shared_mesh_config_revision};
use egress_model::resources::destination_rule::DestinationRule;
use egress_model::resources::gateway::Gateway;
use egress_model::resources::mesh::{MeshConfig, NormalizationType};
use egress_model::resources::security::AuthorizationPolicy;
use egress_model::resources::service_entry::ServiceEntry;
use egress_model::resources::sidecar::Sidecar;
use egress_model::resources::telemetry::Telemetry;
use egress_model::resources::virtual_service::VirtualService;
use egress_model::validate::common::parse_go_duration;
use egress_model::validate::core::parse_mesh_config;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};

pub use egress_snapshot::sidecar_view;
pub use egress_snapshot::snapshot;
pub use sidecar::compile_sidecar;
pub use snapshot::{GatewayIdentity, Snapshot};

/// The objects a gateway's configuration is compiled from (all namespaces, already valid).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Gateways.
    pub gateways: Vec<CustomObject<Gateway>>,
    /// VirtualServices.
    pub virtual_services: Vec<CustomObject<VirtualService>>,
    /// DestinationRules.
    pub destination_rules: Vec<CustomObject<DestinationRule>>,
    /// ServiceEntries.
    pub service_entries: Vec<CustomObject<ServiceEntry>>,
    /// Kubernetes Services.
    pub services: Vec<Service>,
    /// Pods (endpoints of Services).
    pub pods: Vec<Pod>,
    /// Secrets (`credentialName`; only the gateway's namespace is read).
    pub secrets: Vec<Secret>,
    /// The effective MeshConfig, used when [`Inputs::mesh_configs`] has none for the
    /// instance's revision.
    pub mesh: MeshConfig,
    /// Telemetries (access logging).
    pub telemetries: Vec<CustomObject<Telemetry>>,
    /// Shared MeshConfigs by revision (`istio-shared-configmap-<revision>` in
    /// `aks-istio-system`); [`compile`] uses the one of the instance's revision.
    pub mesh_configs: BTreeMap<String, MeshConfig>,
    /// Sidecar resources (a workload's egress scope and outbound traffic policy; read by
    /// [`compile_sidecar`] only).
    pub sidecars: Vec<CustomObject<Sidecar>>,
    /// AuthorizationPolicies (those in the instance's namespace or the root namespace that
    /// select it are enforced; see [`authz`]).
    pub authorization_policies: Vec<CustomObject<AuthorizationPolicy>>,
}

impl Inputs {
    /// The MeshConfig for a control-plane revision: the shared one of that revision, else
    /// [`Inputs::mesh`].
    pub fn mesh_for(&self, revision: Option<&str>) -> &MeshConfig {
        revision
            .and_then(|r| self.mesh_configs.get(r))
            .unwrap_or(&self.mesh)
    }
}

/// Whether the compiler reads objects of this resource's kind. The match is exhaustive (no
/// wildcard), so a new kind in the model cannot be added without deciding here whether
/// gateways and sidecars consume it; [`INPUT_KINDS`] is checked against it by a test.
pub fn consumes(resource: &Resource) -> bool {
    match resource {
        Resource::Gateway(_)
        | Resource::VirtualService(_)
        | Resource::DestinationRule(_)
        | Resource::ServiceEntry(_)
        | Resource::Sidecar(_)
        | Resource::AuthorizationPolicy(_)
        | Resource::Telemetry(_)
        | Resource::Service(_)
        | Resource::Pod(_)
        | Resource::Secret(_)
        | Resource::ConfigMap(_) => true,
        Resource::PeerAuthentication(_)
        | Resource::StaticGatewayConfiguration(_)
        | Resource::Namespace(_)
        | Resource::ServiceAccount(_)
        | Resource::Deployment(_)
        | Resource::ReplicaSet(_)
        | Resource::Event(_)
        | Resource::HorizontalPodAutoscaler(_)
        | Resource::PodDisruptionBudget(_)
        | Resource::EndpointSlice(_) => false,
    }
}

/// The kinds (group, kind) a configuration source must read for [`compile`] and
/// [`compile_sidecar`]: exactly those [`consumes`] accepts (pinned by a test, so a source
/// can never silently miss a kind the compiler reads).
pub const INPUT_KINDS: &[(&str, &str)] = &[
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "Sidecar"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("telemetry.istio.io", "Telemetry"),
    ("", "Service"),
    ("", "Pod"),
    ("", "Secret"),
    ("", "ConfigMap"),
];

/// Sort resources into [`Inputs`]. Shared MeshConfig ConfigMaps are parsed into
/// [`Inputs::mesh_configs`]; [`Inputs::mesh`] is the only one when exactly one exists, else
/// Istio's defaults. Kinds the compiler does not read are dropped.
pub fn inputs_from_resources(resources: impl IntoIterator<Item = Resource>) -> Inputs {
    let mut out = Inputs::default();
    for r in resources {
        match r {
            Resource::Gateway(o) => out.gateways.push(o),
            Resource::VirtualService(o) => out.virtual_services.push(o),
            Resource::DestinationRule(o) => out.destination_rules.push(o),
            Resource::ServiceEntry(o) => out.service_entries.push(o),
            Resource::Telemetry(o) => out.telemetries.push(o),
            Resource::Service(o) => out.services.push(o),
            Resource::Pod(o) => out.pods.push(o),
            Resource::Secret(o) => out.secrets.push(o),
            Resource::Sidecar(o) => out.sidecars.push(o),
            Resource::AuthorizationPolicy(o) => out.authorization_policies.push(o),
            Resource::ConfigMap(cm) => {
                let Some(rev) = shared_mesh_config_revision(&cm) else {
                    continue;
                };
                let text = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(MESH_CONFIG_KEY))
                    .map(String::as_str)
                    .unwrap_or_default();
                if let Ok((mesh, _)) = parse_mesh_config(text) {
                    out.mesh_configs.insert(rev.to_owned(), mesh);
                }
            }
            _ => {}
        }
    }
    if out.mesh_configs.len() == 1
        && let Some(m) = out.mesh_configs.values().next()
    {
        out.mesh = m.clone();
    }
    out
}

/// Compile the snapshot gateway instance `id` serves from `inputs`, stamped `version`.
/// Pure and deterministic: the same inputs give an equal snapshot.
pub fn compile(id: &GatewayIdentity, inputs: &Inputs, version: u64) -> Snapshot {
    let mesh_config = inputs.mesh_for(id.revision.as_deref());
    let ctx = ctx::Ctx::new(id, inputs, mesh_config);
    let mesh = mesh_settings(&ctx);
    let listeners = listeners::build(&ctx);
    let clusters = clusters::build(&ctx, &listeners, mesh.connect_timeout);
    let access_log = access_log::build(&ctx);
    let authz = authz::build(&ctx);
    Snapshot {
        version,
        listeners,
        clusters,
        access_log,
        mesh,
        authz,
        warnings: ctx.take_warnings(),
        // A gateway's snapshot: no sidecar plan.
        sidecar: None,
    }
}

/// Mesh-wide settings, Istio's defaults where unset or unreadable.
fn mesh_settings(ctx: &ctx::Ctx<'_>) -> snapshot::MeshSettings {
    let defaults = snapshot::MeshSettings::default();
    let duration = |what: &str, value: &str, default: Duration| match parse_go_duration(value) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            ctx.warn(format!(
                "MeshConfig {what} {value:?} is not a positive duration; {default:?} used"
            ));
            default
        }
    };
    snapshot::MeshSettings {
        trust_domain: ctx.mesh.trust_domain().to_owned(),
        connect_timeout: duration(
            "connectTimeout",
            ctx.mesh.connect_timeout(),
            defaults.connect_timeout,
        ),
        dns_refresh_rate: duration(
            "dnsRefreshRate",
            ctx.mesh.dns_refresh_rate(),
            defaults.dns_refresh_rate,
        ),
        path_normalization: match ctx.mesh.path_normalization() {
            NormalizationType::None => snapshot::PathNormalization::None,
            NormalizationType::Default | NormalizationType::Base => {
                snapshot::PathNormalization::Base
            }
            NormalizationType::MergeSlashes => snapshot::PathNormalization::MergeSlashes,
            NormalizationType::DecodeAndMergeSlashes => {
                snapshot::PathNormalization::DecodeAndMergeSlashes
            }
        },
    }
}
