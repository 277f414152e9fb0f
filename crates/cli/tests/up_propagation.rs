//! Declared equals enforced under `egress up`: each change to what a proxy enforces, applied or
//! deleted with the real binary while the local cluster runs, is seen in a real request
//! (`curl`) through the add-on's gateway Pods (every one of them) or the `curl` workload's
//! sidecar, without a restart. The time from `egress apply`/`egress delete` returning to the
//! first request that shows the new behaviour is printed for every change; the seed's
//! AuthorizationPolicy case (DENY of `/politics`) must be enforced within a second of each.
//!
//! `edition.cnn.com` is `egress up --stand-in` on a loopback address (ports 80 and 443 need
//! root, as CI has); without them the tests print SKIPPED, or fail with
//! `EGRESS_TEST_STRICT=1`. Requests are polled back to back against a deadline: no sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Up, wait_for};
use egress_store::Store;
use egress_testkit::addrs::Block;
use serde_json::Value;

const NS: &str = "aks-istio-egress";

/// The acceptance bound for the AuthorizationPolicy scenario.
const WITHIN: Duration = Duration::from_secs(1);

/// How long any other change may take before the test gives up on it.
const GIVE_UP: Duration = Duration::from_secs(15);

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// True when `egress up --stand-in` can bind `ip`'s ports 80 and 443; otherwise prints
/// SKIPPED (or panics under `EGRESS_TEST_STRICT=1`).
fn can_bind_stand_in(ip: &str) -> bool {
    if !egress_testkit::Curl::available() {
        println!("SKIPPED: curl is not installed");
        return false;
    }
    for port in [80, 443] {
        if let Err(e) = std::net::TcpListener::bind((ip, port)) {
            let why = format!("cannot bind {ip}:{port} for the edition.cnn.com stand-in ({e})");
            assert!(
                std::env::var("EGRESS_TEST_STRICT").as_deref() != Ok("1"),
                "{why}"
            );
            println!("SKIPPED: {why}; run as root");
            return false;
        }
    }
    true
}

/// Ready Pods of `ns` whose label `key` is `value`: (name, IP).
fn ready_pods(store: &Store, key: &str, value: &str) -> Vec<(String, String)> {
    store
        .list("", "Pod", Some(NS))
        .unwrap()
        .items
        .iter()
        .filter(|p| {
            p.pointer(&format!("/metadata/labels/{key}"))
                .and_then(Value::as_str)
                == Some(value)
                && text(p, "/status/phase") == "Running"
                && p.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().all(|c| c["ready"] == Value::Bool(true)))
        })
        .map(|p| {
            (
                text(p, "/metadata/name").to_owned(),
                text(p, "/status/podIP").to_owned(),
            )
        })
        .collect()
}

