//! Shared helpers for the sidecar compiler's tests: the seed's `curl` workload, the AKS
//! egress gateway's Service and Pods, the seed's manifests, and lookups into a
//! [`SidecarSnapshot`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use egress_compile::snapshot::{
    OutboundPort, Route, RouteAction, RouteConfig, SidecarSnapshot, SniRoute, TcpRoute,
    VirtualHost, WorkloadIdentity,
};
use egress_compile::{compile_sidecar, inputs_from_resources};

use crate::common::{NS, resources};

/// The egress gateway's FQDN in the seed.
pub const GW_HOST: &str = "asm-egress-test.aks-istio-egress.svc.cluster.local";

/// The seed's `curl` workload in `aks-istio-egress` (revision `asm-1-24`).
pub fn curl() -> WorkloadIdentity {
    WorkloadIdentity {
        namespace: NS.to_owned(),
        labels: BTreeMap::from([("app".to_owned(), "curl".to_owned())]),
        service_account: "curl".to_owned(),
        revision: Some("asm-1-24".to_owned()),
        service_ports: BTreeMap::new(),
    }
}

/// Compile `yaml` for `id`.
pub fn compile_for(id: &WorkloadIdentity, yaml: &str) -> SidecarSnapshot {
    compile_sidecar(id, &inputs_from_resources(resources(yaml)), 1)
}

/// Compile `yaml` for the `curl` workload.
pub fn sidecar(yaml: &str) -> SidecarSnapshot {
    compile_for(&curl(), yaml)
}

/// A workload `app` in namespace `ns` (otherwise like `curl`).
pub fn workload(ns: &str, app: &str) -> WorkloadIdentity {
    WorkloadIdentity {
        namespace: ns.to_owned(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        ..curl()
    }
}

/// A ServiceEntry `name` in `ns` for `host` with one port.
pub fn se(name: &str, ns: &str, host: &str, port: u16, protocol: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts: ["{host}"]
  ports:
  - number: {port}
    name: p{port}
    protocol: {protocol}
  resolution: DNS
  {extra}
"#
    )
}

/// A mesh VirtualService `name` in the workload namespace for `hosts` with `body` (http/tls/tcp).
pub fn vs(name: &str, hosts: &str, body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n\
         spec:\n  hosts: {hosts}\n{body}"
    )
}

/// The seed's DestinationRule with the gateway's `cnn` subset.
pub const CNN_SUBSET: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: cnn
"#;

/// The add-on's egress gateway Service (`status-port` 15021, `http2` 80, `https` 443, each
/// targetPort = port, selecting `app`/`istio` = `asm-egress-test`) and two Running, Ready
/// gateway Pods.
pub const GATEWAY: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: asm-egress-test
spec:
  type: ClusterIP
  clusterIP: 10.0.128.17
  selector:
    app: asm-egress-test
    istio: asm-egress-test
  ports:
  - name: status-port
    port: 15021
    protocol: TCP
    targetPort: 15021
  - name: http2
    port: 80
    protocol: TCP
    targetPort: 80
  - name: https
    port: 443
    protocol: TCP
    targetPort: 443
---
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-asm-1-24-a
  labels:
    app: asm-egress-test
    istio: asm-egress-test
spec:
  serviceAccountName: asm-egress-test
  containers:
  - name: istio-proxy
    image: egress
status:
  phase: Running
  podIP: 10.244.0.7
  conditions:
  - type: Ready
    status: "True"
---
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-asm-1-24-b
  labels:
    app: asm-egress-test
    istio: asm-egress-test
spec:
  serviceAccountName: asm-egress-test
  containers:
  - name: istio-proxy
    image: egress
status:
  phase: Running
  podIP: 10.244.0.8
  conditions:
  - type: Ready
    status: "True"
"#;

/// The shared MeshConfig of `asm-1-24` with `outboundTrafficPolicy.mode: REGISTRY_ONLY`.
pub const REGISTRY_ONLY: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-shared-configmap-asm-1-24
  namespace: aks-istio-system
