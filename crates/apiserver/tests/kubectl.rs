//! The real `kubectl` against the API over a store: discovery (`version`, `api-resources`),
//! `apply` (created, unchanged, configured with a label added by `kubectl label` kept),
//! server-side tables with `egress get`'s columns, jsonpath, `get -w` seeing a change, an
//! invalid VirtualService refused with Istio's webhook message and nothing stored, `delete`,
//! 401 without the token, and `explain` of Istio, AKS and Kubernetes fields. The server listens on a claimed loopback address with a serving
//! certificate from a mesh CA; kubectl reads a kubeconfig written by [`kubeconfig::merge`].
//! Skips (fails under `EGRESS_TEST_STRICT=1`) where kubectl is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use egress_apiserver::{ApiServer, Config, kubeconfig};
use egress_identity::MeshCa;
use egress_store::{ObjectKey, Store};
use egress_testkit::addrs::Block;
use egress_testkit::kubectl::Kubectl;

/// Runs exec commands on this machine (the local cluster runs them as `egress exec` does).
struct HostRunner;

impl egress_apiserver::exec::Runner for HostRunner {
    fn prepare(
        &self,
        _namespace: &str,
        _pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<egress_apiserver::exec::Prepared, String> {
        if container == Some("nope") {
            return Err("unable to upgrade connection: container not found (\"nope\")".into());
        }
        let mut c = Command::new(&command[0]);
        c.args(&command[1..]);
        Ok(egress_apiserver::exec::Prepared {
            command: c,
            keep: Box::new(()),
        })
    }
}

struct Api {
    _dir: tempfile::TempDir,
    pods: PathBuf,
    store: Store,
    server: Option<ApiServer>,
    kubectl: Kubectl,
    _block: Block,
}

impl std::ops::Deref for Api {
    type Target = Kubectl;
    fn deref(&self) -> &Kubectl {
        &self.kubectl
    }
}

/// A serving configuration with a certificate from `ca` for `names`.
fn serving(ca: &MeshCa, names: &[String]) -> Arc<rustls::ServerConfig> {
    ca.server_config(names, Duration::from_secs(3600), Vec::new())
        .unwrap()
}

impl Api {
    async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let block = Block::claim().unwrap();
        let ip = std::net::IpAddr::V4(block.ip(1));
        let ca = MeshCa::generate("cluster.local").unwrap();
        let tls = serving(&ca, &[ip.to_string(), "localhost".into()]);
        let token = egress_apiserver::new_token();
        let pods = dir.path().join("pods");
        let server = ApiServer::start(Config {
            addr: SocketAddr::new(ip, 6443),
            store: store.clone(),
            tls,
            token: token.clone(),
            pod_logs: Some(pods.clone()),
            exec: Some(Arc::new(HostRunner)),
            request_log: None,
        })
        .await
        .unwrap();
        let home = dir.path().join("home");
        let kubeconfig = home.join(".kube").join("config");
        let server_url = format!("https://{}", server.local_addr());
        kubeconfig::merge(
            &kubeconfig,
            &kubeconfig::Entry {
                server: &server_url,
                ca_pem: ca.root_pem(),
                token: &token,
            },
        )
        .unwrap();
        Api {
            _dir: dir,
            pods,
            store,
            server: Some(server),
            kubectl: Kubectl::new(&kubeconfig, &home),
            _block: block,
        }
    }
}

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n";
const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: curl\n  labels:\n    app: curl\nspec:\n  selector:\n    app: curl\n  ports:\n  - name: http\n    port: 80\n";

