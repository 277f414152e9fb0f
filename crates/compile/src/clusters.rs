//! Upstream clusters for every cluster name the routes and chains use (Istio builds one per
//! service port and DestinationRule subset; a name with no such service, port or subset has
//! no cluster and the data plane answers 503 `NC`): discovery, load balancing, pool limits,
//! outlier detection and TLS origination.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use egress_model::resources::core::MESH_CONFIG_NAMESPACE;
use egress_model::resources::destination_rule::{
    ClientTlsMode, ClientTlsSettings, H2UpgradePolicy, LoadBalancerSettings, SimpleLb,
    TunnelSettings,
};
use egress_model::validate::common::parse_go_duration;

use crate::ctx::Ctx;
use crate::destination_rule::{Policy, effective_policy};
use crate::endpoints::{Endpoints, discover};
use crate::host::{dns_srv_key, parse_subset_key};
use crate::registry::{Source, Svc, is_http2};
use crate::secrets::{credential_ca_crl, credential_identity, file};
use crate::snapshot::{
    ChainAction, Cluster, LbPolicy, Listener, ListenerKind, OutlierDetection, PemIdentity,
    PoolSettings, RouteAction, RouteConfig, Tunnel, TunnelProtocol, UpstreamTls, UpstreamTlsMode,
};

/// Clusters for every name referenced by `listeners`.
pub(crate) fn build(
    ctx: &Ctx<'_>,
    listeners: &[Listener],
    connect: Duration,
) -> BTreeMap<String, Cluster> {
    let mut names = BTreeSet::new();
    for l in listeners {
        match &l.kind {
            ListenerKind::Http(rc) => route_clusters(rc, &mut names),
            ListenerKind::Chains(chains) => {
                for c in chains {
                    match &c.action {
                        ChainAction::Http(rc) => route_clusters(rc, &mut names),
                        ChainAction::TcpProxy { clusters, .. } => {
                            names.extend(clusters.iter().map(|w| w.cluster.clone()));
                        }
                    }
                }
            }
        }
    }
    names
        .into_iter()
        .filter_map(|n| cluster(ctx, &n, connect).map(|c| (n, c)))
        .collect()
}

fn route_clusters(rc: &RouteConfig, names: &mut BTreeSet<String>) {
    for v in &rc.virtual_hosts {
        for r in &v.routes {
            if let RouteAction::Forward(f) = &r.action {
                names.extend(f.clusters.iter().map(|w| w.cluster.clone()));
            }
        }
    }
}

/// The cluster called `name` (`outbound|<port>|<subset>|<host>`); `None`, with a warning,
/// when Istio would not build it.
pub(crate) fn cluster(ctx: &Ctx<'_>, name: &str, connect: Duration) -> Option<Cluster> {
    let no_cluster = |why: String| {
        ctx.warn(format!(
            "no cluster {name}: {why}; requests routed to it get 503 NC"
        ));
    };
    let Some((port, subset, host)) = parse_subset_key(name) else {
        no_cluster("not a cluster name".into());
        return None;
    };
    let Some(svc) = ctx.registry.lookup(host, &ctx.id.namespace, None) else {
        no_cluster(format!(
            "no ServiceEntry or Service for host {host} visible in namespace {}",
            ctx.id.namespace
        ));
        return None;
    };
    if svc.external_name().is_some() {
        no_cluster(format!("{host} is an ExternalName Service (an alias)"));
        return None;
    }
    let Some(svc_port) = svc.port(port) else {
        no_cluster(format!("service {host} has no port {port}"));
        return None;
    };
    let rule = ctx.drs.for_service(
        host,
        svc.namespace,
        &ctx.id.namespace,
        ctx.labels(),
        MESH_CONFIG_NAMESPACE,
        ctx.mesh,
    );
    let subset_def = if subset.is_empty() {
        None
    } else {
        match rule.as_ref().and_then(|r| r.subset(subset)) {
            Some(s) => Some(s),
            None => {
                no_cluster(format!(
                    "subset {subset:?} is not defined by a DestinationRule for {host}"
                ));
                return None;
            }
        }
    };
    let policy = effective_policy(rule.as_ref(), subset_def, port);
    let subset_labels = subset_def
        .and_then(|s| s.labels.clone())
        .unwrap_or_default();
    let eps = discover(ctx, svc, svc_port, &subset_labels);
    let http2 = is_http2(svc_port.protocol)
        || (svc_port.protocol.is_http()
            && policy
                .pool
                .and_then(|p| p.http.as_ref())
                .and_then(|h| h.h2_upgrade_policy)
                == Some(H2UpgradePolicy::Upgrade));
    let tls = match upstream_tls(ctx, svc, (port, subset, host), policy.tls, &eps, http2) {
        Ok(t) => t,
        Err(e) => {
            // Name the rule whose `tls` this is, so the operator knows what to fix (a missing
            // credential Secret, as in Istio, fails only this cluster: 503).
            let rules = rule
                .as_ref()
                .map(|r| r.names.join(", "))
                .unwrap_or_default();
            no_cluster(if rules.is_empty() {
                e
            } else {
                format!("DestinationRule {rules} tls: {e}")
            });
            return None;
        }
    };
    let tunnel = match tunnel(
        subset_def
            .and_then(|s| s.traffic_policy.as_ref())
            .and_then(|tp| tp.tunnel.as_ref())
            .or_else(|| {
                rule.as_ref()
                    .and_then(|r| r.traffic_policy)
                    .and_then(|tp| tp.tunnel.as_ref())
            }),
        http2,
    ) {
        Ok(t) => t,
        Err(e) => {
            no_cluster(e);
            return None;
        }
    };
    let pool = policy.pool;
    Some(Cluster {
        name: name.to_owned(),
        host: host.to_owned(),
        port,
        discovery: eps.discovery,
        lb: lb_policy(ctx, name, policy.lb),
        tls,
        connect_timeout: pool
            .and_then(|p| p.tcp.as_ref())
            .and_then(|t| t.connect_timeout.as_deref())
            .and_then(|t| parse_go_duration(t).ok())
            .unwrap_or(connect),
        pool: pool_settings(&policy),
        outlier: outlier(&policy),
        external: svc.external,
        tunnel,
    })
}

