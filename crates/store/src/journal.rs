//! The append-only change journal: line format, parsing, appending and compaction.
//!
//! Each committed batch is a run of event lines followed by one commit marker line:
//!
//! ```text
//! {"rv":7,"type":"ADDED","key":{"group":"","kind":"ConfigMap","namespace":"a","name":"x"},"object":{...}}
//! {"rv":8,"type":"DELETED","key":{...},"object":{...}}
//! {"commit":8,"events":2}
//! ```
//!
//! Event resourceVersions are contiguous across the whole journal; a batch counts only
//! once its marker (naming the last rv and the number of events) has been written.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::fsutil;
use crate::key::ObjectKey;

/// The type of a change, as in a Kubernetes watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was deleted; the event carries its last state.
    Deleted,
}

/// One change of one object, as recorded in the journal and delivered to watchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The object's key.
    pub key: ObjectKey,
    /// The object as stored (for `Deleted`: its last state, with the deletion's rv).
    pub object: Value,
}

/// A journal line: an event or a commit marker.
#[derive(Deserialize)]
struct RawLine {
    commit: Option<u64>,
    events: Option<usize>,
    rv: Option<u64>,
    #[serde(rename = "type")]
    event_type: Option<EventType>,
    key: Option<ObjectKey>,
    object: Option<Value>,
}

#[derive(Serialize)]
struct Marker {
    commit: u64,
    events: usize,
}

/// A committed batch found in the journal.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Absolute offset of its first line.
    pub(crate) start: u64,
    /// Its events, in order.
    pub(crate) events: Vec<WatchEvent>,
}

/// Why a scan stopped before the end of the bytes.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Trailing bytes without a commit marker: a batch being written, or a torn one.
    Incomplete,
    /// A complete line that is not valid at this point.
    Invalid {
        /// Absolute offset of the line.
        offset: u64,
        /// What is wrong with it.
        message: String,
        /// Whether a commit marker follows later (corruption rather than a torn tail).
        commit_follows: bool,
    },
}

/// Result of scanning journal bytes.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Complete, valid batches in order.
    pub(crate) batches: Vec<Batch>,
    /// Absolute offset just past the last complete batch (the start offset if none).
    pub(crate) committed_end: u64,
    /// Why the scan ended early, if it did.
    pub(crate) stop: Option<Stop>,
}

impl Stop {
    /// The error to report for an invalid line in the middle of committed data.
    pub(crate) fn corruption(&self, path: &Path) -> Option<StoreError> {
        match self {
            Stop::Invalid {
                offset,
                message,
                commit_follows: true,
            } => Some(StoreError::corrupt(
                path,
                format!("invalid journal line at byte {offset}: {message}"),
            )),
            _ => None,
        }
    }
}

enum Line {
    Event(WatchEvent),
    Commit { rv: u64, events: usize },
}

fn parse_line(line: &[u8]) -> Result<Line, String> {
    let raw: RawLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if let Some(rv) = raw.commit {
        return Ok(Line::Commit {
            rv,
            events: raw.events.ok_or("commit marker without \"events\"")?,
        });
    }
    Ok(Line::Event(WatchEvent {
        rv: raw.rv.ok_or("event without \"rv\"")?,
        event_type: raw.event_type.ok_or("event without \"type\"")?,
        key: raw.key.ok_or("event without \"key\"")?,
        object: raw.object.ok_or("event without \"object\"")?,
    }))
}

/// Splits `bytes` (found at absolute offset `base`) into committed batches.
///
/// `expect_next` is the rv the first event must carry, when known; events must be
/// contiguous in any case.
pub(crate) fn scan(bytes: &[u8], base: u64, expect_next: Option<u64>) -> Scan {
    let mut batches = Vec::new();
    let mut pending: Vec<WatchEvent> = Vec::new();
    let mut pending_start = 0usize;
    let mut committed_end = base;
    let mut next = expect_next;
    let mut pos = 0usize;
    let stop = loop {
        if pos == bytes.len() {
            break if pending.is_empty() {
                None
            } else {
                Some(Stop::Incomplete)
            };
        }
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break Some(Stop::Incomplete);
        };
        let line_end = pos + nl + 1;
        let invalid = |message: String| Stop::Invalid {
            offset: base + pos as u64,
            message,
            commit_follows: commit_follows(&bytes[line_end..]),
        };
        match parse_line(&bytes[pos..pos + nl]) {
            Err(message) => break Some(invalid(message)),
            Ok(Line::Event(event)) => {
                if let Some(expected) = next
                    && event.rv != expected
                {
                    break Some(invalid(format!(
                        "expected resourceVersion {expected}, found {}",
                        event.rv
                    )));
                }
                if pending.is_empty() {
                    pending_start = pos;
                }
                next = Some(event.rv + 1);
                pending.push(event);
            }
            Ok(Line::Commit { rv, events }) => {
                let last = pending.last().map(|e| e.rv);
                if last != Some(rv) || pending.len() != events {
                    break Some(invalid(format!(
                        "commit marker for rv {rv} with {events} events does not match \
                         the {} preceding events",
                        pending.len()
                    )));
                }
                committed_end = base + line_end as u64;
                batches.push(Batch {
                    start: base + pending_start as u64,
                    events: std::mem::take(&mut pending),
                });
            }
        }
        pos = line_end;
    };
    Scan {
        batches,
        committed_end,
        stop,
    }
}

/// Whether any complete line of `bytes` is a well-formed commit marker.
fn commit_follows(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .rev()
        .skip(1) // the part after the last newline is not a complete line
        .any(|line| matches!(parse_line(line), Ok(Line::Commit { .. })))
}

