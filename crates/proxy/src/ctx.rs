//! What every connection handler shares: the current snapshot, the resolver, the workload
//! identity, the access logger, and per-connection facts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use egress_snapshot::snapshot::{
    ChainAction, Listener, ListenerKind, RouteConfig, Snapshot, VirtualHost,
};
use tokio::sync::watch;

use crate::http::vhost_index::VhostIndex;

/// Static options of a proxy instance.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Bind upstream connections to this source address (the static egress IP).
    pub source_address: Option<IpAddr>,
    /// Address listeners bind when a Gateway server has no `bind` (the pod IP); `None` = 0.0.0.0.
    pub listen_address: Option<IpAddr>,
    /// Health port (15021); `None` disables the health server.
    pub health_port: Option<u16>,
    /// Metrics port (Istio's merged 15020): `/stats/prometheus` and `/healthz/ready`; `None`
    /// disables it. Port 0 binds an ephemeral port.
    pub metrics_port: Option<u16>,
    /// Prometheus port (Envoy's 15090 `http-envoy-prom` listener): the same
    /// `/stats/prometheus` text as the metrics port; `None` disables it. Port 0 binds an
    /// ephemeral port.
    pub prometheus_port: Option<u16>,
    /// How upstreams are reached: name resolution, the address guard, extra roots.
    pub upstream: UpstreamOptions,
    /// Downstream limits: timeouts, request header limits, connections per listener.
    pub limits: crate::limits::Limits,
}

/// How a proxy reaches its upstreams, the same for gateways (`gateway run`), sidecars
/// (`sidecar run`) and every Pod of `egress up`: name resolution, the resolved-address guard and
/// the roots trusted for upstream TLS.
#[derive(Debug, Clone, Default)]
pub struct UpstreamOptions {
    /// Resolver overrides: names answered locally (`edition.cnn.com` -> 127.0.0.1).
    pub hosts: Vec<(String, Vec<IpAddr>)>,
    /// Resolve names missing from `hosts` with the system's DNS (`/etc/resolv.conf`). Off by
    /// default, so tests can never send a query off the machine; a real gateway turns it on.
    pub system_dns: bool,
    /// Ask only this DNS server (UDP, TCP on truncation) for names missing from `hosts`,
    /// instead of the system's configuration; implies `system_dns`. For operators with a
    /// dedicated resolver, and for tests (a stub server on loopback).
    pub dns_server: Option<SocketAddr>,
    /// Turn off the resolved-address guard ([`crate::guard`]): let DNS answers that are
    /// loopback, private, link-local, CGNAT, unspecified or cloud metadata addresses be
    /// connected to. Off by default; names in `hosts` and static endpoints are never guarded.
    pub allow_private_upstreams: bool,
    /// Extra PEM roots trusted for upstream TLS besides the system store.
    pub extra_roots_pem: Vec<String>,
}

/// Facts about one downstream connection, for routing, policy and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Client address.
    pub downstream_remote: SocketAddr,
    /// Address the client connected to.
    pub downstream_local: SocketAddr,
    /// SNI of the ClientHello, if any.
    pub sni: Option<String>,
    /// Peer SPIFFE identity when mesh mTLS was terminated.
    pub peer_identity: Option<String>,
    /// The Gateway server's (Service) port this connection arrived on.
    pub server_port: u16,
    /// True when downstream TLS was terminated here.
    pub tls_terminated: bool,
}

/// Shared state of a proxy instance.
pub struct Ctx {
    /// The latest snapshot.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Options.
    pub options: ProxyOptions,
    /// Upstream connection machinery (resolver, TLS connectors, pools).
    pub connector: crate::connect::Connector,
    /// The workload identity used for ISTIO_MUTUAL (server and client side).
    pub identity: Option<Arc<egress_identity::IdentityHandle>>,
    /// Access-log sink.
    pub access_log: crate::accesslog::AccessLogger,
    /// Graceful drain signal.
    pub drain: crate::drain::Drain,
    /// HTTP upstream pools and their counters.
    pub http: Arc<crate::http::HttpState>,
    /// The open downstream connections and the counters of the limits that fired.
    pub conns: Arc<crate::limits::Connections>,
    /// The prepared form of the latest snapshot ([`Ctx::active`]); empty until first used.
    pub active: arc_swap::ArcSwapOption<Active>,
}

