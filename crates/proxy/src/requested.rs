//! What a client asks for, read from the first bytes it sends: the SNI of a TLS ClientHello or
//! the Host of an HTTP/1 request. A sidecar's outbound policy (`PassthroughCluster` under
//! ALLOW_ANY, `BlackHoleCluster` under REGISTRY_ONLY) decides without knowing it, as Envoy's
//! catch-all chain does; egress still reads it so that the decision's log line and metrics name
//! the host (Istio's BlackHoleCluster lines name none: istio/istio #14110, #17759, #33281), which
//! is what an allow-list is built from.
//!
//! * [`sniff`] classifies a prefix: more bytes needed, or done (with what was found; bytes that
//!   are neither TLS nor HTTP/1 find nothing).
//! * [`read_requested`] reads a prefix off a connection that is going to be closed anyway
//!   (the black hole), within [`SNIFF_TIMEOUT`].
//! * [`Tap`] watches a proxied connection's client bytes as they pass (passthrough), so a
//!   server-first protocol is never held back waiting for the client: what it found is in its
//!   [`Found`] when the connection is logged, and the connection is counted as opened once the
//!   name is known (or the server speaks first, or the client's prefix found nothing).
//!
//! Only names that look like DNS names (or IP literals) are kept, lower-cased, so a hostile
//! client cannot put arbitrary bytes into a metric label; the access log escapes what it writes
//! anyway.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::accesslog::{AccessLogger, LogEntry};
use crate::sni::{self, Parse};

/// The most client bytes inspected: a ClientHello or request head longer than this names
/// nothing.
pub const MAX_PREFIX: usize = 16 * 1024;

/// How long the black hole waits for a client's first bytes before closing without a name.
/// A client-first protocol (TLS, HTTP) sends them at once; a server-first one waits this long
/// for a close it would otherwise see at once.
pub const SNIFF_TIMEOUT: Duration = Duration::from_secs(1);

/// Headers looked at in a request head.
const MAX_HEADERS: usize = 64;

/// What a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    /// The SNI of its ClientHello.
    pub sni: Option<String>,
    /// The Host (or absolute-form authority) of its HTTP/1 request, port included if given.
    pub host: Option<String>,
}

impl Requested {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.sni.is_none() && self.host.is_none()
    }

    /// Fills `entry`'s `%REQUESTED_SERVER_NAME%` and `%REQ(:AUTHORITY)%` where they are unset.
    pub fn annotate(&self, entry: &mut LogEntry) {
        if entry.requested_server_name.is_none() {
            entry.requested_server_name.clone_from(&self.sni);
        }
        if entry.authority.is_none() {
            entry.authority.clone_from(&self.host);
        }
    }
}

/// What a prefix says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniff {
    /// Not decided: read more.
    More,
    /// Decided (possibly with nothing found).
    Done(Requested),
}

/// Classifies the first bytes of a connection.
pub fn sniff(prefix: &[u8]) -> Sniff {
    if prefix.is_empty() {
        return Sniff::More;
    }
    let done = |r| Sniff::Done(r);
    match sni::parse(prefix) {
        Parse::Hello(hello) => done(Requested {
            sni: hello.sni.filter(|s| plausible(s)),
            host: None,
        }),
        Parse::Incomplete if prefix.len() < MAX_PREFIX => Sniff::More,
        Parse::Incomplete | Parse::TooLarge => done(Requested::default()),
        Parse::NotTls => http_host(prefix),
    }
}

