//! Listening sockets, kept in step with the snapshot, and what happens to each connection.
//!
//! Reconciliation ([`Listeners::reconcile`]): a listener whose name and address stay is never
//! rebound (its socket keeps accepting, so a config change fails no connection attempt); each
//! accepted connection takes the configuration version current at accept
//! ([`crate::ctx::Ctx::active`]) and reads its listener's definition, filter chains, TCP
//! policies and clusters from that one version to its end. A removed listener (or
//! one whose address changed) stops accepting; its established connections go on. A listener
//! with port 0 binds an ephemeral port, reported by [`Listeners::bound`] (tests rely on it);
//! it keeps that port for as long as it stays in the snapshot.
//!
//! Per connection: an HTTP listener hands the stream to `crate::http::serve_http`. A chains
//! listener reads the ClientHello ([`crate::sni`]) when any chain names servers (Envoy adds
//! `tls_inspector` only then, so server-speaks-first TCP is not delayed), picks the chain the
//! way Envoy matches `server_names` ([`sni::select_chain`]), and closes the connection when
//! none matches (access-log line `NR filter_chain_not_found`). Passthrough chains splice the
//! original bytes with [`crate::tcp_proxy`]; terminating chains run the TLS handshake
//! ([`crate::tls_server`]) and then serve HTTP or proxy TCP. Before a TCP chain connects
//! upstream, the snapshot's TCP AuthorizationPolicies ([`crate::authz`]) may close it. Every connection holds a drain
//! guard and is cut when the drain is forced.
//!
//! Accepting goes through [`crate::limits::accept::Acceptor`] (the connection limit, idle
//! shedding, back-off when descriptors run out); every connection is registered in the
//! instance's [`crate::limits::Connections`] and its task runs with its
//! [`crate::limits::conn::ConnState`] as [`crate::limits::conn::CURRENT`], which the HTTP server
//! and the TCP proxy report to.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use egress_snapshot::snapshot::{ChainAction, FilterChain, Listener, ListenerKind, Snapshot};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::accesslog::{ResponseFlag, ResponseFlags};
use crate::authz;
use crate::ctx::{Active, ConnInfo, Ctx};
use crate::drain::DrainGuard;
use crate::limits::accept::Acceptor;
use crate::limits::conn::CURRENT;
use crate::sni::{self, Rewind};
use crate::tcp_proxy;
use crate::tls_server::TlsServers;

/// Backlog of listening sockets.
const BACKLOG: u32 = 1024;

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("binding listener {listener} on {addr}: {source}")]
pub struct BindError {
    /// Listener name.
    pub listener: String,
    /// Address asked for.
    pub addr: SocketAddr,
    /// OS error.
    #[source]
    pub source: std::io::Error,
}

/// One bound listener.
struct Running {
    /// Address asked for (port 0 = ephemeral).
    requested: SocketAddr,
    /// Address actually bound.
    bound: SocketAddr,
    /// Dropping or firing this stops the accept loop (closing the socket).
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The listeners of a proxy instance.
pub struct Listeners {
    ctx: Arc<Ctx>,
    tls: Arc<TlsServers>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    bound: std::sync::Mutex<Vec<(String, SocketAddr)>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("bound", &self.bound())
            .finish_non_exhaustive()
    }
}

