//! The propagation rule over generated snapshots: a gateway or sidecar snapshot that differs
//! from the one a proxy serves in any one field reaches the proxy's `watch` receiver through
//! [`egress_runner::offer::offer`] (the decision every gateway and sidecar takes, `egress up`'s Pods among them), and one
//! that differs in its version alone does not wake the proxy.
//!
//! The list of fields changed is written as an exhaustive destructuring of the snapshot, so a
//! field added to the contract without a change here does not compile; each run also checks
//! that every field was actually changed in some case.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use egress_compile::authz::{Attribute, Authz, Check, Matcher, Policy, PolicyAction, Rule};
use egress_compile::snapshot::{
    AccessLog, ChainAction, Cluster, Discovery, Endpoint, FilterChain, Forward, HeaderOps,
    LbPolicy, Listener, ListenerKind, LogEncoding, LogFilter, MeshSettings, OutboundPolicy,
    OutboundPort, OutlierDetection, PathNormalization, PemIdentity, PoolSettings, Redirect,
    RetryPolicy, Route, RouteAction, RouteConfig, RouteMatch, ServerTls, SidecarSnapshot, Snapshot,
    SniRoute, StringMatch, TcpRoute, Tunnel, TunnelProtocol, UpstreamTls, UpstreamTlsMode,
    VirtualHost, WeightedCluster,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::sync::watch;

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn name() -> impl Strategy<Value = String> {
    pick(&["edition.cnn.com", "*.cnn.com", "a", "b", ""]).prop_map(str::to_owned)
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 0..3)
}

fn duration() -> impl Strategy<Value = Duration> {
    pick(&[1_u64, 5, 10, 60]).prop_map(Duration::from_secs)
}

fn string_match() -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        pick(&["/politics", "/"]).prop_map(|s| StringMatch::Exact(s.into())),
        pick(&["/politics", "/"]).prop_map(|s| StringMatch::Prefix(s.into())),
        pick(&["/p.*", ".*"]).prop_map(|s| StringMatch::Regex(s.into())),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), name()), 0..2)
}

fn header_ops() -> impl Strategy<Value = HeaderOps> {
    (pairs(), pairs(), names()).prop_map(|(set, add, remove)| HeaderOps { set, add, remove })
}

fn weighted() -> impl Strategy<Value = WeightedCluster> {
    (
        pick(&[
            "outbound|80||edition.cnn.com",
            "outbound|443||edition.cnn.com",
            "x",
        ]),
        1_u32..4,
        header_ops(),
        header_ops(),
    )
        .prop_map(
            |(cluster, weight, request_headers, response_headers)| WeightedCluster {
                cluster: cluster.into(),
                weight,
                request_headers,
                response_headers,
            },
        )
}

fn retry() -> impl Strategy<Value = RetryPolicy> {
    (0_u32..3, prop::option::of(duration()), names()).prop_map(
        |(attempts, per_try_timeout, retry_on)| RetryPolicy {
            attempts,
            per_try_timeout,
            retry_on,
            retriable_status_codes: vec![503],
        },
    )
}

fn action() -> impl Strategy<Value = RouteAction> {
    prop_oneof![
        (
            prop::collection::vec(weighted(), 0..3),
            prop::option::of(duration()),
            prop::option::of(retry()),
            prop::option::of(name()),
            prop::option::of(name()),
        )
            .prop_map(
                |(clusters, timeout, retry, rewrite_uri, rewrite_authority)| {
                    RouteAction::Forward(Forward {
                        clusters,
                        timeout,
                        retry,
                        rewrite_uri,
                        rewrite_authority,
                    })
                }
            ),
        (
            prop::option::of(name()),
            prop::option::of(80_u16..82),
            pick(&[301_u16, 302])
        )
            .prop_map(|(uri, port, status)| RouteAction::Redirect(Redirect {
                uri,
                authority: None,
                scheme: None,
                port,
                status,
            })),
        (pick(&[403_u16, 502]), prop::option::of(name()))
            .prop_map(|(status, body)| RouteAction::DirectResponse { status, body }),
    ]
}

