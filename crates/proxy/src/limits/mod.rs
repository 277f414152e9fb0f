//! Downstream limits: what a client may hold of a gateway or sidecar, and what happens when
//! the process runs short of connections or descriptors.
//!
//! * [`Limits`] are the settings (`egress gateway run --help` lists each as a flag), with
//!   Envoy's edge-proxy values as defaults: request headers within 10 s, a connection
//!   without streams closed after 1 h, a stream without activity after 5 min, a TCP proxy
//!   connection without bytes after 1 h, request headers of at most 60 KiB and 100 headers
//!   (431 beyond), and a connection limit per listener.
//! * [`conn`] tracks one downstream connection (streams in flight, when it went idle, when
//!   the head of the next request began) and decides, from an injected `now`, which limit
//!   fires next; [`conn::watch`] sleeps until then.
//! * [`registry`] knows every open connection of a proxy instance, admits new ones against
//!   the per-listener limit and the descriptor budget, and sheds the oldest idle connection
//!   when either runs out.
//! * [`accept`] is the accept step every listener shares: it backs off (instead of spinning)
//!   when accepting fails for want of descriptors, sheds idle connections to make room, and
//!   logs the condition once per interval.
//! * [`Counters`] count every limit that fired, shown as
//!   `egress_downstream_limit_total{limit="…"}` on the metrics endpoint.

pub mod accept;
pub mod conn;
pub mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use registry::Connections;

/// Envoy's `request_headers_timeout` in its edge-proxy best practices.
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's default (and best-practice) connection `idle_timeout`: 1 h.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `stream_idle_timeout`: 5 min.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The TCP proxy `idle_timeout` Istio sets: 1 h.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `max_request_headers_kb`: 60 KiB.
pub const DEFAULT_MAX_REQUEST_HEADERS_BYTES: usize = 60 * 1024;
/// Envoy's default `max_headers_count`: 100.
pub const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;
/// The most connections a listener accepts when no limit is given and the descriptor limit
/// allows more (Envoy's best-practice `global_downstream_max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
/// Descriptors kept back from downstream connections for everything else the process opens
/// (listeners, the store, DNS, logs).
pub const RESERVED_DESCRIPTORS: usize = 64;

/// The downstream limits of a proxy instance. `None` turns a timeout off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must be complete this long after their first byte arrived
    /// (HTTP/1.1; an HTTP/2 connection's streams are bounded by the idle timeouts).
    pub request_headers_timeout: Option<Duration>,
    /// An HTTP connection without requests in flight is closed after this long.
    pub idle_timeout: Option<Duration>,
    /// A request whose stream sees no activity (request or response bytes, the upstream's
    /// response headers) for this long is ended: 408 `SI` before the response started,
    /// reset after.
    pub stream_idle_timeout: Option<Duration>,
    /// A TCP proxy connection that moves no bytes either way for this long is closed.
    pub tcp_idle_timeout: Option<Duration>,
    /// The most bytes of request headers (request line included); 431 beyond.
    pub max_request_headers_bytes: usize,
    /// The most request headers; 431 beyond.
    pub max_request_headers: usize,
    /// The most connections one listener holds open; `None`: as many as the descriptor
    /// limit allows ([`descriptor_budget`]), at most [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections_per_listener: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_headers_timeout: Some(DEFAULT_REQUEST_HEADERS_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            tcp_idle_timeout: Some(DEFAULT_TCP_IDLE_TIMEOUT),
            max_request_headers_bytes: DEFAULT_MAX_REQUEST_HEADERS_BYTES,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            max_connections_per_listener: None,
        }
    }
}

impl Limits {
    /// The per-listener connection limit in force.
    pub fn connection_limit(&self) -> usize {
        self.max_connections_per_listener
            .unwrap_or_else(|| descriptor_budget().min(DEFAULT_MAX_CONNECTIONS))
            .max(1)
    }
}

/// How many downstream connections the process's descriptor limit (`RLIMIT_NOFILE`, soft)
/// leaves room for: half of what is left after [`RESERVED_DESCRIPTORS`], as a proxied
/// connection can need a second descriptor upstream. At least 1.
pub fn descriptor_budget() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    budget_for(soft)
}

/// [`descriptor_budget`] for a descriptor limit of `soft`.
pub fn budget_for(soft: u64) -> usize {
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    (soft.saturating_sub(RESERVED_DESCRIPTORS) / 2).max(1)
}

/// A downstream limit that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Request headers not complete in time (connection closed).
    RequestHeadersTimeout,
    /// An HTTP connection without requests closed for idleness.
    IdleTimeout,
    /// A request's stream ended for idleness.
    StreamIdleTimeout,
    /// A TCP proxy connection closed for idleness.
    TcpIdleTimeout,
    /// Request headers too large or too many (431).
    RequestHeadersTooLarge,
    /// A listener was at its connection limit when a connection arrived.
    ConnectionLimit,
    /// Accepting failed for want of descriptors (EMFILE/ENFILE).
    DescriptorsExhausted,
    /// An idle connection was closed to make room for a new one.
    IdleConnectionShed,
}

impl Limit {
    /// Every limit, in the order they are shown.
    pub const ALL: [Limit; 8] = [
        Limit::RequestHeadersTimeout,
        Limit::IdleTimeout,
        Limit::StreamIdleTimeout,
        Limit::TcpIdleTimeout,
        Limit::RequestHeadersTooLarge,
        Limit::ConnectionLimit,
        Limit::DescriptorsExhausted,
        Limit::IdleConnectionShed,
    ];

    /// The `limit` label.
    pub fn name(self) -> &'static str {
        match self {
            Limit::RequestHeadersTimeout => "request_headers_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::StreamIdleTimeout => "stream_idle_timeout",
            Limit::TcpIdleTimeout => "tcp_idle_timeout",
            Limit::RequestHeadersTooLarge => "request_headers_too_large",
            Limit::ConnectionLimit => "connection_limit",
            Limit::DescriptorsExhausted => "descriptors_exhausted",
            Limit::IdleConnectionShed => "idle_connection_shed",
        }
    }
}

/// How often each limit fired.
#[derive(Debug, Default)]
pub struct Counters {
    counts: [AtomicU64; 8],
}

impl Counters {
    /// Counts one firing of `limit`.
    pub fn hit(&self, limit: Limit) {
        self.counts[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How often `limit` fired.
    pub fn get(&self, limit: Limit) -> u64 {
        self.counts[limit as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text of the counters.
    pub fn render(&self, out: &mut String) {
        crate::metrics::text::header(
            out,
            "egress_downstream_limit_total",
            "counter",
            "Downstream limits that fired, by limit.",
        );
        for limit in Limit::ALL {
            crate::metrics::text::sample(
                out,
                "egress_downstream_limit_total",
                &["limit"],
                &[limit.name().to_owned()],
                self.get(limit) as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_room_for_upstream_descriptors() {
        assert_eq!(budget_for(128), 32);
        assert_eq!(budget_for(1_048_576), 524_256);
        assert_eq!(budget_for(10), 1);
    }

    #[test]
    fn counters_render_one_series_per_limit() {
        let c = Counters::default();
        c.hit(Limit::IdleTimeout);
        c.hit(Limit::IdleTimeout);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("egress_downstream_limit_total{limit=\"idle_timeout\"} 2"));
        assert!(out.contains("egress_downstream_limit_total{limit=\"connection_limit\"} 0"));
        assert_eq!(out.matches("egress_downstream_limit_total{").count(), 8);
    }
}