/// One version of the configuration as a request uses it: the snapshot and what is prepared
/// from it (the access-log formats and filters), taken together once when a request or a
/// connection starts and kept until it ends. A configuration change therefore never mixes two
/// versions within one request (its route, policy, upstream and log line are all of the
/// version it started under); the next request, on a new or a kept-alive connection, uses the
/// new version (see ARCHITECTURE.md, "Configuration versions").
#[derive(Debug)]
pub struct Active {
    /// The snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Its access-log settings, prepared.
    pub log: Arc<crate::accesslog::LogFormat>,
    /// Its ISTIO_MUTUAL clusters, for the metrics' `source_principal` of what runs under it.
    pub mutual_tls: Arc<crate::metrics::MutualTls>,
    /// Listener name -> position in `snapshot.listeners` (the first of a name, as
    /// reconciliation keeps it).
    listeners: HashMap<String, usize>,
    /// Route table name -> where it is in the snapshot and its virtual-host index.
    routes: HashMap<String, PreparedTable>,
    /// Cluster name -> its generation: the same number as in the previous version when the
    /// cluster did not change, a new one when it did. Upstream pools are keyed by it, so a
    /// request never compares clusters (the comparison happens here, once per version).
    generations: HashMap<String, u64>,
    /// The route tables' regular expressions, compiled.
    regexes: crate::http::route::Regexes,
}

/// The source of new cluster generations.
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A route table of an [`Active`]: its place in the snapshot and its domain index.
#[derive(Debug)]
struct PreparedTable {
    at: TableAt,
    index: VhostIndex,
}

/// Where a route table sits in a snapshot.
#[derive(Debug, Clone, Copy)]
enum TableAt {
    /// `listeners[i]` is an HTTP listener.
    Listener(usize),
    /// `listeners[i]`'s filter chain `j` serves HTTP.
    Chain(usize, usize),
}

impl TableAt {
    /// The route table at this place of `snapshot`.
    fn config(self, snapshot: &Snapshot) -> Option<&RouteConfig> {
        match self {
            TableAt::Listener(i) => match &snapshot.listeners.get(i)?.kind {
                ListenerKind::Http(rc) => Some(rc),
                ListenerKind::Chains(_) => None,
            },
            TableAt::Chain(i, j) => match &snapshot.listeners.get(i)?.kind {
                ListenerKind::Chains(chains) => match &chains.get(j)?.action {
                    ChainAction::Http(rc) => Some(rc),
                    ChainAction::TcpProxy { .. } => None,
                },
                ListenerKind::Http(_) => None,
            },
        }
    }
}

/// One route table of the active version, ready for lookups.
#[derive(Debug, Clone, Copy)]
pub struct RouteTable<'a> {
    /// The table.
    pub config: &'a RouteConfig,
    /// Its virtual hosts by domain.
    pub index: &'a VhostIndex,
}

impl<'a> RouteTable<'a> {
    /// The virtual host serving `authority` (Envoy's order; see [`VhostIndex`]).
    pub fn select_vhost(self, authority: &str) -> Option<&'a VirtualHost> {
        self.index.select(&self.config.virtual_hosts, authority)
    }
}

impl Active {
    /// Prepares `snapshot` for serving: indexes its listeners and route tables (every domain
    /// index is built here, once per version, never on the request path) and numbers its
    /// clusters, keeping the numbers of those unchanged since `previous`.
    pub fn prepare(
        snapshot: Arc<Snapshot>,
        log: Arc<crate::accesslog::LogFormat>,
        previous: Option<&Active>,
    ) -> Active {
        let generations = snapshot
            .clusters
            .iter()
            .map(|(name, cluster)| {
                let kept = previous.and_then(|p| {
                    let before = p.snapshot.clusters.get(name)?;
                    (before == cluster).then(|| p.generations.get(name).copied())?
                });
                let generation = kept.unwrap_or_else(|| {
                    NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                });
                (name.clone(), generation)
            })
            .collect();
        let mut listeners = HashMap::new();
        let mut routes = HashMap::new();
        let mut add = |rc: &RouteConfig, at: TableAt| {
            routes
                .entry(rc.name.clone())
                .or_insert_with(|| PreparedTable {
                    at,
                    index: VhostIndex::build(&rc.virtual_hosts),
                });
        };
        for (i, l) in snapshot.listeners.iter().enumerate() {
            listeners.entry(l.name.clone()).or_insert(i);
            match &l.kind {
                ListenerKind::Http(rc) => add(rc, TableAt::Listener(i)),
                ListenerKind::Chains(chains) => {
                    for (j, c) in chains.iter().enumerate() {
                        if let ChainAction::Http(rc) = &c.action {
                            add(rc, TableAt::Chain(i, j));
                        }
                    }
                }
            }
        }
        let regexes =
            crate::http::route::Regexes::of(routes.values().filter_map(|t| t.at.config(&snapshot)));
        let mutual_tls = Arc::new(crate::metrics::mutual_tls_clusters(
            snapshot.clusters.values(),
        ));
        Active {
            snapshot,
            log,
            mutual_tls,
            listeners,
            routes,
            generations,
            regexes,
        }
    }

