//! Parity with Istio's egress gateway: one test per bullet of `istio-egress.md` §5 "Parity
//! gotchas". Real manifests are decoded by `egress_model`, compiled by `egress_compile` for the
//! seed's gateway identity, and (where the gotcha is about behaviour) served by a started
//! [`Proxy`] against loopback upstreams from `egress_testkit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_model::{DecodeOptions, Diagnostic, Outcome, Resource, Severity, decode_file};
mod data_plane;

use data_plane::{
    CNN, Gw, NS, WAIT, cnn_to_loopback, compiled, http_upstream, loopback, options, seed_gateway,
};
use egress_proxy::ProxyOptions;
use egress_snapshot::snapshot::{
    ChainAction, Discovery, Listener, ListenerKind, RetryPolicy, RouteAction, ServerTls, Snapshot,
    UpstreamTlsMode,
};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream};
use http_body_util::{BodyExt, Empty};

// ---------------------------------------------------------------- manifests and compilation

fn decode(yaml: &str) -> Vec<Outcome> {
    let opts = DecodeOptions {
        default_namespace: Some(NS.into()),
        enforce_namespace: false,
    };
    decode_file("parity.yaml", yaml, &opts)
}

/// Every document must be valid.
fn resources(yaml: &str) -> Vec<Resource> {
    decode(yaml)
        .into_iter()
        .map(|o| match o {
            Outcome::Valid(d) => d.resource,
            other => panic!("manifest is not valid: {other:?}"),
        })
        .collect()
}

/// Diagnostics of a one-document manifest: (is it valid, its findings).
fn diagnostics(yaml: &str) -> (bool, Vec<Diagnostic>) {
    match decode(yaml).into_iter().next().unwrap() {
        Outcome::Valid(d) => (true, d.warnings),
        Outcome::Invalid(diags) => (false, diags),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn has(diags: &[Diagnostic], severity: Severity, text: &str) -> bool {
    diags
        .iter()
        .any(|d| d.severity == severity && d.message.contains(text))
}

/// The seed's gateway instance with Service ports `80 -> http`, `443 -> https`.
/// Compiled for the seed's real ports (80 -> 8080, 443 -> 8443).
fn snap(yaml: &str) -> Snapshot {
    compiled(&seed_gateway(8080, 8443), resources(yaml))
}

fn listener<'a>(s: &'a Snapshot, name: &str) -> &'a Listener {
    let found = s.listeners.iter().find(|l| l.name == name);
    found.unwrap_or_else(|| panic!("no listener {name}: {:#?}", s.listeners))
}

fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: egress}}\n\
         spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n{servers}---\n"
    )
}

const HTTP_SERVER: &str = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n";

fn service_entry(host: &str, port: u16, protocol: &str, resolution: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: se-{port}-{r}}}\n\
         spec:\n  hosts: ['{host}']\n  ports:\n  - {{number: {port}, name: p{port}, protocol: {protocol}}}\n  \
         resolution: {resolution}\n---\n",
        r = resolution.to_lowercase().replace('_', "-")
    )
}

/// A VirtualService bound to the `egress` gateway with one `http` route to `host:port`.
fn http_vs(name: &str, hosts: &str, match_port: u16, host: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\n\
         spec:\n  hosts: [{hosts}]\n  gateways: [egress]\n  http:\n  - match: [{{gateways: [egress], port: {match_port}}}]\n    \
         route:\n    - destination: {{host: '{host}', port: {{number: {port}}}}}\n---\n"
    )
}

fn dr(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr}}\n\
         spec:\n  host: '{host}'\n{policy}---\n"
    )
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// A TLS Secret with `stringData` in `namespace` (and `ca.crt` when `ca` is given).
fn tls_secret(name: &str, namespace: &str, cert: &str, key: &str, ca: Option<&str>) -> String {
    let ca = ca
        .map(|c| format!("  ca.crt: |\n{}", indent(c)))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}{ca}---\n",
        indent(cert),
        indent(key)
    )
}

// ---------------------------------------------------------------- a running gateway

/// Compiles `yaml` with both Service ports mapped to 0 (one server per test) and serves it.
async fn serve(yaml: &str, options: ProxyOptions) -> Gw {
    Gw::start(
        compiled(&seed_gateway(0, 0), resources(yaml)),
        options,
        None,
    )
    .await
}

type Answer = (u16, http::HeaderMap, String);

