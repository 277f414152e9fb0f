//! Cluster state: the embedded, on-disk "API server" store with a change feed.
//!
//! The store keeps Kubernetes-style objects ([`serde_json::Value`]s with `apiVersion`,
//! `kind`, `metadata`, `spec`/`data`/`status`…) as one JSON file per object, and records
//! every change in an append-only journal that long-running processes follow with a
//! [`Watcher`]. It is kind-agnostic: callers address objects by [`ObjectKey`].
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/
//!   lock                      flock(2) file: exclusive for transactions, shared for reads
//!   meta.json                 {"resourceVersion": applied rv,
//!                              "firstRetainedResourceVersion": oldest rv in the journal,
//!                              "journalLength": bytes of the journal already applied}
//!   journal.jsonl             append-only change feed (see below)
//!   objects/<group>/<Kind>/<namespace>/<name>.json
//!                             <group> is "core" for the core ("") group;
//!                             <namespace> is "_cluster" for cluster-scoped objects
//! ```
//!
//! Object files are pretty-printed JSON, replaced atomically (temporary file
//! `.<name>.tmp` in the same directory, fsync, rename); `meta.json` likewise.
//!
//! Journal lines are either events or commit markers:
//!
//! ```text
//! {"rv":7,"type":"ADDED","key":{"group":"","kind":"ConfigMap","namespace":"a","name":"x"},"object":{…}}
//! {"commit":7,"events":1}
//! ```
//!
//! A transaction's events are appended in one write followed by its marker and an fsync;
//! only then are object files and `meta.json` written. Event rvs are contiguous. If a
//! writer dies in between, the next locked operation (open, read or transaction)
//! replays the committed batches newer than `meta.json`'s rv, and cuts away a trailing
//! batch that has no marker. When the journal holds more than
//! [`StoreOptions::compact_threshold`] events, the committing transaction rewrites it
//! (temporary file + rename) keeping the newest half; watchers asking for older rvs get
//! [`StoreError::Expired`].
//!
//! # Semantics
//!
//! Writes follow the Kubernetes API server: one global, monotonically increasing
//! `metadata.resourceVersion`; `uid`, `creationTimestamp` and `generation` set on create;
//! `generation` bumped only when content outside `metadata` and `status` changes; the
//! stored `status` kept when an update carries none; writes that change nothing are
//! reported [`Action::Unchanged`] without using an rv; namespaced objects need their
//! `Namespace`; deleting a `Namespace` deletes everything in it.

mod error;
mod fsutil;
mod journal;
mod key;
mod location;
mod meta;
mod objects;
mod recover;
mod store;
mod time;
mod tx;
mod watch;

pub use error::StoreError;
pub use journal::{EventType, WatchEvent};
pub use key::{CLUSTER_SCOPE_DIR, CORE_GROUP_DIR, GroupKind, ObjectKey, group_of};
pub use location::default_dir;
pub use objects::{CorruptObject, ListResult};
pub use store::{Committed, Store, StoreOptions};
pub use time::{rfc3339, rfc3339_from_unix};
pub use tx::{Action, Transaction, WriteOutcome};
pub use watch::Watcher;
