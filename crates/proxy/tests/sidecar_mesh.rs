//! The seed's path through the mesh (istio-egress.md §3.3, §3.4): a client behind the
//! sidecar (explicit proxy) → ISTIO_MUTUAL with the workload certificate → an egress gateway
//! [`Proxy`] terminating it → the external upstream, once as HTTP-in-mTLS (the gateway
//! originates TLS to the HTTPS upstream) and once as TLS-in-mTLS (the client's own TLS
//! carried inside the mesh mTLS, the gateway proxying TCP).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sidecar_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_proxy::accesslog::{AccessLogger, CapturedLines};
use egress_proxy::{Proxy, ProxyOptions};
use egress_snapshot::snapshot::{
    AccessLog, ChainAction, Cluster, FilterChain, Listener, ListenerKind, OutboundPolicy,
    RouteConfig, ServerTls, Snapshot, UpstreamTls, UpstreamTlsMode,
};
use egress_testkit::{CertFactory, HttpsUpstream};
use sidecar_support::*;
use tokio::sync::watch;

const GW_HOST: &str = "istio-egressgateway.istio-system.svc.cluster.local";
const CNN_443: &str = "outbound|443||edition.cnn.com";

/// The mesh: a CA, the gateway's identity and the client workload's (`default/sleep`).
struct Mesh {
    gateway_id: SpiffeId,
    gateway: Arc<IdentityHandle>,
    sleep: Arc<IdentityHandle>,
    /// The mesh root, PEM.
    root_pem: String,
}

fn mesh() -> Mesh {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let day = Duration::from_secs(86400);
    let handle = |id: &SpiffeId| {
        Arc::new(IdentityHandle::new(ca.issue(id, day).unwrap(), ca.root_pem()).unwrap())
    };
    let gateway_id = SpiffeId::new(
        "cluster.local",
        "istio-system",
        "istio-egressgateway-service-account",
    )
    .unwrap();
    let sleep_id = SpiffeId::new("cluster.local", "default", "sleep").unwrap();
    Mesh {
        gateway: handle(&gateway_id),
        sleep: handle(&sleep_id),
        gateway_id,
        root_pem: ca.root_pem().to_owned(),
    }
}

/// A gateway instance serving one ISTIO_MUTUAL chain for `edition.cnn.com` doing `action`.
struct Gateway {
    proxy: Proxy,
    _snapshots: watch::Sender<Arc<Snapshot>>,
    log: CapturedLines,
}

impl Gateway {
    async fn start(mesh: &Mesh, action: ChainAction, upstream_cluster: Cluster) -> Gateway {
        let listener = Listener {
            name: "0.0.0.0_8443".into(),
            bind: None,
            port: 0,
            kind: ListenerKind::Chains(vec![FilterChain {
                server_names: vec![CNN.into()],
                server_port: 443,
                tls: Some(ServerTls::IstioMutual {
                    subject_alt_names: vec![],
                }),
                action,
            }]),
        };
        let snapshot = Snapshot {
            version: 1,
            listeners: vec![listener],
            clusters: [(upstream_cluster.name.clone(), upstream_cluster)].into(),
            access_log: AccessLog {
                path: Some("/dev/stdout".into()),
                ..AccessLog::default()
            },
            ..Snapshot::default()
        };
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        let (logger, log) = AccessLogger::capture();
        let options = ProxyOptions {
            listen_address: Some(loopback()),
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start(rx, options, Some(Arc::clone(&mesh.gateway)), logger)
            .await
            .unwrap();
        Gateway {
            proxy,
            _snapshots: tx,
            log,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.bound()[0].1
    }

    async fn line(&self, n: usize) -> AccessLine {
        let lines = self.log.wait_for(n, WAIT).await;
        assert!(lines.len() >= n, "gateway log: {lines:?}");
        AccessLine::parse(&lines[n - 1])
    }
}

/// The sidecar's cluster for the gateway: `outbound|443|<subset>|istio-egressgateway…` with
/// DestinationRule `tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}`, checking the gateway's
/// SPIFFE identity.
fn gateway_cluster(subset: &str, gateway: SocketAddr, mesh: &Mesh) -> Cluster {
    let mut c = static_cluster(
        &format!("outbound|443|{subset}|{GW_HOST}"),
        GW_HOST,
        443,
        &[gateway],
    );
    c.external = false;
    c.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::IstioMutual,
        sni: Some(CNN.into()),
        subject_alt_names: vec![mesh.gateway_id.to_string()],
        ca_certificates: None,
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec![],
    });
    c
}

