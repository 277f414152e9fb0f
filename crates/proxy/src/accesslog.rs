//! Access logs as Istio configures Envoy to write them: one line per HTTP request or TCP
//! connection, in Istio's default TEXT line, Istio's default JSON keys, or a custom format of
//! Envoy command operators (MeshConfig `accessLogFile`/`accessLogEncoding`/`accessLogFormat`).
//!
//! [`AccessLogger`] is a cheap clonable handle: every clone writes to the same sink with the
//! same format. Each entry is rendered to a complete line first and written with one
//! `write_all` + `flush` under a mutex, so lines from many tasks never interleave.
//! [`AccessLogger::configure`] swaps the format when the snapshot's [`AccessLog`] changes; a
//! format with an unknown operator is reported once (as a configuration error) and Istio's
//! default for the encoding is used instead.
//!
//! A Telemetry `filter.expression` compiled into the snapshot is evaluated per entry before a
//! line is written ([`filter`]); each further provider of the snapshot
//! ([`AccessLog::additional`]) writes its own line, with its own format and filter, to the same
//! sink.

pub mod filter;
mod format;
mod time;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use egress_snapshot::snapshot::AccessLog;
#[cfg(any(test, feature = "testing"))]
use tokio::sync::Notify;

pub use format::{FormatError, Formatter};
pub use time::format_start_time;

/// Declares the flags once: the enum, the list in Envoy's order, and the short names.
macro_rules! response_flags {
    ($($variant:ident => $short:literal, $doc:literal;)*) => {
        /// Envoy's response flags (`%RESPONSE_FLAGS%`), in the order Envoy prints them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ResponseFlag {
            $(
                #[doc = concat!("`", $short, "`: ", $doc)]
                $variant,
            )*
        }

        /// Every flag, in Envoy's order.
        const ALL_FLAGS: &[ResponseFlag] = &[$(ResponseFlag::$variant),*];

        impl ResponseFlag {
            /// Envoy's short name (`UF`, `URX`, ...).
            pub fn short_name(self) -> &'static str {
                match self {
                    $(ResponseFlag::$variant => $short,)*
                }
            }
        }
    };
}

response_flags! {
    FailedLocalHealthCheck => "LH", "failed local health check.";
    NoHealthyUpstream => "UH", "no healthy upstream host.";
    UpstreamRequestTimeout => "UT", "upstream request timeout.";
    LocalReset => "LR", "connection local reset.";
    UpstreamRemoteReset => "UR", "upstream remote reset.";
    UpstreamConnectionFailure => "UF", "upstream connection failure.";
    UpstreamConnectionTermination => "UC", "upstream connection termination.";
    UpstreamOverflow => "UO", "upstream overflow (circuit breaking).";
    NoRouteFound => "NR", "no route (or no filter chain) found.";
    DelayInjected => "DI", "delay injected.";
    FaultInjected => "FI", "fault injected.";
    RateLimited => "RL", "rate limited.";
    UnauthorizedExternalService => "UAEX", "unauthorized by an external service.";
    RateLimitServiceError => "RLSE", "rate-limit service error.";
    DownstreamConnectionTermination => "DC", "downstream connection termination.";
    UpstreamRetryLimitExceeded => "URX", "upstream retry limit exceeded.";
    StreamIdleTimeout => "SI", "stream idle timeout.";
    InvalidEnvoyRequestHeaders => "IH", "invalid Envoy request headers.";
    DownstreamProtocolError => "DPE", "downstream protocol error.";
    UpstreamMaxStreamDurationReached => "UMSDR", "upstream max stream duration reached.";
    ResponseFromCacheFilter => "RFCF", "response from cache filter.";
    NoFilterConfigFound => "NFCF", "no filter config found.";
    DurationTimeout => "DT", "duration timeout.";
    UpstreamProtocolError => "UPE", "upstream protocol error.";
    NoClusterFound => "NC", "no cluster found.";
    OverloadManager => "OM", "overload manager.";
    DnsResolutionFailed => "DF", "DNS resolution failed.";
    DropOverload => "DO", "drop overload.";
    DownstreamRemoteReset => "DR", "downstream remote reset.";
}