/// DestinationRule `trafficPolicy.tunnel` (the subset's, else the rule's; port-level settings
/// have none): the cluster's endpoints are a forward proxy asked for a tunnel to the target,
/// with `CONNECT` (the default) or `POST`. Istio sets Envoy's `tunneling_config` from it
/// (`use_post` for POST) and Envoy asks over the cluster's own protocol: HTTP/2 when the
/// cluster has HTTP/2 protocol options (`http2`: the port's protocol is HTTP2 or gRPC, or HTTP
/// with `h2UpgradePolicy: UPGRADE`; such a cluster also offers ALPN `h2` when it originates
/// TLS), HTTP/1.1 otherwise.
fn tunnel(settings: Option<&TunnelSettings>, http2: bool) -> Result<Option<Tunnel>, String> {
    let Some(t) = settings else {
        return Ok(None);
    };
    let protocol = match t.protocol.as_deref() {
        None | Some("CONNECT") => TunnelProtocol::Connect,
        Some("POST") => TunnelProtocol::Post,
        Some(other) => {
            return Err(format!(
                "tunnel protocol {other} is not supported (CONNECT or POST)"
            ));
        }
    };
    let target_host = t.target_host.clone().unwrap_or_default();
    let target_port = t
        .target_port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("tunnel targetPort {:?} is not a port", t.target_port))?;
    if target_host.is_empty() {
        return Err("tunnel targetHost is empty".into());
    }
    Ok(Some(Tunnel {
        protocol,
        http2,
        target_host,
        target_port,
    }))
}

/// `applyLoadBalancer`: Istio's default (and LEAST_CONN) is LEAST_REQUEST.
fn lb_policy(ctx: &Ctx<'_>, name: &str, lb: Option<&LoadBalancerSettings>) -> LbPolicy {
    let Some(lb) = lb else {
        return LbPolicy::LeastRequest;
    };
    if lb.consistent_hash.is_some() {
        ctx.warn(format!(
            "cluster {name}: consistentHash load balancing is not supported; LEAST_REQUEST used"
        ));
    }
    match lb.simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => {
            ctx.warn(format!(
                "cluster {name}: PASSTHROUGH load balancing is not supported at gateways; \
                 LEAST_REQUEST used"
            ));
            LbPolicy::LeastRequest
        }
        _ => LbPolicy::LeastRequest,
    }
}

fn positive(v: Option<i32>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0)
}

fn pool_settings(policy: &Policy<'_>) -> PoolSettings {
    let Some(pool) = policy.pool else {
        return PoolSettings::default();
    };
    let tcp = pool.tcp.as_ref();
    let http = pool.http.as_ref();
    PoolSettings {
        max_connections: positive(tcp.and_then(|t| t.max_connections)),
        http1_max_pending_requests: positive(http.and_then(|h| h.http1_max_pending_requests)),
        max_requests_per_connection: positive(http.and_then(|h| h.max_requests_per_connection)),
        idle_timeout: http
            .and_then(|h| h.idle_timeout.as_deref())
            .and_then(|t| parse_go_duration(t).ok()),
    }
}

