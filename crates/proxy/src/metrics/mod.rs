//! Prometheus metrics of a proxy instance, served as `/stats/prometheus` on the metrics port
//! (Istio's merged `:15020` endpoint and Envoy's `:15090`).
//!
//! Istio's standard metrics, with Istio's label set and default buckets, are updated from
//! every finished request and connection (the same [`LogEntry`] the access log writes, see
//! [`crate::accesslog::AccessLogger::with_metrics`]):
//!
//! * `istio_requests_total` (counter), `istio_request_duration_milliseconds`,
//!   `istio_request_bytes`, `istio_response_bytes` (histograms; bytes are body bytes);
//! * `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//!   `istio_tcp_sent_bytes_total` (to the downstream), `istio_tcp_received_bytes_total` (from
//!   the downstream). A connection is counted as opened and closed when it ends;
//! * `istio_build{component="proxy",tag=<version>}` 1.
//!
//! Gateway health figures (not Istio's):
//!
//! * `egress_active_connections` (gauge): downstream connections in flight;
//! * `egress_config_version` (gauge): version of the last snapshot applied;
//! * `egress_config_reload_total{result="ok"|"refused"}` (counter): configuration reloads
//!   accepted or refused, as reported through [`Metrics::record_reload`];
//! * `egress_config_last_reload_success` (gauge): 1 when the last reload was accepted, 0 when
//!   it was refused (absent before the first report).

mod labels;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use crate::accesslog::LogEntry;
use crate::drain::Drain;

pub use labels::{
    DestinationService, HTTP_LABELS, LATEST, LabelSettings, LocalWorkload, SeriesKey, TCP_LABELS,
    UNKNOWN, connection_security_policy, destination_service,
};
pub use text::{BYTES_BUCKETS, CONTENT_TYPE, DURATION_BUCKETS_MS, Histogram};

/// The outcome of a configuration reload, for [`Metrics::record_reload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new configuration was accepted and applied.
    Ok,
    /// The new configuration was refused; the previous one keeps serving.
    Refused,
}

/// One HTTP label set's series.
#[derive(Debug, Clone)]
struct HttpSeries {
    requests: u64,
    duration_ms: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl HttpSeries {
    fn new() -> HttpSeries {
        HttpSeries {
            requests: 0,
            duration_ms: Histogram::new(DURATION_BUCKETS_MS),
            request_bytes: Histogram::new(BYTES_BUCKETS),
            response_bytes: Histogram::new(BYTES_BUCKETS),
        }
    }
}

/// One TCP label set's series.
#[derive(Debug, Clone, Default)]
struct TcpSeries {
    opened: u64,
    closed: u64,
    sent: u64,
    received: u64,
}

#[derive(Debug, Default)]
struct Series {
    http: HashMap<SeriesKey, HttpSeries>,
    tcp: HashMap<SeriesKey, TcpSeries>,
}

/// The metrics of one proxy instance. Shared as `Arc<Metrics>`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    settings: RwLock<LabelSettings>,
    build_tag: String,
    series: Mutex<Series>,
    connections: Option<Drain>,
    config_version: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
    /// 0 = no report yet, 1 = last ok, 2 = last refused.
    last_reload: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::gateway()
    }
}

