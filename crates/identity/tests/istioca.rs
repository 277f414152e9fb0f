//! Istio's CA API end to end on loopback with real TLS: the server signs for the identity the
//! token vouches for, the client verifies the chain, refusals carry Istio's gRPC statuses, and
//! the rotation task replaces a handle's certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use egress_identity::istioca::{
    CaClient, CaError, CaServer, CaServerOptions, Code, DEFAULT_SERVER_NAME, LocalTokenIssuer,
    RotationOptions, TokenSource, spawn_rotation,
};
use egress_identity::{IdentityHandle, MeshCa, SpiffeId, leaf_info};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ISS: &str = "https://kubernetes.default.svc.cluster.local";
const HOUR: Duration = Duration::from_secs(3600);

struct Ca {
    ca: Arc<MeshCa>,
    issuer: LocalTokenIssuer,
    addr: String,
    _stop: oneshot::Sender<()>,
}

impl Ca {
    async fn start() -> Ca {
        let ca = Arc::new(MeshCa::generate("cluster.local").unwrap());
        let issuer = LocalTokenIssuer::generate(ISS).unwrap();
        let server = CaServer::new(
            Arc::clone(&ca),
            Arc::new(issuer.reviewer()),
            CaServerOptions::default(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Ca {
            ca,
            issuer,
            addr,
            _stop: stop,
        }
    }

    fn client(&self, token: TokenSource) -> CaClient {
        CaClient::new(&self.addr, DEFAULT_SERVER_NAME, self.ca.root_pem(), token).unwrap()
    }

    fn token(&self, ns: &str, sa: &str) -> TokenSource {
        TokenSource::Static(self.issuer.mint(ns, sa, &["istio-ca"], HOUR).unwrap())
    }
}

fn sleep_id() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "sleep").unwrap()
}

