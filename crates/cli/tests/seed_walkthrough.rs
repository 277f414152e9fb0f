//! The seed end to end on the local cluster: `egress up`, the add-on's egress gateway, a `curl`
//! workload with an injected sidecar, REGISTRY_ONLY and ALLOW_ANY through the shared MeshConfig,
//! and the seed's three configurations applied verbatim, each checked at the client (`egress
//! exec ... curl`), in the gateway's access log (`egress logs -l istio=...`) and at the stand-in
//! `edition.cnn.com` (which sees the static egress prefix, and later admits only it). Pods,
//! egress prefixes and the stand-ins each come from a claimed loopback block; the stand-ins bind
//! ports 80 and 443, which needs root (CI runs as root); without it the test prints SKIPPED.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Addrs, Cluster, Up, until, wait_for};
use egress_store::Store;
use egress_testkit::addrs::Block;
use egress_testkit::{CertFactory, HttpUpstream, HttpsUpstream};
use serde_json::Value;

const NS: &str = "aks-istio-egress";

fn start_up(c: &Cluster, addrs: &Addrs, stand_in: IpAddr, ca_file: &std::path::Path) -> Up {
    let host = format!("edition.cnn.com={stand_in}");
    Up::start(
        c,
        &addrs.flags(&["--host", &host, "--upstream-ca", ca_file.to_str().unwrap()]),
    )
}

fn mesh_config(mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    outboundTrafficPolicy:\n      mode: {mode}\n"
    )
}