data:
  mesh: |-
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
"#;

/// Documents joined into one stream.
pub fn join(docs: &[&str]) -> String {
    docs.join("\n---\n")
}

/// The route table of HTTP port `port`.
pub fn http(s: &SidecarSnapshot, port: u16) -> &RouteConfig {
    match s.ports.get(&port) {
        Some(OutboundPort::Http(rc)) => rc,
        other => panic!("port {port} is not HTTP: {other:#?}"),
    }
}

/// The SNI routes of TLS port `port`.
pub fn tls(s: &SidecarSnapshot, port: u16) -> &[SniRoute] {
    match s.ports.get(&port) {
        Some(OutboundPort::Tls(r)) => r,
        other => panic!("port {port} is not TLS: {other:#?}"),
    }
}

/// The route of TCP port `port`.
pub fn tcp(s: &SidecarSnapshot, port: u16) -> &TcpRoute {
    match s.ports.get(&port) {
        Some(OutboundPort::Tcp(r)) => r,
        other => panic!("port {port} is not TCP: {other:#?}"),
    }
}

/// The virtual host called `name` (`<host>:<port>`, `allow_any`, `block_all`).
pub fn vh<'a>(rc: &'a RouteConfig, name: &str) -> &'a VirtualHost {
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name}: {:#?}", rc.virtual_hosts))
}

/// Names of the virtual hosts, in order.
pub fn vh_names(rc: &RouteConfig) -> Vec<&str> {
    rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect()
}

/// `(cluster, weight)` of a forwarding route.
pub fn to(r: &Route) -> Vec<(String, u32)> {
    match &r.action {
        RouteAction::Forward(f) => f
            .clusters
            .iter()
            .map(|w| (w.cluster.clone(), w.weight))
            .collect(),
        other => panic!("route {} does not forward: {other:?}", r.name),
    }
}

/// `(SNI hosts, clusters, route name)` of SNI routes.
pub fn sni(routes: &[SniRoute]) -> Vec<(Vec<&str>, Vec<&str>, Option<&str>)> {
    routes
        .iter()
        .map(|r| {
            (
                r.sni_hosts.iter().map(String::as_str).collect(),
                r.clusters.iter().map(|w| w.cluster.as_str()).collect(),
                r.route_name.as_deref(),
            )
        })
        .collect()
}

/// The seed's manifests (```yaml blocks and `<<EOF` heredocs, in order) with the how-to's
/// variables filled in for the `asm-egress-test` gateway, or `None` (with the reason
/// printed) when the shared material is not beside the repository.
pub fn seed_manifests() -> Option<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let path = root.join("seed/000_39c6bb10cf1ba6a2.txt");
    let Ok(text) = std::fs::read_to_string(&path) else {
        egress_testkit::skip("the seed is not beside the repository (../shared)");
        return None;
    };
    let vars = [
        ("$ISTIO_EGRESS_NAMESPACE", "aks-istio-egress"),
        ("$ISTIO_EGRESS_NAME", "asm-egress-test"),
        ("$EGRESS_GTW_SELECTOR", "asm-egress-test"),
    ];
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut fenced = false;
    for line in text.lines() {
        if let Some(buf) = current.as_mut() {
            let end = if fenced {
                line.trim_start().starts_with("```")
            } else {
                line.trim() == "EOF"
            };
            if end {
                out.push(current.take().unwrap());
            } else {
                buf.push_str(line);
                buf.push('\n');
            }
        } else if line.trim_start() == "```yaml" {
            current = Some(String::new());
            fenced = true;
        } else if line.contains("<<EOF") {
            current = Some(String::new());
            fenced = false;
        }
    }
    Some(
        out.into_iter()
            .map(|m| vars.iter().fold(m, |acc, (k, v)| acc.replace(k, v)))
            .collect(),
    )
}
