//! How forwarding fails and when it retries: Envoy's reset reasons, the mapping of every
//! failure to status, response flag, `%RESPONSE_CODE_DETAILS%` and body ([`Failure::reply`]),
//! the retry-on conditions for failures and responses, and the jittered exponential back-off
//! (25ms base, 250ms cap).

use std::net::SocketAddr;
use std::time::Duration;

use egress_snapshot::snapshot::RetryPolicy;
use http::{HeaderMap, Response};
use rand::Rng;
use tokio::time::Instant;

use super::body::Body;
use super::local::{self, NO_HEALTHY_UPSTREAM, UPSTREAM_TIMEOUT};
use super::pool::{CheckoutError, ConnMeta};
use crate::accesslog::{LogEntry, ResponseFlag};
use crate::connect::lb::Outcome;

/// Envoy's default retry back-off base interval, and its cap (10x).
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Envoy's reset reasons that reach a local reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The connection closed or reset before the response headers.
    ConnectionTermination,
    /// The upstream sent something that is not HTTP.
    ProtocolError,
    /// HTTP/2 `REFUSED_STREAM`.
    RefusedStream,
}

/// The kinds of failure.
#[derive(Debug)]
pub enum FailureKind {
    /// No endpoint to connect to (`UH`); `details` replaces `no_healthy_upstream` in
    /// `%RESPONSE_CODE_DETAILS%` (the resolved-address guard's refusal).
    NoHealthyUpstream {
        /// `%RESPONSE_CODE_DETAILS%`, when not `no_healthy_upstream`.
        details: Option<String>,
    },
    /// A dynamic forward proxy's requested name did not resolve (`DF`,
    /// `dns_resolution_failure`, as Envoy's dynamic forward proxy answers).
    DnsResolutionFailed,
    /// Connecting (TCP or TLS) failed (`UF`), with Envoy's transport failure reason.
    ConnectFailure {
        /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
        transport: Option<String>,
    },
    /// Connection pool limits reached (`UO`).
    Overflow,
    /// The upstream reset before responding.
    Reset(Reset),
    /// The per-try timeout fired (`UT`).
    PerTryTimeout,
}

/// Why an attempt produced no response.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The connection involved, if one was open.
    pub meta: Option<ConnMeta>,
    /// The endpoint involved, if one was picked.
    pub host: Option<SocketAddr>,
}

impl Failure {
    /// A failure of `kind` on the connection `meta`, if any.
    pub fn new(kind: FailureKind, meta: Option<ConnMeta>) -> Failure {
        Failure {
            kind,
            host: meta.map(|m| m.peer),
            meta,
        }
    }

    /// A failure to get a connection.
    pub fn from_checkout(err: CheckoutError) -> Failure {
        match err {
            CheckoutError::Connect(e) => {
                let kind = match e.response_flag() {
                    ResponseFlag::NoHealthyUpstream => FailureKind::NoHealthyUpstream {
                        details: e.response_code_details(),
                    },
                    ResponseFlag::DnsResolutionFailed => FailureKind::DnsResolutionFailed,
                    _ => FailureKind::ConnectFailure {
                        transport: e.transport_failure_reason(),
                    },
                };
                Failure {
                    kind,
                    meta: None,
                    host: e.upstream_host(),
                }
            }
            CheckoutError::Overflow => Failure::new(FailureKind::Overflow, None),
            CheckoutError::Handshake(e, meta) => Failure::from_send(&e, meta),
        }
    }

    /// A failure of the request on an open connection.
    pub fn from_send(err: &hyper::Error, meta: ConnMeta) -> Failure {
        let reset = if err.is_parse() || err.is_parse_status() {
            Reset::ProtocolError
        } else if is_refused_stream(err) {
            Reset::RefusedStream
        } else {
            Reset::ConnectionTermination
        };
        tracing::debug!(error = %err, peer = %meta.peer, "upstream request failed");
        Failure::new(FailureKind::Reset(reset), Some(meta))
    }

    /// True if `policy` retries this failure.
    pub fn retriable(&self, policy: &RetryPolicy) -> bool {
        let on = |c: &str| policy.retry_on.iter().any(|r| r == c);
        let any_reset = on("reset") || on("5xx") || on("gateway-error");
        match &self.kind {
            FailureKind::NoHealthyUpstream { .. }
            | FailureKind::DnsResolutionFailed
            | FailureKind::Overflow => false,
            FailureKind::ConnectFailure { .. } => {
                any_reset || on("connect-failure") || on("reset-before-request")
            }
            FailureKind::Reset(Reset::RefusedStream) => any_reset || on("refused-stream"),
            FailureKind::Reset(_) => any_reset,
            FailureKind::PerTryTimeout => any_reset,
        }
    }