macro_rules! require_kubectl {
    () => {
        if !Kubectl::available() {
            egress_testkit::skip("kubectl is not installed");
            return;
        }
    };
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_applies_gets_labels_and_deletes() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        let version = api.ok(&["version"], "");
        assert!(
            version.contains("Server Version: v1.32.0+egress"),
            "{version}"
        );
        // Aggregated discovery: /api and /apis describe every resource, so kubectl asks for
        // no group version's list.
        let verbose = api.run(&["api-resources", "--no-headers", "-v=6"], "");
        assert!(verbose.status.success(), "{verbose:?}");
        let log = String::from_utf8_lossy(&verbose.stderr);
        assert!(log.contains("/apis?timeout=32s 200 OK"), "{log}");
        assert!(!log.contains("/apis/apps/v1?timeout"), "{log}");
        assert!(!log.contains("/api/v1?timeout"), "{log}");
        let resources = String::from_utf8_lossy(&verbose.stdout).into_owned();
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [
                        "serviceentries",
                        "se",
                        "networking.istio.io/v1",
                        "true",
                        "ServiceEntry"
                    ]),
            "{resources}"
        );

        assert_eq!(
            api.ok(&["apply", "-f", "-"], NS).trim(),
            "namespace/apps created"
        );
        assert_eq!(
            api.ok(&["apply", "-n", "apps", "-f", "-"], SVC).trim(),
            "service/curl created"
        );
        assert_eq!(
            api.ok(&["apply", "-n", "apps", "-f", "-"], SVC).trim(),
            "service/curl unchanged"
        );
        let table = api.ok(&["get", "svc", "-n", "apps"], "");
        let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            head,
            [
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE"
            ]
        );
        assert!(
            table.lines().nth(1).unwrap().starts_with("curl "),
            "{table}"
        );
        assert_eq!(
            api.ok(
                &[
                    "get",
                    "svc",
                    "curl",
                    "-n",
                    "apps",
                    "-o",
                    "jsonpath={.spec.ports[0].port}"
                ],
                ""
            ),
            "80"
        );

        // A label added by `kubectl label` survives an apply of the edited manifest.
        assert_eq!(
            api.ok(&["label", "svc", "curl", "-n", "apps", "team=web"], "")
                .trim(),
            "service/curl labeled"
        );
        let edited = SVC.replace("port: 80", "port: 8080");
        assert_eq!(
            api.ok(&["apply", "-n", "apps", "-f", "-"], &edited).trim(),
            "service/curl configured"
        );
        let stored = api
            .store
            .get(&ObjectKey::new("", "Service", Some("apps"), "curl"))
            .unwrap()
            .unwrap();
        assert_eq!(stored["metadata"]["labels"]["team"], "web");
        assert_eq!(stored["spec"]["ports"][0]["port"], 8080);
        assert_eq!(stored["spec"]["ports"].as_array().unwrap().len(), 1);

        assert_eq!(
            api.ok(&["delete", "svc", "curl", "-n", "apps"], "").trim(),
            "service \"curl\" deleted"
        );
        let gone = api.run(&["get", "svc", "curl", "-n", "apps"], "");
        assert!(!gone.status.success());
        assert_eq!(
            String::from_utf8_lossy(&gone.stderr).trim(),
            "Error from server (NotFound): services \"curl\" not found"
        );
    });
    api.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_virtual_service_is_refused_with_istios_webhook_message() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        let bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: bad\nspec:\n  hosts: [edition.cnn.com]\n  http:\n  - route:\n    - destination:\n        host: \"\"\n";
        let out = api.run(&["apply", "-n", "apps", "-f", "-"], bad);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("Error from server: error when creating \"STDIN\": admission webhook \"validation.istio.io\" denied the request: configuration is invalid: "),
            "{err}"
        );
        assert!(
            api.store
                .get(&ObjectKey::new(
                    "networking.istio.io",
                    "VirtualService",
                    Some("apps"),
                    "bad"
                ))
                .unwrap()
                .is_none()
        );
    });
    api.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_watch_sees_a_change_and_requests_without_the_token_are_refused() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        api.ok(&["apply", "-n", "apps", "-f", "-"], SVC);
        let mut watch = api
            .command(&[
                "get",
                "svc",
                "-n",
                "apps",
                "-w",
                "--no-headers",
                "--request-timeout=30s",
            ])
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.starts_with("curl "), "{first}");
        api.ok(
            &["apply", "-n", "apps", "-f", "-"],
            &SVC.replace("name: curl", "name: web"),
        );
        let next = lines.next().unwrap().unwrap();
        assert!(next.starts_with("web "), "{next}");
        watch.kill().unwrap();
        let _ = watch.wait();

        let out = api.run(&["get", "svc", "-A", "--token", "wrong"], "");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("You must be logged in to the server (Unauthorized)"),
            "{err}"
        );
    });
    api.server.unwrap().shutdown().await;
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: gw-1\n  labels:\n    istio: gw\nspec:\n  containers:\n  - name: istio-proxy\n    image: egress\n";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_reads_tails_and_follows_a_containers_log() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        api.ok(&["apply", "-n", "apps", "-f", "-"], POD);
        let dir = api.pods.join("apps_gw-1");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("istio-proxy.log");
        std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
        assert_eq!(
            api.ok(&["logs", "gw-1", "-n", "apps"], ""),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            api.ok(&["logs", "-l", "istio=gw", "-n", "apps", "--tail", "1"], ""),
            "three\n"
        );
        assert_eq!(
            api.ok(&["logs", "-l", "istio=gw", "-n", "apps", "--prefix"], ""),
            "[pod/gw-1/istio-proxy] one\n[pod/gw-1/istio-proxy] two\n[pod/gw-1/istio-proxy] three\n"
        );
        let bad = api.run(&["logs", "gw-1", "-n", "apps", "-c", "nope"], "");
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr)
                .contains("container nope is not valid for pod gw-1"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        // -f: a line appended later arrives; deleting the Pod ends the stream.
        let mut follow = api
            .command(&[
                "logs",
                "-f",
                "gw-1",
                "-n",
                "apps",
                "--tail",
                "1",
                "--request-timeout=30s",
            ])
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
        // The last line arrives first: the stream is open before anything is appended.
        assert_eq!(lines.next().unwrap().unwrap(), "three");
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(b"four\n").unwrap();
        }
        assert_eq!(lines.next().unwrap().unwrap(), "four");
        api.ok(&["delete", "pod", "gw-1", "-n", "apps"], "");
        assert!(lines.next().is_none(), "the stream ends with the Pod");
        assert!(follow.wait().unwrap().success());
    });
    api.server.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_streams_output_and_stdin_and_returns_the_exit_code() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        api.ok(&["apply", "-n", "apps", "-f", "-"], POD);
        let key = ObjectKey::new("", "Pod", Some("apps"), "gw-1");
        api.store
            .transact(|tx| {
                let mut pod = tx.get(&key)?.unwrap();
                pod["status"] = serde_json::json!({"phase": "Running"});
                tx.apply(&key, pod).map(|_| ())
            })
            .unwrap();
        let out = api.run(
            &[
                "exec",
                "gw-1",
                "-n",
                "apps",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            "",
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("err\n"), "{err}");
        assert!(err.contains("command terminated with exit code 3"), "{err}");
        assert_eq!(
            api.ok(
                &["exec", "-i", "gw-1", "-n", "apps", "--", "cat"],
                "hello\nworld\n"
            ),
            "hello\nworld\n"
        );
        // -it from a terminal (`script` gives kubectl one): the command runs on a pty of its
        // own, its controlling terminal, and the exit code still comes back.
        if std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let line = "kubectl exec -it gw-1 -n apps -- sh -c 'tty; test -t 0 && echo stdin-is-a-terminal; exit 4'";
            // kubectl's environment (its kubeconfig), under `script`.
            let kubectl = api.command(&[]);
            let mut script = std::process::Command::new("script");
            script
                .args(["-qec", line, "/dev/null"])
                .stdin(std::process::Stdio::null());
            for (k, v) in kubectl.get_envs() {
                if let Some(v) = v {
                    script.env(k, v);
                }
            }
            let out = script.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(4), "{text}");
            assert!(text.contains("/dev/pts/"), "{text}");
            assert!(text.contains("stdin-is-a-terminal"), "{text}");
        } else {
            egress_testkit::skip("kubectl exec -it needs `script` (util-linux) for a terminal");
        }
        let bad = api.run(
            &["exec", "gw-1", "-n", "apps", "-c", "nope", "--", "true"],
            "",
        );
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("container not found"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
    });
    api.server.unwrap().shutdown().await;
}

