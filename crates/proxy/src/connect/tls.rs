//! TLS origination (DestinationRule `tls`): picks the SNI, builds the rustls client config for
//! the mode (SIMPLE, MUTUAL, ISTIO_MUTUAL) and caches it per cluster, settings and ALPN.
//!
//! Verification, as Istio configures Envoy:
//! * `insecureSkipVerify` accepts any certificate.
//! * `subjectAltNames` given: the chain must verify and the leaf carry one of them (the SNI is
//!   not checked).
//! * otherwise the certificate must be valid for the SNI: the DR `sni`, else the downstream
//!   Host/:authority (`auto_sni` + `auto_san_validation`), else the cluster's host. (Envoy skips
//!   the name check when `sni` is set without SANs; checking it against the SNI is stricter, a
//!   deliberate choice: a certificate that does not cover the name the proxy asked for is not
//!   accepted.)
//! * roots: `caCertificates` when set, else the system store plus `ProxyOptions.extra_roots_pem`.
//! * revocation: with `caCrl` (or the credential's `ca.crl`), every certificate of the chain
//!   must be covered by an unexpired CRL of its issuer and not be revoked; a failure is a
//!   certificate error like any other (503 `UF`, CERTIFICATE_VERIFY_FAILED).
//! * ISTIO_MUTUAL: the workload identity's client config (mesh roots, SAN check against the
//!   DR's `subjectAltNames` when given).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use egress_identity::RootSource;
use egress_snapshot::snapshot::{Cluster, UpstreamTls, UpstreamTlsMode};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::ctx::Ctx;

/// BoringSSL's text for a failed certificate verification, as Envoy prints it.
const CERTIFICATE_VERIFY_FAILED: &str =
    "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";

/// Why TLS origination failed, with its typed cause.
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    /// The client configuration could not be built (bad PEM, no workload identity).
    #[error("{0}")]
    Config(String),
    /// The SNI to send is not a valid server name.
    #[error("invalid SNI {sni:?}: {source}")]
    InvalidSni {
        /// The name.
        sni: String,
        /// Why it is invalid.
        source: rustls_pki_types::InvalidDnsNameError,
    },
    /// The handshake failed: rustls' error (inside the I/O error tokio-rustls reports) or the
    /// transport's.
    #[error("{0}")]
    Handshake(std::io::Error),
}

impl TlsFailure {
    /// The rustls error behind a handshake failure, if that is what it was.
    pub fn rustls(&self) -> Option<&rustls::Error> {
        match self {
            TlsFailure::Handshake(e) => e.get_ref().and_then(|inner| inner.downcast_ref()),
            _ => None,
        }
    }

    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: BoringSSL's CERTIFICATE_VERIFY_FAILED when the
    /// peer's certificate was refused, as Envoy prints it; else the failure in Envoy's frame.
    pub fn envoy_reason(&self) -> String {
        match self.rustls() {
            Some(rustls::Error::InvalidCertificate(_)) => CERTIFICATE_VERIFY_FAILED.to_owned(),
            _ => format!("TLS_error:|{self}:TLS_error_end"),
        }
    }
}

/// The SNI to send: the DR's `sni`, else the authority without its port, else the cluster host.
pub fn sni_for(settings: &UpstreamTls, authority: Option<&str>, cluster_host: &str) -> String {
    if let Some(sni) = settings.sni.as_deref().filter(|s| !s.is_empty()) {
        return sni.to_owned();
    }
    authority
        .map(host_of)
        .filter(|h| !h.is_empty())
        .unwrap_or(cluster_host)
        .to_ascii_lowercase()
}

/// `host` of `host`, `host:port`, `[v6]:port` or `[v6]`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

/// A cached client config and what it was built from.
struct Entry {
    settings: UpstreamTls,
    config: Arc<ClientConfig>,
}

/// Cache key: cluster name and ALPN offered.
type Key = (String, Vec<Vec<u8>>);

/// Client configs of one proxy instance.
pub struct TlsClients {
    extra_roots: Option<String>,
    cache: Mutex<HashMap<Key, Entry>>,
}

