//! Settled reads of a `--config` directory: a file still being written is never served. A
//! directory is read only when (1) no process holds one of its files open for writing (as far
//! as `/proc` shows: every process of this user, all of them as root), (2) its stamp (names,
//! sizes, modification times, inodes) did not move over a quiet period, and (3) two reads,
//! one quiet period apart, gave the same content. A writer paused in the middle of a file
//! (1) or one that writes in bursts (2, 3) is waited for; a rename into place passes at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files::{Source, Unreadable, read_manifests};

/// How long a directory must stay unchanged between the two reads.
pub const QUIET: Duration = Duration::from_millis(150);

/// What a settled read found.
#[derive(Debug)]
pub enum Settled {
    /// Every file, settled.
    Files(Vec<Source>),
    /// Files still being written (or that changed between the two reads).
    Busy(Vec<String>),
}

/// Reads `dir`'s manifests once they are settled (blocking: sleeps one [`QUIET`] period).
pub fn read_settled(dir: &Path) -> Result<Settled, Unreadable> {
    let before = dir_stamp(dir);
    let first = read(dir)?;
    let busy = open_for_writing(&first);
    if !busy.is_empty() {
        return Ok(Settled::Busy(busy));
    }
    std::thread::sleep(QUIET);
    let second = read(dir)?;
    let changed: Vec<String> = second
        .iter()
        .filter(|s| !first.iter().any(|f| f.name == s.name && f.text == s.text))
        .map(|s| s.name.clone())
        .collect();
    if !changed.is_empty() || first.len() != second.len() || dir_stamp(dir) != before {
        return Ok(Settled::Busy(changed));
    }
    let busy = open_for_writing(&second);
    if !busy.is_empty() {
        return Ok(Settled::Busy(busy));
    }
    Ok(Settled::Files(second))
}

fn read(dir: &Path) -> Result<Vec<Source>, Unreadable> {
    read_manifests(dir, &dir.display().to_string(), true)
}

/// The files of `sources` some process has open for writing, by `/proc/<pid>/fd` and the
/// access mode in `/proc/<pid>/fdinfo`. Processes this one may not inspect are skipped.
fn open_for_writing(sources: &[Source]) -> Vec<String> {
    let wanted: BTreeSet<PathBuf> = sources
        .iter()
        .filter_map(|s| std::fs::canonicalize(&s.name).ok())
        .collect();
    let mut busy = BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for p in procs.flatten() {
        let pid = p.file_name();
        if !pid.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if !wanted.contains(&target) {
                continue;
            }
            let info = p.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|t| writable(&t)) {
                busy.insert(target.display().to_string());
            }
        }
    }
    busy.into_iter().collect()
}

/// Whether an fdinfo text's `flags:` (octal) has the write or read-write access mode.
fn writable(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

/// A stamp of a configuration directory's files (names, sizes, modification times, inodes),
/// recursively: cheap to take every poll, unlike reading and decoding every file.
pub fn dir_stamp(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in read.flatten() {
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => pending.push(path),
                Ok(m) => entries.push((path, m.len(), m.mtime(), m.mtime_nsec(), m.ino())),
                Err(_) => {}
            }
        }
    }
    entries.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::io::Write;

    use super::*;

    #[test]
    fn access_mode_from_fdinfo() {
        assert!(writable("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(writable("pos:\t0\nflags:\t02\n"));
        assert!(!writable("pos:\t0\nflags:\t0100000\n"));
        assert!(!writable("pos:\t0\n"));
    }

    #[test]
    fn a_file_open_for_writing_is_busy_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: x\n").unwrap();
        let mut f = std::fs::File::create(dir.path().join("b.yaml")).unwrap();
        f.write_all(b"kind: y\n").unwrap();
        match read_settled(dir.path()).unwrap() {
            Settled::Busy(files) => {
                assert_eq!(files.len(), 1, "{files:?}");
                assert!(files[0].ends_with("b.yaml"), "{files:?}");
            }
            Settled::Files(_) => panic!("b.yaml is open for writing"),
        }
        drop(f);
        match read_settled(dir.path()).unwrap() {
            Settled::Files(files) => assert_eq!(files.len(), 2),
            Settled::Busy(files) => panic!("settled, yet busy: {files:?}"),
        }
    }
}
