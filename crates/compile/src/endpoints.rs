//! Endpoint discovery for one service port (and subset): ServiceEntry resolution modes as a
//! gateway applies them, and the ready Pods behind Kubernetes Services.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use egress_model::resources::service_entry::{Resolution, ServiceEntry, WorkloadEntry};
use k8s_openapi::api::core::v1::Pod;

use crate::ctx::Ctx;
use crate::registry::{Source, Svc, SvcPort, Target};
use crate::snapshot::{Discovery, Endpoint};

/// Label marking endpoints that accept Istio mTLS.
const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// What discovery found for a cluster.
pub(crate) struct Endpoints {
    /// How the data plane finds the endpoints.
    pub discovery: Discovery,
    /// SPIFFE identities (and ServiceEntry `subjectAltNames`) of the service's workloads.
    pub service_accounts: Vec<String>,
    /// Every selected endpoint carries `security.istio.io/tlsMode: istio` (and there is one).
    pub all_istio_mtls: bool,
}

/// Endpoints of `svc` on `port`, restricted to endpoints carrying `subset` labels.
pub(crate) fn discover(
    ctx: &Ctx<'_>,
    svc: &Svc<'_>,
    port: &SvcPort,
    subset: &BTreeMap<String, String>,
) -> Endpoints {
    match svc.source {
        Source::Kube(s) => {
            let selector = s
                .spec
                .as_ref()
                .and_then(|sp| sp.selector.clone())
                .unwrap_or_default();
            if selector.is_empty() {
                return pods_endpoints(ctx, svc.namespace, None, port, subset);
            }
            pods_endpoints(ctx, svc.namespace, Some(&selector), port, subset)
        }
        Source::Entry(se) => entry_endpoints(ctx, svc, se, port, subset),
    }
}

