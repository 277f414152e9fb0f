//! The seed, verbatim, with the real `kubectl` against `egress up`: every ```bash and
//! ```azurecli block of the how-to from "Enable an Istio egress gateway" on runs through
//! `bash` as written, with the real `/usr/bin/kubectl` on the kubeconfig `egress up` wrote.
//! The only substitutions are the ones a local cluster needs: `az aks mesh` is `egress mesh`
//! and `az aks show` is `egress mesh show` (an `az` script on PATH; `disable-egress-gateway`
//! gets `--yes` because no terminal answers az's prompt here), and the curl sample's URL is
//! `samples/curl.yaml`. Shell variables carry from block to block as in one terminal session.
//!
//! What the seed does not show as a command is done as its prerequisites say: the add-on
//! enabled, the namespace and its StaticGatewayConfiguration (waiting for the prefix, its
//! best practice), the shared MeshConfig from its ```yaml block, and access logging through
//! the Telemetry API (its recommendation). Each `kubectl exec ... curl` prints the seed's
//! output: `502` under REGISTRY_ONLY before any ServiceEntry, then one `200` response per
//! scenario (`HTTP/2 200` for HTTPS), seen at the stand-in `edition.cnn.com` from the
//! gateway's static egress prefix and in `kubectl logs -l istio=...`.
//!
//! Needs root (stand-ins on ports 80 and 443, transparent capture) and kubectl: without
//! them the test prints SKIPPED (and fails under `EGRESS_TEST_STRICT=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Addrs, Cluster, Run, Up};
use egress_testkit::addrs::Block;
use egress_testkit::kubectl::Kubectl;
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream};

const NS: &str = "aks-istio-egress";
const CURL_URL: &str =
    "https://raw.githubusercontent.com/istio/istio/release-1.24/samples/curl/curl.yaml";

/// The seed's shell blocks (```bash and ```azurecli*), in order, from "Enable an Istio
/// egress gateway" on (the `az extension` blocks before it install the CLI).
fn seed_blocks(seed: &str) -> Vec<String> {
    let start = seed
        .find("## Enable an Istio egress gateway")
        .expect("the seed's enable section");
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in seed[start..].lines() {
        match cur.as_mut() {
            Some(buf) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(buf));
                cur = None;
            }
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None if line.trim_start() == "```bash"
                || line.trim_start().starts_with("```azurecli") =>
            {
                cur = Some(String::new());
            }
            None => {}
        }
    }
    out
}

/// The seed's ```yaml block (the shared MeshConfig).
fn seed_mesh_config(seed: &str) -> String {
    let at = seed.find("```yaml\n").expect("the seed's MeshConfig block") + "```yaml\n".len();
    let end = seed[at..].find("```").unwrap();
    seed[at..at + end].to_owned()
}