#[tokio::test]
async fn http_in_mtls_through_the_egress_gateway_which_originates_tls() {
    require_curl!();
    let mesh = mesh();
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &[CNN])
        .await
        .unwrap();
    // At the gateway: HTTPS server (ISTIO_MUTUAL) routing to edition.cnn.com:443, DR SIMPLE.
    let mut external = static_cluster(CNN_443, CNN, 443, &[upstream.local_addr()]);
    external.tls = Some(UpstreamTls {
        mode: UpstreamTlsMode::Simple,
        sni: None,
        subject_alt_names: vec![],
        ca_certificates: Some(certs.ca_pem().to_owned()),
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: vec![],
    });
    let routes = RouteConfig {
        name: "https.443.https.istio-egressgateway.istio-system".into(),
        virtual_hosts: vec![vhost(CNN, 443, vec![forward("cnn-from-gateway", CNN_443)])],
    };
    let gw = Gateway::start(&mesh, ChainAction::Http(routes), external).await;

    // At the sidecar: port 80 routes edition.cnn.com to the gateway (subset cnn, port 443).
    let to_gateway = gateway_cluster("cnn", gw.addr(), &mesh);
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(
            80,
            http_port(
                80,
                vec![vhost(
                    CNN,
                    80,
                    vec![forward("cnn-to-gateway", &to_gateway.name)],
                )],
            ),
        )],
        vec![to_gateway.clone()],
    );
    let sc = Sc::start_with_identity(snap, options(&[]), Some(Arc::clone(&mesh.sleep))).await;

    let out = sc
        .curl("http://edition.cnn.com/politics")
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert!(seen[0].tls);
    assert_eq!(seen[0].sni.as_deref(), Some(CNN), "the gateway's auto SNI");
    assert_eq!(seen[0].host.as_deref(), Some(CNN), "Host kept end to end");
    assert_eq!(seen[0].path, "/politics");
    let xfcc = seen[0].header("x-forwarded-client-cert").unwrap();
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/sleep"),
        "the gateway saw the workload's certificate: {xfcc}"
    );

    let line = sc.line(1).await;
    assert_eq!((line.code.as_str(), line.flags.as_str()), ("200", "-"));
    assert_eq!(line.cluster, to_gateway.name);
    assert_eq!(line.upstream_host, gw.addr().to_string());
    assert_eq!(line.route, "cnn-to-gateway");
    let gw_line = gw.line(1).await;
    assert_eq!(gw_line.authority, CNN);
    assert_eq!(gw_line.cluster, CNN_443);
    assert_eq!(
        gw_line.sni, CNN,
        "the sidecar sent the DestinationRule's SNI"
    );
    assert_eq!(
        egress_proxy::http::upstream_tls_handshakes(sc.sidecar.ctx(), &to_gateway.name),
        1
    );

    // Istio's metrics name the workload as source_principal for what it sent over
    // ISTIO_MUTUAL: the label comes from the version the request ran under. A version whose
    // cluster to the gateway is plain SIMPLE TLS (the gateway refuses it) counts its request
    // with source_principal "unknown".
    let principal = "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\"";
    let requests = |code: &str| {
        sc.sidecar
            .metrics()
            .render()
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .filter(|l| l.contains(&format!("response_code=\"{code}\"")))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let ok = requests("200");
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert!(ok[0].contains(principal), "{ok:?}");
    let mut plain = to_gateway.clone();
    if let Some(tls) = plain.tls.as_mut() {
        tls.mode = UpstreamTlsMode::Simple;
        tls.ca_certificates = Some(mesh.root_pem.clone());
    }
    let snap2 = snapshot(
        2,
        OutboundPolicy::RegistryOnly,
        vec![(
            80,
            http_port(
                80,
                vec![vhost(CNN, 80, vec![forward("cnn-to-gateway", &plain.name)])],
            ),
        )],
        vec![plain],
    );
    sc.swap(snap2).await;
    let out = sc
        .curl("http://edition.cnn.com/politics")
        .fetch()
        .await
        .unwrap();
    assert_eq!(
        out.status, 503,
        "the gateway wants the workload certificate: {out:?}"
    );
    let failed = requests("503");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("source_principal=\"unknown\""),
        "{failed:?}"
    );
}

