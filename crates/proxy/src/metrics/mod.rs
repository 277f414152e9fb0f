//! Prometheus metrics of a proxy instance, served as `/stats/prometheus` on the metrics port
//! (Istio's merged `:15020` endpoint) and on the prometheus port (Envoy's `:15090`
//! `http-envoy-prom` listener); both show the same text.
//!
//! Istio's standard metrics, with Istio's label set and default buckets, are updated from
//! every finished request and connection (the same [`LogEntry`] the access log writes, see
//! [`crate::accesslog::AccessLogger::with_metrics`]):
//!
//! * `istio_requests_total` (counter), `istio_request_duration_milliseconds`,
//!   `istio_request_bytes`, `istio_response_bytes` (histograms; bytes are body bytes);
//! * `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//!   `istio_tcp_sent_bytes_total` (to the downstream), `istio_tcp_received_bytes_total` (from
//!   the downstream);
//! * `istio_build{component="proxy",tag=<version>}` 1.
//!
//! A TCP connection is counted as opened when [`Metrics::tcp_opened`] reports it (once its
//! upstream connection is established, as Istio's `istio_stats` reports "opened" once the
//! connection is under way) and as closed when it ends; the close of a connection never
//! reported open counts both (a connection that never reached an upstream: `UH`, `UF`,
//! `BlackHoleCluster`). The closing figures use the label set of the opening, as Istio's do.
//! Byte counts are added when the connection ends (Istio also reports them periodically).
//!
//! Labels follow Istio's client-side reporter (`reporter="source"`, what gateways and sidecar
//! outbound report), see [`SeriesKey::values`]: `connection_security_policy` is `unknown`, and
//! `source_principal` is the proxy's own identity only on clusters that present it
//! (ISTIO_MUTUAL, see [`MutualTls`], prepared per configuration version).
//!
//! Gateway health figures (not Istio's): `egress_active_connections` (gauge, downstream
//! connections in flight), and the configuration figures of [`reload`].

mod key;
mod labels;
pub mod reload;
mod series;
pub(crate) mod text;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::accesslog::LogEntry;
use crate::drain::Drain;

pub use key::{AsKeyRef, KeyRef, SeriesKey};
pub use labels::{
    DestinationService, HTTP_LABELS, LATEST, LabelSettings, LocalWorkload, SOURCE, TCP_LABELS,
    UNKNOWN, connection_security_policy, destination_service,
};
pub use reload::{ReloadReport, ReloadResult};
pub use text::{BYTES_BUCKETS, CONTENT_TYPE, DURATION_BUCKETS_MS, Histogram};

use reload::Reloads;
use series::{HttpSeries, TcpSeries};

/// A connection while it is open: its downstream remote and local addresses (unique among
/// open TCP connections).
type ConnId = (SocketAddr, SocketAddr);

#[derive(Debug, Default)]
struct Series {
    http: HashMap<SeriesKey, HttpSeries>,
    tcp: HashMap<SeriesKey, TcpSeries>,
    /// Connections reported opened and not yet closed, with their label set.
    open: HashMap<ConnId, SeriesKey>,
}

/// The metrics of one proxy instance. Shared as `Arc<Metrics>`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    settings: RwLock<LabelSettings>,
    build_tag: String,
    series: Mutex<Series>,
    connections: Option<Drain>,
    config_version: AtomicU64,
    reloads: Mutex<Reloads>,
    limits: ArcSwap<Option<Arc<crate::limits::Counters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::gateway()
    }
}

/// Runs `f` on the series of `key`, created with `new` if it is the first of its label set.
/// Only a new series allocates its key.
fn with_series<T, R>(
    map: &mut HashMap<SeriesKey, T>,
    key: &KeyRef<'_>,
    new: impl FnOnce() -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    if let Some(series) = map.get_mut(key as &dyn AsKeyRef) {
        return f(series);
    }
    f(map.entry(key.to_owned_key()).or_insert_with(new))
}

