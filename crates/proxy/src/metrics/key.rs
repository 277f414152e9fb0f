//! A series' identity: what distinguishes one label set from another, taken from a finished
//! request's or connection's [`LogEntry`] without allocating ([`KeyRef`]), owned only when a
//! new series is created ([`SeriesKey`]), and expanded into label values at render time.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use super::labels::{
    LATEST, LabelSettings, UNKNOWN, connection_security_policy, destination_service,
};
use crate::accesslog::{LogEntry, ResponseFlags};

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

/// The cluster whose name gives `destination_service_name`: Istio reads the route name first
/// (`block_all` is `BlackHoleCluster`, `allow_any` is `PassthroughCluster`, whatever was or
/// was not connected), then the upstream cluster.
fn effective_cluster(entry: &LogEntry) -> Option<&str> {
    match entry.route_name.as_deref() {
        Some("block_all") => Some("BlackHoleCluster"),
        Some("allow_any") => Some("PassthroughCluster"),
        _ => entry.upstream_cluster.as_deref(),
    }
}

/// What distinguishes one series from another, borrowed from an entry: looking a series up
/// allocates nothing; only a new series is copied into a [`SeriesKey`]. The full label values
/// are derived when the exposition is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRef<'a> {
    cluster: Option<&'a str>,
    /// The authority, kept only when host-header fallback is on.
    authority: Option<&'a str>,
    /// The downstream peer, kept only for a `destination` reporter.
    peer: Option<&'a str>,
    /// The upstream connection presents the workload certificate (ISTIO_MUTUAL).
    upstream_mtls: bool,
    protocol: &'static str,
    flags: ResponseFlags,
    code: u16,
    grpc_status: Option<&'a str>,
}

impl<'a> KeyRef<'a> {
    /// The key of `entry`'s series. `mtls` says whether a cluster originates ISTIO_MUTUAL.
    pub fn of(
        entry: &'a LogEntry,
        settings: &LabelSettings,
        mtls: impl FnOnce(&str) -> bool,
    ) -> KeyRef<'a> {
        let protocol = request_protocol(entry);
        let cluster = effective_cluster(entry).filter(|c| !c.is_empty());
        KeyRef {
            cluster,
            // A connection's name is its SNI when no Host was seen (a sidecar's TLS
            // passthrough or black hole: the requested name, not `unknown`).
            authority: entry
                .authority
                .as_deref()
                .or_else(|| {
                    entry
                        .requested_server_name
                        .as_deref()
                        .filter(|_| protocol == "tcp")
                })
                .filter(|_| settings.host_header_fallback),
            peer: entry
                .peer_uri_san
                .as_deref()
                .filter(|p| !p.is_empty() && !settings.is_source()),
            upstream_mtls: cluster.is_some_and(mtls),
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
                .filter(|_| protocol == "grpc"),
        }
    }

    /// True for a TCP connection's series.
    pub fn is_tcp(&self) -> bool {
        self.protocol == "tcp"
    }

    /// The owned key (allocates the strings).
    pub fn to_owned_key(&self) -> SeriesKey {
        SeriesKey {
            cluster: self.cluster.map(Box::from),
            authority: self.authority.map(Box::from),
            peer: self.peer.map(Box::from),
            upstream_mtls: self.upstream_mtls,
            protocol: self.protocol,
            flags: self.flags,
            code: self.code,
            grpc_status: self.grpc_status.map(Box::from),
        }
    }
}

/// A series' identity, owned (see [`KeyRef`]).
#[derive(Debug, Clone)]
pub struct SeriesKey {
    cluster: Option<Box<str>>,
    authority: Option<Box<str>>,
    peer: Option<Box<str>>,
    upstream_mtls: bool,
    protocol: &'static str,
    flags: ResponseFlags,
    code: u16,
    grpc_status: Option<Box<str>>,
}

/// The view a map of [`SeriesKey`]s is looked up by (so a [`KeyRef`] finds an owned key).
pub trait AsKeyRef {
    /// The borrowed key.
    fn key_ref(&self) -> KeyRef<'_>;
}

impl AsKeyRef for SeriesKey {
    fn key_ref(&self) -> KeyRef<'_> {
        KeyRef {
            cluster: self.cluster.as_deref(),
            authority: self.authority.as_deref(),
            peer: self.peer.as_deref(),
            upstream_mtls: self.upstream_mtls,
            protocol: self.protocol,
            flags: self.flags,
            code: self.code,
            grpc_status: self.grpc_status.as_deref(),
        }
    }
}

impl AsKeyRef for KeyRef<'_> {
    fn key_ref(&self) -> KeyRef<'_> {
        *self
    }
}

impl<'a> Borrow<dyn AsKeyRef + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn AsKeyRef + 'a) {
        self
    }
}

impl Hash for dyn AsKeyRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_ref().hash(state);
    }
}

impl PartialEq for dyn AsKeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key_ref() == other.key_ref()
    }
}

impl Eq for dyn AsKeyRef + '_ {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_ref().hash(state);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_ref() == other.key_ref()
    }
}

impl Eq for SeriesKey {}

impl SeriesKey {
    /// The key of `entry`'s series (no cluster originates ISTIO_MUTUAL).
    pub fn of(entry: &LogEntry, settings: &LabelSettings) -> SeriesKey {
        KeyRef::of(entry, settings, |_| false).to_owned_key()
    }

    /// True for a TCP connection's series.
    pub fn is_tcp(&self) -> bool {
        self.protocol == "tcp"
    }

