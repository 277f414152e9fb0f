//! `pods/{name}/exec` over WebSocket, the channel protocol kubectl 1.32 speaks first
//! (`v5.channel.k8s.io`, else `v4.channel.k8s.io`): binary messages whose first byte is the
//! stream (0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal resizes; with v5, 255
//! closes a stream, which is how kubectl signals the end of stdin). The command runs as
//! `egress exec` runs it, through a [`Runner`] the local cluster provides; its exit code comes
//! back as the API server reports it (`NonZeroExitCode` with an `ExitCode` cause), so `kubectl
//! exec` exits with it. With `tty=true` the command runs on a pseudo-terminal ([`crate::pty`]),
//! its controlling terminal, whose size follows kubectl's resize messages; its output comes back
//! on stdout, as from a terminal.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::body::{self, Body};
use crate::objects::Query;
use crate::status::ApiError;

/// The channel protocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// A command prepared to run as a Pod's container.
pub struct Prepared {
    /// The command, with the Pod's environment (and network namespace) set up.
    pub command: std::process::Command,
    /// Whatever must live while the command runs (a capture namespace).
    pub keep: Box<dyn Send>,
}

/// Runs commands as Pods' containers.
pub trait Runner: Send + Sync {
    /// Prepares `command` as container `container` of Pod `namespace/pod`; `Err` with the
    /// message kubectl prints (`unable to upgrade connection: container not found ("x")`).
    fn prepare(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[String],
    ) -> Result<Prepared, String>;
}

/// What an exec request asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod.
    pub pod: String,
    /// `container`.
    pub container: Option<String>,
    /// `command` (repeated).
    pub command: Vec<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `tty`.
    pub tty: bool,
}

impl Request {
    /// From the query of an exec request.
    pub fn from_query(namespace: &str, pod: &str, query: &Query, raw: Option<&str>) -> Request {
        let command = raw
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.strip_prefix("command="))
            .map(|v| {
                Query::parse(Some(&format!("v={v}")))
                    .get("v")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        Request {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: query
                .get("container")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            command,
            stdin: query.flag("stdin"),
            tty: query.flag("tty"),
        }
    }
}

/// The protocol to answer with, from the client's offer.
fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    PROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
}

