//! A sidecar's outbound configuration in the routable form the data plane serves: the compiler's
//! [`SidecarSnapshot`] becomes a gateway-shaped [`Snapshot`] ([`routable`]) whose route tables
//! the HTTP router serves unchanged, carrying the sidecar snapshot itself as
//! [`Snapshot::sidecar`] (ports, outbound policy). Built once per configuration version by
//! whatever compiles it, never by the proxy.
//!
//! Route tables, looked up by name like a gateway's RDS names:
//! * `"<port>"` ([`port_table`]) for an HTTP port (its table, with the policy's catch-all
//!   virtual host appended when the table has no `*` domain, as Istio always ends it with
//!   `allow_any`/`block_all`), and for an opaque TCP port (one `*` virtual host forwarding to
//!   the TCP route's clusters, for an explicit-proxy HTTP request to such a port);
//! * `allow_any` and `block_all` ([`policy_table`]): the policy catch-alls alone, for HTTP
//!   requests to ports that have no HTTP table (Istio's `allow_any` route to
//!   `PassthroughCluster`, and `block_all`'s direct 502 with an empty body).
//!
//! `PassthroughCluster` (ORIGINAL_DST) and `BlackHoleCluster` (no endpoints) are added to the
//! clusters when the snapshot lacks them.

use std::sync::Arc;

use crate::snapshot::{
    ALLOW_ANY_ROUTE, BLACKHOLE_CLUSTER, BLOCK_ALL_ROUTE, Cluster, Discovery, Forward, HeaderOps,
    LbPolicy, Listener, ListenerKind, MeshSettings, OutboundPolicy, OutboundPort,
    PASSTHROUGH_CLUSTER, PoolSettings, Route, RouteAction, RouteConfig, RouteMatch,
    SidecarSnapshot, Snapshot, VirtualHost, WeightedCluster,
};

/// The name of the routable form's route table for HTTP to destination port `port`.
pub fn port_table(port: u16) -> String {
    port.to_string()
}

/// The routable form's route table holding only the catch-all of `policy`.
pub fn policy_table(policy: OutboundPolicy) -> &'static str {
    match policy {
        OutboundPolicy::AllowAny => ALLOW_ANY_ROUTE,
        OutboundPolicy::RegistryOnly => BLOCK_ALL_ROUTE,
    }
}

/// Istio's `allow_any` virtual host: everything to `PassthroughCluster`, no timeout, no
/// retries.
pub fn allow_any_vhost() -> VirtualHost {
    catch_all_vhost(
        ALLOW_ANY_ROUTE,
        RouteAction::Forward(Forward {
            clusters: vec![weighted(PASSTHROUGH_CLUSTER)],
            timeout: None,
            retry: None,
            rewrite_uri: None,
            rewrite_authority: None,
        }),
    )
}

/// Istio's `block_all` virtual host: a direct 502 with an empty body.
pub fn block_all_vhost() -> VirtualHost {
    catch_all_vhost(
        BLOCK_ALL_ROUTE,
        RouteAction::DirectResponse {
            status: 502,
            body: None,
        },
    )
}

/// The catch-all virtual host of `policy`.
pub fn policy_vhost(policy: OutboundPolicy) -> VirtualHost {
    match policy {
        OutboundPolicy::AllowAny => allow_any_vhost(),
        OutboundPolicy::RegistryOnly => block_all_vhost(),
    }
}

/// A destination of weight 1 without header operations.
pub fn weighted(cluster: &str) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.to_owned(),
        weight: 1,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

fn catch_all_vhost(name: &str, action: RouteAction) -> VirtualHost {
    VirtualHost {
        name: name.to_owned(),
        domains: vec!["*".to_owned()],
        routes: vec![Route {
            name: name.to_owned(),
            matcher: RouteMatch::default(),
            action,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }],
        require_tls: false,
    }
}

/// `PassthroughCluster`: the destination the client asked for.
pub fn passthrough_cluster(mesh: &MeshSettings) -> Cluster {
    special_cluster(PASSTHROUGH_CLUSTER, Discovery::OriginalDst, mesh)
}

/// `BlackHoleCluster`: no endpoints, so every connection fails with `UH`.
pub fn blackhole_cluster(mesh: &MeshSettings) -> Cluster {
    special_cluster(BLACKHOLE_CLUSTER, Discovery::Static(Vec::new()), mesh)
}

fn special_cluster(name: &str, discovery: Discovery, mesh: &MeshSettings) -> Cluster {
    Cluster {
        name: name.to_owned(),
        host: name.to_owned(),
        port: 0,
        discovery,
        lb: LbPolicy::RoundRobin,
        tls: None,
        connect_timeout: mesh.connect_timeout,
        pool: PoolSettings::default(),
        outlier: None,
        external: false,
        tunnel: None,
    }
}

