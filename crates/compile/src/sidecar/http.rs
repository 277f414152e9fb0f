//! The route table of one sidecar HTTP port (Istio's `BuildSidecarOutboundVirtualHosts` and
//! `BuildSidecarVirtualHostWrapper`): a virtual host per service on the port, carrying the
//! routes of the VirtualService for its host or else a `default` route to
//! `outbound|<port>||<host>`; VirtualService hosts outside the registry get their own host
//! (always on port 80, else only beside a registry service); domains are the host, its
//! Kubernetes short forms and its addresses, each claimed once; the catch-all host
//! `allow_any` / `block_all` comes last.

use std::collections::BTreeSet;
use std::net::IpAddr;

use egress_model::resources::service_entry::ServiceEntry;
use k8s_openapi::api::core::v1::Service;

use crate::ctx::{Ctx, Vs};
use crate::host::{DOMAIN_SUFFIX, MESH, matches, subset_key};
use crate::registry::{Source, Svc};
use crate::retry::{convert_retry, mesh_default_retry};
use crate::routes::{RouteScope, http_routes};
use crate::snapshot::{
    ALLOW_ANY_ROUTE, BLOCK_ALL_ROUTE, Forward, HeaderOps, OutboundPolicy, PASSTHROUGH_CLUSTER,
    Route, RouteAction, RouteConfig, RouteMatch, StringMatch, VirtualHost, WeightedCluster,
};

/// Istio's name for the route of a service without a VirtualService.
pub(super) const DEFAULT_ROUTE: &str = "default";

/// Virtual hosts sharing one set of routes (`VirtualHostWrapper`).
struct Wrapper<'s, 'a> {
    /// VirtualService hosts that name no service of the port.
    vs_hosts: Vec<String>,
    /// Services of the port.
    services: Vec<&'s Svc<'a>>,
    /// The routes.
    routes: Vec<Route>,
}

