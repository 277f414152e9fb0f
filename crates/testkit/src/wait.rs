//! Waiting with deadlines: [`eventually`] for conditions only observable by polling (external
//! processes, files). The servers' own waits (`wait_for_requests`, ...) are woken by
//! notifications instead.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A wait gave up at its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// The deadline that passed.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.after, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Evaluates `cond` until it returns true or `timeout` passes. The interval between checks is
/// only how often an external state is looked at; results are never inferred from elapsed time.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TimedOut {
                what: "condition".to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep_until((tokio::time::Instant::now() + POLL_INTERVAL).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn eventually_returns_once_true() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        eventually(Duration::from_secs(5), move || {
            let c = c.clone();
            async move { c.fetch_add(1, Ordering::SeqCst) >= 3 }
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn eventually_times_out() {
        let err = eventually(Duration::from_millis(100), || async { false })
            .await
            .unwrap_err();
        assert_eq!(err.after, Duration::from_millis(100));
        assert!(err.to_string().contains("timed out"));
    }
}
