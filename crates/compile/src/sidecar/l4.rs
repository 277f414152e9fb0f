//! TLS and TCP ports of a sidecar (Istio's `buildSidecarOutboundTLSFilterChainOpts` and
//! `buildSidecarOutboundTCPFilterChainOpts` for services without a VIP, which is how external
//! ServiceEntries appear): SNI routes from VirtualService `tls` rules, else one default route
//! per service host; a TCP port forwards everything with the first service's `tcp` rule or
//! default route.

use std::collections::{BTreeMap, BTreeSet};

use egress_model::resources::virtual_service::RouteDestination;

use crate::ctx::{Ctx, Vs};
use crate::endpoints::labels_match;
use crate::host::{MESH, matches, subset_key};
use crate::registry::Svc;
use crate::routes::dest_cluster;
use crate::snapshot::{HeaderOps, SniRoute, TcpRoute, WeightedCluster};

/// The conditions of a `tls`/`tcp` match Istio evaluates for a sidecar at config time.
struct L4Match<'m> {
    port: Option<i64>,
    gateways: Option<&'m Vec<String>>,
    source_labels: Option<&'m BTreeMap<String, String>>,
    source_namespace: Option<&'m str>,
    destination_subnets: &'m [String],
}

/// `matchTLS` / `matchTCP` for the sidecar: the port (if set) is the listener's, the match's
/// `gateways` (if any) include `mesh`, `sourceLabels` select the workload and
/// `sourceNamespace` is its namespace. Destination subnets cannot be told apart on a port
/// without addresses: such a match is skipped, with a warning.
fn applies(ctx: &Ctx<'_>, vs: &Vs<'_>, m: &L4Match<'_>, port: u16, block: &str) -> bool {
    let port_ok = m.port.is_none_or(|p| p == 0 || p == i64::from(port));
    let gateways_ok = m
        .gateways
        .filter(|g| !g.is_empty())
        .is_none_or(|g| vs.match_gateways(g).iter().any(|g| g == MESH));
    let labels_ok = m
        .source_labels
        .is_none_or(|l| labels_match(l, Some(ctx.labels())));
    let ns_ok = m
        .source_namespace
        .is_none_or(|ns| ns.is_empty() || ns == ctx.id.namespace);
    if !(port_ok && gateways_ok && labels_ok && ns_ok) {
        return false;
    }
    if !m.destination_subnets.is_empty() {
        ctx.warn(format!(
            "VirtualService {}/{} {block} match on port {port}: destinationSubnets are not \
             supported at sidecars; match skipped",
            vs.ns, vs.name
        ));
        return false;
    }
    true
}

/// The weighted clusters of L4 route destinations: one destination takes all traffic;
/// several are weighted, 0-weight ones dropped.
fn clusters(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    routes: &[RouteDestination],
    port: u16,
) -> Vec<WeightedCluster> {
    let dest = |d: &RouteDestination| {
        dest_cluster(
            ctx,
            vs,
            &d.destination.clone().unwrap_or_default(),
            u32::from(port),
            false,
        )
    };
    match routes {
        [only] => vec![weighted(dest(only), 100)],
        many => many
            .iter()
            .filter(|d| d.weight.unwrap_or(0) > 0)
            .map(|d| weighted(dest(d), u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0)))
            .collect(),
    }
}

