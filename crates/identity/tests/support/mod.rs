//! Shared handshake driver for the identity integration tests: a server and a client config
//! talk over an in-memory duplex pipe with tokio-rustls.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a side saw after a successful handshake and one message exchange.
#[derive(Debug)]
pub struct Seen {
    /// The peer's SPIFFE id.
    pub peer_spiffe: Option<String>,
    /// The peer's leaf certificate, DER.
    pub peer_leaf: Option<Vec<u8>>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The SNI the server received (server side only).
    pub sni: Option<String>,
}

/// Runs a handshake with `sni`, then the server sends `hello` and the client reads it, so a
/// rejection on either side shows up as an error on the client too.
pub async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    sni: &str,
) -> (Result<Seen, String>, Result<Seen, String>) {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(sni.to_string()).expect("valid server name");
    let server_side = async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let mut tls = acceptor
            .accept(server_io)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            peer_spiffe: conn
                .peer_certificates()
                .and_then(egress_identity::peer_spiffe_id),
            peer_leaf: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            sni: conn.server_name().map(str::to_string),
        };
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(seen)
    };
    let client_side = async move {
        let connector = tokio_rustls::TlsConnector::from(client);
        let mut tls = connector
            .connect(name, client_io)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf != b"hello" {
            return Err(format!("unexpected payload {buf:?}"));
        }
        let (_, conn) = tls.get_ref();
        Ok::<_, String>(Seen {
            peer_spiffe: conn
                .peer_certificates()
                .and_then(egress_identity::peer_spiffe_id),
            peer_leaf: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            sni: None,
        })
    };
    tokio::join!(server_side, client_side)
}

/// The DER of the leaf of a PEM chain.
pub fn leaf_der(chain_pem: &str) -> Vec<u8> {
    egress_identity::parse_certs(chain_pem, "test chain").expect("chain")[0].to_vec()
}
