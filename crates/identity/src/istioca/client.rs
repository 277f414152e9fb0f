//! The workload side of `CreateCertificate`, as Istio's agent does it: a fresh P-256 key, a
//! CSR for the SPIFFE id, the call over TLS (the CA verified against the mesh roots and its
//! server name) with the service-account token as `authorization: Bearer`, and a check that
//! the returned chain verifies against the roots and names the requested identity.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::proto::{
    CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse, MAX_MESSAGE_LEN,
    frame, unframe,
};
use super::{CaError, Code, DEFAULT_CLUSTER_ID, decode_grpc_message};
use crate::ca::WorkloadCert;
use crate::pem::parse_certs;
use crate::spiffe::SpiffeId;
use crate::verify::{Roots, SanPolicy, SanServerVerifier, root_store};

/// Where the client gets the bearer token for each call.
#[derive(Clone)]
pub enum TokenSource {
    /// A file re-read on every call (the projected token, which the kubelet rotates).
    File(PathBuf),
    /// A fixed token.
    Static(String),
    /// A function called on every call (the local cluster mints a fresh token each time).
    Mint(Arc<dyn Fn() -> Result<String, CaError> + Send + Sync>),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(p) => f.debug_tuple("File").field(p).finish(),
            TokenSource::Static(_) => f.write_str("Static(..)"),
            TokenSource::Mint(_) => f.write_str("Mint(..)"),
        }
    }
}

impl TokenSource {
    /// The current token, trimmed of surrounding whitespace.
    pub async fn token(&self) -> Result<String, CaError> {
        let token = match self {
            TokenSource::File(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| CaError::Token {
                        path: path.display().to_string(),
                        source,
                    })?
            }
            TokenSource::Static(t) => t.clone(),
            TokenSource::Mint(f) => f()?,
        };
        Ok(token.trim().to_string())
    }
}

/// How long one call may take (connect, handshake, answer).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of Istio's CA API.
pub struct CaClient {
    addr: String,
    server_name: ServerName<'static>,
    authority: String,
    connector: TlsConnector,
    roots: Arc<RootCertStore>,
    roots_pem: String,
    token: TokenSource,
    cluster_id: String,
}

impl fmt::Debug for CaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaClient")
            .field("addr", &self.addr)
            .field("server_name", &self.authority)
            .field("token", &self.token)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl CaClient {
    /// A client of the CA at `addr` (`HOST:PORT`), whose serving certificate must chain to
    /// `roots_pem` (the mesh roots) and name `server_name`.
    pub fn new(
        addr: impl Into<String>,
        server_name: &str,
        roots_pem: &str,
        token: TokenSource,
    ) -> Result<CaClient, CaError> {
        let addr = addr.into();
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(CaError::Config(format!(
                "invalid CA address {addr:?}: expected HOST:PORT"
            )));
        }
        let server = ServerName::try_from(server_name.to_string())
            .map_err(|_| CaError::Config(format!("invalid CA server name {server_name:?}")))?;
        let roots = Arc::new(root_store(roots_pem, "CA roots")?);
        let mut config = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(crate::Error::Tls)?
            .with_root_certificates(Arc::clone(&roots))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(CaClient {
            addr,
            server_name: server,
            authority: server_name.to_string(),
            connector: TlsConnector::from(Arc::new(config)),
            roots,
            roots_pem: roots_pem.to_string(),
            token,
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
        })
    }

    /// Sends `cluster_id` in the `ClusterID` header instead of `Kubernetes`.
    pub fn with_cluster_id(mut self, cluster_id: impl Into<String>) -> CaClient {
        self.cluster_id = cluster_id.into();
        self
    }

    /// The roots the CA and the issued chains are verified with (the mesh trust bundle).
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// Asks the CA for a certificate for `id`, valid for `ttl`: generates a P-256 key and a
    /// CSR whose only SAN is `id`, calls `CreateCertificate`, and checks that the answer
    /// chains to the roots and carries `id`. The returned chain holds the leaf and any
    /// intermediates, not the root.
    pub async fn create_certificate(
        &self,
        id: &SpiffeId,
        ttl: Duration,
    ) -> Result<WorkloadCert, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crate::Error::from)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(
            Ia5String::try_from(id.to_string()).map_err(crate::Error::from)?,
        )];
        let csr = params
            .serialize_request(&key)
            .and_then(|r| r.pem())
            .map_err(crate::Error::from)?;
        let request = IstioCertificateRequest {
            csr,
            validity_duration: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            metadata: None,
        };
        let token = self.token.token().await?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.call(&request, &token))
            .await
            .map_err(|_| {
                CaError::Transport(format!(
                    "no answer from {} within {}s",
                    self.addr,
                    CALL_TIMEOUT.as_secs()
                ))
            })??;
        self.check_chain(&response.cert_chain, id, &key.serialize_pem())
    }

    /// Verifies the CA's chain and builds the workload certificate (root dropped).
    fn check_chain(
        &self,
        chain: &[String],
        id: &SpiffeId,
        key_pem: &str,
    ) -> Result<WorkloadCert, CaError> {
        let invalid = |m: String| CaError::InvalidResponse(m);
        let mut certs: Vec<(CertificateDer<'static>, &str)> = Vec::new();
        for pem in chain {
            for der in parse_certs(pem, "certificate chain").map_err(|e| invalid(e.to_string()))? {
                certs.push((der, pem.as_str()));
            }
        }
        let root_ders = parse_certs(&self.roots_pem, "CA roots")?;
        // The CA appends its root; the workload serves the leaf and intermediates only.
        while certs.len() > 1 && certs.last().is_some_and(|(d, _)| root_ders.contains(d)) {
            certs.pop();
        }
        let Some((leaf, _)) = certs.first() else {
            return Err(invalid("empty certificate chain".into()));
        };
        let intermediates: Vec<CertificateDer<'static>> =
            certs.iter().skip(1).map(|(d, _)| d.clone()).collect();
        let verifier = SanServerVerifier::new(
            Roots::Static(Arc::clone(&self.roots)),
            SanPolicy::OneOf(vec![id.to_string()]),
        );
        verifier
            .verify_server_cert(
                leaf,
                &intermediates,
                &self.server_name,
                &[],
                UnixTime::now(),
            )
            .map_err(|e| invalid(format!("the issued certificate does not verify: {e}")))?;
        let mut chain_pem = String::new();
        let mut last: Option<&str> = None;
        for (_, pem) in &certs {
            if last != Some(*pem) {
                chain_pem.push_str(pem.trim_end());
                chain_pem.push('\n');
                last = Some(pem);
            }
        }
        Ok(WorkloadCert::from_pem(&chain_pem, key_pem)?)
    }

    async fn call(
        &self,
        request: &IstioCertificateRequest,
        token: &str,
    ) -> Result<IstioCertificateResponse, CaError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| CaError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| CaError::Handshake {
                addr: self.addr.clone(),
                source,
            })?;
        let transport = |e: hyper::Error| CaError::Transport(e.to_string());
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(transport)?;
        let driver = tokio::spawn(connection);
        let result = async {
            let req = Request::post(format!(
                "https://{}{}",
                self.authority, CREATE_CERTIFICATE_PATH
            ))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header("clusterid", self.cluster_id.as_str())
            .body(Full::new(frame(request)))
            .map_err(|e| CaError::Transport(e.to_string()))?;
            let response = sender.send_request(req).await.map_err(transport)?;
            let (parts, body) = response.into_parts();
            if parts.status != StatusCode::OK {
                return Err(CaError::Transport(format!(
                    "the CA answered HTTP {}",
                    parts.status
                )));
            }
            if let Some((code, message)) = grpc_status(&parts.headers) {
                // A trailers-only response (a refusal).
                return Err(status_error(code, message));
            }
            let collected = Limited::new(body, MAX_MESSAGE_LEN + 5)
                .collect()
                .await
                .map_err(|e| CaError::Transport(e.to_string()))?;
            let status = collected.trailers().and_then(grpc_status);
            let data = collected.to_bytes();
            match status {
                Some((Code::Ok, _)) => {
                    unframe(data).map_err(|e| CaError::InvalidResponse(e.to_string()))
                }
                Some((code, message)) => Err(status_error(code, message)),
                None => Err(CaError::InvalidResponse(
                    "the answer has no grpc-status".into(),
                )),
            }
        }
        .await;
        driver.abort();
        result
    }
}