/// The connection an entry describes, when its addresses are known.
fn conn_id(entry: &LogEntry) -> Option<ConnId> {
    entry
        .downstream_remote_address
        .zip(entry.downstream_local_address)
}

impl Metrics {
    /// Metrics as a gateway reports them: `reporter="source"`, no host-header fallback for
    /// `destination_service`, the local workload unknown, `tag` the crate version.
    pub fn gateway() -> Metrics {
        Metrics::new(LabelSettings {
            reporter: SOURCE.into(),
            host_header_fallback: false,
            local: LocalWorkload::default(),
        })
    }

    /// Metrics as a sidecar reports its outbound traffic: `reporter="source"`, the request's
    /// Host as `destination_service` when the cluster names no service (Istio's host-header
    /// fallback, on for sidecars), `local` as the `source_*` labels.
    pub fn sidecar(local: LocalWorkload) -> Metrics {
        Metrics::new(LabelSettings {
            reporter: SOURCE.into(),
            host_header_fallback: true,
            local,
        })
    }

    /// Metrics with explicit label settings.
    pub fn new(settings: LabelSettings) -> Metrics {
        Metrics {
            settings: RwLock::new(settings),
            build_tag: env!("CARGO_PKG_VERSION").to_owned(),
            series: Mutex::default(),
            connections: None,
            config_version: AtomicU64::new(0),
            reloads: Mutex::default(),
            limits: ArcSwap::default(),
        }
    }

    /// `egress_active_connections` reads the in-flight count of `drain`.
    pub fn with_connections(mut self, drain: Drain) -> Metrics {
        self.connections = Some(drain);
        self
    }

    /// `egress_downstream_limit_total` shows these counters from now on.
    pub fn set_limit_counters(&self, counters: Arc<crate::limits::Counters>) {
        self.limits.store(Arc::new(Some(counters)));
    }

    /// `istio_build`'s `tag` (Istio puts its version there).
    pub fn with_build_tag(mut self, tag: impl Into<String>) -> Metrics {
        self.build_tag = tag.into();
        self
    }

    /// The reporting workload's `source_*` labels from now on.
    pub fn set_local_workload(&self, local: LocalWorkload) {
        self.settings
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .local = local;
    }

    /// The reporting workload's `source_*` labels.
    pub fn local_workload(&self) -> LocalWorkload {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .local
            .clone()
    }

