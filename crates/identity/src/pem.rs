//! PEM and X.509 helpers: reading certificate chains and keys (rustls-pki-types), and the few
//! facts the mesh needs from a leaf certificate (SANs, validity, the peer's SPIFFE id).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::spiffe::SCHEME;
use crate::{Error, Result};

/// Reads every `CERTIFICATE` block of `pem`, in order. `what` names the input in errors.
/// At least one certificate is required.
pub fn parse_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            what,
            reason: "no CERTIFICATE block found".to_string(),
        });
    }
    Ok(certs)
}

/// Reads every `X509 CRL` block of `pem`, in order (a DestinationRule's `caCrl`, or `ca.crl`
/// of a `credentialName` Secret). `what` names the input in errors. At least one CRL is
/// required.
pub fn parse_crls(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            what,
            reason: e.to_string(),
        })?;
    if crls.is_empty() {
        return Err(Error::Pem {
            what,
            reason: "no X509 CRL block found".to_string(),
        });
    }
    Ok(crls)
}

/// Reads the first private key of `pem` (PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE
/// KEY`). `what` names the input in errors.
pub fn parse_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Pem {
        what,
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".to_string(),
            other => other.to_string(),
        },
    })
}

/// What the mesh reads from a (leaf) certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    /// URI subject alternative names (SPIFFE ids live here).
    pub uri_sans: Vec<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Whether basicConstraints says CA:true.
    pub is_ca: bool,
}

impl LeafInfo {
    /// The first URI SAN that is a SPIFFE id.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.uri_sans
            .iter()
            .map(String::as_str)
            .find(|u| u.starts_with(SCHEME))
    }

    /// Whether any URI or DNS SAN equals one of `wanted`. DNS names compare case-insensitively
    /// and a certificate SAN `*.example.com` covers exactly one leading label; URIs compare
    /// exactly.
    pub fn matches_any_san(&self, wanted: &[String]) -> bool {
        wanted.iter().any(|w| {
            self.uri_sans.iter().any(|u| u == w)
                || self.dns_sans.iter().any(|d| dns_san_matches(d, w))
        })
    }

    /// All SANs, URIs first, for error messages.
    pub(crate) fn all_sans(&self) -> Vec<String> {
        self.uri_sans
            .iter()
            .chain(&self.dns_sans)
            .cloned()
            .collect()
    }
}

/// Whether the certificate DNS SAN `cert_san` covers the name `wanted`.
fn dns_san_matches(cert_san: &str, wanted: &str) -> bool {
    let cert_san = cert_san.trim_end_matches('.');
    let wanted = wanted.trim_end_matches('.');
    if cert_san.eq_ignore_ascii_case(wanted) {
        return true;
    }
    match (cert_san.strip_prefix("*."), wanted.split_once('.')) {
        (Some(suffix), Some((label, rest))) => {
            !label.is_empty() && !label.contains('*') && suffix.eq_ignore_ascii_case(rest)
        }
        _ => false,
    }
}

/// Parses a DER certificate and extracts its SANs and validity.
pub fn leaf_info(der: &CertificateDer<'_>) -> Result<LeafInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Error::Certificate(e.to_string()))?;
    let mut uri_sans = Vec::new();
    let mut dns_sans = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::Certificate(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => uri_sans.push((*u).to_string()),
                GeneralName::DNSName(d) => dns_sans.push((*d).to_string()),
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    Ok(LeafInfo {
        uri_sans,
        dns_sans,
        not_before: system_time(validity.not_before.timestamp()),
        not_after: system_time(validity.not_after.timestamp()),
        is_ca: cert.is_ca(),
    })
}

fn system_time(unix_secs: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_secs.unsigned_abs());
    if unix_secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The SPIFFE id of a peer: the first `spiffe://` URI SAN of the leaf (first) certificate of
/// the chain the peer presented. `None` without certificates or without such a SAN.
pub fn peer_spiffe_id(certs: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = certs.first()?;
    leaf_info(leaf).ok()?.spiffe_id().map(str::to_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn dns_matching() {
        assert!(dns_san_matches("Edition.CNN.com", "edition.cnn.com"));
        assert!(dns_san_matches("*.cnn.com", "edition.cnn.com"));
        assert!(!dns_san_matches("*.cnn.com", "a.edition.cnn.com"));
        assert!(!dns_san_matches("*.cnn.com", "cnn.com"));
        assert!(!dns_san_matches("edition.cnn.com", "*.cnn.com"));
        assert!(dns_san_matches("edition.cnn.com.", "edition.cnn.com"));
    }

    #[test]
    fn pem_errors_name_the_input() {
        let err = parse_certs("garbage", "root bundle").unwrap_err();
        assert!(err.to_string().contains("root bundle"), "{err}");
        let err = parse_key("", "private key").unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let err = parse_crls(
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "CA CRL",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no X509 CRL"), "{err}");
    }

    #[test]
    fn negative_timestamps_convert() {
        assert_eq!(system_time(-10), UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(system_time(10), UNIX_EPOCH + Duration::from_secs(10));
    }

    #[test]
    fn peer_id_of_nothing_is_none() {
        assert_eq!(peer_spiffe_id(&[]), None);
        assert_eq!(peer_spiffe_id(&[CertificateDer::from(vec![1, 2, 3])]), None);
    }
}
