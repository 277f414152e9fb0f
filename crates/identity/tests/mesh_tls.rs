//! ISTIO_MUTUAL handshakes between `IdentityHandle` configs over an in-memory pipe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use egress_identity::{IdentityHandle, MeshCa, SpiffeId};
use support::{handshake, leaf_der};

const TTL: Duration = Duration::from_secs(3600);
const SIDECAR_SNI: &str = "outbound_.80_.cnn_.istio-egressgateway.istio-system.svc.cluster.local";

fn gw_id() -> SpiffeId {
    SpiffeId::new(
        "cluster.local",
        "istio-system",
        "istio-egressgateway-service-account",
    )
    .unwrap()
}

fn sleep_id() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "sleep").unwrap()
}

fn handle(ca: &MeshCa, id: &SpiffeId) -> IdentityHandle {
    IdentityHandle::new(ca.issue(id, TTL).unwrap(), ca.root_pem()).unwrap()
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

#[tokio::test]
async fn mesh_peers_accept_each_other_and_see_spiffe_ids() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    let sleep = handle(&ca, &sleep_id());
    let server = gw.server_config(&[], alpn()).unwrap();
    for sni in [SIDECAR_SNI, "edition.cnn.com"] {
        let client = sleep.client_config(&[gw_id().to_string()], alpn()).unwrap();
        let (s, c) = handshake(server.clone(), client, sni).await;
        let s = s.unwrap();
        let c = c.unwrap();
        assert_eq!(s.peer_spiffe, Some(sleep_id().to_string()));
        assert_eq!(s.sni.as_deref(), Some(sni));
        assert_eq!(s.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(c.peer_spiffe, Some(gw_id().to_string()));
    }
}

#[tokio::test]
async fn server_allowed_sans_are_enforced() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    let sleep = handle(&ca, &sleep_id());
    let client = || sleep.client_config(&[], alpn()).unwrap();

    let allowed = gw.server_config(&[sleep_id().to_string()], alpn()).unwrap();
    let (s, c) = handshake(allowed, client(), SIDECAR_SNI).await;
    assert_eq!(s.unwrap().peer_spiffe, Some(sleep_id().to_string()));
    c.unwrap();

    let other = gw
        .server_config(
            &["spiffe://cluster.local/ns/default/sa/other".to_string()],
            alpn(),
        )
        .unwrap();
    let (s, c) = handshake(other, client(), SIDECAR_SNI).await;
    let err = s.unwrap_err();
    assert!(err.contains("do not include"), "{err}");
    assert!(c.is_err());
}

#[tokio::test]
async fn client_expected_sans_are_enforced() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    let sleep = handle(&ca, &sleep_id());
    let server = gw.server_config(&[], alpn()).unwrap();
    let client = sleep
        .client_config(
            &["spiffe://cluster.local/ns/istio-system/sa/someone-else".to_string()],
            alpn(),
        )
        .unwrap();
    let (s, c) = handshake(server, client, SIDECAR_SNI).await;
    let err = c.unwrap_err();
    assert!(err.contains("do not include"), "{err}");
    assert!(s.is_err());
}

#[tokio::test]
async fn certificates_of_another_ca_are_rejected() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let rogue = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    // A client with a rogue certificate for the right id, trusting the real root.
    let impostor =
        IdentityHandle::new(rogue.issue(&sleep_id(), TTL).unwrap(), ca.root_pem()).unwrap();
    let (s, c) = handshake(
        gw.server_config(&[], alpn()).unwrap(),
        impostor.client_config(&[], alpn()).unwrap(),
        SIDECAR_SNI,
    )
    .await;
    assert!(s.is_err());
    assert!(c.is_err());

    // A rogue server with the gateway's id, seen by an honest client.
    let rogue_gw =
        IdentityHandle::new(rogue.issue(&gw_id(), TTL).unwrap(), rogue.root_pem()).unwrap();
    let sleep = handle(&ca, &sleep_id());
    let (s, c) = handshake(
        rogue_gw.server_config(&[], alpn()).unwrap(),
        sleep.client_config(&[gw_id().to_string()], alpn()).unwrap(),
        SIDECAR_SNI,
    )
    .await;
    let err = c.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(s.is_err());
}