fn route() -> impl Strategy<Value = Route> {
    (
        name(),
        prop::option::of(string_match()),
        prop::option::of(string_match()),
        any::<bool>(),
        action(),
        header_ops(),
        header_ops(),
    )
        .prop_map(
            |(name, uri, method, ignore_uri_case, action, request_headers, response_headers)| {
                Route {
                    name,
                    matcher: RouteMatch {
                        uri,
                        method,
                        ignore_uri_case,
                        ..RouteMatch::default()
                    },
                    action,
                    request_headers,
                    response_headers,
                }
            },
        )
}

fn route_config() -> impl Strategy<Value = RouteConfig> {
    let vhost = (
        name(),
        names(),
        prop::collection::vec(route(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, domains, routes, require_tls)| VirtualHost {
            name,
            domains,
            routes,
            require_tls,
        });
    (
        pick(&["http.8080", "https.443"]),
        prop::collection::vec(vhost, 0..3),
    )
        .prop_map(|(name, virtual_hosts)| RouteConfig {
            name: name.into(),
            virtual_hosts,
        })
}

fn server_tls() -> impl Strategy<Value = ServerTls> {
    prop_oneof![
        names().prop_map(|subject_alt_names| ServerTls::IstioMutual { subject_alt_names }),
        (
            pick(&["CERT-A", "file:/a.pem"]),
            prop::option::of(name()),
            any::<bool>(),
            names()
        )
            .prop_map(|(cert, client_ca, optional, subject_alt_names)| {
                ServerTls::Certificates {
                    identity: PemIdentity {
                        cert_chain: cert.into(),
                        private_key: "KEY".into(),
                    },
                    client_ca,
                    optional,
                    subject_alt_names,
                }
            }),
    ]
}

fn chain_action() -> impl Strategy<Value = ChainAction> {
    prop_oneof![
        (
            prop::collection::vec(weighted(), 0..3),
            prop::option::of(name())
        )
            .prop_map(|(clusters, route_name)| ChainAction::TcpProxy {
                clusters,
                route_name
            }),
        route_config().prop_map(ChainAction::Http),
    ]
}

fn listener() -> impl Strategy<Value = Listener> {
    let chain = (
        names(),
        pick(&[443_u16, 8443]),
        prop::option::of(server_tls()),
        chain_action(),
    )
        .prop_map(|(server_names, server_port, tls, action)| FilterChain {
            server_names,
            server_port,
            tls,
            action,
        });
    (
        pick(&["0.0.0.0_8080", "0.0.0.0_8443"]),
        prop::option::of(pick(&[[127, 60, 9, 1], [127, 60, 9, 2]])),
        pick(&[8080_u16, 8443]),
        prop_oneof![
            route_config().prop_map(ListenerKind::Http),
            prop::collection::vec(chain, 0..3).prop_map(ListenerKind::Chains),
        ],
    )
        .prop_map(|(name, bind, port, kind)| Listener {
            name: name.into(),
            bind: bind.map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            port,
            kind,
        })
}

fn discovery() -> impl Strategy<Value = Discovery> {
    prop_oneof![
        (name(), 80_u16..82).prop_map(|(hostname, port)| Discovery::StrictDns { hostname, port }),
        (name(), 80_u16..82).prop_map(|(hostname, port)| Discovery::LogicalDns { hostname, port }),
        prop::collection::vec((1_u8..3, 80_u16..82, 1_u32..3), 0..3).prop_map(|eps| {
            Discovery::Static(
                eps.into_iter()
                    .map(|(last, port, weight)| Endpoint {
                        address: SocketAddr::from(([127, 60, 9, last], port)),
                        weight,
                    })
                    .collect(),
            )
        }),
        prop::collection::vec((name(), 80_u16..82, 1_u32..3), 0..3)
            .prop_map(Discovery::DnsEndpoints),
        Just(Discovery::OriginalDst),
    ]
}

fn upstream_tls() -> impl Strategy<Value = UpstreamTls> {
    (
        pick(&[
            UpstreamTlsMode::Simple,
            UpstreamTlsMode::Mutual,
            UpstreamTlsMode::IstioMutual,
        ]),
        prop::option::of(name()),
        names(),
        prop::option::of(pick(&["CA", "file:/ca.pem"])),
        any::<bool>(),
        names(),
    )
        .prop_map(
            |(mode, sni, subject_alt_names, ca, insecure_skip_verify, alpn)| UpstreamTls {
                mode,
                sni,
                subject_alt_names,
                ca_certificates: ca.map(str::to_owned),
                ca_crl: None,
                client_identity: None,
                insecure_skip_verify,
                alpn,
            },
        )
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        (name(), 80_u16..82, discovery()),
        pick(&[
            LbPolicy::RoundRobin,
            LbPolicy::LeastRequest,
            LbPolicy::Random,
        ]),
        prop::option::of(upstream_tls()),
        duration(),
        (prop::option::of(1_u32..3), prop::option::of(duration())),
        prop::option::of((1_u32..6, duration())),
        any::<bool>(),
        prop::option::of((
            "[a-z]{1,8}\\.example",
            1_u16..65535,
            any::<bool>(),
            any::<bool>(),
        )),
    )
        .prop_map(
            |(
                (host, port, discovery),
                lb,
                tls,
                connect_timeout,
                pool,
                outlier,
                external,
                tunnel,
            )| {
                Cluster {
                    name: format!("outbound|{port}||{host}"),
                    host,
                    port,
                    discovery,
                    lb,
                    tls,
                    connect_timeout,
                    pool: PoolSettings {
                        max_connections: pool.0,
                        idle_timeout: pool.1,
                        ..PoolSettings::default()
                    },
                    outlier: outlier.map(|(n, interval)| OutlierDetection {
                        consecutive_5xx: n,
                        consecutive_local_origin_failures: n,
                        interval,
                        base_ejection_time: interval,
                        max_ejection_percent: 100,
                    }),
                    external,
                    tunnel: tunnel.map(|(target_host, target_port, post, http2)| Tunnel {
                        protocol: if post {
                            TunnelProtocol::Post
                        } else {
                            TunnelProtocol::Connect
                        },
                        http2,
                        target_host,
                        target_port,
                    }),
                }
            },
        )
}

