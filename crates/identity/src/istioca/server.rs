//! The CA side of `CreateCertificate`: a TLS HTTP/2 server that authenticates the caller's
//! bearer token with a [`TokenReviewer`], signs the CSR with the [`MeshCa`] for the caller's
//! SPIFFE id, and answers with the chain (leaf, then root), or with Istio's gRPC status and
//! message for each refusal.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::proto::{
    CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse, MAX_MESSAGE_LEN,
    frame, unframe,
};
use super::{CaError, Code, DEFAULT_SERVER_NAME, encode_grpc_message};
use crate::ca::MeshCa;
use crate::pem::{parse_certs, parse_key};
use crate::spiffe::SpiffeId;

/// A Kubernetes service account, as a reviewed token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ServiceAccount {
    /// Parses a token subject `system:serviceaccount:<namespace>:<name>`.
    pub fn from_subject(sub: &str) -> Option<ServiceAccount> {
        let rest = sub.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        if namespace.is_empty() || name.is_empty() || name.contains(':') {
            return None;
        }
        Some(ServiceAccount {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// What a [`TokenReviewer`] answers: the token's service account, or why it was refused (logged
/// by the server; the caller only sees Istio's opaque "request authenticate failure").
pub type ReviewFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ServiceAccount, String>> + Send + 'a>>;

/// Authenticates bearer tokens (Kubernetes' TokenReview in a real cluster, the local cluster's
/// own signature check in `egress up`).
pub trait TokenReviewer: Send + Sync + 'static {
    /// Reviews one token.
    fn review<'a>(&'a self, token: &'a str) -> ReviewFuture<'a>;
}

/// How the server signs.
#[derive(Debug, Clone)]
pub struct CaServerOptions {
    /// The trust domain of the identities it certifies.
    pub trust_domain: String,
    /// The DNS names of its serving certificate (clients verify one of them).
    pub server_names: Vec<String>,
    /// The lifetime of certificates when the request asks for none (Istio's
    /// `DEFAULT_WORKLOAD_CERT_TTL`, 24h).
    pub default_ttl: Duration,
    /// The longest lifetime granted (Istio's `MAX_WORKLOAD_CERT_TTL`, 90 days).
    pub max_ttl: Duration,
}

impl Default for CaServerOptions {
    fn default() -> Self {
        CaServerOptions {
            trust_domain: "cluster.local".to_string(),
            server_names: vec![DEFAULT_SERVER_NAME.to_string()],
            default_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// How long the server's own serving certificate is valid.
const SERVING_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

struct Inner {
    ca: Arc<MeshCa>,
    reviewer: Arc<dyn TokenReviewer>,
    options: CaServerOptions,
}

/// Istio's `IstioCertificateService` over TLS.
pub struct CaServer {
    inner: Arc<Inner>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for CaServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaServer")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl CaServer {
    /// A server signing with `ca`, authenticating with `reviewer`, and serving a certificate
    /// of `ca` for `options.server_names`.
    pub fn new(
        ca: Arc<MeshCa>,
        reviewer: Arc<dyn TokenReviewer>,
        options: CaServerOptions,
    ) -> Result<CaServer, CaError> {
        let serving = ca.issue_server(&options.server_names, SERVING_CERT_TTL)?;
        let chain = parse_certs(&serving.cert_chain_pem, "CA serving certificate")?;
        let key = parse_key(&serving.key_pem, "CA serving key")?;
        let mut config = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(crate::Error::Tls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(crate::Error::Tls)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(CaServer {
            inner: Arc::new(Inner {
                ca,
                reviewer,
                options,
            }),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Serves connections from `listener` until `shutdown` completes; then stops accepting
    /// and closes the connections still open.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("CA server accept: {e}");
                    continue;
                }
            };
            let acceptor = self.acceptor.clone();
            let inner = Arc::clone(&self.inner);
            connections.spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%peer, "CA server TLS handshake: {e}");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req| {
                    let inner = Arc::clone(&inner);
                    async move { Ok::<_, Infallible>(handle(&inner, req).await) }
                });
                if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, "CA server connection: {e}");
                }
            });
        }
        connections.shutdown().await;
    }
}

/// A unary gRPC response body: at most one data frame, then trailers.
pub(crate) struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

fn grpc_headers(builder: http::response::Builder) -> http::response::Builder {
    builder
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/grpc")
}

