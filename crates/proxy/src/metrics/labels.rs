//! Istio's standard label set, computed from a finished request's or connection's
//! [`LogEntry`], in the order `istio_stats` emits it.
//!
//! `destination_service*` come from the upstream cluster's name (`outbound|<port>|<subset>|<host>`):
//! the host is `destination_service`; an in-cluster host (`<name>.<ns>.svc.<domain>`) gives
//! `destination_service_name`/`destination_service_namespace`, any other host is its own
//! service name with namespace `unknown` (the ServiceEntry's namespace is not part of the
//! cluster name). `BlackHoleCluster` and `PassthroughCluster` are their own service names.
//! Workload labels a gateway cannot know about external destinations are `unknown`; canonical
//! revisions default to `latest`.

use crate::accesslog::{LogEntry, ResponseFlags};

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
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: LATEST.into(),
            cluster: UNKNOWN.into(),
        }
    }
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

/// `connection_security_policy`: a `source` reporter cannot know the policy and says
/// `unknown` (as Istio documents); a `destination` reporter says `mutual_tls` when the
/// downstream presented a mesh identity, else `none`.
pub fn connection_security_policy(reporter: &str, peer: Option<&str>) -> &'static str {
    match (reporter, peer) {
        ("source", _) => UNKNOWN,
        (_, Some(_)) => "mutual_tls",
        (_, None) => "none",
    }
}

/// `http`, `grpc` (request `content-type: application/grpc…`), or `tcp`.
fn request_protocol(entry: &LogEntry) -> &'static str {
    if entry.protocol.is_none() {
        return "tcp";
    }
    let grpc = entry
        .request_headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc { "grpc" } else { "http" }
}

/// What distinguishes one series from another, taken from an entry with few allocations; the
/// full label values are derived from it when the exposition is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    cluster: Option<String>,
    /// The authority, kept only when host-header fallback is on.
    authority: Option<String>,
    peer: Option<String>,
    protocol: &'static str,
    flags: ResponseFlags,
    code: u16,
    grpc_status: Option<String>,
}

impl SeriesKey {
    /// The key of `entry`'s series.
    pub fn of(entry: &LogEntry, host_header_fallback: bool) -> SeriesKey {
        let protocol = request_protocol(entry);
        SeriesKey {
            cluster: entry.upstream_cluster.clone(),
            authority: entry.authority.clone().filter(|_| host_header_fallback),
            peer: entry.peer_uri_san.clone().filter(|p| !p.is_empty()),
            protocol,
            flags: entry.response_flags,
            code: if protocol == "tcp" {
                0
            } else {
                entry.response_code
            },
            grpc_status: entry
                .response_headers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .filter(|_| protocol == "grpc")
                .map(str::to_owned),
        }
    }

    /// True for a TCP connection's series.
    pub fn is_tcp(&self) -> bool {
        self.protocol == "tcp"
    }

    /// The label values: in [`HTTP_LABELS`] order for a request, in [`TCP_LABELS`] order
    /// (23 values) for a connection.
    pub fn values(&self, settings: &LabelSettings) -> Vec<String> {
        let local = &settings.local;
        let dest = destination_service(self.cluster.as_deref(), self.authority.as_deref());
        let peer = self.peer.as_deref();
        let mut out: Vec<String> = vec![
            settings.reporter.clone(),
            local.workload.clone(),
            local.namespace.clone(),
            peer.unwrap_or(UNKNOWN).to_owned(),
            local.app.clone(),
            local.version.clone(),
            local.canonical_service.clone(),
            local.canonical_revision.clone(),
            local.cluster.clone(),
            UNKNOWN.into(),
            UNKNOWN.into(),
            UNKNOWN.into(),
            UNKNOWN.into(),
            UNKNOWN.into(),
            dest.service,
            dest.name,
            dest.namespace,
            UNKNOWN.into(),
            LATEST.into(),
            UNKNOWN.into(),
            self.protocol.into(),
            self.flags.to_string(),
            connection_security_policy(&settings.reporter, peer).into(),
        ];
        if !self.is_tcp() {
            out.push(self.code.to_string());
            out.push(self.grpc_status.clone().unwrap_or_default());
        }
        out
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
    fn label_sets_line_up() {
        assert_eq!(TCP_LABELS[22], "connection_security_policy");
        let settings = LabelSettings {
            reporter: "source".into(),
            host_header_fallback: false,
            local: LocalWorkload::default(),
        };
        let tcp = SeriesKey::of(&LogEntry::default(), false).values(&settings);
        assert_eq!(tcp.len(), TCP_LABELS.len());
        assert_eq!(tcp[20], "tcp");
        let http = LogEntry {
            protocol: Some("HTTP/1.1".into()),
            response_code: 404,
            peer_uri_san: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            ..LogEntry::default()
        };
        let v = SeriesKey::of(&http, false).values(&settings);
        assert_eq!(v.len(), HTTP_LABELS.len());
        assert_eq!(v[3], "spiffe://cluster.local/ns/a/sa/b");
        assert_eq!(v[20], "http");
        assert_eq!(v[21], "-");
        assert_eq!(v[22], "unknown");
        assert_eq!(v[23], "404");
        assert_eq!(v[24], "");
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