fn clusters() -> impl Strategy<Value = BTreeMap<String, Cluster>> {
    prop::collection::vec(cluster(), 0..3)
        .prop_map(|cs| cs.into_iter().map(|c| (c.name.clone(), c)).collect())
}

fn one_access_log() -> impl Strategy<Value = AccessLog> {
    (
        prop::option::of(pick(&["/dev/stdout", "/dev/stderr"])),
        pick(&[LogEncoding::Text, LogEncoding::Json]),
        prop::option::of(pick(&["%RESPONSE_CODE%\n", "[%START_TIME%]\n"])),
        prop::option::of(pick(&["response.code >= 400", "connection.mtls"])),
        prop::option::of(pick(&["envoy", "otel"])),
    )
        .prop_map(|(path, encoding, format, filter, provider)| AccessLog {
            path: path.map(str::to_owned),
            encoding,
            format: format.map(str::to_owned),
            filter: filter.map(|f| LogFilter::parse(f).unwrap()),
            provider: provider.map(str::to_owned),
            additional: Vec::new(),
        })
}

fn access_log() -> impl Strategy<Value = AccessLog> {
    (
        one_access_log(),
        prop::collection::vec(one_access_log(), 0..2),
    )
        .prop_map(|(mut log, additional)| {
            log.additional = additional;
            log
        })
}

fn mesh() -> impl Strategy<Value = MeshSettings> {
    (
        pick(&["cluster.local", "example.org"]),
        duration(),
        duration(),
        pick(&[
            PathNormalization::None,
            PathNormalization::Base,
            PathNormalization::MergeSlashes,
            PathNormalization::DecodeAndMergeSlashes,
        ]),
    )
        .prop_map(
            |(trust_domain, connect_timeout, dns_refresh_rate, path_normalization)| MeshSettings {
                trust_domain: trust_domain.into(),
                connect_timeout,
                dns_refresh_rate,
                path_normalization,
            },
        )
}

