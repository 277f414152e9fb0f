//! `egress logs [POD | -l SELECTOR] [-n NS] [-c CONTAINER] [-f] [--tail N]`: the container logs
//! of the local cluster's Pods. A gateway's or sidecar's log is its access log, written by
//! `egress up` to `<store>/run/pods/<namespace>_<pod>/<container>.log`; other containers run no
//! process, so their logs are empty.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use egress_printers::selector;
use egress_store::{ObjectKey, Store};
use serde_json::Value;

use crate::OpError;

/// How often `-f` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// What `logs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LogsArgs {
    /// A Pod name (or `pod/NAME`).
    pub pod: Option<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `-l`.
    pub selector: Option<String>,
    /// `-c`.
    pub container: Option<String>,
    /// `-f`.
    pub follow: bool,
    /// `--tail`; kubectl's default is all lines for one Pod and 10 with a selector.
    pub tail: Option<i64>,
    /// `--prefix`: each line starts with `[pod/NAME/CONTAINER]`.
    pub prefix: bool,
}

struct Source {
    path: PathBuf,
    prefix: String,
    offset: u64,
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn containers(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The container whose log is shown: `-c`, else the default-container annotation, else the
/// only or first container (kubectl says which it picked when there are several).
fn pick_container(
    pod: &Value,
    wanted: Option<&str>,
    err: &mut dyn Write,
) -> Result<String, OpError> {
    let all = containers(pod);
    let name = text(pod, "/metadata/name");
    if let Some(c) = wanted {
        if all.iter().any(|x| x == c) {
            return Ok(c.to_owned());
        }
        return Err(OpError::Usage(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    let default = text(
        pod,
        "/metadata/annotations/kubectl.kubernetes.io~1default-container",
    );
    let chosen = if !default.is_empty() && all.iter().any(|c| c == default) {
        default.to_owned()
    } else {
        all.first().cloned().unwrap_or_default()
    };
    if all.len() > 1 {
        writeln!(
            err,
            "Defaulted container \"{chosen}\" out of: {}",
            all.join(", ")
        )?;
    }
    Ok(chosen)
}

/// Prints the logs; with `-f`, keeps printing new lines until the process is stopped.
pub fn run(
    store: &Store,
    args: &LogsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), OpError> {
    let ns = args.namespace.as_deref().unwrap_or("default");
    let pods: Vec<Value> = match (&args.pod, &args.selector) {
        (Some(_), Some(_)) => {
            return Err(OpError::Reported(
                "error: only one of a pod name or a selector (-l) can be given".into(),
            ));
        }
        (None, None) => {
            return Err(OpError::Reported(
                "error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\nPOD or TYPE/NAME is a required argument for the logs command".into(),
            ));
        }
        (Some(p), None) => {
            let name = p
                .strip_prefix("pod/")
                .or(p.strip_prefix("pods/"))
                .unwrap_or(p);
            let key = ObjectKey::new("", "Pod", Some(ns), name);
            match store.get(&key).map_err(OpError::store)? {
                Some(pod) => vec![pod],
                None => {
                    return Err(OpError::Reported(format!(
                        "Error from server (NotFound): pods \"{name}\" not found"
                    )));
                }
            }
        }
        (None, Some(sel)) => {
            let selector = selector::parse(sel).map_err(|e| OpError::Usage(e.to_string()))?;
            store
                .list("", "Pod", Some(ns))
                .map_err(OpError::store)?
                .items
                .into_iter()
                .filter(|p| selector.matches_object(p))
                .collect()
        }
    };
    if pods.is_empty() {
        writeln!(err, "No resources found in {ns} namespace.")?;
        return Ok(());
    }
    let tail = args
        .tail
        .unwrap_or(if args.selector.is_some() { 10 } else { -1 });
    let log_dir = egress_cluster::up::run_dir(store.dir()).join("pods");
    let mut sources = Vec::new();
    for pod in &pods {
        let container = pick_container(pod, args.container.as_deref(), err)?;
        let name = text(pod, "/metadata/name");
        sources.push(Source {
            path: log_dir
                .join(format!("{ns}_{name}"))
                .join(format!("{container}.log")),
            prefix: if args.prefix {
                format!("[pod/{name}/{container}] ")
            } else {
                String::new()
            },
            offset: 0,
        });
    }
    for s in &mut sources {
        let (bytes, end) = read_from(&s.path, 0)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let skip = match usize::try_from(tail) {
            Ok(n) => lines.len().saturating_sub(n),
            Err(_) => 0,
        };
        for line in &lines[skip..] {
            writeln!(out, "{}{line}", s.prefix)?;
        }
        s.offset = end;
    }
    out.flush()?;
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        for s in &mut sources {
            let (bytes, _) = read_from(&s.path, s.offset)?;
            // Only whole lines; a partial one waits for its end.
            let Some(last_newline) = bytes.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes[..=last_newline]);
            for line in text.lines() {
                writeln!(out, "{}{line}", s.prefix)?;
            }
            s.offset += u64::try_from(last_newline + 1).unwrap_or(0);
        }
        out.flush()?;
    }
}

/// The file's bytes from `offset`, and its length; a missing file is empty.
fn read_from(path: &PathBuf, offset: u64) -> Result<(Vec<u8>, u64), OpError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => {
            return Err(OpError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let io = |source| OpError::Read {
        path: path.display().to_string(),
        source,
    };
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(io)?;
    let end = offset + u64::try_from(buf.len()).unwrap_or(0);
    Ok((buf, end))
}
