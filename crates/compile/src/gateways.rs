//! Gateway selection and server merging (Istio's `mergeGateways`): which Gateways select the
//! instance, which port each server binds (`resolvePorts`), which servers share a listener,
//! and which are rejected (duplicate TLS hosts, protocol conflicts, duplicate HTTPS routes).

use std::collections::{BTreeMap, BTreeSet};

use egress_model::resources::gateway::{Gateway, Server};
use egress_model::validate::common::Protocol;

use crate::ctx::{Ctx, name_ns, sorted};
use crate::host::sanitize_server_hosts;

/// One accepted server.
pub(crate) struct ServerRef<'a> {
    /// The server.
    pub server: &'a Server,
    /// Its Gateway, `ns/name`.
    pub gateway: String,
    /// Hosts after `sanitizeServerHostNamespace`.
    pub hosts: Vec<String>,
    /// The server port (the gateway Service port).
    pub port: u32,
    /// The route table name (`http.<target>` / `https.<port>.<name>.<gw>.<ns>`), or empty.
    pub route_name: String,
}

/// Plaintext servers (HTTP family sharing a route table, or one TCP server) or TLS servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupKind {
    /// No TLS at the listener; the first server's protocol.
    Plain(Protocol),
    /// TLS servers, one filter chain (or more) each.
    Tls,
}

/// The servers of one listener (target port and bind).
pub(crate) struct PortGroup<'a> {
    /// The port bound (the Service targetPort).
    pub target: u16,
    /// The bind address as written (empty: all addresses).
    pub bind: String,
    /// Plaintext or TLS.
    pub kind: GroupKind,
    /// Servers in merge order.
    pub servers: Vec<ServerRef<'a>>,
}

/// `IsTLSServer`.
fn is_tls_server(s: &Server) -> bool {
    s.is_tls_server()
}

/// `IsHTTPServer`: HTTP family, or HTTPS terminating TLS.
pub(crate) fn is_http_server(s: &Server) -> bool {
    s.protocol().is_http() || s.is_https_with_tls_termination()
}

/// `canMergeProtocols`.
fn can_merge(current: Protocol, p: Protocol) -> bool {
    (current.is_http() || current == p) && p.is_http()
}

/// `gatewayRDSRouteName`.
fn route_name(s: &Server, target: u16, gw_name: &str, gw_ns: &str) -> String {
    let bind = if s.bind().is_empty() {
        String::new()
    } else {
        format!(".{}", s.bind())
    };
    let p = s.protocol();
    if p.is_http() {
        return format!("http.{target}{bind}");
    }
    if p == Protocol::Https && !s.is_passthrough() {
        return format!(
            "https.{}.{}.{gw_name}.{gw_ns}{bind}",
            s.port_number(),
            s.port_name()
        );
    }
    String::new()
}

/// The Gateways selecting the instance, merged into listener groups, in Istio's order.
pub(crate) fn merge<'a>(ctx: &Ctx<'a>) -> Vec<PortGroup<'a>> {
    let gateways: Vec<_> = sorted::<Gateway>(&ctx.inputs.gateways)
        .into_iter()
        .filter(|(_, g)| g.selects(ctx.labels()))
        .collect();
    let mut groups: Vec<PortGroup<'a>> = Vec::new();
    let mut used_routes: BTreeSet<String> = BTreeSet::new();
    let mut tls_hosts: BTreeMap<u16, BTreeMap<String, String>> = BTreeMap::new();
    for (meta, gw) in gateways {
        let (gw_name, gw_ns) = name_ns(meta);
        let gateway = format!("{gw_ns}/{gw_name}");
        for s in gw.servers() {
            let reject = |why: &str| {
                ctx.warn(format!(
                    "skipping server {}.{}.{} on gateway {gateway}: {why}",
                    s.port_name(),
                    s.port_number(),
                    s.port.as_ref().map(|p| p.protocol()).unwrap_or_default()
                ));
            };
            let Some(port) = u16::try_from(s.port_number()).ok().filter(|p| *p != 0) else {
                reject("invalid port");
                continue;
            };
            let target = ctx.id.service_ports.get(&port).copied().unwrap_or(port);
            let hosts = sanitize_server_hosts(s.hosts(), gw_ns);
            let route = route_name(s, target, gw_name, gw_ns);
            if s.tls.is_some() {
                let known = tls_hosts.entry(target).or_default();
                let dups: Vec<&String> = hosts
                    .iter()
                    .filter(|h| known.get(*h).is_some_and(|b| b == s.bind()))
                    .collect();
                if !dups.is_empty() {
                    reject(&format!("duplicate host names: {dups:?}"));
                    continue;
                }
                for h in &hosts {
                    known.insert(h.clone(), s.bind().to_owned());
                }
            }
            let sref = ServerRef {
                server: s,
                gateway: gateway.clone(),
                hosts,
                port: u32::from(port),
                route_name: route.clone(),
            };
            let existing = groups
                .iter_mut()
                .find(|g| g.target == target && g.bind == s.bind());
            match existing {
                None => {
                    if is_http_server(s) {
                        used_routes.insert(route);
                    }
                    groups.push(PortGroup {
                        target,
                        bind: s.bind().to_owned(),
                        kind: if is_tls_server(s) {
                            GroupKind::Tls
                        } else {
                            GroupKind::Plain(s.protocol())
                        },
                        servers: vec![sref],
                    });
                }
                Some(g) => match g.kind {
                    GroupKind::Plain(current) => {
                        if !can_merge(s.protocol(), current) {
                            reject(&format!(
                                "conflict with existing server on port {target} ({current:?})"
                            ));
                        } else if route.is_empty() {
                            reject("could not build RDS name from server");
                        } else {
                            g.servers.push(sref);
                        }
                    }
                    GroupKind::Tls => {
                        if is_http_server(s) {
                            if route.is_empty() {
                                reject("could not build RDS name from server");
                                continue;
                            }
                            if !used_routes.insert(route.clone()) {
                                reject("non unique port name for HTTPS port");
                                continue;
                            }
                        }
                        if !is_tls_server(s) {
                            reject("TLS server without TLS options on a port with TLS servers");
                            continue;
                        }
                        g.servers.push(sref);
                    }
                },
            }
        }
    }
    groups
}