/// One real request: the HTTP status (`000` when none came) and curl's exit code.
fn curl(args: &[&str], url: &str) -> (String, i32) {
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// `GET http://edition.cnn.com<path>` sent to a gateway Pod's port 80, as the sidecar sends it.
fn via_gateway(ip: &str, path: &str) -> String {
    let to = format!("edition.cnn.com:80:{ip}:80");
    curl(
        &["--connect-to", &to],
        &format!("http://edition.cnn.com{path}"),
    )
    .0
}

/// `GET http://edition.cnn.com<path>` through a sidecar's outbound proxy (what `egress exec`
/// sets `http_proxy` to).
fn via_sidecar(ip: &str, path: &str) -> String {
    let proxy = format!("http://{ip}:15001");
    curl(&["-x", &proxy], &format!("http://edition.cnn.com{path}")).0
}

/// The figures: what changed and how long until a request showed it.
struct Timings(Vec<(String, Duration)>);

impl Timings {
    /// Polls `probe` (one request per gateway or sidecar, `Ok` when every one shows the new
    /// behaviour) back to back from `since` until it holds; records and returns the time from
    /// `since` to the start of the round that showed it. Panics after `limit`.
    fn enforced(
        &mut self,
        what: &str,
        since: Instant,
        limit: Duration,
        mut probe: impl FnMut() -> Result<(), String>,
    ) -> Duration {
        loop {
            let sent = since.elapsed();
            match probe() {
                Ok(()) => {
                    self.0.push((what.to_owned(), sent));
                    return sent;
                }
                Err(last) => assert!(
                    since.elapsed() < limit,
                    "{what}: not enforced within {limit:?}; last: {last}"
                ),
            }
        }
    }

    fn print(&self, title: &str) {
        println!("{title}: time from the command returning to the first request showing it");
        for (what, d) in &self.0 {
            println!("  {:>6.0} ms  {what}", d.as_secs_f64() * 1000.0);
        }
    }
}

/// Every `(name, ip)` answers `want` for `path` through `request`.
fn all_answer(
    pods: &[(String, String)],
    request: fn(&str, &str) -> String,
    path: &str,
    want: &str,
) -> Result<(), String> {
    for (name, ip) in pods {
        let got = request(ip, path);
        if got != want {
            return Err(format!(
                "{name} ({ip}) answered {got} to {path}, want {want}"
            ));
        }
    }
    Ok(())
}

fn apply(c: &Cluster, yaml: &str) -> Instant {
    c.run_stdin(&["apply", "-n", NS, "-f", "-"], yaml).ok();
    Instant::now()
}

fn delete(c: &Cluster, what: &str) -> Instant {
    c.run(&["delete", "-n", NS, what]).ok();
    Instant::now()
}

fn mesh_config(c: &Cluster, body: &str) -> Instant {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n{}",
        body.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    c.run_stdin(&["apply", "-f", "-"], &yaml).ok();
    Instant::now()
}

/// A gateway or sidecar Pod's container log (its access log).
fn pod_log(c: &Cluster, pod: &str) -> PathBuf {
    c.store()
        .join(format!("run/pods/{NS}_{pod}/istio-proxy.log"))
}

fn log_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// A test's own addresses, each a claimed loopback block: Pod IPs, the static egress pool,
/// and the edition.cnn.com stand-in.
struct Plan {
    pods: Block,
    pool: Block,
    stand_ins: Block,
}

impl Plan {
    fn claim() -> Plan {
        Plan {
            pods: Block::claim().unwrap(),
            pool: Block::claim().unwrap(),
            stand_ins: Block::claim().unwrap(),
        }
    }

    /// The stand-in's address.
    fn stand_in(&self) -> String {
        self.stand_ins.ip(1).to_string()
    }
}

/// A cluster with the add-on's egress gateway (two Pods) and the seed's HTTP egress
/// configuration, under the shared MeshConfig `mesh`.
fn seed_cluster(c: &Cluster, plan: &Plan, mesh: &str, more: &[&str]) -> (Up, Store) {
    c.namespace("aks-istio-system");
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n",
    )
    .ok();
    mesh_config(c, mesh);
    let pods = plan.pods.net().to_string();
    let pool = plan.pool.net().to_string();
    let stand_in = format!("edition.cnn.com={}", plan.stand_in());
    let mut flags = vec![
        "--pod-range",
        pods.as_str(),
        "--egress-ip-pool",
        pool.as_str(),
        "--stand-in",
        stand_in.as_str(),
    ];
    flags.extend_from_slice(more);
    let up = Up::start(c, &flags);
    c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
        .ok();
    c.run(&[
        "mesh",
        "enable-egress-gateway",
        "--istio-egressgateway-name",
        "asm-egress-test",
        "--istio-egressgateway-namespace",
        NS,
        "--gateway-configuration-name",
        "istio-egress-sgc",
        "-o",
        "none",
    ])
    .ok();
    let store = Store::open(c.store()).unwrap();
    wait_for(&store, "2 ready gateway pods", GIVE_UP * 4, |s| {
        ready_pods(s, "istio", "asm-egress-test").len() == 2
    });
    (up, store)
}

