//! What the loopback servers record, the append-only logs they record into (with waits woken
//! by a `watch` channel, not by polling), and the source-address gate behind `allow_only`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::wait::TimedOut;
use crate::{Error, Result};

/// One HTTP request as an upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Path and query as received (`/politics?x=1`).
    pub path: String,
    /// The `Host` header, or the h2 `:authority` when there is no `Host` header.
    pub host: Option<String>,
    /// All headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: String,
    /// The request body.
    pub body: Bytes,
    /// The client's address (for a proxy in between: the proxy's upstream socket).
    pub peer_addr: SocketAddr,
    /// The address the request arrived on.
    pub local_addr: SocketAddr,
    /// Whether the connection was TLS.
    pub tls: bool,
    /// The SNI the client sent (TLS only).
    pub sni: Option<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One accepted (or refused) connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// The address the connection arrived on.
    pub local_addr: SocketAddr,
    /// Closed immediately because the source was outside the `allow_only` CIDR.
    pub refused: bool,
    /// Whether this is a TLS server.
    pub tls: bool,
    /// SNI sent by the client (TLS only).
    pub sni: Option<String>,
    /// Negotiated ALPN protocol (TLS only).
    pub alpn: Option<String>,
    /// URI and DNS SANs of the client certificate, if one was presented.
    pub peer_sans: Vec<String>,
    /// Why the TLS handshake failed, if it did.
    pub handshake_error: Option<String>,
}

impl ConnectionRecord {
    pub(crate) fn plain(peer_addr: SocketAddr, local_addr: SocketAddr) -> Self {
        ConnectionRecord {
            peer_addr,
            local_addr,
            refused: false,
            tls: false,
            sni: None,
            alpn: None,
            peer_sans: Vec::new(),
            handshake_error: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An append-only log whose length is published on a watch channel.
#[derive(Debug)]
pub(crate) struct Log<T> {
    items: Mutex<Vec<T>>,
    len: watch::Sender<usize>,
}

impl<T: Clone> Log<T> {
    pub(crate) fn new() -> Self {
        Log {
            items: Mutex::new(Vec::new()),
            len: watch::Sender::new(0),
        }
    }

    pub(crate) fn push(&self, item: T) {
        let len = {
            let mut items = lock(&self.items);
            items.push(item);
            items.len()
        };
        self.len.send_replace(len);
    }

    pub(crate) fn snapshot(&self) -> Vec<T> {
        lock(&self.items).clone()
    }

    /// Waits until at least `n` items were recorded, then returns them all.
    pub(crate) async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<T>, TimedOut> {
        let mut rx = self.len.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|len| *len >= n)).await {
            Ok(Ok(_)) => Ok(self.snapshot()),
            _ => Err(TimedOut {
                what: format!("{n} {what} (got {})", lock(&self.items).len()),
                after: timeout,
            }),
        }
    }
}

/// The source-address filter of a server: everything, or only one CIDR.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    allowed: Mutex<Option<IpNet>>,
}

impl Gate {
    pub(crate) fn allow_only(&self, cidr: &str) -> Result<()> {
        let net = match cidr.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => cidr
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| Error::Cidr(cidr.to_string()))?,
        };
        *lock(&self.allowed) = Some(net);
        Ok(())
    }

    pub(crate) fn allow_all(&self) {
        *lock(&self.allowed) = None;
    }

    pub(crate) fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        lock(&self.allowed).is_none_or(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn gate_filters_by_cidr() {
        let gate = Gate::default();
        assert!(gate.admits("10.0.0.1".parse().unwrap()));
        gate.allow_only("127.0.0.8/30").unwrap();
        assert!(gate.admits("127.0.0.9".parse().unwrap()));
        assert!(!gate.admits("127.0.0.1".parse().unwrap()));
        assert!(gate.admits("::ffff:127.0.0.10".parse().unwrap()));
        gate.allow_only("127.0.0.1").unwrap();
        assert!(gate.admits("127.0.0.1".parse().unwrap()));
        assert!(!gate.admits("127.0.0.2".parse().unwrap()));
        assert!(matches!(gate.allow_only("nope"), Err(Error::Cidr(_))));
        gate.allow_all();
        assert!(gate.admits("127.0.0.2".parse().unwrap()));
    }

    #[tokio::test]
    async fn log_wait_is_woken_by_push() {
        let log = std::sync::Arc::new(Log::new());
        let waiter = {
            let log = log.clone();
            tokio::spawn(async move { log.wait_for(2, Duration::from_secs(10), "items").await })
        };
        log.push(1);
        log.push(2);
        assert_eq!(waiter.await.unwrap().unwrap(), vec![1, 2]);
        let err = log
            .wait_for(3, Duration::from_millis(10), "items")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("3 items (got 2)"), "{err}");
    }
}
