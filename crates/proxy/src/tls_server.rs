//! Downstream TLS termination for filter chains with `tls` (Gateway SIMPLE, MUTUAL,
//! OPTIONAL_MUTUAL and ISTIO_MUTUAL servers): builds and caches the rustls server configs and
//! runs the handshake, recording the SNI and the peer's SPIFFE id in [`ConnInfo`].
//!
//! ALPN offered, as Istio configures gateway servers: HTTPS chains `h2`, `http/1.1`; mesh
//! (ISTIO_MUTUAL) TCP chains `istio-peer-exchange`, `h2`, `http/1.1`; other TCP chains none.
//! ISTIO_MUTUAL chains also accept Istio's own ALPN names (`istio-peer-exchange`, `istio`) last:
//! a sidecar offers those, and rustls, unlike BoringSSL, fails a handshake whose ALPN lists
//! share nothing. The handshake must finish within 15s (Istio's
//! `PILOT_GATEWAY_TRANSPORT_SOCKET_CONNECT_TIMEOUT`). A failed handshake closes the connection
//! without an access-log line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_snapshot::snapshot::{ChainAction, FilterChain, ServerTls};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::ctx::{ConnInfo, Ctx};

/// Istio's `transport_socket_connect_timeout` for gateway listeners.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Cached configs kept at most; the cache is reset past this (configs are cheap to rebuild).
const MAX_CACHED: usize = 256;

/// Why a downstream TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TlsServerError {
    /// The chain's TLS settings could not be turned into a config.
    #[error("TLS server configuration: {0}")]
    Config(String),
    /// The handshake failed.
    #[error("TLS handshake: {0}")]
    Handshake(#[from] std::io::Error),
    /// The handshake did not finish in time.
    #[error("TLS handshake timed out")]
    Timeout,
}

type Key = (ServerTls, Vec<Vec<u8>>);

/// Server configs of one proxy instance, by TLS settings and ALPN.
#[derive(Default)]
pub struct TlsServers {
    cache: Mutex<Vec<(Key, Arc<ServerConfig>)>>,
}

impl std::fmt::Debug for TlsServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServers").finish_non_exhaustive()
    }
}

/// The ALPN list a chain offers.
pub fn alpn_for(chain: &FilterChain) -> Vec<Vec<u8>> {
    let mesh = matches!(chain.tls, Some(ServerTls::IstioMutual { .. }));
    let names: &[&str] = match (&chain.action, mesh) {
        (ChainAction::Http(_), false) => &["h2", "http/1.1"],
        (ChainAction::Http(_), true) => &["h2", "http/1.1", "istio-peer-exchange", "istio"],
        (ChainAction::TcpProxy { .. }, true) => &["istio-peer-exchange", "h2", "http/1.1", "istio"],
        (ChainAction::TcpProxy { .. }, false) => &[],
    };
    names.iter().map(|n| n.as_bytes().to_vec()).collect()
}

impl TlsServers {
    /// The server config for `tls` with `alpn`, built once per distinct settings.
    pub fn config(
        &self,
        ctx: &Ctx,
        tls: &ServerTls,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerConfig>, TlsServerError> {
        let key = (tls.clone(), alpn);
        if let Ok(cache) = self.cache.lock()
            && let Some((_, config)) = cache.iter().find(|(k, _)| *k == key)
        {
            return Ok(Arc::clone(config));
        }
        let config_error = |e: egress_identity::Error| TlsServerError::Config(e.to_string());
        let config = match tls {
            ServerTls::IstioMutual { subject_alt_names } => {
                let identity = ctx.identity.as_ref().ok_or_else(|| {
                    TlsServerError::Config(
                        "ISTIO_MUTUAL needs a workload identity, and this proxy has none".into(),
                    )
                })?;
                identity
                    .server_config(subject_alt_names, key.1.clone())
                    .map_err(config_error)?
            }
            ServerTls::Certificates {
                identity,
                client_ca,
                optional,
                subject_alt_names,
            } => {
                let chain =
                    crate::pem::resolve(&identity.cert_chain).map_err(TlsServerError::Config)?;
                let private =
                    crate::pem::resolve(&identity.private_key).map_err(TlsServerError::Config)?;
                let ca = match client_ca.as_deref() {
                    Some(c) => Some(crate::pem::resolve(c).map_err(TlsServerError::Config)?),
                    None => None,
                };
                egress_identity::server_config_from_pem(
                    &chain,
                    &private,
                    ca.as_deref(),
                    *optional,
                    subject_alt_names,
                    key.1.clone(),
                )
                .map_err(config_error)?
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.push((key, Arc::clone(&config)));
        }
        Ok(config)
    }

    /// Terminates TLS on `io` for `chain`, recording the SNI and the peer's SPIFFE id in `conn`.
    pub async fn accept<I>(
        &self,
        ctx: &Ctx,
        chain: &FilterChain,
        tls: &ServerTls,
        io: I,
        conn: &mut ConnInfo,
    ) -> Result<TlsStream<I>, TlsServerError>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.config(ctx, tls, alpn_for(chain))?;
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(io))
            .await
            .map_err(|_| TlsServerError::Timeout)??;
        let session = stream.get_ref().1;
        if let Some(name) = session.server_name() {
            conn.sni = Some(name.to_ascii_lowercase());
        }
        conn.peer_identity = session
            .peer_certificates()
            .and_then(egress_identity::peer_spiffe_id);
        conn.tls_terminated = true;
        Ok(stream)
    }
}
