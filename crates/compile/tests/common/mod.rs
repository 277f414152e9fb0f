//! Shared helpers for the compiler's table tests: real manifests decoded by `egress_model`,
//! the seed's gateway identity, and lookups into a snapshot.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use egress_compile::snapshot::{
    ChainAction, Cluster, FilterChain, Forward, Listener, ListenerKind, Route, RouteAction,
    RouteConfig, VirtualHost,
};
use egress_compile::{GatewayIdentity, Inputs, Snapshot, compile, inputs_from_resources};
use egress_model::{DecodeOptions, Outcome, Resource, decode_file};

/// The egress gateway's namespace in the seed.
pub const NS: &str = "aks-istio-egress";

/// Decode a YAML stream (objects without a namespace land in [`NS`]); every document must be
/// valid.
pub fn resources(yaml: &str) -> Vec<Resource> {
    let opts = DecodeOptions {
        default_namespace: Some(NS.to_owned()),
        enforce_namespace: false,
    };
    decode_file("test.yaml", yaml, &opts)
        .into_iter()
        .map(|o| match o {
            Outcome::Valid(d) => d.resource,
            other => panic!("test manifest is not valid: {:?}", other.diagnostics()),
        })
        .collect()
}

/// Inputs from a YAML stream.
pub fn inputs(yaml: &str) -> Inputs {
    inputs_from_resources(resources(yaml))
}

/// The seed's gateway instance: `asm-egress-test` in `aks-istio-egress`, Service ports
/// 80->8080 and 443->8443.
pub fn identity() -> GatewayIdentity {
    GatewayIdentity {
        namespace: NS.to_owned(),
        labels: BTreeMap::from([
            ("istio".to_owned(), "asm-egress-test".to_owned()),
            ("app".to_owned(), "asm-egress-test".to_owned()),
        ]),
        service_account: "asm-egress-test".to_owned(),
        revision: Some("asm-1-24".to_owned()),
        service_ports: BTreeMap::from([(80, 8080), (443, 8443)]),
    }
}

/// Compile `yaml` for the seed's gateway.
pub fn snap(yaml: &str) -> Snapshot {
    compile(&identity(), &inputs(yaml), 1)
}

pub fn listener<'a>(s: &'a Snapshot, name: &str) -> &'a Listener {
    s.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}: {:#?}", s.listeners))
}

pub fn http_table(l: &Listener) -> &RouteConfig {
    match &l.kind {
        ListenerKind::Http(rc) => rc,
        other => panic!("listener {} is not plaintext HTTP: {other:?}", l.name),
    }
}

pub fn chains(l: &Listener) -> &[FilterChain] {
    match &l.kind {
        ListenerKind::Chains(c) => c,
        other => panic!("listener {} has no chains: {other:?}", l.name),
    }
}

pub fn vhost<'a>(rc: &'a RouteConfig, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vhost {name}: {:#?}", rc.virtual_hosts))
}

pub fn forward(r: &Route) -> &Forward {
    match &r.action {
        RouteAction::Forward(f) => f,
        other => panic!("route {} does not forward: {other:?}", r.name),
    }
}

/// `(cluster, weight)` of a route.
pub fn targets(r: &Route) -> Vec<(String, u32)> {
    forward(r)
        .clusters
        .iter()
        .map(|w| (w.cluster.clone(), w.weight))
        .collect()
}

/// `(cluster, weight)` of a TCP chain.
pub fn tcp_targets(c: &FilterChain) -> Vec<(String, u32)> {
    match &c.action {
        ChainAction::TcpProxy { clusters, .. } => clusters
            .iter()
            .map(|w| (w.cluster.clone(), w.weight))
            .collect(),
        other => panic!("chain is not a TCP proxy: {other:?}"),
    }
}

pub fn cluster<'a>(s: &'a Snapshot, name: &str) -> &'a Cluster {
    s.clusters
        .get(name)
        .unwrap_or_else(|| panic!("no cluster {name}: {:?}", s.clusters.keys()))
}

/// The `ServiceEntry` for `edition.cnn.com` used across tests (80 HTTP, 443 HTTPS, DNS).
pub const CNN_SE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"#;

/// The seed gateway's Service and one ready pod.
pub const GATEWAY_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: asm-egress-test
spec:
  selector:
    istio: asm-egress-test
  ports:
  - name: status-port
    port: 15021
    targetPort: 15021
  - name: http2
    port: 80
    targetPort: 8080
  - name: https
    port: 443
    targetPort: 8443
---
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-abc
  labels:
    istio: asm-egress-test
    app: asm-egress-test
spec:
  serviceAccountName: asm-egress-test
  containers:
  - name: istio-proxy
    image: egress
status:
  podIP: 10.244.0.7
  conditions:
  - type: Ready
    status: "True"
"#;
