//! Certificate revocation lists in DestinationRule origination configs
//! ([`client_config_checked`]): a revoked server certificate is refused, an unrelated entry
//! changes nothing, a chain no CRL covers fails (Envoy's default), an expired CRL fails, and
//! the `subjectAltNames` path checks revocation too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use egress_identity::{
    MeshCa, RootSource, WorkloadCert, client_config_checked, parse_crls, server_config_from_pem,
};
use support::handshake;

const TTL: Duration = Duration::from_secs(3600);
const NAME: &str = "server.default.svc";

fn in_an_hour() -> SystemTime {
    SystemTime::now() + TTL
}

fn ca() -> MeshCa {
    MeshCa::generate("public.test").unwrap()
}

fn issue(ca: &MeshCa, name: &str) -> WorkloadCert {
    ca.issue_server(&[name.to_string()], TTL).unwrap()
}

fn serving(cert: &WorkloadCert) -> Arc<rustls::ServerConfig> {
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

fn client(ca: &MeshCa, crl: Option<&str>, sans: &[&str]) -> Arc<rustls::ClientConfig> {
    let roots = RootSource::Pem(ca.root_pem().to_owned());
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    client_config_checked(&roots, crl, &sans, None, vec![]).unwrap()
}

#[tokio::test]
async fn a_revoked_server_certificate_is_refused() {
    let ca = ca();
    let server = issue(&ca, NAME);
    let crl = ca
        .revocation_list(&[&server.cert_chain_pem], in_an_hour())
        .unwrap();
    let (_, c) = handshake(serving(&server), client(&ca, Some(&crl), &[]), NAME).await;
    let err = c.unwrap_err();
    assert!(err.contains("Revoked"), "{err}");

    // Without the CRL the same certificate is accepted.
    let (s, c) = handshake(serving(&server), client(&ca, None, &[]), NAME).await;
    s.unwrap();
    c.unwrap();
}

#[tokio::test]
async fn a_crl_revoking_another_certificate_changes_nothing() {
    let ca = ca();
    let server = issue(&ca, NAME);
    let unused = issue(&ca, NAME);
    let crl = ca
        .revocation_list(&[&unused.cert_chain_pem], in_an_hour())
        .unwrap();
    let (s, c) = handshake(serving(&server), client(&ca, Some(&crl), &[]), NAME).await;
    s.unwrap();
    c.unwrap();
}

#[tokio::test]
async fn a_chain_no_crl_covers_is_refused() {
    // Envoy checks every certificate of the chain once a CRL is configured: a CRL of
    // another CA leaves the server certificate's status unknown, and that fails.
    let ca = ca();
    let other = self::ca();
    let server = issue(&ca, NAME);
    let crl = other.revocation_list(&[], in_an_hour()).unwrap();
    let (_, c) = handshake(serving(&server), client(&ca, Some(&crl), &[]), NAME).await;
    let err = c.unwrap_err();
    assert!(err.contains("UnknownRevocationStatus"), "{err}");
}

#[tokio::test]
async fn an_expired_crl_is_refused() {
    let ca = ca();
    let server = issue(&ca, NAME);
    // Issued a minute ago, due for an update half a minute ago.
    let due = SystemTime::now() - Duration::from_secs(30);
    let crl = ca.revocation_list(&[], due).unwrap();
    let (_, c) = handshake(serving(&server), client(&ca, Some(&crl), &[]), NAME).await;
    let err = c.unwrap_err();
    assert!(err.contains("revocation list expired"), "{err}");
}

#[tokio::test]
async fn subject_alt_names_are_checked_after_revocation() {
    let ca = ca();
    let server = issue(&ca, "*.cnn.com");
    let sans = ["edition.cnn.com"];
    let unrelated = ca
        .revocation_list(&[&issue(&ca, NAME).cert_chain_pem], in_an_hour())
        .unwrap();
    // The SAN decides, not the name connected to.
    let (s, c) = handshake(
        serving(&server),
        client(&ca, Some(&unrelated), &sans),
        "unrelated.example",
    )
    .await;
    s.unwrap();
    c.unwrap();
    let (_, c) = handshake(
        serving(&server),
        client(&ca, Some(&unrelated), &["edition.bbc.com"]),
        "edition.cnn.com",
    )
    .await;
    assert!(c.unwrap_err().contains("edition.bbc.com"));

    let revoking = ca
        .revocation_list(&[&server.cert_chain_pem], in_an_hour())
        .unwrap();
    let (_, c) = handshake(
        serving(&server),
        client(&ca, Some(&revoking), &sans),
        "unrelated.example",
    )
    .await;
    let err = c.unwrap_err();
    assert!(err.contains("Revoked"), "{err}");
}

#[test]
fn crl_pem_errors_name_the_input() {
    let roots = RootSource::Pem(ca().root_pem().to_owned());
    let err = client_config_checked(&roots, Some("garbage"), &[], None, vec![]).unwrap_err();
    assert!(err.to_string().contains("CA CRL"), "{err}");
    let crl = ca().revocation_list(&[], in_an_hour()).unwrap();
    assert_eq!(parse_crls(&crl, "CA CRL").unwrap().len(), 1);
}
