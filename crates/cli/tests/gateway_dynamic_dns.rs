//! Wildcard egress through the gateway: a `DYNAMIC_DNS` ServiceEntry (`*.wiki.test`,
//! `*.orig.test`) routed through a real `egress gateway run --config DIR` in the seed's three
//! shapes: HTTP by Host, TLS passthrough by SNI (the real `curl` checks the upstream's
//! certificate end to end), and TLS origination with auto-SNI and the SAN checked against the
//! requested name. Names are answered by a stub DNS server on loopback (`--dns-server`); each
//! connection resolves the name its client asked for and reaches that name's stand-in.
//!
//! Also shown: a name that does not resolve is `503 DF dns_resolution_failure`; an
//! AuthorizationPolicy `hosts` narrows the wildcard; without `--allow-private-upstreams` the
//! resolved-address guard refuses the stand-ins' loopback answers (`upstream_address_refused`),
//! before any connection is opened.
//!
//! The same configuration served from a Kubernetes API (the test kit's mock API server, through
//! `--kubeconfig`) routes the same way: wildcard egress works in all three configuration
//! sources (the local cluster's gateways are tested in `up_dynamic_dns.rs`).
//!
//! Each test claims a loopback block: its two stand-ins on hosts 1 and 2 (ports 18080 plain,
//! 18443 TLS), its gateway on host 10 (service ports 80 → 8080, 443 → 8443).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod gateway_process;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use egress_testkit::addrs::Block;
use egress_testkit::dns::StubDns;
use egress_testkit::{CertFactory, Curl, HttpUpstream, HttpsUpstream};
use gateway_process::{GatewayProcess, MESH_CONFIG, NS, get};

const HTTP_PORT: u16 = 18080;
const TLS_PORT: u16 = 18443;

/// A `DYNAMIC_DNS` ServiceEntry `name` for `host`, plain HTTP on 80 and TLS on 443, reaching
/// the stand-ins' ports.
fn dynamic_service_entry(name: &str, host: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {NS}
spec:
  hosts: ["{host}"]
  location: MESH_EXTERNAL
  resolution: DYNAMIC_DNS
  ports:
  - {{number: 80, name: http, protocol: HTTP, targetPort: {HTTP_PORT}}}
  - {{number: 443, name: tls, protocol: TLS, targetPort: {TLS_PORT}}}
"#
    )
}

