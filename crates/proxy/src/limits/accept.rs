//! The accept step every listener shares. Before accepting it waits for room under the
//! listener's connection limit and the descriptor budget (shedding the oldest idle
//! connection when full); when accepting fails for want of descriptors (EMFILE, ENFILE) it
//! sheds an idle connection and waits for it to close, or backs off exponentially (10 ms to
//! 1 s) when nothing is idle, so the loop never spins. Both conditions are counted every
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
/// How long a shed connection gets to close before the listener looks again.
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
        if self.last.is_some_and(|last| now.duration_since(last) < interval) {
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
            self.wait_for_room().await;
            self.attempts += 1;
            match socket.accept().await {
                Ok((stream, remote)) => {
                    self.backoff = BACKOFF_MIN;
                    return (stream, remote, self.registry.register(&self.listener));
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
                    if registry.shed_one() {
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

    /// Waits until the listener is under its limit and the budget has room.
    async fn wait_for_room(&mut self) {
        let mut wait = BACKOFF_MIN;
        loop {
            let freed = self.registry.freed();
            match self.registry.admit(&self.listener) {
                Admission::Room => return,
                Admission::Shed => {
                    let _ = tokio::time::timeout(SHED_WAIT, freed).await;
                }
                Admission::Full => {
                    self.registry.counters().hit(Limit::ConnectionLimit);
                    if let Some(n) = self.full_log.due(Instant::now(), LOG_INTERVAL) {
                        tracing::warn!(
                            listener = %self.listener,
                            times = n,
                            open = self.registry.open_on(&self.listener),
                            "connection limit reached and no idle connection to shed: not accepting"
                        );
                    }
                    let _ = tokio::time::timeout(wait, freed).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
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
