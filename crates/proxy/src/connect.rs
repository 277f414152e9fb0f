//! Upstream connections: find a cluster's endpoints (static, or DNS through
//! [`resolve::Resolver`]), pick one ([`lb::Balancer`]), open TCP from the configured source
//! address (the static egress IP) within the cluster's connect timeout, and originate TLS when
//! the cluster says so ([`tls`]).
//!
//! Failures are typed ([`ConnectError`]) and carry the access-log flag and
//! `%UPSTREAM_TRANSPORT_FAILURE_REASON%` Envoy would print, so the TCP proxy and the HTTP
//! router report them the same way.
//!
//! ORIGINAL_DST clusters (a sidecar's `PassthroughCluster`) have no endpoints of their own:
//! the `*_to`/`*_for` variants take the destination the client asked for ([`OriginalDst`]),
//! which is connected to directly (a name is resolved like a DNS cluster's, first address).
//! Gateways never pass one, so for them such a cluster has no endpoints (`UH`), as before.
//!
//! DNS answers for DNS clusters pass the resolved-address guard ([`crate::guard`]) unless
//! `ProxyOptions.allow_private_upstreams` is set; override-table answers, IP literals,
//! static endpoints and original destinations are never screened.

mod error;
pub mod lb;
mod original_dst;
pub mod resolve;
pub mod tls;
mod tunnel;

