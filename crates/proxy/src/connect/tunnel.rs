//! Tunnelling through a forward proxy (DestinationRule `trafficPolicy.tunnel`, Envoy's
//! tcp_proxy `tunneling_config`): on a connection already open to the proxy (TLS to it when the
//! cluster originates TLS), ask for a tunnel to `target_host:target_port` and, on a successful
//! answer, hand a stream on: the connection's bytes flow through the tunnel.
//!
//! Over HTTP/1.1 (this module) the request is `CONNECT host:port HTTP/1.1` or, for
//! `protocol: POST`, `POST / HTTP/1.1` with `Host: host:port` and no body framing, as Envoy
//! sends it; any 2xx opens the tunnel and the same connection is handed on. Bytes the proxy
//! sent after its response head are kept in front of the stream; without any, a plain TCP
//! stream stays splicable. Over HTTP/2 ([`http2`]) the tunnel is one stream.

mod http2;

use std::time::Duration;

use egress_snapshot::snapshot::{Tunnel, TunnelProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BoxIo;
use crate::sni::Rewind;

/// The longest response head a proxy may send.
const MAX_HEAD: usize = 8 * 1024;

/// Why a tunnel was not established.
#[derive(Debug, thiserror::Error)]
pub enum TunnelFailure {
    /// The proxy answered with a status that does not open a tunnel: not 2xx over HTTP/1.1,
    /// not 200 over HTTP/2 (Envoy's rule).
    #[error("the forward proxy refused the tunnel with status {0}")]
    Refused(u16),
    /// The answer was not an HTTP/1.x response head (or was longer than 8 KiB).
    #[error("the forward proxy's answer is not an HTTP/1.1 response")]
    Malformed,
    /// The proxy closed the connection, or reading or writing failed.
    #[error("talking to the forward proxy: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP/2 exchange failed: no HTTP/2 handshake (the proxy does not speak HTTP/2), a
    /// reset stream, a GOAWAY, a protocol error.
    #[error("HTTP/2 to the forward proxy: {0}")]
    Http2(#[source] hyper::Error),
    /// The target does not make a request URI (`host:port`).
    #[error("the tunnel target {0:?} is not a valid authority")]
    Target(String),
    /// No answer within the connect timeout.
    #[error("the forward proxy did not answer in time")]
    Timeout,
}

/// `host:port` as a request target (IPv6 literals bracketed).
fn authority(tunnel: &Tunnel) -> String {
    if tunnel.target_host.contains(':') && !tunnel.target_host.starts_with('[') {
        format!("[{}]:{}", tunnel.target_host, tunnel.target_port)
    } else {
        format!("{}:{}", tunnel.target_host, tunnel.target_port)
    }
}

/// Asks the proxy behind `io` for a tunnel to `tunnel`'s target, within `timeout`; returns the
/// stream to use from now on. `tls` says whether `io` is TLS to the proxy (an HTTP/2 POST's
/// `:scheme`).
pub async fn establish(
    io: BoxIo,
    tunnel: &Tunnel,
    tls: bool,
    timeout: Duration,
) -> Result<BoxIo, TunnelFailure> {
    let work = async {
        if tunnel.http2 {
            http2::establish(io, tunnel, tls).await
        } else {
            http1(io, tunnel).await
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| TunnelFailure::Timeout)?
}

/// The HTTP/1.1 request: `CONNECT` or `POST`, then the response head.
async fn http1(mut io: BoxIo, tunnel: &Tunnel) -> Result<BoxIo, TunnelFailure> {
    let target = authority(tunnel);
    let request = match tunnel.protocol {
        TunnelProtocol::Connect => format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        TunnelProtocol::Post => format!("POST / HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    };
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0_u8; 512];
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(TunnelFailure::Malformed);
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(TunnelFailure::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let status = status_of(&buf[..end]).ok_or(TunnelFailure::Malformed)?;
    if !(200..300).contains(&status) {
        return Err(TunnelFailure::Refused(status));
    }
    let rest = buf.split_off(end);
    Ok(if rest.is_empty() {
        io
    } else {
        Box::new(Rewind::new(rest, io)) as BoxIo
    })
}

/// The length of the response head (through its blank line), once complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The status code of an `HTTP/1.x NNN ...` status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    fn tunnel(host: &str) -> Tunnel {
        Tunnel {
            protocol: TunnelProtocol::Connect,
            http2: false,
            target_host: host.into(),
            target_port: 8443,
        }
    }

    /// A proxy on the other end of a pipe answering `answer` to the request it reads.
    async fn run(host: &str, answer: &'static [u8]) -> (Result<BoxIo, TunnelFailure>, String) {
        run_tunnel(tunnel(host), answer).await
    }

    async fn run_tunnel(
        tunnel: Tunnel,
        answer: &'static [u8],
    ) -> (Result<BoxIo, TunnelFailure>, String) {
        let (ours, mut theirs) = duplex(64 * 1024);
        let proxy = tokio::spawn(async move {
            let mut req = Vec::new();
            let mut b = [0_u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                if theirs.read(&mut b).await.unwrap() == 0 {
                    break;
                }
                req.push(b[0]);
            }
            theirs.write_all(answer).await.unwrap();
            (String::from_utf8(req).unwrap(), theirs)
        });
        let got = establish(Box::new(ours), &tunnel, false, Duration::from_secs(5)).await;
        let (req, _theirs) = proxy.await.unwrap();
        (got, req)
    }

    #[tokio::test]
    async fn asks_for_the_target_and_keeps_what_follows_the_head() {
        let (got, req) = run(
            "external.example",
            b"HTTP/1.1 200 Connection established\r\n\r\nbanner",
        )
        .await;
        assert_eq!(
            req,
            "CONNECT external.example:8443 HTTP/1.1\r\nHost: external.example:8443\r\n\r\n"
        );
        let mut io = got.unwrap();
        let mut banner = [0_u8; 6];
        io.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, b"banner");
        let (_, req) = run("2001:db8::1", b"HTTP/1.0 200 OK\r\n\r\n").await;
        assert!(
            req.starts_with("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n"),
            "{req}"
        );
    }

    #[tokio::test]
    async fn post_asks_with_the_target_as_host_and_no_body_framing() {
        let post = Tunnel {
            protocol: TunnelProtocol::Post,
            ..tunnel("external.example")
        };
        let (got, req) = run_tunnel(post.clone(), b"HTTP/1.1 200 OK\r\n\r\n").await;
        assert_eq!(
            req,
            "POST / HTTP/1.1\r\nHost: external.example:8443\r\n\r\n"
        );
        assert!(got.is_ok());
        let (got, _) = run_tunnel(post, b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await;
        assert!(matches!(got, Err(TunnelFailure::Refused(405))));
    }

    #[tokio::test]
    async fn a_refusal_or_a_malformed_answer_is_a_typed_failure() {
        let (got, _) = run(
            "x.example",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(matches!(got, Err(TunnelFailure::Refused(403))));
        let (got, _) = run("x.example", b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(got, Err(TunnelFailure::Malformed)));
        let (got, _) = run("x.example", b"HTTP/1.1 2000 what\r\n\r\n").await;
        assert!(matches!(got, Err(TunnelFailure::Malformed)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_proxy_times_out_on_the_paused_clock() {
        let (ours, _theirs) = duplex(1024);
        let got = establish(
            Box::new(ours),
            &tunnel("x.example"),
            false,
            Duration::from_secs(10),
        )
        .await;
        assert!(matches!(got, Err(TunnelFailure::Timeout)));
    }
}