/// The route table `"<port>"` for `services` (the HTTP services of the port in the sidecar's
/// scope, one per host) and `vss` (the mesh VirtualServices in scope, in Istio's order).
pub(super) fn route_config(
    ctx: &Ctx<'_>,
    port: u16,
    services: &[&Svc<'_>],
    vss: &[&Vs<'_>],
    policy: OutboundPolicy,
) -> RouteConfig {
    let scope = RouteScope {
        port: u32::from(port),
        gateway: MESH,
        sidecar: true,
    };
    let mut wrappers: Vec<Wrapper<'_, '_>> = Vec::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for vs in vss {
        let (vs_hosts, svcs) = separate(vs, services, vss);
        // `selectVirtualServices` keeps only VirtualServices naming a service of the port,
        // except on port 80, where hosts outside the registry get virtual hosts too.
        if svcs.is_empty() && port != 80 {
            continue;
        }
        // No rule applies to this port and workload: the services keep their default route.
        let Some(routes) = http_routes(ctx, vs, &scope) else {
            continue;
        };
        claimed.extend(svcs.iter().map(|s| s.host.as_str()));
        wrappers.push(Wrapper {
            vs_hosts,
            services: svcs,
            routes,
        });
    }
    for svc in services {
        if !claimed.contains(svc.host.as_str()) {
            wrappers.push(Wrapper {
                vs_hosts: Vec::new(),
                services: vec![svc],
                routes: vec![default_route(ctx, port, &svc.host)],
            });
        }
    }
    let mut virtual_hosts = virtual_hosts(ctx, port, &wrappers);
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    virtual_hosts.push(catch_all(policy));
    RouteConfig {
        name: port.to_string(),
        virtual_hosts,
    }
}

/// `separateVSHostsAndServices`: the VirtualService's hosts that are services of the port (a
/// wildcard host takes the services for which it is the most specific wildcard among `vss`)
/// and those that are not.
fn separate<'s, 'a>(
    vs: &Vs<'_>,
    services: &[&'s Svc<'a>],
    vss: &[&Vs<'_>],
) -> (Vec<String>, Vec<&'s Svc<'a>>) {
    let mut hosts = Vec::new();
    let mut svcs: Vec<&'s Svc<'a>> = Vec::new();
    let add = |s: &'s Svc<'a>, svcs: &mut Vec<&'s Svc<'a>>| {
        if !svcs.iter().any(|x| x.host == s.host) {
            svcs.push(s);
        }
    };
    for h in vs.hosts.iter().map(|h| h.to_ascii_lowercase()) {
        if h.starts_with('*') {
            continue;
        }
        match services.iter().find(|s| s.host == h) {
            Some(s) => add(s, &mut svcs),
            None => hosts.push(h),
        }
    }
    for h in vs.hosts.iter().map(|h| h.to_ascii_lowercase()) {
        if !h.starts_with('*') {
            continue;
        }
        let mut found = false;
        for s in services.iter().filter(|s| matches(&s.host, &h)) {
            found = true;
            if most_specific_wildcard(&s.host, vss)
                .is_some_and(|(ns, name)| ns == vs.ns && name == vs.name)
            {
                add(s, &mut svcs);
            }
        }
        if !found {
            hosts.push(h);
        }
    }
    (hosts, svcs)
}

/// `MostSpecificWildcardVirtualServiceIndex`: the VirtualService (namespace, name) whose
/// longest wildcard host matches `host`, the first one on a tie.
fn most_specific_wildcard<'v>(host: &str, vss: &[&'v Vs<'_>]) -> Option<(&'v str, &'v str)> {
    let mut best: Option<(usize, &'v str, &'v str)> = None;
    for vs in vss {
        for h in vs.hosts.iter().filter(|h| h.starts_with('*')) {
            if matches(h, host) && best.is_none_or(|(len, _, _)| h.len() > len) {
                best = Some((h.len(), vs.ns, vs.name));
            }
        }
    }
    best.map(|(_, ns, name)| (ns, name))
}

/// Istio's route for a service without a VirtualService: any path to the service's
/// cluster, MeshConfig's default retry policy, no timeout.
fn default_route(ctx: &Ctx<'_>, port: u16, host: &str) -> Route {
    forward_route(
        DEFAULT_ROUTE,
        subset_key(port, "", host),
        convert_retry(mesh_default_retry(ctx.mesh).as_ref()),
    )
}

fn forward_route(
    name: &str,
    cluster: String,
    retry: Option<crate::snapshot::RetryPolicy>,
) -> Route {
    Route {
        name: name.to_owned(),
        matcher: any_path(),
        action: RouteAction::Forward(Forward {
            clusters: vec![WeightedCluster {
                cluster,
                weight: 100,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
            }],
            timeout: None,
            retry,
            rewrite_uri: None,
            rewrite_authority: None,
        }),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

fn any_path() -> RouteMatch {
    RouteMatch {
        uri: Some(StringMatch::Prefix("/".to_owned())),
        ..RouteMatch::default()
    }
}

/// The catch-all host: `allow_any` to `PassthroughCluster` (no retries, no timeout) or
/// `block_all` answering 502 with an empty body.
fn catch_all(policy: OutboundPolicy) -> VirtualHost {
    let route = match policy {
        OutboundPolicy::AllowAny => {
            forward_route(ALLOW_ANY_ROUTE, PASSTHROUGH_CLUSTER.to_owned(), None)
        }
        OutboundPolicy::RegistryOnly => Route {
            name: BLOCK_ALL_ROUTE.to_owned(),
            matcher: any_path(),
            action: RouteAction::DirectResponse {
                status: 502,
                body: None,
            },
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        },
    };
    VirtualHost {
        name: route.name.clone(),
        domains: vec!["*".to_owned()],
        routes: vec![route],
        require_tls: false,
    }
}

/// The virtual hosts of `wrappers`, in order: a host name (`<host>:<port>`) or domain already
/// taken is not taken again (`dedupeDomains`), and a host left without domains is dropped.
fn virtual_hosts(ctx: &Ctx<'_>, port: u16, wrappers: &[Wrapper<'_, '_>]) -> Vec<VirtualHost> {
    let known: BTreeSet<&str> = wrappers
        .iter()
        .flat_map(|w| w.services.iter().map(|s| s.host.as_str()))
        .collect();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for w in wrappers.iter().filter(|w| !w.routes.is_empty()) {
        let entries = w
            .vs_hosts
            .iter()
            .map(|h| (h.clone(), vec![h.clone()], Vec::new()))
            .chain(w.services.iter().map(|s| {
                let (domains, alt) = service_domains(s, &ctx.id.namespace);
                (s.host.clone(), domains, alt)
            }));
        for (host, domains, alt) in entries {
            let name = format!("{host}:{port}");
            if !names.insert(name.clone()) {
                ctx.warn(format!(
                    "outbound port {port}: duplicate virtual host {name}; the first one is kept"
                ));
                continue;
            }
            let domains: Vec<String> = domains
                .into_iter()
                .filter(|d| {
                    // A short form that is itself a service's name yields to that service.
                    let shadows_service = alt.contains(d) && known.contains(d.as_str());
                    !shadows_service && taken.insert(d.to_ascii_lowercase())
                })
                .collect();
            if domains.is_empty() {
                continue;
            }
            out.push(VirtualHost {
                name,
                domains,
                routes: w.routes.clone(),
                require_tls: false,
            });
        }
    }
    out
}

/// `generateVirtualHostDomains` with the port ignored: the host, its short forms as seen
/// from `proxy_ns` (for `*.svc.cluster.local` hosts), wildcard forms for headless Services,
/// and the service's addresses; plus the short forms alone (they yield to a service of that
/// exact name).
fn service_domains(svc: &Svc<'_>, proxy_ns: &str) -> (Vec<String>, Vec<String>) {
    let alt = alt_hosts(&svc.host, proxy_ns);
    let mut domains = vec![svc.host.clone()];
    domains.extend(alt.iter().cloned());
    if let Source::Kube(s) = svc.source
        && headless(s)
    {
        let wild: Vec<String> = domains.iter().map(|d| format!("*.{d}")).collect();
        domains.extend(wild);
    }
    for ip in addresses(svc) {
        domains.push(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    (domains, alt)
}

/// `generateAltVirtualHostsForKubernetesService` for a proxy in `proxy_ns`: `name`,
/// `name.ns.svc` and `name.ns` for a Service of the proxy's namespace, `name.ns` and
/// `name.ns.svc` for another namespace's; nothing for other hosts.
pub(super) fn alt_hosts(host: &str, proxy_ns: &str) -> Vec<String> {
    let suffix = format!("svc.{DOMAIN_SUFFIX}");
    if !host.ends_with(&suffix) {
        return Vec::new();
    }
    let (Some(ih), Some(dot)) = (host.find(".svc."), host.find('.')) else {
        return Vec::new();
    };
    if dot + 1 > ih {
        return Vec::new();
    }
    let (name, with_ns) = (&host[..dot], &host[..ih]);
    if &host[dot + 1..ih] == proxy_ns {
        vec![
            name.to_owned(),
            format!("{with_ns}.svc"),
            with_ns.to_owned(),
        ]
    } else {
        vec![with_ns.to_owned(), format!("{with_ns}.svc")]
    }
}

fn headless(s: &Service) -> bool {
    s.spec
        .as_ref()
        .and_then(|sp| sp.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

/// A service's addresses: a Kubernetes Service's cluster IPs, a ServiceEntry's `addresses`
/// that are IPs (CIDRs never match a Host header).
fn addresses(svc: &Svc<'_>) -> Vec<IpAddr> {
    let raw: Vec<&str> = match svc.source {
        Source::Kube(s) => {
            let spec = s.spec.as_ref();
            let mut ips: Vec<&str> = spec
                .and_then(|sp| sp.cluster_ips.as_deref())
                .unwrap_or_default()
                .iter()
                .map(String::as_str)
                .collect();
            if ips.is_empty()
                && let Some(ip) = spec.and_then(|sp| sp.cluster_ip.as_deref())
            {
                ips.push(ip);
            }
            ips
        }
        Source::Entry(se) => entry_addresses(se),
    };
    raw.into_iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .collect()
}

fn entry_addresses(se: &ServiceEntry) -> Vec<&str> {
    se.addresses().iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_short_forms() {
        assert_eq!(
            alt_hosts("gw.egress.svc.cluster.local", "egress"),
            vec!["gw", "gw.egress.svc", "gw.egress"]
        );
        assert_eq!(
            alt_hosts("gw.egress.svc.cluster.local", "apps"),
            vec!["gw.egress", "gw.egress.svc"]
        );
        assert!(alt_hosts("edition.cnn.com", "egress").is_empty());
        assert!(alt_hosts("foo.svc.cluster.local", "egress").is_empty());
    }

    #[test]
    fn catch_all_hosts() {
        let allow = catch_all(OutboundPolicy::AllowAny);
        assert_eq!(
            (allow.name.as_str(), allow.domains.as_slice()),
            ("allow_any", &["*".to_owned()][..])
        );
        let RouteAction::Forward(f) = &allow.routes[0].action else {
            panic!("allow_any forwards");
        };
        assert_eq!(f.clusters[0].cluster, PASSTHROUGH_CLUSTER);
        assert_eq!((f.retry.as_ref(), f.timeout), (None, None));
        let block = catch_all(OutboundPolicy::RegistryOnly);
        assert_eq!(block.name, "block_all");
        assert_eq!(
            block.routes[0].action,
            RouteAction::DirectResponse {
                status: 502,
                body: None
            }
        );
    }
}
