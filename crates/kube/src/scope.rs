//! What a gateway watches: one list+watch per kind and namespace, each as narrow as correctness
//! allows, so a gateway never watches the whole cluster for objects it cannot use.
//!
//! | kind | scope | why |
//! |---|---|---|
//! | Gateway, VirtualService, DestinationRule, ServiceEntry, Sidecar | all namespaces, or only the `--watch-namespace` list plus the own and root namespaces | Istio's default: any namespace may configure a gateway (`exportTo`, Gateway selectors) |
//! | AuthorizationPolicy, Telemetry | own namespace + root namespace | only those can select the instance |
//! | Service, Pod | own namespace | the gateway's own Service ports and the endpoints of Services it serves |
//! | Secret | own namespace | `credentialName` is read from the gateway's namespace only |
//! | ConfigMap | root namespace, `fieldSelector=metadata.name=istio-shared-configmap-<rev>` when the revision is known (else the root namespace's ConfigMaps) | the shared MeshConfig of the instance's revision |

use egress_model::kinds::{self, KindInfo};
use kube::core::ApiResource;

/// Istio's root namespace on AKS (mesh-wide policy and the shared MeshConfig live here).
pub const ROOT_NAMESPACE: &str = egress_model::resources::core::MESH_CONFIG_NAMESPACE;

/// What kind of proxy watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// An egress gateway: the Services and Pods of its own namespace are all it serves by.
    #[default]
    Gateway,
    /// A workload's sidecar: every Service (and its Pods) is a destination it may route to,
    /// so Services and Pods are watched where the routing kinds are.
    Sidecar,
}

/// Who is watching: the instance's namespace, its control-plane revision, the namespaces it
/// is told to read routing configuration from, and what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The instance's own namespace.
    pub namespace: String,
    /// Control-plane revision (`asm-1-24`): selects the shared MeshConfig by name.
    pub revision: Option<String>,
    /// Namespaces for the routing kinds; empty means all namespaces (Istio's default).
    pub watch_namespaces: Vec<String>,
    /// A gateway or a sidecar.
    pub workload: Workload,
}

/// Where one watch looks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// Every namespace (`/apis/<group>/<version>/<plural>`).
    All,
    /// One namespace (`.../namespaces/<ns>/<plural>`).
    One(String),
}

/// One list+watch: a kind, a namespace and the selectors sent to the API server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchSpec {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// The `Kind`.
    pub kind: &'static str,
    /// Where.
    pub namespace: Namespace,
    /// `fieldSelector`, if any.
    pub field_selector: Option<String>,
    /// `labelSelector`, if any.
    pub label_selector: Option<String>,
}

impl WatchSpec {
    /// The model's description of the kind.
    pub fn info(&self) -> Option<&'static KindInfo> {
        kinds::for_kind(self.group, self.kind)
    }

    /// The resource as the API serves it (preferred version), without discovery.
    pub fn api_resource(&self) -> Option<ApiResource> {
        let info = self.info()?;
        let version = info.versions.first()?;
        let api_version = if info.group.is_empty() {
            (*version).to_owned()
        } else {
            format!("{}/{version}", info.group)
        };
        Some(ApiResource {
            group: info.group.to_owned(),
            version: (*version).to_owned(),
            api_version,
            kind: info.kind.to_owned(),
            plural: info.plural.to_owned(),
        })
    }

    /// A short name for logs: `VirtualService in all namespaces`.
    pub fn describe(&self) -> String {
        let mut s = match &self.namespace {
            Namespace::All => format!("{} in all namespaces", self.kind),
            Namespace::One(ns) => format!("{} in {ns}", self.kind),
        };
        if let Some(f) = &self.field_selector {
            s.push_str(&format!(" ({f})"));
        }
        s
    }
}

/// Routing kinds read from every namespace (or the `--watch-namespace` list).
pub const ROUTING_KINDS: &[(&str, &str)] = &[
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "Sidecar"),
];

/// Policy kinds read from the own and the root namespace.
pub const POLICY_KINDS: &[(&str, &str)] = &[
    ("security.istio.io", "AuthorizationPolicy"),
    ("telemetry.istio.io", "Telemetry"),
];

/// Kinds read from the own namespace only.
pub const LOCAL_KINDS: &[(&str, &str)] = &[("", "Service"), ("", "Pod"), ("", "Secret")];

/// Name of the shared MeshConfig ConfigMap of a revision.
pub fn mesh_config_name(revision: &str) -> String {
    format!(
        "{}{revision}",
        egress_model::resources::core::SHARED_MESH_CONFIG_PREFIX
    )
}

