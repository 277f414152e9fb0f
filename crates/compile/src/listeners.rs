//! Listeners from merged servers (Istio's `buildGatewayListeners`): one per target port and
//! bind; plaintext HTTP servers share route table `http.<port>`, other servers become filter
//! chains; a listener without chains is omitted.

use std::net::IpAddr;

use crate::chains::{SniClaims, passthrough_chains, server_names, tcp_chain};
use crate::ctx::Ctx;
use crate::gateways::{GroupKind, PortGroup, ServerRef, merge};
use crate::http::route_config;
use crate::secrets::server_tls;
use crate::snapshot::{ChainAction, FilterChain, Listener, ListenerKind};

/// Every listener of the instance, in merge order.
pub(crate) fn build(ctx: &Ctx<'_>) -> Vec<Listener> {
    let mut claims = SniClaims::new();
    let mut out: Vec<Listener> = Vec::new();
    for group in merge(ctx) {
        let bind = if group.bind.is_empty() {
            None
        } else {
            match group.bind.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    ctx.warn(format!(
                        "bind {:?} on port {} is not an IP address (unix sockets are not \
                         supported); listener skipped",
                        group.bind, group.target
                    ));
                    continue;
                }
            }
        };
        let name = format!(
            "{}_{}",
            bind.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
            group.target
        );
        if out.iter().any(|l| l.name == name) {
            ctx.warn(format!(
                "listener {name:?} already exists (bind {:?} repeats the wildcard address); \
                 its servers are skipped",
                group.bind
            ));
            continue;
        }
        let kind = match group.kind {
            GroupKind::Plain(p) if p.is_http() => {
                let servers: Vec<&ServerRef<'_>> = group.servers.iter().collect();
                let route = group
                    .servers
                    .first()
                    .map(|s| s.route_name.clone())
                    .unwrap_or_default();
                Some(ListenerKind::Http(route_config(ctx, &route, &servers)))
            }
            GroupKind::Plain(_) => group
                .servers
                .first()
                .and_then(|s| tcp_chain(ctx, s))
                .map(|c| ListenerKind::Chains(vec![c])),
            GroupKind::Tls => {
                let chains = tls_chains(ctx, &group, &mut claims);
                (!chains.is_empty()).then_some(ListenerKind::Chains(chains))
            }
        };
        match kind {
            Some(kind) => out.push(Listener {
                name,
                bind,
                port: group.target,
                kind,
            }),
            None => ctx.warn(format!(
                "gateway omitting listener {name:?}: must have more than 0 chains"
            )),
        }
    }
    out
}

/// The chains of a TLS listener, in server order; a chain whose SNI condition repeats an
/// earlier one is dropped (Envoy would refuse the listener).
fn tls_chains(ctx: &Ctx<'_>, group: &PortGroup<'_>, claims: &mut SniClaims) -> Vec<FilterChain> {
    let mut chains: Vec<FilterChain> = Vec::new();
    for s in &group.servers {
        let new: Vec<FilterChain> = if s.server.is_https_with_tls_termination() {
            match server_tls(ctx, s.server) {
                Ok(tls) => vec![FilterChain {
                    server_names: server_names(&s.hosts),
                    server_port: u16::try_from(s.port).unwrap_or(0),
                    tls: Some(tls),
                    action: ChainAction::Http(route_config(ctx, &s.route_name, &[s])),
                }],
                Err(e) => {
                    ctx.warn(format!(
                        "server {} on gateway {}: {e}; no filter chain",
                        s.server.port_name(),
                        s.gateway
                    ));
                    Vec::new()
                }
            }
        } else if s.server.is_passthrough() {
            passthrough_chains(ctx, s, group.target, claims)
        } else {
            tcp_chain(ctx, s).into_iter().collect()
        };
        for c in new {
            let mut names = c.server_names.clone();
            names.sort();
            let clash = chains.iter().any(|o| {
                let mut other = o.server_names.clone();
                other.sort();
                other == names
            });
            if clash {
                ctx.warn(format!(
                    "listener port {}: a filter chain for server names {names:?} already \
                     exists; the later one (gateway {}) is dropped",
                    group.target, s.gateway
                ));
            } else {
                chains.push(c);
            }
        }
    }
    chains
}
