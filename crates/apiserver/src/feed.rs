//! One reader of the store's change feed for every WATCH: a thread follows the journal and
//! publishes each batch of committed events on a broadcast channel, and each watch is an
//! async task that subscribes. A thousand watches (every local gateway watches a dozen
//! kinds) then cost one journal reader, not a thread each.
//!
//! A watch subscribes before it reads what it needs from the store (the initial list, the
//! events since the client's resourceVersion), then skips published events it has already
//! delivered; one that falls behind the channel reads the gap from the store again. The
//! reader stops when the server does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use egress_store::{Store, WatchEvent};
use tokio::sync::broadcast;

/// Batches a slow watch may fall behind by before it reads the gap from the store.
const CAPACITY: usize = 1024;

/// How long one wait on the journal lasts (the reader notices a stop this often).
const POLL: Duration = Duration::from_millis(200);

/// What the reader publishes.
#[derive(Debug, Clone)]
pub enum Published {
    /// Committed events, in order.
    Events(Arc<Vec<WatchEvent>>),
    /// The reader could not follow the journal (it was compacted past the reader, or an I/O
    /// error): watches end, and their clients watch again from a fresh list.
    Broken,
}

/// The shared feed.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Published>,
    stop: Arc<AtomicBool>,
}

impl Feed {
    /// Starts the reader at the store's current resourceVersion.
    pub fn start(store: &Store) -> Feed {
        let (tx, _) = broadcast::channel(CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let (store, sender, stopped) = (store.clone(), tx.clone(), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("apiserver-feed".into())
            .spawn(move || read(&store, &sender, &stopped))
            .map_or_else(
                |e| tracing::error!("the API's change feed cannot start: {e}"),
                drop,
            );
        Feed { tx, stop }
    }

    /// A new subscription (sees what is published from now on).
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read(store: &Store, tx: &broadcast::Sender<Published>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut watcher = match store.resource_version().and_then(|rv| store.watch(rv)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("the API's change feed: {e}");
                let _ = tx.send(Published::Broken);
                std::thread::sleep(POLL);
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match watcher.next_events(POLL) {
                Ok(events) if events.is_empty() => {}
                Ok(events) => {
                    // No subscriber is not an error: nobody watches yet.
                    let _ = tx.send(Published::Events(Arc::new(events)));
                }
                Err(e) => {
                    tracing::warn!("the API's change feed restarts: {e}");
                    let _ = tx.send(Published::Broken);
                    break;
                }
            }
        }
    }
}
