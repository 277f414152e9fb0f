//! VirtualService validation (Istio's webhook rules and messages, `VV:1743-1867` and
//! `virtualservice.go`), plus the CRD's structural rules (`Required value`, `oneOf`).

mod actions;
mod analysis;
mod http;
pub(crate) mod util;

use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::virtual_service::{
    L4MatchAttributes, MESH_GATEWAY, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute,
    VirtualService,
};
use crate::validate::common;

/// Validate a VirtualService.
pub fn validate(obj: &CustomObject<VirtualService>, r: &mut Report) {
    let default = VirtualService::default();
    let vs = obj.spec.as_ref().unwrap_or(&default);
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let hosts = vs.hosts();
    let gateways = vs.gateways();

    if hosts.is_empty() {
        if !gateways.is_empty() {
            r.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls().is_empty() {
            r.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp().is_empty() {
            r.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }

    let mut applies_to_gateway = false;
    if !gateways.is_empty() {
        util::gateway_names(r, "spec.gateways", gateways);
        applies_to_gateway = is_gateway(vs);
    }
    let applies_to_mesh = !applies_to_gateway;

    if !applies_to_gateway {
        for (i, route) in vs.http().iter().enumerate() {
            for (j, m) in route.matches().iter().enumerate() {
                let mpath = idx(&join(&idx("spec.http", i), "match"), j);
                for (field, map) in [
                    ("headers", &m.headers),
                    ("withoutHeaders", &m.without_headers),
                ] {
                    for key in map.iter().flat_map(|m| m.keys()) {
                        if util::is_jwt_claim_route(key) {
                            r.error(
                                join(&join(&mpath, field), key),
                                format!(
                                    "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {}",
                                    util::go_list(gateways)
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    let sni = is_sni_host(vs);
    let mut all_hosts_valid = true;
    for (i, host) in hosts.iter().enumerate() {
        let field = idx("spec.hosts", i);
        let res = if applies_to_gateway {
            crate::validate::common::validate_wildcard_domain_for_vs_bound_to_gateway(sni, host)
        } else {
            common::validate_wildcard_domain(host)
        };
        match res {
            Err(e) => {
                if !common::is_ip(host) {
                    r.error(field, e);
                    all_hosts_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                r.error(
                    field,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for i in 0..hosts.len() {
            for j in i + 1..hosts.len() {
                if util::host_matches(&hosts[i], &hosts[j]) {
                    r.error(
                        idx("spec.hosts", j),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            hosts[i], hosts[j]
                        ),
                    );
                }
            }
        }
    }

    if vs.http().is_empty() && vs.tcp().is_empty() && vs.tls().is_empty() {
        r.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, route) in vs.http().iter().enumerate() {
        http::validate_route(r, &idx("spec.http", i), route, hosts.is_empty());
    }
    for (i, route) in vs.tls().iter().enumerate() {
        validate_tls_route(r, &idx("spec.tls", i), route, vs);
    }
    for (i, route) in vs.tcp().iter().enumerate() {
        validate_tcp_route(r, &idx("spec.tcp", i), route);
    }

    crate::validate::common::validate_export_to(
        r,
        "spec.exportTo",
        vs.export_to(),
        false,
        false,
        namespace,
    );

    analysis::unreachable_rules(r, vs);
}

/// Istio's `isGateway`: true unless `mesh` is listed (so also true for no gateways at all).
fn is_gateway(vs: &VirtualService) -> bool {
    !vs.gateways().iter().any(|g| g == MESH_GATEWAY)
}

/// Istio's `isSniHost`: some TLS match names SNI hosts.
fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls().iter().any(|t| {
        t.matches
            .iter()
            .flatten()
            .any(|m| m.sni_hosts.as_ref().is_some_and(|s| !s.is_empty()))
    })
}

fn validate_tls_route(r: &mut Report, path: &str, route: &TlsRoute, vs: &VirtualService) {
    let matches = route.matches.as_deref().unwrap_or_default();
    if matches.is_empty() {
        r.error(
            if route.matches.is_some() {
                join(path, "match")
            } else {
                path.to_owned()
            },
            "TLS route must have at least one match condition",
        );
    }
    for (j, m) in matches.iter().enumerate() {
        validate_tls_match(r, &idx(&join(path, "match"), j), m, vs);
    }
    let dests = route.route.as_deref().unwrap_or_default();
    if dests.is_empty() {
        r.error(
            if route.route.is_some() {
                join(path, "route")
            } else {
                path.to_owned()
            },
            "TLS route is required",
        );
    }
    route_destinations(r, &join(path, "route"), dests);
}

fn validate_tls_match(r: &mut Report, path: &str, m: &TlsMatchAttributes, vs: &VirtualService) {
    match m.sni_hosts.as_deref() {
        None => util::required(r, &join(path, "sniHosts")),
        Some([]) => r.error(
            join(path, "sniHosts"),
            "TLS match must have at least one SNI host",
        ),
        Some(hosts) => {
            for (k, sni) in hosts.iter().enumerate() {
                validate_sni_host(r, &idx(&join(path, "sniHosts"), k), sni, vs);
            }
        }
    }
    for (k, s) in m.destination_subnets.iter().flatten().enumerate() {
        if let Err(e) = common::validate_ip_subnet(s) {
            r.error(idx(&join(path, "destinationSubnets"), k), e);
        }
    }
    if let Some(p) = m.port.filter(|p| *p != 0) {
        util::port(r, &join(path, "port"), p);
    }
    util::labels(r, &join(path, "sourceLabels"), m.source_labels.as_ref());
    util::gateway_names(
        r,
        &join(path, "gateways"),
        m.gateways.as_deref().unwrap_or_default(),
    );
}

fn validate_sni_host(r: &mut Report, path: &str, sni: &str, vs: &VirtualService) {
    let res = if is_gateway(vs) {
        crate::validate::common::validate_wildcard_domain_for_vs_bound_to_gateway(true, sni)
    } else {
        common::validate_wildcard_domain(sni)
    };
    if let Err(e) = res {
        if common::is_ip(sni) {
            r.warn(
                path,
                format!(
                    "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                ),
            );
        } else {
            r.error(path, e);
        }
        return;
    }
    if vs.hosts().iter().any(|h| util::host_subset_of(sni, h)) {
        return;
    }
    r.error(
        path,
        format!(
            "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
            vs.hosts().join(", ")
        ),
    );
}

fn validate_tcp_route(r: &mut Report, path: &str, route: &TcpRoute) {
    for (j, m) in route.matches.iter().flatten().enumerate() {
        validate_l4_match(r, &idx(&join(path, "match"), j), m);
    }
    let dests = route.route.as_deref().unwrap_or_default();
    if dests.is_empty() {
        r.error(
            if route.route.is_some() {
                join(path, "route")
            } else {
                path.to_owned()
            },
            "TCP route is required",
        );
    }
    route_destinations(r, &join(path, "route"), dests);
}

fn validate_l4_match(r: &mut Report, path: &str, m: &L4MatchAttributes) {
    for (k, s) in m.destination_subnets.iter().flatten().enumerate() {
        if let Err(e) = common::validate_ip_subnet(s) {
            r.error(idx(&join(path, "destinationSubnets"), k), e);
        }
    }
    if let Some(p) = m.port.filter(|p| *p != 0) {
        util::port(r, &join(path, "port"), p);
    }
    util::labels(r, &join(path, "sourceLabels"), m.source_labels.as_ref());
    util::gateway_names(
        r,
        &join(path, "gateways"),
        m.gateways.as_deref().unwrap_or_default(),
    );
}

/// `validateRouteDestinations` (TLS and TCP routes).
fn route_destinations(r: &mut Report, path: &str, dests: &[RouteDestination]) {
    let mut total: i64 = 0;
    for (k, d) in dests.iter().enumerate() {
        let dpath = idx(path, k);
        match &d.destination {
            None => util::required(r, &join(&dpath, "destination")),
            Some(dest) => util::destination(r, &join(&dpath, "destination"), dest),
        }
        let w = d.weight.unwrap_or_default();
        if w < 0 {
            r.error(join(&dpath, "weight"), format!("weight {w} < 0"));
        }
        total += i64::from(w);
    }
    if dests.len() > 1 && total == 0 {
        r.error(path, "total destination weight = 0");
    }
}