fn get(host: &str, extra: &[(&str, &str)]) -> http::Request<Empty<Bytes>> {
    let mut b = http::Request::builder()
        .uri("/parity")
        .header("host", host)
        .header("connection", "close");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Empty::new()).unwrap()
}

/// One HTTP/1.1 request over any stream: status, headers, body.
async fn send<S>(stream: S, req: http::Request<Empty<Bytes>>) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (parts.status.as_u16(), parts.headers, text)
}

async fn plain(addr: SocketAddr, host: &str, extra: &[(&str, &str)]) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    send(stream, get(host, extra)).await
}

async fn over_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    send(tls, get(host, extra)).await
}

fn trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in egress_identity::parse_certs(ca_pem, "test CA").unwrap() {
        roots.add(der).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn forward_of(s: &Snapshot, listener_name: &str) -> egress_snapshot::snapshot::Forward {
    let ListenerKind::Http(rc) = &listener(s, listener_name).kind else {
        panic!("not an HTTP listener")
    };
    let route = &rc.virtual_hosts[0].routes[0];
    match &route.action {
        RouteAction::Forward(f) => f.clone(),
        other => panic!("not a forward route: {other:?}"),
    }
}

/// An HTTP gateway for `edition.cnn.com` routing to a `DNS` ServiceEntry on `port`.
fn cnn_over_http(port: u16) -> String {
    format!(
        "{}{}{}",
        gateway(HTTP_SERVER),
        service_entry(CNN, port, "HTTP", "DNS"),
        http_vs("cnn", "edition.cnn.com", 80, CNN, port)
    )
}

// ---------------------------------------------------------------- §5 gotchas

/// "Gateway `server.port.number` is the *Service* port; the listener binds the Service
/// targetPort (80→8080, 443→8443); VS `match.port` and `l4 match.port` compare to the server
/// (Service) port; RBAC `ports` sees the container port."
#[tokio::test]
async fn gotcha_server_port_is_the_service_port() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    // A VS matching the container port never matches: only the Service port does.
    let yaml = format!(
        "{}{}",
        cnn_over_http(port),
        http_vs("other", "other.example.com", 8080, CNN, port)
    );
    let s = snap(&yaml);
    let l = listener(&s, "0.0.0.0_8080");
    assert_eq!(l.port, 8080);
    assert!(
        s.listeners.iter().all(|l| l.port != 80),
        "{:?}",
        s.listeners
    );

    let gw = serve(&yaml, cnn_to_loopback()).await;
    let (status, _, _) = plain(gw.addr(), CNN, &[]).await;
    assert_eq!(
        status, 200,
        "match.port 80 matches on the listener bound for 8080"
    );
    let (status, _, _) = plain(gw.addr(), "other.example.com", &[]).await;
    assert_eq!(
        status, 404,
        "match.port 8080 (the container port) never matches"
    );
    assert_eq!(upstream.requests().len(), 1);
}

/// "`tls.mode` zero value is PASSTHROUGH: an HTTPS/TLS server with `tls: {}` is passthrough;
/// an HTTP server may carry `tls` only for `httpsRedirect`."
#[tokio::test]
async fn gotcha_tls_mode_zero_value_is_passthrough() {
    let certs = CertFactory::new().unwrap();
    let upstream = HttpsUpstream::start(SocketAddr::new(loopback(), 0), &certs, &[CNN])
        .await
        .unwrap();
    let port = upstream.local_addr().port();
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: cnn}}\n\
         spec:\n  hosts: [{CNN}]\n  gateways: [egress]\n  tls:\n  - match: [{{port: 443, sniHosts: [{CNN}]}}]\n    \
         route:\n    - destination: {{host: {CNN}, port: {{number: {port}}}}}\n",
        gateway(
            "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    tls: {}\n"
        ),
        service_entry(CNN, port, "TLS", "DNS"),
    );
    let s = snap(&yaml);
    let ListenerKind::Chains(chains) = &listener(&s, "0.0.0.0_8443").kind else {
        panic!("an HTTPS server with tls: {{}} is not an HTTP listener")
    };
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].tls, None, "tls: {{}} terminates nothing");
    assert_eq!(chains[0].server_names, vec![CNN.to_owned()]);

    let gw = serve(&yaml, cnn_to_loopback()).await;
    let (status, _, body) = over_tls(gw.addr(), trusting(certs.ca_pem()), CNN, CNN, &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].sni.as_deref(),
        Some(CNN),
        "the client's own TLS reached upstream"
    );
    // The server's host is the chain's SNI constraint: another name finds no chain.
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let other = rustls::pki_types::ServerName::try_from("other.example.com").unwrap();
    let refused = tokio_rustls::TlsConnector::from(trusting(certs.ca_pem()))
        .connect(other, tcp)
        .await;
    assert!(refused.is_err(), "SNI other.example.com must not match");
}

