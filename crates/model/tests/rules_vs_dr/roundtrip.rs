//! Round trip: typed object -> JSON -> typed object is the identity, for generated
//! VirtualServices and DestinationRules; validation never panics on them.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;

use egress_model::decode::typed;
use egress_model::resources::CustomObject;
use egress_model::resources::destination_rule::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRule,
    H2UpgradePolicy, HttpCookie, HttpSettings, LoadBalancerSettings, LocalityFailover,
    LocalityLbSetting, OutlierDetection, PortTrafficPolicy, SimpleLb, Subset, TcpSettings,
    TrafficPolicy, TunnelSettings, WarmupConfiguration, WorkloadSelector,
};
use egress_model::resources::virtual_service::{
    Destination, FaultAbort, HeaderOperations, Headers, HttpFaultInjection, HttpMatchRequest,
    HttpRedirect, HttpRetry, HttpRoute, HttpRouteDestination, L4MatchAttributes, Percent,
    PortSelector, RedirectPortSelection, RouteDestination, StringMatch, TcpRoute,
    TlsMatchAttributes, TlsRoute, VirtualService,
};

fn name() -> BoxedStrategy<String> {
    "[a-z][a-z0-9-]{0,8}".boxed()
}

fn host() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z]{1,8}\\.com",
        Just("*.cnn.com".to_owned()),
        "[a-z]{1,6}"
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<String> {
    prop_oneof!["[1-9][0-9]{0,3}(ms|s|m|h)", Just("1.5s".to_owned())].boxed()
}

fn labels() -> BoxedStrategy<BTreeMap<String, String>> {
    btree_map(name(), name(), 0..3).boxed()
}

fn string_match() -> BoxedStrategy<StringMatch> {
    (of("/[a-z]{0,5}"), of("/[a-z]{0,5}"), of("[a-z.*]{0,5}"))
        .prop_map(|(exact, prefix, regex)| StringMatch {
            exact,
            prefix,
            regex,
        })
        .boxed()
}

fn percent() -> BoxedStrategy<Percent> {
    of(-10.0f64..200.0)
        .prop_map(|value| Percent { value })
        .boxed()
}

fn destination() -> BoxedStrategy<Destination> {
    (of(host()), of(name()), of(of(0i64..70_000)))
        .prop_map(|(host, subset, port)| Destination {
            host,
            subset,
            port: port.map(|number| PortSelector { number }),
        })
        .boxed()
}

fn header_ops() -> BoxedStrategy<HeaderOperations> {
    (
        of(btree_map(name(), name(), 0..2)),
        of(btree_map(name(), name(), 0..2)),
        of(vec(name(), 0..2)),
    )
        .prop_map(|(set, add, remove)| HeaderOperations { set, add, remove })
        .boxed()
}

fn headers() -> BoxedStrategy<Headers> {
    (of(header_ops()), of(header_ops()))
        .prop_map(|(request, response)| Headers { request, response })
        .boxed()
}

fn http_match() -> BoxedStrategy<HttpMatchRequest> {
    (
        (
            of(name()),
            of(string_match()),
            of(string_match()),
            of(btree_map(name(), string_match(), 0..3)),
        ),
        (
            of(0i64..70_000),
            of(labels()),
            of(vec(name(), 0..3)),
            of(any::<bool>()),
        ),
        (
            of(btree_map(name(), string_match(), 0..2)),
            of(name()),
            of(name()),
        ),
    )
        .prop_map(
            |(
                (name, uri, method, headers),
                (port, source_labels, gateways, ignore_uri_case),
                (query_params, source_namespace, stat_prefix),
            )| {
                HttpMatchRequest {
                    name,
                    uri,
                    scheme: None,
                    method,
                    authority: None,
                    headers,
                    port,
                    source_labels,
                    gateways,
                    query_params,
                    ignore_uri_case,
                    without_headers: None,
                    source_namespace,
                    stat_prefix,
                }
            },
        )
        .boxed()
}