impl ResponseFlag {
    /// The flag with this short name.
    pub fn from_short_name(name: &str) -> Option<ResponseFlag> {
        ALL_FLAGS.iter().copied().find(|f| f.short_name() == name)
    }
}

/// A set of [`ResponseFlag`]s; displays as Envoy does (`UF,URX`, or `-` when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ResponseFlags(u32);

impl ResponseFlags {
    /// No flags.
    pub const fn empty() -> ResponseFlags {
        ResponseFlags(0)
    }

    /// Adds a flag.
    pub fn insert(&mut self, flag: ResponseFlag) {
        self.0 |= 1 << (flag as u8);
    }

    /// Adds a flag by its short name (`"UF"`); false if the name is unknown.
    pub fn insert_short(&mut self, name: &str) -> bool {
        match ResponseFlag::from_short_name(name) {
            Some(f) => {
                self.insert(f);
                true
            }
            None => false,
        }
    }

    /// This set plus `flag`.
    pub fn with(mut self, flag: ResponseFlag) -> ResponseFlags {
        self.insert(flag);
        self
    }

    /// True if `flag` is set.
    pub fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & (1 << (flag as u8)) != 0
    }

    /// The flags as Envoy's bit vector (`response.flags` in filter expressions).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// True if no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set flags in Envoy's order.
    pub fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        ALL_FLAGS.iter().copied().filter(move |f| self.contains(*f))
    }
}

impl From<ResponseFlag> for ResponseFlags {
    fn from(flag: ResponseFlag) -> Self {
        ResponseFlags::empty().with(flag)
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.short_name())?;
        }
        Ok(())
    }
}

/// Everything one access-log line can show. HTTP entries fill the request fields; TCP entries
/// leave them `None` (and `response_code` 0), which renders `"- - -" 0`.
///
/// `%REQ(X)%` reads `method`/`path`/`authority`/`scheme` for the pseudo-headers, the
/// `x_forwarded_for`/`user_agent`/`request_id` fields when set, and otherwise
/// `request_headers`; `%RESP(X)%` reads `response_headers`.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// When the request (or connection) started; `None` renders `-`.
    pub start_time: Option<SystemTime>,
    /// `:method`.
    pub method: Option<String>,
    /// `:path` as sent upstream (after rewrites; the original is in `x-envoy-original-path`).
    pub path: Option<String>,
    /// `:authority` / Host.
    pub authority: Option<String>,
    /// `:scheme`.
    pub scheme: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`; `None` for TCP.
    pub protocol: Option<String>,
    /// Response status; 0 when none was sent (TCP, or the downstream went away first).
    pub response_code: u16,
    /// Response flags.
    pub response_flags: ResponseFlags,
    /// `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, ...).
    pub response_code_details: Option<String>,
    /// `%CONNECTION_TERMINATION_DETAILS%`.
    pub connection_termination_details: Option<String>,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    pub upstream_transport_failure_reason: Option<String>,
    /// Body (or stream) bytes received from downstream.
    pub bytes_received: u64,
    /// Body (or stream) bytes sent to downstream.
    pub bytes_sent: u64,
    /// Total duration; `None` renders `-`.
    pub duration: Option<Duration>,
    /// Upstream service time (also sent as `x-envoy-upstream-service-time`); used by
    /// `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%` when the header is not in `response_headers`.
    pub upstream_service_time: Option<Duration>,
    /// `x-forwarded-for` as forwarded.
    pub x_forwarded_for: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Request headers as forwarded (for `%REQ(X)%` of any other header).
    pub request_headers: http::HeaderMap,
    /// Response headers as sent downstream (for `%RESP(X)%`).
    pub response_headers: http::HeaderMap,
    /// `%UPSTREAM_HOST%`: the upstream address connected (or tried).
    pub upstream_host: Option<SocketAddr>,
    /// `%UPSTREAM_CLUSTER%`: cluster name.
    pub upstream_cluster: Option<String>,
    /// `%UPSTREAM_LOCAL_ADDRESS%`.
    pub upstream_local_address: Option<SocketAddr>,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`.
    pub downstream_local_address: Option<SocketAddr>,
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`.
    pub downstream_remote_address: Option<SocketAddr>,
    /// `%REQUESTED_SERVER_NAME%` (SNI).
    pub requested_server_name: Option<String>,
    /// `%ROUTE_NAME%`.
    pub route_name: Option<String>,
    /// `%DOWNSTREAM_PEER_URI_SAN%`.
    pub peer_uri_san: Option<String>,
}