/// Serialises a batch of events plus its commit marker.
pub(crate) fn encode_batch(events: &[WatchEvent]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let encode_err = |e: serde_json::Error| StoreError::corrupt("journal.jsonl", e.to_string());
    for event in events {
        serde_json::to_writer(&mut out, event).map_err(encode_err)?;
        out.push(b'\n');
    }
    let marker = Marker {
        commit: events.last().map_or(0, |e| e.rv),
        events: events.len(),
    };
    serde_json::to_writer(&mut out, &marker).map_err(encode_err)?;
    out.push(b'\n');
    Ok(out)
}

/// Appends an encoded batch in one write and (optionally) fsyncs it.
pub(crate) fn append(path: &Path, batch: &[u8], fsync: bool) -> Result<(), StoreError> {
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    file.write_all(batch).map_err(|e| StoreError::io(path, e))?;
    if fsync {
        file.sync_data().map_err(|e| StoreError::io(path, e))?;
        if created && let Some(dir) = path.parent() {
            fsutil::sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Current length of the journal, 0 when it does not exist.
pub(crate) fn length(path: &Path) -> Result<u64, StoreError> {
    match fs::metadata(path) {
        Ok(md) => Ok(md.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Reads the journal from `offset` to its end (empty when it does not exist).
pub(crate) fn read_from(path: &Path, offset: u64) -> Result<Vec<u8>, StoreError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    read_file_from(&mut file, offset).map_err(|e| StoreError::io(path, e))
}

/// Reads an open file from `offset` to its current end.
pub(crate) fn read_file_from(file: &mut File, offset: u64) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    let mut buf = Vec::new();
    if len > offset {
        file.seek(SeekFrom::Start(offset))?;
        file.take(len - offset).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

/// Cuts the journal back to `len` bytes (dropping a torn batch).
pub(crate) fn truncate(path: &Path, len: u64, fsync: bool) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    file.set_len(len).map_err(|e| StoreError::io(path, e))?;
    if fsync {
        file.sync_all().map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}

/// Rewrites the journal keeping only the batches whose events are all `>= keep_from`
/// (at least the last batch). Returns the new length and the first retained rv, or
/// `None` when nothing would be dropped.
pub(crate) fn compact(
    path: &Path,
    tmp: &Path,
    keep_from: u64,
    fsync: bool,
) -> Result<Option<(u64, u64)>, StoreError> {
    let bytes = read_from(path, 0)?;
    let scan = scan(&bytes, 0, None);
    if let Some(err) = scan.stop.as_ref().and_then(|s| s.corruption(path)) {
        return Err(err);
    }
    let Some(last_index) = scan.batches.len().checked_sub(1) else {
        return Ok(None);
    };
    let first_kept = scan
        .batches
        .iter()
        .position(|b| b.events.first().is_some_and(|e| e.rv >= keep_from))
        .unwrap_or(last_index);
    let batch = &scan.batches[first_kept];
    if batch.start == 0 {
        return Ok(None);
    }
    let first_rv = batch.events.first().map_or(keep_from, |e| e.rv);
    let start = usize::try_from(batch.start).unwrap_or(usize::MAX);
    let end = usize::try_from(scan.committed_end).unwrap_or(usize::MAX);
    let kept = bytes.get(start..end).unwrap_or_default();
    fsutil::write_atomic(path, tmp, kept, fsync)?;
    if fsync && let Some(dir) = path.parent() {
        fsutil::sync_dir(dir)?;
    }
    Ok(Some((kept.len() as u64, first_rv)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(rv: u64) -> WatchEvent {
        WatchEvent {
            rv,
            event_type: EventType::Added,
            key: ObjectKey::new("", "ConfigMap", Some("a"), format!("o{rv}")),
            object: json!({"kind": "ConfigMap"}),
        }
    }

    #[test]
    fn scan_batches_and_torn_tail() {
        let mut bytes = encode_batch(&[event(1), event(2)]).unwrap();
        let first_end = bytes.len() as u64;
        bytes.extend(encode_batch(&[event(3)]).unwrap());
        let second_end = bytes.len() as u64;
        let torn = encode_batch(&[event(4), event(5)]).unwrap();
        bytes.extend(&torn[..torn.len() - 30]);
        let scan = scan(&bytes, 0, None);
        assert_eq!(scan.batches.len(), 2);
        assert_eq!(scan.batches[1].start, first_end);
        assert_eq!(scan.committed_end, second_end);
        assert!(matches!(scan.stop, Some(Stop::Incomplete)));
    }

    #[test]
    fn scan_detects_gaps_and_bad_markers() {
        let mut bytes = encode_batch(&[event(1)]).unwrap();
        bytes.extend(encode_batch(&[event(3)]).unwrap());
        let scan = scan(&bytes, 0, None);
        assert_eq!(scan.batches.len(), 1);
        assert!(matches!(
            scan.stop,
            Some(Stop::Invalid {
                commit_follows: true,
                ..
            })
        ));
        let bytes = encode_batch(&[event(2)]).unwrap();
        let scan = super::scan(&bytes, 10, Some(1));
        assert!(scan.batches.is_empty());
        assert_eq!(scan.committed_end, 10);
        let bad = b"{\"rv\":1,\"type\":\"ADDED\",\"key\":{\"group\":\"\",\"kind\":\"K\",\"name\":\"n\"},\"object\":{}}\n{\"commit\":2,\"events\":1}\n";
        assert!(matches!(
            super::scan(bad, 0, None).stop,
            Some(Stop::Invalid { .. })
        ));
    }
}