fn status_line(r: &common::Run) -> String {
    r.stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_walk_through_on_the_local_cluster() {
    let Some(seed) = common::seed() else { return };
    let addrs = Addrs::claim();
    let stand_ins = Block::claim().unwrap();
    let ip = IpAddr::V4(stand_ins.ip(1));
    let certs = CertFactory::new().unwrap();
    let http = match HttpUpstream::start(SocketAddr::new(ip, 80)).await {
        Ok(u) => u,
        Err(e) => {
            egress_testkit::skip(&format!(
                "cannot bind {ip}:80 for the edition.cnn.com stand-in ({e}); run as root"
            ));
            return;
        }
    };
    let https = HttpsUpstream::start(SocketAddr::new(ip, 443), &certs, &["edition.cnn.com"])
        .await
        .unwrap();
    let c = Cluster::new();
    let ca_file = certs.write_ca_file(c.dir.path()).unwrap();
    tokio::task::block_in_place(|| walk_through(&c, &addrs, ip, &seed, &ca_file, &http, &https));
}

fn walk_through(
    c: &Cluster,
    addrs: &Addrs,
    stand_in: IpAddr,
    seed: &[String],
    ca_file: &std::path::Path,
    http: &HttpUpstream,
    https: &HttpsUpstream,
) {
    let _up = start_up(c, addrs, stand_in, ca_file);
    let store = Store::open(c.store()).unwrap();
    let mut transcript = Vec::new();

    // 1. Mesh, SGC and its prefix, the gateway, the labelled namespace, the curl sample.
    c.run(&["mesh", "enable", "--revision", "asm-1-24", "-o", "none"])
        .ok();
    c.namespace("aks-istio-system");
    c.run_stdin(&["apply", "-f", "-"], &mesh_config("ALLOW_ANY"))
        .ok();
    c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aks-istio-egress\n---\napiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: istio-egress-sgc\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: istioegresspool\n  provisionPublicIps: true\n",
    )
    .ok();
    let prefix = until(
        c,
        "egress get staticgatewayconfiguration istio-egress-sgc -n aks-istio-egress -o jsonpath={.status.egressIpPrefix}",
        "the egress IP prefix",
        |r| r.code == 0 && !r.stdout.trim().is_empty(),
    )
    .stdout
    .trim()
    .to_owned();
    assert_eq!(prefix, addrs.pool.subnet(0, 31).to_string());
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
    c.run(&["label", "namespace", NS, "istio.io/rev=asm-1-24"])
        .ok();
    let curl = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/curl.yaml"),
    )
    .unwrap();
    c.run_stdin(&["apply", "-n", NS, "-f", "-"], &curl).ok();
    wait_for(&store, "curl 2/2 Running", Duration::from_secs(60), |s| {
        s.list("", "Pod", Some(NS)).unwrap().items.iter().any(|p| {
            p.pointer("/metadata/labels/app").and_then(Value::as_str) == Some("curl")
                && p.pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.len() == 2 && cs.iter().all(|c| c["ready"] == Value::Bool(true))
                    })
        })
    });
    let pods = c.run(&["get", "pod", "-n", NS]).ok().stdout;
    transcript.push(format!("$ egress get pod -n {NS}\n{pods}"));
    assert!(
        pods.lines()
            .any(|l| l.starts_with("curl-") && l.contains(" 2/2 ") && l.contains("Running")),
        "{pods}"
    );
    let pod_exec = format!(
        "SOURCE_POD=$(egress get pod -n {NS} -l app=curl -o jsonpath={{.items..metadata.name}}); egress exec -n {NS} \"$SOURCE_POD\" -c curl"
    );
    // The seed's own command. As root with iptables (CI), `egress exec` captures the Pod's
    // traffic transparently, as a real Pod's sidecar does, and curl prints exactly what the
    // seed shows: one response. Elsewhere it falls back to the explicit proxy (with a notice).
    let captured = rustix::process::geteuid().is_root()
        && std::process::Command::new("iptables")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !captured {
        egress_testkit::skip("transparent capture (needs root and iptables)");
    }
    let exec = format!("{pod_exec} -- curl -sSL -o /dev/null -D -");
    traffic(
        c,
        addrs,
        seed,
        (http, https),
        (&exec, captured),
        &mut transcript,
    );
    // 5. The same through the sidecar as an explicit proxy (http_proxy/https_proxy).
    transcript.push("-- the same with --capture proxy --".to_owned());
    let exec = format!("{pod_exec} --capture proxy -- curl -sSL -o /dev/null -D -");
    traffic(
        c,
        addrs,
        seed,
        (http, https),
        (&exec, false),
        &mut transcript,
    );

    // What the gateways saw, as suggested ServiceEntries and an AuthorizationPolicy.
    let analyzed = c.run(&["analyze", "traffic", "-n", NS]).ok();
    transcript.push(format!(
        "$ egress analyze traffic -n {NS}\n{}{}",
        analyzed.stderr, analyzed.stdout
    ));
    assert!(
        analyzed.stdout.contains("kind: ServiceEntry"),
        "{}",
        analyzed.stdout
    );
    assert!(
        analyzed.stdout.contains("- edition.cnn.com"),
        "{}",
        analyzed.stdout
    );
    assert!(
        analyzed
            .stdout
            .contains("cluster.local/ns/aks-istio-egress/sa/curl"),
        "{}",
        analyzed.stdout
    );
    assert!(
        analyzed
            .stderr
            .lines()
            .any(|l| l.starts_with("cluster.local/ns/aks-istio-egress/sa/curl")),
        "{}",
        analyzed.stderr
    );

    // 4. Disabling the gateway removes it and its Service.
    c.run(&[
        "mesh",
        "disable-egress-gateway",
        "--istio-egressgateway-name",
        "asm-egress-test",
        "--istio-egressgateway-namespace",
        NS,
        "--yes",
        "-o",
        "none",
    ])
    .ok();
    let svc = c.run(&["get", "svc", "asm-egress-test", "-n", NS]).fails();
    assert!(svc.stderr.contains("not found"), "{}", svc.stderr);
    wait_for(&store, "gateway pods gone", Duration::from_secs(60), |s| {
        !s.list("", "Pod", Some(NS))
            .unwrap()
            .items
            .iter()
            .any(|p| p.pointer("/metadata/labels/istio").is_some())
    });
    println!("{}", transcript.join("\n"));
}

