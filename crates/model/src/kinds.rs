//! The kinds egress knows: API groups, versions, plural and short names, scope.

/// One kind as the API server would describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    /// `Kind` as written in manifests.
    pub kind: &'static str,
    /// Lower-case plural resource name (`serviceentries`).
    pub plural: &'static str,
    /// Lower-case singular name (`serviceentry`).
    pub singular: &'static str,
    /// kubectl short names (`se`).
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl KindInfo {
    /// `apiVersion` for the preferred version (`networking.istio.io/v1`, `v1`).
    pub fn api_version(&self) -> String {
        let v = self.versions.first().copied().unwrap_or("v1");
        if self.group.is_empty() {
            v.to_owned()
        } else {
            format!("{}/{v}", self.group)
        }
    }

    /// `plural.group` as kubectl prints in `-o name` (`serviceentry.networking.istio.io`).
    pub fn qualified_singular(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_owned()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }
}

const ISTIO_NET: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const ISTIO_SEC: &[&str] = &["v1", "v1beta1"];
const ISTIO_TEL: &[&str] = &["v1", "v1alpha1"];

macro_rules! kind {
    ($group:expr, $versions:expr, $kind:literal, $plural:literal, $singular:literal, [$($short:literal),*], $ns:expr) => {
        KindInfo { group: $group, versions: $versions, kind: $kind, plural: $plural, singular: $singular, short_names: &[$($short),*], namespaced: $ns }
    };
}

/// Every kind egress decodes.
pub static KINDS: &[KindInfo] = &[
    kind!(
        "networking.istio.io",
        ISTIO_NET,
        "ServiceEntry",
        "serviceentries",
        "serviceentry",
        ["se"],
        true
    ),
    kind!(
        "networking.istio.io",
        ISTIO_NET,
        "Gateway",
        "gateways",
        "gateway",
        ["gw"],
        true
    ),
    kind!(
        "networking.istio.io",
        ISTIO_NET,
        "VirtualService",
        "virtualservices",
        "virtualservice",
        ["vs"],
        true
    ),
    kind!(
        "networking.istio.io",
        ISTIO_NET,
        "DestinationRule",
        "destinationrules",
        "destinationrule",
        ["dr"],
        true
    ),
    kind!(
        "networking.istio.io",
        ISTIO_NET,
        "Sidecar",
        "sidecars",
        "sidecar",
        [],
        true
    ),
    kind!(
        "security.istio.io",
        ISTIO_SEC,
        "AuthorizationPolicy",
        "authorizationpolicies",
        "authorizationpolicy",
        ["ap"],
        true
    ),
    kind!(
        "security.istio.io",
        ISTIO_SEC,
        "PeerAuthentication",
        "peerauthentications",
        "peerauthentication",
        ["pa"],
        true
    ),
    kind!(
        "telemetry.istio.io",
        ISTIO_TEL,
        "Telemetry",
        "telemetries",
        "telemetry",
        ["telemetry"],
        true
    ),
    kind!(
        "egressgateway.kubernetes.azure.com",
        &["v1alpha1"],
        "StaticGatewayConfiguration",
        "staticgatewayconfigurations",
        "staticgatewayconfiguration",
        ["sgc"],
        true
    ),
    kind!(
        "",
        &["v1"],
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false
    ),
    kind!(
        "",
        &["v1"],
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true
    ),
    kind!("", &["v1"], "Secret", "secrets", "secret", [], true),
    kind!(
        "",
        &["v1"],
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true
    ),
    kind!("", &["v1"], "Service", "services", "service", ["svc"], true),
    kind!("", &["v1"], "Pod", "pods", "pod", ["po"], true),
    kind!(
        "apps",
        &["v1"],
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true
    ),
    kind!(
        "apps",
        &["v1"],
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true
    ),
    kind!("", &["v1"], "Event", "events", "event", ["ev"], true),
    kind!(
        "autoscaling",
        &["v2", "v1"],
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ["hpa"],
        true
    ),
    kind!(
        "policy",
        &["v1"],
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        ["pdb"],
        true
    ),
    kind!(
        "discovery.k8s.io",
        &["v1"],
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        [],
        true
    ),
];

/// Split `apiVersion` into (group, version): `v1` -> ("", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The kind for a manifest's `apiVersion` and `kind`, when that version is served.
pub fn for_manifest(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    let (group, version) = split_api_version(api_version);
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind && k.versions.contains(&version))
}

/// The kind for a `Kind` name in a group (any version).
pub fn for_kind(group: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

/// Resolve a resource name typed on the command line as kubectl does: plural, singular, short
/// name or kind, case-insensitive, optionally qualified with the group (`gateways.networking.istio.io`).
pub fn for_cli_name(name: &str) -> Option<&'static KindInfo> {
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_owned(), Some(g.to_owned())),
        None => (lower.clone(), None),
    };
    KINDS.iter().find(|k| {
        let names = base == k.plural
            || base == k.singular
            || base == k.kind.to_ascii_lowercase()
            || k.short_names.contains(&base.as_str());
        let group_ok = match &group {
            None => true,
            Some(g) => g == k.group || k.group.starts_with(&format!("{g}.")),
        };
        names && group_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve() {
        for (name, kind) in [
            ("svc", "Service"),
            ("se", "ServiceEntry"),
            ("vs", "VirtualService"),
            ("dr", "DestinationRule"),
            ("gw", "Gateway"),
            ("deploy", "Deployment"),
            ("cm", "ConfigMap"),
            ("ns", "Namespace"),
            ("sa", "ServiceAccount"),
            ("sgc", "StaticGatewayConfiguration"),
            ("po", "Pod"),
            ("pods", "Pod"),
            ("serviceentry", "ServiceEntry"),
            ("gateways.networking.istio.io", "Gateway"),
            ("Deployment", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("rs", "ReplicaSet"),
            ("replicasets.apps", "ReplicaSet"),
            ("ev", "Event"),
            ("events", "Event"),
            ("event", "Event"),
        ] {
            assert_eq!(for_cli_name(name).map(|k| k.kind), Some(kind), "{name}");
        }
        assert!(for_cli_name("nope").is_none());
    }

    #[test]
    fn manifests_resolve_by_served_version() {
        assert!(for_manifest("networking.istio.io/v1alpha3", "ServiceEntry").is_some());
        assert!(for_manifest("networking.istio.io/v2", "ServiceEntry").is_none());
        assert!(for_manifest("v1", "ConfigMap").is_some());
        assert!(for_manifest("apps/v1", "Deployment").is_some());
        assert!(for_manifest("apps/v1", "ReplicaSet").is_some());
        assert!(for_manifest("v1", "Event").is_some());
        assert!(
            for_manifest("events.k8s.io/v1", "Event").is_none(),
            "only the core Event is modelled"
        );
    }
}