/// The routable form of `snapshot` (see the module documentation), carrying `snapshot` itself
/// as [`Snapshot::sidecar`]. Its listeners are never bound: they only carry the route tables.
pub fn routable(snapshot: SidecarSnapshot) -> Snapshot {
    let snapshot = Arc::new(snapshot);
    let catch_all = policy_vhost(snapshot.outbound);
    let mut listeners = Vec::with_capacity(snapshot.ports.len() + 2);
    for (port, outbound) in &snapshot.ports {
        let table = match outbound {
            OutboundPort::Http(rc) => {
                let mut virtual_hosts = rc.virtual_hosts.clone();
                let has_catch_all = virtual_hosts
                    .iter()
                    .any(|vh| vh.domains.iter().any(|d| d == "*"));
                if !has_catch_all {
                    virtual_hosts.push(catch_all.clone());
                }
                virtual_hosts
            }
            OutboundPort::Tcp(route) => vec![VirtualHost {
                name: format!("tcp:{port}"),
                domains: vec!["*".to_owned()],
                routes: vec![Route {
                    name: route.route_name.clone().unwrap_or_default(),
                    matcher: RouteMatch::default(),
                    action: RouteAction::Forward(Forward {
                        clusters: route.clusters.clone(),
                        timeout: None,
                        retry: None,
                        rewrite_uri: None,
                        rewrite_authority: None,
                    }),
                    request_headers: HeaderOps::default(),
                    response_headers: HeaderOps::default(),
                }],
                require_tls: false,
            }],
            OutboundPort::Tls(_) => continue,
        };
        listeners.push(table_listener(&port_table(*port), *port, table));
    }
    listeners.push(table_listener(ALLOW_ANY_ROUTE, 0, vec![allow_any_vhost()]));
    listeners.push(table_listener(BLOCK_ALL_ROUTE, 0, vec![block_all_vhost()]));
    let mut clusters = snapshot.clusters.clone();
    clusters
        .entry(PASSTHROUGH_CLUSTER.to_owned())
        .or_insert_with(|| passthrough_cluster(&snapshot.mesh));
    clusters
        .entry(BLACKHOLE_CLUSTER.to_owned())
        .or_insert_with(|| blackhole_cluster(&snapshot.mesh));
    Snapshot {
        version: snapshot.version,
        listeners,
        clusters,
        access_log: snapshot.access_log.clone(),
        mesh: snapshot.mesh.clone(),
        // Sidecars enforce no AuthorizationPolicy on outbound traffic.
        authz: Default::default(),
        warnings: snapshot.warnings.clone(),
        sidecar: Some(snapshot),
    }
}

fn table_listener(name: &str, port: u16, virtual_hosts: Vec<VirtualHost>) -> Listener {
    Listener {
        name: format!("sidecar_{name}"),
        bind: None,
        port,
        kind: ListenerKind::Http(RouteConfig {
            name: name.to_owned(),
            virtual_hosts,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;

    fn vhost(domain: &str) -> VirtualHost {
        VirtualHost {
            name: format!("{domain}:80"),
            domains: vec![domain.to_owned()],
            routes: Vec::new(),
            require_tls: false,
        }
    }

    fn snapshot(policy: OutboundPolicy) -> SidecarSnapshot {
        let tcp = crate::snapshot::TcpRoute {
            clusters: vec![weighted("outbound|3306||db.example")],
            route_name: Some("db".into()),
        };
        let tls = vec![crate::snapshot::SniRoute {
            sni_hosts: vec!["edition.cnn.com".into()],
            clusters: vec![weighted("outbound|443||edition.cnn.com")],
            route_name: None,
        }];
        SidecarSnapshot {
            version: 3,
            outbound: policy,
            ports: BTreeMap::from([
                (
                    80,
                    OutboundPort::Http(RouteConfig {
                        name: "80".into(),
                        virtual_hosts: vec![vhost("edition.cnn.com")],
                    }),
                ),
                (443, OutboundPort::Tls(tls)),
                (3306, OutboundPort::Tcp(tcp)),
            ]),
            ..SidecarSnapshot::default()
        }
    }

    #[test]
    fn view_has_port_tables_catch_alls_and_special_clusters() {
        let s = snapshot(OutboundPolicy::RegistryOnly);
        let view = routable(s);
        assert_eq!(view.version, 3);
        let rc = view.route_config("80").unwrap();
        let names: Vec<&str> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["edition.cnn.com:80", BLOCK_ALL_ROUTE]);
        let tcp = view.route_config("3306").unwrap();
        assert_eq!(tcp.virtual_hosts[0].routes[0].name, "db");
        assert!(view.route_config("443").is_none());
        assert!(view.route_config(ALLOW_ANY_ROUTE).is_some());
        assert!(view.route_config(BLOCK_ALL_ROUTE).is_some());
        assert_eq!(
            view.clusters[PASSTHROUGH_CLUSTER].discovery,
            Discovery::OriginalDst
        );
        assert_eq!(
            view.clusters[BLACKHOLE_CLUSTER].discovery,
            Discovery::Static(Vec::new())
        );
    }

    #[test]
    fn a_table_with_its_own_catch_all_is_kept_as_is() {
        let mut s = snapshot(OutboundPolicy::AllowAny);
        if let Some(OutboundPort::Http(rc)) = s.ports.get_mut(&80) {
            rc.virtual_hosts.push(allow_any_vhost());
        }
        let view = routable(s);
        assert_eq!(view.route_config("80").unwrap().virtual_hosts.len(), 2);
    }
}
