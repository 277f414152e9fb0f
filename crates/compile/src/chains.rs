//! Filter chains of TLS and TCP servers (Istio's `createGatewayTCPFilterChainOpts`):
//! PASSTHROUGH servers route on SNI with VirtualService `tls` blocks (one chain per match),
//! TLS-terminating non-HTTPS servers and opaque TCP servers forward with `tcp` blocks.

use std::collections::BTreeMap;

use egress_model::resources::gateway::TlsMode;
use egress_model::resources::virtual_service::RouteDestination;

use crate::ctx::{Ctx, Vs};
use crate::gateways::ServerRef;
use crate::host::{matches, strip_namespace};
use crate::routes::dest_cluster;
use crate::secrets::server_tls;
use crate::snapshot::{ChainAction, FilterChain, WeightedCluster};

/// SNI hosts already claimed per listener port: host -> bind.
pub(crate) type SniClaims = BTreeMap<u16, BTreeMap<String, String>>;

/// `GetSNIHostsForServer` as filter-chain server names: hosts without `ns/`, sorted, unique;
/// a `*` among them means no SNI condition at all.
pub(crate) fn server_names(hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = hosts
        .iter()
        .map(|h| strip_namespace(h).to_owned())
        .collect();
    names.sort();
    names.dedup();
    wildcard_is_any(names)
}

fn wildcard_is_any(names: Vec<String>) -> Vec<String> {
    if names.iter().any(|n| n == "*") {
        Vec::new()
    } else {
        names
    }
}

/// `pickMatchingGatewayHosts` is non-empty: some VirtualService host matches a server host
/// (an `ns/host` server host only for VirtualServices in `ns`).
fn vs_matches_server(vs: &Vs<'_>, s: &ServerRef<'_>) -> bool {
    vs.hosts.iter().any(|vh| {
        s.hosts.iter().any(|gh| {
            let gh = match gh.split_once('/') {
                Some((ns, h)) if ns == vs.ns => h,
                Some(_) => return false,
                None => gh.as_str(),
            };
            matches(gh, vh)
        })
    })
}

/// `l4SingleMatch`: `port` (if set) is the server port, `gateways` (if any) name this one.
fn l4_match(
    vs: &Vs<'_>,
    port: Option<i64>,
    gateways: Option<&Vec<String>>,
    s: &ServerRef<'_>,
) -> bool {
    let port_ok = port.is_none_or(|p| p == 0 || p == i64::from(s.port));
    let gws = gateways.map(|g| vs.match_gateways(g)).unwrap_or_default();
    port_ok && (gws.is_empty() || gws.contains(&s.gateway))
}

/// A tcp_proxy over route destinations: one destination takes all traffic; several are
/// weighted, 0-weight ones dropped. Services are looked up from the gateway's namespace.
fn tcp_proxy(
    ctx: &Ctx<'_>,
    vs: &Vs<'_>,
    routes: &[RouteDestination],
    s: &ServerRef<'_>,
) -> Option<ChainAction> {
    let dest = |d: &RouteDestination| {
        dest_cluster(
            ctx,
            vs,
            &d.destination.clone().unwrap_or_default(),
            s.port,
            false,
        )
    };
    let clusters: Vec<WeightedCluster> = match routes {
        [only] => vec![weighted(dest(only), 100)],
        many => many
            .iter()
            .filter(|d| d.weight.unwrap_or(0) > 0)
            .map(|d| weighted(dest(d), u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0)))
            .collect(),
    };
    if clusters.is_empty() {
        ctx.warn(format!(
            "VirtualService {}/{}: no destination with a weight above 0 for server port {}",
            vs.ns, vs.name, s.port
        ));
        return None;
    }
    Some(ChainAction::TcpProxy {
        clusters,
        route_name: None,
    })
}

fn weighted(cluster: String, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster,
        weight,
        request_headers: Default::default(),
        response_headers: Default::default(),
    }
}

