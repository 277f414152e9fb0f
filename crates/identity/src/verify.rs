//! Certificate verifiers. The mesh checks identities by SAN, not by the TLS server name: an
//! `ISTIO_MUTUAL` client sends an arbitrary SNI (`outbound_.80_.cnn_.istio-egressgateway…` or
//! the external host) while the server certificate carries only a SPIFFE URI SAN. So the
//! verifiers here check the chain with webpki (ring signatures) and then apply a [`SanPolicy`]
//! to the leaf instead of the server-name check.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pem::{leaf_info, parse_certs};
use crate::{Error, Result};

/// Which SANs a verified leaf must carry.
#[derive(Debug, Clone)]
pub(crate) enum SanPolicy {
    /// No SAN requirement: the chain alone decides.
    Any,
    /// A URI SAN starting with this prefix (`spiffe://<td>/`, or `spiffe://`).
    UriPrefix(String),
    /// A URI or DNS SAN equal to one of these (see [`crate::LeafInfo::matches_any_san`]).
    OneOf(Vec<String>),
}

impl SanPolicy {
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if let SanPolicy::Any = self {
            return Ok(());
        }
        let info = leaf_info(leaf).map_err(|_| CertificateError::BadEncoding)?;
        let expected = match self {
            SanPolicy::Any => return Ok(()),
            SanPolicy::UriPrefix(prefix) => {
                if info.uri_sans.iter().any(|u| u.starts_with(prefix.as_str())) {
                    return Ok(());
                }
                format!("a URI SAN starting with {prefix}")
            }
            SanPolicy::OneOf(sans) => {
                if info.matches_any_san(sans) {
                    return Ok(());
                }
                format!("one of {sans:?}")
            }
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(SanMismatch {
                presented: info.all_sans(),
                expected,
            })),
        )))
    }
}

/// The peer certificate chained to a trusted root but did not carry an accepted SAN.
pub(crate) struct SanMismatch {
    presented: Vec<String>,
    expected: String,
}

impl fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer certificate SANs {:?} do not include {}",
            self.presented, self.expected
        )
    }
}

/// rustls shows a certificate error's `Debug` form, so that is the message too.
impl fmt::Debug for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for SanMismatch {}

/// Builds a root store from every certificate of a PEM bundle.
pub(crate) fn root_store(pem: &str, what: &'static str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for der in parse_certs(pem, what)? {
        store.add(der)?;
    }
    Ok(store)
}

/// The mesh trust bundle with the verifier state derived from it.
pub(crate) struct TrustBundle {
    pub(crate) pem: String,
    store: Arc<RootCertStore>,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl TrustBundle {
    pub(crate) fn from_pem(pem: &str) -> Result<Self> {
        let store = Arc::new(root_store(pem, "mesh trust bundle")?);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(store.clone(), crate::provider())
                .build()
                .map_err(Error::Verifier)?;
        Ok(TrustBundle {
            pem: pem.to_string(),
            store,
            client_verifier,
        })
    }
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("roots", &self.store.len())
            .finish_non_exhaustive()
    }
}

/// A trust bundle that can be replaced while configs built from it stay in use.
pub(crate) type SharedBundle = Arc<ArcSwap<TrustBundle>>;

/// Where a verifier finds its roots.
#[derive(Debug, Clone)]
pub(crate) enum Roots {
    /// Fixed roots (user CA certificates, system roots).
    Static(Arc<RootCertStore>),
    /// The mesh bundle, read at every handshake.
    Mesh(SharedBundle),
}

impl Roots {
    fn store(&self) -> Arc<RootCertStore> {
        match self {
            Roots::Static(store) => store.clone(),
            Roots::Mesh(bundle) => bundle.load().store.clone(),
        }
    }
}