/// The seed's HTTP egress configuration (ServiceEntry, Gateway, DestinationRule,
/// VirtualService), the README's sample.
const SEED_HTTP_EGRESS: &str = include_str!("../../../samples/seed-http-egress.yaml");

/// The sample's first document (behind its comment lines): the seed's ServiceEntry for
/// `edition.cnn.com`.
fn seed_service_entry() -> &'static str {
    SEED_HTTP_EGRESS
        .split_once("\n---\n")
        .map_or(SEED_HTTP_EGRESS, |(first, _)| first)
}

const DENY_POLITICS: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-politics
spec:
  selector:
    matchLabels:
      istio: asm-egress-test
  action: DENY
  rules:
  - to:
    - operation:
        paths: [\"/politics\"]
";

const ALLOW_WORLD: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-world
spec:
  selector:
    matchLabels:
      istio: asm-egress-test
  action: ALLOW
  rules:
  - to:
    - operation:
        paths: [\"/world\"]
";

const DRY_RUN_DENY: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-deny-politics
  annotations:
    istio.io/dry-run: \"true\"
spec:
  selector:
    matchLabels:
      istio: asm-egress-test
  action: DENY
  rules:
  - to:
    - operation:
        paths: [\"/politics\"]
";

const TELEMETRY_LOGS: &str = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: gateway-logs
spec:
  selector:
    matchLabels:
      istio: asm-egress-test
  accessLogging:
  - providers:
    - name: envoy
";

fn cnn_tls(mode: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: cnn-tls
spec:
  host: edition.cnn.com
  trafficPolicy:
    tls:
      mode: {mode}
"
    )
}

/// At the gateway Pods: AuthorizationPolicy DENY (the scenario), ALLOW and dry-run, a
/// Telemetry turning access logs on and off, the shared MeshConfig's `accessLogFile`, a
/// DestinationRule's TLS mode and the ServiceEntry, each applied and undone in turn.
#[test]
fn gateway_pods_enforce_each_change_as_declared() {
    let plan = Plan::claim();
    if !can_bind_stand_in(&plan.stand_in()) {
        return;
    }
    let c = Cluster::new();
    let (_up, store) = seed_cluster(
        &c,
        &plan,
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
        &[],
    );
    apply(&c, SEED_HTTP_EGRESS);
    let gws = ready_pods(&store, "istio", "asm-egress-test");
    let mut t = Timings(Vec::new());
    t.enforced(
        "seed HTTP scenario serves 200",
        Instant::now(),
        GIVE_UP * 2,
        || all_answer(&gws, via_gateway, "/politics", "200"),
    );
    let at = |path: &'static str, want: &'static str| {
        let gws = gws.clone();
        move || all_answer(&gws, via_gateway, path, want)
    };

    // The scenario: DENY /politics, then its deletion, each within a second.
    let since = apply(&c, DENY_POLITICS);
    let d = t.enforced(
        "AuthorizationPolicy DENY applied: 403",
        since,
        GIVE_UP,
        at("/politics", "403"),
    );
    assert!(d <= WITHIN, "DENY took {d:?} to be enforced");
    all_answer(&gws, via_gateway, "/world", "200").unwrap();
    let since = delete(&c, "authorizationpolicy/deny-politics");
    let d = t.enforced(
        "AuthorizationPolicy DENY deleted: 200",
        since,
        GIVE_UP,
        at("/politics", "200"),
    );
    assert!(d <= WITHIN, "the DENY's deletion took {d:?} to be enforced");

    // ALLOW: only /world is admitted while it exists.
    let since = apply(&c, ALLOW_WORLD);
    t.enforced(
        "AuthorizationPolicy ALLOW applied: 403",
        since,
        GIVE_UP,
        at("/politics", "403"),
    );
    all_answer(&gws, via_gateway, "/world", "200").unwrap();
    let since = delete(&c, "authorizationpolicy/allow-world");
    t.enforced(
        "AuthorizationPolicy ALLOW deleted: 200",
        since,
        GIVE_UP,
        at("/politics", "200"),
    );

    // The shared MeshConfig's accessLogFile turns the gateways' access logs on.
    let logs: Vec<PathBuf> = gws.iter().map(|(name, _)| pod_log(&c, name)).collect();
    let logged = |marker: &str| logs.iter().all(|l| log_lines(l, marker) > 0);
    let marked = |what: &'static str| marked_logged(gws.clone(), logs.clone(), what);
    assert!(!logged("/mesh-log-"));
    let since = mesh_config(
        &c,
        "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
    );
    t.enforced(
        "MeshConfig accessLogFile set: requests logged",
        since,
        GIVE_UP,
        marked("mesh-log"),
    );

    // Dry-run: not enforced, but its would-be denial is in the access log.
    let since = apply(&c, DRY_RUN_DENY);
    let dry = "rbac_dry_run_denied_matched_policy[ns[aks-istio-egress]-policy[dry-deny-politics]-rule[0]]";
    t.enforced(
        "dry-run DENY applied: 200, would-be denial logged",
        since,
        GIVE_UP,
        || {
            all_answer(&gws, via_gateway, "/politics", "200")?;
            if logs.iter().all(|l| log_lines(l, dry) > 0) {
                Ok(())
            } else {
                Err("no dry-run line yet".into())
            }
        },
    );
    let before = config_versions(&gws);
    let since = delete(&c, "authorizationpolicy/dry-deny-politics");
    t.enforced("dry-run DENY deleted: applied", since, GIVE_UP, || {
        let now = config_versions(&gws);
        if now.iter().zip(&before).all(|(a, b)| a > b) {
            Ok(())
        } else {
            Err(format!("config versions {now:?}, before {before:?}"))
        }
    });

    // accessLogFile removed: no more lines; a Telemetry turns them back on.
    let off_path = "/logging-off";
    // Off is an absence: wait until every gateway serves the new MeshConfig (its
    // configuration version moved), then send the marked request; the Telemetry below turns
    // logging on and its own lines bound when an off-request line would have appeared.
    let versions_before = config_versions(&gws);
    let since = mesh_config(&c, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY");
    t.enforced(
        "MeshConfig accessLogFile removed: applied",
        since,
        GIVE_UP,
        || {
            let now = config_versions(&gws);
            if now.iter().zip(&versions_before).all(|(a, b)| a > b) {
                Ok(())
            } else {
                Err(format!(
                    "config versions {now:?}, before {versions_before:?}"
                ))
            }
        },
    );
    all_answer(&gws, via_gateway, off_path, "200").unwrap();
    let since = apply(&c, TELEMETRY_LOGS);
    t.enforced(
        "Telemetry accessLogging applied: requests logged",
        since,
        GIVE_UP,
        marked("telemetry-log"),
    );
    for l in &logs {
        assert_eq!(
            log_lines(l, off_path),
            0,
            "{off_path} was logged with logging off: {}",
            l.display()
        );
    }
    let versions_before = config_versions(&gws);
    let since = delete(&c, "telemetry/gateway-logs");
    t.enforced("Telemetry deleted: applied", since, GIVE_UP, || {
        let now = config_versions(&gws);
        if now.iter().zip(&versions_before).all(|(a, b)| a > b) {
            Ok(())
        } else {
            Err(format!(
                "config versions {now:?}, before {versions_before:?}"
            ))
        }
    });
    all_answer(&gws, via_gateway, "/telemetry-off", "200").unwrap();
    let since = mesh_config(
        &c,
        "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
    );
    t.enforced(
        "MeshConfig accessLogFile set again: requests logged",
        since,
        GIVE_UP,
        marked("mesh-log-again"),
    );
    for l in &logs {
        assert_eq!(
            log_lines(l, "/telemetry-off"),
            0,
            "logged after the Telemetry's deletion: {}",
            l.display()
        );
    }

    // A DestinationRule's TLS mode: SIMPLE to the plain-HTTP port fails the handshake (503),
    // DISABLE serves again.
    let since = apply(&c, &cnn_tls("SIMPLE"));
    t.enforced(
        "DestinationRule tls SIMPLE to port 80: 503",
        since,
        GIVE_UP,
        at("/politics", "503"),
    );
    let since = apply(&c, &cnn_tls("DISABLE"));
    t.enforced(
        "DestinationRule tls DISABLE: 200",
        since,
        GIVE_UP,
        at("/politics", "200"),
    );
    delete(&c, "destinationrule/cnn-tls");

    // The ServiceEntry: without it the gateway has no cluster for edition.cnn.com.
    let since = delete(&c, "serviceentry/cnn");
    t.enforced(
        "ServiceEntry deleted: 503",
        since,
        GIVE_UP,
        at("/politics", "503"),
    );
    let since = apply(&c, seed_service_entry());
    t.enforced(
        "ServiceEntry applied: 200",
        since,
        GIVE_UP,
        at("/politics", "200"),
    );
    t.print("gateway pods");
}

/// A probe sending `GET /<what>-<n>` (n counting up) to every gateway Pod: `Ok` once the
/// requests answer 200 and a `/<what>-` line is in every Pod's access log.
fn marked_logged(
    gws: Vec<(String, String)>,
    logs: Vec<PathBuf>,
    what: &'static str,
) -> impl FnMut() -> Result<(), String> {
    let mut n = 0;
    move || {
        n += 1;
        let path = format!("/{what}-{n}");
        for (name, ip) in &gws {
            let got = via_gateway(ip, &path);
            if got != "200" {
                return Err(format!("{name} answered {got} to {path}"));
            }
        }
        // A request is logged once its response is done; the next round looks again.
        if logs.iter().all(|l| log_lines(l, &format!("/{what}-")) > 0) {
            Ok(())
        } else {
            Err(format!("no /{what}- line in every gateway's log yet"))
        }
    }
}

/// Each gateway Pod's `egress_config_version` (the snapshot it serves).
fn config_versions(pods: &[(String, String)]) -> Vec<u64> {
    pods.iter()
        .map(|(_, ip)| {
            let o = Command::new("curl")
                .args(["-s", "--max-time", "5"])
                .arg(format!("http://{ip}:15020/stats/prometheus"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("egress_config_version "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        })
        .collect()
}

/// At the `curl` workload's sidecar: the shared MeshConfig's REGISTRY_ONLY ↔ ALLOW_ANY, a
/// ServiceEntry registering the host, and a Sidecar resource's outboundTrafficPolicy.
#[test]
fn the_sidecar_enforces_each_change_as_declared() {
    let plan = Plan::claim();
    if !can_bind_stand_in(&plan.stand_in()) {
        return;
    }
    let c = Cluster::new();
    let (_up, store) = seed_cluster(
        &c,
        &plan,
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
        &[],
    );
    c.run(&["label", "namespace", NS, "istio.io/rev=asm-1-24"])
        .ok();
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    apply(&c, &sample);
    wait_for(&store, "curl 2/2 Running", GIVE_UP * 4, |s| {
        ready_pods(s, "app", "curl").len() == 1
    });
    let pods = ready_pods(&store, "app", "curl");
    let mut t = Timings(Vec::new());
    let at = |want: &'static str| {
        let pods = pods.clone();
        move || all_answer(&pods, via_sidecar, "/politics", want)
    };
    t.enforced(
        "REGISTRY_ONLY at start: 502",
        Instant::now(),
        GIVE_UP,
        at("502"),
    );

    let since = mesh_config(&c, "outboundTrafficPolicy:\n  mode: ALLOW_ANY");
    t.enforced("MeshConfig ALLOW_ANY: 200", since, GIVE_UP, at("200"));
    let since = mesh_config(&c, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY");
    t.enforced("MeshConfig REGISTRY_ONLY: 502", since, GIVE_UP, at("502"));

    let since = apply(&c, seed_service_entry());
    t.enforced("ServiceEntry applied: 200", since, GIVE_UP, at("200"));
    let since = delete(&c, "serviceentry/cnn");
    t.enforced("ServiceEntry deleted: 502", since, GIVE_UP, at("502"));

    mesh_config(&c, "outboundTrafficPolicy:\n  mode: ALLOW_ANY");
    t.enforced(
        "MeshConfig ALLOW_ANY again: 200",
        Instant::now(),
        GIVE_UP,
        at("200"),
    );
    let since = apply(
        &c,
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\nspec:\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n",
    );
    t.enforced(
        "Sidecar REGISTRY_ONLY applied: 502",
        since,
        GIVE_UP,
        at("502"),
    );
    let since = delete(&c, "sidecar/default");
    t.enforced("Sidecar deleted: 200", since, GIVE_UP, at("200"));
    t.print("curl's sidecar");
}

/// Per-object last-good under `egress up` for proxies that read the store (with the API off,
/// the gateways do; through the API, the API serves a damaged object as last committed, from
/// the journal: `crates/apiserver/tests/kubectl.rs`, so the damage never reaches them): with
/// the seed's ServiceEntry file truncated by hand, the ServiceEntry keeps
/// its last good version (the gateways still serve 200) and later changes of other objects
/// still reach the gateways (a DENY applied, then deleted); `egress apply` replaces the
/// damaged object.
#[test]
fn a_damaged_object_never_blocks_other_changes() {
    let plan = Plan::claim();
    if !can_bind_stand_in(&plan.stand_in()) {
        return;
    }
    let c = Cluster::new();
    let (_up, store) = seed_cluster(
        &c,
        &plan,
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
        &["--api-server", "off"],
    );
    apply(&c, SEED_HTTP_EGRESS);
    let gws = ready_pods(&store, "istio", "asm-egress-test");
    let mut t = Timings(Vec::new());
    let at = |path: &'static str, want: &'static str| {
        let gws = gws.clone();
        move || all_answer(&gws, via_gateway, path, want)
    };
    t.enforced(
        "seed HTTP scenario serves 200",
        Instant::now(),
        GIVE_UP * 2,
        at("/politics", "200"),
    );

    let file = c.store().join(format!(
        "objects/networking.istio.io/ServiceEntry/{NS}/cnn.json"
    ));
    let body = std::fs::read(&file).unwrap();
    std::fs::write(&file, &body[..body.len() / 3]).unwrap();

    let since = apply(&c, DENY_POLITICS);
    t.enforced(
        "DENY applied beside a damaged ServiceEntry: 403",
        since,
        GIVE_UP,
        at("/politics", "403"),
    );
    let since = delete(&c, "authorizationpolicy/deny-politics");
    t.enforced(
        "DENY deleted beside a damaged ServiceEntry: 200",
        since,
        GIVE_UP,
        at("/politics", "200"),
    );
    // The damaged object is reported where operators look: one Warning event on it (not one
    // per pass), and every gateway's egress_config_objects_held.
    let events = c.run(&["get", "events", "-n", NS]).ok().stdout;
    let kept: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("LastGoodConfigurationKept"))
        .collect();
    assert_eq!(kept.len(), 1, "{events}");
    assert!(
        kept[0].contains("Warning") && kept[0].contains("serviceentry/cnn"),
        "{events}"
    );
    for (_, ip) in &gws {
        let o = Command::new("curl")
            .args(["-s", &format!("http://{ip}:15020/stats/prometheus")])
            .output()
            .unwrap();
        let metrics = String::from_utf8_lossy(&o.stdout);
        assert!(
            metrics.contains(
                "egress_config_objects_held{kind=\"ServiceEntry\",state=\"last_good\"} 1\n"
            ),
            "{metrics}"
        );
    }
    apply(&c, seed_service_entry());
    let repaired: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(repaired["metadata"]["name"], "cnn", "{repaired}");
    all_answer(&gws, via_gateway, "/politics", "200").unwrap();
    t.print("beside a damaged object");
}