fn http_route() -> BoxedStrategy<HttpRoute> {
    let dest = (of(destination()), of(-5i32..200), of(headers())).prop_map(
        |(destination, weight, headers)| HttpRouteDestination {
            destination,
            weight,
            headers,
        },
    );
    let redirect = (
        of("/[a-z]{0,4}"),
        of(host()),
        of(0i64..70_000),
        of(prop_oneof![
            Just(RedirectPortSelection::FromProtocolDefault),
            Just(RedirectPortSelection::FromRequestPort)
        ]),
        of(0u32..600),
    )
        .prop_map(
            |(uri, authority, port, derive_port, redirect_code)| HttpRedirect {
                uri,
                authority,
                port,
                derive_port,
                scheme: None,
                redirect_code,
                prefix_rewrite: None,
            },
        );
    let retries = (
        of(-1i32..5),
        of(duration()),
        of("[a-z0-9-]{0,8}(,5xx)?"),
        of(any::<bool>()),
    )
        .prop_map(
            |(attempts, per_try_timeout, retry_on, retry_remote_localities)| HttpRetry {
                attempts,
                per_try_timeout,
                retry_on,
                retry_remote_localities,
                retry_ignore_previous_hosts: None,
                backoff: None,
            },
        );
    let fault =
        (of(percent()), of(400i32..600)).prop_map(|(percentage, http_status)| HttpFaultInjection {
            delay: None,
            abort: Some(FaultAbort {
                http_status,
                grpc_status: None,
                http2_error: None,
                percentage,
            }),
        });
    (
        (
            of(name()),
            of(vec(http_match(), 0..3)),
            of(vec(dest, 0..3)),
            of(redirect),
        ),
        (of(duration()), of(retries), of(fault), of(destination())),
        (of(percent()), of(0u32..200), of(headers())),
    )
        .prop_map(
            |(
                (name, matches, route, redirect),
                (timeout, retries, fault, mirror),
                (mirror_percentage, mirror_percent, headers),
            )| HttpRoute {
                name,
                matches,
                route,
                redirect,
                timeout,
                retries,
                fault,
                mirror,
                mirror_percentage,
                mirror_percent,
                headers,
                ..Default::default()
            },
        )
        .boxed()
}

fn route_destination() -> BoxedStrategy<RouteDestination> {
    (of(destination()), of(-5i32..200))
        .prop_map(|(destination, weight)| RouteDestination {
            destination,
            weight,
        })
        .boxed()
}

fn tls_route() -> BoxedStrategy<TlsRoute> {
    let m = (
        of(vec(host(), 0..3)),
        of(vec("10\\.[0-9]\\.0\\.0/16", 0..2)),
        of(0i64..70_000),
        of(labels()),
    )
        .prop_map(
            |(sni_hosts, destination_subnets, port, source_labels)| TlsMatchAttributes {
                sni_hosts,
                destination_subnets,
                port,
                source_labels,
                gateways: None,
                source_namespace: None,
            },
        );
    (of(vec(m, 0..3)), of(vec(route_destination(), 0..3)))
        .prop_map(|(matches, route)| TlsRoute { matches, route })
        .boxed()
}

fn tcp_route() -> BoxedStrategy<TcpRoute> {
    let m = (of(0i64..70_000), of(vec(name(), 0..2)), of(name())).prop_map(
        |(port, gateways, source_namespace)| L4MatchAttributes {
            port,
            gateways,
            source_namespace,
            ..Default::default()
        },
    );
    (of(vec(m, 0..3)), of(vec(route_destination(), 0..3)))
        .prop_map(|(matches, route)| TcpRoute { matches, route })
        .boxed()
}

fn virtual_service() -> BoxedStrategy<VirtualService> {
    (
        of(vec(host(), 0..3)),
        of(vec(prop_oneof![Just("mesh".to_owned()), name()], 0..3)),
        of(vec(http_route(), 0..3)),
        of(vec(tls_route(), 0..2)),
        of(vec(tcp_route(), 0..2)),
        of(vec(
            prop_oneof![Just(".".to_owned()), Just("*".to_owned()), name()],
            0..3,
        )),
    )
        .prop_map(
            |(hosts, gateways, http, tls, tcp, export_to)| VirtualService {
                hosts,
                gateways,
                http,
                tls,
                tcp,
                export_to,
            },
        )
        .boxed()
}

