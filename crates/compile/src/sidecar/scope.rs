//! What a workload's sidecar sees (Istio's `SidecarScope`, egress side): the Sidecar resource
//! that applies to the pod, the hosts its egress listeners import (`namespace/dnsName` with
//! `*`, `.` and `~` namespaces), and the outbound traffic policy.

use egress_model::resources::core::MESH_CONFIG_NAMESPACE;
use egress_model::resources::mesh::OutboundMode;
use egress_model::resources::sidecar::{OutboundTrafficPolicyMode, Sidecar};
use egress_model::validate::common::Protocol;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::ctx::{Ctx, name_ns, sorted};
use crate::host::matches;
use crate::snapshot::OutboundPolicy;

/// The namespace part of an imported host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespaces {
    /// `*`: every namespace.
    Any,
    /// A namespace by name (`.` is the workload's namespace).
    Named(String),
    /// `~`: no namespace.
    Nothing,
}

/// One egress listener of the scope.
#[derive(Debug, Clone)]
pub(super) struct EgressListener {
    /// The port it serves; `None` = every port no other listener names (the catch-all).
    pub port: Option<u16>,
    /// The protocol the port declares (overrides the services' protocols); `None` = theirs.
    pub protocol: Option<Protocol>,
    /// Imported hosts.
    imports: Vec<(Namespaces, String)>,
}

impl EgressListener {
    /// The default listener: everything (`*/*`).
    fn everything() -> EgressListener {
        EgressListener {
            port: None,
            protocol: None,
            imports: vec![(Namespaces::Any, "*".to_owned())],
        }
    }

    /// Whether the listener imports `host` defined (or configured) in namespace `ns`.
    pub fn imports(&self, ns: &str, host: &str) -> bool {
        self.imports.iter().any(|(sel, name)| {
            let ns_ok = match sel {
                Namespaces::Any => true,
                Namespaces::Named(n) => n == ns,
                Namespaces::Nothing => false,
            };
            ns_ok && matches(name, host)
        })
    }
}

/// The sidecar's scope.
pub(super) struct Scope<'a> {
    /// The Sidecar resource that applies (`ns/name`, spec), if any.
    pub sidecar: Option<(String, &'a Sidecar)>,
    /// Egress listeners; without a Sidecar (or without `egress`) one that imports everything.
    listeners: Vec<EgressListener>,
}

impl Scope<'_> {
    /// The listener serving `port`: the one naming it, else the catch-all; `None` when the
    /// Sidecar names other ports only (traffic to `port` then falls to the policy).
    pub fn listener_for(&self, port: u16) -> Option<&EgressListener> {
        self.listeners
            .iter()
            .find(|l| l.port == Some(port))
            .or_else(|| self.listeners.iter().find(|l| l.port.is_none()))
    }
}

/// The Sidecar for the workload: one in its namespace whose `workloadSelector` selects the
/// pod, else the namespace's selector-less one, else the root namespace's selector-less one
/// (the oldest at each step, as Istio orders configuration).
pub(super) fn select<'a>(ctx: &Ctx<'a>) -> Scope<'a> {
    let all = sorted::<Sidecar>(&ctx.inputs.sidecars);
    let ns = ctx.id.namespace.as_str();
    let in_ns = |n: &str, m: &ObjectMeta| name_ns(m).1 == n;
    let chosen = all
        .iter()
        .find(|(m, s)| {
            in_ns(ns, m)
                && s.workload_selector
                    .as_ref()
                    .is_some_and(|w| w.matches(ctx.labels()))
        })
        .or_else(|| {
            all.iter()
                .find(|(m, s)| in_ns(ns, m) && s.workload_selector.is_none())
        })
        .or_else(|| {
            all.iter()
                .find(|(m, s)| in_ns(MESH_CONFIG_NAMESPACE, m) && s.workload_selector.is_none())
        });
    let Some((meta, sidecar)) = chosen else {
        return Scope {
            sidecar: None,
            listeners: vec![EgressListener::everything()],
        };
    };
    let (name, sc_ns) = name_ns(meta);
    let id = format!("{sc_ns}/{name}");
    let mut listeners = Vec::new();
    for (i, l) in sidecar.egress().iter().enumerate() {
        if l.bind.as_deref().is_some_and(|b| !b.is_empty()) {
            ctx.warn(format!(
                "Sidecar {id} egress[{i}]: bind is not supported; the listener serves the \
                 captured traffic of its port"
            ));
        }
        let port = match &l.port {
            None => None,
            Some(p) => match u16::try_from(p.number()).ok().filter(|n| *n != 0) {
                Some(n) => Some(n),
                None => {
                    ctx.warn(format!(
                        "Sidecar {id} egress[{i}]: port {} is not supported (unix sockets \
                         are not); listener skipped",
                        p.number()
                    ));
                    continue;
                }
            },
        };
        let protocol = l
            .port
            .as_ref()
            .map(|p| Protocol::parse(p.protocol()))
            .filter(|p| *p != Protocol::Unsupported);
        let imports = l
            .hosts()
            .iter()
            .filter_map(|h| {
                let (sel, name) = h.split_once('/')?;
                let sel = match sel {
                    "*" => Namespaces::Any,
                    "." => Namespaces::Named(ns.to_owned()),
                    "~" => Namespaces::Nothing,
                    other => Namespaces::Named(other.to_owned()),
                };
                Some((sel, name.to_ascii_lowercase()))
            })
            .collect();
        listeners.push(EgressListener {
            port,
            protocol,
            imports,
        });
    }
    if listeners.is_empty() {
        listeners.push(EgressListener::everything());
    }
    Scope {
        sidecar: Some((id, sidecar)),
        listeners,
    }
}