/// Where lines go.
enum Sink {
    Disabled,
    Writer(Mutex<Box<dyn Write + Send>>),
    /// Test hook (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    Capture(Arc<CaptureInner>),
}

struct Inner {
    sink: Sink,
    format: ArcSwap<LogFormat>,
    /// When set, lines are written only while the configured `accessLogFile` is non-empty
    /// (a gateway process: MeshConfig/Telemetry switch logging on and off).
    gated: bool,
}

/// What one snapshot's access-log settings prepare: the providers' formats and filters, and
/// whether logging is on. Built once per settings ([`AccessLogger::prepare`]); a request keeps
/// the one of the snapshot it started under ([`AccessLogger::pinned_to`]), so a configuration
/// change never logs a request in a format of a version it did not run under.
pub struct LogFormat {
    settings: Option<AccessLog>,
    /// Whether the settings ask for logging (`accessLogFile` non-empty; used when gated).
    wanted: bool,
    /// One per provider; the first is the one [`AccessLogger::render`] uses.
    outputs: Vec<Output>,
}

impl fmt::Debug for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFormat")
            .field("settings", &self.settings)
            .field("wanted", &self.wanted)
            .finish()
    }
}

/// One provider's line: its format and filter.
struct Output {
    formatter: Formatter,
    filter: Option<egress_snapshot::snapshot::LogFilter>,
}

impl Output {
    /// The output for `config` (its own format and filter, not its `additional` ones).
    fn new(config: &AccessLog) -> Output {
        let formatter = match Formatter::from_config(config) {
            Ok(f) => f,
            Err(err) => {
                tracing::error!(
                    error = %err,
                    "invalid access log format; using the default format"
                );
                Formatter::default_for(config.encoding)
            }
        };
        Output {
            formatter,
            filter: config.filter.clone(),
        }
    }
}

/// The access-log sink of a proxy instance; clones share the sink and the format.
///
/// A logger made by [`AccessLogger::with_metrics`] also updates a metric registry with every
/// entry (whether or not lines are written), so each place that finishes a request or a
/// connection feeds both.
#[derive(Clone)]
pub struct AccessLogger {
    inner: Arc<Inner>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The configuration version this logger writes and counts under instead of the current
    /// one (one request's): its format and its ISTIO_MUTUAL clusters.
    pinned: Option<(Arc<LogFormat>, Arc<crate::metrics::MutualTls>)>,
}

impl fmt::Debug for AccessLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sink = match self.inner.sink {
            Sink::Disabled => "disabled",
            Sink::Writer(_) => "writer",
            #[cfg(any(test, feature = "testing"))]
            Sink::Capture(_) => "capture",
        };
        f.debug_struct("AccessLogger").field("sink", &sink).finish()
    }
}

impl Default for AccessLogger {
    fn default() -> Self {
        AccessLogger::disabled()
    }
}

impl AccessLogger {
    fn with_sink(sink: Sink) -> AccessLogger {
        AccessLogger {
            inner: Arc::new(Inner {
                sink,
                format: ArcSwap::from_pointee(LogFormat {
                    settings: None,
                    wanted: false,
                    outputs: vec![Output {
                        formatter: Formatter::default_text(),
                        filter: None,
                    }],
                }),
                gated: false,
            }),
            metrics: None,
            pinned: None,
        }
    }

    /// This logger (same sink, same format) also recording every entry into `metrics`.
    pub fn with_metrics(&self, metrics: Arc<crate::metrics::Metrics>) -> AccessLogger {
        AccessLogger {
            inner: Arc::clone(&self.inner),
            metrics: Some(metrics),
            pinned: self.pinned.clone(),
        }
    }