/// "`tls.mode` zero value is PASSTHROUGH: an HTTPS/TLS server with `tls: {}` is passthrough;
/// an HTTP server may carry `tls` only for `httpsRedirect`."
#[tokio::test]
async fn gotcha_http_server_tls_is_only_https_redirect() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let yaml = format!(
        "{}{}{}",
        gateway(
            "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n    \
             tls: {httpsRedirect: true}\n"
        ),
        service_entry(CNN, port, "HTTP", "DNS"),
        http_vs("cnn", "edition.cnn.com", 80, CNN, port)
    );
    let s = snap(&yaml);
    assert!(matches!(
        listener(&s, "0.0.0.0_8080").kind,
        ListenerKind::Http(_)
    ));
    let gw = serve(&yaml, cnn_to_loopback()).await;
    let (status, headers, _) = plain(gw.addr(), CNN, &[]).await;
    assert_eq!(status, 301);
    assert_eq!(
        headers.get("location").unwrap(),
        "https://edition.cnn.com/parity"
    );
    assert!(upstream.requests().is_empty());
    let https = gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n    \
         tls: {mode: PASSTHROUGH, httpsRedirect: true}\n",
    );
    let (valid, diags) = diagnostics(&https);
    assert!(valid, "only a warning: {diags:?}");
    let message = "tls.httpsRedirect should only be used with http servers";
    assert!(has(&diags, Severity::Warning, message), "{diags:?}");
}

/// "PASSTHROUGH/AUTO_PASSTHROUGH with certs = warning (certs ignored), not an error;
/// ISTIO_MUTUAL with any cert field = error."
#[test]
fn gotcha_passthrough_certs_warn_istio_mutual_certs_error() {
    let with = |tls: &str| {
        gateway(&format!(
            "  - port: {{number: 443, name: tls, protocol: TLS}}\n    hosts: [edition.cnn.com]\n    tls: {tls}\n"
        ))
    };
    let (valid, diags) = diagnostics(&with(
        "{mode: PASSTHROUGH, serverCertificate: /etc/c.pem, privateKey: /etc/k.pem}",
    ));
    assert!(valid, "{diags:?}");
    assert!(
        has(&diags, Severity::Warning, "will be ignored"),
        "{diags:?}"
    );
    let (valid, diags) = diagnostics(&with(
        "{mode: AUTO_PASSTHROUGH, serverCertificate: /etc/c.pem, privateKey: /etc/k.pem}",
    ));
    assert!(valid, "{diags:?}");
    assert!(
        has(&diags, Severity::Warning, "will be ignored"),
        "{diags:?}"
    );
    for field in [
        "serverCertificate: /etc/c.pem",
        "privateKey: /etc/k.pem",
        "caCertificates: /etc/ca.pem",
        "credentialName: cnn-cred",
    ] {
        let (valid, diags) = diagnostics(&with(&format!("{{mode: ISTIO_MUTUAL, {field}}}")));
        assert!(!valid, "{field}: {diags:?}");
        assert!(
            has(
                &diags,
                Severity::Error,
                "ISTIO_MUTUAL TLS cannot have associated"
            ),
            "{field}: {diags:?}"
        );
    }
}

/// "TLS-terminating **non-HTTPS** servers (protocol TLS + SIMPLE/MUTUAL/ISTIO_MUTUAL) are
/// routed by VS `tcp` blocks; PASSTHROUGH servers by `tls` blocks; HTTPS-terminated and HTTP
/// servers by `http` blocks. A server with no matching VS block produces no filter chain
/// (listener omitted when empty)."
#[test]
fn gotcha_tls_terminating_non_https_servers_route_by_tcp_blocks() {
    let base = format!(
        "{}{}",
        gateway(
            "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [edition.cnn.com]\n    \
             tls: {mode: SIMPLE, serverCertificate: /etc/certs/c.pem, privateKey: /etc/certs/k.pem}\n"
        ),
        service_entry(CNN, 443, "TLS", "DNS")
    );
    let vs = |block: &str, m: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: cnn}}\n\
             spec:\n  hosts: [{CNN}]\n  gateways: [egress]\n  {block}:\n  - match: [{m}]\n    \
             route:\n    - destination: {{host: {CNN}, port: {{number: 443}}}}\n"
        )
    };
    let tls_only = snap(&format!(
        "{base}{}",
        vs("tls", "{port: 443, sniHosts: [edition.cnn.com]}")
    ));
    assert!(
        tls_only.listeners.iter().all(|l| l.name != "0.0.0.0_8443"),
        "a tls-only VS gives a terminating TLS server no chain: {:?}",
        tls_only.listeners
    );
    let tcp = snap(&format!("{base}{}", vs("tcp", "{port: 443}")));
    let ListenerKind::Chains(chains) = &listener(&tcp, "0.0.0.0_8443").kind else {
        panic!("not a chains listener")
    };
    assert_eq!(chains.len(), 1);
    assert!(matches!(
        chains[0].tls,
        Some(ServerTls::Certificates { .. })
    ));
    assert!(matches!(chains[0].action, ChainAction::TcpProxy { .. }));
}