#[test]
fn only_loopback_addresses_are_served() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ca = MeshCa::generate("cluster.local").unwrap();
        let tls = serving(&ca, &["localhost".into()]);
        ApiServer::start(Config {
            addr: "0.0.0.0:6443".parse().unwrap(),
            store,
            tls: Arc::clone(&tls),
            token: "t".into(),
            pod_logs: None,
            exec: None,
            request_log: None,
        })
        .await
        .err()
        .unwrap()
    });
    assert_eq!(
        err.to_string(),
        "the Kubernetes API binds loopback addresses only, not 0.0.0.0:6443"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_explain_reads_the_published_schemas() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        // (arguments, lines expected verbatim, description fragments)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (
                &["serviceentry.spec.hosts"],
                &[
                    "GROUP:      networking.istio.io",
                    "KIND:       ServiceEntry",
                    "VERSION:    v1",
                    "FIELD: hosts <[]string>",
                ],
                &["Hosts (DNS names, optionally with a wildcard prefix)."],
            ),
            (
                &[
                    "--api-version=networking.istio.io/v1beta1",
                    "se.spec.resolution",
                ],
                &[
                    "VERSION:    v1beta1",
                    "FIELD: resolution <string>",
                    "ENUM:",
                    "    DNS_ROUND_ROBIN",
                ],
                &["How endpoints are found"],
            ),
            (
                &["virtualservice.spec.http.route"],
                &[
                    "FIELD: route <[]HttpRouteDestination>",
                    "  destination\t<Destination>",
                    "  weight\t<integer>",
                ],
                &["Weighted destinations.", "Relative weight"],
            ),
            (
                &["destinationrule.spec.trafficPolicy.tls"],
                &[
                    "FIELD: tls <ClientTlsSettings>",
                    "  mode\t<string>",
                    "  enum: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL",
                    "  sni\t<string>",
                ],
                &["TLS origination settings."],
            ),
            (
                &["gateway.spec.servers"],
                &[
                    "FIELD: servers <[]Server>",
                    "  port\t<Port>",
                    "  tls\t<ServerTlsSettings>",
                ],
                &["Servers (listeners) the gateway exposes."],
            ),
            (
                &["sgc.spec.defaultRoute"],
                &[
                    "KIND:       StaticGatewayConfiguration",
                    "FIELD: defaultRoute <string>",
                ],
                &["Pod default route"],
            ),
            (
                &["deployment.spec.replicas"],
                &["GROUP:      apps", "FIELD: replicas <integer>"],
                &["Number of desired pods."],
            ),
            (
                &["deployment.spec"],
                &[
                    "  selector\t<LabelSelector> -required-",
                    "  template\t<PodTemplateSpec> -required-",
                ],
                &["Template describes the pods that will be created."],
            ),
            (
                &["svc.spec.ports"],
                &[
                    "KIND:       Service",
                    "FIELD: ports <[]ServicePort>",
                    "  port\t<integer> -required-",
                ],
                &["The list of ports that are exposed by this service."],
            ),
            (
                &["pod.spec.containers"],
                &[
                    "FIELD: containers <[]Container>",
                    "  name\t<string> -required-",
                    "  image\t<string>",
                ],
                &["List of containers belonging to the pod."],
            ),
            (
                &["endpointslice.endpoints.conditions"],
                &[
                    "GROUP:      discovery.k8s.io",
                    "KIND:       EndpointSlice",
                    "FIELD: conditions <EndpointConditions>",
                    "  ready\t<boolean>",
                    "  serving\t<boolean>",
                    "  terminating\t<boolean>",
                ],
                &[],
            ),
            (
                &["--recursive", "pod.spec.containers"],
                &[
                    "FIELD: containers <[]Container>",
                    "    valueFrom\t<EnvVarSource>",
                    "        key\t<string> -required-",
                ],
                &[],
            ),
        ];
        for (args, lines, fragments) in cases {
            let out = api.ok(&[&["explain"][..], args].concat(), "");
            let got: Vec<&str> = out.lines().collect();
            for line in *lines {
                assert!(got.contains(line), "{args:?}: no line {line:?} in\n{out}");
            }
            // Descriptions are wrapped at 80 columns: compare with the line breaks joined.
            let joined = got.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
            for fragment in *fragments {
                assert!(
                    joined.contains(fragment),
                    "{args:?}: no {fragment:?} in\n{out}"
                );
            }
        }
        let out = api.run(&["explain", "serviceentry.spec.nope"], "");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("field \"nope\" does not exist"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    api.server.unwrap().shutdown().await;
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata:\n  mode: ALLOW_ANY\n  level: info\n";
const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: cnn\n  namespace: apps\nspec:\n  hosts: [edition.cnn.com]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  resolution: DNS\n";

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_records_managers_and_refuses_conflicts_unless_forced() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        // Client-side apply, then a server-side apply that changes one of its fields: the
        // API server's conflict, which kubectl explains.
        assert_eq!(
            api.ok(&["apply", "-f", "-"], CM).trim(),
            "configmap/settings created"
        );
        let out = api.run(
            &["apply", "--server-side", "-f", "-"],
            &CM.replace("ALLOW_ANY", "REGISTRY_ONLY"),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(
                "error: Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.mode\n"
            ),
            "{err}"
        );
        assert!(err.contains("--force-conflicts"), "{err}");
        assert_eq!(
            api.ok(
                &[
                    "get",
                    "cm",
                    "settings",
                    "-n",
                    "apps",
                    "-o",
                    "jsonpath={.data.mode}"
                ],
                ""
            ),
            "ALLOW_ANY",
            "nothing stored on refusal"
        );
        // The same values are shared, not a conflict.
        assert_eq!(
            api.ok(&["apply", "--server-side", "-f", "-"], CM).trim(),
            "configmap/settings serverside-applied"
        );
        // Forced: the field changes hands.
        let forced = api.ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &CM.replace("ALLOW_ANY", "REGISTRY_ONLY"),
        );
        assert_eq!(forced.trim(), "configmap/settings serverside-applied");
        let managed = api.ok(
            &[
                "get",
                "cm",
                "settings",
                "-n",
                "apps",
                "--show-managed-fields",
                "-o",
                "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}:{.fieldsV1}{\"\\n\"}{end}",
            ],
            "",
        );
        let owner_of_mode: Vec<&str> = managed
            .lines()
            .filter(|l| l.contains("\"f:mode\""))
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(owner_of_mode, ["kubectl/Apply"], "{managed}");

        // Two server-side managers of an Istio object: the second's different hosts conflict
        // with the first (an Apply manager is named without its apiVersion).
        assert_eq!(
            api.ok(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=platform",
                    "-f",
                    "-"
                ],
                SE
            )
            .trim(),
            "serviceentry.networking.istio.io/cnn serverside-applied"
        );
        let out = api.run(
            &["apply", "--server-side", "--field-manager=team", "-f", "-"],
            &SE.replace("DNS", "NONE")
                .replace("edition.cnn.com", "cnn.com"),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(
                "error: Apply failed with 2 conflicts: conflicts with \"platform\":\n- .spec.hosts\n- .spec.resolution\n"
            ),
            "{err}"
        );
        // A manager that leaves a field out of its next apply removes it.
        api.ok(
            &[
                "apply",
                "--server-side",
                "--field-manager=platform",
                "-f",
                "-",
            ],
            &SE.replace("  resolution: DNS\n", ""),
        );
        assert_eq!(
            api.ok(
                &[
                    "get",
                    "se",
                    "cnn",
                    "-n",
                    "apps",
                    "-o",
                    "jsonpath={.spec.resolution}"
                ],
                ""
            ),
            ""
        );
    });
}