#[tokio::test]
async fn issues_a_certificate_for_the_token_identity() {
    let ca = Ca::start().await;
    let client = ca.client(ca.token("default", "sleep"));
    let cert = client
        .create_certificate(&sleep_id(), Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(
        cert.spiffe_id().as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/sleep")
    );
    let chain = cert.chain_der().unwrap();
    // The root is the trust bundle's, not part of the served chain.
    assert_eq!(chain.len(), 1);
    let info = leaf_info(&chain[0]).unwrap();
    assert_eq!(
        info.uri_sans,
        vec!["spiffe://cluster.local/ns/default/sa/sleep"]
    );
    assert!(!info.is_ca);
    assert_eq!(cert.lifetime(), Duration::from_secs(7200 + 60));
    // The certificate serves in ISTIO_MUTUAL with the mesh root.
    let handle = IdentityHandle::new(cert, ca.ca.root_pem()).unwrap();
    assert!(handle.server_config(&[], vec![]).is_ok());
}

#[tokio::test]
async fn token_files_are_read_on_each_call() {
    let ca = Ca::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("istio-token");
    std::fs::write(
        &path,
        ca.issuer.mint("default", "sleep", &["api"], HOUR).unwrap(),
    )
    .unwrap();
    let client = ca.client(TokenSource::File(path.clone()));
    let err = client
        .create_certificate(&sleep_id(), HOUR)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    // The kubelet rotates the projected token: the next call uses the new one.
    std::fs::write(
        &path,
        ca.issuer
            .mint("default", "sleep", &["istio-ca"], HOUR)
            .unwrap(),
    )
    .unwrap();
    assert!(client.create_certificate(&sleep_id(), HOUR).await.is_ok());
}

async fn refusal(ca: &Ca, token: TokenSource, id: &SpiffeId, ttl: Duration) -> (Code, String) {
    match ca.client(token).create_certificate(id, ttl).await {
        Err(CaError::Status { code, message }) => (code, message),
        other => panic!("expected a gRPC refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_as_unauthenticated() {
    let ca = Ca::start().await;
    let authn = (
        Code::Unauthenticated,
        "request authenticate failure".to_string(),
    );
    let id = sleep_id();
    let wrong_audience = TokenSource::Static(
        ca.issuer
            .mint(
                "default",
                "sleep",
                &["https://kubernetes.default.svc"],
                HOUR,
            )
            .unwrap(),
    );
    assert_eq!(refusal(&ca, wrong_audience, &id, HOUR).await, authn);
    let expired = TokenSource::Static(
        ca.issuer
            .mint_at(
                "default",
                "sleep",
                &["istio-ca"],
                SystemTime::now() - 3 * HOUR,
                HOUR,
            )
            .unwrap(),
    );
    assert_eq!(refusal(&ca, expired, &id, HOUR).await, authn);
    let forger = LocalTokenIssuer::generate(ISS).unwrap();
    let bad_signature = TokenSource::Static(
        forger
            .mint("default", "sleep", &["istio-ca"], HOUR)
            .unwrap(),
    );
    assert_eq!(refusal(&ca, bad_signature, &id, HOUR).await, authn);
    let none = TokenSource::Static(String::new());
    assert_eq!(refusal(&ca, none, &id, HOUR).await, authn);
    let garbage = TokenSource::Static("not-a-jwt".into());
    assert_eq!(refusal(&ca, garbage, &id, HOUR).await, authn);
}

#[tokio::test]
async fn a_csr_for_another_identity_is_an_invalid_argument() {
    let ca = Ca::start().await;
    // The token is sleep's; the CSR asks for the ingress gateway's identity.
    let other = SpiffeId::new("cluster.local", "aks-istio-ingress", "gateway").unwrap();
    let (code, message) = refusal(&ca, ca.token("default", "sleep"), &other, HOUR).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "CSR signing error (invalid certificate: the CSR requests the SAN \
         spiffe://cluster.local/ns/aks-istio-ingress/sa/gateway but the caller's identity is \
         spiffe://cluster.local/ns/default/sa/sleep)"
    );
}

#[tokio::test]
async fn a_ttl_over_the_maximum_is_an_invalid_argument() {
    let ca = Ca::start().await;
    let ttl = Duration::from_secs(91 * 24 * 3600);
    let (code, message) = refusal(&ca, ca.token("default", "sleep"), &sleep_id(), ttl).await;
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        "CSR signing error (requested TTL 2184h0m0s is greater than the max allowed TTL 2160h0m0s)"
    );
}

#[tokio::test]
async fn the_ca_is_verified_with_the_mesh_roots_and_its_name() {
    let ca = Ca::start().await;
    let token = ca.token("default", "sleep");
    // Another mesh's root: the handshake fails before any token is sent.
    let stranger = MeshCa::generate("cluster.local").unwrap();
    let client = CaClient::new(
        &ca.addr,
        DEFAULT_SERVER_NAME,
        stranger.root_pem(),
        token.clone(),
    )
    .unwrap();
    let err = client
        .create_certificate(&sleep_id(), HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, CaError::Handshake { .. }), "{err}");
    // The right root but another name.
    let client =
        CaClient::new(&ca.addr, "istiod.istio-system.svc", ca.ca.root_pem(), token).unwrap();
    let err = client
        .create_certificate(&sleep_id(), HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, CaError::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn rotation_replaces_the_handle_certificate() {
    let ca = Ca::start().await;
    let client = Arc::new(ca.client(ca.token("default", "sleep")));
    // A short lifetime (plus the minute of backdating): due for renewal at once.
    let first = client
        .create_certificate(&sleep_id(), Duration::from_secs(10))
        .await
        .unwrap();
    let handle = Arc::new(IdentityHandle::new(first.clone(), ca.ca.root_pem()).unwrap());
    let rotation = spawn_rotation(
        Arc::clone(&client),
        Arc::clone(&handle),
        sleep_id(),
        RotationOptions {
            ttl: HOUR,
            min_interval: HOUR,
            ..RotationOptions::default()
        },
    );
    let mut status = rotation.status();
    let done = status.wait_for(|s| s.rotations >= 1).await.unwrap().clone();
    assert_eq!(done.failures, 0);
    let current = handle.current();
    assert_ne!(*current, first);
    assert_eq!(current.lifetime(), HOUR + Duration::from_secs(60));
    assert_eq!(handle.spiffe_id(), Some(sleep_id().to_string()));
}

#[tokio::test]
async fn failed_renewals_keep_the_old_certificate_and_retry() {
    let ca = Ca::start().await;
    let good = ca
        .client(ca.token("default", "sleep"))
        .create_certificate(&sleep_id(), Duration::from_secs(10))
        .await
        .unwrap();
    let handle = Arc::new(IdentityHandle::new(good.clone(), ca.ca.root_pem()).unwrap());
    let refused = Arc::new(ca.client(TokenSource::Static("expired".into())));
    let rotation = spawn_rotation(
        refused,
        Arc::clone(&handle),
        sleep_id(),
        RotationOptions {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            ..RotationOptions::default()
        },
    );
    let mut status = rotation.status();
    let seen = status.wait_for(|s| s.failures >= 2).await.unwrap().clone();
    assert_eq!(seen.rotations, 0);
    assert!(
        seen.last_error
            .as_deref()
            .is_some_and(|e| e.contains("request authenticate failure")),
        "{seen:?}"
    );
    assert_eq!(*handle.current(), good);
    rotation.stop();
}