/// "Gateway HTTP route matching: vhost host = most specific of (server host ∩ VS host);
/// lowercase; port ignored; unmatched ⇒ 404 NR, never 502. Sidecar unmatched (REGISTRY_ONLY)
/// ⇒ 502 `block_all`."
#[tokio::test]
async fn gotcha_unmatched_host_at_gateway_is_404_nr_never_502() {
    let upstream = http_upstream().await;
    let gw = serve(
        &cnn_over_http(upstream.local_addr().port()),
        cnn_to_loopback(),
    )
    .await;
    let (status, _, _) = plain(gw.addr(), "unknown.example.org", &[]).await;
    assert_eq!(status, 404);
    let line = gw.line(1).await;
    assert!(line.contains(" 404 NR "), "{line}");
    // Case and port in the Host header do not matter.
    let (status, _, _) = plain(gw.addr(), "Edition.CNN.com:80", &[]).await;
    assert_eq!(status, 200);
    assert!(upstream.requests().len() == 1);
}

/// "Server hosts `*` ⇒ no SNI constraint on the filter chain; otherwise the client SNI must
/// match (Envoy server_names supports `*.suffix`)."
#[tokio::test]
async fn gotcha_server_hosts_star_accepts_any_sni() {
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let certs = CertFactory::new().unwrap();
    let cert = certs
        .server_cert(&["random.example.org", "other.test"])
        .unwrap();
    let yaml = format!(
        "{}{}{}{}",
        gateway(
            "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n    \
             tls: {mode: SIMPLE, credentialName: any-cred}\n"
        ),
        tls_secret("any-cred", NS, &cert.cert_chain_pem, &cert.key_pem, None),
        service_entry(CNN, port, "HTTP", "DNS"),
        http_vs("any", "'*'", 443, CNN, port),
    );
    let s = snap(&yaml);
    let ListenerKind::Chains(chains) = &listener(&s, "0.0.0.0_8443").kind else {
        panic!("not a chains listener")
    };
    assert!(chains[0].server_names.is_empty(), "{chains:?}");

    let gw = serve(&yaml, cnn_to_loopback()).await;
    let ca = trusting(certs.ca_pem());
    for sni in ["random.example.org", "other.test"] {
        let (status, _, _) = over_tls(gw.addr(), ca.clone(), sni, sni, &[]).await;
        assert_eq!(status, 200, "SNI {sni}");
    }
    assert_eq!(upstream.requests().len(), 2);
}

/// "Sidecar → egress gateway: Host header is preserved; SNI for ISTIO_MUTUAL defaults to
/// `outbound_.<port>_.<subset>_.<gateway host>` unless DR `sni` is set (the docs always set
/// `sni: <external host>` so that the gateway server's SNI match works)."
#[tokio::test]
async fn gotcha_host_header_preserved_istio_mutual_sni_defaults_to_outbound() {
    let upstream = http_upstream().await;
    let gw = serve(
        &cnn_over_http(upstream.local_addr().port()),
        cnn_to_loopback(),
    )
    .await;
    let (status, _, _) = plain(gw.addr(), CNN, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.requests()[0].host.as_deref(), Some(CNN));

    let internal = "internal.example.com";
    let base = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v}}\n\
         spec:\n  hosts: ['*']\n  gateways: [egress]\n  http:\n  - route:\n    \
         - destination: {{host: {internal}, subset: v1, port: {{number: 80}}}}\n---\n",
        gateway(HTTP_SERVER),
        service_entry(internal, 80, "HTTP", "DNS"),
    );
    let cluster = format!("outbound|80|v1|{internal}");
    let defaulted = snap(&format!(
        "{base}{}",
        dr(
            internal,
            "  subsets:\n  - name: v1\n    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
        )
    ));
    let tls = defaulted.clusters[&cluster].tls.clone().unwrap();
    assert_eq!(tls.mode, UpstreamTlsMode::IstioMutual);
    assert_eq!(
        tls.sni.as_deref(),
        Some("outbound_.80_.v1_.internal.example.com")
    );
    let set = snap(&format!(
        "{base}{}",
        dr(
            internal,
            "  subsets:\n  - name: v1\n    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}}\n"
        )
    ));
    assert_eq!(
        set.clusters[&cluster].tls.clone().unwrap().sni.as_deref(),
        Some(CNN)
    );
}