    /// The borrowed series key of `entry`, recorded under a configuration version whose
    /// ISTIO_MUTUAL clusters are `mutual_tls`.
    fn key<'e>(&self, entry: &'e LogEntry, mutual_tls: &MutualTls) -> KeyRef<'e> {
        let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        KeyRef::of(entry, &settings, |c| mutual_tls.contains(c))
    }

    /// Counts a TCP connection as opened now (call once its upstream connection is
    /// established; `entry` has the downstream addresses and the upstream cluster). Its close,
    /// recorded by [`Metrics::record`], then counts only as closed, with the same labels.
    /// A second report for the same open connection is ignored; an entry without
    /// downstream addresses is ignored (its close counts it).
    pub fn tcp_opened(&self, entry: &LogEntry, mutual_tls: &MutualTls) {
        let Some(id) = conn_id(entry) else {
            return;
        };
        let key = self.key(entry, mutual_tls);
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.open.contains_key(&id) {
            return;
        }
        let owned = key.to_owned_key();
        with_series(&mut series.tcp, &key, TcpSeries::default, |s| s.opened += 1);
        series.open.insert(id, owned);
    }

    /// Updates the Istio metrics from one finished request (an entry with a protocol) or TCP
    /// connection (no protocol), under a configuration version whose ISTIO_MUTUAL clusters
    /// are `mutual_tls`.
    pub fn record(&self, entry: &LogEntry, mutual_tls: &MutualTls) {
        let key = self.key(entry, mutual_tls);
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if !key.is_tcp() {
            with_series(&mut series.http, &key, HttpSeries::new, |s| {
                s.requests += 1;
                let ms = entry.duration.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                s.duration_ms.observe(ms);
                s.request_bytes.observe(entry.bytes_received as f64);
                s.response_bytes.observe(entry.bytes_sent as f64);
            });
            return;
        }
        let close = |s: &mut TcpSeries| {
            s.closed += 1;
            s.sent += entry.bytes_sent;
            s.received += entry.bytes_received;
        };
        match conn_id(entry).and_then(|id| series.open.remove(&id)) {
            Some(opened) => close(series.tcp.entry(opened).or_default()),
            None => with_series(&mut series.tcp, &key, TcpSeries::default, |s| {
                s.opened += 1;
                close(s);
            }),
        }
    }

    /// `egress_config_version`: the version of the snapshot now served.
    pub fn set_config_version(&self, version: u64) {
        self.config_version.store(version, Ordering::Relaxed);
    }

    /// Counts one configuration reload and remembers its result (version unknown).
    pub fn record_reload(&self, result: ReloadResult) {
        let error = match result {
            ReloadResult::Ok => None,
            ReloadResult::Refused => Some(String::new()),
        };
        self.report_reload(None, error);
    }

    /// Counts one configuration reload of `version`: accepted (`Ok`) or refused with its
    /// reason (`Err`); the previous configuration keeps serving after a refusal.
    pub fn reload(&self, version: u64, result: Result<(), String>) {
        self.report_reload(Some(version), result.err());
    }

    fn report_reload(&self, version: Option<u64>, error: Option<String>) {
        let report = ReloadReport {
            version,
            error,
            at: SystemTime::now(),
        };
        self.reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(report);
    }

    /// Reports the objects held at their last good version or refused, counted by (kind,
    /// state), for `egress_config_objects_held`; an empty map clears the gauge.
    pub fn set_objects_held(&self, held: std::collections::BTreeMap<(String, String), u64>) {
        self.reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_held(held);
    }

    /// The last reload reported, if any.
    pub fn last_reload(&self) -> Option<ReloadReport> {
        self.reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// The exposition, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (http, tcp) = {
            let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
            let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            (
                series::labelled(&settings, &series.http),
                series::labelled(&settings, &series.tcp),
            )
        };
        series::render_http(&mut out, &http);
        series::render_tcp(&mut out, &tcp);
        self.render_own(&mut out);
        out
    }

    fn render_own(&self, out: &mut String) {
        text::header(out, "istio_build", "gauge", "Istio component build info");
        text::sample(
            out,
            "istio_build",
            &["component", "tag"],
            &["proxy".to_owned(), self.build_tag.clone()],
            1.0,
        );
        let active = self.connections.as_ref().map_or(0, Drain::in_flight);
        text::header(
            out,
            "egress_active_connections",
            "gauge",
            "Downstream connections in flight.",
        );
        text::sample(out, "egress_active_connections", &[], &[], active as f64);
        text::header(
            out,
            "egress_config_version",
            "gauge",
            "Version of the configuration snapshot being served.",
        );
        let version = self.config_version.load(Ordering::Relaxed);
        text::sample(out, "egress_config_version", &[], &[], version as f64);
        self.reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render(out);
        if let Some(limits) = self.limits.load().as_ref() {
            limits.render(out);
        }
    }
}

/// The clusters of one configuration version whose upstream connections present the
/// workload certificate (ISTIO_MUTUAL): their traffic shows the local identity as
/// `source_principal`. Part of the version's prepared [`crate::ctx::Active`].
pub type MutualTls = HashSet<String>;

/// The names of the clusters that originate ISTIO_MUTUAL (they present the workload
/// certificate, which makes it `source_principal`).
pub fn mutual_tls_clusters<'a>(
    clusters: impl IntoIterator<Item = &'a egress_snapshot::snapshot::Cluster>,
) -> MutualTls {
    clusters
        .into_iter()
        .filter(|c| {
            c.tls.as_ref().is_some_and(|tls| {
                tls.mode == egress_snapshot::snapshot::UpstreamTlsMode::IstioMutual
            })
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