/// Answers the upgrade and runs the command on the upgraded connection.
pub fn upgrade(
    mut req: http::Request<hyper::body::Incoming>,
    exec: Request,
    runner: Arc<dyn Runner>,
) -> Result<Response<Body>, ApiError> {
    // The command, Pod and container are checked first, so that a client falling back from
    // WebSocket to SPDY gets the same answer.
    if exec.command.is_empty() {
        return Err(ApiError::BadRequest(
            "you must specify at least one command for the container".into(),
        ));
    }
    let prepared = runner
        .prepare(
            &exec.namespace,
            &exec.pod,
            exec.container.as_deref(),
            &exec.command,
        )
        .map_err(ApiError::BadRequest)?;
    let headers = req.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_upgrade, key) else {
        return Err(ApiError::BadRequest(
            "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)".into(),
        ));
    };
    let Some(protocol) = negotiate(headers) else {
        return Err(ApiError::BadRequest(format!(
            "none of the offered subprotocols is served; use one of {PROTOCOLS:?}"
        )));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session(ws, prepared, &exec, protocol == PROTOCOLS[0]).await;
            }
            Err(e) => tracing::debug!(error = %e, "exec: upgrade failed"),
        }
    });
    let mut resp = Response::new(body::full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

/// The final `Status` of a command that exited with `code` (or could not start).
pub fn final_status(code: Result<i32, String>) -> Value {
    match code {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

fn frame(stream: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(stream);
    v.extend_from_slice(data);
    Message::binary(v)
}

async fn session(
    ws: WebSocketStream<TokioIo<Upgraded>>,
    prepared: Prepared,
    exec: &Request,
    v5: bool,
) {
    let Prepared { command, keep } = prepared;
    let _keep = keep;
    let (mut sink, mut stream) = ws.split();
    // With a terminal asked for: the command's stdio is a pty's subordinate side and its
    // controlling terminal; without one (or if none can be opened), pipes.
    let pty = if exec.tty {
        match crate::pty::Pty::open() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("kubectl exec -t: no pseudo-terminal ({e}); running without one");
                None
            }
        }
    } else {
        None
    };
    let mut command = match &pty {
        Some(p) => {
            let mut c =
                tokio::process::Command::from(crate::pty::with_controlling_terminal(&command));
            let stdio = |f: &std::fs::File| f.try_clone().map(std::process::Stdio::from);
            match (
                stdio(&p.subordinate),
                stdio(&p.subordinate),
                stdio(&p.subordinate),
            ) {
                (Ok(i), Ok(o), Ok(e)) => {
                    c.stdin(i).stdout(o).stderr(e);
                }
                _ => tracing::warn!("kubectl exec -t: the pseudo-terminal cannot be shared"),
            }
            c
        }
        None => {
            let mut c = tokio::process::Command::from(command);
            c.stdin(if exec.stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            c
        }
    };
    command.kill_on_drop(true);
    let spawned = command.spawn();
    // The parent's copies of the subordinate side go now: the terminal ends with the command.
    drop(command);
    let (pty_out, mut pty_in, pty_size) = match pty {
        Some(p) => {
            let reader = p.master.try_clone().ok().map(tokio::fs::File::from_std);
            let writer = p.master.try_clone().ok().map(tokio::fs::File::from_std);
            drop(p.subordinate);
            (reader, writer, Some(p.master))
        }
        None => (None, None, None),
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let program = exec.command.first().map(String::as_str).unwrap_or_default();
            let status = final_status(Err(format!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: {e}: unknown"
            )));
            let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let pump = |mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>, id: u8| {
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(frame(id, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    let err_stream = if exec.tty { STDOUT } else { STDERR };
    let out_task = match pty_out {
        // Reading the terminal ends with EIO once the command and its children are gone.
        Some(master) => Some(pump(Box::new(master), STDOUT)),
        None => child.stdout.take().map(|o| pump(Box::new(o), STDOUT)),
    };
    let err_task = child.stderr.take().map(|e| pump(Box::new(e), err_stream));
    drop(out_tx);
    let mut stdin = child.stdin.take();
    // The writer: everything the command prints, in order per stream.
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        sink
    });
    // The reader: stdin from the client until it closes it (v5) or the connection ends.
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            let data = match msg {
                Message::Binary(d) => d,
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first().copied() {
                Some(STDIN) if pty_in.is_some() => {
                    if let Some(w) = pty_in.as_mut()
                        && (w.write_all(&data[1..]).await.is_err() || w.flush().await.is_err())
                    {
                        pty_in = None;
                    }
                }
                Some(STDIN) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&data[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(RESIZE) => {
                    if let (Some(master), Some((w, h))) =
                        (pty_size.as_ref(), crate::pty::parse_resize(&data[1..]))
                    {
                        let resized = crate::pty::resize(master, w, h);
                        if let Err(e) = resized {
                            tracing::debug!("kubectl exec -t: resize: {e}");
                        }
                    }
                }
                Some(CLOSE) if v5 && data.get(1) == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
    };
    let gone = tokio::select! {
        status = child.wait() => Some(status),
        () = reader => None,
    };
    let code = match gone {
        Some(status) => status,
        // The client went away: the command goes too.
        None => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    for t in [out_task, err_task].into_iter().flatten() {
        let _ = t.await;
    }
    let Ok(mut sink) = writer.await else {
        return;
    };
    let code = code.map_err(|e| e.to_string()).map(|s| {
        use std::os::unix::process::ExitStatusExt;
        s.code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .unwrap_or(1)
    });
    let _ = sink
        .send(frame(ERROR, final_status(code).to_string().as_bytes()))
        .await;
    let _ = sink.send(normal_close()).await;
    let _ = sink.close().await;
}

/// A close frame with status 1000: kubectl treats any other ending as an error.
fn normal_close() -> Message {
    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exit_codes_become_the_api_servers_status() {
        assert_eq!(final_status(Ok(0))["status"], "Success");
        let s = final_status(Ok(7));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "7");
    }

    #[test]
    fn commands_are_read_in_order_and_decoded() {
        let raw =
            "command=sh&command=-c&command=echo%20a%3Db&container=curl&stdin=true&stdout=true";
        let q = Query::parse(Some(raw));
        let r = Request::from_query("apps", "curl-1", &q, Some(raw));
        assert_eq!(r.command, ["sh", "-c", "echo a=b"]);
        assert_eq!(r.container.as_deref(), Some("curl"));
        assert!(r.stdin && !r.tty);
    }

    #[test]
    fn v5_is_preferred() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io, v5.channel.k8s.io, channel.k8s.io"),
        );
        assert_eq!(negotiate(&h), Some("v5.channel.k8s.io"));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("channel.k8s.io"),
        );
        assert_eq!(negotiate(&h), None);
    }
}
