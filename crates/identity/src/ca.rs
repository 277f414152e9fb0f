//! The mesh CA: a self-signed ECDSA P-256 root (Istio's `istio-ca` root in the local cluster)
//! that issues SPIFFE workload certificates, plus plain server certificates for stand-in hosts.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, RevocationReason, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::pem::{leaf_info, parse_certs};
use crate::spiffe::{SpiffeId, check_trust_domain};
use crate::{Error, Result};

/// How long a generated root is valid (Istio's self-signed root default: 10 years).
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back `not_before` is set, to tolerate clock skew between peers.
const BACKDATE: Duration = Duration::from_secs(60);

/// A certificate with its private key, as the proxy serves it.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkloadCert {
    /// The leaf certificate, PEM (followed by intermediates if there are any; the mesh root
    /// itself is not included: peers have it in their trust bundle).
    pub cert_chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Start of validity (whole seconds, as in the certificate).
    pub not_before: SystemTime,
    /// End of validity (whole seconds, as in the certificate).
    pub not_after: SystemTime,
}

impl WorkloadCert {
    /// Loads a certificate chain and key from PEM (e.g. read back from the store), taking the
    /// validity from the leaf and checking that the key belongs to it.
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<Self> {
        let chain = parse_certs(cert_chain_pem, "certificate chain")?;
        let key = crate::pem::parse_key(key_pem, "private key")?;
        let leaf = chain
            .first()
            .ok_or(Error::Certificate("empty chain".into()))?;
        check_key_matches(&chain, key)?;
        let info = leaf_info(leaf)?;
        Ok(WorkloadCert {
            cert_chain_pem: cert_chain_pem.to_string(),
            key_pem: key_pem.to_string(),
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }

    /// The certificates of the chain in DER, leaf first.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>> {
        parse_certs(&self.cert_chain_pem, "certificate chain")
    }

    /// The SPIFFE id (first `spiffe://` URI SAN) of the leaf, if it has one.
    pub fn spiffe_id(&self) -> Option<String> {
        crate::pem::peer_spiffe_id(&self.chain_der().ok()?)
    }

    /// The total lifetime (`not_after - not_before`).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for WorkloadCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadCert")
            .field("spiffe_id", &self.spiffe_id())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Checks with rustls (ring) that `key` is the private key of the leaf of `chain`.
fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<()> {
    match rustls::sign::CertifiedKey::from_der(chain.to_vec(), key, &crate::provider()) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::KeyMismatch),
        Err(e) => Err(Error::Tls(e)),
    }
}

/// The mesh certificate authority.
pub struct MeshCa {
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
    root_der: CertificateDer<'static>,
}

impl fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshCa").finish_non_exhaustive()
    }
}

impl MeshCa {
    /// Generates a new self-signed root: ECDSA P-256, CA:true, valid for 10 years, subject
    /// `O=<trust_domain>` (as Istio's self-signed root).
    pub fn generate(trust_domain: &str) -> Result<MeshCa> {
        check_trust_domain(trust_domain).map_err(|reason| Error::InvalidTrustDomain {
            trust_domain: trust_domain.to_string(),
            reason,
        })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let (not_before, _) = validity(Duration::ZERO)?;
        let (_, not_after) = validity(ROOT_LIFETIME)?;
        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain);
        // A per-root suffix (from the key id) keeps roots of the same trust domain apart, so
        // a certificate of another root fails as "unknown issuer" rather than by signature.
        let key_id: String = params
            .key_identifier(&key)
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        dn.push(
            DnType::CommonName,
            format!("{trust_domain} mesh root CA {key_id}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(MeshCa {
            root_pem: cert.pem(),
            root_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its root certificate and PKCS#8 private key (as written by
    /// [`MeshCa::root_pem`] and [`MeshCa::key_pem`]). The certificate must be a CA and the key
    /// must be its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<MeshCa> {
        let certs = parse_certs(cert_pem, "CA certificate")?;
        let root_der = certs
            .into_iter()
            .next()
            .ok_or(Error::Certificate("empty CA certificate".into()))?;
        let info = leaf_info(&root_der)?;
        if !info.is_ca {
            return Err(Error::Certificate(
                "the CA certificate does not have basicConstraints CA:true".into(),
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::Pem {
            what: "CA private key",
            reason: e.to_string(),
        })?;
        let (_, parsed) = x509_parser::parse_x509_certificate(root_der.as_ref())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
            return Err(Error::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&root_der, key)?;
        Ok(MeshCa {
            root_pem: pem_of(&root_der),
            root_der,
            issuer,
        })
    }

    /// The root certificate, PEM: the mesh trust bundle.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// The root's private key, PKCS#8 PEM, so the local cluster can persist and reload the CA.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a workload certificate for `id`: a fresh P-256 key, the SPIFFE id as the only
    /// (URI) SAN, an empty subject, EKU serverAuth+clientAuth, valid from a minute ago for
    /// `ttl`.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<WorkloadCert> {
        let uri = Ia5String::try_from(id.to_string())?;
        let mut params = leaf_params(ttl)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.distinguished_name = DistinguishedName::new();
        self.sign(params)
    }

    /// A TLS server configuration with a fresh [`issue_server`](Self::issue_server) certificate
    /// for `names`, offering `alpn` (no client certificates asked for).
    pub fn server_config(
        &self,
        names: &[String],
        ttl: Duration,
        alpn: Vec<Vec<u8>>,
    ) -> Result<std::sync::Arc<rustls::ServerConfig>> {
        let cert = self.issue_server(names, ttl)?;
        crate::server_config_from_pem(&cert.cert_chain_pem, &cert.key_pem, None, false, &[], alpn)
    }

    /// Issues a plain server certificate for DNS names (or IP addresses), e.g. for stand-ins of
    /// public hosts. Subject `CN=<first name>`; EKU serverAuth+clientAuth, so the same
    /// certificate can also serve as a client certificate in `MUTUAL` tests.
    pub fn issue_server(&self, dns_names: &[String], ttl: Duration) -> Result<WorkloadCert> {
        let mut params = leaf_params(ttl)?;
        let mut sans = Vec::with_capacity(dns_names.len());
        for name in dns_names {
            sans.push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(Ia5String::try_from(name.as_str())?),
            });
        }
        params.subject_alt_names = sans;
        let mut dn = DistinguishedName::new();
        if let Some(first) = dns_names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        self.sign(params)
    }

