//! The service registry as a gateway sees it: one service per ServiceEntry host and per
//! Kubernetes Service (`<name>.<ns>.svc.cluster.local`), with ports, location and exportTo.

use egress_model::resources::mesh::MeshConfig;
use egress_model::resources::service_entry::{Location, ServiceEntry};
use egress_model::validate::common::Protocol;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::Inputs;
use crate::ctx::{name_ns, order_key, sorted};
use crate::host::{DOMAIN_SUFFIX, visible};

/// Annotation carrying a Kubernetes Service's exportTo (comma-separated).
const SERVICE_EXPORT_TO: &str = "networking.istio.io/exportTo";

/// Where a service's endpoint port comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A fixed number.
    Number(u16),
    /// A named container port (Kubernetes `targetPort: name`).
    Named(String),
}

/// One port of a service.
#[derive(Debug, Clone)]
pub(crate) struct SvcPort {
    /// The service port.
    pub number: u16,
    /// The port name.
    pub name: String,
    /// The protocol (from `protocol`, `appProtocol` or the name prefix).
    pub protocol: Protocol,
    /// The endpoint port.
    pub target: Target,
}

/// What defined a service.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A ServiceEntry.
    Entry(&'a ServiceEntry),
    /// A Kubernetes Service.
    Kube(&'a Service),
}

/// A service of the registry.
#[derive(Clone)]
pub(crate) struct Svc<'a> {
    /// The hostname.
    pub host: String,
    /// The defining object's namespace.
    pub namespace: &'a str,
    /// Ports.
    pub ports: Vec<SvcPort>,
    /// MESH_EXTERNAL ServiceEntry.
    pub external: bool,
    /// exportTo as written (empty: the mesh default).
    export_to: Vec<String>,
    /// The defining object.
    pub source: Source<'a>,
}

impl Svc<'_> {
    /// The port numbered `port`.
    pub fn port(&self, port: u16) -> Option<&SvcPort> {
        self.ports.iter().find(|p| p.number == port)
    }

    /// A Kubernetes ExternalName Service's target name (Istio treats these as aliases).
    pub fn external_name(&self) -> Option<&str> {
        match self.source {
            Source::Kube(s) => s
                .spec
                .as_ref()
                .filter(|sp| sp.type_.as_deref() == Some("ExternalName"))
                .and_then(|sp| sp.external_name.as_deref())
                .filter(|n| !n.is_empty()),
            Source::Entry(_) => None,
        }
    }
}

/// All services, oldest definition first.
pub(crate) struct Registry<'a> {
    services: Vec<Svc<'a>>,
    defaults: Vec<String>,
}

impl<'a> Registry<'a> {
    /// Build the registry from ServiceEntries and Services.
    pub fn new(inputs: &'a Inputs, mesh: &MeshConfig) -> Registry<'a> {
        let mut services = Vec::new();
        let mut kube: Vec<&Service> = inputs.services.iter().collect();
        kube.sort_by(|a, b| order_key(&a.metadata).cmp(&order_key(&b.metadata)));
        for s in kube {
            if let Some(svc) = from_service(s) {
                services.push(svc);
            }
        }
        for (meta, se) in sorted(&inputs.service_entries) {
            let (_, ns) = name_ns(meta);
            let ports: Vec<SvcPort> = se
                .ports()
                .iter()
                .filter_map(|p| {
                    let number = u16::try_from(p.number()).ok().filter(|n| *n != 0)?;
                    let target = u16::try_from(p.target_port_or_number())
                        .ok()
                        .filter(|n| *n != 0)
                        .unwrap_or(number);
                    Some(SvcPort {
                        number,
                        name: p.name().to_owned(),
                        protocol: Protocol::parse(p.protocol()),
                        target: Target::Number(target),
                    })
                })
                .collect();
            for host in se.hosts() {
                services.push(Svc {
                    host: host.clone(),
                    namespace: ns,
                    ports: ports.clone(),
                    external: se.location_or_default() == Location::MeshExternal,
                    export_to: se.export_to().to_vec(),
                    source: Source::Entry(se),
                });
            }
        }
        Registry {
            services,
            defaults: mesh.default_service_export_to.clone().unwrap_or_default(),
        }
    }

    /// Every service visible from `client`, oldest definition first (several may define one
    /// host; [`Registry::lookup`] picks among them).
    pub fn visible_from<'s>(&'s self, client: &'s str) -> impl Iterator<Item = &'s Svc<'a>> + 's {
        self.services
            .iter()
            .filter(move |s| visible(&s.export_to, &self.defaults, s.namespace, client))
    }

    /// `ServiceForHostname`: the service named `host` visible from `client`, preferring one
    /// defined in `prefer` (the VirtualService's namespace, when given), then in `client`,
    /// then the oldest.
    pub fn lookup(&self, host: &str, client: &str, prefer: Option<&str>) -> Option<&Svc<'a>> {
        let candidates: Vec<&Svc<'a>> = self
            .services
            .iter()
            .filter(|s| s.host == host)
            .filter(|s| visible(&s.export_to, &self.defaults, s.namespace, client))
            .collect();
        prefer
            .and_then(|ns| candidates.iter().find(|s| s.namespace == ns))
            .or_else(|| candidates.iter().find(|s| s.namespace == client))
            .or_else(|| candidates.first())
            .copied()
    }
}

/// A Kubernetes Service as a registry service.
fn from_service(s: &Service) -> Option<Svc<'_>> {
    let (name, ns) = name_ns(&s.metadata);
    if name.is_empty() {
        return None;
    }
    let spec = s.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") != "UDP")
        .filter_map(|p| {
            let number = u16::try_from(p.port).ok().filter(|n| *n != 0)?;
            let target = match &p.target_port {
                Some(IntOrString::Int(n)) => {
                    Target::Number(u16::try_from(*n).ok().filter(|n| *n != 0).unwrap_or(number))
                }
                Some(IntOrString::String(n)) if !n.is_empty() => Target::Named(n.clone()),
                _ => Target::Number(number),
            };
            let port_name = p.name.clone().unwrap_or_default();
            Some(SvcPort {
                number,
                protocol: kube_protocol(&port_name, p.app_protocol.as_deref()),
                name: port_name,
                target,
            })
        })
        .collect();
    let export_to = s
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SERVICE_EXPORT_TO))
        .map(|v| {
            v.split(',')
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(Svc {
        host: format!("{name}.{ns}.svc.{DOMAIN_SUFFIX}"),
        namespace: ns,
        ports,
        external: false,
        export_to,
        source: Source::Kube(s),
    })
}

/// Istio's protocol of a Kubernetes Service port: `appProtocol`, else the name's prefix
/// (`http`, `http-web`, `grpc-api`, ...).
fn kube_protocol(name: &str, app_protocol: Option<&str>) -> Protocol {
    if let Some(app) = app_protocol {
        let p = match app {
            "kubernetes.io/h2c" => Protocol::Http2,
            "kubernetes.io/ws" | "kubernetes.io/wss" => Protocol::Http,
            other => Protocol::parse(other),
        };
        if p != Protocol::Unsupported {
            return p;
        }
    }
    let prefix = name.split_once('-').map_or(name, |(p, _)| p);
    Protocol::parse(prefix)
}

/// HTTP/2 protocols (`IsHTTP2`).
pub(crate) fn is_http2(p: Protocol) -> bool {
    matches!(p, Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb)
}