    /// The registry entries are recorded into, if any.
    pub fn metrics(&self) -> Option<&Arc<crate::metrics::Metrics>> {
        self.metrics.as_ref()
    }

    /// A logger that writes nothing.
    pub fn disabled() -> AccessLogger {
        AccessLogger::with_sink(Sink::Disabled)
    }

    /// Appends lines to `path`; `/dev/stdout` and `/dev/stderr` write to the process streams.
    pub fn to_path(path: &str) -> io::Result<AccessLogger> {
        let writer: Box<dyn Write + Send> = match path {
            "/dev/stdout" => Box::new(io::stdout()),
            "/dev/stderr" => Box::new(io::stderr()),
            _ => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Ok(AccessLogger::to_writer(writer))
    }

    /// Standard output, written only while the snapshot's access-log settings name a file
    /// (MeshConfig `accessLogFile`, Telemetry `accessLogging`): what a gateway process uses,
    /// its container log being its standard output.
    pub fn stdout_when_configured() -> AccessLogger {
        AccessLogger::to_writer_when_configured(Box::new(io::stdout()))
    }

    /// Writes lines to `writer` only while the snapshot's access-log settings name a file: a
    /// container log that is not standard output (the local cluster's per-Pod log files).
    pub fn to_writer_when_configured(writer: Box<dyn Write + Send>) -> AccessLogger {
        let mut logger = AccessLogger::to_writer(writer);
        if let Some(inner) = Arc::get_mut(&mut logger.inner) {
            inner.gated = true;
        }
        logger
    }

    /// Writes lines to `writer` (flushed after each line).
    pub fn to_writer(writer: Box<dyn Write + Send>) -> AccessLogger {
        AccessLogger::with_sink(Sink::Writer(Mutex::new(writer)))
    }

    /// Keeps lines in memory; the handle reads them (test hook, feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn capture() -> (AccessLogger, CapturedLines) {
        let inner = Arc::new(CaptureInner::default());
        let handle = CapturedLines {
            inner: Arc::clone(&inner),
        };
        (AccessLogger::with_sink(Sink::Capture(inner)), handle)
    }

    /// The logger a snapshot's settings ask for: off without a path, else the path with the
    /// configured format.
    pub fn from_config(config: &AccessLog) -> io::Result<AccessLogger> {
        let logger = match &config.path {
            Some(path) if !path.is_empty() => AccessLogger::to_path(path)?,
            _ => AccessLogger::disabled(),
        };
        logger.prepare(config);
        Ok(logger)
    }

    /// True unless the logger is [`AccessLogger::disabled`].
    pub fn is_enabled(&self) -> bool {
        !matches!(self.inner.sink, Sink::Disabled)
    }

    /// The prepared form of `config` (its encoding, format and filter, and its additional
    /// providers'): the last prepared one when its settings are the same (no work), otherwise
    /// built anew and kept as the last prepared. A format that does not compile is reported
    /// once and Istio's default for the encoding is used. Lines are written with the format of
    /// the version they belong to ([`AccessLogger::pinned_to`]); a logger not pinned (before
    /// any version, and in tests) writes with the last prepared one.
    pub fn prepare(&self, config: &AccessLog) -> Arc<LogFormat> {
        let current = self.inner.format.load_full();
        if current.settings.as_ref() == Some(config) {
            return current;
        }
        let mut outputs = vec![Output::new(config)];
        for more in &config.additional {
            if more.path != config.path {
                tracing::warn!(
                    provider = more.provider.as_deref().unwrap_or_default(),
                    path = more.path.as_deref().unwrap_or_default(),
                    "access log provider writes to another path; its lines go to this instance's log"
                );
            }
            outputs.push(Output::new(more));
        }
        let prepared = Arc::new(LogFormat {
            settings: Some(config.clone()),
            wanted: config.path.as_deref().is_some_and(|p| !p.is_empty()),
            outputs,
        });
        self.inner.format.store(Arc::clone(&prepared));
        prepared
    }

