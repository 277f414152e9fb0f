//! WATCH (`?watch=true`): one JSON event per line, `{"type":"ADDED","object":{...}}`, from the
//! store's change feed. From `resourceVersion` `""` or `"0"` the current objects come first as
//! ADDED (`sendInitialEvents=true` then sends a BOOKMARK annotated
//! `k8s.io/initial-events-end`); from N, every change after N. A resourceVersion the store has
//! compacted away gets one `ERROR` event carrying a 410 `Expired` Status, and the stream ends,
//! as the API server does. With `allowWatchBookmarks=true` a BOOKMARK with the current
//! resourceVersion is sent at least every [`BOOKMARK_EVERY`]. `timeoutSeconds` ends the stream.
//! Objects entering or leaving the selectors show as ADDED or DELETED. Each watch is an async
//! task on the shared [`Feed`](crate::feed::Feed) and ends when the client goes away.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use egress_store::{EventType, Store, StoreError, WatchEvent};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::feed::{Feed, Published};

use crate::objects::{Filter, Query, as_version, blocking, list};
use crate::path::ResourcePath;
use crate::status::ApiError;

/// How often an idle watch with bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// What a watch sends each object as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The object itself.
    Object,
    /// A one-row Table of the object (`kubectl get -w`).
    Table,
}

/// Streams the watch of `path` into `tx` until the client goes or the timeout passes.
pub async fn run(
    store: &Store,
    feed: &Feed,
    path: &ResourcePath,
    query: &Query,
    shape: Shape,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ApiError> {
    let filter = Filter::from_query(query, path.name.as_deref())?;
    let deadline = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let bookmarks = query.flag("allowWatchBookmarks");
    // Subscribed before anything is read from the store, so nothing committed in between
    // is missed (what is read twice is skipped by resourceVersion).
    let mut published = feed.subscribe();
    let mut out = Out {
        path,
        shape,
        tx,
        filter,
        known: HashSet::new(),
    };
    let rv_param = query.get("resourceVersion").unwrap_or_default();
    let from = if rv_param.is_empty() || rv_param == "0" || query.flag("sendInitialEvents") {
        let (store2, path2, filter2) = (store.clone(), path.clone(), out.filter.clone());
        let (items, rv) = blocking(move || list(&store2, &path2, &filter2)).await?;
        for o in items {
            out.known.insert(id(&o));
            if !out.send("ADDED", o).await {
                return Ok(());
            }
        }
        if query.flag("sendInitialEvents") && !out.send("BOOKMARK", out.bookmark(rv, true)).await {
            return Ok(());
        }
        rv
    } else {
        rv_param
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv_param:?}")))?
    };
    let mut last = from;
    if !out.catch_up(store, &mut last).await? {
        return Ok(());
    }
    let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let until_bookmark = async {
            if bookmarks {
                tokio::time::sleep_until(next_bookmark).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tx.closed() => return Ok(()),
            () = until_deadline => return Ok(()),
            () = until_bookmark => {
                next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                if !out.send("BOOKMARK", out.bookmark(last, false)).await {
                    return Ok(());
                }
            }
            got = published.recv() => match got {
                Ok(Published::Events(batch)) => {
                    let seen = last;
                    for ev in batch.iter().filter(|e| e.rv > seen) {
                        last = ev.rv;
                        if !out.deliver(ev).await {
                            return Ok(());
                        }
                    }
                }
                // Fell behind the channel: the gap comes from the store.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !out.catch_up(store, &mut last).await? {
                        return Ok(());
                    }
                }
                // The feed restarts or the server stops: the client watches again.
                Ok(Published::Broken) | Err(broadcast::error::RecvError::Closed) => {
                    return Ok(());
                }
            },
        }
    }
}

/// An object's (namespace, name).
fn id(o: &Value) -> (Option<String>, String) {
    (
        o.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

/// One watch's output: what it sends, and which objects its client knows about (for
/// objects entering or leaving the selectors).
struct Out<'a> {
    path: &'a ResourcePath,
    shape: Shape,
    tx: &'a mpsc::Sender<Bytes>,
    filter: Filter,
    known: HashSet<(Option<String>, String)>,
}

impl Out<'_> {
    async fn send(&self, event: &str, object: Value) -> bool {
        let object = match (self.shape, event) {
            (Shape::Table, "ADDED" | "MODIFIED" | "DELETED") => {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                crate::table::table(self.path.info.kind, &[object], rv)
            }
            _ => object,
        };
        let mut line = json!({"type": event, "object": object}).to_string();
        line.push('\n');
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.path.info.kind, "apiVersion": self.path.api_version(), "metadata": meta})
    }

    /// Sends the events after `last` that the store holds now, moving `last` on; false
    /// when the client is gone or the watch ended (410 for a compacted resourceVersion).
    async fn catch_up(&mut self, store: &Store, last: &mut u64) -> Result<bool, ApiError> {
        let (store, from) = (store.clone(), *last);
        let read = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let mut watcher = store.watch(from)?;
            let mut all = Vec::new();
            loop {
                let events = watcher.try_next_events()?;
                if events.is_empty() {
                    return Ok((all, watcher.resource_version()));
                }
                all.extend(events);
            }
        })
        .await
        .map_err(|e| ApiError::Internal(format!("watch task: {e}")))?;
        let (events, rv) = match read {
            Ok(read) => read,
            Err(e @ StoreError::Expired { .. }) => {
                self.send("ERROR", ApiError::from(e).status()).await;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let seen = *last;
        for ev in events.iter().filter(|e| e.rv > seen) {
            *last = ev.rv;
            if !self.deliver(ev).await {
                return Ok(false);
            }
        }
        *last = (*last).max(rv);
        Ok(true)
    }

    /// Sends one stored change if it concerns this watch.
    async fn deliver(&mut self, ev: &WatchEvent) -> bool {
        let path = self.path;
        let k = &ev.key;
        let ns_ok = !path.info.namespaced
            || path.namespace.is_none()
            || k.namespace.as_deref() == path.namespace.as_deref();
        if k.group != path.info.group || k.kind != path.info.kind || !ns_ok {
            return true;
        }
        let object = as_version(ev.object.clone(), path);
        let selected = self.filter.matches(&object);
        let was = self.known.contains(&id(&object));
        let event = match (ev.event_type, selected, was) {
            // A deleted object's last state decides, as the API server's filter does: a
            // watch from a resourceVersion never listed it, and must still hear it go.
            (EventType::Deleted, true, _) | (EventType::Deleted, false, true) => "DELETED",
            (EventType::Deleted, false, false) => return true,
            (_, true, false) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, false, true) => "DELETED",
            (_, false, false) => return true,
        };
        if event == "DELETED" {
            self.known.remove(&id(&object));
        } else {
            self.known.insert(id(&object));
        }
        self.send(event, object).await
    }
}