/// "Resolution NONE at a gateway = no endpoints (EDS). DNS = STRICT_DNS (all IPs),
/// DNS_ROUND_ROBIN = LOGICAL_DNS (first IP), respect TTL, refresh 60s."
#[tokio::test]
async fn gotcha_resolution_none_is_503_uh_dns_uses_all_addresses() {
    // NONE: no endpoints at a gateway.
    let upstream = http_upstream().await;
    let port = upstream.local_addr().port();
    let none = format!(
        "{}{}{}",
        gateway(HTTP_SERVER),
        service_entry(CNN, port, "HTTP", "NONE"),
        http_vs("cnn", "edition.cnn.com", 80, CNN, port)
    );
    let gw = serve(&none, cnn_to_loopback()).await;
    let (status, _, _) = plain(gw.addr(), CNN, &[]).await;
    assert_eq!(status, 503);
    assert!(gw.line(1).await.contains(" 503 UH "));
    assert!(upstream.requests().is_empty());
    drop(gw);

    // Two upstreams on the same port of two loopback addresses, closing every connection so
    // that each request opens a new one (see the per-request balancing test below).
    let (_net, first, second) = two_addresses().await;
    for u in [&first, &second] {
        u.set_default_reply(egress_testkit::Reply::status(200).with_header("connection", "close"));
    }
    let port = first.local_addr().port();
    let hosts = vec![(
        CNN.to_owned(),
        vec![first.local_addr().ip(), second.local_addr().ip()],
    )];
    for (resolution, both) in [("DNS", true), ("DNS_ROUND_ROBIN", false)] {
        let yaml = format!(
            "{}{}{}",
            gateway(HTTP_SERVER),
            service_entry(CNN, port, "HTTP", resolution),
            http_vs("cnn", "edition.cnn.com", 80, CNN, port)
        );
        let compiled = snap(&yaml);
        assert_eq!(compiled.mesh.dns_refresh_rate, Duration::from_secs(60));
        let c = &compiled.clusters[&format!("outbound|{port}||{CNN}")];
        let wanted = if both {
            Discovery::StrictDns {
                hostname: CNN.into(),
                port,
            }
        } else {
            Discovery::LogicalDns {
                hostname: CNN.into(),
                port,
            }
        };
        assert_eq!(c.discovery, wanted);
        let before = (first.requests().len(), second.requests().len());
        let gw = serve(&yaml, options(hosts.clone())).await;
        // The default LEAST_REQUEST picks at random between equally loaded endpoints: 40
        // requests all landing on one of two addresses has odds of 2^-39 (8 failed about once
        // in 128 runs).
        const REQUESTS: usize = 40;
        for _ in 0..REQUESTS {
            assert_eq!(plain(gw.addr(), CNN, &[]).await.0, 200);
        }
        let got = (
            first.requests().len() - before.0,
            second.requests().len() - before.1,
        );
        if both {
            assert!(
                got.0 > 0 && got.1 > 0,
                "STRICT_DNS uses every address: {got:?}"
            );
        } else {
            assert_eq!(got, (REQUESTS, 0), "LOGICAL_DNS uses the first address");
        }
    }
}

/// Upstreams on hosts 1 and 2 of a claimed loopback block, on the same port P (retrying until
/// a common port is free); the block is held as long as the caller keeps it.
async fn two_addresses() -> (Block, HttpUpstream, HttpUpstream) {
    let net = Block::claim().unwrap();
    for _ in 0..50 {
        let a = HttpUpstream::start((net.ip(1), 0).into()).await.unwrap();
        let second = SocketAddr::from((net.ip(2), a.local_addr().port()));
        if let Ok(b) = HttpUpstream::start(second).await {
            return (net, a, b);
        }
    }
    panic!("no port free on both {} and {}", net.ip(1), net.ip(2))
}

