//! Every open downstream connection of a proxy instance, by listener: admission against the
//! per-listener limit and the descriptor budget, and shedding of the oldest idle connection
//! when either runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::ConnState;
use super::{Counters, Limit, Limits};

/// The open connections of one proxy instance.
#[derive(Debug)]
pub struct Connections {
    epoch: Instant,
    per_listener: usize,
    budget: usize,
    counters: Arc<Counters>,
    inner: Mutex<Inner>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, (Arc<str>, Arc<ConnState>)>,
    by_listener: HashMap<Arc<str>, usize>,
    /// A budget learnt when descriptors ran out below the computed one (other descriptors
    /// in use), and when: it holds for [`LEARNT_FOR`] after the last shortage.
    learnt: Option<(usize, Instant)>,
}

/// How long a budget learnt from a descriptor shortage holds.
pub const LEARNT_FOR: Duration = Duration::from_secs(30);

/// Descriptors kept free when a shortage was met: one for a new client, one for its
/// upstream connection.
const SPARE: usize = 2;

impl Inner {
    fn budget(&self, computed: usize, now: Instant) -> usize {
        match self.learnt {
            Some((learnt, at)) if now.duration_since(at) < LEARNT_FOR => learnt.min(computed),
            _ => computed,
        }
    }
}

/// Whether a listener may accept another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// There is room.
    Room,
    /// Full; an idle connection was asked to close to make room.
    Shed,
    /// Full, and nothing idle to shed.
    Full,
}

impl Connections {
    /// A registry enforcing `limits`' per-listener connection limit and the process's
    /// descriptor budget ([`super::descriptor_budget`]).
    pub fn new(limits: &Limits, counters: Arc<Counters>) -> Connections {
        Connections::with_budget(
            limits.connection_limit(),
            super::descriptor_budget(),
            counters,
        )
    }

    /// A registry with explicit limits: `per_listener` connections per listener,
    /// `budget` in all.
    pub fn with_budget(per_listener: usize, budget: usize, counters: Arc<Counters>) -> Connections {
        Connections {
            epoch: Instant::now(),
            per_listener: per_listener.max(1),
            budget: budget.max(1),
            counters,
            inner: Mutex::default(),
            freed: Notify::new(),
        }
    }

    /// The counters of the limits.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Connections open on `listener`.
    pub fn open_on(&self, listener: &str) -> usize {
        self.lock().by_listener.get(listener).copied().unwrap_or(0)
    }

    /// Connections open in all.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `listener` may accept now; when it is full, the oldest idle connection (of
    /// that listener when the listener's limit is the one reached, of any otherwise) is asked
    /// to close.
    pub fn admit(&self, listener: &str) -> Admission {
        let inner = self.lock();
        let mine = inner.by_listener.get(listener).copied().unwrap_or(0);
        let listener_full = mine >= self.per_listener;
        if !listener_full && inner.open.len() < inner.budget(self.budget, Instant::now()) {
            return Admission::Room;
        }
        let scope = listener_full.then_some(listener);
        if shed_oldest_idle(&inner, scope) {
            self.counters.hit(Limit::IdleConnectionShed);
            Admission::Shed
        } else {
            Admission::Full
        }
    }

    /// Asks the oldest idle connection of any listener to close; false if none is idle.
    pub fn shed_one(&self) -> bool {
        let shed = shed_oldest_idle(&self.lock(), None);
        if shed {
            self.counters.hit(Limit::IdleConnectionShed);
        }
        shed
    }

    /// Descriptors ran out with the connections open now: from now on (for [`LEARNT_FOR`])
    /// the budget keeps [`SPARE`] descriptors free, and the oldest idle connections are
    /// asked to close to free them. How many were asked.
    pub fn descriptors_ran_out(&self) -> usize {
        let mut inner = self.lock();
        let learnt = inner.open.len().saturating_sub(SPARE).max(1);
        inner.learnt = Some((learnt, Instant::now()));
        let mut shed = 0;
        while shed < SPARE && shed_oldest_idle(&inner, None) {
            shed += 1;
        }
        drop(inner);
        for _ in 0..shed {
            self.counters.hit(Limit::IdleConnectionShed);
        }
        shed
    }