fn entry_endpoints(
    ctx: &Ctx<'_>,
    svc: &Svc<'_>,
    se: &ServiceEntry,
    port: &SvcPort,
    subset: &BTreeMap<String, String>,
) -> Endpoints {
    let target = match port.target {
        Target::Number(n) => n,
        Target::Named(_) => port.number,
    };
    let selected: Vec<&WorkloadEntry> = se
        .endpoints()
        .iter()
        .filter(|e| labels_match(subset, e.labels.as_ref()))
        .collect();
    let ep_port = |e: &WorkloadEntry| -> u16 {
        e.ports
            .as_ref()
            .and_then(|p| p.get(&port.name))
            .and_then(|p| u16::try_from(*p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(target)
    };
    let weight = |e: &WorkloadEntry| e.weight.filter(|w| *w > 0).unwrap_or(1);
    let mut accounts: Vec<String> = se.subject_alt_names.clone().unwrap_or_default();
    accounts.extend(se.endpoints().iter().filter_map(|e| {
        e.service_account
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|sa| spiffe(ctx, svc.namespace, sa))
    }));
    accounts.sort();
    accounts.dedup();
    let all_mtls = !selected.is_empty() && selected.iter().all(|e| istio_mtls(e.labels.as_ref()));
    let done = |discovery| Endpoints {
        discovery,
        service_accounts: accounts.clone(),
        all_istio_mtls: all_mtls,
    };
    let has_endpoints = !se.endpoints().is_empty();
    if ctx.sidecar && se.resolution_or_default() == Resolution::None {
        // Sidecars forward NONE services to the address the client connected to.
        return done(Discovery::OriginalDst);
    }
    match se.resolution_or_default() {
        Resolution::Static | Resolution::None if has_endpoints => {
            let mut out = Vec::new();
            for e in &selected {
                match e.address().parse::<IpAddr>() {
                    Ok(ip) => out.push(Endpoint {
                        address: SocketAddr::new(ip, ep_port(e)),
                        weight: weight(e),
                    }),
                    Err(_) => ctx.warn(format!(
                        "ServiceEntry {}: endpoint address {:?} is not an IP address; skipped",
                        svc.host,
                        e.address()
                    )),
                }
            }
            done(Discovery::Static(out))
        }
        Resolution::Static | Resolution::None => {
            let Some(sel) = se.workload_selector.as_ref() else {
                if se.resolution_or_default() == Resolution::None {
                    ctx.warn(format!(
                        "host {}: ServiceEntry resolution NONE has no endpoints at a gateway \
                         (gateways cannot use passthrough clusters): requests get 503 UH",
                        svc.host
                    ));
                }
                return done(Discovery::Static(Vec::new()));
            };
            let labels = sel.labels.clone().unwrap_or_default();
            let mut found = pods_endpoints(ctx, svc.namespace, Some(&labels), port, subset);
            found.service_accounts.extend(accounts.iter().cloned());
            found.service_accounts.sort();
            found.service_accounts.dedup();
            found
        }
        Resolution::Dns if has_endpoints => done(Discovery::DnsEndpoints(
            selected
                .iter()
                .map(|e| (e.address().to_owned(), ep_port(e), weight(e)))
                .collect(),
        )),
        Resolution::DnsRoundRobin if has_endpoints => match selected.first() {
            Some(e) => done(Discovery::LogicalDns {
                hostname: e.address().to_owned(),
                port: ep_port(e),
            }),
            None => done(Discovery::Static(Vec::new())),
        },
        Resolution::Dns | Resolution::DnsRoundRobin if !subset.is_empty() => {
            done(Discovery::Static(Vec::new()))
        }
        Resolution::Dns => done(Discovery::StrictDns {
            hostname: svc.host.clone(),
            port: target,
        }),
        Resolution::DnsRoundRobin => done(Discovery::LogicalDns {
            hostname: svc.host.clone(),
            port: target,
        }),
        // Envoy's dynamic forward proxy, at gateways too (Istio serves it at sidecars only):
        // each connection resolves the name its client asked for, under this host.
        Resolution::DynamicDns => done(Discovery::DynamicDns {
            hosts: vec![svc.host.clone()],
            port: target,
        }),
    }
}

/// Ready Pods in `namespace` matching `selector` (none: no Pods, as a selector-less Service
/// has only manually managed Endpoints) and the subset labels.
fn pods_endpoints(
    ctx: &Ctx<'_>,
    namespace: &str,
    selector: Option<&BTreeMap<String, String>>,
    port: &SvcPort,
    subset: &BTreeMap<String, String>,
) -> Endpoints {
    let Some(selector) = selector else {
        return Endpoints {
            discovery: Discovery::Static(Vec::new()),
            service_accounts: Vec::new(),
            all_istio_mtls: false,
        };
    };
    let mut pods: Vec<&Pod> = ctx
        .pods_in(namespace)
        .filter(|p| labels_match(selector, p.metadata.labels.as_ref()))
        .filter(|p| pod_ready(p))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut accounts: Vec<String> = pods
        .iter()
        .map(|p| {
            let sa = p
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.as_deref())
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            spiffe(ctx, namespace, sa)
        })
        .collect();
    accounts.sort();
    accounts.dedup();
    let selected: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| labels_match(subset, p.metadata.labels.as_ref()))
        .collect();
    let mut out = Vec::new();
    for p in &selected {
        let Some(ip) = pod_ip(p) else { continue };
        let Some(target) = pod_port(p, port) else {
            continue;
        };
        out.push(Endpoint {
            address: SocketAddr::new(ip, target),
            weight: 1,
        });
    }
    Endpoints {
        all_istio_mtls: !selected.is_empty()
            && selected
                .iter()
                .all(|p| istio_mtls(p.metadata.labels.as_ref())),
        discovery: Discovery::Static(out),
        service_accounts: accounts,
    }
}

/// A Pod is an endpoint when it has an IP, is not terminating, and is ready (its `Ready`
/// condition, else all its containers).
fn pod_ready(p: &Pod) -> bool {
    if p.metadata.deletion_timestamp.is_some() || pod_ip(p).is_none() {
        return false;
    }
    let Some(status) = p.status.as_ref() else {
        return false;
    };
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
    {
        return c.status == "True";
    }
    match status.container_statuses.as_deref() {
        Some(cs) if !cs.is_empty() => cs.iter().all(|c| c.ready),
        _ => false,
    }
}

fn pod_ip(p: &Pod) -> Option<IpAddr> {
    p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// The endpoint port on `p`: the number, or the container port named by `targetPort`.
fn pod_port(p: &Pod, port: &SvcPort) -> Option<u16> {
    match &port.target {
        Target::Number(n) => Some(*n),
        Target::Named(name) => p
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// `selector` ⊆ `labels`.
pub(crate) fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn istio_mtls(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(TLS_MODE_LABEL))
        .is_some_and(|v| v == "istio")
}

/// `spiffe://<trustDomain>/ns/<ns>/sa/<sa>`.
fn spiffe(ctx: &Ctx<'_>, namespace: &str, sa: &str) -> String {
    format!(
        "spiffe://{}/ns/{namespace}/sa/{sa}",
        ctx.mesh.trust_domain()
    )
}
