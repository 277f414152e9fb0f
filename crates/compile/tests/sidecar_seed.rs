//! The seed how-to's three egress scenarios as the `curl` workload's sidecar sees them: the
//! mesh rules steer edition.cnn.com to the egress gateway's `cnn` subset (HTTP on port 80,
//! SNI on port 443, ISTIO_MUTUAL on port 80 for TLS origination), the Host is not rewritten,
//! and the seed's REGISTRY_ONLY MeshConfig turns the catch-all into `block_all`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sidecar_common;

use std::net::SocketAddr;

use egress_compile::snapshot::{
    BLACKHOLE_CLUSTER, Discovery, Endpoint, OutboundPolicy, PASSTHROUGH_CLUSTER, RetryPolicy,
    RouteAction, SidecarSnapshot, UpstreamTlsMode,
};
use sidecar_common::*;

/// The seed's manifests: `[0]` the REGISTRY_ONLY ConfigMap, then each scenario's
/// ServiceEntry and its Gateway/DestinationRule/VirtualService set.
struct Seed {
    registry_only: String,
    scenarios: [String; 3],
}

fn seed() -> Option<Seed> {
    let m = seed_manifests()?;
    assert_eq!(m.len(), 7, "the seed's manifests changed: {m:#?}");
    assert!(m[0].contains("kind: ConfigMap"), "{}", m[0]);
    let scenario = |i: usize| join(&[GATEWAY, &m[i], &m[i + 1]]);
    Some(Seed {
        registry_only: m[0].clone(),
        scenarios: [scenario(1), scenario(3), scenario(5)],
    })
}

fn endpoints(port: u16) -> Discovery {
    Discovery::Static(
        ["10.244.0.7", "10.244.0.8"]
            .iter()
            .map(|ip| Endpoint {
                address: SocketAddr::new(ip.parse().unwrap(), port),
                weight: 1,
            })
            .collect(),
    )
}

fn gateway_cluster(port: u16) -> String {
    format!("outbound|{port}|cnn|{GW_HOST}")
}

fn assert_special_clusters(s: &SidecarSnapshot) {
    assert_eq!(
        s.clusters[PASSTHROUGH_CLUSTER].discovery,
        Discovery::OriginalDst
    );
    assert_eq!(
        s.clusters[BLACKHOLE_CLUSTER].discovery,
        Discovery::Static(vec![])
    );
}

