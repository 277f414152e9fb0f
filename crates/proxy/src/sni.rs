//! Reads a TLS ClientHello off a fresh connection to learn its SNI and ALPN, the way Envoy's
//! `tls_inspector` listener filter does, without losing a byte: the bytes read are kept and
//! replayed ahead of the stream by [`Rewind`], so a passthrough chain forwards the original
//! ClientHello and a terminating chain hands it to rustls.
//!
//! A ClientHello may be split across several TLS records and across several reads; parsing
//! waits for more bytes until the whole handshake message is there. Bytes that are not a TLS
//! handshake mean "no SNI" (as in Envoy, where such a connection can still match a chain
//! without server names). A ClientHello larger than [`MAX_CLIENT_HELLO`], or one that does not
//! arrive within the listener-filter timeout ([`CLIENT_HELLO_TIMEOUT`], Envoy's 15s), closes
//! the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Envoy's default listener-filter timeout.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest ClientHello handshake message accepted (Envoy's `tls_inspector` limit is 64 KiB).
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// Largest TLS record payload plus the allowance RFC 8446 gives ciphertext.
const MAX_RECORD: usize = 16384 + 2048;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// What the ClientHello said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// The `host_name` of the server_name extension, lower-cased.
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<Vec<u8>>,
}

/// Result of parsing the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A TLS handshake that is not complete yet: read more.
    Incomplete,
    /// Not TLS, or not a well-formed ClientHello: no SNI.
    NotTls,
    /// The ClientHello is larger than [`MAX_CLIENT_HELLO`].
    TooLarge,
    /// A complete ClientHello.
    Hello(ClientHello),
}

/// Parses the first bytes of a connection.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.first().is_some_and(|b| *b != CONTENT_HANDSHAKE) || buf.get(1).is_some_and(|b| *b != 3) {
        return Parse::NotTls;
    }
    let mut handshake = Vec::new();
    let mut off = 0;
    while buf.len() >= off + 5 {
        let header = &buf[off..off + 5];
        if header[0] != CONTENT_HANDSHAKE || header[1] != 3 {
            return Parse::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Parse::NotTls;
        }
        let Some(payload) = buf.get(off + 5..off + 5 + len) else {
            break;
        };
        handshake.extend_from_slice(payload);
        off += 5 + len;
        match handshake_message(&handshake) {
            Parse::Incomplete => {}
            done => return done,
        }
    }
    // A record still arriving can already show a wrong handshake type or an oversized length.
    if let Some(rest) = buf.get(off + 5..) {
        handshake.extend_from_slice(rest);
        if let verdict @ (Parse::TooLarge | Parse::NotTls) = handshake_message(&handshake) {
            return verdict;
        }
    }
    Parse::Incomplete
}

/// Looks at the handshake bytes gathered so far.
fn handshake_message(hs: &[u8]) -> Parse {
    if hs.is_empty() {
        return Parse::Incomplete;
    }
    if hs[0] != HANDSHAKE_CLIENT_HELLO {
        return Parse::NotTls;
    }
    if hs.len() < 4 {
        return Parse::Incomplete;
    }
    let len = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
    if len > MAX_CLIENT_HELLO {
        return Parse::TooLarge;
    }
    match hs.get(4..4 + len) {
        None => Parse::Incomplete,
        Some(body) => client_hello(body).map_or(Parse::NotTls, Parse::Hello),
    }
}

