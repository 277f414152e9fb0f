//! The compilation context: the gateway instance, the inputs in Istio's order (oldest first),
//! VirtualServices with their names resolved, the service registry, the DestinationRule index
//! and the warnings collected on the way.

use std::cell::RefCell;
use std::collections::BTreeMap;

use egress_model::resources::CustomObject;
use egress_model::resources::mesh::MeshConfig;
use egress_model::resources::virtual_service::VirtualService;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::Inputs;
use crate::destination_rule::DrIndex;
use crate::host::{resolve_gateway, resolve_short};
use crate::registry::Registry;
use crate::snapshot::GatewayIdentity;

/// Istio's configuration order: creation time, then name, then namespace.
pub(crate) fn order_key(meta: &ObjectMeta) -> (Option<&Time>, &str, &str) {
    (
        meta.creation_timestamp.as_ref(),
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
    )
}

/// The objects of one kind that have a spec, oldest first.
pub(crate) fn sorted<S>(objects: &[CustomObject<S>]) -> Vec<(&ObjectMeta, &S)> {
    let mut out: Vec<(&ObjectMeta, &S)> = objects
        .iter()
        .filter_map(|o| o.spec.as_ref().map(|s| (&o.metadata, s)))
        .collect();
    out.sort_by(|a, b| order_key(a.0).cmp(&order_key(b.0)));
    out
}

/// Name and namespace of an object (empty when unset).
pub(crate) fn name_ns(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
    )
}

/// How a VirtualService is visible, for Istio's lookup order (private, exported, public).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    Private,
    Exported,
    Public,
}

/// A VirtualService with its hosts and gateways resolved as Istio resolves them.
pub(crate) struct Vs<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace`.
    pub ns: &'a str,
    /// The spec.
    pub spec: &'a VirtualService,
    /// Hosts, short names made FQDNs.
    pub hosts: Vec<String>,
    /// Gateways as `ns/name` (or `mesh`).
    pub gateways: Vec<String>,
    /// How it reaches the gateway's namespace; `None` = not visible.
    reach: Option<Reach>,
}

impl Vs<'_> {
    /// A destination host, short name resolved in the VirtualService's namespace.
    pub fn dest_host(&self, host: &str) -> String {
        resolve_short(host, self.ns)
    }

    /// Match-level gateways resolved; empty when the match names none.
    pub fn match_gateways(&self, gateways: &[String]) -> Vec<String> {
        gateways
            .iter()
            .map(|g| resolve_gateway(g, self.ns))
            .collect()
    }
}

/// Everything a compilation reads, plus its warnings.
pub(crate) struct Ctx<'a> {
    /// The gateway instance compiled for.
    pub id: &'a GatewayIdentity,
    /// All inputs.
    pub inputs: &'a Inputs,
    /// The effective MeshConfig.
    pub mesh: &'a MeshConfig,
    /// Services by host.
    pub registry: Registry<'a>,
    /// DestinationRules.
    pub drs: DrIndex<'a>,
    /// Compiling for a sidecar (Istio's sidecar rules where they differ from a gateway's:
    /// ServiceEntries with resolution NONE pass through to the original destination).
    pub sidecar: bool,
    /// VirtualServices, oldest first.
    vs: Vec<Vs<'a>>,
    warnings: RefCell<Vec<String>>,
}

impl<'a> Ctx<'a> {
    /// Index the inputs for `id`.
    pub fn new(id: &'a GatewayIdentity, inputs: &'a Inputs, mesh: &'a MeshConfig) -> Ctx<'a> {
        let vs_defaults = mesh
            .default_virtual_service_export_to
            .clone()
            .unwrap_or_default();
        let vs = sorted(&inputs.virtual_services)
            .into_iter()
            .filter(|(_, spec)| !spec.hosts().is_empty())
            .map(|(meta, spec)| {
                let (name, ns) = name_ns(meta);
                Vs {
                    name,
                    ns,
                    spec,
                    hosts: spec.hosts().iter().map(|h| resolve_short(h, ns)).collect(),
                    gateways: spec
                        .gateways_or_mesh()
                        .into_iter()
                        .map(|g| resolve_gateway(g, ns))
                        .collect(),
                    reach: reach(spec.export_to(), &vs_defaults, ns, &id.namespace),
                }
            })
            .collect();
        Ctx {
            id,
            inputs,
            mesh,
            registry: Registry::new(inputs, mesh),
            drs: DrIndex::new(inputs),
            sidecar: false,
            vs,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// Record a non-fatal problem.
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }

    /// The warnings recorded so far.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.borrow_mut())
    }

    /// `VirtualServicesForGateway`: VirtualServices bound to `gateway` (`ns/name`) and visible
    /// in the gateway's namespace: namespace-private ones, then those exported to the
    /// namespace by name, then public ones, each oldest first.
    pub fn vs_for_gateway(&self, gateway: &str) -> Vec<&Vs<'a>> {
        let mut out: Vec<(Reach, usize, &Vs<'a>)> = self
            .vs
            .iter()
            .enumerate()
            .filter(|(_, v)| v.gateways.iter().any(|g| g == gateway))
            .filter_map(|(i, v)| v.reach.map(|r| (r, i, v)))
            .collect();
        out.sort_by_key(|(r, i, _)| (*r, *i));
        out.into_iter().map(|(_, _, v)| v).collect()
    }

    /// Pods by namespace, for endpoint lookups.
    pub fn pods_in<'b>(
        &'b self,
        namespace: &'b str,
    ) -> impl Iterator<Item = &'a k8s_openapi::api::core::v1::Pod> + 'b {
        self.inputs
            .pods
            .iter()
            .filter(move |p| p.metadata.namespace.as_deref() == Some(namespace))
    }

    /// A Secret in the gateway's namespace.
    pub fn secret(&self, name: &str) -> Option<&'a k8s_openapi::api::core::v1::Secret> {
        self.inputs.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref() == Some(self.id.namespace.as_str())
        })
    }

    /// The gateway pod's labels.
    pub fn labels(&self) -> &'a BTreeMap<String, String> {
        &self.id.labels
    }
}

/// Istio's VirtualService index: `*` is public; `.` or the own namespace is private; other
/// names export to those namespaces. The mesh default only counts `.` and `*`.
fn reach(export_to: &[String], defaults: &[String], owner: &str, client: &str) -> Option<Reach> {
    if export_to.is_empty() {
        if defaults.iter().any(|d| d == ".") {
            return (owner == client).then_some(Reach::Private);
        }
        if defaults.is_empty() || defaults.iter().any(|d| d == "*") {
            return Some(Reach::Public);
        }
        return None;
    }
    if export_to.iter().any(|e| e == "*") {
        return Some(Reach::Public);
    }
    if export_to.iter().any(|e| e == "~") {
        return None;
    }
    if owner == client && export_to.iter().any(|e| e == "." || e == owner) {
        return Some(Reach::Private);
    }
    if owner != client && export_to.iter().any(|e| e == client) {
        return Some(Reach::Exported);
    }
    None
}
