//! The accept step every listener shares. A connection accepted while the listener is at
//! its connection limit (or the process at its descriptor budget) takes the place of the
//! oldest idle connection, which is asked to close; with nothing idle it is refused
//! (closed) and accepting pauses until a connection closes (back-off up to 1 s). When
//! accepting fails for want of descriptors (EMFILE, ENFILE) it
//! lowers the connection budget to what fits (keeping two descriptors spare, for a new client
//! and its upstream connection), sheds the oldest idle connections to free them and waits
//! for them to close, or backs off exponentially (10 ms to 1 s) when nothing is idle, so the
//! loop never spins. Both conditions are counted every
//! time and logged at most once per [`LOG_INTERVAL`] per listener, with the count since the
//! last line.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Limit;
use super::registry::{Admission, Connections, Slot};

/// The shortest and longest pause after a failed accept with nothing to shed.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a shed connection gets to close before the listener looks again (descriptors).
const SHED_WAIT: Duration = Duration::from_millis(100);
/// At most one log line per condition and listener in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// True if accepting failed because the process or the system is out of descriptors (or
/// the kernel out of memory for the socket).
pub fn out_of_descriptors(err: &io::Error) -> bool {
    use rustix::io::Errno;
    let code = err.raw_os_error();
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|e| code == Some(e.raw_os_error()))
}

/// Logs a recurring condition at most once per interval.
#[derive(Debug, Default)]
pub struct RateLog {
    last: Option<Instant>,
    since: u64,
}

impl RateLog {
    /// Counts one occurrence at `now`; `Some(occurrences since the last line)` when a line
    /// is due.
    pub fn due(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        self.since += 1;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// The accepting side of one listener.
#[derive(Debug)]
pub struct Acceptor {
    registry: Arc<Connections>,
    listener: Arc<str>,
    backoff: Duration,
    full_log: RateLog,
    descriptors_log: RateLog,
    /// Accept calls made (for tests: the loop does not spin).
    pub attempts: u64,
}

impl Acceptor {
    /// The acceptor of `listener`, registering connections in `registry`.
    pub fn new(registry: Arc<Connections>, listener: &str) -> Acceptor {
        Acceptor {
            registry,
            listener: listener.into(),
            backoff: BACKOFF_MIN,
            full_log: RateLog::default(),
            descriptors_log: RateLog::default(),
            attempts: 0,
        }
    }

    /// The next connection, registered. Cancel-safe: dropping the future loses nothing.
    pub async fn accept(&mut self, socket: &TcpListener) -> (TcpStream, SocketAddr, Slot) {
        loop {
            self.attempts += 1;
            match socket.accept().await {
                Ok((stream, remote)) => {
                    if self.admit() {
                        self.backoff = BACKOFF_MIN;
                        return (stream, remote, self.registry.register(&self.listener));
                    }
                    // Over the limit with nothing idle to shed: refused, as Envoy's
                    // listener connection limit refuses; the next ones wait in the backlog.
                    drop(stream);
                    self.pause_until_freed().await;
                }
                Err(err) if out_of_descriptors(&err) => {
                    let counters = self.registry.counters();
                    counters.hit(Limit::DescriptorsExhausted);
                    if let Some(n) = self.descriptors_log.due(Instant::now(), LOG_INTERVAL) {
                        tracing::warn!(
                            listener = %self.listener,
                            error = %err,
                            failures = n,
                            open = self.registry.open(),
                            "out of file descriptors: shedding idle connections and backing off"
                        );
                    }
                    let registry = Arc::clone(&self.registry);
                    let freed = registry.freed();
                    if registry.descriptors_ran_out() > 0 {
                        let _ = tokio::time::timeout(SHED_WAIT, freed).await;
                    } else {
                        self.pause().await;
                    }
                }
                Err(err) => {
                    // ECONNABORTED and the like concern one connection only.
                    tracing::debug!(listener = %self.listener, error = %err, "accept failed");
                    if err.kind() != io::ErrorKind::ConnectionAborted {
                        self.pause().await;
                    }
                }
            }
        }
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Waits for a connection to close, at most the current back-off.
    async fn pause_until_freed(&mut self) {
        let registry = Arc::clone(&self.registry);
        let _ = tokio::time::timeout(self.backoff, registry.freed()).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Whether a connection just accepted may stay: there is room, or the oldest idle
    /// connection was asked to close to make room for it.
    fn admit(&mut self) -> bool {
        match self.registry.admit(&self.listener) {
            Admission::Room | Admission::Shed => true,
            Admission::Full => {
                self.registry.counters().hit(Limit::ConnectionLimit);
                if let Some(n) = self.full_log.due(Instant::now(), LOG_INTERVAL) {
                    tracing::warn!(
                        listener = %self.listener,
                        refused = n,
                        open = self.registry.open_on(&self.listener),
                        "connection limit reached and no idle connection to shed: refusing"
                    );
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_is_logged_once_per_interval_with_its_count() {
        let mut log = RateLog::default();
        let t0 = Instant::now();
        assert_eq!(log.due(t0, LOG_INTERVAL), Some(1));
        for i in 1..100 {
            assert_eq!(log.due(t0 + Duration::from_millis(i), LOG_INTERVAL), None);
        }
        // The 99 suppressed and this one.
        assert_eq!(log.due(t0 + LOG_INTERVAL, LOG_INTERVAL), Some(100));
    }

    #[test]
    fn descriptor_exhaustion_is_recognised_by_its_code() {
        let emfile = io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        assert!(out_of_descriptors(&emfile));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(!out_of_descriptors(&refused));
    }
}
