//! The seed's three egress scenarios at the gateway alone: a real `egress gateway run` process
//! serving the seed's YAML (variables filled in), stand-in `edition.cnn.com` upstreams on
//! loopback ports 80/443, and real clients (curl; a mesh-mTLS client for ISTIO_MUTUAL).
//!
//! Each test claims a loopback block for its stand-in (host 1) and gateway (host 2). The
//! stand-ins bind ports 80 and 443 there, which needs root (CI runs as root); without it the
//! tests print SKIPPED.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, Curl, HttpUpstream, HttpsUpstream, eventually};

const MESH_CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n";

/// A running `egress gateway run` process and what it printed.
struct Gateway {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    ip: IpAddr,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(
        manifests: &[&str],
        ip: IpAddr,
        upstream_ip: IpAddr,
        ca: &MeshCa,
        extra_root_pem: &str,
    ) -> Gateway {
        let resolve = [
            "--host".to_owned(),
            format!("edition.cnn.com={upstream_ip}"),
        ];
        Gateway::start_with(manifests, ip, &resolve, ca, extra_root_pem)
    }

    /// Like [`Gateway::start`], resolving names with `resolve` (the flags).
    fn start_with(
        manifests: &[&str],
        ip: IpAddr,
        resolve: &[String],
        ca: &MeshCa,
        extra_root_pem: &str,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("mesh.yaml"), MESH_CONFIG).unwrap();
        for (i, m) in manifests.iter().enumerate() {
            std::fs::write(config.join(format!("seed-{i}.yaml")), m).unwrap();
        }
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca_cert = write("ca.pem", ca.root_pem());
        let ca_key = write("ca-key.pem", &ca.key_pem());
        let roots = write("public-roots.pem", extra_root_pem);
        let mut child = Command::new(common::bin())
            .args(["gateway", "run", "--config"])
            .arg(&config)
            .args([
                "--namespace",
                "aks-istio-egress",
                "--labels",
                "istio=asm-egress-test,app=asm-egress-test",
                "--service-account",
                "asm-egress-test",
                "--revision",
                "asm-1-24",
                "--listen-address",
                &ip.to_string(),
                "--drain-grace",
                "1",
            ])
            .args(resolve)
            .arg("--ca-cert")
            .arg(&ca_cert)
            .arg("--ca-key")
            .arg(&ca_key)
            .arg("--extra-roots")
            .arg(&roots)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (log, _) = common::collect_output(&mut child);
        Gateway {
            child,
            log,
            ip,
            _dir: dir,
        }
    }

    async fn wait_ready(&self) {
        let url = format!("http://{}:15021/healthz/ready", self.ip);
        let ok = eventually(Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                Curl::new(url)
                    .status()
                    .await
                    .map(|o| o.status == 200)
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(
            ok.is_ok(),
            "gateway never became ready:\n{}",
            self.lines().join("\n")
        );
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, needle: &str) -> String {
        let line = common::wait_for_line(&self.log, &[needle], Duration::from_secs(10)).await;
        line.unwrap_or_else(|| {
            panic!(
                "no log line containing {needle:?}:\n{}",
                self.lines().join("\n")
            )
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Bind the stand-in's privileged port, or explain why the test cannot run.
async fn stand_in_http(ip: IpAddr) -> Option<HttpUpstream> {
    match HttpUpstream::start(SocketAddr::new(ip, 80)).await {
        Ok(u) => Some(u),
        Err(e) => {
            egress_testkit::skip(&format!(
                "cannot bind {ip}:80 for the edition.cnn.com stand-in ({e}); run as root"
            ));
            None
        }
    }
}

async fn stand_in_https(ip: IpAddr, certs: &CertFactory) -> Option<HttpsUpstream> {
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

/// A test's addresses: the stand-in upstream (`.1`) and the gateway (`.2`) of a claimed block.
struct Plan {
    block: Block,
    upstream: IpAddr,
    gateway: IpAddr,
}

impl Plan {
    fn claim() -> Plan {
        let block = Block::claim().unwrap();
        Plan {
            upstream: block.ip(1).into(),
            gateway: block.ip(2).into(),
            block,
        }
    }
}

fn scenario(index: usize) -> Option<Vec<String>> {
    let all = common::seed()?;
    // [0] the MeshConfig; then (ServiceEntry, Gateway+DR+VS) per scenario.
    Some(all[1 + 2 * index..3 + 2 * index].to_vec())
}

#[tokio::test]
async fn seed_http_egress_gateway() {
    let Some(manifests) = scenario(0) else { return };
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return;
    }
    let plan = Plan::claim();
    let Some(upstream) = stand_in_http(plan.upstream).await else {
        return;
    };
    let ca = MeshCa::generate("cluster.local").unwrap();
    let certs = CertFactory::new().unwrap();
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    let gw = Gateway::start(&refs, plan.gateway, plan.upstream, &ca, certs.ca_pem());
    gw.wait_ready().await;
    // What the sidecar sends: Host edition.cnn.com to the gateway's port 80 (target 8080).
    let out = Curl::new("http://edition.cnn.com/politics")
        .connect_to("edition.cnn.com", 80, &plan.gateway.to_string(), 8080)
        .status()
        .await
        .unwrap();
    assert_eq!(out.status, 200, "{out:?}\n{}", gw.lines().join("\n"));
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/politics");
    assert_eq!(
        reqs[0].host.as_deref(),
        Some("edition.cnn.com"),
        "Host is preserved"
    );
    let line = gw.wait_log("outbound|80||edition.cnn.com").await;
    assert!(line.contains("\"GET /politics HTTP/1.1\" 200"), "{line}");
    assert!(line.contains("\"edition.cnn.com\""), "{line}");
    // Unknown host at a gateway: 404 NR, never 502.
    let out = Curl::new("http://other.example.com/")
        .connect_to("other.example.com", 80, &plan.gateway.to_string(), 8080)
        .status()
        .await
        .unwrap();
    assert_eq!(out.status, 404);
    let nr = gw.wait_log("\" 404 NR route_not_found").await;
    assert!(nr.contains("other.example.com"), "{nr}");
}

/// The resolved-address guard from the command line: with `--dns-server`, a DNS answer that
/// points edition.cnn.com at a loopback address is refused (503 `UH`, the access log naming
/// the host and address); `--allow-private-upstreams` is the operator's opt-out.
#[tokio::test]
async fn dns_answers_to_private_addresses_are_refused_unless_the_operator_opts_out() {
    let Some(manifests) = scenario(0) else { return };
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return;
    }
    // The stand-in (.1), the guarded gateway (.2) and the opted-out one (.3).
    let plan = Plan::claim();
    let Some(upstream) = stand_in_http(plan.upstream).await else {
        return;
    };
    let dns = egress_testkit::dns::StubDns::start(&[("edition.cnn.com", plan.block.ip(1))])
        .await
        .unwrap();
    let ca = MeshCa::generate("cluster.local").unwrap();
    let certs = CertFactory::new().unwrap();
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    let resolve = ["--dns-server".to_owned(), dns.addr.to_string()];
    let guarded = Gateway::start_with(&refs, plan.gateway, &resolve, &ca, certs.ca_pem());
    let mut opted_out = resolve.to_vec();
    opted_out.push("--allow-private-upstreams".to_owned());
    let open = Gateway::start_with(
        &refs,
        plan.block.ip(3).into(),
        &opted_out,
        &ca,
        certs.ca_pem(),
    );
    guarded.wait_ready().await;
    open.wait_ready().await;

    let via = |gw: &Gateway| {
        Curl::new("http://edition.cnn.com/politics").connect_to(
            "edition.cnn.com",
            80,
            &gw.ip.to_string(),
            8080,
        )
    };
    let refused = via(&guarded).status().await.unwrap();
    assert_eq!(refused.status, 503, "{refused:?}");
    let line = guarded.wait_log("upstream_address_refused").await;
    assert!(
        line.contains(&format!(
            "upstream_address_refused{{edition.cnn.com->{}}}",
            plan.upstream
        )) && line.contains(" UH "),
        "{line}"
    );
    assert!(
        upstream.requests().is_empty(),
        "nothing reached the upstream"
    );
    assert!(dns.queries() > 0, "the name was asked of --dns-server");

    let allowed = via(&open).status().await.unwrap();
    assert_eq!(
        allowed.status,
        200,
        "{allowed:?}\n{}",
        open.lines().join("\n")
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn seed_https_passthrough_egress_gateway() {
    let Some(manifests) = scenario(1) else { return };
    if !Curl::available() {
        egress_testkit::skip("curl is not installed");
        return;
    }
    let certs = CertFactory::new().unwrap();
    let plan = Plan::claim();
    let Some(upstream) = stand_in_https(plan.upstream, &certs).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let public_ca = certs.write_ca_file(dir.path()).unwrap();
    let ca = MeshCa::generate("cluster.local").unwrap();
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    // The gateway itself does not trust the stand-in's CA: passthrough never terminates.
    let other = CertFactory::new().unwrap();
    let gw = Gateway::start(&refs, plan.gateway, plan.upstream, &ca, other.ca_pem());
    gw.wait_ready().await;
    let out = Curl::new("https://edition.cnn.com/politics")
        .connect_to("edition.cnn.com", 443, &plan.gateway.to_string(), 8443)
        .cacert(&public_ca)
        .status()
        .await
        .unwrap();
    assert_eq!(
        out.status,
        200,
        "curl verified the upstream's own certificate: {out:?}\n{}",
        gw.lines().join("\n")
    );
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].sni.as_deref(), Some("edition.cnn.com"));
    let line = gw.wait_log("outbound|443||edition.cnn.com").await;
    assert!(line.contains("\"- - -\" 0"), "a TCP line: {line}");
    assert!(
        line.contains(" edition.cnn.com "),
        "requested server name logged: {line}"
    );
    // An SNI no route names: the connection is closed (curl exit 35).
    let out = Curl::new("https://other.example.com/")
        .connect_to("other.example.com", 443, &plan.gateway.to_string(), 8443)
        .cacert(&public_ca)
        .status()
        .await
        .unwrap();
    assert_eq!(out.exit_code, 35, "{out:?}");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn seed_istio_mutual_and_tls_origination() {
    let Some(manifests) = scenario(2) else { return };
    let certs = CertFactory::new().unwrap();
    let plan = Plan::claim();
    let Some(upstream) = stand_in_https(plan.upstream, &certs).await else {
        return;
    };
    let ca = MeshCa::generate("cluster.local").unwrap();
    let refs: Vec<&str> = manifests.iter().map(String::as_str).collect();
    let gw = Gateway::start(&refs, plan.gateway, plan.upstream, &ca, certs.ca_pem());
    gw.wait_ready().await;

    // The curl workload's sidecar: mesh mTLS to the gateway with SNI edition.cnn.com (the DR's
    // `sni`), verifying the gateway's SPIFFE identity, plain HTTP inside.
    let client_id = SpiffeId::new("cluster.local", "aks-istio-egress", "curl").unwrap();
    let client = IdentityHandle::new(
        ca.issue(&client_id, Duration::from_secs(3600)).unwrap(),
        ca.root_pem(),
    )
    .unwrap();
    let gateway_id = "spiffe://cluster.local/ns/aks-istio-egress/sa/asm-egress-test".to_owned();
    let config = client
        .client_config(&[gateway_id], vec![b"http/1.1".to_vec()])
        .unwrap();
    let tcp = tokio::net::TcpStream::connect((plan.gateway, 8080))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("edition.cnn.com").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/politics")
        .header("host", "edition.cnn.com")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.lines().join("\n"));

    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].tls, "the gateway originated TLS");
    assert_eq!(
        reqs[0].sni.as_deref(),
        Some("edition.cnn.com"),
        "SNI from the Host"
    );
    assert_eq!(reqs[0].path, "/politics");
    let line = gw.wait_log("outbound|443||edition.cnn.com").await;
    assert!(line.contains("\"GET /politics HTTP/1.1\" 200"), "{line}");
}