    /// The route tables' regular expressions, compiled for this version.
    pub fn regexes(&self) -> &crate::http::route::Regexes {
        &self.regexes
    }

    /// The generation of cluster `name` in this version (0 for a cluster it does not have).
    pub fn cluster_generation(&self, name: &str) -> u64 {
        self.generations.get(name).copied().unwrap_or(0)
    }

    /// The listener called `name` in this version.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners
            .get(name)
            .and_then(|&i| self.snapshot.listeners.get(i))
    }

    /// The route table called `name` in this version.
    pub fn route_table(&self, name: &str) -> Option<RouteTable<'_>> {
        let table = self.routes.get(name)?;
        let config = table.at.config(&self.snapshot)?;
        Some(RouteTable {
            config,
            index: &table.index,
        })
    }
}

impl Ctx {
    /// The snapshot to use for a new connection or request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// The configuration version a new request or connection runs under: the latest snapshot
    /// with its prepared access-log settings, listener and route-table indexes. Prepared once
    /// per snapshot: by the proxy as it applies the snapshot ([`Ctx::prepare`]), or else by the
    /// first caller after a change; later callers share it.
    pub fn active(&self) -> Arc<Active> {
        let snapshot = self.snapshot();
        let previous = self.active.load_full();
        if let Some(active) = &previous
            && Arc::ptr_eq(&active.snapshot, &snapshot)
        {
            return Arc::clone(active);
        }
        let log = self.access_log.prepare(&snapshot.access_log);
        let active = Arc::new(Active::prepare(snapshot, log, previous.as_deref()));
        self.active.store(Some(Arc::clone(&active)));
        active
    }

    /// Prepares the latest snapshot now, so no request pays for it (called as a snapshot is
    /// applied, before listeners are reconciled).
    pub fn prepare(&self) {
        let _ = self.active();
    }

    /// The access logger of a request or connection running under `active`.
    pub fn logger_for(&self, active: &Active) -> crate::accesslog::AccessLogger {
        self.access_log
            .pinned_to(Arc::clone(&active.log), Arc::clone(&active.mutual_tls))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::accesslog::AccessLogger;
    use egress_snapshot::snapshot::{FilterChain, HeaderOps, WeightedCluster};

    fn table(name: &str, domains: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.to_owned(),
            virtual_hosts: domains
                .iter()
                .map(|d| VirtualHost {
                    name: format!("{d}:80"),
                    domains: vec![(*d).to_owned()],
                    routes: Vec::new(),
                    require_tls: false,
                })
                .collect(),
        }
    }

    fn listener(name: &str, kind: ListenerKind) -> Listener {
        Listener {
            name: name.to_owned(),
            bind: None,
            port: 80,
            kind,
        }
    }

    fn chain(action: ChainAction) -> FilterChain {
        FilterChain {
            server_names: Vec::new(),
            server_port: 443,
            tls: None,
            action,
        }
    }

    #[test]
    fn a_prepared_version_finds_every_listener_and_route_table_it_holds() {
        let tcp = ChainAction::TcpProxy {
            clusters: vec![WeightedCluster {
                cluster: "c".into(),
                weight: 1,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
            }],
            route_name: None,
        };
        let snapshot = Snapshot {
            listeners: vec![
                listener(
                    "0.0.0.0_80",
                    ListenerKind::Http(table("http.80", &["a.com", "*"])),
                ),
                listener(
                    "0.0.0.0_443",
                    ListenerKind::Chains(vec![
                        chain(tcp),
                        chain(ChainAction::Http(table("https.443", &["b.com"]))),
                    ]),
                ),
                // A later listener of the same name is not served (reconciliation keeps the
                // first), and neither is its table of an already used name.
                listener(
                    "0.0.0.0_80",
                    ListenerKind::Http(table("http.80", &["x.com"])),
                ),
            ],
            ..Snapshot::default()
        };
        let log = AccessLogger::disabled().prepare(&snapshot.access_log);
        let active = Active::prepare(Arc::new(snapshot), log, None);

        let http = active.route_table("http.80").unwrap();
        assert_eq!(http.select_vhost("A.com:80").unwrap().name, "a.com:80");
        assert_eq!(http.select_vhost("x.com").unwrap().name, "*:80");
        let https = active.route_table("https.443").unwrap();
        assert_eq!(https.select_vhost("b.com").unwrap().name, "b.com:80");
        assert!(https.select_vhost("a.com").is_none());
        assert!(active.route_table("http.8080").is_none());

        assert!(matches!(
            active.listener("0.0.0.0_80").unwrap().kind,
            ListenerKind::Http(ref rc) if rc.virtual_hosts.len() == 2
        ));
        assert!(active.listener("0.0.0.0_443").is_some());
        assert!(active.listener("0.0.0.0_8443").is_none());
    }
}