    /// This logger (same sink and metrics) writing with `format` and counting with
    /// `mutual_tls` whatever the current ones become: the logger of one request, pinned to its
    /// configuration version.
    pub fn pinned_to(
        &self,
        format: Arc<LogFormat>,
        mutual_tls: Arc<crate::metrics::MutualTls>,
    ) -> AccessLogger {
        AccessLogger {
            inner: Arc::clone(&self.inner),
            metrics: self.metrics.clone(),
            pinned: Some((format, mutual_tls)),
        }
    }

    /// The ISTIO_MUTUAL clusters entries are counted with: the pinned version's, else none.
    fn mutual_tls(&self) -> &crate::metrics::MutualTls {
        static NONE: std::sync::LazyLock<crate::metrics::MutualTls> =
            std::sync::LazyLock::new(Default::default);
        match &self.pinned {
            Some((_, m)) => m,
            None => &NONE,
        }
    }

    /// Counts a TCP connection as opened now in the metrics, if any (see
    /// [`crate::metrics::Metrics::tcp_opened`]), under this logger's version.
    pub fn tcp_opened(&self, entry: &LogEntry) {
        if let Some(metrics) = &self.metrics {
            metrics.tcp_opened(entry, self.mutual_tls());
        }
    }

    /// The format lines are written with: the pinned one, else the current one.
    fn format(&self) -> Arc<LogFormat> {
        match &self.pinned {
            Some((f, _)) => Arc::clone(f),
            None => self.inner.format.load_full(),
        }
    }

    /// Renders `entry` with the current (first provider's) format, ignoring its filter, without
    /// writing it.
    pub fn render(&self, entry: &LogEntry) -> String {
        self.format()
            .outputs
            .first()
            .map(|o| o.formatter.render(entry))
            .unwrap_or_default()
    }

    /// The lines `entry` produces under the current settings: one per provider whose filter
    /// (if any) lets it through, each ending with a newline.
    pub fn lines_for(&self, entry: &LogEntry) -> Vec<String> {
        Self::lines_with(&self.format(), entry)
    }

    fn lines_with(format: &LogFormat, entry: &LogEntry) -> Vec<String> {
        format
            .outputs
            .iter()
            .filter(|o| o.filter.as_ref().is_none_or(|f| filter::matches(f, entry)))
            .map(|o| {
                let mut line = o.formatter.render(entry);
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                line
            })
            .collect()
    }

    /// Writes one line for `entry` (and records it into the metrics, if any). Write errors are
    /// reported through `tracing` and dropped: an access log never fails a request.
    pub fn log(&self, entry: &LogEntry) {
        if let Some(metrics) = &self.metrics {
            metrics.record(entry, self.mutual_tls());
        }
        if !self.is_enabled() {
            return;
        }
        let format = self.format();
        if self.inner.gated && !format.wanted {
            return;
        }
        for line in Self::lines_with(&format, entry) {
            match &self.inner.sink {
                Sink::Disabled => {}
                Sink::Writer(writer) => {
                    let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Err(err) = w.write_all(line.as_bytes()).and_then(|()| w.flush()) {
                        tracing::warn!(error = %err, "access log write failed");
                    }
                }
                #[cfg(any(test, feature = "testing"))]
                Sink::Capture(capture) => capture.push(line),
            }
        }
    }
}

#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
struct CaptureInner {
    lines: Mutex<Vec<String>>,
    changed: Notify,
}

#[cfg(any(test, feature = "testing"))]
impl CaptureInner {
    fn push(&self, mut line: String) {
        while line.ends_with('\n') {
            line.pop();
        }
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
        self.changed.notify_waiters();
    }
}

/// Lines kept by [`AccessLogger::capture`], without their trailing newline.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone)]
pub struct CapturedLines {
    inner: Arc<CaptureInner>,
}

#[cfg(any(test, feature = "testing"))]
impl fmt::Debug for CapturedLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lines()).finish()
    }
}

#[cfg(any(test, feature = "testing"))]
impl CapturedLines {
    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Number of lines so far.
    pub fn len(&self) -> usize {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `n` lines were logged (or `timeout` passes) and returns all lines.
    /// Access lines are written when a request completes, which may be just after the client
    /// saw the response; tests wait here instead of sleeping.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.lines(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
