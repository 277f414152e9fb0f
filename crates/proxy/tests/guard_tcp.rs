//! The resolved-address guard on a TLS passthrough chain: a DNS answer pointing at the cloud
//! metadata address closes the connection without connecting, logged `UH` with the refusal in
//! `%CONNECTION_TERMINATION_DETAILS%`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod guard_support;
mod l4_support;

use std::net::Ipv4Addr;

use egress_snapshot::snapshot::{AccessLog, Discovery};
use guard_support::StubDns;
use l4_support::*;

#[tokio::test]
async fn passthrough_to_a_refused_answer_closes_with_uh() {
    let dns = StubDns::start(&[("edition.cnn.com", Ipv4Addr::new(169, 254, 169, 254))])
        .await
        .unwrap();
    let c = cluster(
        "outbound|443||edition.cnn.com",
        Discovery::StrictDns {
            hostname: "edition.cnn.com".into(),
            port: 443,
        },
    );
    let listener = chains_listener(
        "0.0.0.0_8443",
        vec![passthrough(&["edition.cnn.com"], &c.name)],
    );
    let mut snap = snapshot(1, vec![listener], vec![c]);
    snap.access_log = AccessLog {
        format: Some(
            "%RESPONSE_FLAGS% %CONNECTION_TERMINATION_DETAILS% %UPSTREAM_HOST% %REQUESTED_SERVER_NAME%"
                .into(),
        ),
        ..AccessLog::default()
    };
    let mut options = options();
    options.upstream.hosts = vec![];
    options.upstream.dns_server = Some(dns.addr);
    let h = Harness::start(snap, options).await;
    let (mut stream, _) = hello_conn(h.addr("0.0.0.0_8443"), "edition.cnn.com").await;
    assert!(closed_without_data(&mut stream).await);
    assert_eq!(
        h.lines(1).await[0],
        "UH upstream_address_refused{edition.cnn.com->169.254.169.254} - edition.cnn.com"
    );
    assert!(dns.queries() >= 1);
}
