//! Shared by the `data_plane_*` tests, which run what the compiler produces through a started
//! [`Proxy`]: the gateway under test (on loopback, with a capturing access log), its proxy
//! options, and a recording upstream.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_compile::{GatewayIdentity, compile, inputs_from_resources};
use egress_identity::IdentityHandle;
use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::{Proxy, ProxyOptions, UpstreamOptions};
use egress_snapshot::snapshot::Snapshot;
use egress_testkit::HttpUpstream;
use tokio::sync::watch;

/// The seed's gateway namespace.
pub const NS: &str = "aks-istio-egress";
/// The seed's external host.
pub const CNN: &str = "edition.cnn.com";
/// Upper bound of every wait (never a performance assertion).
pub const WAIT: Duration = Duration::from_secs(20);

pub fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Listeners on loopback, `hosts` as the override table.
pub fn options(hosts: Vec<(String, Vec<IpAddr>)>) -> ProxyOptions {
    ProxyOptions {
        listen_address: Some(loopback()),
        upstream: UpstreamOptions {
            hosts,
            ..Default::default()
        },
        ..ProxyOptions::default()
    }
}

/// [`options`] with `edition.cnn.com` resolving to loopback.
pub fn cnn_to_loopback() -> ProxyOptions {
    options(vec![(CNN.into(), vec![loopback()])])
}

/// A recording HTTP upstream on an ephemeral loopback port.
pub async fn http_upstream() -> HttpUpstream {
    HttpUpstream::start(SocketAddr::new(loopback(), 0))
        .await
        .unwrap()
}

/// A started proxy serving one snapshot.
pub struct Gw {
    pub proxy: Proxy,
    _snapshots: watch::Sender<Arc<Snapshot>>,
    pub log: CapturedLines,
}

impl Gw {
    /// Serves `s` with `options` and workload identity `id`, lines captured.
    pub async fn start(s: Snapshot, options: ProxyOptions, id: Option<Arc<IdentityHandle>>) -> Gw {
        let (logger, log) = AccessLogger::capture();
        Gw::start_logging(s, options, id, logger, log).await
    }

    /// [`Gw::start`] with a given logger and its lines.
    pub async fn start_logging(
        s: Snapshot,
        options: ProxyOptions,
        id: Option<Arc<IdentityHandle>>,
        logger: AccessLogger,
        log: CapturedLines,
    ) -> Gw {
        let (tx, rx) = watch::channel(Arc::new(s));
        let proxy = Proxy::start(rx, options, id, logger).await.unwrap();
        Gw {
            proxy,
            _snapshots: tx,
            log,
        }
    }

    /// The one listener's address.
    pub fn addr(&self) -> SocketAddr {
        let bound = self.proxy.bound();
        assert_eq!(bound.len(), 1, "one listener expected: {bound:?}");
        bound[0].1
    }

    /// The `n`-th access-log line (waits for it).
    pub async fn line(&self, n: usize) -> String {
        let lines = self.log.wait_for(n, WAIT).await;
        assert!(lines.len() >= n, "expected {n} access-log lines: {lines:?}");
        lines[n - 1].clone()
    }
}

/// The seed's gateway (`istio: asm-egress-test` in the add-on's namespace) with Service ports
/// 80 and 443 mapped to `http` and `https` (0: ephemeral).
pub fn seed_gateway(http: u16, https: u16) -> GatewayIdentity {
    GatewayIdentity {
        namespace: NS.into(),
        labels: BTreeMap::from([("istio".into(), "asm-egress-test".into())]),
        service_account: "asm-egress-test".into(),
        revision: None,
        service_ports: BTreeMap::from([(80, http), (443, https)]),
    }
}

/// `resources` compiled for `id`, access logging on.
pub fn compiled(id: &GatewayIdentity, resources: Vec<egress_model::Resource>) -> Snapshot {
    let mut s = compile(id, &inputs_from_resources(resources), 1);
    s.access_log.path = Some("/dev/stdout".into());
    s
}
