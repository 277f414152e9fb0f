//! `egress up` serves Istio's CA API: the address is in `<store>/run/ca.addr`, and the client
//! a Pod would use gets a certificate for the service account its token names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use egress_cluster::caserver::{self, TOKEN_KEY_SECRET};
use egress_cluster::controllers::Settings;
use egress_cluster::runtime::RuntimeOptions;
use egress_cluster::up::{self, Hooks, UpOptions};
use egress_identity::istioca::{
    CaClient, CaError, Code, DEFAULT_SERVER_NAME, LocalTokenIssuer, TokenSource,
};
use egress_identity::{SpiffeId, leaf_info};
use egress_store::{ObjectKey, Store};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_certificates_through_the_ca_api() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let options = UpOptions {
        settings: Settings::default(),
        runtime: RuntimeOptions {
            trust_domain: "cluster.local".into(),
            pod_log_dir: dir.path().join("pods"),
            ..RuntimeOptions::default()
        },
        drain_grace: Duration::from_millis(100),
        stand_ins: Vec::new(),
        api: None,
    };
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let hooks = Hooks {
        note: Box::new(|_| {}),
        ready: Some(Box::new(move || {
            let _ = ready_tx.send(());
        })),
    };
    let running = tokio::spawn(up::run(store.clone(), options, hooks, async {
        let _ = stop_rx.await;
    }));
    ready_rx.await.unwrap();

    let addr = std::fs::read_to_string(caserver::addr_path(dir.path())).unwrap();
    let addr = addr.trim();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // The token key is kept next to the mesh CA; a Pod's projected token is signed with it.
    let (ns, name) = TOKEN_KEY_SECRET;
    assert!(
        store
            .get(&ObjectKey::new("", "Secret", Some(ns), name))
            .unwrap()
            .is_some()
    );
    let issuer = caserver::load_or_create_token_issuer(&store).unwrap();
    let ca = egress_cluster::ca::load_or_create(&store, "cluster.local").unwrap();
    let token = issuer
        .mint("default", "sleep", &["istio-ca"], Duration::from_secs(600))
        .unwrap();
    let client = CaClient::new(
        addr,
        DEFAULT_SERVER_NAME,
        ca.root_pem(),
        TokenSource::Static(token),
    )
    .unwrap();
    let id = SpiffeId::new("cluster.local", "default", "sleep").unwrap();
    let cert = client
        .create_certificate(&id, Duration::from_secs(3600))
        .await
        .unwrap();
    let info = leaf_info(&cert.chain_der().unwrap()[0]).unwrap();
    assert_eq!(info.uri_sans, vec![id.to_string()]);

    // A token the cluster did not sign is refused.
    let stranger = LocalTokenIssuer::generate(caserver::TOKEN_ISSUER).unwrap();
    let forged = stranger
        .mint("default", "sleep", &["istio-ca"], Duration::from_secs(600))
        .unwrap();
    let client = CaClient::new(
        addr,
        DEFAULT_SERVER_NAME,
        ca.root_pem(),
        TokenSource::Static(forged),
    )
    .unwrap();
    match client
        .create_certificate(&id, Duration::from_secs(3600))
        .await
    {
        Err(CaError::Status { code, message }) => {
            assert_eq!(code, Code::Unauthenticated);
            assert_eq!(message, "request authenticate failure");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    stop_tx.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(!caserver::addr_path(dir.path()).exists());
}
