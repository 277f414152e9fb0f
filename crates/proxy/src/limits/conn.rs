//! One downstream connection as the limits see it: how many streams (requests, or a TCP
//! proxy session) are in flight, since when it has had none, and when the head of the next
//! HTTP/1.1 request began arriving.
//!
//! The decision which limit fires next is a pure function of those facts and an injected
//! `now` ([`next`]), so it is tested without sockets or clocks; [`watch`] sleeps on tokio's
//! clock (paused in tests) until that moment, waking early when the facts change.
//! [`Tracked`] is the I/O wrapper that notes the first byte of a request head, and
//! [`StreamGuard`] holds one stream in flight.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Limit, Limits};

/// No head in progress.
const NONE: u64 = u64::MAX;

tokio::task_local! {
    /// The connection the current task serves (set by the accept loops, read by the HTTP
    /// server and the TCP proxy).
    pub static CURRENT: Arc<ConnState>;
}

/// The connection the current task serves, if the accept loop registered one.
pub fn current() -> Option<Arc<ConnState>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The limit-relevant facts of one connection. Times are milliseconds since `epoch`.
#[derive(Debug)]
pub struct ConnState {
    epoch: Instant,
    /// Streams in flight.
    active: AtomicU32,
    /// When the last stream ended (or the connection opened), valid while `active` is 0.
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived, or [`NONE`].
    head_started: AtomicU64,
    /// The connection speaks HTTP/2 (its streams' headers are the codec's business).
    h2: AtomicBool,
    /// Whether any byte was read yet (the HTTP/2 preface is recognised on the first read).
    read_any: AtomicBool,
    /// Asked to close to make room for another connection.
    shed: AtomicBool,
    changed: Notify,
}

impl ConnState {
    /// A connection opened at `now`, with times counted from `epoch`.
    pub fn new(epoch: Instant, now: Instant) -> ConnState {
        ConnState {
            epoch,
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(millis(epoch, now)),
            head_started: AtomicU64::new(NONE),
            h2: AtomicBool::new(false),
            read_any: AtomicBool::new(false),
            shed: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// A connection not known to any registry (a server driven directly, as in tests).
    pub fn standalone() -> Arc<ConnState> {
        let now = Instant::now();
        Arc::new(ConnState::new(now, now))
    }

    fn now(&self) -> u64 {
        millis(self.epoch, Instant::now())
    }

    /// A stream (request) starts: its head is complete.
    pub fn begin_stream(self: &Arc<Self>) -> StreamGuard {
        self.head_started.store(NONE, Ordering::Release);
        self.active.fetch_add(1, Ordering::AcqRel);
        StreamGuard(Arc::clone(self))
    }

    fn end_stream(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.changed.notify_one();
        }
    }

    /// Bytes were read from the client.
    fn on_read(&self, first: &[u8]) {
        if !self.read_any.load(Ordering::Acquire)
            && !self.read_any.swap(true, Ordering::AcqRel)
            && first.starts_with(b"PRI ")
        {
            self.h2.store(true, Ordering::Release);
        }
        if self.active.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == NONE
            && !self.h2.load(Ordering::Acquire)
        {
            self.head_started.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// Asks the connection to close (it is idle and its descriptor is wanted); false if it
    /// was asked before.
    pub fn shed(&self) -> bool {
        let first = !self.shed.swap(true, Ordering::AcqRel);
        self.changed.notify_one();
        first
    }

    /// True while no stream is in flight and the connection was not asked to close yet.
    pub fn is_idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0 && !self.shed.load(Ordering::Acquire)
    }

    /// Since when it has been idle (milliseconds since the epoch); meaningful when idle.
    pub fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::Acquire)
    }

    /// The facts at `now`.
    pub fn view(&self, now: Instant) -> View {
        let head = self.head_started.load(Ordering::Acquire);
        View {
            now: millis(self.epoch, now),
            active: self.active.load(Ordering::Acquire),
            idle_since: self.idle_since.load(Ordering::Acquire),
            head_started: (head != NONE).then_some(head),
            h2: self.h2.load(Ordering::Acquire),
        }
    }
}

fn millis(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX - 1)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// One stream in flight; dropping it ends the stream.
#[derive(Debug)]
pub struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.end_stream();
    }
}

/// A connection's facts at one moment (milliseconds since its registry's epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Now.
    pub now: u64,
    /// Streams in flight.
    pub active: u32,
    /// When the connection last became idle.
    pub idle_since: u64,
    /// When the head of the next request began, if it has.
    pub head_started: Option<u64>,
    /// HTTP/2.
    pub h2: bool,
}

/// What happens next to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This limit has fired.
    Expired(Limit),
    /// Nothing before this moment (milliseconds since the epoch).
    At(u64),
    /// Nothing until the facts change.
    Never,
}

/// Which limit fires next for a connection with the facts `v` (HTTP connections: request
/// headers timeout, then idle timeout).
pub fn next(v: View, limits: &Limits) -> Next {
    let header = limits
        .request_headers_timeout
        .zip(v.head_started.filter(|_| !v.h2 && v.active == 0))
        .map(|(t, started)| (started.saturating_add(ms(t)), Limit::RequestHeadersTimeout));
    let idle = limits
        .idle_timeout
        .filter(|_| v.active == 0)
        .map(|t| (v.idle_since.saturating_add(ms(t)), Limit::IdleTimeout));
    match [header, idle]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
    {
        Some((at, limit)) if at <= v.now => Next::Expired(limit),
        Some((at, _)) => Next::At(at),
        None => Next::Never,
    }
}

