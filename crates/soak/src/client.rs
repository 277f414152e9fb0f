//! The workload's requests, made the way `egress exec ... -- curl` makes them: to the Pod's
//! sidecar as an explicit proxy (`http_proxy`/`https_proxy` = `<pod-ip>:15001`), one new
//! connection per request, `Connection: close`.
//!
//! * Plain HTTP: `GET http://HOST/politics HTTP/1.1` in absolute form.
//! * HTTPS: `CONNECT HOST:443`, then TLS to the host through the tunnel (SNI and certificate
//!   checked against the stand-in's CA), then `GET /politics`.
//!
//! The answer is reduced to a [`Class`]: a 200 from the stand-in is classified by the address
//! it saw (a gateway's static egress prefix, the pod range, or elsewhere) and its port.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::manifests::{Kind, Scenario};
use crate::oracle::Class;
use crate::upstream::{PORT, SEEN_FROM};

/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest body read (the stand-in's is 3 bytes; proxies' error bodies are small).
const MAX_BODY: usize = 64 * 1024;

/// Where addresses come from, to tell the path a request took.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// Per scenario's gateway: its StaticGatewayConfiguration's egress prefix.
    pub prefixes: Vec<Ipv4Net>,
    /// The pod range (the workload's sidecar connects from its pod IP).
    pub pod_range: Ipv4Net,
}

impl Addresses {
    /// The class of a 200 seen from `from` on stand-in port `port`.
    pub fn classify(&self, from: IpAddr, port: u16) -> Class {
        let IpAddr::V4(v4) = from else {
            return Class::Elsewhere;
        };
        if let Some(gateway) = self.prefixes.iter().position(|p| p.contains(&v4)) {
            Class::Via { gateway, port }
        } else if self.pod_range.contains(&v4) {
            Class::Direct { port }
        } else {
            Class::Elsewhere
        }
    }
}

/// What the client needs for every request.
#[derive(Debug, Clone)]
pub struct Client {
    /// Trusts the stand-in.
    pub tls: Arc<rustls::ClientConfig>,
    /// Address classification.
    pub addresses: Addresses,
    /// Bound on the whole request (connect, tunnel, handshake, answer).
    pub timeout: Duration,
}

/// How a request ended before a classification by status.
enum Step {
    Unreachable,
    Refused,
}

impl Client {
    /// Scenario `s`'s request through the sidecar at `sidecar`.
    pub async fn request(&self, s: &Scenario, sidecar: SocketAddr) -> Class {
        match tokio::time::timeout(self.timeout, self.attempt(s, sidecar)).await {
            Err(_) => Class::Timeout,
            Ok(Err(Step::Unreachable)) => Class::Unreachable,
            Ok(Err(Step::Refused)) => Class::Refused,
            Ok(Ok(c)) => c,
        }
    }

    async fn attempt(&self, s: &Scenario, sidecar: SocketAddr) -> Result<Class, Step> {
        let mut stream = TcpStream::connect(sidecar)
            .await
            .map_err(|_| Step::Unreachable)?;
        let _ = stream.set_nodelay(true);
        match s.kind {
            Kind::Http | Kind::Originate => {
                let req = format!(
                    "GET http://{h}/politics HTTP/1.1\r\nHost: {h}\r\nUser-Agent: egress-soak\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                    h = s.host
                );
                stream
                    .write_all(req.as_bytes())
                    .await
                    .map_err(|_| Step::Refused)?;
                self.read_answer(&mut stream).await
            }
            Kind::Passthrough => {
                let req = format!(
                    "CONNECT {h}:443 HTTP/1.1\r\nHost: {h}:443\r\nUser-Agent: egress-soak\r\n\r\n",
                    h = s.host
                );
                stream
                    .write_all(req.as_bytes())
                    .await
                    .map_err(|_| Step::Refused)?;
                let head = read_head_exact(&mut stream).await?;
                let status = parse_status(&head).ok_or(Step::Refused)?;
                if status != 200 {
                    return Ok(Class::Status(status));
                }
                let name = ServerName::try_from(s.host.to_owned()).map_err(|_| Step::Refused)?;
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
                let mut tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(|_| Step::Refused)?;
                let req = format!(
                    "GET /politics HTTP/1.1\r\nHost: {h}\r\nUser-Agent: egress-soak\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                    h = s.host
                );
                tls.write_all(req.as_bytes())
                    .await
                    .map_err(|_| Step::Refused)?;
                self.read_answer(&mut tls).await
            }
        }
    }

    /// Reads a whole `Connection: close` answer and classifies it.
    async fn read_answer<S: AsyncRead + Unpin>(&self, stream: &mut S) -> Result<Class, Step> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find_head_end(&buf) {
                break i;
            }
            if buf.len() > MAX_HEAD {
                return Err(Step::Refused);
            }
            let n = stream.read(&mut chunk).await.map_err(|_| Step::Refused)?;
            if n == 0 {
                return Err(Step::Refused);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        // Drain the body (bounded) so every proxy sees a complete exchange.
        let mut body = buf.len() - head_end;
        while body < MAX_BODY {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body += n,
            }
        }
        let status = parse_status(&head).ok_or(Step::Refused)?;
        if status != 200 {
            return Ok(Class::Status(status));
        }
        let from = header(&head, SEEN_FROM).and_then(|v| v.parse::<IpAddr>().ok());
        let port = header(&head, PORT).and_then(|v| v.parse::<u16>().ok());
        Ok(match (from, port) {
            (Some(from), Some(port)) => self.addresses.classify(from, port),
            _ => Class::Elsewhere,
        })
    }
}

/// Reads a response head byte by byte (nothing after it is consumed: the tunnel follows).
async fn read_head_exact(stream: &mut TcpStream) -> Result<String, Step> {
    let mut buf = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    while find_head_end(&buf).is_none() {
        if buf.len() > MAX_HEAD {
            return Err(Step::Refused);
        }
        let n = stream.read(&mut b).await.map_err(|_| Step::Refused)?;
        if n == 0 {
            return Err(Step::Refused);
        }
        buf.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The index just past the blank line ending a head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// The first value of header `name` (case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `GET http://ADDR/PATH` with a bound; the status, or `None` when nothing answered.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let work = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let head = read_head_exact(&mut s).await.ok()?;
        parse_status(&head)
    };
    tokio::time::timeout(timeout, work).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn heads_and_addresses_are_read() {
        let head = "HTTP/1.1 200 OK\r\nX-Soak-Seen-From: 127.91.1.3\r\nx-soak-port: 443\r\n\r\n";
        assert_eq!(parse_status(head), Some(200));
        assert_eq!(header(head, SEEN_FROM), Some("127.91.1.3"));
        assert_eq!(find_head_end(head.as_bytes()), Some(head.len()));
        assert_eq!(parse_status("SSH-2.0\r\n"), None);
        let a = Addresses {
            prefixes: vec![
                "127.91.1.0/31".parse().unwrap(),
                "127.91.1.2/31".parse().unwrap(),
            ],
            pod_range: "127.90.1.0/24".parse().unwrap(),
        };
        assert_eq!(
            a.classify("127.91.1.3".parse().unwrap(), 443),
            Class::Via {
                gateway: 1,
                port: 443
            }
        );
        assert_eq!(
            a.classify("127.90.1.9".parse().unwrap(), 80),
            Class::Direct { port: 80 }
        );
        assert_eq!(
            a.classify("127.0.0.1".parse().unwrap(), 80),
            Class::Elsewhere
        );
    }
}