/// Request methods an HTTP/1 request head may start with (what `Host` is looked for after).
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// The Host of an HTTP/1 request head. Bytes that cannot begin one of [`METHODS`] are
/// decided at once (nothing found), so a client speaking another protocol is counted without
/// waiting for more of its bytes.
fn http_host(prefix: &[u8]) -> Sniff {
    let start = &prefix[..prefix.len().min(8)];
    if !METHODS
        .iter()
        .any(|m| m.starts_with(start) || start.starts_with(m))
    {
        return Sniff::Done(Requested::default());
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(prefix) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if prefix.len() < MAX_PREFIX => return Sniff::More,
        Ok(httparse::Status::Partial) | Err(_) => return Sniff::Done(Requested::default()),
    }
    let from_header = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim);
    // An absolute-form target (`GET http://host/ HTTP/1.1`) names the host too.
    let from_target = req
        .path
        .and_then(|p| p.parse::<http::Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
    let host = from_target
        .or_else(|| from_header.map(str::to_owned))
        .filter(|h| plausible(h))
        .map(|h| h.to_ascii_lowercase());
    Sniff::Done(Requested { sni: None, host })
}

/// What a connection speaks, from its first bytes: what Envoy's `http_inspector` decides for a
/// sidecar's HTTP port, whose non-HTTP traffic goes to the outbound policy instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP/1 request line, or the HTTP/2 connection preface (h2c).
    Http,
    /// Anything else (TLS, a server-first protocol's silence, other bytes).
    Other,
}

/// The HTTP/2 connection preface's first line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// What `prefix` speaks, or `None` while it could still begin an HTTP request.
pub fn protocol(prefix: &[u8]) -> Option<Protocol> {
    let candidates = METHODS.iter().copied().chain([H2_PREFACE]);
    let mut undecided = false;
    for c in candidates {
        if prefix.starts_with(c) {
            return Some(Protocol::Http);
        }
        undecided |= c.starts_with(prefix);
    }
    (!undecided).then_some(Protocol::Other)
}

/// Reads the first bytes of `io` until [`protocol`] decides (the peer closing, or `timeout`
/// passing, decide `Other`); returns the bytes read, to be replayed, and the protocol.
pub async fn read_protocol<R>(io: &mut R, timeout: Duration) -> (Vec<u8>, Protocol)
where
    R: AsyncRead + Unpin,
{
    let mut buffered = Vec::new();
    let mut decided = Protocol::Other;
    let work = async {
        let mut chunk = [0u8; 1024];
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffered.extend_from_slice(&chunk[..n]),
            }
            if let Some(p) = protocol(&buffered) {
                decided = p;
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, work).await;
    (buffered, decided)
}

/// A DNS name or IP literal, optionally with a port: what may become a label value.
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 261
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        })
}

