//! A sidecar's outbound configuration: [`compile_sidecar`] turns the cluster's objects into
//! the [`SidecarSnapshot`] of one workload, following Istio's sidecar translation
//! (`istio-egress.md` §3.1-§3.4).
//!
//! Steps: pick the Sidecar resource that applies and the outbound traffic policy (module
//! `scope`); list the registry services the workload sees (exportTo, then the Sidecar's
//! `egress[].hosts`) and the VirtualServices bound to `mesh`; for every service port decide
//! how the port is served and build its HTTP route table (module `http`), SNI routes or TCP
//! route (module `l4`); then build every cluster used with the gateway's cluster builder
//! (DestinationRule policies, subsets, TLS origination including ISTIO_MUTUAL to an egress
//! gateway), plus `PassthroughCluster` and `BlackHoleCluster`.
//!
//! The snapshot models Istio's `0.0.0.0_<port>` listeners (services without a VIP, the usual
//! shape of an external ServiceEntry): one [`OutboundPort`] per port number. Where Istio would
//! serve one port several ways, one is chosen:
//! - A port with HTTP-family services (HTTP, HTTP2, gRPC) is an HTTP port; otherwise a port
//!   with TLS services (HTTPS, TLS) is a TLS port; otherwise a port with TCP-family services
//!   is a TCP port; a port whose services all leave the protocol to detection (no protocol,
//!   unrecognised port name) is an HTTP port, as Istio builds virtual hosts for them. Services
//!   of a port that is served otherwise are not routed and are reported; Istio sniffs such
//!   ports and keeps both kinds of filter chain.
//! - A TCP port carries the first service's route (Istio: one wins among services without
//!   addresses); Kubernetes Services, which have cluster IPs in Istio, are treated the same.
//! - A Sidecar egress listener's port `protocol` overrides the services' protocols.

mod http;
mod l4;
mod scope;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use egress_model::validate::common::Protocol;

use crate::Inputs;
use crate::clusters::cluster;
use crate::ctx::{Ctx, Vs};
use crate::host::MESH;
use crate::registry::Svc;
use crate::snapshot::{
    BLACKHOLE_CLUSTER, Cluster, Discovery, LbPolicy, OutboundPolicy, OutboundPort,
    PASSTHROUGH_CLUSTER, PoolSettings, RouteAction, SidecarSnapshot, WorkloadIdentity,
};

/// How a port is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Tls,
    Tcp,
}

/// The kind a protocol asks for; `None` = left to detection.
fn kind_of(p: Protocol) -> Option<Kind> {
    if p.is_http() {
        Some(Kind::Http)
    } else if p.is_tls() {
        Some(Kind::Tls)
    } else if p.is_tcp() {
        Some(Kind::Tcp)
    } else {
        None
    }
}

/// Compile what the sidecar of workload `id` (namespace, pod labels, service account,
/// revision) serves for outbound traffic, stamped `version`. Pure and deterministic.
pub fn compile_sidecar(id: &WorkloadIdentity, inputs: &Inputs, version: u64) -> SidecarSnapshot {
    let mesh_config = inputs.mesh_for(id.revision.as_deref());
    let mut ctx = Ctx::new(id, inputs, mesh_config);
    ctx.sidecar = true;
    let mesh = crate::mesh_settings(&ctx);
    let scope = scope::select(&ctx);
    let outbound = scope::outbound_policy(&ctx, &scope);
    let ports = ports(&ctx, &scope, outbound);
    let clusters = clusters(&ctx, &ports, mesh.connect_timeout);
    let access_log = crate::access_log::build(&ctx);
    let mut seen = BTreeSet::new();
    let warnings = ctx
        .take_warnings()
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect();
    SidecarSnapshot {
        version,
        outbound,
        ports,
        clusters,
        access_log,
        mesh,
        warnings,
    }
}

/// The registry as the workload sees it: one service per host (the definition Istio picks
/// for the workload's namespace), ExternalName aliases left out.
fn registry_services<'c, 'a>(ctx: &'c Ctx<'a>) -> Vec<&'c Svc<'a>> {
    let ns = ctx.id.namespace.as_str();
    let mut hosts: Vec<&str> = Vec::new();
    for s in ctx.registry.visible_from(ns) {
        if !hosts.contains(&s.host.as_str()) {
            hosts.push(&s.host);
        }
    }
    hosts
        .into_iter()
        .filter_map(|h| ctx.registry.lookup(h, ns, None))
        .filter(|s| s.external_name().is_none())
        .collect()
}

