//! The per-label-set series of the Istio metrics, and their exposition: the HTTP families
//! (`istio_requests_total` and the three histograms) and the TCP counters.

use std::collections::{BTreeMap, HashMap};

use super::key::SeriesKey;
use super::labels::{HTTP_LABELS, LabelSettings, TCP_LABELS};
use super::text::{self, BYTES_BUCKETS, DURATION_BUCKETS_MS, Histogram};

/// One HTTP label set's series.
#[derive(Debug, Clone)]
pub(super) struct HttpSeries {
    pub(super) requests: u64,
    pub(super) duration_ms: Histogram,
    pub(super) request_bytes: Histogram,
    pub(super) response_bytes: Histogram,
}

impl HttpSeries {
    pub(super) fn new() -> HttpSeries {
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
pub(super) struct TcpSeries {
    pub(super) opened: u64,
    pub(super) closed: u64,
    pub(super) sent: u64,
    pub(super) received: u64,
}

/// Series that can be added up: two keys may have the same label values (clusters of two
/// subsets of one host), and the exposition shows each label set once.
pub(super) trait Merge: Clone {
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
pub(super) fn labelled<T: Merge>(
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

/// Writes the HTTP families (nothing before the first request).
pub(super) fn render_http(out: &mut String, http: &BTreeMap<Vec<String>, HttpSeries>) {
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

/// Writes the TCP families (nothing before the first connection).
pub(super) fn render_tcp(out: &mut String, tcp: &BTreeMap<Vec<String>, TcpSeries>) {
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