pub use tunnel::TunnelFailure;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use egress_snapshot::snapshot::{Cluster, Discovery, UpstreamTls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::ctx::{Ctx, ProxyOptions};
pub use error::{ConnectError, DynamicFailure};
use lb::{Balancer, Candidate, Outcome, Picked};
pub use original_dst::{OriginalDst, destination};
use resolve::Resolver;

/// A byte stream to or from a peer.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin {
    /// The stream as [`std::any::Any`], to recognise a plain [`TcpStream`] (which can be
    /// spliced) behind a [`BoxIo`].
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A boxed byte stream.
pub type BoxIo = Box<dyn AsyncIo>;

/// Connect timeout used when a cluster carries none (MeshConfig `connectTimeout` default).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster's connect timeout, or the default when it carries none.
fn connect_timeout(cluster: &Cluster) -> Duration {
    if cluster.connect_timeout.is_zero() {
        DEFAULT_CONNECT_TIMEOUT
    } else {
        cluster.connect_timeout
    }
}

/// An endpoint chosen for one request; it counts as in flight (least request) while it lives.
#[derive(Debug)]
pub struct Chosen {
    picked: lb::Picked,
    total: usize,
}

impl Chosen {
    /// The endpoint.
    pub fn addr(&self) -> SocketAddr {
        self.picked.addr
    }
}

/// An open upstream connection.
pub struct Upstream {
    /// The stream (TLS-wrapped when TLS was originated).
    pub io: BoxIo,
    /// The endpoint connected to (`%UPSTREAM_HOST%`).
    pub peer: SocketAddr,
    /// Our side of the connection (`%UPSTREAM_LOCAL_ADDRESS%`).
    pub local: SocketAddr,
    /// True when TLS was originated.
    pub tls: bool,
    /// ALPN protocol the upstream selected, when TLS was originated and ALPN offered.
    pub alpn: Option<Vec<u8>>,
}

impl Upstream {
    /// The plain TCP socket, when no TLS was originated on it (for `splice`).
    pub fn tcp(&self) -> Option<&TcpStream> {
        let io: &dyn AsyncIo = &*self.io;
        io.as_any()
            .downcast_ref::<Tracked<TcpStream>>()
            .map(|t| &t.io)
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .field("alpn", &self.alpn.as_deref().map(String::from_utf8_lossy))
            .finish_non_exhaustive()
    }
}

/// Opens upstream connections for one proxy instance.
pub struct Connector {
    resolver: Resolver,
    /// Screen DNS answers of DNS clusters ([`crate::guard`]).
    guard: bool,
    balancer: Balancer,
    tls: tls::TlsClients,
    source: Option<IpAddr>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("resolver", &self.resolver)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `options` (override table, source address, extra roots).
    pub fn new(options: &ProxyOptions) -> Result<Connector, ConnectError> {
        Ok(Connector {
            resolver: Resolver::with_dns_server(
                &options.upstream.hosts,
                options.upstream.system_dns,
                options.upstream.dns_server,
            ),
            guard: !options.upstream.allow_private_upstreams,
            balancer: Balancer::default(),
            tls: tls::TlsClients::new(options.upstream.extra_roots_pem.clone()),
            source: options.source_address,
        })
    }

    /// Connects to an endpoint of `cluster`, originating TLS when the cluster has `tls`.
    /// `authority` (the downstream Host/:authority or SNI) gives the SNI and the name checked
    /// when the cluster sets neither (`auto_sni`, `auto_san_validation`).
    pub async fn connect(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
    ) -> Result<Upstream, ConnectError> {
        self.connect_to(ctx, cluster, authority, None).await
    }

    /// Like [`Connector::connect`]; an ORIGINAL_DST cluster connects to `original_dst`.
    pub async fn connect_to(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Upstream, ConnectError> {
        self.open(
            ctx,
            cluster,
            authority,
            Origination::AsConfigured(None),
            original_dst,
        )
        .await
    }

    /// Like [`Connector::connect`], offering `alpn` instead of the cluster's ALPN list.
    pub async fn connect_with_alpn(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        alpn: &[&str],
    ) -> Result<Upstream, ConnectError> {
        self.open(
            ctx,
            cluster,
            authority,
            Origination::AsConfigured(Some(alpn)),
            None,
        )
        .await
    }

    /// Connects without ever originating TLS, whatever the cluster says: a TLS passthrough
    /// chain forwards the client's own TLS bytes (Envoy's tcp_proxy on a passthrough chain
    /// uses the cluster's plain TCP; originating TLS there would wrap TLS in TLS).
    pub async fn connect_tcp(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
    ) -> Result<Upstream, ConnectError> {
        self.connect_tcp_to(ctx, cluster, authority, None).await
    }

    /// Connects to a tunnelling cluster's forward proxy (originating TLS to it when the cluster
    /// says so, whatever the chain: the TLS is the proxy's, the client's own bytes ride inside
    /// the tunnel) and asks it for the tunnel ([`tunnel::establish`]).
    pub async fn connect_tunneled(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        tunnel: &egress_snapshot::snapshot::Tunnel,
    ) -> Result<Upstream, ConnectError> {
        // The TLS (if any) is to the proxy: its SNI is the DestinationRule's or the proxy's
        // host, never the client's.
        let mut upstream = self
            .open(ctx, cluster, None, Origination::AsConfigured(None), None)
            .await?;
        let timeout = connect_timeout(cluster);
        let addr = upstream.peer;
        upstream.io = tunnel::establish(upstream.io, tunnel, upstream.tls, timeout)
            .await
            .map_err(|source| ConnectError::Tunnel { addr, source })?;
        Ok(upstream)
    }

    /// Like [`Connector::connect_tcp`]; an ORIGINAL_DST cluster connects to `original_dst`.
    pub async fn connect_tcp_to(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Upstream, ConnectError> {
        self.open(ctx, cluster, authority, Origination::Never, original_dst)
            .await
    }

    /// Reports the outcome of a request on `peer` (e.g. a 5xx) for outlier detection.
    pub fn report(&self, cluster: &Cluster, peer: SocketAddr, outcome: Outcome) {
        let total = match &cluster.discovery {
            Discovery::Static(eps) => eps.len(),
            _ => 1,
        };
        self.balancer.report(
            &cluster.name,
            peer,
            outcome,
            cluster.outlier.as_ref(),
            total,
        );
    }

    /// The endpoints of `cluster` now: static ones, or what its names resolve to (STRICT_DNS:
    /// every address; LOGICAL_DNS: the first). An ORIGINAL_DST cluster has none.
    pub async fn endpoints(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
    ) -> Result<Vec<Candidate>, ConnectError> {
        self.endpoints_for(ctx, cluster, None).await
    }

    /// Like [`Connector::endpoints`]; an ORIGINAL_DST cluster's endpoint is `original_dst`
    /// (the first address its host resolves to), or none without one.
    pub async fn endpoints_for(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Vec<Candidate>, ConnectError> {
        let refresh = ctx.snapshot().mesh.dns_refresh_rate;
        let candidates = match &cluster.discovery {
            Discovery::Static(eps) => eps
                .iter()
                .map(|e| Candidate {
                    addr: e.address,
                    weight: e.weight,
                })
                .collect(),
            Discovery::StrictDns { hostname, port } => {
                self.resolve_all(hostname, *port, 1, refresh, self.guard)
                    .await?
            }
            Discovery::LogicalDns { hostname, port } => {
                let mut all = self
                    .resolve_all(hostname, *port, 1, refresh, self.guard)
                    .await?;
                all.truncate(1);
                all
            }
            Discovery::DnsEndpoints(list) => {
                let mut all = Vec::new();
                let mut first_err = None;
                for (host, port, weight) in list {
                    match self
                        .resolve_all(host, *port, *weight, refresh, self.guard)
                        .await
                    {
                        Ok(found) => all.extend(found),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                match first_err {
                    Some(e) if all.is_empty() => return Err(e),
                    _ => all,
                }
            }
            Discovery::DynamicDns { hosts, .. } => {
                let dynamic = |reason| ConnectError::Dynamic {
                    host: original_dst.map(|d| d.host.clone()).unwrap_or_default(),
                    reason,
                };
                let Some(dst) = original_dst else {
                    return Err(dynamic(DynamicFailure::NoHost));
                };
                if !hosts.iter().any(|h| crate::sni::name_covered(h, &dst.host)) {
                    return Err(dynamic(DynamicFailure::NotCovered));
                }
                let mut all = self
                    .resolve_all(&dst.host, dst.port, 1, refresh, self.guard)
                    .await
                    .map_err(|e| match e {
                        ConnectError::Resolve { reason, .. } => {
                            dynamic(DynamicFailure::Resolve(reason))
                        }
                        other => other,
                    })?;
                // As Envoy's dynamic forward proxy: one host per name, its first address.
                all.truncate(1);
                all
            }
            // Gateways never generate PassthroughCluster; without an original destination
            // there is nothing to connect to.
            Discovery::OriginalDst => match original_dst {
                None => Vec::new(),
                Some(dst) => {
                    let mut all = self
                        .resolve_all(&dst.host, dst.port, 1, refresh, false)
                        .await?;
                    all.truncate(1);
                    all
                }
            },
        };
        Ok(candidates)
    }

    /// The endpoints `host` resolves to on `port`. With `guard`, DNS answers the
    /// resolved-address guard refuses are dropped, and none left is
    /// [`ConnectError::AddressRefused`].
    async fn resolve_all(
        &self,
        host: &str,
        port: u16,
        weight: u32,
        refresh: Duration,
        guard: bool,
    ) -> Result<Vec<Candidate>, ConnectError> {
        let resolved = self
            .resolver
            .resolve_with_origin(host, refresh)
            .await
            .map_err(|reason| ConnectError::Resolve {
                host: host.to_owned(),
                reason,
            })?;
        let screened;
        let addrs: &[IpAddr] = if guard && resolved.origin == resolve::Origin::Dns {
            screened = crate::guard::screen(host, &resolved.addrs);
            match (screened.allowed.is_empty(), screened.refused.first()) {
                (true, Some(first)) => {
                    return Err(ConnectError::AddressRefused {
                        host: host.to_owned(),
                        address: *first,
                    });
                }
                _ => &screened.allowed,
            }
        } else {
            &resolved.addrs
        };
        Ok(addrs
            .iter()
            .map(|ip| Candidate {
                addr: SocketAddr::new(*ip, port),
                weight,
            })
            .collect())
    }

    /// Picks the endpoint of `cluster` the next request goes to. Envoy load-balances every
    /// request and then uses the chosen host's connections, so HTTP pools choose first and
    /// reuse only connections to the chosen endpoint.
    pub async fn choose(&self, ctx: &Ctx, cluster: &Cluster) -> Result<Chosen, ConnectError> {
        self.choose_for(ctx, cluster, None).await
    }

    /// Like [`Connector::choose`]; an ORIGINAL_DST cluster picks `original_dst`. Such picks
    /// bypass the balancer's per-endpoint state (there is nothing to balance, and a sidecar's
    /// passthrough destinations are unbounded).
    pub async fn choose_for(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Chosen, ConnectError> {
        let candidates = self.endpoints_for(ctx, cluster, original_dst).await?;
        if matches!(
            cluster.discovery,
            Discovery::OriginalDst | Discovery::DynamicDns { .. }
        ) {
            let first = candidates
                .first()
                .ok_or_else(|| ConnectError::NoHealthyUpstream {
                    cluster: cluster.name.clone(),
                })?;
            return Ok(Chosen {
                picked: Picked::detached(first.addr),
                total: 1,
            });
        }
        let picked = self
            .balancer
            .pick(&cluster.name, cluster.lb, &candidates)
            .ok_or_else(|| ConnectError::NoHealthyUpstream {
                cluster: cluster.name.clone(),
            })?;
        Ok(Chosen {
            picked,
            total: candidates.len(),
        })
    }

    /// Connects to an endpoint picked by [`Connector::choose`], originating TLS as the
    /// cluster says.
    pub async fn connect_chosen(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        chosen: Chosen,
    ) -> Result<Upstream, ConnectError> {
        self.open_chosen(
            ctx,
            cluster,
            authority,
            Origination::AsConfigured(None),
            chosen,
        )
        .await
    }

    async fn open(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        origination: Origination<'_>,
        original_dst: Option<&OriginalDst>,
    ) -> Result<Upstream, ConnectError> {
        let requested = destination(cluster, authority, original_dst);
        let chosen = self.choose_for(ctx, cluster, requested.as_deref()).await?;
        self.open_chosen(ctx, cluster, authority, origination, chosen)
            .await
    }

    async fn open_chosen(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        authority: Option<&str>,
        origination: Origination<'_>,
        chosen: Chosen,
    ) -> Result<Upstream, ConnectError> {
        let Chosen { picked, total } = chosen;
        let addr = picked.addr;
        let timeout = connect_timeout(cluster);
        let tls_settings = match origination {
            Origination::Never => None,
            Origination::AsConfigured(alpn) => cluster.tls.as_ref().map(|t| (t, alpn)),
        };
        // A TLS configuration problem fails before any connection is opened, and is not the
        // endpoint's fault (no outlier report).
        let tls = match tls_settings {
            None => None,
            Some((settings, alpn)) => Some(
                self.tls
                    .prepare(ctx, cluster, settings, alpn)
                    .map(|config| (settings, config))
                    .map_err(|reason| ConnectError::Tls {
                        addr,
                        source: tls::TlsFailure::Config(reason),
                    })?,
            ),
        };
        let result = self
            .open_endpoint(cluster, authority, tls, picked, timeout)
            .await;
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::LocalOriginFailure
        };
        self.balancer.report(
            &cluster.name,
            addr,
            outcome,
            cluster.outlier.as_ref(),
            total,
        );
        result
    }

    async fn open_endpoint(
        &self,
        cluster: &Cluster,
        authority: Option<&str>,
        tls: Option<(&UpstreamTls, Arc<rustls::ClientConfig>)>,
        picked: Picked,
        timeout: Duration,
    ) -> Result<Upstream, ConnectError> {
        let addr = picked.addr;
        let stream = tokio::time::timeout(timeout, self.tcp(addr))
            .await
            .map_err(|_| ConnectError::Timeout { addr })?
            .map_err(|source| ConnectError::Connect { addr, source })?;
        let local = stream
            .local_addr()
            .map_err(|source| ConnectError::Connect { addr, source })?;
        let Some((settings, config)) = tls else {
            return Ok(Upstream {
                io: Box::new(Tracked {
                    io: stream,
                    _picked: picked,
                }),
                peer: addr,
                local,
                tls: false,
                alpn: None,
            });
        };
        let sni = tls::sni_for(settings, authority, &cluster.host);
        let handshake = tls::TlsClients::handshake(config, &sni, stream);
        let (io, negotiated) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| ConnectError::Timeout { addr })?
            .map_err(|source| ConnectError::Tls { addr, source })?;
        Ok(Upstream {
            io: Box::new(Tracked {
                io,
                _picked: picked,
            }),
            peer: addr,
            local,
            tls: true,
            alpn: negotiated,
        })
    }

    /// Opens TCP to `addr` from the source address, with TCP_NODELAY.
    async fn tcp(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(source) = self.source {
            if source.is_ipv4() != addr.is_ipv4() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("source address {source} cannot reach {addr}"),
                ));
            }
            socket.bind(SocketAddr::new(source, 0))?;
        }
        socket.set_nodelay(true)?;
        socket.connect(addr).await
    }
}

/// Whether TLS is originated.
#[derive(Clone, Copy)]
enum Origination<'a> {
    /// Never (passthrough).
    Never,
    /// When the cluster has `tls`, offering these ALPN protocols instead of the cluster's.
    AsConfigured(Option<&'a [&'a str]>),
}

/// A stream that holds its endpoint's in-flight count while it lives.
struct Tracked<I> {
    io: I,
    _picked: Picked,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
