//! Upstream clusters: discovery per resolution, in-cluster Services, DestinationRule
//! selection and policies, subsets, TLS origination, MeshConfig and access logging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use egress_compile::snapshot::{
    Discovery, Endpoint, LbPolicy, LogEncoding, PemIdentity, UpstreamTlsMode,
};

/// An HTTP gateway on port 80 for any host, routing everything to `dest`.
fn route_to(dest: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress
spec:
  selector: {{istio: asm-egress-test}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: ['*']
  gateways: [egress]
  http:
  - route:
    - destination: {dest}
"#
    )
}

fn endpoint(addr: &str) -> Endpoint {
    Endpoint {
        address: addr.parse().unwrap(),
        weight: 1,
    }
}

#[test]
fn resolution_none_has_no_endpoints_at_a_gateway() {
    let se = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wild
spec:
  hosts: ['*.wikipedia.org']
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: NONE
"#;
    let s = snap(&format!(
        "{se}---{}",
        route_to("{host: '*.wikipedia.org', port: {number: 80}}")
    ));
    let c = cluster(&s, "outbound|80||*.wikipedia.org");
    assert_eq!(c.discovery, Discovery::Static(vec![]));
    assert!(
        s.warnings.iter().any(|w| w.contains("503 UH")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn unknown_hosts_ports_and_subsets_have_no_cluster() {
    let s = snap(&route_to("{host: nowhere.example.com, port: {number: 80}}"));
    let r = &http_table(listener(&s, "0.0.0.0_8080")).virtual_hosts[0].routes[0];
    assert_eq!(
        targets(r),
        vec![("outbound|80||nowhere.example.com".into(), 100)]
    );
    assert!(s.clusters.is_empty());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("outbound|80||nowhere.example.com") && w.contains("503 NC")),
        "{:?}",
        s.warnings
    );
    let s = snap(&format!(
        "{CNN_SE}---{}",
        route_to("{host: edition.cnn.com, port: {number: 8443}}")
    ));
    assert!(s.clusters.is_empty());
    let s = snap(&format!(
        "{CNN_SE}---{}",
        route_to("{host: edition.cnn.com, subset: v1, port: {number: 80}}")
    ));
    assert!(s.clusters.is_empty());
    assert!(
        s.warnings.iter().any(|w| w.contains("subset \"v1\"")),
        "{:?}",
        s.warnings
    );
}

const SUBSET_DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: cnn
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL}
"#;

#[test]
fn istio_mutual_subset_gets_the_default_sni_and_pod_endpoints() {
    let dest = "{host: asm-egress-test, subset: cnn, port: {number: 80}}";
    let s = snap(&format!(
        "{GATEWAY_SERVICE}---{SUBSET_DR}---{}",
        route_to(dest)
    ));
    let name = "outbound|80|cnn|asm-egress-test.aks-istio-egress.svc.cluster.local";
    let c = cluster(&s, name);
    assert_eq!(c.host, "asm-egress-test.aks-istio-egress.svc.cluster.local");
    assert_eq!(c.port, 80);
    assert!(!c.external);
    assert_eq!(
        c.discovery,
        Discovery::Static(vec![endpoint("10.244.0.7:8080")])
    );
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.mode, UpstreamTlsMode::IstioMutual);
    assert_eq!(
        tls.sni.as_deref(),
        Some("outbound_.80_.cnn_.asm-egress-test.aks-istio-egress.svc.cluster.local")
    );
    assert_eq!(
        tls.subject_alt_names,
        vec!["spiffe://cluster.local/ns/aks-istio-egress/sa/asm-egress-test"]
    );
    // The Service port is named http2: an HTTP/2 cluster.
    assert_eq!(tls.alpn, vec!["istio-peer-exchange", "istio", "h2"]);
}