fn check() -> impl Strategy<Value = Check> {
    (
        pick(&[
            Attribute::Path,
            Attribute::Method,
            Attribute::Host,
            Attribute::Principal,
            Attribute::Sni,
        ]),
        prop::collection::vec(
            prop_oneof![
                name().prop_map(Matcher::Exact),
                name().prop_map(Matcher::Prefix),
                name().prop_map(Matcher::Suffix),
                Just(Matcher::Present),
                (80_u16..82).prop_map(Matcher::Port),
            ],
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(attribute, matchers, negated)| Check {
            attribute,
            matchers,
            negated,
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    let alternatives = || prop::collection::vec(prop::collection::vec(check(), 0..2), 0..2);
    let rule = (
        0_usize..2,
        alternatives(),
        alternatives(),
        prop::collection::vec(check(), 0..2),
    )
        .prop_map(|(index, from, to, when)| Rule {
            index,
            from,
            to,
            when,
        });
    (
        pick(&["aks-istio-egress", "aks-istio-system"]),
        pick(&["deny-politics", "allow-cnn"]),
        pick(&[PolicyAction::Allow, PolicyAction::Deny, PolicyAction::Audit]),
        any::<bool>(),
        prop::collection::vec(rule, 0..3),
    )
        .prop_map(|(namespace, name, action, dry_run, rules)| Policy {
            namespace: namespace.into(),
            name: name.into(),
            action,
            dry_run,
            rules,
        })
}

fn authz() -> impl Strategy<Value = Authz> {
    (
        prop::collection::vec(policy(), 0..3),
        prop::collection::vec(policy(), 0..3),
    )
        .prop_map(|(http, tcp)| Authz { http, tcp })
}

fn warnings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        pick(&["skipped a", "skipped b"]).prop_map(str::to_owned),
        0..3,
    )
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        1_u64..1000,
        prop::collection::vec(listener(), 0..3),
        clusters(),
        access_log(),
        mesh(),
        authz(),
        warnings(),
        prop::option::of(sidecar_snapshot().prop_map(Arc::new)),
    )
        .prop_map(
            |(version, listeners, clusters, access_log, mesh, authz, warnings, sidecar)| Snapshot {
                version,
                listeners,
                clusters,
                access_log,
                mesh,
                authz,
                warnings,
                sidecar,
            },
        )
}

fn outbound_port() -> impl Strategy<Value = OutboundPort> {
    let sni = (
        names(),
        prop::collection::vec(weighted(), 0..3),
        prop::option::of(name()),
    )
        .prop_map(|(sni_hosts, clusters, route_name)| SniRoute {
            sni_hosts,
            clusters,
            route_name,
        });
    prop_oneof![
        route_config().prop_map(OutboundPort::Http),
        prop::collection::vec(sni, 0..3).prop_map(OutboundPort::Tls),
        (
            prop::collection::vec(weighted(), 0..3),
            prop::option::of(name())
        )
            .prop_map(|(clusters, route_name)| OutboundPort::Tcp(TcpRoute {
                clusters,
                route_name
            })),
    ]
}

fn sidecar_snapshot() -> impl Strategy<Value = SidecarSnapshot> {
    (
        1_u64..1000,
        pick(&[OutboundPolicy::AllowAny, OutboundPolicy::RegistryOnly]),
        prop::collection::btree_map(pick(&[80_u16, 443, 5432]), outbound_port(), 0..3),
        clusters(),
        access_log(),
        mesh(),
        warnings(),
    )
        .prop_map(
            |(version, outbound, ports, clusters, access_log, mesh, warnings)| SidecarSnapshot {
                version,
                outbound,
                ports,
                clusters,
                access_log,
                mesh,
                warnings,
            },
        )
}

/// `base` with one field taken from `other` and a later version, for every field: (field,
/// whether the field's value differs, the changed snapshot). The destructuring names every
/// field, so a new one must be added here.
fn gateway_changes(base: &Snapshot, other: &Snapshot) -> Vec<(&'static str, bool, Snapshot)> {
    let Snapshot {
        version: _,
        listeners,
        clusters,
        access_log,
        mesh,
        authz,
        warnings,
        sidecar,
    } = other.clone();
    let next = || Snapshot {
        version: base.version + 1,
        ..base.clone()
    };
    vec![
        (
            "listeners",
            listeners != base.listeners,
            Snapshot {
                listeners,
                ..next()
            },
        ),
        (
            "clusters",
            clusters != base.clusters,
            Snapshot { clusters, ..next() },
        ),
        (
            "access_log",
            access_log != base.access_log,
            Snapshot {
                access_log,
                ..next()
            },
        ),
        ("mesh", mesh != base.mesh, Snapshot { mesh, ..next() }),
        ("authz", authz != base.authz, Snapshot { authz, ..next() }),
        (
            "warnings",
            warnings != base.warnings,
            Snapshot { warnings, ..next() },
        ),
        (
            "sidecar",
            sidecar != base.sidecar,
            Snapshot { sidecar, ..next() },
        ),
    ]
}

