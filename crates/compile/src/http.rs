//! Route tables of HTTP and HTTPS-terminating servers (Istio's
//! `buildGatewayHTTPRouteConfig`): one virtual host per host in server hosts ∩ VirtualService
//! hosts, routes from the bound VirtualServices, `httpsRedirect`, and the `blackhole` host.

use std::collections::BTreeMap;

use crate::ctx::Ctx;
use crate::gateways::ServerRef;
use crate::host::{intersection, names_for_namespace};
use crate::routes::{RouteScope, http_routes, is_catch_all};
use crate::snapshot::{Route, RouteConfig, VirtualHost};

/// The route table `name` serving `servers`.
pub(crate) fn route_config(ctx: &Ctx<'_>, name: &str, servers: &[&ServerRef<'_>]) -> RouteConfig {
    let mut vhosts: BTreeMap<String, VirtualHost> = BTreeMap::new();
    // Routes of a VirtualService are built once per gateway (Istio caches them by gateway).
    let mut cache: BTreeMap<(String, String, String), Option<Vec<Route>>> = BTreeMap::new();
    for s in servers {
        let https_redirect = s.server.tls.as_ref().is_some_and(|t| t.https_redirect());
        for vs in ctx.vs_for_gateway(&s.gateway) {
            let server_hosts = names_for_namespace(&s.hosts, vs.ns);
            let hosts = intersection(&server_hosts, &vs.hosts);
            if hosts.is_empty() {
                continue;
            }
            let key = (s.gateway.clone(), vs.ns.to_owned(), vs.name.to_owned());
            let routes = cache
                .entry(key)
                .or_insert_with(|| {
                    http_routes(
                        ctx,
                        vs,
                        &RouteScope {
                            port: s.port,
                            gateway: &s.gateway,
                            sidecar: false,
                        },
                    )
                })
                .clone();
            let Some(routes) = routes else { continue };
            for h in hosts {
                let h = h.to_lowercase();
                match vhosts.get_mut(&h) {
                    Some(v) => {
                        v.routes.extend(routes.iter().cloned());
                        v.require_tls |= https_redirect;
                    }
                    None => {
                        vhosts.insert(
                            h.clone(),
                            VirtualHost {
                                name: format!("{h}:{}", s.port),
                                domains: vec![h],
                                routes: routes.clone(),
                                require_tls: https_redirect,
                            },
                        );
                    }
                }
            }
        }
        if https_redirect {
            for h in &s.hosts {
                let h = h.to_lowercase();
                vhosts
                    .entry(h.clone())
                    .and_modify(|v| v.require_tls = true)
                    .or_insert_with(|| VirtualHost {
                        name: format!("{h}:{}", s.port),
                        domains: vec![h],
                        routes: Vec::new(),
                        require_tls: true,
                    });
            }
        }
    }
    let mut virtual_hosts: Vec<VirtualHost> = if vhosts.is_empty() {
        let port = servers.first().map(|s| s.port).unwrap_or_default();
        ctx.warn(format!(
            "route {name} on port {port} has no virtual hosts (no VirtualService bound to the \
             gateway matches its hosts); every request gets 404 NR"
        ));
        vec![VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".to_owned()],
            routes: Vec::new(),
            require_tls: false,
        }]
    } else {
        vhosts
            .into_values()
            .map(|mut v| {
                v.routes = sort_routes(std::mem::take(&mut v.routes));
                v
            })
            .collect()
    };
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    RouteConfig {
        name: name.to_owned(),
        virtual_hosts,
    }
}

/// `SortVHostRoutes`: catch-all routes move to the end, the rest keep their order.
fn sort_routes(routes: Vec<Route>) -> Vec<Route> {
    let (mut specific, catch_all): (Vec<Route>, Vec<Route>) =
        routes.into_iter().partition(|r| !is_catch_all(&r.matcher));
    specific.extend(catch_all);
    specific
}