impl TlsClients {
    /// Configs trusting `extra_roots_pem` besides the system store (when a DR gives no CA).
    pub fn new(extra_roots_pem: Vec<String>) -> TlsClients {
        let extra = extra_roots_pem.join("\n");
        TlsClients {
            extra_roots: (!extra.trim().is_empty()).then_some(extra),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client config for `settings`, offering `alpn` instead of the cluster's ALPN list
    /// when given. Errors are configuration problems (bad PEM, no workload identity).
    pub fn prepare(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        settings: &UpstreamTls,
        alpn: Option<&[&str]>,
    ) -> Result<Arc<ClientConfig>, String> {
        let alpn: Vec<Vec<u8>> = match alpn {
            Some(list) => list.iter().map(|p| p.as_bytes().to_vec()).collect(),
            None => settings
                .alpn
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
        };
        self.config(ctx, cluster, settings, alpn)
    }

    /// Runs the client handshake over `stream` with `config`, sending `sni`; returns the
    /// stream and the negotiated ALPN.
    pub async fn handshake(
        config: Arc<ClientConfig>,
        sni: &str,
        stream: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, Option<Vec<u8>>), TlsFailure> {
        let name =
            ServerName::try_from(sni.to_owned()).map_err(|source| TlsFailure::InvalidSni {
                sni: sni.to_owned(),
                source,
            })?;
        let tls = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(TlsFailure::Handshake)?;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        Ok((tls, negotiated))
    }

    fn config(
        &self,
        ctx: &Ctx,
        cluster: &Cluster,
        settings: &UpstreamTls,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ClientConfig>, String> {
        let key = (cluster.name.clone(), alpn);
        if let Ok(cache) = self.cache.lock()
            && let Some(entry) = cache.get(&key)
            && entry.settings == *settings
        {
            return Ok(Arc::clone(&entry.config));
        }
        let config = self.build(ctx, settings, key.1.clone())?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                key,
                Entry {
                    settings: settings.clone(),
                    config: Arc::clone(&config),
                },
            );
        }
        Ok(config)
    }

    fn build(
        &self,
        ctx: &Ctx,
        settings: &UpstreamTls,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ClientConfig>, String> {
        let config_error = |e: egress_identity::Error| format!("TLS configuration: {e}");
        if settings.mode == UpstreamTlsMode::IstioMutual {
            let identity = ctx.identity.as_ref().ok_or_else(|| {
                "ISTIO_MUTUAL origination needs a workload identity, and this proxy has none"
                    .to_owned()
            })?;
            return identity
                .client_config(&settings.subject_alt_names, alpn)
                .map_err(config_error);
        }
        let roots = match &settings.ca_certificates {
            Some(pem) => RootSource::Pem(crate::pem::resolve(pem)?.into_owned()),
            None => RootSource::System {
                extra_pem: self.extra_roots.clone(),
            },
        };
        let client_pem = match (&settings.mode, &settings.client_identity) {
            (UpstreamTlsMode::Mutual, Some(id)) => Some((
                crate::pem::resolve(&id.cert_chain)?,
                crate::pem::resolve(&id.private_key)?,
            )),
            _ => None,
        };
        let client = client_pem.as_ref().map(|(c, k)| (c.as_ref(), k.as_ref()));
        let config = if settings.insecure_skip_verify {
            egress_identity::client_config_simple(&roots, client, true, alpn)
        } else {
            let crl = settings
                .ca_crl
                .as_deref()
                .map(crate::pem::resolve)
                .transpose()?;
            egress_identity::client_config_checked(
                &roots,
                crl.as_deref(),
                &settings.subject_alt_names,
                client,
                alpn,
            )
        };
        config.map_err(config_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn settings(sni: Option<&str>) -> UpstreamTls {
        UpstreamTls {
            mode: UpstreamTlsMode::Simple,
            sni: sni.map(str::to_owned),
            subject_alt_names: vec![],
            ca_certificates: None,
            ca_crl: None,
            client_identity: None,
            insecure_skip_verify: false,
            alpn: vec![],
        }
    }

    #[test]
    fn sni_precedence() {
        assert_eq!(
            sni_for(
                &settings(Some("a.example")),
                Some("b.example:443"),
                "c.example"
            ),
            "a.example"
        );
        assert_eq!(
            sni_for(&settings(None), Some("B.example:443"), "c.example"),
            "b.example"
        );
        assert_eq!(
            sni_for(&settings(None), Some("b.example"), "c.example"),
            "b.example"
        );
        assert_eq!(
            sni_for(&settings(None), Some("[::1]:8443"), "c.example"),
            "::1"
        );
        assert_eq!(sni_for(&settings(None), None, "c.example"), "c.example");
    }

    #[test]
    fn failure_reasons_come_from_the_typed_cause() {
        let handshake = |e: rustls::Error| {
            TlsFailure::Handshake(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let unknown_issuer = handshake(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(unknown_issuer.envoy_reason(), CERTIFICATE_VERIFY_FAILED);
        let alert = handshake(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(
            alert.envoy_reason(),
            "TLS_error:|received fatal alert: HandshakeFailure:TLS_error_end"
        );
        // A message that merely reads like a certificate error is not one.
        let text = TlsFailure::Handshake(std::io::Error::other("invalid peer certificate: x"));
        assert_ne!(text.envoy_reason(), CERTIFICATE_VERIFY_FAILED);
    }
}