/// A "trailers-only" response: the status in the headers, no body.
fn refuse(code: Code, message: &str) -> Response<GrpcBody> {
    let mut response = Response::new(GrpcBody {
        data: None,
        trailers: None,
    });
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code.as_u32()));
    if let Ok(v) = HeaderValue::from_str(&encode_grpc_message(message)) {
        headers.insert("grpc-message", v);
    }
    response
}

fn answer(message: &IstioCertificateResponse) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(0u32));
    let body = GrpcBody {
        data: Some(frame(message)),
        trailers: Some(trailers),
    };
    grpc_headers(Response::builder())
        .body(body)
        .unwrap_or_else(|_| refuse(Code::Internal, "building the response failed"))
}

/// The bearer token of `authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn handle(inner: &Inner, req: Request<Incoming>) -> Response<GrpcBody> {
    if req.uri().path() != CREATE_CERTIFICATE_PATH || req.method() != http::Method::POST {
        return refuse(
            Code::Unimplemented,
            &format!("unknown method {}", req.uri().path()),
        );
    }
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc {
        let mut response = Response::new(GrpcBody {
            data: None,
            trailers: None,
        });
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    let token = bearer(req.headers()).map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_MESSAGE_LEN + 5)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return refuse(Code::Internal, &format!("grpc: error reading request: {e}"));
        }
    };
    let request: IstioCertificateRequest = match unframe(body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                Code::Internal,
                &format!("grpc: error unmarshalling request: {e}"),
            );
        }
    };
    match create_certificate(inner, token.as_deref(), &request).await {
        Ok(chain) => answer(&IstioCertificateResponse { cert_chain: chain }),
        Err((code, message)) => refuse(code, &message),
    }
}

/// Istio's `CreateCertificate`: authenticate, pick the TTL, sign for the caller's identity.
async fn create_certificate(
    inner: &Inner,
    token: Option<&str>,
    request: &IstioCertificateRequest,
) -> Result<Vec<String>, (Code, String)> {
    const AUTHN_FAILURE: &str = "request authenticate failure";
    let unauthenticated = || (Code::Unauthenticated, AUTHN_FAILURE.to_string());
    let Some(token) = token else {
        tracing::warn!("CA request refused: no bearer token");
        return Err(unauthenticated());
    };
    let account = match inner.reviewer.review(token).await {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!("CA request refused: {reason}");
            return Err(unauthenticated());
        }
    };
    let id = SpiffeId::new(
        &inner.options.trust_domain,
        &account.namespace,
        &account.name,
    )
    .map_err(|e| {
        tracing::warn!("CA request refused: {e}");
        unauthenticated()
    })?;
    let ttl = match u64::try_from(request.validity_duration) {
        Ok(secs) if secs > 0 => Duration::from_secs(secs),
        _ => inner.options.default_ttl,
    };
    if ttl > inner.options.max_ttl {
        return Err((
            Code::InvalidArgument,
            format!(
                "CSR signing error (requested TTL {} is greater than the max allowed TTL {})",
                go_duration(ttl),
                go_duration(inner.options.max_ttl)
            ),
        ));
    }
    let leaf = inner
        .ca
        .sign_csr(&request.csr, &id, ttl)
        .map_err(|e| (Code::InvalidArgument, format!("CSR signing error ({e})")))?;
    tracing::debug!(identity = %id, ?ttl, "CA issued a workload certificate");
    Ok(vec![
        format!("{}\n", leaf.trim_end()),
        format!("{}\n", inner.ca.root_pem().trim_end()),
    ])
}

/// A duration as Go prints it (`24h0m0s`, `1m30s`, `45s`), as Istio's messages show TTLs.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn subjects_parse_as_service_accounts() {
        assert_eq!(
            ServiceAccount::from_subject("system:serviceaccount:default:sleep"),
            Some(ServiceAccount {
                namespace: "default".into(),
                name: "sleep".into()
            })
        );
        for bad in [
            "system:serviceaccount:default",
            "system:serviceaccount::sleep",
            "system:serviceaccount:a:b:c",
            "alice",
        ] {
            assert_eq!(ServiceAccount::from_subject(bad), None, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(
            go_duration(Duration::from_secs(90 * 24 * 3600)),
            "2160h0m0s"
        );
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
    }
}