    /// The local reply, with the access-log fields.
    pub fn reply(self, retried: bool, entry: &mut LogEntry) -> Response<Body> {
        entry.upstream_host = self.host;
        entry.upstream_local_address = self.meta.map(|m| m.local);
        let (status, flag, details, body) = match &self.kind {
            FailureKind::NoHealthyUpstream { details } => (
                503,
                ResponseFlag::NoHealthyUpstream,
                details
                    .clone()
                    .unwrap_or_else(|| "no_healthy_upstream".to_owned()),
                NO_HEALTHY_UPSTREAM.to_owned(),
            ),
            FailureKind::DnsResolutionFailed => (
                503,
                ResponseFlag::DnsResolutionFailed,
                "dns_resolution_failure".to_owned(),
                "DNS resolution failure".to_owned(),
            ),
            FailureKind::ConnectFailure { transport } => {
                entry
                    .upstream_transport_failure_reason
                    .clone_from(transport);
                let reason = "connection failure";
                (
                    503,
                    ResponseFlag::UpstreamConnectionFailure,
                    local::upstream_reset_details(reason, transport.as_deref()),
                    local::upstream_reset_body(retried, reason, transport.as_deref()),
                )
            }
            FailureKind::Overflow => (
                503,
                ResponseFlag::UpstreamOverflow,
                local::upstream_reset_details("overflow", None),
                local::upstream_reset_body(retried, "overflow", None),
            ),
            FailureKind::Reset(reset) => {
                let (status, flag, reason) = match reset {
                    Reset::ConnectionTermination => (
                        503,
                        ResponseFlag::UpstreamConnectionTermination,
                        "connection termination",
                    ),
                    Reset::ProtocolError => {
                        (502, ResponseFlag::UpstreamProtocolError, "protocol error")
                    }
                    Reset::RefusedStream => (
                        503,
                        ResponseFlag::UpstreamRemoteReset,
                        "remote refused stream reset",
                    ),
                };
                (
                    status,
                    flag,
                    local::upstream_reset_details(reason, None),
                    local::upstream_reset_body(retried, reason, None),
                )
            }
            FailureKind::PerTryTimeout => (
                504,
                ResponseFlag::UpstreamRequestTimeout,
                "upstream_per_try_timeout".to_owned(),
                UPSTREAM_TIMEOUT.to_owned(),
            ),
        };
        entry.response_flags.insert(flag);
        entry.response_code_details = Some(details);
        local::reply(status, &body)
    }
}

/// True if the HTTP/2 stream was refused (`REFUSED_STREAM`), by the typed cause.
fn is_refused_stream(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cause = e.source();
    }
    false
}

/// 503 `NC`: the route names a cluster the snapshot does not have.
pub fn no_cluster(entry: &mut LogEntry) -> Response<Body> {
    entry.response_flags.insert(ResponseFlag::NoClusterFound);
    entry.response_code_details = Some("cluster_not_found".to_owned());
    local::reply(503, "")
}

/// 504 `UT`: the route timeout fired; `tried` is the connection in use, if any.
pub fn timeout_reply(
    entry: &mut LogEntry,
    tried: Option<ConnMeta>,
    details: &str,
) -> Response<Body> {
    if let Some(m) = tried {
        entry.upstream_host = Some(m.peer);
        entry.upstream_local_address = Some(m.local);
    }
    entry
        .response_flags
        .insert(ResponseFlag::UpstreamRequestTimeout);
    entry.response_code_details = Some(details.to_owned());
    local::reply(504, UPSTREAM_TIMEOUT)
}

/// The outlier-detection outcome of a response status.
pub fn outcome_of(status: u16) -> Outcome {
    if status >= 500 {
        Outcome::ServerError
    } else {
        Outcome::Success
    }
}

/// True if `policy` retries a response with `status` (and gRPC status header).
pub fn retries_on_response(policy: &RetryPolicy, status: u16, headers: &HeaderMap) -> bool {
    let grpc = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    policy.retry_on.iter().any(|on| match on.as_str() {
        "5xx" => status >= 500,
        "gateway-error" => matches!(status, 502..=504),
        "retriable-4xx" => status == 409,
        "retriable-status-codes" => policy.retriable_status_codes.contains(&status),
        "cancelled" => grpc == Some(1),
        "deadline-exceeded" => grpc == Some(4),
        "resource-exhausted" => grpc == Some(8),
        "internal" => grpc == Some(13),
        "unavailable" => grpc == Some(14),
        _ => false,
    })
}

/// Sleeps Envoy's jittered back-off before retry number `retry` (1-based); false if the route
/// deadline comes first.
pub async fn back_off(retry: u32, deadline: Option<Instant>) -> bool {
    let factor = (1u32 << retry.min(16)) - 1;
    let upper = BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX);
    let millis = u64::try_from(upper.as_millis()).unwrap_or(250).max(1);
    let wait = Duration::from_millis(rand::rng().random_range(0..millis));
    let until = Instant::now() + wait;
    match deadline {
        Some(d) if d <= until => {
            tokio::time::sleep_until(d).await;
            false
        }
        _ => {
            tokio::time::sleep_until(until).await;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_refused_stream_is_recognised_by_its_h2_reason() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] h2::Error);
        let refused = Wrapped(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(is_refused_stream(&refused));
        let cancel = Wrapped(h2::Error::from(h2::Reason::CANCEL));
        assert!(!is_refused_stream(&cancel));
        assert!(!is_refused_stream(&std::io::Error::other("REFUSED_STREAM")));
    }

    #[test]
    fn retry_conditions() {
        let p = RetryPolicy::istio_default();
        let h = HeaderMap::new();
        assert!(!retries_on_response(&p, 500, &h));
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", "14".parse().unwrap());
        assert!(retries_on_response(&p, 200, &grpc));
        let p5 = RetryPolicy {
            retry_on: vec!["5xx".into()],
            ..RetryPolicy::istio_default()
        };
        assert!(retries_on_response(&p5, 500, &h));
        let codes = RetryPolicy {
            retry_on: vec!["retriable-status-codes".into()],
            retriable_status_codes: vec![418],
            ..RetryPolicy::istio_default()
        };
        assert!(retries_on_response(&codes, 418, &h));
        let f = Failure::new(FailureKind::ConnectFailure { transport: None }, None);
        assert!(f.retriable(&p));
        assert!(
            !Failure::new(FailureKind::NoHealthyUpstream { details: None }, None).retriable(&p)
        );
        assert!(!Failure::new(FailureKind::PerTryTimeout, None).retriable(&p));
        assert!(Failure::new(FailureKind::PerTryTimeout, None).retriable(&p5));
    }
}
