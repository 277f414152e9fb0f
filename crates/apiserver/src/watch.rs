//! WATCH (`?watch=true`): one JSON event per line, `{"type":"ADDED","object":{...}}`, from the
//! store's change feed. From `resourceVersion` `""` or `"0"` the current objects come first as
//! ADDED (`sendInitialEvents=true` then sends a BOOKMARK annotated
//! `k8s.io/initial-events-end`); from N, every change after N. A resourceVersion the store has
//! compacted away gets one `ERROR` event carrying a 410 `Expired` Status, and the stream ends,
//! as the API server does. With `allowWatchBookmarks=true` a BOOKMARK with the current
//! resourceVersion is sent at least every [`BOOKMARK_EVERY`]. `timeoutSeconds` ends the stream.
//! Objects entering or leaving the selectors show as ADDED or DELETED. The feed is read on the
//! blocking pool and ends when the client goes away.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use egress_store::{EventType, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::objects::{Filter, Query, as_version, list};
use crate::path::ResourcePath;
use crate::status::ApiError;

/// How often an idle watch with bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// How long one wait on the change feed lasts (the stream notices a gone client this often).
const POLL: Duration = Duration::from_millis(500);

/// What a watch sends each object as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The object itself.
    Object,
    /// A one-row Table of the object (`kubectl get -w`).
    Table,
}

/// Streams the watch of `path` into `tx` until the client goes or the timeout passes.
pub fn run(
    store: &Store,
    path: &ResourcePath,
    query: &Query,
    shape: Shape,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ApiError> {
    let filter = Filter::from_query(query, path.name.as_deref())?;
    let deadline = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| Instant::now() + Duration::from_secs(s));
    let bookmarks = query.flag("allowWatchBookmarks");
    let send = |event: &str, object: Value| -> bool {
        let object = match (shape, event) {
            (Shape::Table, "ADDED" | "MODIFIED" | "DELETED") => {
                let rv = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                crate::table::table(path.info.kind, &[object], rv)
            }
            _ => object,
        };
        let mut line = json!({"type": event, "object": object}).to_string();
        line.push('\n');
        tx.blocking_send(Bytes::from(line)).is_ok()
    };
    let bookmark = |rv: u64, initial_end: bool| {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": path.info.kind, "apiVersion": path.api_version(), "metadata": meta})
    };
    let rv_param = query.get("resourceVersion").unwrap_or_default();
    // Objects the client has been told about (for selector enter/leave).
    let mut known: HashSet<(Option<String>, String)> = HashSet::new();
    let id = |o: &Value| {
        (
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let from = if rv_param.is_empty() || rv_param == "0" || query.flag("sendInitialEvents") {
        let (items, rv) = list(store, path, &filter)?;
        for o in items {
            known.insert(id(&o));
            if !send("ADDED", o) {
                return Ok(());
            }
        }
        if query.flag("sendInitialEvents") && !send("BOOKMARK", bookmark(rv, true)) {
            return Ok(());
        }
        rv
    } else {
        rv_param
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv_param:?}")))?
    };
    let mut watcher = match store.watch(from) {
        Ok(w) => w,
        Err(e @ StoreError::Expired { .. }) => {
            send("ERROR", ApiError::from(e).status());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut last_bookmark = Instant::now();
    loop {
        if tx.is_closed() || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let events = match watcher.next_events(POLL) {
            Ok(events) => events,
            Err(e @ StoreError::Expired { .. }) => {
                send("ERROR", ApiError::from(e).status());
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for ev in events {
            let k = &ev.key;
            let ns_ok = !path.info.namespaced
                || path.namespace.is_none()
                || k.namespace.as_deref() == path.namespace.as_deref();
            if k.group != path.info.group || k.kind != path.info.kind || !ns_ok {
                continue;
            }
            let object = as_version(ev.object, path);
            let selected = filter.matches(&object);
            let was = known.contains(&id(&object));
            let event = match (ev.event_type, selected, was) {
                (EventType::Deleted, _, true) => "DELETED",
                (EventType::Deleted, _, false) => continue,
                (_, true, false) => "ADDED",
                (_, true, true) => "MODIFIED",
                (_, false, true) => "DELETED",
                (_, false, false) => continue,
            };
            if event == "DELETED" {
                known.remove(&id(&object));
            } else {
                known.insert(id(&object));
            }
            if !send(event, object) {
                return Ok(());
            }
        }
        if bookmarks && last_bookmark.elapsed() >= BOOKMARK_EVERY {
            last_bookmark = Instant::now();
            if !send("BOOKMARK", bookmark(watcher.resource_version(), false)) {
                return Ok(());
            }
        }
    }
}