impl Listeners {
    /// No listeners yet.
    pub fn new(ctx: Arc<Ctx>) -> Listeners {
        Listeners {
            ctx,
            tls: Arc::new(TlsServers::default()),
            running: tokio::sync::Mutex::new(HashMap::new()),
            bound: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Listener name → bound address, sorted by name.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.bound.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The address a listener asks for: its bind address, else the instance's listen address,
    /// else all addresses.
    fn requested(&self, listener: &Listener) -> SocketAddr {
        let ip = listener
            .bind
            .or(self.ctx.options.listen_address)
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, listener.port)
    }

    /// Makes the bound listeners those of `snapshot`; returns the ones that could not be bound
    /// (they are retried with the next snapshot).
    pub async fn reconcile(&self, snapshot: &Snapshot) -> Vec<BindError> {
        let mut running = self.running.lock().await;
        let mut wanted: HashMap<&str, &Listener> = HashMap::new();
        for l in &snapshot.listeners {
            if wanted.contains_key(l.name.as_str()) {
                tracing::warn!(listener = %l.name, "duplicate listener name in snapshot; first one kept");
            } else {
                wanted.insert(l.name.as_str(), l);
            }
        }
        // Close what goes away (or moves) first, so a moved address can be bound again.
        let stale: Vec<String> = running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(name.as_str())
                    .is_none_or(|l| self.requested(l) != r.requested)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(r) = running.remove(&name) {
                tracing::info!(listener = %name, addr = %r.bound, "listener removed; existing connections continue");
                stop(r).await;
            }
        }
        let mut errors = Vec::new();
        for l in &snapshot.listeners {
            if wanted
                .get(l.name.as_str())
                .is_none_or(|w| !std::ptr::eq(*w, l))
            {
                continue; // a later duplicate
            }
            if running.contains_key(&l.name) {
                continue; // new connections read the new definition from the new version
            }
            let requested = self.requested(l);
            match bind(requested) {
                Ok(socket) => {
                    let bound = socket.local_addr().unwrap_or(requested);
                    tracing::info!(listener = %l.name, addr = %bound, "listener bound");
                    running.insert(l.name.clone(), self.spawn(l, socket, requested, bound));
                }
                Err(source) => {
                    tracing::error!(listener = %l.name, addr = %requested, error = %source, "cannot bind listener");
                    errors.push(BindError {
                        listener: l.name.clone(),
                        addr: requested,
                        source,
                    });
                }
            }
        }
        let mut bound: Vec<(String, SocketAddr)> =
            running.iter().map(|(n, r)| (n.clone(), r.bound)).collect();
        bound.sort();
        if let Ok(mut b) = self.bound.lock() {
            *b = bound;
        }
        errors
    }

    /// Stops every listener (connections go on; the drain decides their fate).
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        for (_, r) in running.drain() {
            stop(r).await;
        }
        if let Ok(mut b) = self.bound.lock() {
            b.clear();
        }
    }

    fn spawn(
        &self,
        l: &Listener,
        socket: TcpListener,
        requested: SocketAddr,
        bound: SocketAddr,
    ) -> Running {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            socket,
            l.name.clone(),
            Arc::clone(&self.ctx),
            Arc::clone(&self.tls),
            stopped,
        ));
        Running {
            requested,
            bound,
            stop,
            task,
        }
    }
}

async fn stop(r: Running) {
    let _ = r.stop.send(());
    let _ = r.task.await;
}

/// Binds a listening socket with SO_REUSEADDR.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(
    socket: TcpListener,
    name: String,
    ctx: Arc<Ctx>,
    tls: Arc<TlsServers>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut acceptor = Acceptor::new(Arc::clone(&ctx.conns), &name);
    loop {
        let (stream, remote, slot) = tokio::select! {
            _ = &mut stopped => return,
            _ = ctx.drain.signaled() => return,
            accepted = acceptor.accept(&socket) => accepted,
        };
        // The version this connection runs under: its listener comes from it.
        let active = ctx.active();
        let span = tracing::debug_span!("conn", listener = %name, %remote);
        let name = name.clone();
        let guard = ctx.drain.guard();
        let ctx = Arc::clone(&ctx);
        let tls = Arc::clone(&tls);
        let state = Arc::clone(slot.state());
        let work = async move {
            let _slot = slot;
            CURRENT
                .scope(
                    state,
                    handle(stream, remote, (name, active), ctx, tls, guard),
                )
                .await;
        };
        tokio::spawn(work.instrument(span));
    }
}