#[tokio::test]
async fn tls_in_mtls_carries_the_clients_own_tls_to_the_upstream() {
    require_curl!();
    let mesh = mesh();
    let certs = CertFactory::new().unwrap();
    let dir = TempDir::new();
    let ca = certs.write_ca_file(dir.path()).unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &[CNN])
        .await
        .unwrap();
    // At the gateway: TLS server (ISTIO_MUTUAL) with a `tcp` route to edition.cnn.com:443.
    let external = static_cluster(CNN_443, CNN, 443, &[upstream.local_addr()]);
    let action = ChainAction::TcpProxy {
        clusters: vec![dest(CNN_443)],
        route_name: Some("cnn-tcp".into()),
    };
    let gw = Gateway::start(&mesh, action, external).await;

    // At the sidecar: port 443 routes SNI edition.cnn.com to the gateway.
    let to_gateway = gateway_cluster("cnn-tls", gw.addr(), &mesh);
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(
            443,
            tls_port(&[(&[CNN], &to_gateway.name, Some("cnn-tls"))]),
        )],
        vec![to_gateway.clone()],
    );
    let sc = Sc::start_with_identity(snap, options(&[]), Some(Arc::clone(&mesh.sleep))).await;

    let out = sc
        .curl("https://edition.cnn.com/politics")
        .cacert(&ca)
        .fetch()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}");
    let seen = upstream.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(seen[0].sni.as_deref(), Some(CNN), "curl's own ClientHello");
    assert_eq!(seen[0].path, "/politics");

    let line = sc.line(1).await;
    assert_eq!(line.request, "- - -");
    assert_eq!(line.cluster, to_gateway.name);
    assert_eq!(line.sni, CNN);
    assert_eq!(line.route, "cnn-tls");
    let gw_line = gw.line(1).await;
    assert_eq!(gw_line.cluster, CNN_443);
    assert_eq!(gw_line.route, "cnn-tcp");
}

#[tokio::test]
async fn istio_mutual_without_a_workload_identity_fails_with_uf() {
    require_curl!();
    let mesh = mesh();
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(any_port(), &certs, &[CNN])
        .await
        .unwrap();
    let external = static_cluster(CNN_443, CNN, 443, &[upstream.local_addr()]);
    let action = ChainAction::TcpProxy {
        clusters: vec![dest(CNN_443)],
        route_name: None,
    };
    let gw = Gateway::start(&mesh, action, external).await;
    let to_gateway = gateway_cluster("cnn", gw.addr(), &mesh);
    let snap = snapshot(
        1,
        OutboundPolicy::RegistryOnly,
        vec![(
            80,
            http_port(
                80,
                vec![vhost(CNN, 80, vec![forward("cnn", &to_gateway.name)])],
            ),
        )],
        vec![to_gateway],
    );
    let sc = Sc::start(snap, options(&[])).await;
    let out = sc.curl("http://edition.cnn.com/").fetch().await.unwrap();
    assert_eq!(out.status, 503, "{out:?}");
    assert!(sc.line(1).await.flags.starts_with("UF"));
    assert!(upstream.connections().is_empty());
}