    /// Signs a PEM certificate signing request for `id` (what the CA API does for an
    /// authenticated caller): the CSR's signature is checked, its public key is certified with
    /// `id` as the only (URI) SAN, an empty subject, and the usual leaf extensions, valid from a
    /// minute ago for `ttl`. A CSR asking for any other SAN is refused: the caller may only
    /// ask for its own identity. Returns the leaf, PEM.
    pub fn sign_csr(&self, csr_pem: &str, id: &SpiffeId, ttl: Duration) -> Result<String> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| Error::Certificate(format!("invalid certificate signing request: {e}")))?;
        let wanted = id.to_string();
        for san in &csr.params.subject_alt_names {
            let requested = match san {
                SanType::URI(uri) if uri.as_str() == wanted => continue,
                SanType::URI(uri) => uri.to_string(),
                SanType::DnsName(name) => name.to_string(),
                SanType::IpAddress(ip) => ip.to_string(),
                SanType::Rfc822Name(mail) => mail.to_string(),
                other => format!("{other:?}"),
            };
            return Err(Error::Certificate(format!(
                "the CSR requests the SAN {requested} but the caller's identity is {wanted}"
            )));
        }
        let mut params = leaf_params(ttl)?;
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(wanted)?)];
        params.distinguished_name = DistinguishedName::new();
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }

    /// A certificate revocation list of this CA, PEM (`X509 CRL`), revoking the leaf of each
    /// of `revoked` (PEM chains this CA issued), issued a minute ago, next update due at
    /// `next_update` (in the past for an expired list).
    pub fn revocation_list(&self, revoked: &[&str], next_update: SystemTime) -> Result<String> {
        let (this_update, _) = validity(Duration::ZERO)?;
        let next_update = next_update
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or(Error::Certificate("next update out of range".into()))?;
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for pem in revoked {
            let chain = parse_certs(pem, "revoked certificate")?;
            let leaf = chain
                .first()
                .ok_or(Error::Certificate("empty chain".into()))?;
            let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
                .map_err(|e| Error::Certificate(e.to_string()))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(parsed.raw_serial()),
                revocation_time: this_update,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let crl = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)?;
        Ok(crl.pem()?)
    }

    fn sign(&self, params: CertificateParams) -> Result<WorkloadCert> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(WorkloadCert {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before: to_system_time(params.not_before),
            not_after: to_system_time(params.not_after),
        })
    }
}

/// Parameters shared by every leaf: validity, key usage, EKUs, authority key id.
fn leaf_params(ttl: Duration) -> Result<CertificateParams> {
    let (not_before, not_after) = validity(ttl)?;
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// `(now - BACKDATE, now + ttl)` in whole seconds.
fn validity(ttl: Duration) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Certificate("system clock is before 1970".into()))?
        .as_secs();
    let at = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or(Error::Certificate("validity out of range".into()))
    };
    Ok((
        at(now.saturating_sub(BACKDATE.as_secs()))?,
        at(now.saturating_add(ttl.as_secs()))?,
    ))
}