/// Every watch a gateway with `scope` runs, in a stable order, without duplicates.
pub fn plan(scope: &Scope) -> Vec<WatchSpec> {
    let spec = |(group, kind): &(&'static str, &'static str), namespace: Namespace| WatchSpec {
        group,
        kind,
        namespace,
        field_selector: None,
        label_selector: None,
    };
    let own_and_root = || {
        let mut v = vec![scope.namespace.clone(), ROOT_NAMESPACE.to_owned()];
        v.sort();
        v.dedup();
        v
    };
    let mut out = Vec::new();
    let routing: Vec<Namespace> = if scope.watch_namespaces.is_empty() {
        vec![Namespace::All]
    } else {
        let mut v = own_and_root();
        v.extend(scope.watch_namespaces.iter().cloned());
        v.sort();
        v.dedup();
        v.into_iter().map(Namespace::One).collect()
    };
    for k in ROUTING_KINDS {
        out.extend(routing.iter().map(|ns| spec(k, ns.clone())));
    }
    for k in POLICY_KINDS {
        out.extend(
            own_and_root()
                .into_iter()
                .map(|ns| spec(k, Namespace::One(ns))),
        );
    }
    for k in LOCAL_KINDS {
        let destinations = matches!(k.1, "Service" | "Pod");
        if destinations && scope.workload == Workload::Sidecar {
            out.extend(routing.iter().map(|ns| spec(k, ns.clone())));
        } else {
            out.push(spec(k, Namespace::One(scope.namespace.clone())));
        }
    }
    let mut mesh = spec(
        &("", "ConfigMap"),
        Namespace::One(ROOT_NAMESPACE.to_owned()),
    );
    mesh.field_selector = scope
        .revision
        .as_deref()
        .map(|r| format!("metadata.name={}", mesh_config_name(r)));
    out.push(mesh);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(ns: &str, watch: &[&str]) -> Scope {
        Scope {
            namespace: ns.into(),
            revision: Some("asm-1-24".into()),
            watch_namespaces: watch.iter().map(|s| (*s).to_owned()).collect(),
            workload: Workload::Gateway,
        }
    }

    #[test]
    fn sidecars_watch_every_services_destinations() {
        let mut sc = scope("apps", &[]);
        sc.workload = Workload::Sidecar;
        let p = plan(&sc);
        for kind in ["Service", "Pod"] {
            let w: Vec<_> = p.iter().filter(|s| s.kind == kind).collect();
            assert_eq!(w.len(), 1);
            assert_eq!(w[0].namespace, Namespace::All, "{kind}");
        }
        let secrets: Vec<_> = p.iter().filter(|s| s.kind == "Secret").collect();
        assert_eq!(secrets[0].namespace, Namespace::One("apps".into()));
    }

    #[test]
    fn routing_kinds_watch_all_namespaces_by_default() {
        let p = plan(&scope("aks-istio-egress", &[]));
        let gw: Vec<_> = p.iter().filter(|s| s.kind == "Gateway").collect();
        assert_eq!(gw.len(), 1);
        assert_eq!(gw[0].namespace, Namespace::All);
        let secrets: Vec<_> = p.iter().filter(|s| s.kind == "Secret").collect();
        assert_eq!(
            secrets[0].namespace,
            Namespace::One("aks-istio-egress".into())
        );
        let ap: Vec<_> = p
            .iter()
            .filter(|s| s.kind == "AuthorizationPolicy")
            .map(|s| s.namespace.clone())
            .collect();
        assert_eq!(
            ap,
            vec![
                Namespace::One("aks-istio-egress".into()),
                Namespace::One("aks-istio-system".into())
            ]
        );
    }

    #[test]
    fn watch_namespaces_always_include_own_and_root() {
        let p = plan(&scope("egress", &["apps", "egress"]));
        let vs: Vec<_> = p
            .iter()
            .filter(|s| s.kind == "VirtualService")
            .map(|s| s.namespace.clone())
            .collect();
        assert_eq!(
            vs,
            ["aks-istio-system", "apps", "egress"]
                .map(|n| Namespace::One(n.into()))
                .to_vec()
        );
    }

    #[test]
    fn mesh_config_is_selected_by_name_when_the_revision_is_known() {
        let p = plan(&scope("egress", &[]));
        let cm = p.iter().find(|s| s.kind == "ConfigMap").unwrap();
        assert_eq!(cm.namespace, Namespace::One("aks-istio-system".into()));
        assert_eq!(
            cm.field_selector.as_deref(),
            Some("metadata.name=istio-shared-configmap-asm-1-24")
        );
        let mut s = scope("egress", &[]);
        s.revision = None;
        let p = plan(&s);
        let cm = p.iter().find(|s| s.kind == "ConfigMap").unwrap();
        assert_eq!(cm.field_selector, None);
    }

    #[test]
    fn every_kind_has_an_api_resource() {
        for s in plan(&scope("egress", &[])) {
            let ar = s.api_resource().unwrap();
            assert!(!ar.plural.is_empty(), "{s:?}");
        }
        let vs = plan(&scope("egress", &[]))
            .into_iter()
            .find(|s| s.kind == "VirtualService")
            .unwrap();
        assert_eq!(
            vs.api_resource().unwrap().api_version,
            "networking.istio.io/v1"
        );
    }
}