/// The chain of an opaque TCP server or a TLS-terminating non-HTTPS server: the first bound
/// VirtualService with a matching `tcp` rule wins.
pub(crate) fn tcp_chain(ctx: &Ctx<'_>, s: &ServerRef<'_>) -> Option<FilterChain> {
    let terminating = s.server.tls.is_some();
    let tls = if terminating {
        match server_tls(ctx, s.server) {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.warn(format!(
                    "server {} on gateway {}: {e}; no filter chain",
                    s.server.port_name(),
                    s.gateway
                ));
                return None;
            }
        }
    } else {
        None
    };
    for vs in ctx.vs_for_gateway(&s.gateway) {
        if !vs_matches_server(vs, s) {
            continue;
        }
        for rule in vs.spec.tcp() {
            let preds = rule.matches.as_deref().unwrap_or_default();
            let ok = preds.is_empty()
                || preds
                    .iter()
                    .any(|m| l4_match(vs, m.port, m.gateways.as_ref(), s));
            if !ok {
                continue;
            }
            let action = tcp_proxy(ctx, vs, rule.route.as_deref().unwrap_or_default(), s)?;
            return Some(FilterChain {
                server_names: if terminating {
                    server_names(&s.hosts)
                } else {
                    Vec::new()
                },
                server_port: u16::try_from(s.port).unwrap_or(0),
                tls,
                action,
            });
        }
    }
    let hint = if terminating && vs_has_tls_rules(ctx, s) {
        " (TLS-terminating servers are routed by `tcp` rules, not `tls` rules)"
    } else {
        ""
    };
    ctx.warn(format!(
        "gateway {}:{} listener missed network filter: no VirtualService tcp rule matches \
         server {}{hint}",
        s.gateway,
        s.port,
        s.server.port_name()
    ));
    None
}

fn vs_has_tls_rules(ctx: &Ctx<'_>, s: &ServerRef<'_>) -> bool {
    ctx.vs_for_gateway(&s.gateway)
        .iter()
        .any(|vs| vs_matches_server(vs, s) && !vs.spec.tls().is_empty())
}

/// The chains of a PASSTHROUGH server: one per matching `tls` match, SNI from `sniHosts`;
/// SNI already claimed on the port (same bind) is skipped with a warning.
pub(crate) fn passthrough_chains(
    ctx: &Ctx<'_>,
    s: &ServerRef<'_>,
    target: u16,
    claims: &mut SniClaims,
) -> Vec<FilterChain> {
    if s.server.tls_mode() == Some(TlsMode::AutoPassthrough) {
        ctx.warn(format!(
            "server {} on gateway {}: AUTO_PASSTHROUGH (multi-network) is not supported; \
             no filter chains",
            s.server.port_name(),
            s.gateway
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for vs in ctx.vs_for_gateway(&s.gateway) {
        if !vs_matches_server(vs, s) {
            continue;
        }
        for (ri, rule) in vs.spec.tls().iter().enumerate() {
            for m in rule.matches.iter().flatten() {
                if !l4_match(vs, m.port, m.gateways.as_ref(), s) {
                    continue;
                }
                let sni = m.sni_hosts.clone().unwrap_or_default();
                let known = claims.entry(target).or_default();
                let dups: Vec<&String> = sni
                    .iter()
                    .filter(|h| known.get(*h).is_some_and(|b| b == s.server.bind()))
                    .collect();
                if !dups.is_empty() {
                    ctx.warn(format!(
                        "skipping VirtualService {} rule #{ri} on server port {} of gateway {}, \
                         duplicate SNI host names: {dups:?}",
                        vs.name, s.port, s.gateway
                    ));
                    continue;
                }
                for h in &sni {
                    known.insert(h.clone(), s.server.bind().to_owned());
                }
                let Some(action) = tcp_proxy(ctx, vs, rule.route.as_deref().unwrap_or_default(), s)
                else {
                    continue;
                };
                out.push(FilterChain {
                    server_names: wildcard_is_any(sni),
                    server_port: u16::try_from(s.port).unwrap_or(0),
                    tls: None,
                    action,
                });
            }
        }
    }
    out
}