fn outlier(policy: &Policy<'_>) -> Option<OutlierDetection> {
    let o = policy.outlier?;
    let dur = |v: Option<&str>, default: u64| {
        v.and_then(|t| parse_go_duration(t).ok())
            .unwrap_or(Duration::from_secs(default))
    };
    Some(OutlierDetection {
        consecutive_5xx: o.consecutive_5xx_errors.unwrap_or(5),
        consecutive_local_origin_failures: o.consecutive_local_origin_failures.unwrap_or(5),
        interval: dur(o.interval.as_deref(), 10),
        base_ejection_time: dur(o.base_ejection_time.as_deref(), 30),
        max_ejection_percent: positive(o.max_ejection_percent).unwrap_or(10),
    })
}

/// Upstream TLS (`buildUpstreamTLSSettings` + `buildUpstreamClusterTLSContext`). Without DR
/// TLS, auto mTLS applies to in-mesh destinations whose endpoints all carry
/// `security.istio.io/tlsMode: istio`.
fn upstream_tls(
    ctx: &Ctx<'_>,
    svc: &Svc<'_>,
    (port, subset, host): (u16, &str, &str),
    tls: Option<&ClientTlsSettings>,
    eps: &Endpoints,
    http2: bool,
) -> Result<Option<UpstreamTls>, String> {
    let istio_alpn = || {
        let mut alpn = vec!["istio-peer-exchange".to_owned(), "istio".to_owned()];
        if http2 {
            alpn.push("h2".to_owned());
        }
        alpn
    };
    let istio_mutual = |sni: Option<&str>, sans: &[String]| UpstreamTls {
        mode: UpstreamTlsMode::IstioMutual,
        sni: Some(
            sni.filter(|s| !s.is_empty())
                .map_or_else(|| dns_srv_key(port, subset, host), str::to_owned),
        ),
        subject_alt_names: if sans.is_empty() {
            eps.service_accounts.clone()
        } else {
            sans.to_vec()
        },
        ca_certificates: None,
        ca_crl: None,
        client_identity: None,
        insecure_skip_verify: false,
        alpn: istio_alpn(),
    };
    let Some(tls) = tls else {
        if !svc.external && eps.all_istio_mtls {
            return Ok(Some(istio_mutual(None, &[])));
        }
        return Ok(None);
    };
    let mode = tls.mode_or_default();
    let mutual = match mode {
        ClientTlsMode::Disable => return Ok(None),
        ClientTlsMode::IstioMutual => {
            return Ok(Some(istio_mutual(
                tls.sni.as_deref(),
                tls.subject_alt_names(),
            )));
        }
        ClientTlsMode::Simple => false,
        ClientTlsMode::Mutual => true,
    };
    let mut sans = tls.subject_alt_names().to_vec();
    if sans.is_empty() && matches!(svc.source, Source::Entry(_)) {
        sans = eps.service_accounts.clone();
    }
    let insecure = tls.insecure_skip_verify.unwrap_or(false);
    let (ca, crl, identity) = match tls.credential_name.as_deref().filter(|c| !c.is_empty()) {
        Some(cred) => {
            let identity = if mutual {
                Some(credential_identity(ctx, cred)?)
            } else {
                None
            };
            let (ca, crl) = if insecure {
                (None, None)
            } else {
                let c = credential_ca_crl(ctx, cred)?;
                (Some(c.ca), c.crl)
            };
            (ca, crl, identity)
        }
        None => {
            let identity = if mutual {
                match (
                    tls.client_certificate.as_deref().filter(|c| !c.is_empty()),
                    tls.private_key.as_deref().filter(|c| !c.is_empty()),
                ) {
                    (Some(c), Some(k)) => Some(PemIdentity {
                        cert_chain: file(c),
                        private_key: file(k),
                    }),
                    _ => {
                        return Err(
                            "MUTUAL TLS: client certificate and private key must not be empty"
                                .into(),
                        );
                    }
                }
            } else {
                None
            };
            let ca = tls
                .ca_certificates
                .as_deref()
                .filter(|c| !c.is_empty() && !insecure)
                .map(file);
            let crl = tls
                .ca_crl
                .as_deref()
                .filter(|c| !c.is_empty() && !insecure)
                .map(file);
            (ca, crl, identity)
        }
    };
    Ok(Some(UpstreamTls {
        mode: if mutual {
            UpstreamTlsMode::Mutual
        } else {
            UpstreamTlsMode::Simple
        },
        sni: tls.sni.clone().filter(|s| !s.is_empty()),
        subject_alt_names: sans,
        ca_certificates: ca,
        ca_crl: crl,
        client_identity: identity,
        insecure_skip_verify: insecure,
        alpn: if http2 {
            vec!["h2".to_owned()]
        } else {
            Vec::new()
        },
    }))
}