pub(super) fn weighted(cluster: String, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster,
        weight,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// The VirtualServices (of `vss`) with a host matching `host` (`getConfigsForHost`).
fn for_host<'v, 'a>(vss: &'v [&'v Vs<'a>], host: &'v str) -> impl Iterator<Item = &'v Vs<'a>> {
    vss.iter()
        .copied()
        .filter(move |v| v.hosts.iter().any(|h| matches(h, host)))
}

/// The SNI routes of a TLS port: per service, the matching `tls` rules of the VirtualServices
/// for its host (each SNI set once); a service with no matching rule gets a route on its own
/// host to `outbound|<port>||<host>`. Rule routes come first, then the default ones.
pub(super) fn sni_routes(
    ctx: &Ctx<'_>,
    port: u16,
    services: &[&Svc<'_>],
    vss: &[&Vs<'_>],
) -> Vec<SniRoute> {
    let mut out = Vec::new();
    let mut defaults = Vec::new();
    let mut handled: BTreeSet<Vec<String>> = BTreeSet::new();
    for svc in services {
        let mut has_match = false;
        for vs in for_host(vss, &svc.host) {
            for rule in vs.spec.tls() {
                for m in rule.matches.iter().flatten() {
                    let sni = m.sni_hosts.clone().unwrap_or_default();
                    let cond = L4Match {
                        port: m.port,
                        gateways: m.gateways.as_ref(),
                        source_labels: m.source_labels.as_ref(),
                        source_namespace: m.source_namespace.as_deref(),
                        destination_subnets: m.destination_subnets.as_deref().unwrap_or_default(),
                    };
                    if sni.is_empty() || !applies(ctx, vs, &cond, port, "tls") {
                        continue;
                    }
                    has_match = true;
                    let mut key = sni.clone();
                    key.sort();
                    if !handled.insert(key) {
                        continue;
                    }
                    let to = clusters(ctx, vs, rule.route.as_deref().unwrap_or_default(), port);
                    if to.is_empty() {
                        ctx.warn(format!(
                            "VirtualService {}/{}: no tls destination with a weight above 0 \
                             for port {port}",
                            vs.ns, vs.name
                        ));
                        continue;
                    }
                    out.push(SniRoute {
                        sni_hosts: sni,
                        clusters: to,
                        route_name: Some(vs.name.to_owned()),
                    });
                }
            }
        }
        if !has_match {
            defaults.push(SniRoute {
                sni_hosts: vec![svc.host.clone()],
                clusters: vec![weighted(subset_key(port, "", &svc.host), 100)],
                route_name: None,
            });
        }
    }
    out.extend(defaults);
    out
}

/// The route of a TCP port: a port without addresses carries one destination, so the first
/// service (oldest) takes the port, with the first matching `tcp` rule of its
/// VirtualServices, else its default cluster. Other services of the port are reported.
pub(super) fn tcp_route(
    ctx: &Ctx<'_>,
    port: u16,
    services: &[&Svc<'_>],
    vss: &[&Vs<'_>],
) -> Option<TcpRoute> {
    let (first, rest) = services.split_first()?;
    if !rest.is_empty() {
        let others: Vec<&str> = rest.iter().map(|s| s.host.as_str()).collect();
        ctx.warn(format!(
            "outbound TCP port {port} is shared by {} and {others:?}; without addresses one \
             service takes the port ({}), the others are not routed",
            first.host, first.host
        ));
    }
    for vs in for_host(vss, &first.host) {
        for rule in vs.spec.tcp() {
            let preds = rule.matches.as_deref().unwrap_or_default();
            let ok = preds.is_empty()
                || preds.iter().any(|m| {
                    let cond = L4Match {
                        port: m.port,
                        gateways: m.gateways.as_ref(),
                        source_labels: m.source_labels.as_ref(),
                        source_namespace: m.source_namespace.as_deref(),
                        destination_subnets: m.destination_subnets.as_deref().unwrap_or_default(),
                    };
                    applies(ctx, vs, &cond, port, "tcp")
                });
            if !ok {
                continue;
            }
            let to = clusters(ctx, vs, rule.route.as_deref().unwrap_or_default(), port);
            if to.is_empty() {
                continue;
            }
            return Some(TcpRoute {
                clusters: to,
                route_name: Some(vs.name.to_owned()),
            });
        }
    }
    Some(TcpRoute {
        clusters: vec![weighted(subset_key(port, "", &first.host), 100)],
        route_name: None,
    })
}
