//! The [`Store`] handle: opening, locked reads, transactions and watches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::StoreError;
use crate::fsutil::{self, DirLock};
use crate::journal;
use crate::key::{GroupKind, ObjectKey};
use crate::meta::Meta;
use crate::objects::{self, ListResult};
use crate::recover;
use crate::tx::{Transaction, WriteOutcome};
use crate::watch::Watcher;

/// Tunables of a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Compact the journal once it holds more than this many events (keeping the newest half).
    pub compact_threshold: u64,
    /// fsync files and directories on commit (turn off only for throwaway stores).
    pub fsync: bool,
    /// How often a blocked [`Watcher::next_events`] looks at the journal.
    pub watch_poll_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            compact_threshold: 10_000,
            fsync: true,
            watch_poll_interval: Duration::from_millis(25),
        }
    }
}

/// The files of a store directory.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
    pub(crate) objects: PathBuf,
    pub(crate) journal: PathBuf,
    pub(crate) journal_tmp: PathBuf,
    pub(crate) meta: PathBuf,
    pub(crate) meta_tmp: PathBuf,
    pub(crate) lock: PathBuf,
}

impl Paths {
    fn new(dir: PathBuf) -> Paths {
        Paths {
            objects: dir.join("objects"),
            journal: dir.join("journal.jsonl"),
            journal_tmp: dir.join(".journal.jsonl.tmp"),
            meta: dir.join("meta.json"),
            meta_tmp: dir.join(".meta.json.tmp"),
            lock: dir.join("lock"),
            dir,
        }
    }
}

/// What a committed transaction returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<T> {
    /// The closure's result.
    pub value: T,
    /// Every staged write's outcome, in order (cascaded deletes included).
    pub outcomes: Vec<WriteOutcome>,
    /// The store's resourceVersion after the commit.
    pub resource_version: u64,
}

/// A handle on a store directory. Cheap to clone; every operation takes the
/// directory's flock itself, so handles in several threads or processes cooperate.
#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
    options: StoreOptions,
}