async fn handle(
    stream: TcpStream,
    remote: SocketAddr,
    (name, active): (String, Arc<Active>),
    ctx: Arc<Ctx>,
    tls: Arc<TlsServers>,
    _guard: DrainGuard,
) {
    let Some(listener) = active.listener(&name) else {
        // Removed by the version being applied; its accept loop is about to stop.
        tracing::debug!(listener = %name, "listener no longer configured; closing");
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let conn = ConnInfo {
        downstream_remote: remote,
        downstream_local: local,
        sni: None,
        peer_identity: None,
        server_port: listener.port,
        tls_terminated: false,
    };
    let drain = ctx.drain.clone();
    // `serve` is polled first so that a TCP proxy, which watches the deadline itself, gets to
    // write its access-log line before the connection is dropped.
    tokio::select! {
        biased;
        _ = serve(stream, conn, (listener, &active), &ctx, &tls) => {}
        _ = drain.forced() => tracing::debug!("connection closed by drain deadline"),
    }
}

async fn serve(
    mut stream: TcpStream,
    mut conn: ConnInfo,
    (listener, active): (&Listener, &Arc<Active>),
    ctx: &Arc<Ctx>,
    tls: &TlsServers,
) {
    let chains = match &listener.kind {
        ListenerKind::Http(rc) => {
            crate::http::serve_http(stream, conn, rc.name.clone(), Arc::clone(ctx)).await;
            return;
        }
        ListenerKind::Chains(chains) => chains,
    };
    let start = SystemTime::now();
    let began = Instant::now();
    let inspect = chains.iter().any(|c| !c.server_names.is_empty());
    let buffered = if inspect {
        match sni::read_client_hello(&mut stream, sni::CLIENT_HELLO_TIMEOUT).await {
            Ok(peeked) => {
                conn.sni = peeked.sni().map(str::to_owned);
                peeked.buffered
            }
            Err(err) => {
                tracing::debug!(error = %err, "closing connection");
                return;
            }
        }
    } else {
        Vec::new()
    };
    let Some(index) = sni::select_chain(
        chains.iter().map(|c| c.server_names.as_slice()),
        conn.sni.as_deref(),
    ) else {
        tracing::debug!(sni = ?conn.sni, "no filter chain matches");
        let mut entry = tcp_proxy::tcp_entry(&conn, start);
        entry.response_flags = ResponseFlags::from(ResponseFlag::NoRouteFound);
        entry.response_code_details = Some("filter_chain_not_found".to_owned());
        // Envoy peeks the ClientHello without reading it: the line shows 0 bytes received.
        entry.duration = Some(began.elapsed());
        ctx.logger_for(active).log(&entry);
        return;
    };
    let chain = &chains[index];
    conn.server_port = chain.server_port;
    serve_chain(
        Rewind::new(buffered, stream),
        conn,
        (chain, active),
        ctx,
        tls,
    )
    .await;
}

async fn serve_chain<I>(
    io: I,
    mut conn: ConnInfo,
    (chain, active): (&FilterChain, &Arc<Active>),
    ctx: &Arc<Ctx>,
    tls: &TlsServers,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(server_tls) = &chain.tls else {
        return serve_action(io, conn, (&chain.action, active), ctx, true).await;
    };
    match tls.accept(ctx, chain, server_tls, io, &mut conn).await {
        Ok(stream) => serve_action(stream, conn, (&chain.action, active), ctx, false).await,
        Err(err) => tracing::debug!(error = %err, sni = ?conn.sni, "downstream TLS failed"),
    }
}

async fn serve_action<I>(
    io: I,
    conn: ConnInfo,
    (action, active): (&ChainAction, &Arc<Active>),
    ctx: &Arc<Ctx>,
    passthrough: bool,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match action {
        ChainAction::Http(rc) => {
            crate::http::serve_http(io, conn, rc.name.clone(), Arc::clone(ctx)).await
        }
        ChainAction::TcpProxy {
            clusters,
            route_name,
        } => {
            let attrs = authz::Attributes::of_conn(&conn);
            let noted = match authz::evaluate(&active.snapshot.authz.tcp, &attrs) {
                authz::Verdict::Allowed { dry_run_denied } => dry_run_denied,
                authz::Verdict::Denied(details) => {
                    // Envoy's network RBAC filter closes the connection before tcp_proxy
                    // connects upstream.
                    tracing::debug!(%details, "connection denied by AuthorizationPolicy");
                    let mut entry = tcp_proxy::tcp_entry(&conn, SystemTime::now());
                    entry.route_name = route_name.clone();
                    entry.connection_termination_details = Some(details);
                    entry.duration = Some(Duration::ZERO);
                    ctx.logger_for(active).log(&entry);
                    return;
                }
            };
            let route = route_name.as_deref();
            let version = (ctx.as_ref(), Arc::clone(active));
            tcp_proxy::proxy_noted(io, &conn, clusters, route, version, passthrough, noted).await;
        }
    }
}