/// "DR `credentialName` is ignored by sidecars unless the DR has `workloadSelector`; it is the
/// normal way to do TLS/mTLS origination at the egress gateway (secret in gateway namespace)."
#[test]
fn gotcha_dr_credential_name_is_read_from_the_gateway_namespace() {
    let certs = CertFactory::new().unwrap();
    let client = certs.client_cert(&["client.example.com"]).unwrap();
    let base = format!(
        "{}{}",
        cnn_over_http(443),
        dr(
            CNN,
            "  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: client-cred}\n"
        ),
    );
    let cluster = format!("outbound|443||{CNN}");
    let identity_of = |s: &Snapshot| {
        s.clusters
            .get(&cluster)
            .and_then(|c| c.tls.as_ref())
            .and_then(|t| t.client_identity.clone())
    };
    let here = snap(&format!(
        "{base}{}",
        tls_secret(
            "client-cred",
            NS,
            &client.cert_chain_pem,
            &client.key_pem,
            Some(certs.ca_pem())
        )
    ));
    let id = identity_of(&here).expect("client certificate from the gateway namespace");
    assert_eq!(id.cert_chain.trim(), client.cert_chain_pem.trim());
    assert_eq!(id.private_key.trim(), client.key_pem.trim());
    assert_eq!(
        here.clusters[&cluster].tls.as_ref().unwrap().mode,
        UpstreamTlsMode::Mutual
    );

    let elsewhere = snap(&format!(
        "{base}{}",
        tls_secret(
            "client-cred",
            "other",
            &client.cert_chain_pem,
            &client.key_pem,
            Some(certs.ca_pem())
        )
    ));
    assert_eq!(
        identity_of(&elsewhere),
        None,
        "only the gateway namespace is read"
    );
    assert!(
        elsewhere.warnings.iter().any(|w| w.contains("client-cred")),
        "{:?}",
        elsewhere.warnings
    );
}

/// "SIMPLE/MUTUAL origination without `sni` ⇒ auto-SNI from Host and (without SANs) auto SAN
/// validation against Host; without `caCertificates` ⇒ system CA bundle."
#[tokio::test]
async fn gotcha_simple_origination_without_sni_uses_the_host() {
    let certs = CertFactory::new().unwrap();
    let any = SocketAddr::new(loopback(), 0);
    let right = HttpsUpstream::start(any, &certs, &[CNN]).await.unwrap();
    let wrong = HttpsUpstream::start(any, &certs, &["other.example.com"])
        .await
        .unwrap();
    for (upstream, expected) in [(&right, 200), (&wrong, 503)] {
        let port = upstream.local_addr().port();
        let yaml = format!(
            "{}{}{}{}",
            gateway(HTTP_SERVER),
            service_entry(CNN, port, "HTTPS", "DNS"),
            http_vs("cnn", "edition.cnn.com", 80, CNN, port),
            dr(CNN, "  trafficPolicy:\n    tls: {mode: SIMPLE}\n"),
        );
        let s = snap(&yaml);
        let tls = s.clusters[&format!("outbound|{port}||{CNN}")]
            .tls
            .clone()
            .unwrap();
        assert_eq!(
            (tls.mode, tls.sni.as_deref()),
            (UpstreamTlsMode::Simple, None)
        );
        assert!(tls.subject_alt_names.is_empty() && tls.ca_certificates.is_none());

        // The system bundle plus the cluster's extra roots (the stand-in public CA).
        let mut opts = cnn_to_loopback();
        opts.upstream.extra_roots_pem = vec![certs.ca_pem().to_owned()];
        let gw = serve(&yaml, opts).await;
        let (status, _, _) = plain(gw.addr(), CNN, &[]).await;
        assert_eq!(status, expected, "upstream {:?}", upstream.local_addr());
        let line = gw.line(1).await;
        if expected == 503 {
            // UF, and URX once Istio's default retries (connect-failure) are used up.
            assert!(line.contains(" 503 UF"), "{line}");
        }
        let conns = upstream.connections();
        assert!(!conns.is_empty());
        if expected == 200 {
            // The SNI came from the Host header.
            assert!(
                conns.iter().all(|c| c.sni.as_deref() == Some(CNN)),
                "{conns:?}"
            );
        } else {
            // The gateway refused the certificate (issued for another name).
            assert!(
                conns.iter().all(|c| c.handshake_error.is_some()),
                "{conns:?}"
            );
        }
    }
}