#[test]
fn subset_labels_and_readiness_filter_pods() {
    let extra = r#"
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-v2
  labels: {istio: asm-egress-test, version: v2}
spec:
  containers:
  - name: istio-proxy
    image: egress
    ports:
    - {name: http-alt, containerPort: 9090}
status:
  podIP: 10.244.0.9
  containerStatuses:
  - {name: istio-proxy, ready: true, restartCount: 0, image: egress, imageID: x}
---
apiVersion: v1
kind: Pod
metadata:
  name: asm-egress-test-not-ready
  labels: {istio: asm-egress-test, version: v2}
spec:
  containers:
  - {name: istio-proxy, image: egress}
status:
  podIP: 10.244.0.10
  conditions:
  - {type: Ready, status: "False"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: versions
spec:
  host: asm-egress-test.aks-istio-egress.svc.cluster.local
  subsets:
  - name: v2
    labels: {version: v2}
"#;
    let dest = "{host: asm-egress-test.aks-istio-egress.svc.cluster.local, subset: v2, port: {number: 80}}";
    let s = snap(&format!("{GATEWAY_SERVICE}---{extra}---{}", route_to(dest)));
    let c = cluster(
        &s,
        "outbound|80|v2|asm-egress-test.aks-istio-egress.svc.cluster.local",
    );
    assert_eq!(
        c.discovery,
        Discovery::Static(vec![endpoint("10.244.0.9:8080")])
    );
    assert_eq!(c.tls, None, "no tlsMode label: plaintext");
    assert_eq!(c.lb, LbPolicy::LeastRequest);
}

#[test]
fn auto_mtls_for_injected_in_mesh_endpoints() {
    let labelled = GATEWAY_SERVICE.replace(
        "    app: asm-egress-test\nspec:\n  serviceAccountName",
        "    app: asm-egress-test\n    security.istio.io/tlsMode: istio\nspec:\n  serviceAccountName",
    );
    let s = snap(&format!(
        "{labelled}---{}",
        route_to("{host: asm-egress-test, port: {number: 443}}")
    ));
    let c = cluster(
        &s,
        "outbound|443||asm-egress-test.aks-istio-egress.svc.cluster.local",
    );
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.mode, UpstreamTlsMode::IstioMutual);
    assert_eq!(
        tls.sni.as_deref(),
        Some("outbound_.443_._.asm-egress-test.aks-istio-egress.svc.cluster.local")
    );
    assert_eq!(tls.alpn, vec!["istio-peer-exchange", "istio"]);
}

#[test]
fn service_entry_endpoint_modes() {
    let ses = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: static
spec:
  hosts: [static.example.com]
  addresses: [192.0.2.0/24]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8000}
  resolution: STATIC
  endpoints:
  - address: 192.0.2.1
  - address: 192.0.2.2
    ports: {http: 9000}
    weight: 3
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: rr
spec:
  hosts: [rr.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: dns-endpoints
spec:
  hosts: [svc.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: DNS
  endpoints:
  - address: a.example.net
  - address: b.example.net
    ports: {http: 8081}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress
spec:
  selector: {istio: asm-egress-test}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
spec:
  hosts: ['*']
  gateways: [egress]
  http:
  - match: [{uri: {prefix: /s}}]
    route: [{destination: {host: static.example.com}}]
  - match: [{uri: {prefix: /r}}]
    route: [{destination: {host: rr.example.com}}]
  - route: [{destination: {host: svc.example.com}}]
"#;
    let s = snap(ses);
    assert_eq!(
        cluster(&s, "outbound|80||static.example.com").discovery,
        Discovery::Static(vec![
            endpoint("192.0.2.1:8000"),
            Endpoint {
                address: "192.0.2.2:9000".parse().unwrap(),
                weight: 3
            }
        ])
    );
    assert_eq!(
        cluster(&s, "outbound|80||rr.example.com").discovery,
        Discovery::LogicalDns {
            hostname: "rr.example.com".into(),
            port: 80
        }
    );
    assert_eq!(
        cluster(&s, "outbound|80||svc.example.com").discovery,
        Discovery::DnsEndpoints(vec![
            ("a.example.net".into(), 80, 1),
            ("b.example.net".into(), 8081, 1)
        ])
    );
}

#[test]
fn destination_rule_policies_and_mesh_connect_timeout() {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: cnn
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 10}
      http: {http1MaxPendingRequests: 5, maxRequestsPerConnection: 1, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s}
"#;
    let mesh = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-shared-configmap-asm-1-24
  namespace: aks-istio-system
data:
  mesh: |-
    connectTimeout: 2s
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
"#;
    let s = snap(&format!(
        "{CNN_SE}---{dr}---{mesh}---{}",
        route_to("{host: edition.cnn.com, port: {number: 80}}")
    ));
    let c = cluster(&s, "outbound|80||edition.cnn.com");
    assert_eq!(c.lb, LbPolicy::Random);
    assert_eq!(c.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.mesh.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.pool.max_connections, Some(10));
    assert_eq!(c.pool.http1_max_pending_requests, Some(5));
    assert_eq!(c.pool.max_requests_per_connection, Some(1));
    assert_eq!(c.pool.idle_timeout, Some(Duration::from_secs(30)));
    let o = c.outlier.as_ref().unwrap();
    assert_eq!((o.consecutive_5xx, o.interval), (3, Duration::from_secs(5)));
    assert_eq!(o.base_ejection_time, Duration::from_secs(30));
    assert_eq!(s.access_log.path.as_deref(), Some("/dev/stdout"));
    assert_eq!(s.access_log.encoding, LogEncoding::Json);

    // DR connectTimeout wins over MeshConfig's.
    let dr2 = dr.replace(
        "maxConnections: 10}",
        "maxConnections: 10, connectTimeout: 250ms}",
    );
    let s = snap(&format!(
        "{CNN_SE}---{dr2}---{mesh}---{}",
        route_to("{host: edition.cnn.com, port: {number: 80}}")
    ));
    assert_eq!(
        cluster(&s, "outbound|80||edition.cnn.com").connect_timeout,
        Duration::from_millis(250)
    );
}