fn to_system_time(t: OffsetDateTime) -> SystemTime {
    let secs = t.unix_timestamp();
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// PEM-encodes one DER certificate.
fn pem_of(der: &CertificateDer<'_>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.as_ref().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn id() -> SpiffeId {
        SpiffeId::new("cluster.local", "default", "sleep").unwrap()
    }

    #[test]
    fn root_is_a_ten_year_ca() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let info = leaf_info(ca.root_der()).unwrap();
        assert!(info.is_ca);
        let life = info.not_after.duration_since(info.not_before).unwrap();
        assert!(life >= Duration::from_secs(10 * 365 * 24 * 3600));
        assert!(MeshCa::generate("Not A Domain").is_err());
    }

    #[test]
    fn leaf_has_spiffe_uri_and_validity() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let cert = ca.issue(&id(), Duration::from_secs(3600)).unwrap();
        assert_eq!(
            cert.spiffe_id().as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/sleep")
        );
        let info = leaf_info(&cert.chain_der().unwrap()[0]).unwrap();
        assert!(!info.is_ca);
        assert!(info.dns_sans.is_empty());
        assert_eq!(info.not_before, cert.not_before);
        assert_eq!(info.not_after, cert.not_after);
        assert_eq!(cert.lifetime(), Duration::from_secs(3660));
        let now = SystemTime::now();
        assert!(cert.not_before < now && now < cert.not_after);
        let reloaded = WorkloadCert::from_pem(&cert.cert_chain_pem, &cert.key_pem).unwrap();
        assert_eq!(reloaded, cert);
    }

    #[test]
    fn from_pem_round_trip_issues_chaining_certs() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let again = MeshCa::from_pem(ca.root_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.root_pem(), ca.root_pem());
        assert_eq!(again.root_der(), ca.root_der());
        // A leaf from the reloaded CA names the same issuer as the original root's subject.
        let leaf = again.issue(&id(), Duration::from_secs(60)).unwrap();
        let der = leaf.chain_der().unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der[0].as_ref()).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(ca.root_der().as_ref()).unwrap();
        assert_eq!(parsed.issuer().as_raw(), root.subject().as_raw());
    }

    #[test]
    fn from_pem_rejects_wrong_key_and_non_ca() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let other = MeshCa::generate("cluster.local").unwrap();
        assert!(matches!(
            MeshCa::from_pem(ca.root_pem(), &other.key_pem()),
            Err(Error::KeyMismatch)
        ));
        let leaf = ca.issue(&id(), Duration::from_secs(60)).unwrap();
        assert!(MeshCa::from_pem(&leaf.cert_chain_pem, &leaf.key_pem).is_err());
        assert!(matches!(
            WorkloadCert::from_pem(&leaf.cert_chain_pem, &other.key_pem()),
            Err(Error::KeyMismatch)
        ));
    }

    #[test]
    fn server_cert_has_dns_and_ip_sans() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let cert = ca
            .issue_server(
                &["edition.cnn.com".to_string(), "127.0.0.1".to_string()],
                Duration::from_secs(60),
            )
            .unwrap();
        let info = leaf_info(&cert.chain_der().unwrap()[0]).unwrap();
        assert_eq!(info.dns_sans, vec!["edition.cnn.com".to_string()]);
        assert!(info.uri_sans.is_empty());
        assert_eq!(cert.spiffe_id(), None);
    }

    #[test]
    fn sign_csr_certifies_the_csr_key_for_the_caller() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names =
            vec![SanType::URI(Ia5String::try_from(id().to_string()).unwrap())];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let pem = ca.sign_csr(&csr, &id(), Duration::from_secs(600)).unwrap();
        let cert = WorkloadCert::from_pem(&pem, &key.serialize_pem()).unwrap();
        assert_eq!(cert.spiffe_id(), Some(id().to_string()));
        assert_eq!(cert.lifetime(), Duration::from_secs(660));
        // An empty CSR gets the caller's identity too.
        let bare = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let pem = ca.sign_csr(&bare, &id(), Duration::from_secs(600)).unwrap();
        assert!(WorkloadCert::from_pem(&pem, &key.serialize_pem()).is_ok());
        // Someone else's identity, or garbage, is refused.
        let other = SpiffeId::new("cluster.local", "kube-system", "admin").unwrap();
        let err = ca
            .sign_csr(&csr, &other, Duration::from_secs(600))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("requests the SAN spiffe://cluster.local/ns/default/sa/sleep"),
            "{err}"
        );
        assert!(
            ca.sign_csr("not a csr", &id(), Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn pem_encoding_round_trips() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        assert_eq!(pem_of(ca.root_der()), ca.root_pem());
    }
}