/// The ServiceEntries, Gateway, routes, DestinationRule and policy of the three shapes.
fn config(tag: &str) -> String {
    let entries = [
        dynamic_service_entry("wiki", "*.wiki.test"),
        dynamic_service_entry("orig", "*.orig.test"),
    ]
    .join("---\n");
    format!(
        r#"{entries}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {tag}-gateway
  namespace: {NS}
spec:
  selector:
    istio: {tag}test
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*.wiki.test", "*.orig.test"]
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: ["*.wiki.test"]
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: wiki
  namespace: {NS}
spec:
  hosts: ["*.wiki.test"]
  gateways: [{tag}-gateway]
  http:
  - route:
    - destination: {{host: "*.wiki.test", port: {{number: 80}}}}
  tls:
  - match:
    - port: 443
      sniHosts: ["*.wiki.test"]
    route:
    - destination: {{host: "*.wiki.test", port: {{number: 443}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: orig
  namespace: {NS}
spec:
  hosts: ["*.orig.test"]
  gateways: [{tag}-gateway]
  http:
  - route:
    - destination: {{host: "*.orig.test", port: {{number: 443}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: orig
  namespace: {NS}
spec:
  host: "*.orig.test"
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: not-blocked
  namespace: {NS}
spec:
  selector:
    matchLabels:
      istio: {tag}test
  action: DENY
  rules:
  # HTTP: by Host. The port keeps the rule off the passthrough listener, where Istio ignores
  # the HTTP-only `hosts` of a DENY rule (a wider match).
  - to:
    - operation:
        hosts: ["blocked.wiki.test"]
        ports: ["8080"]
  # TLS passthrough: by SNI.
  - when:
    - key: connection.sni
      values: ["blocked.wiki.test"]
"#
    )
}

struct Setup {
    /// The test's loopback block.
    block: Block,
    /// The stand-ins' addresses (hosts 1 and 2).
    a: Ipv4Addr,
    b: Ipv4Addr,
    dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    dns: StubDns,
    upstreams: Vec<HttpUpstream>,
    /// Held so the TLS stand-ins keep serving.
    _tls_upstreams: Vec<HttpsUpstream>,
}

/// A claimed block, stand-ins on its hosts 1 and 2, the stub DNS server answering with them,
/// a CA.
async fn setup() -> Setup {
    let block = Block::claim().unwrap();
    let (a, b) = (block.ip(1), block.ip(2));
    let dir = tempfile::tempdir().unwrap();
    let certs = CertFactory::new().unwrap();
    let ca_file = certs.write_ca_file(dir.path()).unwrap();
    let addr = |ip: Ipv4Addr, port: u16| SocketAddr::from((ip, port));
    let upstreams = vec![
        HttpUpstream::start(addr(a, HTTP_PORT)).await.unwrap(),
        HttpUpstream::start(addr(b, HTTP_PORT)).await.unwrap(),
    ];
    let tls_upstreams = vec![
        HttpsUpstream::start(addr(a, TLS_PORT), &certs, &["a.wiki.test", "a.orig.test"])
            .await
            .unwrap(),
        HttpsUpstream::start(addr(b, TLS_PORT), &certs, &["b.wiki.test", "b.orig.test"])
            .await
            .unwrap(),
    ];
    let dns = StubDns::start(&[
        ("a.wiki.test", a),
        ("b.wiki.test", b),
        ("blocked.wiki.test", a),
        ("a.orig.test", a),
        ("b.orig.test", b),
        // Resolves to `a`, whose certificate does not name it.
        ("wrong.orig.test", a),
    ])
    .await
    .unwrap();
    Setup {
        block,
        a,
        b,
        dir,
        ca_file,
        dns,
        upstreams,
        _tls_upstreams: tls_upstreams,
    }
}

/// A gateway on the block's host 10.
async fn gateway(s: &Setup, tag: &str, guard: bool) -> GatewayProcess {
    let dir = s.dir.path().join(tag);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH_CONFIG).unwrap();
    std::fs::write(dir.join("dynamic.yaml"), config(tag)).unwrap();
    let mut extra = vec![
        "--dns-server".to_owned(),
        s.dns.addr.to_string(),
        "--extra-roots".to_owned(),
        s.ca_file.display().to_string(),
    ];
    if !guard {
        extra.push("--allow-private-upstreams".to_owned());
    }
    let ip = s.block.ip(10).into();
    let gw = GatewayProcess::start_with(None, Some(&dir), ip, tag, "80:8080,443:8443", &extra);
    gw.wait_ready().await;
    gw
}

/// `GET /` with `Host: host` through the gateway's HTTP listener: status and answering stand-in.
async fn via_http(gw: &GatewayProcess, host: &str) -> (u16, Option<String>) {
    get(gw.addr(), host, "/").await.unwrap()
}

/// `GET https://<host>/` through the gateway's passthrough listener, the certificate checked
/// by curl against the test CA.
async fn via_tls(gw: &GatewayProcess, ca: &Path, host: &str) -> (u16, i32, String) {
    let out = Curl::new(format!("https://{host}:8443/"))
        .resolve(host, 8443, gw.ip)
        .cacert(ca)
        .args(["-D", "-"])
        .fetch()
        .await
        .unwrap();
    (out.status, out.exit_code, out.body)
}

fn have_curl() -> bool {
    if Curl::available() {
        return true;
    }
    egress_testkit::skip("needs curl");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_dns_wildcard_serves_each_requested_name_in_the_three_seed_shapes() {
    if !have_curl() {
        return;
    }
    let s = setup().await;
    let gw = gateway(&s, "dyn", false).await;
    let (a, b) = (s.a, s.b);
    let a_http = format!("{a}:{HTTP_PORT}");
    let b_http = format!("{b}:{HTTP_PORT}");
    let a_tls = format!("{a}:{TLS_PORT}");
    let b_tls = format!("{b}:{TLS_PORT}");

    // HTTP by Host: each name reaches its own stand-in, logged under the requested name.
    assert_eq!(
        via_http(&gw, "a.wiki.test").await,
        (200, Some(a_http.clone())),
        "{}",
        gw.lines()
    );
    assert_eq!(via_http(&gw, "b.wiki.test").await, (200, Some(b_http)));
    let line = gw
        .wait_log(&["\"a.wiki.test\"", "outbound|80||*.wiki.test", &a_http])
        .await;
    assert!(line.contains(" 200 "), "{line}");
    // A name under the wildcard that does not resolve; a name the policy denies.
    assert_eq!(via_http(&gw, "nx.wiki.test").await.0, 503);
    let line = gw
        .wait_log(&["\"nx.wiki.test\"", "dns_resolution_failure"])
        .await;
    assert!(line.contains(" DF "), "{line}");
    assert_eq!(via_http(&gw, "blocked.wiki.test").await.0, 403);
    // Outside every wildcard: no virtual host.
    assert_eq!(via_http(&gw, "a.other.test").await.0, 404);

    // TLS passthrough by SNI: curl sees each stand-in's own certificate.
    for (host, from) in [("a.wiki.test", &a_tls), ("b.wiki.test", &b_tls)] {
        let (status, code, headers) = via_tls(&gw, &s.ca_file, host).await;
        assert_eq!(
            (status, code),
            (200, 0),
            "{host}: {headers}\n{}",
            gw.lines()
        );
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("x-testkit-upstream: {from}")),
            "{host} answered by {from}: {headers}"
        );
        gw.wait_log(&[host, "outbound|443||*.wiki.test", from])
            .await;
    }
    let (status, code, _) = via_tls(&gw, &s.ca_file, "blocked.wiki.test").await;
    assert_eq!(status, 0, "closed before any response (curl exit {code})");
    gw.wait_log(&["blocked.wiki.test", "policy[not-blocked]-rule[1]"])
        .await;

    // TLS origination: plain HTTP in, TLS out with the requested name as SNI and as the name
    // the certificate must carry.
    assert_eq!(
        via_http(&gw, "a.orig.test").await,
        (200, Some(a_tls.clone()))
    );
    assert_eq!(via_http(&gw, "b.orig.test").await, (200, Some(b_tls)));
    gw.wait_log(&["\"a.orig.test\"", "outbound|443||*.orig.test", &a_tls])
        .await;
    // Same address as a.orig.test, but its certificate does not name wrong.orig.test.
    assert_eq!(via_http(&gw, "wrong.orig.test").await.0, 503);
    let line = gw.wait_log(&["\"wrong.orig.test\"", " 503 UF,URX "]).await;
    assert!(line.contains("CERTIFICATE_VERIFY_FAILED"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_refuses_dynamic_answers_before_connecting() {
    let s = setup().await;
    let gw = gateway(&s, "dyg", true).await;
    // The stub answers with loopback addresses, which the guard refuses for DNS answers.
    assert_eq!(via_http(&gw, "a.wiki.test").await, (503, None));
    let line = gw
        .wait_log(&["\"a.wiki.test\"", "upstream_address_refused"])
        .await;
    assert!(line.contains(" UH "), "{line}");
    // Nothing reached the stand-in.
    assert!(s.upstreams[0].requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_serves_the_same_wildcard() {
    if !have_curl() {
        return;
    }
    let s = setup().await;
    let (a, b) = (s.a, s.b);
    let server = egress_testkit::apiserver::MockApiServer::start().unwrap();
    for text in [MESH_CONFIG.to_owned(), config("dyk")] {
        for doc in egress_model::yaml::parse_stream(&text).unwrap() {
            server.put(doc.value).unwrap();
        }
    }
    let kubeconfig = server.write_kubeconfig(s.dir.path()).unwrap();
    let extra = vec![
        "--kubeconfig".to_owned(),
        kubeconfig.display().to_string(),
        "--dns-server".to_owned(),
        s.dns.addr.to_string(),
        "--extra-roots".to_owned(),
        s.ca_file.display().to_string(),
        "--allow-private-upstreams".to_owned(),
    ];
    let ip = s.block.ip(10).into();
    let gw = GatewayProcess::start_with(None, None, ip, "dyk", "80:8080,443:8443", &extra);
    gw.wait_ready().await;
    let a_http = format!("{a}:{HTTP_PORT}");
    let b_http = format!("{b}:{HTTP_PORT}");
    gw.wait_route("a.wiki.test", 200, Some(a_http.parse().unwrap()))
        .await;
    assert_eq!(via_http(&gw, "b.wiki.test").await, (200, Some(b_http)));
    let b_tls = format!("{b}:{TLS_PORT}");
    let (status, code, headers) = via_tls(&gw, &s.ca_file, "b.wiki.test").await;
    assert_eq!((status, code), (200, 0), "{headers}\n{}", gw.lines());
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("x-testkit-upstream: {b_tls}")),
        "{headers}"
    );
    assert_eq!(
        via_http(&gw, "a.orig.test").await,
        (200, Some(format!("{a}:{TLS_PORT}")))
    );
}