#[test]
fn destination_rule_selection_order() {
    let dr = |name: &str, ns: &str, host: &str, lb: &str, extra: &str| {
        format!(
            "\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  host: '{host}'\n  {extra}\n  trafficPolicy:\n    loadBalancer: {{simple: {lb}}}\n"
        )
    };
    let route = route_to("{host: edition.cnn.com, port: {number: 80}}");
    let lb = |yaml: &str| cluster(&snap(yaml), "outbound|80||edition.cnn.com").lb;
    // Gateway namespace beats the root namespace.
    let root = dr("root", "aks-istio-system", "edition.cnn.com", "RANDOM", "");
    let local = dr("local", NS, "*.cnn.com", "ROUND_ROBIN", "");
    assert_eq!(
        lb(&format!("{CNN_SE}---{route}---{root}")),
        LbPolicy::Random
    );
    assert_eq!(
        lb(&format!("{CNN_SE}---{route}---{root}---{local}")),
        LbPolicy::RoundRobin
    );
    // Exact host beats a wildcard in the same namespace.
    let exact = dr("exact", NS, "edition.cnn.com", "RANDOM", "");
    assert_eq!(
        lb(&format!("{CNN_SE}---{route}---{local}---{exact}")),
        LbPolicy::Random
    );
    // A rule private to another namespace is invisible.
    let private = dr(
        "private",
        "team",
        "edition.cnn.com",
        "RANDOM",
        "exportTo: ['.']",
    );
    assert_eq!(
        lb(&format!("{CNN_SE}---{route}---{private}")),
        LbPolicy::LeastRequest
    );
    // A workloadSelector must select the gateway pod.
    let other = dr(
        "sel",
        NS,
        "edition.cnn.com",
        "RANDOM",
        "workloadSelector: {matchLabels: {app: curl}}",
    );
    assert_eq!(
        lb(&format!("{CNN_SE}---{route}---{other}")),
        LbPolicy::LeastRequest
    );
}

#[test]
fn mutual_origination_with_a_credential_secret() {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: cnn
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: MUTUAL, credentialName: client-cred, sni: edition.cnn.com, subjectAltNames: [edition.cnn.com]}
---
apiVersion: v1
kind: Secret
metadata:
  name: client-cred
stringData:
  tls.crt: CLIENT
  tls.key: CLIENTKEY
  ca.crt: ROOTS