fn client_tls() -> BoxedStrategy<ClientTlsSettings> {
    let mode = prop_oneof![
        Just(ClientTlsMode::Disable),
        Just(ClientTlsMode::Simple),
        Just(ClientTlsMode::Mutual),
        Just(ClientTlsMode::IstioMutual)
    ];
    (
        of(mode),
        of(host()),
        of(name()),
        of(vec(host(), 0..2)),
        of(any::<bool>()),
    )
        .prop_map(
            |(mode, sni, credential_name, subject_alt_names, insecure_skip_verify)| {
                ClientTlsSettings {
                    mode,
                    sni,
                    credential_name,
                    subject_alt_names,
                    insecure_skip_verify,
                    ..Default::default()
                }
            },
        )
        .boxed()
}

fn load_balancer() -> BoxedStrategy<LoadBalancerSettings> {
    let simple = prop_oneof![
        Just(SimpleLb::Unspecified),
        Just(SimpleLb::LeastConn),
        Just(SimpleLb::Random),
        Just(SimpleLb::Passthrough),
        Just(SimpleLb::RoundRobin),
        Just(SimpleLb::LeastRequest)
    ];
    let cookie = (of(name()), of(duration())).prop_map(|(name, ttl)| HttpCookie {
        name,
        ttl,
        ..Default::default()
    });
    let hash = (of(name()), of(cookie), of(any::<bool>()), of(0u64..100_000)).prop_map(
        |(http_header_name, http_cookie, use_source_ip, minimum_ring_size)| ConsistentHashLb {
            http_header_name,
            http_cookie,
            use_source_ip,
            minimum_ring_size,
            ..Default::default()
        },
    );
    let failover = (of(name()), of(name())).prop_map(|(from, to)| LocalityFailover { from, to });
    let locality = (
        of(vec(failover, 0..2)),
        of(vec(name(), 0..2)),
        of(any::<bool>()),
    )
        .prop_map(|(failover, failover_priority, enabled)| LocalityLbSetting {
            distribute: None,
            failover,
            failover_priority,
            enabled,
        });
    let warmup = (of(duration()), of(-10.0f64..200.0), of(-1.0f64..10.0)).prop_map(
        |(duration, minimum_percent, aggression)| WarmupConfiguration {
            duration,
            minimum_percent,
            aggression,
        },
    );
    (
        of(simple),
        of(hash),
        of(locality),
        of(duration()),
        of(warmup),
    )
        .prop_map(
            |(simple, consistent_hash, locality_lb_setting, warmup_duration_secs, warmup)| {
                LoadBalancerSettings {
                    simple,
                    consistent_hash,
                    locality_lb_setting,
                    zone_aware_lb_setting: None,
                    warmup_duration_secs,
                    warmup,
                }
            },
        )
        .boxed()
}

fn connection_pool() -> BoxedStrategy<ConnectionPoolSettings> {
    let tcp = (of(-1i32..1000), of(duration()), of(duration())).prop_map(
        |(max_connections, connect_timeout, idle_timeout)| TcpSettings {
            max_connections,
            connect_timeout,
            idle_timeout,
            ..Default::default()
        },
    );
    let upgrade = prop_oneof![
        Just(H2UpgradePolicy::Default),
        Just(H2UpgradePolicy::DoNotUpgrade),
        Just(H2UpgradePolicy::Upgrade)
    ];
    let http = (of(-1i32..1000), of(upgrade), of(any::<bool>())).prop_map(
        |(http2_max_requests, h2_upgrade_policy, use_client_protocol)| HttpSettings {
            http2_max_requests,
            h2_upgrade_policy,
            use_client_protocol,
            ..Default::default()
        },
    );
    (of(tcp), of(http))
        .prop_map(|(tcp, http)| ConnectionPoolSettings { tcp, http })
        .boxed()
}

