//! The downstream limits on the HTTP side ([`crate::limits::Limits`]): the server codec's
//! settings (header count and size answered 431 by the codec; HTTP/2 concurrency as
//! Envoy's edge-proxy advice), the same header check on the decoded request (HTTP/2 header
//! lists are sized differently), the response wrapper that holds a stream in flight on its
//! connection and ends a response whose body stalls past the stream idle timeout, and the
//! local replies of these limits.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::time::{Instant, Sleep};

use super::body::{Body, BoxError};
use crate::accesslog::{LogEntry, ResponseFlag};
use crate::ctx::Ctx;
use crate::limits::conn::StreamGuard;
use crate::limits::{Counters, Limit, Limits};

/// How long an idle connection asked to close gets to say goodbye (HTTP/2 GOAWAY).
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Streams one HTTP/2 connection may have open (Envoy's edge-proxy advice: 100).
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// `%RESPONSE_CODE_DETAILS%` of a request refused for its headers.
pub const HEADERS_TOO_LARGE: &str = "request_headers_too_large";

/// `%RESPONSE_CODE_DETAILS%` of a stream ended by the stream idle timeout (Envoy's).
pub const STREAM_IDLE_TIMEOUT: &str = "stream_idle_timeout";

/// The body of Envoy's stream idle timeout reply.
pub const STREAM_TIMEOUT_BODY: &str = "stream timeout";

/// The server codec for downstream connections under `limits`. Request headers are timed
/// by the connection tracker ([`crate::limits::conn`]), which starts the clock at the
/// first byte of a head as Envoy does, so the codec's own header timer stays off.
pub fn server_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let bytes = limits.max_request_headers_bytes.max(1);
    builder
        .http1()
        .header_read_timeout(None)
        .max_headers(limits.max_request_headers.max(1))
        // The codec refuses (431) a head that does not fit its buffer; a smaller one over
        // the limit is refused by `headers_too_large`.
        .max_buf_size(bytes.saturating_add(1).max(8192));
    builder
        .http2()
        .max_header_list_size(u32::try_from(bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// Counts what a connection's error says about the limits (a head over the codec's
/// limits was answered 431 by the codec).
pub fn note_connection_error(err: &(dyn std::error::Error + 'static), ctx: &Ctx) {
    if err
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_parse_too_large)
    {
        ctx.conns.counters().hit(Limit::RequestHeadersTooLarge);
    }
}

/// True if the decoded request is over the header limits: more headers than allowed, or
/// more bytes of request line and headers.
pub fn headers_too_large(parts: &Parts, limits: &Limits) -> bool {
    if parts.headers.len() > limits.max_request_headers {
        return true;
    }
    let uri = parts.uri.scheme_str().map_or(0, |s| s.len() + 3)
        + parts.uri.authority().map_or(0, |a| a.as_str().len())
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + uri + 12;
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers > limits.max_request_headers_bytes
}

/// The 431 reply to a request over the header limits.
pub fn headers_too_large_reply(entry: &mut LogEntry, counters: &Counters) -> Response<Body> {
    counters.hit(Limit::RequestHeadersTooLarge);
    entry.response_code_details = Some(HEADERS_TOO_LARGE.to_owned());
    super::local::reply(431, "")
}

/// The 408 `SI` reply when the stream idle timeout fired before the response started.
pub fn stream_idle_reply(entry: &mut LogEntry, counters: &Counters) -> Response<Body> {
    counters.hit(Limit::StreamIdleTimeout);
    entry.response_flags.insert(ResponseFlag::StreamIdleTimeout);
    entry.response_code_details = Some(STREAM_IDLE_TIMEOUT.to_owned());
    super::local::reply(408, STREAM_TIMEOUT_BODY)
}

/// `resp` with its body holding `stream` in flight until it ends, and ended with an error
/// (a reset) when it stalls for the stream idle timeout.
pub fn guard_response(resp: Response<Body>, stream: StreamGuard, ctx: &Ctx) -> Response<Body> {
    let idle = ctx.options.limits.stream_idle_timeout;
    let counters = Arc::clone(ctx.conns.counters());
    resp.map(|inner| {
        Guarded {
            inner,
            _stream: stream,
            idle,
            timer: None,
            counters,
        }
        .boxed_unsync()
    })
}

/// Why a response body was ended.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout")]
pub struct StreamIdle;

struct Guarded {
    inner: Body,
    _stream: StreamGuard,
    idle: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    counters: Arc<Counters>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let (Some(timer), Some(idle)) = (this.timer.as_mut(), this.idle) {
                    timer.as_mut().reset(Instant::now() + idle);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.counters.hit(Limit::StreamIdleTimeout);
                    return Poll::Ready(Some(Err(Box::new(StreamIdle))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
