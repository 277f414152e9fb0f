//! Body plumbing: the boxed body type, a counting wrapper for `%BYTES_RECEIVED%`, the
//! downstream response wrapper that writes the access-log line when the response is done
//! (as Envoy logs at stream completion), and the upstream response wrapper that hands its
//! connection back to the pool once the body was read to the end.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use super::pool::Lease;
use crate::accesslog::{AccessLogger, LogEntry, ResponseFlag};

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the proxy produces.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What went wrong reading a request body from the downstream: the client's fault, not
/// the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamFault {
    /// The body broke its framing (a malformed chunk): 400 `DPE`.
    Malformed,
    /// The client stopped sending (closed or reset mid-body, or never sent the body it
    /// announced with `Expect: 100-continue`): 400 `DC`.
    Abandoned,
}

impl DownstreamFault {
    /// The fault a request body's read error shows: an I/O error of unexpected end (or no
    /// I/O error at all: a reset, a closed connection) is an abandoned body, any other I/O
    /// error (the codec's framing errors) a malformed one.
    pub fn of(err: &(dyn std::error::Error + 'static)) -> DownstreamFault {
        let mut cause = Some(err);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return if io.kind() == std::io::ErrorKind::UnexpectedEof {
                    DownstreamFault::Abandoned
                } else {
                    DownstreamFault::Malformed
                };
            }
            cause = e.source();
        }
        DownstreamFault::Abandoned
    }
}

/// Where a request body's reader records a [`DownstreamFault`] for the router to see.
pub type FaultCell = Arc<std::sync::OnceLock<DownstreamFault>>;

/// Counts the data bytes that pass through; a read error is recorded as the downstream's
/// fault when a [`FaultCell`] is given.
pub struct Counting<B> {
    inner: B,
    count: Arc<AtomicU64>,
    fault: Option<FaultCell>,
}

impl<B> Counting<B> {
    /// Wraps `inner`, adding to `count`.
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counting {
            inner,
            count,
            fault: None,
        }
    }

    /// Records read errors in `fault`.
    pub fn with_fault(mut self, fault: FaultCell) -> Self {
        self.fault = Some(fault);
        self
    }
}

impl<B> HttpBody for Counting<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                if let Some(cell) = &self.fault {
                    let _ = cell.set(DownstreamFault::of(&*e));
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is needed to write the access-log line of a request once its response is done.
pub struct PendingLog {
    /// The entry, complete but for bytes and duration.
    pub entry: LogEntry,
    /// Where it goes.
    pub logger: AccessLogger,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes read so far.
    pub received: Arc<AtomicU64>,
}

/// The downstream response body: counts `%BYTES_SENT%` and logs when finished or dropped.
pub struct Logged {
    inner: Body,
    sent: u64,
    /// The body's exact length when known (Content-Length): once that much is sent the
    /// response is complete, even if the server stops polling before the body reports its
    /// end (an HTTP/2 upstream's END_STREAM can arrive after the last data).
    exact: Option<u64>,
    log: Option<PendingLog>,
}

impl Logged {
    /// Wraps `inner`; `log` is written when the body ends (or is dropped).
    pub fn new(inner: Body, log: PendingLog) -> Self {
        let exact = inner.size_hint().exact();
        Logged {
            inner,
            sent: 0,
            exact,
            log: Some(log),
        }
    }

    fn finish(&mut self) {
        if let Some(mut log) = self.log.take() {
            log.entry.bytes_sent = self.sent;
            log.entry.bytes_received = log.received.load(Ordering::Relaxed);
            log.entry.duration = Some(log.started.elapsed());
            log.logger.log(&log.entry);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(log) = self.log.as_mut() {
                    log.entry
                        .response_flags
                        .insert(ResponseFlag::UpstreamRemoteReset);
                    log.entry.response_code_details = Some(
                        "upstream_reset_after_response_started{connection_termination}".to_owned(),
                    );
                }
                self.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // Dropped before the end: the downstream went away mid-response (a HEAD response
        // has no body to send).
        let complete = self.inner.is_end_stream() || self.exact.is_some_and(|len| self.sent >= len);
        if !complete
            && let Some(log) = self.log.as_mut()
            && log.entry.method.as_deref() != Some("HEAD")
        {
            log.entry
                .response_flags
                .insert(ResponseFlag::DownstreamConnectionTermination);
        }
        self.finish();
    }
}

/// An upstream response body holding its connection; read to the end, the connection goes
/// back to the pool; dropped early, the connection is closed.
pub struct Pooled {
    inner: Incoming,
    lease: Option<Lease>,
}

impl Pooled {
    /// Wraps `inner`, releasing `lease` at the end of the body.
    pub fn new(inner: Incoming, lease: Lease) -> Self {
        let mut p = Pooled {
            inner,
            lease: Some(lease),
        };
        if p.inner.is_end_stream() {
            p.release();
        }
        p
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl HttpBody for Pooled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
                    self.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken body: the connection is not reusable.
                self.lease = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.release();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