#[tokio::test]
async fn unconstrained_server_accepts_only_its_trust_domain() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    let foreign = SpiffeId::new("other.domain", "default", "sleep").unwrap();
    let stranger = handle(&ca, &foreign);
    let (s, c) = handshake(
        gw.server_config(&[], alpn()).unwrap(),
        stranger.client_config(&[], alpn()).unwrap(),
        SIDECAR_SNI,
    )
    .await;
    let err = s.unwrap_err();
    assert!(err.contains("spiffe://cluster.local/"), "{err}");
    assert!(c.is_err());
}

#[tokio::test]
async fn rotation_swaps_the_served_certificate_without_new_configs() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&ca, &gw_id());
    let sleep = handle(&ca, &sleep_id());
    let server = gw.server_config(&[], alpn()).unwrap();
    let client = sleep.client_config(&[], alpn()).unwrap();

    let first = gw.current();
    let (s, c) = handshake(server.clone(), client.clone(), SIDECAR_SNI).await;
    s.unwrap();
    assert_eq!(c.unwrap().peer_leaf, Some(leaf_der(&first.cert_chain_pem)));

    let next = ca.issue(&gw_id(), TTL).unwrap();
    gw.rotate(next.clone()).unwrap();
    let sleep_next = ca.issue(&sleep_id(), TTL).unwrap();
    sleep.rotate(sleep_next.clone()).unwrap();
    // A fresh client config, so no session is resumed and the certificate is sent again.
    let fresh_client = sleep.client_config(&[], alpn()).unwrap();
    let (s, c) = handshake(server.clone(), fresh_client, SIDECAR_SNI).await;
    assert_eq!(
        s.unwrap().peer_leaf,
        Some(leaf_der(&sleep_next.cert_chain_pem))
    );
    let c = c.unwrap();
    assert_eq!(c.peer_leaf, Some(leaf_der(&next.cert_chain_pem)));
    assert_ne!(c.peer_leaf, Some(leaf_der(&first.cert_chain_pem)));
}

#[tokio::test]
async fn trust_bundle_updates_apply_to_existing_configs() {
    let old = MeshCa::generate("cluster.local").unwrap();
    let new = MeshCa::generate("cluster.local").unwrap();
    let gw = handle(&old, &gw_id());
    let newcomer = IdentityHandle::new(
        new.issue(&sleep_id(), TTL).unwrap(),
        &format!("{}{}", old.root_pem(), new.root_pem()),
    )
    .unwrap();
    let server = gw.server_config(&[], alpn()).unwrap();
    let (s, _) = handshake(
        server.clone(),
        newcomer.client_config(&[], alpn()).unwrap(),
        SIDECAR_SNI,
    )
    .await;
    assert!(s.is_err());

    gw.set_roots(&format!("{}{}", old.root_pem(), new.root_pem()))
        .unwrap();
    assert!(gw.roots_pem().contains(new.root_pem().trim()));
    let (s, c) = handshake(
        server,
        newcomer.client_config(&[], alpn()).unwrap(),
        SIDECAR_SNI,
    )
    .await;
    assert_eq!(s.unwrap().peer_spiffe, Some(sleep_id().to_string()));
    c.unwrap();
}

#[test]
fn handle_rejects_bad_input() {
    let ca = MeshCa::generate("cluster.local").unwrap();
    let cert = ca.issue(&sleep_id(), TTL).unwrap();
    assert!(IdentityHandle::new(cert.clone(), "not pem").is_err());
    let mut mismatched = cert.clone();
    mismatched.key_pem = ca.issue(&sleep_id(), TTL).unwrap().key_pem;
    assert!(matches!(
        IdentityHandle::new(mismatched.clone(), ca.root_pem()),
        Err(egress_identity::Error::KeyMismatch)
    ));
    let h = IdentityHandle::new(cert, ca.root_pem()).unwrap();
    assert!(h.rotate(mismatched).is_err());
    assert!(h.set_roots("").is_err());
}

#[test]
fn handles_and_cas_are_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<IdentityHandle>();
    assert_send_sync::<MeshCa>();
    assert_send_sync::<egress_identity::WorkloadCert>();
}
