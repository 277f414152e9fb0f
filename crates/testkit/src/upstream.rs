//! Loopback HTTP and HTTPS upstreams that answer every path and record what they saw: method,
//! path, Host, headers, addresses, SNI. HTTP/1.1 and h2 (prior knowledge or ALPN) are both
//! served (hyper-util's auto connection builder).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::certs::CertFactory;
use crate::record::{ConnectionRecord, Gate, Log, RecordedRequest};
use crate::wait::TimedOut;
use crate::{Result, io_err};

/// The header every reply carries, naming the upstream's listening address.
const UPSTREAM_HEADER: &str = "x-testkit-upstream";

/// What an upstream answers for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Bytes,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering (a slow upstream, for timeout tests).
    pub delay: Option<Duration>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::status(200).with_body("ok\n")
    }
}

impl Reply {
    /// A reply with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: Bytes::new(),
            headers: Vec::new(),
            delay: None,
        }
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Delays the reply.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// State shared by the accept loop, the connections and the handle.
#[derive(Debug)]
struct Shared {
    requests: Log<RecordedRequest>,
    connections: Log<ConnectionRecord>,
    replies: Mutex<HashMap<String, Reply>>,
    default_reply: Mutex<Reply>,
    gate: Gate,
}

impl Shared {
    fn reply_for(&self, path: &str) -> Reply {
        let replies = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
        match replies.get(path) {
            Some(reply) => reply.clone(),
            None => self
                .default_reply
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Per-connection facts copied into each request record.
#[derive(Debug, Clone)]
struct ConnFacts {
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    tls: bool,
    sni: Option<String>,
}

/// A plain-HTTP upstream on loopback. Stops when dropped.
#[derive(Debug)]
pub struct HttpUpstream {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpUpstream {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves HTTP/1.1 and h2 (prior knowledge).
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        Self::spawn(addr, None).await
    }

    async fn spawn(addr: SocketAddr, tls: Option<TlsAcceptor>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(io_err(format!("binding {addr}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(io_err("reading the bound address"))?;
        let shared = Arc::new(Shared {
            requests: Log::new(),
            connections: Log::new(),
            replies: Mutex::new(HashMap::new()),
            default_reply: Mutex::new(Reply::default()),
            gate: Gate::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone(), tls));
        Ok(HttpUpstream {
            shared,
            local_addr,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.local_addr)
    }

    /// Answers requests whose path (without query) is exactly `path` with `reply`.
    pub fn set_reply(&self, path: &str, reply: Reply) {
        self.shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_string(), reply);
    }

    /// Answers every other path with `reply` (initially 200 `ok\n`).
    pub fn set_default_reply(&self, reply: Reply) {
        *self
            .shared
            .default_reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reply;
    }

    /// From now on, closes connections from sources outside `cidr` (`127.0.0.8/29`, or a
    /// single address) right after accepting them, as a partner's firewall would; connections
    /// already open from such sources are cut at their next request.
    pub fn allow_only(&self, cidr: &str) -> Result<()> {
        self.shared.gate.allow_only(cidr)
    }

    /// Accepts every source again.
    pub fn allow_all(&self) {
        self.shared.gate.allow_all();
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.snapshot()
    }

    /// The connections seen so far, refused ones included.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.connections.snapshot()
    }

    /// Waits until at least `n` requests arrived (woken by each arrival), then returns all.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, TimedOut> {
        self.shared.requests.wait_for(n, timeout, "requests").await
    }

    /// Waits until at least `n` connections were accepted or refused, then returns all.
    pub async fn wait_for_connections(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ConnectionRecord>, TimedOut> {
        self.shared
            .connections
            .wait_for(n, timeout, "connections")
            .await
    }
}

/// An HTTPS upstream: [`HttpUpstream`] behind TLS (ALPN `h2`, `http/1.1`). Dereferences to the
/// [`HttpUpstream`] for replies, records and waits; records also carry the SNI.
#[derive(Debug)]
pub struct HttpsUpstream {
    inner: HttpUpstream,
}

impl Deref for HttpsUpstream {
    type Target = HttpUpstream;
    fn deref(&self) -> &HttpUpstream {
        &self.inner
    }
}

impl HttpsUpstream {
    /// Serves a fresh certificate of `certs` for `names` on `addr`.
    pub async fn start(addr: SocketAddr, certs: &CertFactory, names: &[&str]) -> Result<Self> {
        let config = certs.server_config(names, None, alpn())?;
        Self::start_with_config(addr, config).await
    }

    /// Like [`HttpsUpstream::start`], requiring a client certificate chaining to
    /// `client_ca_pem` (for DestinationRule `MUTUAL` origination).
    pub async fn start_mutual(
        addr: SocketAddr,
        certs: &CertFactory,
        names: &[&str],
        client_ca_pem: &str,
    ) -> Result<Self> {
        let config = certs.server_config(names, Some(client_ca_pem), alpn())?;
        Self::start_with_config(addr, config).await
    }

    /// Serves with any rustls config (e.g. an `ISTIO_MUTUAL` one from an `IdentityHandle`).
    pub async fn start_with_config(addr: SocketAddr, config: Arc<ServerConfig>) -> Result<Self> {
        let inner = HttpUpstream::spawn(addr, Some(TlsAcceptor::from(config))).await?;
        Ok(HttpsUpstream { inner })
    }

    /// `https://<local addr><path>` (the certificate must then cover the IP address).
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.local_addr())
    }

    /// `https://<host>:<port><path>`, for use with `curl --resolve <host>:<port>:<ip>`.
    pub fn url_for(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.local_addr().port())
    }
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    // Dropping this set (when the handle aborts the loop) aborts every connection task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer_addr)) = accepted else { continue };
                let Ok(local_addr) = stream.local_addr() else { continue };
                if !shared.gate.admits(peer_addr.ip()) {
                    refuse(stream);
                    let mut record = ConnectionRecord::plain(peer_addr, local_addr);
                    record.refused = true;
                    record.tls = tls.is_some();
                    shared.connections.push(record);
                    continue;
                }
                conns.spawn(handle_conn(stream, peer_addr, local_addr, shared.clone(), tls.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Closes with a reset, as a rejecting firewall would.
pub(crate) fn refuse(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn handle_conn(
    stream: TcpStream,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
) {
    let mut record = ConnectionRecord::plain(peer_addr, local_addr);
    let Some(acceptor) = tls else {
        shared.connections.push(record);
        let facts = ConnFacts {
            peer_addr,
            local_addr,
            tls: false,
            sni: None,
        };
        serve(stream, facts, shared).await;
        return;
    };
    record.tls = true;
    match acceptor.accept(stream).await {
        Ok(tls_stream) => {
            let (_, conn) = tls_stream.get_ref();
            record.sni = conn.server_name().map(str::to_string);
            record.alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            record.peer_sans = conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|leaf| egress_identity::leaf_info(leaf).ok())
                .map(|info| info.uri_sans.into_iter().chain(info.dns_sans).collect())
                .unwrap_or_default();
            let facts = ConnFacts {
                peer_addr,
                local_addr,
                tls: true,
                sni: record.sni.clone(),
            };
            shared.connections.push(record);
            serve(tls_stream, facts, shared).await;
        }
        Err(e) => {
            record.handshake_error = Some(e.to_string());
            shared.connections.push(record);
        }
    }
}

async fn serve<IO>(io: IO, facts: ConnFacts, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let facts = Arc::new(facts);
    let service = service_fn(move |req| answer(req, facts.clone(), shared.clone()));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A request arrived on a connection whose source the gate no longer admits.
#[derive(Debug)]
struct NoLongerAdmitted;

impl std::fmt::Display for NoLongerAdmitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("source no longer admitted")
    }
}

impl std::error::Error for NoLongerAdmitted {}

async fn answer(
    req: Request<Incoming>,
    facts: Arc<ConnFacts>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, NoLongerAdmitted> {
    // A connection opened before `allow_only` narrowed the gate is cut at its next request,
    // as a firewall rule change with its connection-tracking entries flushed would.
    if !shared.gate.admits(facts.peer_addr.ip()) {
        return Err(NoLongerAdmitted);
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header_str = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let host = parts
        .headers
        .get(http::header::HOST)
        .map(header_str)
        .or_else(|| parts.uri.authority().map(ToString::to_string));
    shared.requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), ToString::to_string),
        host,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), header_str(v)))
            .collect(),
        version: format!("{:?}", parts.version),
        body,
        peer_addr: facts.peer_addr,
        local_addr: facts.local_addr,
        tls: facts.tls,
        sni: facts.sni.clone(),
    });
    let reply = shared.reply_for(parts.uri.path());
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&facts.local_addr.to_string()) {
        headers.insert(UPSTREAM_HEADER, v);
    }
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(n, v);
        }
    }
    Ok(response)
}