/// `outboundTrafficPolicy`: the Sidecar's when it sets one (its `mode` defaults to
/// REGISTRY_ONLY, the proto zero value), else the MeshConfig's (default ALLOW_ANY).
/// `ALLOW_ANY_DYNAMIC_DNS` is served as ALLOW_ANY and `egressProxy` is not supported; both
/// are reported.
pub(super) fn outbound_policy(ctx: &Ctx<'_>, scope: &Scope<'_>) -> OutboundPolicy {
    let sidecar_policy = scope
        .sidecar
        .as_ref()
        .and_then(|(id, s)| s.outbound_traffic_policy.as_ref().map(|p| (id, p)));
    if let Some((id, p)) = sidecar_policy {
        if p.egress_proxy.is_some() {
            ctx.warn(format!(
                "Sidecar {id}: outboundTrafficPolicy.egressProxy is not supported; unknown \
                 destinations pass through directly"
            ));
        }
        return match p.mode_or_default() {
            OutboundTrafficPolicyMode::RegistryOnly => OutboundPolicy::RegistryOnly,
            OutboundTrafficPolicyMode::AllowAny => OutboundPolicy::AllowAny,
            OutboundTrafficPolicyMode::AllowAnyDynamicDns => {
                ctx.warn(format!(
                    "Sidecar {id}: ALLOW_ANY_DYNAMIC_DNS is only supported in MeshConfig; \
                     ALLOW_ANY used"
                ));
                OutboundPolicy::AllowAny
            }
        };
    }
    if ctx
        .mesh
        .outbound_traffic_policy
        .as_ref()
        .is_some_and(|p| p.egress_proxy.is_some())
    {
        ctx.warn(
            "MeshConfig outboundTrafficPolicy.egressProxy is not supported; unknown \
             destinations pass through directly",
        );
    }
    match ctx.mesh.outbound_mode() {
        OutboundMode::RegistryOnly => OutboundPolicy::RegistryOnly,
        OutboundMode::AllowAny => OutboundPolicy::AllowAny,
        OutboundMode::AllowAnyDynamicDns => {
            ctx.warn(
                "MeshConfig outboundTrafficPolicy ALLOW_ANY_DYNAMIC_DNS is served as ALLOW_ANY \
                 (unknown HTTP hosts pass through to the original destination)",
            );
            OutboundPolicy::AllowAny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(hosts: &[(Namespaces, &str)]) -> EgressListener {
        EgressListener {
            port: None,
            protocol: None,
            imports: hosts
                .iter()
                .map(|(n, h)| (n.clone(), (*h).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn imports_follow_namespace_and_wildcards() {
        let l = listener(&[
            (Namespaces::Named("a".into()), "*.cnn.com"),
            (Namespaces::Any, "api.example.com"),
            (Namespaces::Nothing, "*"),
        ]);
        assert!(l.imports("a", "edition.cnn.com"));
        assert!(!l.imports("b", "edition.cnn.com"));
        assert!(l.imports("b", "api.example.com"));
        assert!(!l.imports("b", "other.example.com"));
        assert!(EgressListener::everything().imports("x", "anything.at.all"));
    }

    #[test]
    fn port_listener_before_catch_all() {
        let mut p = listener(&[(Namespaces::Any, "a.com")]);
        p.port = Some(443);
        let scope = Scope {
            sidecar: None,
            listeners: vec![listener(&[(Namespaces::Any, "*")]), p],
        };
        assert_eq!(scope.listener_for(443).and_then(|l| l.port), Some(443));
        assert_eq!(scope.listener_for(80).and_then(|l| l.port), None);
        let only_port = Scope {
            sidecar: None,
            listeners: vec![EgressListener {
                port: Some(443),
                ..EgressListener::everything()
            }],
        };
        assert!(only_port.listener_for(80).is_none());
    }
}