"#;
    let s = snap(&format!(
        "{CNN_SE}---{dr}---{}",
        route_to("{host: edition.cnn.com, port: {number: 443}}")
    ));
    let tls = cluster(&s, "outbound|443||edition.cnn.com")
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.mode, UpstreamTlsMode::Mutual);
    assert_eq!(tls.sni.as_deref(), Some("edition.cnn.com"));
    assert_eq!(tls.subject_alt_names, vec!["edition.cnn.com"]);
    assert_eq!(tls.ca_certificates.as_deref(), Some("ROOTS"));
    assert_eq!(
        tls.client_identity,
        Some(PemIdentity {
            cert_chain: "CLIENT".into(),
            private_key: "CLIENTKEY".into()
        })
    );
    // File-based SIMPLE origination with a custom CA.
    let files = dr.replace(
        "{mode: MUTUAL, credentialName: client-cred, sni: edition.cnn.com, subjectAltNames: [edition.cnn.com]}",
        "{mode: SIMPLE, caCertificates: /etc/certs/roots.pem}",
    );
    let s = snap(&format!(
        "{CNN_SE}---{files}---{}",
        route_to("{host: edition.cnn.com, port: {number: 443}}")
    ));
    let tls = cluster(&s, "outbound|443||edition.cnn.com")
        .tls
        .clone()
        .unwrap();
    assert_eq!(
        tls.ca_certificates.as_deref(),
        Some("file:/etc/certs/roots.pem")
    );
    assert_eq!(tls.client_identity, None);
}

#[test]
fn telemetry_overrides_mesh_access_logging() {
    let mesh = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-shared-configmap-asm-1-24
  namespace: aks-istio-system
data:
  mesh: |-
    accessLogFile: /tmp/access.log
    accessLogFormat: "%START_TIME% %ROUTE_NAME%"
"#;
    let telemetry = |ns: &str, body: &str| {
        format!(
            "\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: logs\n  namespace: {ns}\nspec:\n{body}"
        )
    };
    let s = snap(mesh);
    assert_eq!(s.access_log.path.as_deref(), Some("/tmp/access.log"));
    assert_eq!(
        s.access_log.format.as_deref(),
        Some("%START_TIME% %ROUTE_NAME%")
    );

    let root_on = telemetry(
        "aks-istio-system",
        "  accessLogging:\n  - providers: [{name: envoy}]\n",
    );
    let s = snap(&format!("{mesh}---{root_on}"));
    assert_eq!(s.access_log.path.as_deref(), Some("/dev/stdout"));
    assert_eq!(
        s.access_log.format.as_deref(),
        Some("%START_TIME% %ROUTE_NAME%")
    );
    assert_eq!(s.access_log.encoding, LogEncoding::Text);

    let ns_off = telemetry(NS, "  accessLogging:\n  - disabled: true\n");
    let s = snap(&format!("{mesh}---{root_on}---{ns_off}"));
    assert_eq!(s.access_log.path, None);

    // A Telemetry selecting other workloads does not apply.
    let other = telemetry(
        NS,
        "  selector: {matchLabels: {app: curl}}\n  accessLogging:\n  - disabled: true\n",
    );
    let s = snap(&format!("{mesh}---{root_on}---{other}"));
    assert_eq!(s.access_log.path.as_deref(), Some("/dev/stdout"));

    // SERVER-mode logging does not apply to gateways (they log as clients).
    let server_only = telemetry(
        "aks-istio-system",
        "  accessLogging:\n  - providers: [{name: envoy}]\n    match: {mode: SERVER}\n",
    );
    assert_eq!(snap(&server_only).access_log.path, None);
}

#[test]
fn mesh_config_is_taken_for_the_instance_revision() {
    let two = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-shared-configmap-asm-1-24
  namespace: aks-istio-system
data:
  mesh: "trustDomain: a.local"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-shared-configmap-asm-1-25
  namespace: aks-istio-system
data:
  mesh: "trustDomain: b.local"
"#;
    let inputs = inputs(two);
    assert_eq!(inputs.mesh_configs.len(), 2);
    let mut id = identity();
    assert_eq!(
        egress_compile::compile(&id, &inputs, 7).mesh.trust_domain,
        "a.local"
    );
    id.revision = Some("asm-1-25".into());
    assert_eq!(
        egress_compile::compile(&id, &inputs, 7).mesh.trust_domain,
        "b.local"
    );
    id.revision = None;
    assert_eq!(
        egress_compile::compile(&id, &inputs, 7).mesh.trust_domain,
        "cluster.local"
    );
}
