//! What every connection handler shares: the current snapshot, the resolver, the workload
//! identity, the access logger, and per-connection facts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use egress_snapshot::snapshot::Snapshot;
use tokio::sync::watch;

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
}

impl Ctx {
    /// The snapshot to use for a new connection or request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// The configuration version a new request or connection runs under: the latest snapshot
    /// with its prepared access-log settings. Prepared once per snapshot (the first caller
    /// after a change builds it, later ones share it).
    pub fn active(&self) -> Arc<Active> {
        let snapshot = self.snapshot();
        if let Some(active) = self.active.load_full()
            && Arc::ptr_eq(&active.snapshot, &snapshot)
        {
            return active;
        }
        let active = Arc::new(Active {
            log: self.access_log.prepare(&snapshot.access_log),
            snapshot,
        });
        self.active.store(Some(Arc::clone(&active)));
        active
    }

    /// The access logger of a request or connection running under `active`.
    pub fn logger_for(&self, active: &Active) -> crate::accesslog::AccessLogger {
        self.access_log.pinned_to(Arc::clone(&active.log))
    }
}