    /// The label values: in [`super::HTTP_LABELS`] order for a request, in
    /// [`super::TCP_LABELS`] order (23 values) for a connection.
    ///
    /// As Istio's client-side reporter: the `source_*` labels are the reporting workload's;
    /// `source_principal` is its identity only when the upstream connection presented it
    /// (ISTIO_MUTUAL), else `unknown`; the `destination_*` workload labels are `unknown`
    /// (no peer metadata exchange). A `destination` reporter shows the downstream peer as
    /// `source_principal`.
    pub fn values(&self, settings: &LabelSettings) -> Vec<String> {
        let local = &settings.local;
        let dest = destination_service(self.cluster.as_deref(), self.authority.as_deref());
        let peer = self.peer.as_deref();
        let principal = if settings.is_source() {
            if self.upstream_mtls {
                local.principal.as_str()
            } else {
                UNKNOWN
            }
        } else {
            peer.unwrap_or(UNKNOWN)
        };
        let mut out: Vec<String> = vec![
            settings.reporter.clone(),
            local.workload.clone(),
            local.namespace.clone(),
            principal.to_owned(),
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
            out.push(self.grpc_status.as_deref().unwrap_or_default().to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::metrics::labels::{HTTP_LABELS, LocalWorkload, TCP_LABELS};

    #[test]
    fn label_sets_line_up() {
        assert_eq!(TCP_LABELS[22], "connection_security_policy");
        let settings = LabelSettings {
            reporter: "source".into(),
            host_header_fallback: false,
            local: LocalWorkload::default(),
        };
        let tcp = SeriesKey::of(&LogEntry::default(), &settings).values(&settings);
        assert_eq!(tcp.len(), TCP_LABELS.len());
        assert_eq!(tcp[20], "tcp");
        let http = LogEntry {
            protocol: Some("HTTP/1.1".into()),
            response_code: 404,
            peer_uri_san: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            ..LogEntry::default()
        };
        let v = SeriesKey::of(&http, &settings).values(&settings);
        assert_eq!(v.len(), HTTP_LABELS.len());
        assert_eq!(
            v[3], "unknown",
            "the downstream peer is not the source principal"
        );
        assert_eq!(v[20], "http");
        assert_eq!(v[21], "-");
        assert_eq!(v[22], "unknown");
        assert_eq!(v[23], "404");
        assert_eq!(v[24], "");
    }

    fn settings(reporter: &str, fallback: bool) -> LabelSettings {
        LabelSettings {
            reporter: reporter.into(),
            host_header_fallback: fallback,
            local: LocalWorkload {
                principal: "spiffe://cluster.local/ns/shop/sa/web".into(),
                ..LocalWorkload::default()
            },
        }
    }

    #[test]
    fn source_principal_is_the_local_identity_only_over_istio_mutual() {
        let source = settings("source", false);
        let entry = LogEntry {
            upstream_cluster: Some("outbound|443|cnn|gw.ns.svc.cluster.local".into()),
            peer_uri_san: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            ..LogEntry::default()
        };
        let mtls = KeyRef::of(&entry, &source, |c| c.contains("|cnn|")).to_owned_key();
        assert_eq!(
            mtls.values(&source)[3],
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        let plain = KeyRef::of(&entry, &source, |_| false).to_owned_key();
        assert_eq!(plain.values(&source)[3], "unknown");
        assert_eq!(plain.values(&source)[22], "unknown");
        let destination = settings("destination", false);
        let inbound = KeyRef::of(&entry, &destination, |_| false).to_owned_key();
        assert_eq!(
            inbound.values(&destination)[3],
            "spiffe://cluster.local/ns/a/sa/b"
        );
        assert_eq!(inbound.values(&destination)[22], "mutual_tls");
    }

    #[test]
    fn catch_all_routes_name_their_cluster_and_fallback_keeps_the_host() {
        let sidecar = settings("source", true);
        let blocked = LogEntry {
            protocol: Some("HTTP/1.1".into()),
            authority: Some("blocked.example.com".into()),
            route_name: Some("block_all".into()),
            response_code: 502,
            ..LogEntry::default()
        };
        let v = SeriesKey::of(&blocked, &sidecar).values(&sidecar);
        assert_eq!(v[14], "blocked.example.com");
        assert_eq!(v[15], "BlackHoleCluster");
        let gateway = settings("source", false);
        let v = SeriesKey::of(&blocked, &gateway).values(&gateway);
        assert_eq!(v[14], "unknown", "no host-header fallback at gateways");
    }

    #[test]
    fn borrowed_and_owned_keys_find_each_other() {
        use std::collections::HashMap;
        let s = settings("source", true);
        let entry = LogEntry {
            protocol: Some("HTTP/1.1".into()),
            authority: Some("a.example.com".into()),
            upstream_cluster: Some("PassthroughCluster".into()),
            response_code: 200,
            ..LogEntry::default()
        };
        let mut map: HashMap<SeriesKey, u32> = HashMap::new();
        map.insert(SeriesKey::of(&entry, &s), 1);
        let key = KeyRef::of(&entry, &s, |_| false);
        assert_eq!(map.get(&key as &dyn AsKeyRef), Some(&1));
        let other = LogEntry {
            response_code: 503,
            ..entry.clone()
        };
        let key = KeyRef::of(&other, &s, |_| false);
        assert_eq!(map.get(&key as &dyn AsKeyRef), None);
    }
}
