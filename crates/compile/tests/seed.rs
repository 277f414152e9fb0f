//! The seed how-to's three egress scenarios, compiled for the `asm-egress-test` gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use egress_compile::snapshot::{
    ChainAction, Discovery, LbPolicy, RetryPolicy, ServerTls, UpstreamTlsMode,
};

const HTTP_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: asm-egress-test
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: asm-egress-test.aks-istio-egress.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 100
"#;

#[test]
fn http_egress_gateway() {
    let s = snap(&format!("{CNN_SE}---{HTTP_GATEWAY}"));
    assert_eq!(s.listeners.len(), 1, "{:#?}", s.listeners);
    let l = listener(&s, "0.0.0.0_8080");
    assert_eq!((l.port, l.bind), (8080, None));
    let rc = http_table(l);
    assert_eq!(rc.name, "http.8080");
    assert_eq!(rc.virtual_hosts.len(), 1);
    let v = vhost(rc, "edition.cnn.com:80");
    assert_eq!(v.domains, vec!["edition.cnn.com"]);
    assert!(!v.require_tls);
    // The mesh-only rule is dropped at the gateway; the gateway rule forwards.
    assert_eq!(v.routes.len(), 1);
    let r = &v.routes[0];
    assert_eq!(
        r.name, "",
        "unnamed VirtualService routes have no name (logged as -)"
    );
    assert_eq!(
        targets(r),
        vec![("outbound|80||edition.cnn.com".to_owned(), 100)]
    );
    let f = forward(r);
    assert_eq!(f.timeout, None);
    assert_eq!(f.retry, Some(RetryPolicy::istio_default()));
    assert_eq!(f.rewrite_authority, None);

    assert_eq!(s.clusters.len(), 1);
    let c = cluster(&s, "outbound|80||edition.cnn.com");
    assert_eq!(
        c.discovery,
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: 80
        }
    );
    assert!(c.external);
    assert_eq!(c.tls, None);
    assert_eq!(c.lb, LbPolicy::LeastRequest);
    assert_eq!(c.connect_timeout, std::time::Duration::from_secs(10));
    assert_eq!(s.version, 1);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

const PASSTHROUGH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: asm-egress-test
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts:
    - edition.cnn.com
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: asm-egress-test.aks-istio-egress.svc.cluster.local
        subset: cnn
        port:
          number: 443
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
"#;

#[test]
fn https_passthrough_egress_gateway() {
    let s = snap(PASSTHROUGH);
    assert_eq!(s.listeners.len(), 1);
    let l = listener(&s, "0.0.0.0_8443");
    let cs = chains(l);
    assert_eq!(cs.len(), 1, "{cs:#?}");
    let c = &cs[0];
    assert_eq!(c.server_names, vec!["edition.cnn.com"]);
    assert_eq!(c.server_port, 443);
    assert_eq!(c.tls, None);
    assert_eq!(
        tcp_targets(c),
        vec![("outbound|443||edition.cnn.com".to_owned(), 100)]
    );
    match &c.action {
        ChainAction::TcpProxy { route_name, .. } => assert_eq!(route_name, &None),
        other => panic!("{other:?}"),
    }
    let cl = cluster(&s, "outbound|443||edition.cnn.com");
    assert_eq!(
        cl.discovery,
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: 443
        }
    );
    assert_eq!(cl.tls, None);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

const ORIGINATION: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: asm-egress-test
  servers:
  - port:
      number: 80
      name: https-port-for-tls-origination
      protocol: HTTPS
    hosts:
    - edition.cnn.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: cnn
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 80
        tls:
          mode: ISTIO_MUTUAL
          sni: edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: asm-egress-test.aks-istio-egress.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com
"#;

#[test]
fn tls_origination_egress_gateway() {
    let s = snap(ORIGINATION);
    assert_eq!(s.listeners.len(), 1);
    // Server port 80 binds the Service's targetPort 8080.
    let l = listener(&s, "0.0.0.0_8080");
    let cs = chains(l);
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    assert_eq!(c.server_names, vec!["edition.cnn.com"]);
    assert_eq!(c.server_port, 80);
    assert_eq!(
        c.tls,
        Some(ServerTls::IstioMutual {
            subject_alt_names: vec![]
        })
    );
    let ChainAction::Http(rc) = &c.action else {
        panic!("HTTPS-terminating chain must route HTTP: {c:?}");
    };
    assert_eq!(
        rc.name,
        "https.80.https-port-for-tls-origination.istio-egressgateway.aks-istio-egress"
    );
    assert_eq!(s.route_config(&rc.name), Some(rc));
    let v = vhost(rc, "edition.cnn.com:80");
    assert_eq!(v.routes.len(), 1);
    assert_eq!(
        targets(&v.routes[0]),
        vec![("outbound|443||edition.cnn.com".to_owned(), 100)]
    );

    let cl = cluster(&s, "outbound|443||edition.cnn.com");
    let tls = cl.tls.as_ref().expect("TLS origination");
    assert_eq!(tls.mode, UpstreamTlsMode::Simple);
    assert_eq!(tls.sni, None, "no DR sni: SNI comes from the Host header");
    assert!(tls.subject_alt_names.is_empty());
    assert_eq!(tls.ca_certificates, None, "system roots");
    assert!(tls.alpn.is_empty());
    // Istio: port-level settings replace the whole top-level policy (they do not inherit
    // `loadBalancer: ROUND_ROBIN`), so port 443 gets Istio's default LEAST_REQUEST.
    assert_eq!(cl.lb, LbPolicy::LeastRequest);
    assert_eq!(
        cl.discovery,
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: 443
        }
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn seed_round_robin_applies_where_no_port_level_settings_override_it() {
    // Same DR, but the route goes to port 80 which has no port-level settings.
    let yaml = ORIGINATION.replace(
        "        port:\n          number: 443\n      weight: 100",
        "        port:\n          number: 80\n      weight: 100",
    );
    let s = snap(&yaml);
    let cl = cluster(&s, "outbound|80||edition.cnn.com");
    assert_eq!(cl.lb, LbPolicy::RoundRobin);
    assert_eq!(cl.tls, None);
}