#[test]
fn seed_http_scenario_routes_to_the_gateway_subset_without_rewriting_the_host() {
    let Some(seed) = seed() else { return };
    let s = sidecar(&seed.scenarios[0]);
    assert_eq!(s.outbound, OutboundPolicy::AllowAny);
    assert_eq!(
        s.ports.keys().copied().collect::<Vec<_>>(),
        [80, 443, 15021]
    );
    let rc = http(&s, 80);
    assert_eq!(rc.name, "80");
    assert_eq!(
        vh_names(rc),
        [
            &format!("{GW_HOST}:80") as &str,
            "edition.cnn.com:80",
            "allow_any"
        ]
    );
    let v = vh(rc, "edition.cnn.com:80");
    assert_eq!(v.domains, ["edition.cnn.com"]);
    // The mesh rule applies; the rule for the gateway (`gateways: [istio-egressgateway]`)
    // does not reach sidecars.
    assert_eq!(v.routes.len(), 1, "{:#?}", v.routes);
    assert_eq!(to(&v.routes[0]), [(gateway_cluster(80), 100)]);
    let RouteAction::Forward(f) = &v.routes[0].action else {
        panic!()
    };
    assert_eq!(
        f.rewrite_authority, None,
        "the Host header is not rewritten"
    );
    assert_eq!(f.timeout, None);
    assert_eq!(f.retry, Some(RetryPolicy::istio_default()));

    let c = &s.clusters[&gateway_cluster(80)];
    assert_eq!((c.host.as_str(), c.port), (GW_HOST, 80));
    assert_eq!(c.discovery, endpoints(80));
    assert_eq!(c.tls, None, "no DestinationRule TLS, no auto mTLS label");
    assert!(!c.external);

    // Port 443 (HTTPS in the ServiceEntry and the gateway Service): default SNI routes.
    assert_eq!(
        sni(tls(&s, 443)),
        [
            (
                vec![GW_HOST],
                vec![&format!("outbound|443||{GW_HOST}") as &str],
                None
            ),
            (
                vec!["edition.cnn.com"],
                vec!["outbound|443||edition.cnn.com"],
                None
            ),
        ]
    );
    assert_eq!(
        s.clusters["outbound|443||edition.cnn.com"].discovery,
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: 443
        }
    );
    assert_special_clusters(&s);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn seed_https_scenario_routes_the_sni_to_the_gateway_subset() {
    let Some(seed) = seed() else { return };
    let s = sidecar(&seed.scenarios[1]);
    assert_eq!(
        sni(tls(&s, 443)),
        [
            (
                vec!["edition.cnn.com"],
                vec![&gateway_cluster(443) as &str],
                Some("direct-cnn-through-egress-gateway")
            ),
            (
                vec![GW_HOST],
                vec![&format!("outbound|443||{GW_HOST}") as &str],
                None
            ),
        ]
    );
    let c = &s.clusters[&gateway_cluster(443)];
    assert_eq!(c.discovery, endpoints(443));
    assert_eq!(c.tls, None, "the client's TLS passes through untouched");
    // The ServiceEntry has no HTTP port: port 80 only has the gateway Service's host.
    assert_eq!(
        vh_names(http(&s, 80)),
        [&format!("{GW_HOST}:80") as &str, "allow_any"]
    );
    assert!(!s.clusters.contains_key("outbound|443||edition.cnn.com"));
    assert_special_clusters(&s);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn seed_tls_origination_scenario_speaks_istio_mutual_to_the_gateway() {
    let Some(seed) = seed() else { return };
    let s = sidecar(&seed.scenarios[2]);
    let v = vh(http(&s, 80), "edition.cnn.com:80");
    assert_eq!(to(&v.routes[0]), [(gateway_cluster(80), 100)]);
    let RouteAction::Forward(f) = &v.routes[0].action else {
        panic!()
    };
    assert_eq!(f.rewrite_authority, None);

    let c = &s.clusters[&gateway_cluster(80)];
    assert_eq!(c.discovery, endpoints(80));
    let t = c
        .tls
        .as_ref()
        .expect("ISTIO_MUTUAL from the subset's port-level settings");
    assert_eq!(t.mode, UpstreamTlsMode::IstioMutual);
    assert_eq!(
        t.sni.as_deref(),
        Some("edition.cnn.com"),
        "the DestinationRule's sni, which the gateway server's host matches"
    );
    assert_eq!(
        t.subject_alt_names,
        ["spiffe://cluster.local/ns/aks-istio-egress/sa/asm-egress-test"],
        "the gateway's service account"
    );
    assert_eq!(t.alpn, ["istio-peer-exchange", "istio", "h2"], "port http2");

    // The origination DestinationRule has no exportTo or workloadSelector, so it applies to
    // the sidecar's own edition.cnn.com:443 cluster too, as in Istio.
    let direct = &s.clusters["outbound|443||edition.cnn.com"];
    assert_eq!(
        direct.tls.as_ref().map(|t| t.mode),
        Some(UpstreamTlsMode::Simple)
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn seed_registry_only_mesh_config_blocks_unknown_hosts() {
    let Some(seed) = seed() else { return };
    for scenario in &seed.scenarios {
        let s = sidecar(&join(&[scenario, &seed.registry_only]));
        assert_eq!(s.outbound, OutboundPolicy::RegistryOnly);
        let rc = http(&s, 80);
        let last = rc.virtual_hosts.last().unwrap();
        assert_eq!(last.name, "block_all");
        assert_eq!(last.domains, ["*"]);
        assert_eq!(last.routes[0].name, "block_all");
        assert_eq!(
            last.routes[0].action,
            RouteAction::DirectResponse {
                status: 502,
                body: None
            }
        );
        assert_special_clusters(&s);
    }
}
