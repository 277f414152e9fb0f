//! TLS with user certificates: Gateway SIMPLE/MUTUAL termination and DestinationRule
//! SIMPLE/MUTUAL origination configs against each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use egress_identity::{
    MeshCa, RootSource, WorkloadCert, client_config_simple, client_config_with_sans,
    server_config_from_pem,
};
use support::handshake;

const TTL: Duration = Duration::from_secs(3600);

fn public_ca() -> MeshCa {
    MeshCa::generate("public.test").unwrap()
}

fn server_cert(ca: &MeshCa, name: &str) -> WorkloadCert {
    ca.issue_server(&[name.to_string()], TTL).unwrap()
}

fn simple_server(cert: &WorkloadCert) -> std::sync::Arc<rustls::ServerConfig> {
    server_config_from_pem(
        &cert.cert_chain_pem,
        &cert.key_pem,
        None,
        false,
        &[],
        vec![],
    )
    .unwrap()
}

#[tokio::test]
async fn simple_origination_with_the_ca_as_root() {
    let ca = public_ca();
    let server = simple_server(&server_cert(&ca, "edition.cnn.com"));
    let roots = RootSource::Pem(ca.root_pem().to_string());
    let client = client_config_simple(&roots, None, false, vec![b"http/1.1".to_vec()]).unwrap();
    let (s, c) = handshake(server, client, "edition.cnn.com").await;
    assert_eq!(s.unwrap().sni.as_deref(), Some("edition.cnn.com"));
    c.unwrap();
}

#[tokio::test]
async fn system_roots_plus_extra_root() {
    let ca = public_ca();
    let server = simple_server(&server_cert(&ca, "edition.cnn.com"));
    let roots = RootSource::System {
        extra_pem: Some(ca.root_pem().to_string()),
    };
    let client = client_config_simple(&roots, None, false, vec![]).unwrap();
    let (s, c) = handshake(server, client, "edition.cnn.com").await;
    s.unwrap();
    c.unwrap();
}

#[tokio::test]
async fn wrong_root_or_wrong_name_fails() {
    let ca = public_ca();
    let server = simple_server(&server_cert(&ca, "edition.cnn.com"));
    let wrong = RootSource::Pem(public_ca().root_pem().to_string());
    let client = client_config_simple(&wrong, None, false, vec![]).unwrap();
    let (_, c) = handshake(server.clone(), client, "edition.cnn.com").await;
    assert!(c.unwrap_err().contains("UnknownIssuer"));

    let right = RootSource::Pem(ca.root_pem().to_string());
    let client = client_config_simple(&right, None, false, vec![]).unwrap();
    let (_, c) = handshake(server.clone(), client, "www.example.com").await;
    let err = c.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    let insecure = client_config_simple(&wrong, None, true, vec![]).unwrap();
    let (s, c) = handshake(server, insecure, "www.example.com").await;
    s.unwrap();
    c.unwrap();
}

#[tokio::test]
async fn subject_alt_names_replace_the_sni_check() {
    let ca = public_ca();
    let server = simple_server(&server_cert(&ca, "*.cnn.com"));
    let roots = RootSource::Pem(ca.root_pem().to_string());
    let ok =
        client_config_with_sans(&roots, &["edition.cnn.com".to_string()], None, vec![]).unwrap();
    let (s, c) = handshake(server.clone(), ok, "unrelated.example").await;
    s.unwrap();
    c.unwrap();

    let bad =
        client_config_with_sans(&roots, &["edition.bbc.com".to_string()], None, vec![]).unwrap();
    let (_, c) = handshake(server.clone(), bad, "edition.cnn.com").await;
    let err = c.unwrap_err();
    assert!(err.contains("edition.bbc.com"), "{err}");

    let wrong_root = RootSource::Pem(public_ca().root_pem().to_string());
    let chain_checked =
        client_config_with_sans(&wrong_root, &["edition.cnn.com".to_string()], None, vec![])
            .unwrap();
    let (_, c) = handshake(server, chain_checked, "edition.cnn.com").await;
    assert!(c.unwrap_err().contains("UnknownIssuer"));
}

#[tokio::test]
async fn mutual_termination_and_origination() {
    let ca = public_ca();
    let client_ca = public_ca();
    let cert = server_cert(&ca, "secure.partner.example");
    let client_cert = client_ca
        .issue_server(&["client.mesh.example".to_string()], TTL)
        .unwrap();
    let roots = RootSource::Pem(ca.root_pem().to_string());
    let with_cert = || {
        client_config_simple(
            &roots,
            Some((&client_cert.cert_chain_pem, &client_cert.key_pem)),
            false,
            vec![],
        )
        .unwrap()
    };
    let without_cert = || client_config_simple(&roots, None, false, vec![]).unwrap();
    let server = |optional: bool, sans: &[String]| {
        server_config_from_pem(
            &cert.cert_chain_pem,
            &cert.key_pem,
            Some(client_ca.root_pem()),
            optional,
            sans,
            vec![],
        )
        .unwrap()
    };
    let sni = "secure.partner.example";

    let (s, c) = handshake(server(false, &[]), with_cert(), sni).await;
    s.unwrap();
    c.unwrap();

    let (s, c) = handshake(server(false, &[]), without_cert(), sni).await;
    assert!(s.is_err());
    assert!(c.is_err());

    let (s, c) = handshake(server(true, &[]), without_cert(), sni).await;
    s.unwrap();
    c.unwrap();

    let (s, _) = handshake(
        server(false, &["client.mesh.example".to_string()]),
        with_cert(),
        sni,
    )
    .await;
    s.unwrap();
    let (s, _) = handshake(
        server(false, &["someone.else".to_string()]),
        with_cert(),
        sni,
    )
    .await;
    assert!(s.unwrap_err().contains("someone.else"));

    // A client certificate from the wrong CA is refused.
    let stranger = ca
        .issue_server(&["client.mesh.example".to_string()], TTL)
        .unwrap();
    let client = client_config_simple(
        &roots,
        Some((&stranger.cert_chain_pem, &stranger.key_pem)),
        false,
        vec![],
    )
    .unwrap();
    let (s, _) = handshake(server(false, &[]), client, sni).await;
    assert!(s.is_err());
}

#[test]
fn bad_user_material_is_reported() {
    let ca = public_ca();
    let cert = server_cert(&ca, "a.example");
    let other = server_cert(&ca, "b.example");
    let err = server_config_from_pem(
        &cert.cert_chain_pem,
        &other.key_pem,
        None,
        false,
        &[],
        vec![],
    )
    .unwrap_err();
    assert!(matches!(err, egress_identity::Error::KeyMismatch), "{err}");
    let err = server_config_from_pem("nope", &cert.key_pem, None, false, &[], vec![]).unwrap_err();
    assert!(
        err.to_string().contains("server certificate chain"),
        "{err}"
    );
    let err =
        client_config_simple(&RootSource::Pem(String::new()), None, false, vec![]).unwrap_err();
    assert!(err.to_string().contains("CA certificates"), "{err}");
    assert!(client_config_simple(&RootSource::system(), None, false, vec![]).is_ok());
}
