//! A stand-in "public" certificate authority for upstream hosts such as `edition.cnn.com`, so
//! TLS origination and passthrough can be tested on loopback with real verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use egress_identity::{MeshCa, WorkloadCert, server_config_from_pem};
use rustls::ServerConfig;

use crate::{Result, io_err};

/// Lifetime of the certificates the factory issues.
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// A CA issuing server (and client) certificates for DNS names.
#[derive(Debug)]
pub struct CertFactory {
    ca: MeshCa,
}

impl CertFactory {
    /// A fresh CA (ECDSA P-256, subject `O=public.test`).
    pub fn new() -> Result<Self> {
        Ok(CertFactory {
            ca: MeshCa::generate("public.test")?,
        })
    }

    /// The underlying CA.
    pub fn ca(&self) -> &MeshCa {
        &self.ca
    }

    /// The root certificate, PEM (a DestinationRule's `caCertificates`, curl's `--cacert`).
    pub fn ca_pem(&self) -> &str {
        self.ca.root_pem()
    }

    /// Writes the root to `<dir>/public-ca.pem` and returns the path.
    pub fn write_ca_file(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("public-ca.pem");
        std::fs::write(&path, self.ca_pem())
            .map_err(io_err(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid for a day. Its EKUs
    /// allow client use too.
    pub fn server_cert(&self, names: &[&str]) -> Result<WorkloadCert> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        Ok(self.ca.issue_server(&names, CERT_TTL)?)
    }

    /// A client certificate (for `MUTUAL` origination or `curl --cert`) whose SANs are
    /// `names`; the same shape as [`CertFactory::server_cert`].
    pub fn client_cert(&self, names: &[&str]) -> Result<WorkloadCert> {
        self.server_cert(names)
    }

    /// A certificate revocation list of this CA (PEM `X509 CRL`, due for an update in a day)
    /// revoking each of `revoked` (certificates this factory issued): a DestinationRule's
    /// `caCrl`, or `ca.crl` of a credential Secret.
    pub fn crl(&self, revoked: &[&WorkloadCert]) -> Result<String> {
        let pems: Vec<&str> = revoked.iter().map(|c| c.cert_chain_pem.as_str()).collect();
        Ok(self
            .ca
            .revocation_list(&pems, SystemTime::now() + CERT_TTL)?)
    }

    /// Writes `cert` as `<dir>/<stem>.pem` and `<dir>/<stem>-key.pem` (curl's `--cert` and
    /// `--key`) and returns both paths.
    pub fn write_cert_files(
        &self,
        cert: &WorkloadCert,
        dir: &Path,
        stem: &str,
    ) -> Result<(PathBuf, PathBuf)> {
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert_path, &cert.cert_chain_pem)
            .map_err(io_err(format!("writing {}", cert_path.display())))?;
        std::fs::write(&key_path, &cert.key_pem)
            .map_err(io_err(format!("writing {}", key_path.display())))?;
        Ok((cert_path, key_path))
    }

    /// A server config presenting a fresh certificate for `names`; with `client_ca_pem`, client
    /// certificates chaining to it are required (MUTUAL).
    pub fn server_config(
        &self,
        names: &[&str],
        client_ca_pem: Option<&str>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ServerConfig>> {
        let cert = self.server_cert(names)?;
        Ok(server_config_from_pem(
            &cert.cert_chain_pem,
            &cert.key_pem,
            client_ca_pem,
            false,
            &[],
            alpn,
        )?)
    }
}