fn outlier() -> BoxedStrategy<OutlierDetection> {
    (
        of(0u32..10),
        of(duration()),
        of(-5i32..120),
        of(any::<bool>()),
        of(vec(90u32..610, 0..3)),
    )
        .prop_map(
            |(
                consecutive_5xx_errors,
                interval,
                max_ejection_percent,
                split_external_local_origin_errors,
                codes,
            )| OutlierDetection {
                consecutive_5xx_errors,
                interval,
                max_ejection_percent,
                split_external_local_origin_errors,
                outlier_detection_http_error_codes: codes,
                ..Default::default()
            },
        )
        .boxed()
}

fn traffic_policy() -> BoxedStrategy<TrafficPolicy> {
    let port = (of(of(0i64..70_000)), of(load_balancer()), of(client_tls())).prop_map(
        |(port, load_balancer, tls)| PortTrafficPolicy {
            port: port.map(|number| PortSelector { number }),
            load_balancer,
            tls,
            ..Default::default()
        },
    );
    let tunnel = (of("CONNECT|POST|GET"), of(host()), of(0i64..70_000)).prop_map(
        |(protocol, target_host, target_port)| TunnelSettings {
            protocol,
            target_host,
            target_port,
        },
    );
    (
        of(load_balancer()),
        of(connection_pool()),
        of(outlier()),
        of(client_tls()),
        of(vec(port, 0..3)),
        of(tunnel),
    )
        .prop_map(
            |(
                load_balancer,
                connection_pool,
                outlier_detection,
                tls,
                port_level_settings,
                tunnel,
            )| TrafficPolicy {
                load_balancer,
                connection_pool,
                outlier_detection,
                tls,
                port_level_settings,
                tunnel,
                ..Default::default()
            },
        )
        .boxed()
}

fn destination_rule() -> BoxedStrategy<DestinationRule> {
    let subset = (of(name()), of(labels()), of(traffic_policy())).prop_map(
        |(name, labels, traffic_policy)| Subset {
            name,
            labels,
            traffic_policy,
        },
    );
    (
        of(host()),
        of(traffic_policy()),
        of(vec(subset, 0..3)),
        of(vec(name(), 0..2)),
        of(of(labels())),
    )
        .prop_map(
            |(host, traffic_policy, subsets, export_to, selector)| DestinationRule {
                host,
                traffic_policy,
                subsets,
                export_to,
                workload_selector: selector.map(|match_labels| WorkloadSelector { match_labels }),
            },
        )
        .boxed()
}

fn object<S: Default>(kind: &str, spec: S) -> CustomObject<S> {
    let mut o = CustomObject {
        api_version: "networking.istio.io/v1".into(),
        kind: kind.into(),
        spec: Some(spec),
        ..Default::default()
    };
    o.metadata.name = Some("test".into());
    o.metadata.namespace = Some("default".into());
    o
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn virtual_service_round_trips(spec in virtual_service()) {
        let obj = object("VirtualService", spec);
        let value = serde_json::to_value(&obj).expect("encodes");
        let (back, unknown) = typed::<CustomObject<VirtualService>>(&value).expect("decodes");
        prop_assert!(unknown.is_empty(), "{unknown:?}");
        prop_assert_eq!(back, obj);
    }

    #[test]
    fn destination_rule_round_trips(spec in destination_rule()) {
        let obj = object("DestinationRule", spec);
        let value = serde_json::to_value(&obj).expect("encodes");
        let (back, unknown) = typed::<CustomObject<DestinationRule>>(&value).expect("decodes");
        prop_assert!(unknown.is_empty(), "{unknown:?}");
        prop_assert_eq!(back, obj);
    }

    #[test]
    fn validation_never_panics(spec in virtual_service(), rule in destination_rule()) {
        let v = object("VirtualService", spec);
        let mut r = egress_model::Report::default();
        egress_model::validate::virtual_service::validate(&v, &mut r);
        let d = object("DestinationRule", rule);
        egress_model::validate::destination_rule::validate(&d, &mut r);
    }
}