/// As [`gateway_changes`], for a sidecar's snapshot.
fn sidecar_changes(
    base: &SidecarSnapshot,
    other: &SidecarSnapshot,
) -> Vec<(&'static str, bool, SidecarSnapshot)> {
    let SidecarSnapshot {
        version: _,
        outbound,
        ports,
        clusters,
        access_log,
        mesh,
        warnings,
    } = other.clone();
    let next = || SidecarSnapshot {
        version: base.version + 1,
        ..base.clone()
    };
    vec![
        (
            "outbound",
            outbound != base.outbound,
            SidecarSnapshot { outbound, ..next() },
        ),
        (
            "ports",
            ports != base.ports,
            SidecarSnapshot { ports, ..next() },
        ),
        (
            "clusters",
            clusters != base.clusters,
            SidecarSnapshot { clusters, ..next() },
        ),
        (
            "access_log",
            access_log != base.access_log,
            SidecarSnapshot {
                access_log,
                ..next()
            },
        ),
        (
            "mesh",
            mesh != base.mesh,
            SidecarSnapshot { mesh, ..next() },
        ),
        (
            "warnings",
            warnings != base.warnings,
            SidecarSnapshot { warnings, ..next() },
        ),
    ]
}

/// Offers `next` to a proxy serving `base` (a real `watch` channel, as the runtime holds) and
/// returns whether the proxy's receiver was woken, checking that a woken receiver holds
/// exactly `next`.
fn reaches<S>(base: &S, next: S) -> Result<bool, TestCaseError>
where
    S: egress_compile::snapshot::SameContent + Clone + PartialEq + std::fmt::Debug,
{
    let (tx, mut rx) = watch::channel(Arc::new(base.clone()));
    rx.mark_unchanged();
    let next = Arc::new(next);
    let sent = egress_runner::offer::offer(&tx, &next);
    let woken = rx.has_changed().unwrap();
    prop_assert_eq!(sent, woken);
    if woken {
        prop_assert_eq!(&**rx.borrow_and_update(), &*next);
    } else {
        prop_assert_eq!(&**rx.borrow(), base);
    }
    Ok(woken)
}

/// One field changed: its name, whether its value differs, the changed snapshot.
type Change<S> = (&'static str, bool, S);

/// Runs `check` over generated (base, other) pairs and returns how often each field changed.
fn run<S, St>(
    strategy: fn() -> St,
    changes: fn(&S, &S) -> Vec<Change<S>>,
    bump: fn(&S) -> S,
) -> BTreeMap<&'static str, u32>
where
    S: std::fmt::Debug + Clone + PartialEq + egress_compile::snapshot::SameContent,
    St: Strategy<Value = S>,
{
    let counts = std::sync::Mutex::new(BTreeMap::new());
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(strategy(), strategy()), |(base, other)| {
            for (field, differs, next) in changes(&base, &other) {
                let woken = reaches(&base, next)?;
                // A field that differs reaches the proxy; the same value (only the version
                // moved) does not wake it.
                prop_assert_eq!(woken, differs, "field {} (differs: {})", field, differs);
                if differs {
                    *counts.lock().unwrap().entry(field).or_insert(0) += 1;
                }
            }
            // The version alone never wakes the proxy.
            prop_assert!(!reaches(&base, bump(&base))?);
            Ok(())
        })
        .unwrap();
    counts.into_inner().unwrap()
}

#[test]
fn every_gateway_snapshot_field_changed_alone_reaches_the_proxy() {
    let counts = run(snapshot, gateway_changes, |s| Snapshot {
        version: s.version + 1,
        ..s.clone()
    });
    let base = Snapshot::default();
    for (field, _, _) in gateway_changes(&base, &base) {
        let n = counts.get(field).copied().unwrap_or(0);
        assert!(n >= 10, "field {field} was changed in only {n} cases");
    }
    println!("gateway fields changed and propagated: {counts:?}");
}

#[test]
fn every_sidecar_snapshot_field_changed_alone_reaches_the_proxy() {
    let counts = run(sidecar_snapshot, sidecar_changes, |s| SidecarSnapshot {
        version: s.version + 1,
        ..s.clone()
    });
    let base = SidecarSnapshot::default();
    for (field, _, _) in sidecar_changes(&base, &base) {
        let n = counts.get(field).copied().unwrap_or(0);
        assert!(n >= 10, "field {field} was changed in only {n} cases");
    }
    println!("sidecar fields changed and propagated: {counts:?}");
}