    /// Registers a connection accepted on `listener`; it counts until the slot is dropped.
    pub fn register(self: &Arc<Self>, listener: &Arc<str>) -> Slot {
        let state = Arc::new(ConnState::new(self.epoch, Instant::now()));
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner
            .open
            .insert(id, (Arc::clone(listener), Arc::clone(&state)));
        *inner.by_listener.entry(Arc::clone(listener)).or_default() += 1;
        Slot {
            registry: Arc::clone(self),
            id,
            state,
        }
    }

    /// Resolves when a connection closes (register interest before checking, as with
    /// [`Notify`]).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    fn release(&self, id: u64) {
        let mut inner = self.lock();
        if let Some((listener, _)) = inner.open.remove(&id) {
            let emptied = match inner.by_listener.get_mut(&listener) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            };
            if emptied {
                inner.by_listener.remove(&listener);
            }
        }
        drop(inner);
        self.freed.notify_waiters();
    }
}

/// Marks the connection idle the longest (in `listener`, or anywhere) as shed.
fn shed_oldest_idle(inner: &Inner, listener: Option<&str>) -> bool {
    let oldest = inner
        .open
        .values()
        .filter(|(l, s)| listener.is_none_or(|name| &**l == name) && s.is_idle())
        .min_by_key(|(_, s)| s.idle_since());
    oldest.is_some_and(|(_, s)| s.shed())
}

/// A registered connection; dropping it unregisters the connection.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Connections>,
    id: u64,
    state: Arc<ConnState>,
}

impl Slot {
    /// The connection's facts.
    pub fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_sheds_its_oldest_idle_connection() {
        let counters = Arc::new(Counters::default());
        let reg = Arc::new(Connections::with_budget(3, 100, Arc::clone(&counters)));
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let first = reg.register(&a);
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = reg.register(&a);
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = reg.register(&a);
        let _stream = busy.state().begin_stream();
        let _other = reg.register(&b);
        assert_eq!(reg.admit("b"), Admission::Room);
        assert_eq!(reg.admit("a"), Admission::Shed);
        assert!(!first.state().is_idle(), "the oldest idle one is shed");
        assert!(second.state().is_idle());
        assert_eq!(reg.admit("a"), Admission::Shed);
        assert!(!second.state().is_idle());
        // Only the busy one is left that is not already shed.
        assert_eq!(reg.admit("a"), Admission::Full);
        assert_eq!(counters.get(Limit::IdleConnectionShed), 2);
        let freed = reg.freed();
        drop(first);
        freed.await;
        assert_eq!(reg.open_on("a"), 2);
        assert_eq!(reg.admit("a"), Admission::Room);
    }

    #[tokio::test(start_paused = true)]
    async fn the_descriptor_budget_is_shared_by_all_listeners() {
        let reg = Arc::new(Connections::with_budget(10, 2, Arc::default()));
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let old = reg.register(&a);
        tokio::time::advance(Duration::from_millis(5)).await;
        let _new = reg.register(&b);
        assert_eq!(reg.admit("b"), Admission::Shed);
        assert!(!old.state().is_idle());
        assert_eq!(reg.open(), 2);
        assert!(reg.shed_one());
        assert!(!reg.shed_one());
    }

    #[tokio::test(start_paused = true)]
    async fn a_descriptor_shortage_lowers_the_budget_for_a_while() {
        let reg = Arc::new(Connections::with_budget(100, 100, Arc::default()));
        let a: Arc<str> = "a".into();
        let mut conns = Vec::new();
        for _ in 0..5 {
            conns.push(reg.register(&a));
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        assert_eq!(reg.descriptors_ran_out(), 2);
        assert!(!conns[0].state().is_idle() && !conns[1].state().is_idle());
        drop(conns.drain(..2));
        // 3 open, budget 3: a new client takes an idle one's place.
        assert_eq!(reg.admit("a"), Admission::Shed);
        tokio::time::advance(LEARNT_FOR).await;
        assert_eq!(reg.admit("a"), Admission::Room);
    }
}