/// Reads the first bytes of `io` until [`sniff`] decides, the peer stops sending or closes,
/// or `timeout` passes; returns the bytes read and what they asked for.
pub async fn read_requested<R>(io: &mut R, timeout: Duration) -> (Vec<u8>, Requested)
where
    R: AsyncRead + Unpin,
{
    let mut buffered = Vec::new();
    let mut found = Requested::default();
    let work = async {
        let mut chunk = [0u8; 4096];
        loop {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffered.extend_from_slice(&chunk[..n]),
            }
            if let Sniff::Done(r) = sniff(&buffered) {
                found = r;
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, work).await;
    (buffered, found)
}

/// What a [`Tap`] found, shared with whoever logs the connection.
#[derive(Debug, Default)]
pub struct Found(OnceLock<Requested>);

impl Found {
    /// Already decided (the black hole read the prefix itself).
    pub fn decided(requested: Requested) -> Found {
        let found = Found::default();
        let _ = found.0.set(requested);
        found
    }

    /// What was found, once decided.
    pub fn get(&self) -> Option<&Requested> {
        self.0.get()
    }
}

/// A downstream stream whose first client bytes are sniffed as they are read.
///
/// When the name is decided (or the server writes first, or the prefix limit is reached) the
/// connection is reported opened through `opened`, its entry carrying the name.
pub struct Tap<I> {
    io: I,
    found: Arc<Found>,
    state: Option<Pending>,
}

/// The sniffing still to do.
struct Pending {
    prefix: Vec<u8>,
    opened: Option<(AccessLogger, LogEntry)>,
}

impl<I> Tap<I> {
    /// Wraps `io`; `opened` is the logger and entry to report the connection opened with.
    pub fn new(io: I, opened: Option<(AccessLogger, LogEntry)>) -> Tap<I> {
        Tap {
            io,
            found: Arc::new(Found::default()),
            state: Some(Pending {
                prefix: Vec::new(),
                opened,
            }),
        }
    }

    /// What this tap finds, to be read when the connection is logged. A connection closed
    /// before anything was decided finds nothing and is counted when it is logged.
    pub fn found(&self) -> Arc<Found> {
        Arc::clone(&self.found)
    }

    fn decide(&mut self, requested: Requested) {
        let Some(pending) = self.state.take() else {
            return;
        };
        if let Some((logger, mut entry)) = pending.opened {
            requested.annotate(&mut entry);
            logger.tcp_opened(&entry);
        }
        let _ = self.found.0.set(requested);
    }

    fn saw(&mut self, bytes: &[u8]) {
        let Some(pending) = self.state.as_mut() else {
            return;
        };
        let room = MAX_PREFIX.saturating_sub(pending.prefix.len());
        pending
            .prefix
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        if let Sniff::Done(r) = sniff(&pending.prefix) {
            self.decide(r);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tap<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.state.is_some()
            && let Poll::Ready(Ok(())) = &polled
        {
            let read = buf.filled()[before..].to_vec();
            if read.is_empty() {
                self.decide(Requested::default());
            } else {
                self.saw(&read);
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tap<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // The server spoke first: whatever the client sent so far is all there is to go on.
        if self.state.is_some() {
            let found = self
                .state
                .as_ref()
                .map(|p| match sniff(&p.prefix) {
                    Sniff::Done(r) => r,
                    Sniff::More => Requested::default(),
                })
                .unwrap_or_default();
            self.decide(found);
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::net::SocketAddr;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::metrics::{LocalWorkload, Metrics};

    /// The first flight of a real rustls client asking for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    fn done(sni: Option<&str>, host: Option<&str>) -> Sniff {
        Sniff::Done(Requested {
            sni: sni.map(str::to_owned),
            host: host.map(str::to_owned),
        })
    }

    #[test]
    fn a_client_hello_names_its_sni_once_complete() {
        let hello = client_hello("API.example.org");
        for cut in 1..hello.len() {
            assert_eq!(sniff(&hello[..cut]), Sniff::More, "cut at {cut}");
        }
        assert_eq!(sniff(&hello), done(Some("api.example.org"), None));
    }

    #[test]
    fn an_http_request_head_names_its_host() {
        let head = b"GET /x HTTP/1.1\r\nUser-Agent: curl\r\nHost: A.Example.org:8080\r\n\r\n";
        for cut in 1..head.len() {
            assert_eq!(sniff(&head[..cut]), Sniff::More, "cut at {cut}");
        }
        assert_eq!(sniff(head), done(None, Some("a.example.org:8080")));
        let absolute = b"GET http://b.example.org/ HTTP/1.1\r\nHost: other\r\n\r\n";
        assert_eq!(sniff(absolute), done(None, Some("b.example.org")));
        let no_host = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(sniff(no_host), done(None, None));
    }

    #[test]
    fn other_protocols_and_hostile_names_find_nothing_at_once() {
        for bytes in [
            &b"ping"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: evil\x7f.example\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n",
        ] {
            assert_eq!(sniff(bytes), done(None, None), "{bytes:?}");
        }
        // A request head that never ends within the limit names nothing.
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_PREFIX, b'a');
        assert_eq!(sniff(&long), done(None, None));
    }

    #[test]
    fn http_ports_tell_http_from_everything_else() {
        for http in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST ",
            b"PRI * HTTP/2.0\r\n\r\nSM",
        ] {
            assert_eq!(protocol(http), Some(Protocol::Http), "{http:?}");
        }
        for partial in [&b"G"[..], b"GE", b"PR", b"CONNEC", b""] {
            assert_eq!(protocol(partial), None, "{partial:?}");
        }
        let hello = client_hello("a.example.org");
        for other in [&hello[..1], b"ping", b"\x00\x01", b"GETX"] {
            assert_eq!(protocol(other), Some(Protocol::Other), "{other:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_on_an_http_port_is_decided_at_the_timeout() {
        let (mut a, _b) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let (bytes, p) = read_protocol(&mut a, Duration::from_secs(15)).await;
        assert!(bytes.is_empty());
        assert_eq!(p, Protocol::Other);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn the_black_hole_waits_for_a_silent_client_only_so_long() {
        let (mut a, _b) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let (bytes, found) = read_requested(&mut a, SNIFF_TIMEOUT).await;
        assert!(bytes.is_empty());
        assert!(found.is_empty());
        assert_eq!(started.elapsed(), SNIFF_TIMEOUT);
    }

    #[tokio::test]
    async fn the_black_hole_reads_a_split_client_hello() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let hello = client_hello("blocked.example.org");
        let (first, rest) = hello.split_at(10);
        b.write_all(first).await.unwrap();
        let writer = {
            let rest = rest.to_vec();
            tokio::spawn(async move {
                b.write_all(&rest).await.unwrap();
                b
            })
        };
        let (bytes, found) = read_requested(&mut a, SNIFF_TIMEOUT).await;
        assert_eq!(bytes, hello);
        assert_eq!(found.sni.as_deref(), Some("blocked.example.org"));
        drop(writer.await.unwrap());
    }

    fn opened_series(m: &Metrics) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| l.starts_with("istio_tcp_connections_opened_total{"))
            .map(str::to_owned)
            .collect()
    }

    fn tap_over(
        io: tokio::io::DuplexStream,
        metrics: &Arc<Metrics>,
    ) -> Tap<tokio::io::DuplexStream> {
        let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let entry = LogEntry {
            downstream_remote_address: Some(addr(40000)),
            downstream_local_address: Some(addr(8443)),
            upstream_cluster: Some("PassthroughCluster".into()),
            ..LogEntry::default()
        };
        let logger = AccessLogger::disabled().with_metrics(Arc::clone(metrics));
        Tap::new(io, Some((logger, entry)))
    }

    #[tokio::test]
    async fn a_tap_counts_the_connection_opened_under_the_name_it_read() {
        let metrics = Arc::new(Metrics::sidecar(LocalWorkload::default()));
        let (a, mut client) = tokio::io::duplex(1 << 16);
        let mut tap = tap_over(a, &metrics);
        let found = tap.found();
        let hello = client_hello("api.example.org");
        client.write_all(&hello).await.unwrap();
        let mut buf = vec![0u8; hello.len()];
        tap.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, hello, "the bytes pass unchanged");
        assert_eq!(found.get().unwrap().sni.as_deref(), Some("api.example.org"));
        let opened = opened_series(&metrics);
        assert_eq!(opened.len(), 1, "{opened:?}");
        assert!(
            opened[0].contains("destination_service=\"api.example.org\"")
                && opened[0].contains("destination_service_name=\"PassthroughCluster\"")
                && opened[0].ends_with(" 1"),
            "{opened:?}"
        );
        // Later bytes are not inspected and do not count again.
        client.write_all(b"more").await.unwrap();
        let mut more = [0u8; 4];
        tap.read_exact(&mut more).await.unwrap();
        assert_eq!(opened_series(&metrics).len(), 1);
    }

    #[tokio::test]
    async fn a_server_that_speaks_first_is_not_held_back() {
        let metrics = Arc::new(Metrics::sidecar(LocalWorkload::default()));
        let (a, mut client) = tokio::io::duplex(64);
        let mut tap = tap_over(a, &metrics);
        let found = tap.found();
        tap.write_all(b"220 smtp ready\r\n").await.unwrap();
        assert!(found.get().unwrap().is_empty());
        let opened = opened_series(&metrics);
        assert!(
            opened.len() == 1 && opened[0].contains("destination_service=\"unknown\""),
            "{opened:?}"
        );
        let mut greeting = [0u8; 16];
        client.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"220 smtp ready\r\n");
    }
}
