//! TLS with user certificates: Gateway `SIMPLE`/`MUTUAL`/`OPTIONAL_MUTUAL` termination and
//! DestinationRule `SIMPLE`/`MUTUAL` origination.
//!
//! Server-name checks for origination: with [`client_config_simple`] rustls checks the
//! upstream certificate against the `ServerName` the caller connects with. The proxy passes the
//! DestinationRule `sni` when set, otherwise the request's Host (Istio's auto-SNI and auto-SAN),
//! so that check is Istio's default SAN validation. When the DestinationRule lists
//! `subjectAltNames`, use [`client_config_with_sans`] instead: it accepts the certificate if any
//! of its DNS/URI SANs equals one of them, whatever the SNI.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;

use crate::handle::certified_key;
use crate::pem::{parse_certs, parse_crls, parse_key};
use crate::verify::{
    Chain, ClientRoots, Roots, SanClientVerifier, SanPolicy, SanServerVerifier,
    SkipServerVerification, root_store,
};
use crate::{Error, Result};

/// The trust anchors for verifying an upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// The operating system's trust store (rustls-native-certs: honours `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR`; read once per process), plus optional extra PEM roots. Istio's default
    /// when a DestinationRule gives no `caCertificates`.
    System {
        /// Extra roots appended to the system ones.
        extra_pem: Option<String>,
    },
    /// Exactly the certificates of this PEM bundle (`caCertificates`, or `ca.crt` of a
    /// `credentialName` secret).
    Pem(String),
}

impl RootSource {
    /// The system store alone.
    pub fn system() -> Self {
        RootSource::System { extra_pem: None }
    }

    /// Builds the root store.
    pub fn load(&self) -> Result<RootCertStore> {
        match self {
            RootSource::Pem(pem) => root_store(pem, "CA certificates"),
            RootSource::System { extra_pem } => {
                let mut store = RootCertStore::empty();
                let (added, _ignored) = store.add_parsable_certificates(system_roots()?.to_vec());
                let mut total = added;
                if let Some(extra) = extra_pem {
                    for der in parse_certs(extra, "extra CA certificates")? {
                        store.add(der)?;
                        total += 1;
                    }
                }
                if total == 0 {
                    return Err(Error::SystemRoots(
                        "the system trust store holds no usable certificate".to_string(),
                    ));
                }
                Ok(store)
            }
        }
    }
}

/// The system roots, loaded once.
fn system_roots() -> Result<&'static [CertificateDer<'static>]> {
    static ROOTS: OnceLock<Result<Vec<CertificateDer<'static>>, String>> = OnceLock::new();
    let loaded = ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        if result.certs.is_empty() && !result.errors.is_empty() {
            let errors: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
            return Err(errors.join("; "));
        }
        Ok(result.certs)
    });
    match loaded {
        Ok(certs) => Ok(certs),
        Err(e) => Err(Error::SystemRoots(e.clone())),
    }
}

/// A terminating server config from user certificates (Gateway `tls.credentialName` or
/// `serverCertificate`/`privateKey`). With `client_ca_pem` the server asks for a client
/// certificate chaining to it: required (`MUTUAL`) unless `optional` (`OPTIONAL_MUTUAL`); a
/// presented certificate must then carry one of `allowed_sans` (`subjectAltNames`) when that is
/// non-empty. Without `client_ca_pem` (`SIMPLE`) no client certificate is requested.
pub fn server_config_from_pem(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
    optional: bool,
    allowed_sans: &[String],
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>> {
    let chain = parse_certs(cert_chain_pem, "server certificate chain")?;
    let key = parse_key(key_pem, "server private key")?;
    let certified = certified_key(chain, key)?;
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let store = Arc::new(root_store(ca, "client CA certificates")?);
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(store, crate::provider());
            if optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build()?;
            let verifier: Arc<dyn ClientCertVerifier> = if allowed_sans.is_empty() {
                verifier
            } else {
                Arc::new(SanClientVerifier::new(
                    ClientRoots::Static(verifier),
                    SanPolicy::OneOf(allowed_sans.to_vec()),
                ))
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let resolver = rustls::sign::SingleCertAndKey::from(certified);
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// An originating client config (DestinationRule `SIMPLE`, or `MUTUAL` with `client`
/// certificate and key PEM). The server certificate must chain to `roots` and be valid for the
/// `ServerName` the caller connects with (the proxy passes the DR `sni`, else the Host: Istio's
/// auto-SAN). `insecure_skip_verify` accepts any server certificate (handshake signatures are
/// still checked).
pub fn client_config_simple(
    roots: &RootSource,
    client: Option<(&str, &str)>,
    insecure_skip_verify: bool,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>> {
    if !insecure_skip_verify {
        return client_config_checked(roots, None, &[], client, alpn);
    }
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SkipServerVerification::new()));
    let mut config = with_client_cert(builder, client)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Like [`client_config_simple`] for a DestinationRule with `subjectAltNames`: the server
/// certificate must chain to `roots` and carry a DNS or URI SAN equal to one of `sans` (DNS
/// case-insensitively, `*.` certificate wildcards covering one label); the SNI is not checked.
/// With empty `sans` this is [`client_config_simple`] without `insecure_skip_verify`.
pub fn client_config_with_sans(
    roots: &RootSource,
    sans: &[String],
    client: Option<(&str, &str)>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>> {
    client_config_checked(roots, None, sans, client, alpn)
}

/// The verifying originating client config: the server certificate must chain to `roots`;
/// with `crl_pem` (DestinationRule `caCrl`, or `ca.crl`/`crl` of a `credentialName` Secret)
/// no certificate of the chain may be revoked, and each must be covered by a CRL of its
/// issuer that has not expired (Envoy's default: every certificate of the chain is checked,
/// an unknown status fails); then the certificate must carry one of `sans`, or, with no
/// `sans`, be valid for the `ServerName` the caller connects with.
pub fn client_config_checked(
    roots: &RootSource,
    crl_pem: Option<&str>,
    sans: &[String],
    client: Option<(&str, &str)>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ClientConfig>> {
    let store = Arc::new(roots.load()?);
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?;
    let crls = crl_pem
        .map(|pem| parse_crls(pem, "CA CRL"))
        .transpose()?
        .unwrap_or_default();
    let builder = if crls.is_empty() && !sans.is_empty() {
        let verifier =
            SanServerVerifier::new(Roots::Static(store), SanPolicy::OneOf(sans.to_vec()));
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else {
        let mut webpki = WebPkiServerVerifier::builder_with_provider(store, crate::provider());
        if !crls.is_empty() {
            webpki = webpki.with_crls(crls).enforce_revocation_expiration();
        }
        let webpki = webpki.build()?;
        if sans.is_empty() {
            builder.with_webpki_verifier(webpki)
        } else {
            let verifier = SanServerVerifier::with_chain(
                Chain::Revocable(webpki),
                SanPolicy::OneOf(sans.to_vec()),
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
    };
    let mut config = with_client_cert(builder, client)?;
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

fn with_client_cert(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    client: Option<(&str, &str)>,
) -> Result<ClientConfig> {
    Ok(match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = parse_certs(cert_pem, "client certificate chain")?;
            let key = parse_key(key_pem, "client private key")?;
            let certified = certified_key(chain, key)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
    })
}