const TYPO_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  replicass: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n";

#[tokio::test(flavor = "multi_thread")]
async fn field_validation_and_invalid_values_read_as_the_api_servers() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        // kubectl's default --validate=strict: the API server's strict decoding error.
        let out = api.run(&["apply", "-f", "-"], TYPO_DEPLOYMENT);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "Error from server (BadRequest): error when creating \"STDIN\": Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\""
        );
        // --validate=warn: stored without the field, with the API server's warning.
        let out = api.run(&["apply", "--validate=warn", "-f", "-"], TYPO_DEPLOYMENT);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "Warning: unknown field \"spec.replicass\""
        );
        let spec = api.ok(
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "apps",
                "-o",
                "jsonpath={.spec}",
            ],
            "",
        );
        assert!(!spec.contains("replicass"), "{spec}");
        // An invalid value: 422 with its causes, which kubectl prints.
        let out = api.run(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: apps\nspec:\n  ports:\n  - port: 70000\n",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("The Service \"bad\" is invalid: spec.ports[0].port: "),
            "{err}"
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_sends_protobuf_which_is_decoded_field_by_field() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        assert_eq!(
            api.ok(&["create", "namespace", "demo"], "").trim(),
            "namespace/demo created"
        );
        api.ok(
            &[
                "create",
                "configmap",
                "cfg",
                "-n",
                "demo",
                "--from-literal=mode=ALLOW_ANY",
                "--from-literal=level=info",
            ],
            "",
        );
        api.ok(
            &[
                "create",
                "secret",
                "generic",
                "s",
                "-n",
                "demo",
                "--from-literal=token=abc",
            ],
            "",
        );
        api.ok(&["create", "serviceaccount", "sa", "-n", "demo"], "");
        assert_eq!(
            api.ok(
                &[
                    "create",
                    "deployment",
                    "web",
                    "-n",
                    "demo",
                    "--image=nginx",
                    "--replicas=0",
                    "--port=80"
                ],
                ""
            )
            .trim(),
            "deployment.apps/web created"
        );
        assert_eq!(
            api.ok(
                &["get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data}"],
                ""
            ),
            r#"{"level":"info","mode":"ALLOW_ANY"}"#
        );
        assert_eq!(
            api.ok(
                &[
                    "get",
                    "secret",
                    "s",
                    "-n",
                    "demo",
                    "-o",
                    "jsonpath={.type} {.data.token}"
                ],
                ""
            ),
            "Opaque YWJj"
        );
        // A pointer field at its zero value is a value (replicas 0), the rest as sent.
        assert_eq!(
            api.ok(
                &["get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers}"],
                ""
            ),
            r#"0 web [{"image":"nginx","name":"nginx","ports":[{"containerPort":80}],"resources":{}}]"#
        );
        // A kind whose fields are not tabled is refused, not half-stored.
        let out = api.run(
            &[
                "create",
                "service",
                "clusterip",
                "svc",
                "-n",
                "demo",
                "--tcp=80:80",
            ],
            "",
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("send it as application/json"), "{err}");
        assert_eq!(api.ok(&["get", "svc", "-n", "demo", "-o", "name"], ""), "");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_object_file_is_served_as_last_committed() {
    require_kubectl!();
    let api = Api::start().await;
    tokio::task::block_in_place(|| {
        api.ok(&["apply", "-f", "-"], NS);
        api.ok(&["apply", "-f", "-"], SE);
        api.ok(
            &["apply", "-f", "-"],
            &SE.replace("name: cnn", "name: other"),
        );
        // Cut the file short by hand: a relisting client (a gateway's watch) still gets the
        // object as it was committed, from the journal, and the list stays in order.
        let file = api
            .store
            .dir()
            .join("objects/networking.istio.io/ServiceEntry/apps/cnn.json");
        let body = std::fs::read(&file).unwrap();
        std::fs::write(&file, &body[..body.len() / 3]).unwrap();
        assert_eq!(
            api.ok(&["get", "se", "-n", "apps", "-o", "name"], ""),
            "serviceentry.networking.istio.io/cnn\nserviceentry.networking.istio.io/other\n"
        );
        assert_eq!(
            api.ok(
                &[
                    "get",
                    "se",
                    "cnn",
                    "-n",
                    "apps",
                    "-o",
                    "jsonpath={.spec.hosts}"
                ],
                ""
            ),
            r#"["edition.cnn.com"]"#
        );
    });
}