/// Resolves when a limit fires for the connection `state` (or it is shed), with that limit.
pub async fn watch(state: &ConnState, limits: &Limits) -> Limit {
    loop {
        let changed = state.changed.notified();
        if state.shed.load(Ordering::Acquire) {
            return Limit::IdleConnectionShed;
        }
        match next(state.view(Instant::now()), limits) {
            Next::Expired(limit) => return limit,
            Next::At(at) => {
                let deadline = state.epoch + Duration::from_millis(at);
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = changed => {}
                }
            }
            Next::Never => changed.await,
        }
    }
}

/// Resolves to `None` when `fut` makes no progress and `activity` does not move for `idle`
/// (a stream idle timeout); `Some` with the output otherwise. `idle` `None`: never.
pub async fn idle_bound<F: Future>(
    fut: F,
    idle: Option<Duration>,
    activity: &AtomicU64,
) -> Option<F::Output> {
    let Some(idle) = idle else {
        return Some(fut.await);
    };
    tokio::pin!(fut);
    let mut seen = activity.load(Ordering::Relaxed);
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                let now_seen = activity.load(Ordering::Relaxed);
                if now_seen == seen {
                    return None;
                }
                seen = now_seen;
                deadline = Instant::now() + idle;
            }
        }
    }
}

/// A downstream stream that reports what it reads to its connection's [`ConnState`].
#[derive(Debug)]
pub struct Tracked<I> {
    io: I,
    state: Arc<ConnState>,
}

impl<I> Tracked<I> {
    /// Wraps `io` of the connection `state`.
    pub fn new(io: I, state: Arc<ConnState>) -> Self {
        Tracked { io, state }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn view(now: u64, active: u32, idle_since: u64, head: Option<u64>, h2: bool) -> View {
        View {
            now,
            active,
            idle_since,
            head_started: head,
            h2,
        }
    }

    #[test]
    fn a_silent_connection_lives_until_the_idle_timeout() {
        let l = Limits::default();
        assert_eq!(next(view(0, 0, 0, None, false), &l), Next::At(3_600_000));
        assert_eq!(
            next(view(3_600_000, 0, 0, None, false), &l),
            Next::Expired(Limit::IdleTimeout)
        );
    }

    #[test]
    fn a_started_head_must_end_within_the_headers_timeout() {
        let l = Limits::default();
        assert_eq!(
            next(view(5_000, 0, 0, Some(1_000), false), &l),
            Next::At(11_000)
        );
        assert_eq!(
            next(view(11_000, 0, 0, Some(1_000), false), &l),
            Next::Expired(Limit::RequestHeadersTimeout)
        );
        // HTTP/2 streams are the codec's; only the idle timeout applies.
        assert_eq!(
            next(view(11_000, 0, 0, Some(1_000), true), &l),
            Next::At(3_600_000)
        );
    }

    #[test]
    fn streams_in_flight_hold_the_connection_open() {
        let l = Limits::default();
        assert_eq!(next(view(10_000_000, 2, 0, None, false), &l), Next::Never);
        let off = Limits {
            idle_timeout: None,
            request_headers_timeout: None,
            ..Limits::default()
        };
        assert_eq!(
            next(view(10_000_000, 0, 0, Some(0), false), &off),
            Next::Never
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_clock_restarts_when_the_last_stream_ends() {
        let epoch = Instant::now();
        let state = Arc::new(ConnState::new(epoch, epoch));
        let limits = Limits {
            idle_timeout: Some(Duration::from_secs(60)),
            ..Limits::default()
        };
        let stream = state.begin_stream();
        tokio::time::advance(Duration::from_secs(120)).await;
        drop(stream);
        let started = Instant::now();
        assert_eq!(watch(&state, &limits).await, Limit::IdleTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_byte_starts_the_headers_clock_and_shedding_wakes_the_watch() {
        let epoch = Instant::now();
        let state = Arc::new(ConnState::new(epoch, epoch));
        let limits = Limits::default();
        state.on_read(b"G");
        let started = Instant::now();
        assert_eq!(watch(&state, &limits).await, Limit::RequestHeadersTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        let other = Arc::new(ConnState::new(epoch, Instant::now()));
        let waiting = {
            let other = Arc::clone(&other);
            tokio::spawn(async move { watch(&other, &Limits::default()).await })
        };
        tokio::task::yield_now().await;
        assert!(other.shed());
        assert!(!other.shed());
        assert_eq!(waiting.await.unwrap(), Limit::IdleConnectionShed);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_bound_ends_a_stream_only_when_nothing_moves() {
        let activity = AtomicU64::new(0);
        let idle = Some(Duration::from_secs(300));
        let never = std::future::pending::<()>();
        let started = Instant::now();
        assert!(idle_bound(never, idle, &activity).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(300));

        let slow = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(200)).await;
                activity.fetch_add(1, Ordering::Relaxed);
            }
            7
        };
        assert_eq!(idle_bound(slow, idle, &activity).await, Some(7));
    }
}
