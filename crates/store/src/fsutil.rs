//! File-system helpers: atomic replacement, directory syncs and the store's flock.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Replaces `path` with `bytes` atomically: write `tmp`, optionally fsync, rename over `path`.
pub(crate) fn write_atomic(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), StoreError> {
    let mut file = File::create(tmp).map_err(|e| StoreError::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| StoreError::io(tmp, e))?;
    if fsync {
        file.sync_all().map_err(|e| StoreError::io(tmp, e))?;
    }
    drop(file);
    fs::rename(tmp, path).map_err(|e| StoreError::io(path, e))
}

/// Makes renames and unlinks inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// `fs::create_dir_all` with the path in the error.
pub(crate) fn create_dir_all(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))
}

/// Reads a whole file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Removes a file; a file that is already gone is fine.
pub(crate) fn remove_optional(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

thread_local! {
    /// Store directories whose exclusive lock this thread holds.
    static EXCLUSIVE: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// True when this thread holds the exclusive lock of the store at `dir`.
pub(crate) fn held_by_this_thread(dir: &Path) -> bool {
    EXCLUSIVE.with(|held| held.borrow().iter().any(|d| d == dir))
}

/// A held flock on `<dir>/lock`; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    /// Set for exclusive locks, which are registered per thread.
    registered: Option<PathBuf>,
}

impl DirLock {
    /// Blocks until the exclusive lock is held.
    pub(crate) fn exclusive(dir: &Path, lock_path: &Path) -> Result<DirLock, StoreError> {
        let file = open_lock_file(lock_path)?;
        file.lock().map_err(|e| StoreError::io(lock_path, e))?;
        EXCLUSIVE.with(|held| held.borrow_mut().push(dir.to_path_buf()));
        Ok(DirLock {
            file,
            registered: Some(dir.to_path_buf()),
        })
    }

    /// Blocks until a shared lock is held.
    pub(crate) fn shared(lock_path: &Path) -> Result<DirLock, StoreError> {
        let file = open_lock_file(lock_path)?;
        file.lock_shared()
            .map_err(|e| StoreError::io(lock_path, e))?;
        Ok(DirLock {
            file,
            registered: None,
        })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file would release the lock as well; unlock explicitly to be prompt.
        let _ = self.file.unlock();
        if let Some(dir) = self.registered.take() {
            EXCLUSIVE.with(|held| {
                let mut held = held.borrow_mut();
                if let Some(pos) = held.iter().position(|d| *d == dir) {
                    held.remove(pos);
                }
            });
        }
    }
}

fn open_lock_file(lock_path: &Path) -> Result<File, StoreError> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path);
    match opened {
        Ok(file) => Ok(file),
        // flock works on read-only descriptors too: lets readers use a store they cannot write.
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            File::open(lock_path).map_err(|e| StoreError::io(lock_path, e))
        }
        Err(e) => Err(StoreError::io(lock_path, e)),
    }
}
