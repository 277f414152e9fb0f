//! The one drain primitive of a proxy instance: signal, stop accepting, grace deadline, force.
//!
//! [`Drain::signal`] tells listeners to stop accepting and HTTP connections to finish their
//! in-flight requests; every piece of in-flight work holds a [`DrainGuard`];
//! [`Drain::wait_idle`] waits until all guards are dropped or the grace deadline passes; and
//! [`Drain::force`] tells whatever is still running to close now.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

/// Drain state shared by every clone.
#[derive(Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

struct Inner {
    /// `true` once draining started.
    signaled: watch::Sender<bool>,
    /// `true` once the grace period is over and remaining work must close.
    forced: watch::Sender<bool>,
    /// Live guards.
    in_flight: AtomicUsize,
    /// Woken whenever the last guard is dropped.
    idle: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.is_draining())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Drain {
    /// A drain that has not been signalled, with no work in flight.
    pub fn new() -> Drain {
        Drain {
            inner: Arc::new(Inner {
                signaled: watch::Sender::new(false),
                forced: watch::Sender::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Start draining: listeners stop accepting, connections finish what they are doing.
    /// Idempotent.
    pub fn signal(&self) {
        self.inner.signaled.send_replace(true);
    }

    /// True once [`Drain::signal`] was called.
    pub fn is_draining(&self) -> bool {
        *self.inner.signaled.borrow()
    }

    /// Resolves once draining has started (immediately if it already has).
    pub async fn signaled(&self) {
        let mut rx = self.inner.signaled.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// The grace period is over: whatever still runs must close now. Implies [`Drain::signal`].
    pub fn force(&self) {
        self.signal();
        self.inner.forced.send_replace(true);
    }

    /// True once [`Drain::force`] was called.
    pub fn is_forced(&self) -> bool {
        *self.inner.forced.borrow()
    }

    /// Resolves once the drain was forced (immediately if it already was).
    pub async fn forced(&self) {
        let mut rx = self.inner.forced.subscribe();
        let _ = rx.wait_for(|forced| *forced).await;
    }

    /// Registers one piece of in-flight work (a connection); dropping the guard ends it.
    pub fn guard(&self) -> DrainGuard {
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        DrainGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Number of live guards.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Waits until every guard is dropped or `grace` elapses. True if the work finished in time.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            // Register interest before checking, so a drop between the check and the await
            // is not missed.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.in_flight() == 0,
            }
        }
    }
}

/// One piece of in-flight work; see [`Drain::guard`].
#[must_use = "the work counts as in flight only while the guard lives"]
pub struct DrainGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DrainGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DrainGuard")
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn idle_without_guards() {
        let d = Drain::new();
        assert!(!d.is_draining());
        assert!(d.wait_idle(Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn signal_wakes_waiters() {
        let d = Drain::new();
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.signaled().await });
        d.signal();
        waiter.await.unwrap();
        assert!(d.is_draining());
        assert!(!d.is_forced());
        d.force();
        d.forced().await;
        assert!(d.is_forced());
    }

    #[tokio::test]
    async fn waits_for_guards_within_grace() {
        let d = Drain::new();
        let g = d.guard();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = rx.await;
            drop(g);
        });
        let d2 = d.clone();
        let wait = tokio::spawn(async move { d2.wait_idle(Duration::from_secs(30)).await });
        tx.send(()).unwrap();
        assert!(wait.await.unwrap());
        assert_eq!(d.in_flight(), 0);
    }

    #[tokio::test]
    async fn grace_deadline_expires() {
        let d = Drain::new();
        let _g = d.guard();
        assert!(!d.wait_idle(Duration::from_millis(20)).await);
        assert_eq!(d.in_flight(), 1);
    }
}