/// How a [`SanServerVerifier`] verifies the server's chain.
#[derive(Debug, Clone)]
pub(crate) enum Chain {
    /// Signed by one of these roots, no revocation check.
    Roots(Roots),
    /// rustls' webpki verifier, which also checks revocation against its CRLs. It checks the
    /// server name last, after the chain and revocation (`WebPkiServerVerifier::
    /// verify_server_cert`), so a name mismatch from it means the chain was accepted; the
    /// SAN policy then decides instead of the name (pinned by this crate's tests).
    Revocable(Arc<WebPkiServerVerifier>),
}

impl Chain {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
        provider: &CryptoProvider,
    ) -> Result<(), rustls::Error> {
        match self {
            Chain::Roots(roots) => {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    &roots.store(),
                    intermediates,
                    now,
                    provider.signature_verification_algorithms.all,
                )
            }
            Chain::Revocable(webpki) => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
                    Ok(_)
                    | Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Client side: verifies the server's chain (against [`Roots`], or with revocation, see
/// [`Chain`]) and its SANs against a [`SanPolicy`], ignoring the server name the connection
/// was made with.
#[derive(Debug)]
pub(crate) struct SanServerVerifier {
    chain: Chain,
    policy: SanPolicy,
    provider: Arc<CryptoProvider>,
}

impl SanServerVerifier {
    pub(crate) fn new(roots: Roots, policy: SanPolicy) -> Self {
        Self::with_chain(Chain::Roots(roots), policy)
    }

    pub(crate) fn with_chain(chain: Chain, policy: SanPolicy) -> Self {
        SanServerVerifier {
            chain,
            policy,
            provider: crate::provider(),
        }
    }
}

impl ServerCertVerifier for SanServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.chain
            .verify(end_entity, intermediates, server_name, now, &self.provider)?;
        self.policy.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client side, `insecureSkipVerify: true`: accepts any server certificate, but still checks
/// that the handshake is signed by the key of the certificate presented.
#[derive(Debug)]
pub(crate) struct SkipServerVerification {
    provider: Arc<CryptoProvider>,
}

impl SkipServerVerification {
    pub(crate) fn new() -> Self {
        SkipServerVerification {
            provider: crate::provider(),
        }
    }
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where a client-certificate verifier gets its chain verification.
#[derive(Debug)]
pub(crate) enum ClientRoots {
    /// A webpki verifier over fixed roots (mandatory or optional client auth).
    Static(Arc<dyn ClientCertVerifier>),
    /// The mesh bundle's verifier, read at every handshake; client auth mandatory.
    Mesh(SharedBundle),
}

/// Server side: webpki chain verification of the client certificate, then a [`SanPolicy`].
#[derive(Debug)]
pub(crate) struct SanClientVerifier {
    inner: ClientRoots,
    policy: SanPolicy,
    provider: Arc<CryptoProvider>,
}

impl SanClientVerifier {
    pub(crate) fn new(inner: ClientRoots, policy: SanPolicy) -> Self {
        SanClientVerifier {
            inner,
            policy,
            provider: crate::provider(),
        }
    }
}

impl ClientCertVerifier for SanClientVerifier {
    fn offer_client_auth(&self) -> bool {
        match &self.inner {
            ClientRoots::Static(v) => v.offer_client_auth(),
            ClientRoots::Mesh(_) => true,
        }
    }

    fn client_auth_mandatory(&self) -> bool {
        match &self.inner {
            ClientRoots::Static(v) => v.client_auth_mandatory(),
            ClientRoots::Mesh(_) => true,
        }
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.inner {
            ClientRoots::Static(v) => v.root_hint_subjects(),
            // The bundle can change under us; sending no hints is allowed and mesh clients
            // present their one certificate anyway.
            ClientRoots::Mesh(_) => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match &self.inner {
            ClientRoots::Static(v) => v.verify_client_cert(end_entity, intermediates, now)?,
            ClientRoots::Mesh(bundle) => {
                bundle
                    .load()
                    .client_verifier
                    .verify_client_cert(end_entity, intermediates, now)?
            }
        };
        self.policy.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