/// A terminal session: each block runs in `bash -e` with the variables the earlier blocks set.
struct Session<'a> {
    c: &'a Cluster,
    bin: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl<'a> Session<'a> {
    fn new(c: &'a Cluster) -> Session<'a> {
        let bin = c.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let egress = common::bin();
        // `az aks mesh X` is `egress mesh X`, `az aks show` is `egress mesh show`.
        let az = format!(
            "#!/bin/bash\nset -e\n[ \"$1\" = aks ] || {{ echo \"az $1: not part of the local cluster\" >&2; exit 2; }}\nshift\ncase \"$1\" in\n  mesh) shift; if [ \"$1\" = disable-egress-gateway ]; then set -- \"$@\" --yes; fi; exec {egress} mesh \"$@\" ;;\n  show) shift; exec {egress} mesh show \"$@\" ;;\n  *) echo \"az aks $1: not part of the local cluster\" >&2; exit 2 ;;\nesac\n"
        );
        let path = bin.join("az");
        std::fs::write(&path, az).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let state = c.dir.path().join("session.sh");
        std::fs::write(
            &state,
            format!(
                "RESOURCE_GROUP={rg}\nCLUSTER_NAME={rg}\nISTIO_EGRESS_NAME=asm-egress-test\nISTIO_EGRESS_NAMESPACE={NS}\nISTIO_SGC_NAME=istio-egress-sgc\n",
                rg = "egress-local"
            ),
        )
        .unwrap();
        Session { c, bin, state }
    }

    /// Runs one block as written (the curl sample's URL aside) and keeps its variables.
    fn run(&self, block: &str) -> Run {
        let block = block.replace(
            CURL_URL,
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../samples/curl.yaml")
                .to_str()
                .unwrap(),
        );
        let script = format!(
            "set -e\nsource {state}\n{block}\ndeclare -p RESOURCE_GROUP CLUSTER_NAME ISTIO_EGRESS_NAME ISTIO_EGRESS_NAMESPACE ISTIO_SGC_NAME ASM_REVISION SOURCE_POD ISTIO_EGRESS_DEPLOYMENT EGRESS_GTW_SELECTOR > {state}.new 2>/dev/null || true\nmv {state}.new {state}\n",
            state = self.state.display()
        );
        let o = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("KUBECONFIG", self.c.kubeconfig())
            .env("EGRESS_STORE", self.c.store())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        let r = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        println!("$ {}\n{}{}", block.trim_end(), r.stdout, r.stderr);
        r
    }

    /// Runs a block until `ok` holds (configuration takes effect within a second or so).
    fn until(&self, block: &str, what: &str, ok: impl Fn(&Run) -> bool) -> Run {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.run(block);
            if ok(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: exit {}\n{}{}",
                r.code,
                r.stdout,
                r.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The header blocks' status lines `curl -D -` printed.
fn status_lines(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::trim)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_verbatim_with_kubectl_on_the_local_cluster() {
    let Some(shared) = common::shared() else {
        egress_testkit::skip("../shared (the seed) is not beside the repository");
        return;
    };
    if !Kubectl::available() {
        egress_testkit::skip("kubectl is not installed");
        return;
    }
    let root = rustix::process::geteuid().is_root()
        && Command::new("iptables")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !root {
        egress_testkit::skip("the seed's output needs transparent capture (root and iptables)");
        return;
    }
    let seed = std::fs::read_to_string(shared.join("seed/000_39c6bb10cf1ba6a2.txt")).unwrap();
    let stand_ins = Block::claim().unwrap();
    let ip = IpAddr::V4(stand_ins.ip(1));
    let certs = CertFactory::new().unwrap();
    let http = HttpUpstream::start(SocketAddr::new(ip, 80)).await.unwrap();
    let https = HttpsUpstream::start(SocketAddr::new(ip, 443), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let c = Cluster::new();
    let ca_file = certs.write_ca_file(c.dir.path()).unwrap();
    tokio::task::block_in_place(|| walk(&c, &seed, ip, &ca_file, &http, &https));
}

fn walk(
    c: &Cluster,
    seed: &str,
    stand_in: IpAddr,
    ca_file: &Path,
    http: &HttpUpstream,
    https: &HttpsUpstream,
) {
    let addrs = Addrs::claim();
    let host = format!("edition.cnn.com={stand_in}");
    let _up = Up::start(
        c,
        &addrs.flags(&["--host", &host, "--upstream-ca", ca_file.to_str().unwrap()]),
    );
    let k = Kubectl::new(&c.kubeconfig(), c.dir.path());
    let sh = Session::new(c);
    let in_prefix = |peer: SocketAddr| {
        [addrs.pool.ip(0), addrs.pool.ip(1)]
            .map(IpAddr::V4)
            .contains(&peer.ip())
    };

    // Prerequisites: the add-on, the namespace and its StaticGatewayConfiguration with its
    // prefix assigned, the shared MeshConfig (the seed's yaml block), access logging.
    sh.run("az aks mesh enable --resource-group $RESOURCE_GROUP --name $CLUSTER_NAME --revision asm-1-24 -o none")
        .ok();
    k.ok(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: {NS}\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n"
        ),
    );
    sh.until(
        "kubectl get staticgatewayconfiguration $ISTIO_SGC_NAME -n $ISTIO_EGRESS_NAMESPACE -o jsonpath={.status.egressIpPrefix}",
        "the egress IP prefix",
        |r| r.code == 0 && !r.stdout.trim().is_empty(),
    );
    let applied = k.ok(&["apply", "-f", "-"], &seed_mesh_config(seed));
    assert_eq!(
        applied.trim(),
        "configmap/istio-shared-configmap-asm-1-24 created"
    );
    k.ok(
        &["apply", "-f", "-"],
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: mesh-default\n  namespace: aks-istio-system\nspec:\n  accessLogging:\n  - providers:\n    - name: envoy\n",
    );

    let blocks = seed_blocks(seed);
    assert_eq!(blocks.len(), 21, "{blocks:#?}");
    let mut execs = 0;
    for block in &blocks {
        let first = block.lines().next().unwrap_or_default();
        if block.contains("kubectl exec") {
            // (status line, whether the request reaches the stand-in over TLS)
            let (want, upstream): (&str, Option<bool>) = match execs {
                // No ServiceEntry yet: REGISTRY_ONLY's 502 from the sidecar.
                0 => ("HTTP/1.1 502", None),
                1 => ("HTTP/1.1 200", Some(false)),
                2 => ("HTTP/2 200", Some(true)),
                _ => ("HTTP/1.1 200", Some(true)),
            };
            let requests = |tls: bool| {
                if tls {
                    https.requests()
                } else {
                    http.requests()
                }
            };
            let before = upstream.map_or(0, |tls| requests(tls).len());
            // Until the configuration is in effect: the one response the seed shows, and
            // (through the gateway) the stand-in saw it from the static egress prefix.
            let r = sh.until(block, &format!("`{}` prints {want}", block.trim()), |r| {
                let lines = status_lines(r);
                lines.len() == 1
                    && lines[0].starts_with(want)
                    && upstream.is_none_or(|tls| {
                        requests(tls)[before..]
                            .last()
                            .is_some_and(|q| in_prefix(q.peer_addr))
                    })
            });
            assert_eq!(r.stderr, "", "curl printed only the response");
            if let Some(tls) = upstream {
                if tls {
                    let last = requests(true).pop().unwrap();
                    assert_eq!(last.sni.as_deref(), Some("edition.cnn.com"));
                }
                // The gateway logged it (the seed's logs step, as written).
                let logs = sh.until(
                    "kubectl logs -l istio=$EGRESS_GTW_SELECTOR -n $ISTIO_EGRESS_NAMESPACE",
                    "the gateway's access log names edition.cnn.com",
                    |r| r.code == 0 && r.stdout.contains("||edition.cnn.com"),
                );
                assert!(logs.stdout.contains("outbound|"), "{}", logs.stdout);
            }
            execs += 1;
            continue;
        }
        let r = sh.run(block).ok();
        if first.starts_with("kubectl get svc") {
            // The seed's table: a ClusterIP Service with the three ports.
            let lines: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(lines.len(), 2, "{}", r.stdout);
            let header: Vec<&str> = lines[0].split_whitespace().collect();
            assert_eq!(
                header,
                [
                    "NAME",
                    "TYPE",
                    "CLUSTER-IP",
                    "EXTERNAL-IP",
                    "PORT(S)",
                    "AGE"
                ]
            );
            let row: Vec<&str> = lines[1].split_whitespace().collect();
            assert_eq!(row[0], "asm-egress-test");
            assert_eq!(row[1], "ClusterIP");
            assert_eq!(row[3], "<none>");
            assert_eq!(row[4], "15021/TCP,80/TCP,443/TCP");
        } else if first.starts_with("ASM_REVISION=") {
            assert_eq!(r.stdout, "istio-egress-sgc");
        } else if first.starts_with("kubectl label") {
            assert_eq!(r.stdout.trim(), format!("namespace/{NS} labeled"));
        } else if first.starts_with("kubectl apply -f") {
            assert!(
                r.stdout.contains("deployment.apps/curl created"),
                "{}",
                r.stdout
            );
            // The seed's "You should see the curl pod running with an injected sidecar".
            sh.until(
                "kubectl get pod -n $ISTIO_EGRESS_NAMESPACE -l app=curl",
                "curl 2/2 Running",
                |r| {
                    r.stdout.lines().any(|l| {
                        l.starts_with("curl-") && l.contains(" 2/2 ") && l.contains("Running")
                    })
                },
            );
        } else if first.starts_with("kubectl apply -n") {
            assert!(
                r.stdout
                    .lines()
                    .all(|l| l.ends_with(" created") || l.ends_with(" configured")),
                "{}",
                r.stdout
            );
        } else if first.starts_with("kubectl delete") {
            assert_eq!(
                r.stdout.lines().count(),
                block.lines().filter(|l| !l.trim().is_empty()).count()
            );
            assert!(
                r.stdout.lines().all(|l| l.ends_with("\" deleted")),
                "{}",
                r.stdout
            );
        } else if first.starts_with("az aks mesh disable-egress-gateway") {
            let svc = sh.run("kubectl get svc $ISTIO_EGRESS_NAME -n $ISTIO_EGRESS_NAMESPACE");
            assert_ne!(svc.code, 0);
            assert!(svc.stderr.contains("NotFound"), "{}", svc.stderr);
        }
    }
    assert_eq!(execs, 4);
}
