//! `pods/{name}/log`: a container's log as `kubectl logs` reads it (`container`, `follow`,
//! `tailLines`, `limitBytes`). A gateway's or sidecar's log is its access log, which the local
//! cluster writes to `<pod log dir>/<namespace>_<pod>/<container>.log`; other containers run no
//! process and have empty logs. Following streams what is appended until the client goes or
//! the Pod is deleted; the file is looked at every [`FOLLOW_INTERVAL`] (there is no writer to
//! wait on across processes).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use egress_store::Store;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::objects::{Query, get};
use crate::path::ResourcePath;
use crate::status::ApiError;

/// How often a followed log is looked at for new lines.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The log file of `container`, checked against the Pod.
pub fn file(
    store: &Store,
    dir: &Path,
    path: &ResourcePath,
    name: &str,
    query: &Query,
) -> Result<PathBuf, ApiError> {
    let pod = get(store, path, name)?;
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().any(|x| x == c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let ns = path.namespace.as_deref().unwrap_or("default");
    Ok(dir
        .join(format!("{ns}_{name}"))
        .join(format!("{container}.log")))
}

/// The last `n` lines of `text`.
fn tail(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let mut seen = 0;
    let end = if text.ends_with(b"\n") {
        text.len() - 1
    } else {
        text.len()
    };
    for i in (0..end).rev() {
        if text[i] == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// Streams the log into `tx`: what is there (its tail, bounded), then, when following, what
/// is appended.
pub fn stream(
    store: &Store,
    (path, name): (&ResourcePath, &str),
    file: &Path,
    query: &Query,
    tx: &mpsc::Sender<Bytes>,
) {
    let mut existing = Vec::new();
    if let Ok(mut f) = std::fs::File::open(file) {
        let _ = f.read_to_end(&mut existing);
    }
    let offset = existing.len() as u64;
    let mut first: &[u8] = &existing;
    if let Some(n) = query
        .get("tailLines")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|n| *n >= 0)
    {
        first = tail(first, usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|t| t.parse::<usize>().ok())
    {
        first = &first[..first.len().min(limit)];
    }
    if !first.is_empty() && tx.blocking_send(Bytes::copy_from_slice(first)).is_err() {
        return;
    }
    if !query.flag("follow") {
        return;
    }
    let mut offset = offset;
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        if tx.is_closed() {
            return;
        }
        if get(store, path, name).is_err() {
            return;
        }
        let Ok(mut f) = std::fs::File::open(file) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // Rotated or truncated: start again from its beginning.
            offset = 0;
        }
        if len == offset || f.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut more = Vec::new();
        if f.read_to_end(&mut more).is_err() {
            continue;
        }
        offset += more.len() as u64;
        if tx.blocking_send(Bytes::from(more)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
