//! Which Pods the runtime runs, and as what: gateway Pods (their identity, the target ports of
//! the Services selecting them, the static egress address they leave from) and Pods with an
//! injected sidecar, read from the controllers' state.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use egress_addon::sgc::{PREFIX_NOT_READY, SGC_POD_ANNOTATION, prefix_addresses, sgc_key};
use egress_compile::snapshot::GatewayIdentity;
use ipnet::Ipv4Net;
use serde_json::Value;

use crate::controllers::{SIDECAR_CONTAINER, State, at, has_sidecar, is_gateway_pod, object_path};

/// Which data plane a Pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PodKind {
    Gateway,
    Sidecar,
}

/// A gateway or sidecar Pod as the runtime needs it.
pub(super) struct PodView {
    pub(super) kind: PodKind,
    pub(super) path: String,
    pub(super) ip: Ipv4Addr,
    pub(super) identity: GatewayIdentity,
    pub(super) source: Option<IpAddr>,
    pub(super) container: String,
    /// The stored `restartCount` of the Pod's managed container, and whether that container
    /// had been started (so a new `egress up` starting it again counts a restart).
    pub(super) restarts_before: u32,
    pub(super) started_before: bool,
    /// Why a gateway must not serve now: its StaticGatewayConfiguration is gone or has no
    /// prefix, so it has no static egress address to leave from (AKS's CNI holds such Pods).
    pub(super) held: Option<String>,
}

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Gateway Pods that should run, by `namespace/name`.
pub(super) fn gateway_pods(state: &State) -> BTreeMap<String, PodView> {
    let mut out = BTreeMap::new();
    let services = services_by_namespace(state);
    for pod in &state.pods {
        if at(pod, "/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let kind = if is_gateway_pod(pod) {
            PodKind::Gateway
        } else if has_sidecar(pod) {
            PodKind::Sidecar
        } else {
            continue;
        };
        let Some(ip) = at(pod, "/status/podIP")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let ns = at(pod, "/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let labels = str_map(at(pod, "/metadata/labels"));
        let identity = GatewayIdentity {
            revision: labels.get("istio.io/rev").cloned(),
            service_ports: service_ports(
                services
                    .get(ns.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                &labels,
                pod,
            ),
            service_account: at(pod, "/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            namespace: ns.clone(),
            labels,
        };
        let path = object_path(pod);
        // A gateway leaves from its static egress prefix; a workload's sidecar from the Pod IP.
        let source = match kind {
            PodKind::Gateway => source_address(state, &ns, pod, &path),
            PodKind::Sidecar => Some(IpAddr::V4(ip)),
        };
        let container = match kind {
            PodKind::Gateway => at(pod, "/spec/containers/0/name")
                .and_then(Value::as_str)
                .unwrap_or(SIDECAR_CONTAINER)
                .to_owned(),
            PodKind::Sidecar => SIDECAR_CONTAINER.to_owned(),
        };
        let held = match (kind, &source) {
            (PodKind::Gateway, None) => at(pod, "/metadata/annotations")
                .and_then(|a| a.get(SGC_POD_ANNOTATION))
                .and_then(Value::as_str)
                .map(|sgc| {
                    format!(
                        "StaticGatewayConfiguration {ns}/{sgc} is gone or has no egress prefix: \
                         {PREFIX_NOT_READY}"
                    )
                }),
            _ => None,
        };
        let stored = at(pod, "/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container.as_str()))
            });
        let restarts_before = stored
            .and_then(|c| c.get("restartCount"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        let started_before = stored.is_some_and(|c| {
            at(c, "/state/running").is_some()
                || at(c, "/state/waiting/reason").and_then(Value::as_str)
                    == Some("CrashLoopBackOff")
        });
        out.insert(
            path.clone(),
            PodView {
                kind,
                path,
                ip,
                identity,
                source,
                container,
                restarts_before,
                started_before,
                held,
            },
        );
    }
    out
}

/// A Service as gateways need it: its selector and `(port, targetPort)` pairs.
struct ServiceView<'a> {
    selector: BTreeMap<String, String>,
    ports: Vec<(u64, Option<&'a Value>)>,
}

/// Services by namespace (built once per sync).
fn services_by_namespace(state: &State) -> BTreeMap<&str, Vec<ServiceView<'_>>> {
    let mut out: BTreeMap<&str, Vec<ServiceView<'_>>> = BTreeMap::new();
    for svc in &state.services {
        let ns = at(svc, "/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let selector = str_map(at(svc, "/spec/selector"));
        if selector.is_empty() {
            continue;
        }
        let ports = at(svc, "/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("port")?.as_u64()?, p.get("targetPort"))))
            .collect();
        out.entry(ns)
            .or_default()
            .push(ServiceView { selector, ports });
    }
    out
}

/// Service port → target port of the Services in the Pod's namespace that select it (numeric
/// target ports, or named ones resolved against the Pod's container ports).
fn service_ports(
    services: &[ServiceView<'_>],
    labels: &BTreeMap<String, String>,
    pod: &Value,
) -> BTreeMap<u16, u16> {
    let mut out = BTreeMap::new();
    for svc in services {
        if !svc.selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        for (port, target) in &svc.ports {
            let target = match target {
                None | Some(Value::Null) => Some(*port),
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(name)) => named_port(pod, name),
                Some(_) => None,
            };
            if let (Ok(port), Some(Ok(target))) = (u16::try_from(*port), target.map(u16::try_from))
            {
                out.insert(port, target);
            }
        }
    }
    out
}

fn named_port(pod: &Value, name: &str) -> Option<u64> {
    at(pod, "/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("containerPort")?
        .as_u64()
}

/// An address of the Pod's StaticGatewayConfiguration prefix (Pods spread over its
/// addresses, as gateway nodes each hold one), when the Pod uses one.
fn source_address(state: &State, ns: &str, pod: &Value, path: &str) -> Option<IpAddr> {
    let sgc = at(pod, "/metadata/annotations")?
        .get(SGC_POD_ANNOTATION)?
        .as_str()?;
    let key = sgc_key(ns, sgc);
    let prefix: Ipv4Net = state
        .sgcs
        .iter()
        .find(|s| {
            sgc_key(
                at(s, "/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                at(s, "/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ) == key
        })?
        .pointer("/status/egressIpPrefix")?
        .as_str()?
        .parse()
        .ok()?;
    let addrs: Vec<Ipv4Addr> = prefix_addresses(prefix).collect();
    let spread = path.bytes().map(usize::from).sum::<usize>();
    addrs
        .get(spread % addrs.len().max(1))
        .map(|a| IpAddr::V4(*a))
}