impl Store {
    /// Opens (creating if missing) the store at `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens (creating if missing) the store at `dir`, recovering from a crashed writer.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        fsutil::create_dir_all(dir)?;
        let dir = dir.canonicalize().map_err(|e| StoreError::io(dir, e))?;
        let paths = Paths::new(dir);
        fsutil::create_dir_all(&paths.objects)?;
        let store = Store { paths, options };
        if !fsutil::held_by_this_thread(&store.paths.dir) {
            let _lock = DirLock::exclusive(&store.paths.dir, &store.paths.lock)?;
            recover::recover(&store.paths, store.options.fsync)?;
        }
        Ok(store)
    }

    /// The (canonical) store directory.
    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Reads one object; `Ok(None)` when absent, `Corrupt` (naming the file) when unreadable.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        key.validate()?;
        self.read(|_| objects::read(&self.paths.objects, key))
    }

    /// Reads an object as last committed: a file that cannot be read as its object (damaged by
    /// hand, cut short) is answered from the journal's last committed state of it, as a
    /// transaction reads it; `Corrupt` only when the journal no longer holds it.
    pub fn get_committed(&self, key: &ObjectKey) -> Result<Option<Value>, StoreError> {
        key.validate()?;
        self.read(|_| match objects::read(&self.paths.objects, key) {
            Err(err @ StoreError::Corrupt { .. }) => Ok(Some(
                crate::recover::journal_state(&self.paths, key)?.ok_or(err)?,
            )),
            other => other,
        })
    }

    /// Lists one kind in one namespace, or in all namespaces and cluster scope for `None`.
    ///
    /// Unreadable files are reported in [`ListResult::corrupt`]; the other objects are
    /// still returned, sorted by namespace then name.
    pub fn list(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<ListResult, StoreError> {
        self.list_as(group, kind, namespace, false)
    }

    /// Lists like [`Store::list`], with each damaged object file answered as last committed,
    /// as [`Store::get_committed`] answers it: the journal's body is among the items and its
    /// entry in [`ListResult::corrupt`] is `recovered`. One the journal no longer holds (or
    /// cannot be read for) stays out of the items, as in [`Store::list`].
    pub fn list_committed(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<ListResult, StoreError> {
        self.list_as(group, kind, namespace, true)
    }

    fn list_as(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        committed: bool,
    ) -> Result<ListResult, StoreError> {
        self.read(|meta| {
            let mut result = objects::list(&self.paths.objects, group, kind, namespace)?;
            if committed {
                for c in &mut result.corrupt {
                    if let Ok(Some(body)) = crate::recover::journal_state(&self.paths, &c.key) {
                        result.items.push(body);
                        c.recovered = true;
                    }
                }
            }
            result
                .items
                .sort_by(|a, b| objects::sort_key(a).cmp(&objects::sort_key(b)));
            result.resource_version = meta.resource_version;
            Ok(result)
        })
    }

    /// Every group/kind that has (or had) objects in the store, sorted.
    pub fn kinds(&self) -> Result<Vec<GroupKind>, StoreError> {
        self.read(|_| objects::kinds(&self.paths.objects))
    }

    /// Repairs every damaged object file it can from the journal (the object's last committed
    /// body), under the exclusive lock. Returns the keys repaired and those the journal no
    /// longer holds (left as they are: `apply` or `delete` replaces or removes them).
    pub fn repair(&self) -> Result<(Vec<ObjectKey>, Vec<ObjectKey>), StoreError> {
        let committed = self.transact(|tx| -> Result<_, StoreError> {
            let mut repaired = Vec::new();
            let mut lost = Vec::new();
            for gk in objects::kinds(&self.paths.objects)? {
                for c in tx.list(&gk.group, &gk.kind, None)?.corrupt {
                    if tx.repair(&c.key)? {
                        repaired.push(c.key);
                    } else {
                        lost.push(c.key);
                    }
                }
            }
            Ok((repaired, lost))
        })?;
        Ok(committed.value)
    }

    /// The store's current resourceVersion.
    pub fn resource_version(&self) -> Result<u64, StoreError> {
        self.read(|meta| Ok(meta.resource_version))
    }

    /// Runs `f` under the exclusive lock and commits its staged writes if it returns `Ok`.
    ///
    /// If `f` returns `Err`, nothing is written. On `Ok` the batch is appended to the
    /// journal (one write, then a commit marker, then fsync), after which the object files
    /// and `meta.json` are replaced atomically. An I/O error after the journal append
    /// still leaves the batch committed: the next locked operation applies it.
    ///
    /// Calling `transact` again on the same store from inside `f` is an error
    /// ([`StoreError::NestedTransaction`]); plain reads through the store from inside
    /// `f` see committed state only.
    pub fn transact<T, E, F>(&self, f: F) -> Result<Committed<T>, E>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        if fsutil::held_by_this_thread(&self.paths.dir) {
            return Err(StoreError::NestedTransaction {
                dir: self.paths.dir.clone(),
            }
            .into());
        }
        let _lock = DirLock::exclusive(&self.paths.dir, &self.paths.lock)?;
        let meta = recover::recover(&self.paths, self.options.fsync)?;
        let mut tx = Transaction::new(&self.paths, meta.resource_version);
        let value = f(&mut tx)?;
        let staged = tx.into_staged();
        let meta = recover::commit(
            &self.paths,
            meta,
            &staged.events,
            &staged.states,
            self.options.fsync,
            self.options.compact_threshold,
        )?;
        Ok(Committed {
            value,
            outcomes: staged.outcomes,
            resource_version: meta.resource_version,
        })
    }

    /// Follows the change feed from just after `from_rv` (0 = from the beginning).
    ///
    /// Fails with [`StoreError::Expired`] if compaction already dropped events after
    /// `from_rv`; relist and watch from the list's resourceVersion then.
    pub fn watch(&self, from_rv: u64) -> Result<Watcher, StoreError> {
        self.read(|meta| {
            let oldest = meta.first_retained_resource_version;
            if from_rv.saturating_add(1) < oldest {
                return Err(StoreError::Expired {
                    rv: from_rv,
                    oldest,
                });
            }
            let mut watcher = Watcher::new(
                self.paths.journal.clone(),
                from_rv,
                self.options.watch_poll_interval,
            );
            // Watching from the current resourceVersion (the common case): start at the end
            // of the applied journal instead of reading it all to skip what came before. The
            // shared lock keeps a compaction from replacing the file meanwhile.
            if from_rv >= meta.resource_version && meta.journal_length > 0 {
                watcher.start_at(meta.journal_length)?;
            }
            Ok(watcher)
        })
    }

    /// Runs `f` on a consistent state: under a shared lock, or under the exclusive lock
    /// when a crashed writer must be recovered first (or this thread already holds it).
    fn read<R>(&self, f: impl FnOnce(&Meta) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if fsutil::held_by_this_thread(&self.paths.dir) {
            let meta = Meta::load(&self.paths.meta)?.unwrap_or_default();
            return f(&meta);
        }
        {
            let _shared = DirLock::shared(&self.paths.lock)?;
            // A damaged meta.json goes the exclusive way below, which rebuilds it.
            if let Ok(Some(meta)) = Meta::load(&self.paths.meta)
                && journal::length(&self.paths.journal)? == meta.journal_length
            {
                return f(&meta);
            }
        }
        let _lock = DirLock::exclusive(&self.paths.dir, &self.paths.lock)?;
        let meta = recover::recover(&self.paths, self.options.fsync)?;
        f(&meta)
    }
}
