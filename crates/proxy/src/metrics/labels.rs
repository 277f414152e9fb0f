//! Istio's standard label set, computed from a finished request's or connection's
//! [`crate::accesslog::LogEntry`], in the order `istio_stats` emits it.
//!
//! `destination_service*` come from the upstream cluster's name (`outbound|<port>|<subset>|<host>`):
//! the host is `destination_service`; an in-cluster host (`<name>.<ns>.svc.<domain>`) gives
//! `destination_service_name`/`destination_service_namespace`, any other host is its own
//! service name with namespace `unknown` (the ServiceEntry's namespace is not part of the
//! cluster name). `BlackHoleCluster` and `PassthroughCluster` are their own service names.
//! The route names of the outbound policy's catch-alls name their cluster whatever was
//! connected (`block_all` is `BlackHoleCluster`, `allow_any` is `PassthroughCluster`), and
//! with host-header fallback (sidecars) the request's Host is their `destination_service`.
//! Workload labels a gateway cannot know about external destinations are `unknown`; canonical
//! revisions default to `latest`.
//!
//! These are the labels of Istio's client-side reporter (`Reporter::ClientSidecar` in
//! istio/proxy's `istio_stats`, what sidecar outbound listeners and ordinary gateways use):
//! the `source_*` workload labels are the proxy's own; `source_principal` is the URI SAN of
//! the certificate the proxy presented upstream (its workload identity on ISTIO_MUTUAL
//! clusters, `unknown` otherwise, the downstream peer never); `connection_security_policy` is
//! `unknown` (Istio only decides it on the server side). `destination_principal` and the
//! destination workload labels would come from the upstream's certificate and peer metadata
//! exchange, which this proxy does not record: `unknown`.

/// The label names of the HTTP metrics, in Istio's order.
pub const HTTP_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
];

/// The label names of the TCP metrics: the HTTP set without `response_code` and
/// `grpc_response_status`.
pub const TCP_LABELS: [&str; 23] = {
    let mut out = [""; 23];
    let mut i = 0;
    while i < 23 {
        out[i] = HTTP_LABELS[i];
        i += 1;
    }
    out
};

/// What is not known about a peer.
pub const UNKNOWN: &str = "unknown";

/// Istio's canonical revision when none is known.
pub const LATEST: &str = "latest";

/// The reporting workload itself (the gateway Pod): its `source_*` labels when it reports as
/// `source`. Every field defaults to `unknown` (`latest` for the canonical revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWorkload {
    /// Workload name (`istio-egressgateway`).
    pub workload: String,
    /// Workload namespace.
    pub namespace: String,
    /// SPIFFE identity (`spiffe://cluster.local/ns/<ns>/sa/<sa>`): `source_principal` when an
    /// upstream connection presents the workload certificate.
    pub principal: String,
    /// `app` label.
    pub app: String,
    /// `version` label.
    pub version: String,
    /// `service.istio.io/canonical-name`.
    pub canonical_service: String,
    /// `service.istio.io/canonical-revision`.
    pub canonical_revision: String,
    /// Cluster id.
    pub cluster: String,
}

impl Default for LocalWorkload {
    fn default() -> Self {
        LocalWorkload {
            workload: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: LATEST.into(),
            cluster: UNKNOWN.into(),
        }
    }
}

impl LocalWorkload {
    /// A workload's own labels from its namespace and Pod labels, as Istio reads them: `app`,
    /// `version`, and the canonical service and revision labels
    /// (`service.istio.io/canonical-name`/`-revision`) falling back to `app` and `version`.
    /// The principal comes from the certificate ([`LocalWorkload::with_identity`]).
    pub fn from_pod_labels(
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let label = |k: &str| labels.get(k).cloned();
        let app = label("app");
        let version = label("version");
        let defaults = LocalWorkload::default();
        LocalWorkload {
            namespace: namespace.to_owned(),
            canonical_service: label("service.istio.io/canonical-name")
                .or_else(|| app.clone())
                .unwrap_or(defaults.canonical_service),
            canonical_revision: label("service.istio.io/canonical-revision")
                .or_else(|| version.clone())
                .unwrap_or(defaults.canonical_revision),
            app: app.unwrap_or(defaults.app),
            version: version.unwrap_or(defaults.version),
            ..defaults
        }
    }

    /// These labels completed from the workload certificate: its SPIFFE id becomes the
    /// principal and, when no namespace was given, names it
    /// (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`). Labels already set
    /// are kept.
    pub fn with_identity(mut self, identity: Option<&egress_identity::IdentityHandle>) -> Self {
        let Some(id) = identity.and_then(egress_identity::IdentityHandle::spiffe_id) else {
            return self;
        };
        if self.namespace == UNKNOWN
            && let Some(ns) = spiffe_namespace(&id)
        {
            self.namespace = ns.to_owned();
        }
        if self.principal == UNKNOWN {
            self.principal = id;
        }
        self
    }
}