impl Metrics {
    /// Metrics as a gateway reports them: `reporter="source"`, no host-header fallback for
    /// `destination_service`, the local workload unknown, `tag` the crate version.
    pub fn gateway() -> Metrics {
        Metrics::new(LabelSettings {
            reporter: "source".into(),
            host_header_fallback: false,
            local: LocalWorkload::default(),
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
            reloads_ok: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            last_reload: AtomicU64::new(0),
        }
    }

    /// `egress_active_connections` reads the in-flight count of `drain`.
    pub fn with_connections(mut self, drain: Drain) -> Metrics {
        self.connections = Some(drain);
        self
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

    /// Updates the Istio metrics from one finished request (an entry with a protocol) or TCP
    /// connection (no protocol).
    pub fn record(&self, entry: &LogEntry) {
        let fallback = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .host_header_fallback;
        let key = SeriesKey::of(entry, fallback);
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if !key.is_tcp() {
            let s = series.http.entry(key).or_insert_with(HttpSeries::new);
            s.requests += 1;
            let ms = entry.duration.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            s.duration_ms.observe(ms);
            s.request_bytes.observe(entry.bytes_received as f64);
            s.response_bytes.observe(entry.bytes_sent as f64);
        } else {
            let s = series.tcp.entry(key).or_default();
            s.opened += 1;
            s.closed += 1;
            s.sent += entry.bytes_sent;
            s.received += entry.bytes_received;
        }
    }

    /// `egress_config_version`: the version of the snapshot now served.
    pub fn set_config_version(&self, version: u64) {
        self.config_version.store(version, Ordering::Relaxed);
    }

    /// Counts one configuration reload and remembers its result.
    pub fn record_reload(&self, result: ReloadResult) {
        let (counter, last) = match result {
            ReloadResult::Ok => (&self.reloads_ok, 1),
            ReloadResult::Refused => (&self.reloads_refused, 2),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_reload.store(last, Ordering::Relaxed);
    }

    /// The exposition, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (http, tcp) = {
            let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
            let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            (
                labelled(&settings, &series.http),
                labelled(&settings, &series.tcp),
            )
        };
        render_http(&mut out, &http);
        render_tcp(&mut out, &tcp);
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
        text::header(
            out,
            "egress_config_reload_total",
            "counter",
            "Configuration reloads by result.",
        );
        for (result, counter) in [("ok", &self.reloads_ok), ("refused", &self.reloads_refused)] {
            let value = counter.load(Ordering::Relaxed) as f64;
            let values = [result.to_owned()];
            text::sample(
                out,
                "egress_config_reload_total",
                &["result"],
                &values,
                value,
            );
        }
        let last = self.last_reload.load(Ordering::Relaxed);
        if last != 0 {
            text::header(
                out,
                "egress_config_last_reload_success",
                "gauge",
                "1 when the last configuration reload was accepted, 0 when it was refused.",
            );
            let value = if last == 1 { 1.0 } else { 0.0 };
            text::sample(out, "egress_config_last_reload_success", &[], &[], value);
        }
    }
}

/// Series that can be added up: two keys may have the same label values (clusters of two
/// subsets of one host), and the exposition shows each label set once.
trait Merge: Clone {
    fn merge(&mut self, other: &Self);
}

impl Merge for HttpSeries {
    fn merge(&mut self, other: &Self) {
        self.requests += other.requests;
        self.duration_ms.merge(&other.duration_ms);
        self.request_bytes.merge(&other.request_bytes);
        self.response_bytes.merge(&other.response_bytes);
    }
}

impl Merge for TcpSeries {
    fn merge(&mut self, other: &Self) {
        self.opened += other.opened;
        self.closed += other.closed;
        self.sent += other.sent;
        self.received += other.received;
    }
}

/// The series by their label values (sorted: a stable exposition order).
fn labelled<T: Merge>(
    settings: &LabelSettings,
    series: &HashMap<SeriesKey, T>,
) -> BTreeMap<Vec<String>, T> {
    let mut out: BTreeMap<Vec<String>, T> = BTreeMap::new();
    for (key, s) in series {
        match out.entry(key.values(settings)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(s.clone());
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => slot.get_mut().merge(s),
        }
    }
    out
}

/// A histogram family: name, help, and the series' histogram.
type HistogramFamily = (&'static str, &'static str, fn(&HttpSeries) -> &Histogram);

/// A TCP counter family: name, help, and the series' value.
type TcpFamily = (&'static str, &'static str, fn(&TcpSeries) -> u64);

fn render_http(out: &mut String, http: &BTreeMap<Vec<String>, HttpSeries>) {
    if http.is_empty() {
        return;
    }
    let names = &HTTP_LABELS[..];
    text::header(out, "istio_requests_total", "counter", "Requests.");
    for (values, s) in http {
        text::sample(
            out,
            "istio_requests_total",
            names,
            values,
            s.requests as f64,
        );
    }
    let histograms: [HistogramFamily; 3] = [
        (
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds.",
            |s| &s.duration_ms,
        ),
        ("istio_request_bytes", "Request body sizes in bytes.", |s| {
            &s.request_bytes
        }),
        (
            "istio_response_bytes",
            "Response body sizes in bytes.",
            |s| &s.response_bytes,
        ),
    ];
    for (name, help, pick) in histograms {
        text::header(out, name, "histogram", help);
        for (values, s) in http {
            text::histogram(out, name, names, values, pick(s));
        }
    }
}

fn render_tcp(out: &mut String, tcp: &BTreeMap<Vec<String>, TcpSeries>) {
    if tcp.is_empty() {
        return;
    }
    let counters: [TcpFamily; 4] = [
        (
            "istio_tcp_connections_opened_total",
            "TCP connections opened.",
            |s| s.opened,
        ),
        (
            "istio_tcp_connections_closed_total",
            "TCP connections closed.",
            |s| s.closed,
        ),
        (
            "istio_tcp_sent_bytes_total",
            "Bytes sent to the downstream on TCP connections.",
            |s| s.sent,
        ),
        (
            "istio_tcp_received_bytes_total",
            "Bytes received from the downstream on TCP connections.",
            |s| s.received,
        ),
    ];
    for (name, help, pick) in counters {
        text::header(out, name, "counter", help);
        for (values, s) in tcp {
            text::sample(out, name, &TCP_LABELS, values, pick(s) as f64);
        }
    }
}

#[cfg(test)]
mod tests;
