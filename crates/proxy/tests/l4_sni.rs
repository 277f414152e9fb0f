//! ClientHello inspection: SNI and ALPN from real rustls ClientHellos, split across records
//! and reads, non-TLS bytes, garbage, and Envoy's server-name matching order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use egress_proxy::sni::{self, ClientHello, Parse, PeekError, Rewind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first flight of a rustls client connecting to `name` offering `alpn`.
fn client_hello_bytes(name: &str, alpn: &[&str]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Re-frames a single-record ClientHello into records of at most `chunk` payload bytes.
fn split_records(hello: &[u8], chunk: usize) -> Vec<u8> {
    assert_eq!(hello[0], 22);
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    let payload = &hello[5..5 + len];
    let mut out = Vec::new();
    for piece in payload.chunks(chunk) {
        out.extend_from_slice(&[22, hello[1], hello[2]]);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn hello(sni: Option<&str>, alpn: &[&str]) -> Parse {
    Parse::Hello(ClientHello {
        sni: sni.map(str::to_owned),
        alpn: alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
    })
}

#[test]
fn parses_sni_and_alpn() {
    let bytes = client_hello_bytes("Edition.CNN.com", &["h2", "http/1.1"]);
    assert_eq!(
        sni::parse(&bytes),
        hello(Some("edition.cnn.com"), &["h2", "http/1.1"])
    );
}

#[test]
fn every_prefix_is_incomplete() {
    let bytes = client_hello_bytes("edition.cnn.com", &[]);
    for n in 0..bytes.len() {
        assert_eq!(
            sni::parse(&bytes[..n]),
            Parse::Incomplete,
            "prefix of {n} bytes"
        );
    }
    assert_eq!(sni::parse(&bytes), hello(Some("edition.cnn.com"), &[]));
}

#[test]
fn split_across_records() {
    let bytes = split_records(&client_hello_bytes("edition.cnn.com", &["h2"]), 7);
    assert!(bytes.len() > 5 * 20, "many records");
    for n in 0..bytes.len() {
        assert_eq!(
            sni::parse(&bytes[..n]),
            Parse::Incomplete,
            "prefix of {n} bytes"
        );
    }
    assert_eq!(sni::parse(&bytes), hello(Some("edition.cnn.com"), &["h2"]));
}

#[test]
fn ip_address_server_name_sends_no_sni() {
    let bytes = client_hello_bytes("127.0.0.1", &[]);
    assert_eq!(sni::parse(&bytes), hello(None, &[]));
}

#[test]
fn not_tls() {
    assert_eq!(sni::parse(b"GET / HTTP/1.1\r\n"), Parse::NotTls);
    assert_eq!(sni::parse(b"G"), Parse::NotTls);
    assert_eq!(sni::parse(&[22, 9]), Parse::NotTls, "bad record version");
    assert_eq!(sni::parse(&[22, 3, 1, 0, 0]), Parse::NotTls, "empty record");
    assert_eq!(
        sni::parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
        Parse::NotTls,
        "ServerHello"
    );
    assert_eq!(sni::parse(&[22, 3, 1, 0, 9, 1, 2, 0, 0]), Parse::TooLarge);
}

#[test]
fn garbage_never_panics() {
    let base = client_hello_bytes("edition.cnn.com", &["h2", "http/1.1"]);
    // A small deterministic generator: flip bytes of a real hello and truncate it.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5000 {
        let mut bytes = base.clone();
        for _ in 0..(next() % 8) {
            let i = (next() as usize) % bytes.len();
            bytes[i] = next() as u8;
        }
        let cut = (next() as usize) % (bytes.len() + 1);
        let _ = sni::parse(&bytes[..cut]);
    }
    // Random bytes after a valid record header.
    for _ in 0..2000 {
        let mut bytes = vec![22, 3, 1, 0, 64];
        bytes.extend((0..64).map(|_| next() as u8));
        let _ = sni::parse(&bytes);
    }
}

#[test]
fn server_name_matching_follows_envoy() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let chains = [
        names(&["*.cnn.com"]),
        names(&["edition.cnn.com"]),
        names(&[]),
    ];
    let pick = |sni: Option<&str>| sni::select_chain(chains.iter().map(Vec::as_slice), sni);
    assert_eq!(
        pick(Some("edition.cnn.com")),
        Some(1),
        "exact beats wildcard"
    );
    assert_eq!(pick(Some("EDITION.cnn.COM")), Some(1), "case-insensitive");
    assert_eq!(pick(Some("www.cnn.com")), Some(0));
    assert_eq!(
        pick(Some("a.b.cnn.com")),
        Some(0),
        "wildcard covers deeper names"
    );
    assert_eq!(
        pick(Some("cnn.com")),
        Some(2),
        "*.cnn.com needs a label; catch-all"
    );
    assert_eq!(pick(None), Some(2));
    let strict = [names(&["edition.cnn.com"])];
    assert_eq!(
        sni::select_chain(strict.iter().map(Vec::as_slice), Some("other.com")),
        None
    );
    assert_eq!(
        sni::select_chain(strict.iter().map(Vec::as_slice), None),
        None
    );
    let longer = [names(&["*.com"]), names(&["*.cnn.com"])];
    assert_eq!(
        sni::select_chain(longer.iter().map(Vec::as_slice), Some("x.cnn.com")),
        Some(1)
    );
}

#[tokio::test]
async fn reads_a_hello_dribbled_over_many_writes_and_replays_it() {
    let bytes = split_records(&client_hello_bytes("edition.cnn.com", &[]), 100);
    let (mut client, mut server) = tokio::io::duplex(64);
    let sent = bytes.clone();
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(3) {
            client.write_all(piece).await.unwrap();
        }
        client.write_all(b"after").await.unwrap();
        client
    });
    let peeked = sni::read_client_hello(&mut server, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(peeked.sni(), Some("edition.cnn.com"));
    let mut client = writer.await.unwrap();
    client.shutdown().await.unwrap();
    let mut replay = Rewind::new(peeked.buffered, server);
    let mut all = Vec::new();
    replay.read_to_end(&mut all).await.unwrap();
    let mut expected = bytes;
    expected.extend_from_slice(b"after");
    assert_eq!(all, expected, "nothing lost, nothing reordered");
}

#[tokio::test]
async fn plaintext_is_no_sni_and_eof_is_closed() {
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(b"SSH-2.0-x\r\n").await.unwrap();
    let peeked = sni::read_client_hello(&mut server, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(peeked.hello, None);
    assert_eq!(peeked.buffered, b"SSH-2.0-x\r\n");

    let (client, mut server) = tokio::io::duplex(64);
    drop(client);
    let err = sni::read_client_hello(&mut server, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, PeekError::Closed), "{err}");

    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(&[22, 3, 1]).await.unwrap();
    let err = sni::read_client_hello(&mut server, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(err, PeekError::Timeout), "{err}");
}