/// A cursor over big-endian TLS structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// Parses a ClientHello body (after the handshake header).
fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions (SSLv3-style hello)
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        match kind {
            EXT_SERVER_NAME => {
                let mut names = Reader(data.vec16()?);
                while !names.0.is_empty() {
                    let name_type = names.u8()?;
                    let name = names.vec16()?;
                    if name_type == 0 && hello.sni.is_none() {
                        let name = std::str::from_utf8(name).ok()?;
                        if name.is_empty() || !name.is_ascii() {
                            return None;
                        }
                        hello.sni = Some(name.to_ascii_lowercase());
                    }
                }
            }
            EXT_ALPN => {
                let mut list = Reader(data.vec16()?);
                while !list.0.is_empty() {
                    hello.alpn.push(list.vec8()?.to_vec());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

/// Why a ClientHello could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    /// No complete ClientHello within the listener-filter timeout.
    #[error("timed out waiting for the TLS ClientHello")]
    Timeout,
    /// The ClientHello exceeded [`MAX_CLIENT_HELLO`].
    #[error("TLS ClientHello larger than {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
    /// The peer closed before a complete ClientHello arrived.
    #[error("connection closed before the TLS ClientHello was complete")]
    Closed,
    /// Reading failed.
    #[error("reading the TLS ClientHello: {0}")]
    Io(#[from] io::Error),
}

/// What [`read_client_hello`] found, with the bytes it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// The ClientHello; `None` when the connection does not start with TLS.
    pub hello: Option<ClientHello>,
    /// Every byte read, to be replayed with [`Rewind`].
    pub buffered: Vec<u8>,
}

impl Peeked {
    /// SNI, if any.
    pub fn sni(&self) -> Option<&str> {
        self.hello.as_ref().and_then(|h| h.sni.as_deref())
    }
}

/// Reads from `io` until a ClientHello is complete or the bytes are known not to be TLS.
pub async fn read_client_hello<R>(io: &mut R, timeout: Duration) -> Result<Peeked, PeekError>
where
    R: AsyncRead + Unpin,
{
    let work = async {
        let mut buffered = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = io.read(&mut chunk).await?;
            if n == 0 {
                return if buffered.is_empty() {
                    Err(PeekError::Closed)
                } else {
                    // A peer that sent a few non-TLS bytes and half-closed still gets served.
                    match parse(&buffered) {
                        Parse::NotTls => Ok(Peeked {
                            hello: None,
                            buffered,
                        }),
                        _ => Err(PeekError::Closed),
                    }
                };
            }
            buffered.extend_from_slice(&chunk[..n]);
            match parse(&buffered) {
                Parse::Incomplete if buffered.len() > MAX_CLIENT_HELLO + 4096 => {
                    return Err(PeekError::TooLarge);
                }
                Parse::Incomplete => {}
                Parse::TooLarge => return Err(PeekError::TooLarge),
                Parse::NotTls => {
                    return Ok(Peeked {
                        hello: None,
                        buffered,
                    });
                }
                Parse::Hello(hello) => {
                    return Ok(Peeked {
                        hello: Some(hello),
                        buffered,
                    });
                }
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| PeekError::Timeout)?
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind<I> {
    prefix: Vec<u8>,
    pos: usize,
    inner: I,
}

impl<I> Rewind<I> {
    /// `prefix` is returned by reads before anything from `inner`.
    pub fn new(prefix: Vec<u8>, inner: I) -> Rewind<I> {
        Rewind {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &I {
        &self.inner
    }

    /// Takes the bytes not yet returned by reads, and the wrapped stream: the caller reads
    /// from the stream directly from now on.
    pub fn take_unread(&mut self) -> (Vec<u8>, &I) {
        let mut prefix = std::mem::take(&mut self.prefix);
        prefix.drain(..self.pos.min(prefix.len()));
        self.pos = 0;
        (prefix, &self.inner)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How well `sni` matches a chain's server names, Envoy's filter-chain order: an exact name
/// beats a longer `*.suffix` wildcard, which beats a shorter one, which beats a chain without
/// server names (matches anything, including no SNI). `None` = no match. Case-insensitive; a
/// wildcard needs at least one label in front of the suffix (`*.cnn.com` does not match
/// `cnn.com`).
pub fn match_rank(server_names: &[String], sni: Option<&str>) -> Option<(u8, usize)> {
    if server_names.is_empty() {
        return Some((0, 0));
    }
    server_names
        .iter()
        .filter_map(|name| name_rank(name, sni))
        .max()
}

fn name_rank(pattern: &str, sni: Option<&str>) -> Option<(u8, usize)> {
    if pattern == "*" {
        return Some((1, 0));
    }
    let sni = sni?;
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            let matches = sni.len() > suffix.len()
                && sni
                    .get(sni.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix));
            matches.then_some((2, suffix.len()))
        }
        _ => pattern
            .eq_ignore_ascii_case(sni)
            .then_some((3, pattern.len())),
    }
}

/// True when the requested name `name` (a DYNAMIC_DNS cluster's Host or SNI) is covered by the
/// host `pattern` by the same rule as a chain's server names ([`match_rank`]), with two
/// refusals on top: `*` covers nothing (a cluster's hosts are never a bare `*`), and a name
/// with an empty label covers nothing. A trailing dot is ignored.
pub fn name_covered(pattern: &str, name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    pattern != "*" && !name.contains("..") && name_rank(pattern, Some(name)).is_some()
}

/// The index of the chain a connection with `sni` is handed to, if any (see [`match_rank`];
/// among equally good matches the first wins).
pub fn select_chain<'a, I>(chains: I, sni: Option<&str>) -> Option<usize>
where
    I: IntoIterator<Item = &'a [String]>,
{
    let mut best: Option<((u8, usize), usize)> = None;
    for (i, names) in chains.into_iter().enumerate() {
        if let Some(rank) = match_rank(names, sni)
            && best.is_none_or(|(b, _)| rank > b)
        {
            best = Some((rank, i));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::name_covered;

    #[test]
    fn a_wildcard_covers_names_under_it_and_nothing_else() {
        assert!(name_covered("*.wiki.test", "a.wiki.test"));
        assert!(name_covered("*.wiki.test", "A.b.WIKI.test."));
        assert!(!name_covered("*.wiki.test", "wiki.test"));
        assert!(!name_covered("*.wiki.test", ".wiki.test"));
        assert!(!name_covered("*.wiki.test", "a..wiki.test"));
        assert!(!name_covered("*.wiki.test", "awiki.test"));
        assert!(!name_covered("*.wiki.test", "a.wiki.test.evil"));
        assert!(!name_covered("*", "a.wiki.test"));
        assert!(!name_covered("*wiki.test", "awiki.test"));
        assert!(name_covered("exact.test", "EXACT.test"));
        assert!(!name_covered("exact.test", "a.exact.test"));
        assert!(!name_covered("*.wiki.test", "127.0.0.1"));
    }
}