/// "No VS timeout ⇒ no route timeout (0). Default retries = 2 with
/// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`."
#[test]
fn gotcha_no_vs_timeout_means_no_route_timeout() {
    let f = forward_of(&snap(&cnn_over_http(80)), "0.0.0.0_8080");
    assert_eq!(f.timeout, None);
    let retry = f.retry.expect("Istio's default retry policy");
    assert_eq!(retry, RetryPolicy::istio_default());
    assert_eq!(retry.attempts, 2);
    assert_eq!(
        retry.retry_on.join(","),
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
}

/// "Weights: need not sum to 100; 0-weight dropped; all-zero with >1 destination invalid."
#[test]
fn gotcha_weights_need_not_sum_to_100() {
    let vs = |a: u32, b: u32| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: w}}\n\
             spec:\n  hosts: [edition.cnn.com]\n  gateways: [egress]\n  http:\n  - route:\n    \
             - {{destination: {{host: edition.cnn.com, port: {{number: 80}}}}, weight: {a}}}\n    \
             - {{destination: {{host: edition.cnn.com, port: {{number: 81}}}}, weight: {b}}}\n"
        )
    };
    let (valid, diags) = diagnostics(&vs(30, 30));
    assert!(valid, "{diags:?}");
    let (valid, diags) = diagnostics(&vs(0, 0));
    assert!(!valid);
    assert!(
        has(&diags, Severity::Error, "total destination weight = 0"),
        "{diags:?}"
    );

    let yaml = format!(
        "{}{}{}{}",
        gateway(HTTP_SERVER),
        service_entry(CNN, 80, "HTTP", "DNS"),
        service_entry(CNN, 81, "HTTP", "DNS").replace("se-81-dns", "se-81"),
        vs(0, 7)
    );
    let f = forward_of(&snap(&yaml), "0.0.0.0_8080");
    let kept: Vec<_> = f
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.weight))
        .collect();
    assert_eq!(
        kept,
        vec![("outbound|81||edition.cnn.com", 7)],
        "0-weight dropped"
    );
}

/// "Validation status range quirk: `validateHTTPStatus` accepts 200..600 (inclusive) despite
/// the "200-599" message."
#[test]
fn gotcha_http_status_600_is_accepted() {
    let vs = |status: u32| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: f}}\n\
             spec:\n  hosts: [edition.cnn.com]\n  http:\n  - fault: {{abort: {{httpStatus: {status}, \
             percentage: {{value: 100}}}}}}\n    route:\n    - destination: {{host: edition.cnn.com}}\n"
        )
    };
    for ok in [200, 599, 600] {
        let (valid, diags) = diagnostics(&vs(ok));
        assert!(valid, "{ok}: {diags:?}");
    }
    for bad in [199, 601] {
        let (valid, diags) = diagnostics(&vs(bad));
        assert!(!valid, "{bad}");
        let message = format!("HTTP status {bad} is not in range 200-599");
        assert!(has(&diags, Severity::Error, &message), "{diags:?}");
    }
}

/// "Gateway `metadata.name` must be a DNS label (no dots); `port.name` must be unique within a
/// Gateway and non-empty; `targetPort` on Gateway ports is an error."
#[test]
fn gotcha_gateway_name_is_a_dns_label_port_names_unique_no_target_port() {
    let gw = |name: &str, servers: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\n\
             spec:\n  selector: {{istio: asm-egress-test}}\n  servers:\n{servers}"
        )
    };
    let (valid, diags) = diagnostics(&gw("egress", HTTP_SERVER));
    assert!(valid, "{diags:?}");
    let (valid, diags) = diagnostics(&gw("egress.gateway", HTTP_SERVER));
    assert!(!valid, "a dotted name: {diags:?}");
    assert!(
        diags
            .iter()
            .any(|d| d.field.contains("metadata.name") || d.message.contains("DNS")),
        "{diags:?}"
    );
    let twice = format!(
        "{HTTP_SERVER}  - port: {{number: 443, name: http, protocol: HTTPS}}\n    hosts: ['*']\n    tls: {{mode: PASSTHROUGH}}\n"
    );
    let (valid, diags) = diagnostics(&gw("egress", &twice));
    assert!(!valid);
    assert!(
        has(
            &diags,
            Severity::Error,
            "port names in servers must be unique"
        ),
        "{diags:?}"
    );
    let unnamed = "  - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n";
    let (valid, diags) = diagnostics(&gw("egress", unnamed));
    assert!(!valid, "an unnamed port: {diags:?}");
    let target =
        "  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n    hosts: ['*']\n";
    let (valid, diags) = diagnostics(&gw("egress", target));
    assert!(!valid);
    assert!(
        has(
            &diags,
            Severity::Error,
            "targetPort has no impact on Gateways"
        ),
        "{diags:?}"
    );
}