/// Every port of every service in scope, served as its services' protocols decide.
fn ports(
    ctx: &Ctx<'_>,
    scope: &scope::Scope<'_>,
    policy: OutboundPolicy,
) -> BTreeMap<u16, OutboundPort> {
    let services = registry_services(ctx);
    let mesh_vs = ctx.vs_for_gateway(MESH);
    let numbers: BTreeSet<u16> = services
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.number))
        .collect();
    let mut out = BTreeMap::new();
    for port in numbers {
        let Some(listener) = scope.listener_for(port) else {
            continue;
        };
        let on_port: Vec<(&Svc<'_>, Option<Kind>)> = services
            .iter()
            .filter(|s| listener.imports(s.namespace, &s.host))
            .filter_map(|s| {
                let p = listener.protocol.unwrap_or(s.port(port)?.protocol);
                (p != Protocol::Udp).then_some((*s, kind_of(p)))
            })
            .collect();
        if on_port.is_empty() {
            continue;
        }
        let vss: Vec<&Vs<'_>> = mesh_vs
            .iter()
            .copied()
            .filter(|v| v.hosts.iter().any(|h| listener.imports(v.ns, h)))
            .collect();
        let kind = [Kind::Http, Kind::Tls, Kind::Tcp]
            .into_iter()
            .find(|k| on_port.iter().any(|(_, sk)| *sk == Some(*k)))
            .unwrap_or(Kind::Http);
        let served = |sk: Option<Kind>| sk == Some(kind) || (kind == Kind::Http && sk.is_none());
        let dropped: Vec<&str> = on_port
            .iter()
            .filter(|(_, sk)| !served(*sk))
            .map(|(s, _)| s.host.as_str())
            .collect();
        if !dropped.is_empty() {
            ctx.warn(format!(
                "outbound port {port} is served as {kind:?} (services of several protocols \
                 share it); {dropped:?} on this port are not routed"
            ));
        }
        let svcs: Vec<&Svc<'_>> = on_port
            .iter()
            .filter(|(_, sk)| served(*sk))
            .map(|(s, _)| *s)
            .collect();
        let served_as = match kind {
            Kind::Http => Some(OutboundPort::Http(http::route_config(
                ctx, port, &svcs, &vss, policy,
            ))),
            Kind::Tls => Some(OutboundPort::Tls(l4::sni_routes(ctx, port, &svcs, &vss))),
            Kind::Tcp => l4::tcp_route(ctx, port, &svcs, &vss).map(OutboundPort::Tcp),
        };
        if let Some(p) = served_as {
            out.insert(port, p);
        }
    }
    out
}

/// Clusters for every name the ports use, plus the two special clusters.
fn clusters(
    ctx: &Ctx<'_>,
    ports: &BTreeMap<u16, OutboundPort>,
    connect: Duration,
) -> BTreeMap<String, Cluster> {
    let mut names = BTreeSet::new();
    for p in ports.values() {
        match p {
            OutboundPort::Http(rc) => {
                for r in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
                    if let RouteAction::Forward(f) = &r.action {
                        names.extend(f.clusters.iter().map(|w| w.cluster.clone()));
                    }
                }
            }
            OutboundPort::Tls(routes) => {
                for r in routes {
                    names.extend(r.clusters.iter().map(|w| w.cluster.clone()));
                }
            }
            OutboundPort::Tcp(r) => names.extend(r.clusters.iter().map(|w| w.cluster.clone())),
        }
    }
    let mut out: BTreeMap<String, Cluster> = names
        .into_iter()
        .filter(|n| n != PASSTHROUGH_CLUSTER && n != BLACKHOLE_CLUSTER)
        .filter_map(|n| cluster(ctx, &n, connect).map(|c| (n, c)))
        .collect();
    for (name, discovery) in [
        (PASSTHROUGH_CLUSTER, Discovery::OriginalDst),
        (BLACKHOLE_CLUSTER, Discovery::Static(Vec::new())),
    ] {
        out.insert(name.to_owned(), special(name, discovery, connect));
    }
    out
}

/// `PassthroughCluster` / `BlackHoleCluster` (the host is the cluster's name, as Istio's
/// telemetry reports these destinations).
fn special(name: &str, discovery: Discovery, connect: Duration) -> Cluster {
    Cluster {
        name: name.to_owned(),
        host: name.to_owned(),
        port: 0,
        discovery,
        lb: LbPolicy::default(),
        tls: None,
        connect_timeout: connect,
        pool: PoolSettings::default(),
        outlier: None,
        external: false,
        tunnel: None,
    }
}