/// The header blocks `curl -D -` printed (one per response, proxy responses included).
fn header_blocks(r: &common::Run) -> Vec<&str> {
    r.stdout
        .lines()
        .filter(|l| l.starts_with("HTTP/"))
        .collect()
}

/// Steps 2 and 3: REGISTRY_ONLY and ALLOW_ANY, then the seed's three configurations, each
/// request made with `exec` (an `egress exec ... -- curl ...` prefix taking the URL);
/// `captured` when the exec captures transparently, so curl's output must be the seed's.
fn traffic(
    c: &Cluster,
    addrs: &Addrs,
    seed: &[String],
    (http, https): (&HttpUpstream, &HttpsUpstream),
    (exec, captured): (&str, bool),
    transcript: &mut Vec<String>,
) {
    let prefix = addrs.pool.subnet(0, 31);
    let in_prefix = |ip: IpAddr| {
        [addrs.pool.ip(0), addrs.pool.ip(1)]
            .map(IpAddr::V4)
            .contains(&ip)
    };
    // 2. REGISTRY_ONLY: 502 from the sidecar; ALLOW_ANY: straight to the stand-in.
    c.run_stdin(&["apply", "-f", "-"], &mesh_config("REGISTRY_ONLY"))
        .ok();
    let r = until(
        c,
        &format!("{exec} http://edition.cnn.com/politics"),
        "REGISTRY_ONLY 502",
        |r| status_line(r).starts_with("HTTP/1.1 502"),
    );
    transcript.push(format!("REGISTRY_ONLY: {}", status_line(&r)));
    c.run_stdin(&["apply", "-f", "-"], &mesh_config("ALLOW_ANY"))
        .ok();
    let before = http.connections().len();
    let r = until(
        c,
        &format!("{exec} http://edition.cnn.com/politics"),
        "ALLOW_ANY 200",
        |r| status_line(r).starts_with("HTTP/1.1 200"),
    );
    transcript.push(format!("ALLOW_ANY: {}", status_line(&r)));
    let direct = &http.connections()[before..];
    assert!(
        direct
            .iter()
            .all(|c| matches!(c.peer_addr.ip(), IpAddr::V4(ip) if addrs.pods.net().contains(&ip))),
        "the workload's own address"
    );

    // 3. The seed's three configurations, under REGISTRY_ONLY.
    c.run_stdin(&["apply", "-f", "-"], &mesh_config("REGISTRY_ONLY"))
        .ok();
    let scenarios = [
        (
            "http",
            "http://edition.cnn.com/politics",
            "outbound|80||edition.cnn.com",
        ),
        (
            "https",
            "https://edition.cnn.com/politics",
            "outbound|443||edition.cnn.com",
        ),
        (
            "tls-origination",
            "http://edition.cnn.com/politics",
            "outbound|443||edition.cnn.com",
        ),
    ];
    for (i, (name, url, cluster)) in scenarios.iter().enumerate() {
        // HTTP at the gateway (plain, or mTLS-terminated for TLS origination) logs the request;
        // TLS passthrough logs a TCP line with the SNI.
        let log_mark = if *name == "https" {
            "edition.cnn.com -"
        } else {
            "\"GET /politics HTTP/"
        };
        for m in &seed[1 + 2 * i..3 + 2 * i] {
            c.run_stdin(&["apply", "-n", NS, "-f", "-"], m).ok();
        }
        let upstream_conns = |tls: bool| {
            if tls {
                https.requests()
            } else {
                http.requests()
            }
        };
        let tls_upstream = *name != "http";
        let before = upstream_conns(tls_upstream).len();
        let r = until(
            c,
            &format!("{exec} {url}"),
            &format!("{name}: 200 through the gateway"),
            |r| {
                r.code == 0
                    && status_line(r).contains(" 200")
                    && upstream_conns(tls_upstream)[before..]
                        .iter()
                        .any(|c| in_prefix(c.peer_addr.ip()))
            },
        );
        transcript.push(format!("{name}: {}", status_line(&r)));
        let blocks = header_blocks(&r);
        if captured {
            // Exactly the seed's output: one response, HTTP/2 for HTTPS (ALPN h2 end to end).
            assert_eq!(blocks.len(), 1, "{name}: {}", r.stdout);
            if *name == "https" {
                assert_eq!(blocks[0].trim(), "HTTP/2 200", "{name}: {}", r.stdout);
            }
        } else if *name == "https" {
            // Through the explicit proxy curl also prints the proxy's answer to CONNECT.
            assert_eq!(
                blocks.first().map(|b| b.trim()),
                Some("HTTP/1.1 200 Connection established"),
                "{}",
                r.stdout
            );
        }
        let seen = upstream_conns(tls_upstream);
        let last = seen.last().unwrap();
        assert!(
            in_prefix(last.peer_addr.ip()),
            "{name}: stand-in saw {}",
            last.peer_addr
        );
        if tls_upstream {
            assert_eq!(last.sni.as_deref(), Some("edition.cnn.com"), "{name}");
        }
        let logs = until(
            c,
            &format!("egress logs -l istio=asm-egress-test -n {NS} --tail=-1"),
            &format!("{name}: gateway access log"),
            |r| {
                r.stdout
                    .lines()
                    .any(|l| l.contains(cluster) && l.contains(log_mark))
            },
        );
        transcript.push(format!(
            "{name} gateway log: {}",
            logs.stdout
                .lines()
                .find(|l| l.contains(cluster) && l.contains(log_mark))
                .unwrap_or_default()
        ));
        // Only the prefix is admitted now; through the gateway it still works.
        http.allow_only(&prefix.to_string()).unwrap();
        https.allow_only(&prefix.to_string()).unwrap();
        let r = c.sh(&format!("{exec} {url}"));
        assert!(
            status_line(&r).contains(" 200"),
            "{name} with the stand-in admitting only the prefix: {}",
            r.stdout
        );
        // Cleanup as the seed does: the request fails again (REGISTRY_ONLY)...
        for obj in [
            "serviceentry cnn",
            "gateway istio-egressgateway",
            "virtualservice direct-cnn-through-egress-gateway",
            "destinationrule egressgateway-for-cnn",
        ] {
            c.sh(&format!("egress delete {obj} -n {NS}")).ok();
        }
        if *name == "tls-origination" {
            c.sh(&format!(
                "egress delete destinationrule originate-tls-for-edition-cnn-com -n {NS}"
            ))
            .ok();
        }
        let r = until(
            c,
            &format!("{exec} {url}"),
            &format!("{name}: fails after cleanup"),
            |r| r.code != 0 || status_line(r).contains(" 502"),
        );
        transcript.push(format!(
            "{name} after cleanup: exit {} {}",
            r.code,
            status_line(&r)
        ));
        if captured && *name == "https" {
            // A blocked HTTPS host: curl's error alone, no proxy response before it.
            assert_ne!(r.code, 0);
            assert!(r.stdout.trim().is_empty(), "{}", r.stdout);
            assert!(r.stderr.contains("curl: (35)"), "{}", r.stderr);
        }
        // ...and a direct request (ALLOW_ANY, no gateway) is refused by the stand-in.
        c.run_stdin(&["apply", "-f", "-"], &mesh_config("ALLOW_ANY"))
            .ok();
        let r = until(
            c,
            &format!("{exec} {url}"),
            &format!("{name}: direct refused"),
            // Refused: plain HTTP gets the sidecar's 503, HTTPS fails in curl.
            |r| r.code != 0 || status_line(r).contains(" 503"),
        );
        transcript.push(format!(
            "{name} direct with the stand-in admitting only the prefix: exit {} {}",
            r.code,
            status_line(&r)
        ));
        c.run_stdin(&["apply", "-f", "-"], &mesh_config("REGISTRY_ONLY"))
            .ok();
        http.allow_all();
        https.allow_all();
    }
}
