//! Counts a tunnelled TCP connection as opened once its upstream connection is established.
//!
//! The TCP proxy touches the downstream stream only after it has connected upstream, so the
//! first read or write of a wrapped stream marks that moment: [`OpenNotice`] then reports
//! the connection to [`Metrics::tcp_opened`] with the cluster it goes to. A connection that
//! never reaches an upstream (`UH`, `UF`, `BlackHoleCluster`) is never touched and is counted
//! when it closes, as Istio does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::accesslog::{AccessLogger, LogEntry};
use crate::ctx::ConnInfo;

/// A downstream stream that reports its connection as opened on first use.
pub struct OpenNotice<I> {
    io: I,
    pending: Option<(AccessLogger, LogEntry)>,
}

impl<I> OpenNotice<I> {
    /// Wraps `io`, the downstream of `conn`, proxied to `cluster`; reports through `logger`
    /// (the connection's version's; none: nothing is reported).
    pub fn new(io: I, conn: &ConnInfo, cluster: &str, logger: Option<AccessLogger>) -> Self {
        let pending = logger.map(|logger| {
            let entry = LogEntry {
                downstream_remote_address: Some(conn.downstream_remote),
                downstream_local_address: Some(conn.downstream_local),
                peer_uri_san: conn.peer_identity.clone(),
                upstream_cluster: Some(cluster.to_owned()),
                ..LogEntry::default()
            };
            (logger, entry)
        });
        OpenNotice { io, pending }
    }

    fn notice(&mut self) {
        if let Some((logger, entry)) = self.pending.take() {
            logger.tcp_opened(&entry);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for OpenNotice<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.notice();
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for OpenNotice<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.notice();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.notice();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn first_use_reports_the_connection_once() {
        let metrics = Arc::new(Metrics::sidecar(crate::metrics::LocalWorkload::default()));
        let conn = ConnInfo {
            downstream_remote: ([127, 0, 0, 1], 40000).into(),
            downstream_local: ([127, 0, 0, 1], 443).into(),
            sni: None,
            peer_identity: None,
            server_port: 443,
            tls_terminated: false,
        };
        let (a, mut b) = tokio::io::duplex(64);
        let logger = AccessLogger::disabled().with_metrics(Arc::clone(&metrics));
        let mut io = OpenNotice::new(a, &conn, "PassthroughCluster", Some(logger));
        let opened = |m: &Metrics| {
            m.render()
                .lines()
                .filter(|l| l.starts_with("istio_tcp_connections_opened_total{"))
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        assert!(opened(&metrics).is_empty(), "nothing before first use");
        io.write_all(b"hi").await.unwrap();
        b.write_all(b"yo").await.unwrap();
        let mut buf = [0u8; 2];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(opened(&metrics), ["1"]);
    }
}
