//! Watchers: following the journal's committed batches, across compactions.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::error::StoreError;
use crate::journal::{self, WatchEvent};

/// Follows the change feed. Obtained from [`crate::Store::watch`].
///
/// Takes no lock: it reads committed batches from `journal.jsonl`, notices when the
/// journal is replaced (compaction) or cut back (a torn batch dropped), and reports
/// [`StoreError::Expired`] when events it has not delivered are gone.
#[derive(Debug)]
pub struct Watcher {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    /// Offset just past the last commit marker consumed from `file`.
    offset: u64,
    /// Length and modification time at the last read (to skip an unchanged journal).
    seen: Option<(u64, Option<SystemTime>)>,
    last_rv: u64,
    poll: Duration,
}

impl Watcher {
    pub(crate) fn new(path: PathBuf, from_rv: u64, poll: Duration) -> Watcher {
        Watcher {
            path,
            file: None,
            inode: 0,
            offset: 0,
            seen: None,
            last_rv: from_rv,
            poll: poll.max(Duration::from_millis(1)),
        }
    }

    /// Opens the journal now and starts reading at `offset` (the end of a committed batch
    /// whose resourceVersion is at most the one the watch starts from).
    pub(crate) fn start_at(&mut self, offset: u64) -> Result<(), StoreError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        self.inode = file
            .metadata()
            .map_err(|e| StoreError::io(&self.path, e))?
            .ino();
        self.file = Some(file);
        self.offset = offset;
        Ok(())
    }

    /// The resourceVersion of the last event delivered (or the one the watch started from).
    pub fn resource_version(&self) -> u64 {
        self.last_rv
    }

    /// Returns the committed events after the last one delivered, waiting up to
    /// `timeout` for some to appear; an empty vector means the timeout passed.
    pub fn next_events(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.poll()?;
            if !events.is_empty() {
                return Ok(events);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(events);
            }
            thread::sleep(self.poll.min(deadline - now));
        }
    }

    /// Looks at the journal once and returns whatever new committed events it holds.
    pub fn try_next_events(&mut self) -> Result<Vec<WatchEvent>, StoreError> {
        self.poll()
    }

    fn poll(&mut self) -> Result<Vec<WatchEvent>, StoreError> {
        let md = match fs::metadata(&self.path) {
            Ok(md) => md,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&self.path, e)),
        };
        let stamp = (md.len(), md.modified().ok());
        let mut events = Vec::new();
        if self.file.is_some() && md.ino() != self.inode {
            // Replaced by a compaction: finish the old file (it no longer grows), then switch.
            self.read_available(&mut events)?;
            self.file = None;
        }
        if self.file.is_none() {
            let file = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(events),
                Err(e) => return Err(StoreError::io(&self.path, e)),
            };
            self.inode = file
                .metadata()
                .map_err(|e| StoreError::io(&self.path, e))?
                .ino();
            self.file = Some(file);
            self.offset = 0;
        } else if md.len() < self.offset {
            // Cut below what we consumed: not one of ours; start over, skipping seen events.
            self.offset = 0;
        } else if self.seen == Some(stamp) {
            return Ok(events);
        }
        // Stamped before reading: a write racing with the read just causes another read.
        self.seen = Some(stamp);
        self.read_available(&mut events)?;
        Ok(events)
    }

    /// Reads the open file from `offset` and delivers the committed batches found.
    fn read_available(&mut self, out: &mut Vec<WatchEvent>) -> Result<(), StoreError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let start = self.offset;
        let bytes =
            journal::read_file_from(file, start).map_err(|e| StoreError::io(&self.path, e))?;
        let scan = journal::scan(&bytes, start, None);
        if let Some(err) = scan.stop.as_ref().and_then(|s| s.corruption(&self.path)) {
            return Err(err);
        }
        for event in scan.batches.into_iter().flat_map(|b| b.events) {
            if event.rv <= self.last_rv {
                continue;
            }
            if event.rv != self.last_rv + 1 {
                return Err(StoreError::Expired {
                    rv: self.last_rv,
                    oldest: event.rv,
                });
            }
            self.last_rv = event.rv;
            out.push(event);
        }
        self.offset = scan.committed_end;
        Ok(())
    }
}