/// The namespace of a SPIFFE id (`…/ns/<namespace>/sa/…`), as Istio reads it.
fn spiffe_namespace(id: &str) -> Option<&str> {
    id.split_once("/ns/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|ns| !ns.is_empty())
}

/// `destination_service`, `destination_service_name`, `destination_service_namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationService {
    /// `destination_service`.
    pub service: String,
    /// `destination_service_name`.
    pub name: String,
    /// `destination_service_namespace`.
    pub namespace: String,
}

/// The destination service of `cluster`. `fallback` (the request's authority) is used as
/// `destination_service` when the cluster names no service and host fallback is on
/// (sidecars; gateways turn it off).
pub fn destination_service(cluster: Option<&str>, fallback: Option<&str>) -> DestinationService {
    let fallback_host = || {
        fallback
            .map(strip_port)
            .filter(|h| !h.is_empty())
            .unwrap_or(UNKNOWN)
            .to_owned()
    };
    let Some(cluster) = cluster.filter(|c| !c.is_empty()) else {
        return DestinationService {
            service: fallback_host(),
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
        };
    };
    if matches!(cluster, "BlackHoleCluster" | "PassthroughCluster")
        || cluster.starts_with("InboundPassthroughCluster")
    {
        return DestinationService {
            service: fallback_host(),
            name: cluster.to_owned(),
            namespace: UNKNOWN.into(),
        };
    }
    let host = cluster
        .splitn(4, '|')
        .nth(3)
        .filter(|h| cluster.starts_with("outbound|") && !h.is_empty());
    let Some(host) = host else {
        return DestinationService {
            service: fallback_host(),
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
        };
    };
    let parts: Vec<&str> = host.split('.').collect();
    let (name, namespace) = if parts.len() >= 4 && parts[2] == "svc" {
        (parts[0].to_owned(), parts[1].to_owned())
    } else {
        (host.to_owned(), UNKNOWN.to_owned())
    };
    DestinationService {
        service: host.to_owned(),
        name,
        namespace,
    }
}

/// `host:port` → `host` (IPv6 literals in brackets keep their brackets).
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// How label values are derived beyond the entry itself.
#[derive(Debug, Clone)]
pub struct LabelSettings {
    /// `reporter` (`source` for gateways and sidecar outbound).
    pub reporter: String,
    /// Use the request authority as `destination_service` when the cluster names none.
    pub host_header_fallback: bool,
    /// The reporting workload.
    pub local: LocalWorkload,
}

impl LabelSettings {
    /// True when the reporter is the client side (`source`): gateways and sidecar outbound.
    pub fn is_source(&self) -> bool {
        self.reporter == SOURCE
    }
}

/// Istio's client-side reporter.
pub const SOURCE: &str = "source";

/// `connection_security_policy`. Istio's `istio_stats` filter only decides it on the server
/// side (`reporter="destination"`, and waypoints): `mutual_tls` when both the peer and the
/// local certificate carry a URI SAN, else `none`. For the client side
/// (`Reporter::ClientSidecar`, which is also what ordinary gateways are) the policy is never
/// set and the label is `unknown`, whatever the upstream connection's TLS.
pub fn connection_security_policy(reporter: &str, peer: Option<&str>) -> &'static str {
    match (reporter, peer) {
        (SOURCE, _) => UNKNOWN,
        (_, Some(_)) => "mutual_tls",
        (_, None) => "none",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn dest(cluster: Option<&str>, fallback: Option<&str>) -> (String, String, String) {
        let d = destination_service(cluster, fallback);
        (d.service, d.name, d.namespace)
    }

    #[test]
    fn destination_from_cluster_names() {
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            dest(Some("outbound|80||edition.cnn.com"), None),
            s("edition.cnn.com", "edition.cnn.com", "unknown")
        );
        assert_eq!(
            dest(
                Some("outbound|80|v1|reviews.bookinfo.svc.cluster.local"),
                None
            ),
            s("reviews.bookinfo.svc.cluster.local", "reviews", "bookinfo")
        );
        assert_eq!(
            dest(Some("PassthroughCluster"), None),
            s("unknown", "PassthroughCluster", "unknown")
        );
        assert_eq!(
            dest(Some("BlackHoleCluster"), Some("x.example.com:8080")),
            s("x.example.com", "BlackHoleCluster", "unknown")
        );
        assert_eq!(dest(None, None), s("unknown", "unknown", "unknown"));
        assert_eq!(
            dest(None, Some("[::1]:80")),
            s("[::1]", "unknown", "unknown")
        );
    }

    #[test]
    fn spiffe_ids_name_their_namespace() {
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/ns/aks-istio-egress/sa/gw"),
            Some("aks-istio-egress")
        );
        assert_eq!(spiffe_namespace("spiffe://cluster.local/ns//sa/x"), None);
        assert_eq!(spiffe_namespace("spiffe://cluster.local/sa/x"), None);
    }

    #[test]
    fn security_policy_by_reporter() {
        assert_eq!(connection_security_policy("source", Some("x")), "unknown");
        assert_eq!(
            connection_security_policy("destination", Some("x")),
            "mutual_tls"
        );
        assert_eq!(connection_security_policy("destination", None), "none");
    }
}
