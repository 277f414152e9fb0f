//! Transparent capture: connections that iptables REDIRECTed to the capture listener (Istio's
//! 15001 `virtualOutbound`). The destination the application dialled is read back with
//! `SO_ORIGINAL_DST` (`IP6T_SO_ORIGINAL_DST` for IPv6) through socket2, without `unsafe`; the
//! connection is then served as a connection to that address ([`super::outbound`]), and its
//! access-log lines show it as `%DOWNSTREAM_LOCAL_ADDRESS%`, as Envoy's `use_original_dst`
//! does.
//!
//! A connection with no original destination (not redirected: someone dialled the capture
//! port itself), or one whose original destination is the listener's own address, is
//! black-holed (Istio's loop protection).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::Shared;
use super::outbound;
use crate::connect::OriginalDst;
use crate::ctx::ConnInfo;

/// The address `stream` was sent to before NAT redirected it here.
///
/// socket2's `original_dst_v4`/`original_dst_v6` are compiled with its `all` feature, which
/// tokio's `net` feature turns on for the whole build.
#[cfg(target_os = "linux")]
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let addr = if stream.local_addr()?.is_ipv4() {
        socket.original_dst_v4()?
    } else {
        socket.original_dst_v6()?
    };
    addr.as_socket()
        .ok_or_else(|| io::Error::other("SO_ORIGINAL_DST returned a non-IP address"))
}

/// The address `stream` was sent to before NAT redirected it here (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn original_dst(_stream: &TcpStream) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_ORIGINAL_DST needs Linux",
    ))
}

/// Serves one captured connection.
pub(super) async fn serve(stream: TcpStream, remote: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let original = match original_dst(&stream) {
        Ok(addr) if addr != local => Some(addr),
        Ok(_) => None,
        Err(err) => {
            tracing::debug!(error = %err, "no original destination");
            None
        }
    };
    let conn = ConnInfo {
        downstream_remote: remote,
        downstream_local: original.unwrap_or(local),
        sni: None,
        peer_identity: None,
        server_port: local.port(),
        tls_terminated: false,
    };
    // Without an original destination the connection was meant for the capture port itself:
    // `outbound::serve` black-holes destinations on the sidecar's own ports.
    let dst = OriginalDst::from_addr(original.unwrap_or(local));
    outbound::serve(stream, conn, dst, &shared).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn a_connection_that_was_not_redirected_has_no_other_destination() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Without conntrack there is no answer; with it, the answer is the address itself.
        match original_dst(&server) {
            Ok(found) => assert_eq!(found, addr),
            Err(err) => assert_ne!(err.kind(), io::ErrorKind::Unsupported, "{err}"),
        }
    }
}