fn status_error(code: Code, message: String) -> CaError {
    if code == Code::Ok {
        return CaError::InvalidResponse("an OK status without a message".into());
    }
    CaError::Status { code, message }
}

/// `grpc-status` and `grpc-message` of a header block, if it has a status.
fn grpc_status(headers: &HeaderMap) -> Option<(Code, String)> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<u32>()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .map(|v| decode_grpc_message(v.as_bytes()))
        .unwrap_or_default();
    Some((Code::from_u32(code), message))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ca::MeshCa;

    #[test]
    fn addresses_and_names_are_checked() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let token = TokenSource::Static("t".into());
        for bad in ["localhost", ":15012", "host:port", "host:99999"] {
            assert!(
                CaClient::new(
                    bad,
                    "istiod.aks-istio-system.svc",
                    ca.root_pem(),
                    token.clone()
                )
                .is_err(),
                "{bad}"
            );
        }
        assert!(
            CaClient::new("127.0.0.1:15012", "bad name!", ca.root_pem(), token.clone()).is_err()
        );
        assert!(CaClient::new("127.0.0.1:15012", "istiod", "no pem", token.clone()).is_err());
        let c = CaClient::new("[::1]:15012", "istiod", ca.root_pem(), token).unwrap();
        assert_eq!(c.roots_pem(), ca.root_pem());
    }

    #[test]
    fn chains_are_checked_against_roots_and_identity() {
        let ca = MeshCa::generate("cluster.local").unwrap();
        let other = MeshCa::generate("cluster.local").unwrap();
        let id = SpiffeId::new("cluster.local", "default", "sleep").unwrap();
        let client = CaClient::new(
            "127.0.0.1:1",
            "istiod",
            ca.root_pem(),
            TokenSource::Static(String::new()),
        )
        .unwrap();
        let good = ca.issue(&id, Duration::from_secs(600)).unwrap();
        let chain = vec![good.cert_chain_pem.clone(), ca.root_pem().to_string()];
        let cert = client.check_chain(&chain, &id, &good.key_pem).unwrap();
        assert_eq!(
            cert.cert_chain_pem.trim_end(),
            good.cert_chain_pem.trim_end()
        );
        // Another identity, another CA, an empty chain: refused.
        let wrong = SpiffeId::new("cluster.local", "default", "other").unwrap();
        assert!(client.check_chain(&chain, &wrong, &good.key_pem).is_err());
        let foreign = other.issue(&id, Duration::from_secs(600)).unwrap();
        assert!(
            client
                .check_chain(&[foreign.cert_chain_pem], &id, &foreign.key_pem)
                .is_err()
        );
        assert!(client.check_chain(&[], &id, &good.key_pem).is_err());
    }

    #[tokio::test]
    async fn token_files_are_reread() {
        let dir = std::env::temp_dir().join(format!("istioca-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("istio-token");
        std::fs::write(&path, "first\n").unwrap();
        let source = TokenSource::File(path.clone());
        assert_eq!(source.token().await.unwrap(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(source.token().await.unwrap(), "second");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(source.token().await, Err(CaError::Token { .. })));
    }
}