/// "Gateway server `server` header `istio-envoy`; sidecar outbound `envoy`. Gateways:
/// `use_remote_address: true`, XFCC `SANITIZE_SET`."
#[tokio::test]
async fn gotcha_gateway_server_header_is_istio_envoy_and_xfcc_is_sanitize_set() {
    let upstream = http_upstream().await;
    upstream.set_default_reply(egress_testkit::Reply::status(200).with_header("server", "nginx"));
    let port = upstream.local_addr().port();

    // Plain HTTP: every response, routed or not, says `server: istio-envoy`; XFCC dropped.
    let gw = serve(&cnn_over_http(port), cnn_to_loopback()).await;
    let forged = [(
        "x-forwarded-client-cert",
        "By=spiffe://evil;URI=spiffe://evil",
    )];
    for host in [CNN, "unknown.example.org"] {
        let (_, headers, _) = plain(gw.addr(), host, &forged).await;
        assert_eq!(headers.get("server").unwrap(), "istio-envoy", "{host}");
    }
    assert_eq!(
        upstream.requests()[0].header("x-forwarded-client-cert"),
        None
    );
    drop(gw);

    // ISTIO_MUTUAL HTTPS: XFCC set from the mesh client certificate, the forged one dropped.
    let ca = MeshCa::generate("cluster.local").unwrap();
    let ttl = Duration::from_secs(3600);
    let handle = |ns: &str, sa: &str| {
        let cert = ca
            .issue(&SpiffeId::new("cluster.local", ns, sa).unwrap(), ttl)
            .unwrap();
        Arc::new(IdentityHandle::new(cert, ca.root_pem()).unwrap())
    };
    let gateway_id = handle(NS, "asm-egress-test");
    let client = handle("default", "sleep");
    let yaml = format!(
        "{}{}{}",
        gateway(
            "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [edition.cnn.com]\n    \
             tls: {mode: ISTIO_MUTUAL}\n"
        ),
        service_entry(CNN, port, "HTTP", "DNS"),
        http_vs("cnn", "edition.cnn.com", 443, CNN, port),
    );
    let s = compiled(&seed_gateway(0, 0), resources(&yaml));
    let gw = Gw::start(s, cnn_to_loopback(), Some(gateway_id)).await;
    let config = client
        .client_config(&[], vec![b"http/1.1".to_vec()])
        .unwrap();
    let (status, headers, _) = over_tls(gw.addr(), config, CNN, CNN, &forged).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("server").unwrap(), "istio-envoy");
    let reqs = upstream.requests();
    let xfcc = reqs
        .last()
        .unwrap()
        .header("x-forwarded-client-cert")
        .unwrap();
    assert!(!xfcc.contains("evil"), "{xfcc}");
    assert!(
        xfcc.contains("By=spiffe://cluster.local/ns/aks-istio-egress/sa/asm-egress-test"),
        "{xfcc}"
    );
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/sleep"),
        "{xfcc}"
    );
}

/// "Resolution NONE at a gateway = no endpoints (EDS). DNS = STRICT_DNS (all IPs),
/// DNS_ROUND_ROBIN = LOGICAL_DNS (first IP), respect TTL, refresh 60s."
///
/// Envoy's load balancer picks a host for every request and then uses that host's connection
/// pool, so keep-alive requests to a STRICT_DNS cluster still spread over all its addresses.
#[tokio::test]
async fn gotcha_strict_dns_balances_every_request_over_all_addresses() {
    let (_net, first, second) = two_addresses().await;
    let port = first.local_addr().port();
    let hosts = vec![(
        CNN.to_owned(),
        vec![first.local_addr().ip(), second.local_addr().ip()],
    )];
    let gw = serve(&cnn_over_http(port), options(hosts)).await;
    // LEAST_REQUEST picks at random between equally loaded endpoints: 40 requests on one of
    // two addresses has odds of 2^-39 (8 failed about once in 128 runs).
    for _ in 0..40 {
        assert_eq!(plain(gw.addr(), CNN, &[]).await.0, 200);
    }
    let got = (first.requests().len(), second.requests().len());
    assert!(
        got.0 > 0 && got.1 > 0,
        "keep-alive requests stick to one address: {got:?}"
    );
}
