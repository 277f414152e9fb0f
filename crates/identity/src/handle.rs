//! A workload's live identity: the current certificate (swappable for rotation) and the mesh
//! trust bundle, and the `ISTIO_MUTUAL` rustls configs built over them.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use crate::ca::WorkloadCert;
use crate::pem::{parse_certs, parse_key, peer_spiffe_id};
use crate::spiffe::{SCHEME, SpiffeId};
use crate::verify::{
    ClientRoots, Roots, SanClientVerifier, SanPolicy, SanServerVerifier, SharedBundle, TrustBundle,
};
use crate::{Error, Result};

/// A certificate ready to serve: the PEM form and the rustls form.
struct Loaded {
    cert: Arc<WorkloadCert>,
    certified: Arc<CertifiedKey>,
    /// The leaf's SPIFFE id, parsed once (it is read per request for XFCC).
    spiffe_id: Option<Arc<str>>,
}

impl Loaded {
    fn new(cert: WorkloadCert) -> Result<Self> {
        let chain = parse_certs(&cert.cert_chain_pem, "workload certificate chain")?;
        let key = parse_key(&cert.key_pem, "workload private key")?;
        let certified = certified_key(chain, key)?;
        let spiffe_id = peer_spiffe_id(&certified.cert).map(Arc::from);
        Ok(Loaded {
            cert: Arc::new(cert),
            certified: Arc::new(certified),
            spiffe_id,
        })
    }
}

/// Loads a chain and key with ring, checking that they belong together.
pub(crate) fn certified_key(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<CertifiedKey> {
    CertifiedKey::from_der(chain, key, &crate::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::KeyMismatch,
        other => Error::Tls(other),
    })
}

/// Serves (as server) and presents (as client) whatever certificate is current.
struct CurrentCert(Arc<ArcSwap<Loaded>>);

impl fmt::Debug for CurrentCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CurrentCert").finish()
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().certified.clone())
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A workload's identity as the proxy uses it (`Arc<IdentityHandle>` shared by listeners and
/// upstream pools). Configs built from it keep following [`IdentityHandle::rotate`] and
/// [`IdentityHandle::set_roots`].
pub struct IdentityHandle {
    current: Arc<ArcSwap<Loaded>>,
    bundle: SharedBundle,
    /// `spiffe://<td>/` of the workload's own identity at creation: what an unconstrained
    /// `ISTIO_MUTUAL` server accepts. `spiffe://` when the certificate had no SPIFFE id.
    peer_prefix: String,
}

impl fmt::Debug for IdentityHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityHandle")
            .field("current", &self.current.load().cert)
            .field("bundle", &*self.bundle.load())
            .finish()
    }
}

impl IdentityHandle {
    /// A handle serving `cert` and trusting the certificates of the PEM bundle `roots_pem`.
    pub fn new(cert: WorkloadCert, roots_pem: &str) -> Result<Self> {
        let loaded = Loaded::new(cert)?;
        let bundle = TrustBundle::from_pem(roots_pem)?;
        let peer_prefix = peer_spiffe_id(std::slice::from_ref(
            loaded
                .certified
                .cert
                .first()
                .ok_or(Error::Certificate("empty chain".into()))?,
        ))
        .and_then(|id| SpiffeId::parse(&id).ok())
        .map_or_else(
            || SCHEME.to_string(),
            |id| format!("{SCHEME}{}/", id.trust_domain),
        );
        Ok(IdentityHandle {
            current: Arc::new(ArcSwap::from_pointee(loaded)),
            bundle: Arc::new(ArcSwap::from_pointee(bundle)),
            peer_prefix,
        })
    }

    /// The certificate currently served.
    pub fn current(&self) -> Arc<WorkloadCert> {
        self.current.load().cert.clone()
    }

    /// The SPIFFE id of the current certificate.
    pub fn spiffe_id(&self) -> Option<String> {
        self.spiffe_id_shared().map(|id| id.to_string())
    }

    /// The SPIFFE id of the current certificate, without copying it.
    pub fn spiffe_id_shared(&self) -> Option<Arc<str>> {
        self.current.load().spiffe_id.clone()
    }

    /// Replaces the served certificate. Every config built from this handle serves the new one
    /// from its next handshake on; established connections are unaffected.
    pub fn rotate(&self, new_cert: WorkloadCert) -> Result<()> {
        self.current.store(Arc::new(Loaded::new(new_cert)?));
        Ok(())
    }

    /// The mesh trust bundle, PEM.
    pub fn roots_pem(&self) -> String {
        self.bundle.load().pem.clone()
    }

    /// Replaces the mesh trust bundle (e.g. during root rotation, old and new roots together).
    /// Takes effect at the next handshake of every config built from this handle.
    pub fn set_roots(&self, roots_pem: &str) -> Result<()> {
        self.bundle
            .store(Arc::new(TrustBundle::from_pem(roots_pem)?));
        Ok(())
    }

    /// The server side of `ISTIO_MUTUAL` (a Gateway server with `tls.mode: ISTIO_MUTUAL`):
    /// requires a client certificate chaining to the mesh bundle; when `allowed_sans` is
    /// non-empty (the server's `subjectAltNames`) the client must carry one of them as a URI
    /// (or DNS) SAN, otherwise any SPIFFE id of this workload's trust domain is accepted.
    /// Serves the current certificate. The peer's identity is then
    /// [`peer_spiffe_id`]`(conn.peer_certificates())`.
    pub fn server_config(
        &self,
        allowed_sans: &[String],
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerConfig>> {
        let policy = if allowed_sans.is_empty() {
            SanPolicy::UriPrefix(self.peer_prefix.clone())
        } else {
            SanPolicy::OneOf(allowed_sans.to_vec())
        };
        let verifier = SanClientVerifier::new(ClientRoots::Mesh(self.bundle.clone()), policy);
        let mut config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(CurrentCert(self.current.clone())));
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The client side of `ISTIO_MUTUAL` (DestinationRule `tls.mode: ISTIO_MUTUAL`): presents
    /// the current certificate and accepts a server whose chain verifies against the mesh
    /// bundle and, when `expected_sans` is non-empty, that carries one of them as a URI (or
    /// DNS) SAN. The TLS server name (SNI) the caller connects with is *not* checked against
    /// the certificate: Istio sends names like `outbound_.80_.cnn_.istio-egressgateway…` or
    /// the external host while mesh certificates carry only a SPIFFE URI.
    pub fn client_config(
        &self,
        expected_sans: &[String],
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ClientConfig>> {
        let policy = if expected_sans.is_empty() {
            SanPolicy::Any
        } else {
            SanPolicy::OneOf(expected_sans.to_vec())
        };
        let verifier = SanServerVerifier::new(Roots::Mesh(self.bundle.clone()), policy);
        let mut config = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(CurrentCert(self.current.clone())));
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }
}
