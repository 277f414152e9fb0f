//! Mesh identity for the egress gateway: a mesh CA issuing SPIFFE workload certificates, the
//! trust bundle, certificate rotation, and the rustls configurations the proxy uses.
//!
//! * [`MeshCa`] is the development CA of the local cluster (Istio's self-signed `istio-ca`):
//!   an ECDSA P-256 root that issues [`WorkloadCert`]s whose only SAN is a SPIFFE URI
//!   (`spiffe://<td>/ns/<ns>/sa/<sa>`, see [`SpiffeId`]).
//! * [`IdentityHandle`] holds a workload's current certificate and the mesh trust bundle, and
//!   builds `ISTIO_MUTUAL` server and client configs ([`IdentityHandle::server_config`],
//!   [`IdentityHandle::client_config`]). Configs always serve the *current* certificate, so
//!   [`IdentityHandle::rotate`] takes effect without rebuilding them.
//! * [`Rotator`] decides when a certificate is due for renewal (half its lifetime, Istio's
//!   default) and renews it; it owns no threads: the caller schedules it.
//! * [`server_config_from_pem`], [`client_config_simple`], [`client_config_with_sans`] and
//!   [`client_config_checked`] (with certificate revocation lists) build configs from user
//!   certificates (Gateway `SIMPLE`/`MUTUAL` termination, DestinationRule `SIMPLE`/`MUTUAL`
//!   origination).
//!
//! Every config is built with the ring crypto provider passed explicitly; nothing here relies on
//! a process-wide default provider.

mod ca;
mod handle;
pub mod istioca;
mod pem;
mod rotation;
mod spiffe;
mod user_tls;
mod verify;

pub use ca::{MeshCa, WorkloadCert};
pub use handle::IdentityHandle;
pub use pem::{LeafInfo, leaf_info, parse_certs, parse_crls, parse_key, peer_spiffe_id};
pub use rotation::Rotator;
pub use spiffe::SpiffeId;
pub use user_tls::{
    RootSource, client_config_checked, client_config_simple, client_config_with_sans,
    server_config_from_pem,
};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string is not a SPIFFE id of the form `spiffe://<td>/ns/<ns>/sa/<sa>`.
    #[error("invalid SPIFFE id {id:?}: {reason}")]
    InvalidSpiffeId {
        /// The rejected input.
        id: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A trust domain is not a lowercase DNS-like name.
    #[error("invalid trust domain {trust_domain:?}: {reason}")]
    InvalidTrustDomain {
        /// The rejected input.
        trust_domain: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Certificate or key generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// PEM input could not be read.
    #[error("invalid PEM in {what}: {reason}")]
    Pem {
        /// Which input (e.g. "certificate chain", "private key").
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A certificate could not be parsed as X.509.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// rustls refused the configuration (e.g. an unusable key).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A certificate verifier could not be built (e.g. an empty trust bundle).
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The operating system's trust store could not be loaded.
    #[error("system trust store: {0}")]
    SystemRoots(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The crypto provider every config of this crate is built with.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
