//! Tunnels over HTTP/2 (a forward proxy whose cluster is HTTP/2): hyper's HTTP/2 client on the
//! connection to the proxy, one stream per tunnel, the stream handed on as a byte stream.
//!
//! - `CONNECT`: `:method CONNECT`, `:authority host:port`; a 200 turns the stream into the
//!   tunnel (hyper's upgraded stream; shutting down our write side ends the stream).
//! - `POST` (Envoy's `use_post`): `:method POST`, `:scheme` `https` when the connection to the
//!   proxy is TLS and `http` otherwise, `:authority host:port`, `:path /`; on a 200 the
//!   connection's bytes are the request body, streamed as they are written, and the response
//!   body, streamed as it arrives (full duplex). Shutting down our write side ends the request
//!   body (END_STREAM); the end of the response body is the end of the stream.
//!
//! Any other status refuses the tunnel (Envoy accepts only 200 over HTTP/2). Each tunnel has its
//! own HTTP/2 connection to the proxy, kept open by the stream and closed with it; Envoy
//! instead multiplexes tunnels over its pooled connections to the proxy.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use egress_snapshot::snapshot::{Tunnel, TunnelProtocol};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::{TunnelFailure, authority};
use crate::connect::BoxIo;

/// Request-body chunks that may wait for the HTTP/2 stream (each one write's bytes).
const POST_CHUNKS: usize = 2;

/// Asks over HTTP/2 on `io` (`tls`: the connection is TLS to the proxy).
pub(super) async fn establish(
    io: BoxIo,
    tunnel: &Tunnel,
    tls: bool,
) -> Result<BoxIo, TunnelFailure> {
    let target = authority(tunnel);
    match tunnel.protocol {
        TunnelProtocol::Connect => connect(io, &target).await,
        TunnelProtocol::Post => post(io, &target, tls).await,
    }
}

/// The HTTP/2 handshake on `io`; the connection is driven by its own task until the last
/// stream and sender are gone.
async fn handshake<B>(io: BoxIo) -> Result<SendRequest<B>, TunnelFailure>
where
    B: Body<Data = Bytes, Error = Infallible> + Send + Unpin + 'static,
{
    let (sender, conn) = Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(TunnelFailure::Http2)?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "forward proxy HTTP/2 connection ended");
        }
    });
    Ok(sender)
}

/// `uri` parsed, or the typed failure naming it.
fn parse(uri: String) -> Result<Uri, TunnelFailure> {
    uri.parse().map_err(|_| TunnelFailure::Target(uri))
}

async fn connect(io: BoxIo, target: &str) -> Result<BoxIo, TunnelFailure> {
    let mut sender = handshake::<Empty<Bytes>>(io).await?;
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::CONNECT;
    *request.uri_mut() = parse(target.to_owned())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(TunnelFailure::Http2)?;
    if response.status() != StatusCode::OK {
        return Err(TunnelFailure::Refused(response.status().as_u16()));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(TunnelFailure::Http2)?;
    Ok(Box::new(Connected {
        io: TokioIo::new(upgraded),
        _sender: sender,
    }))
}

async fn post(io: BoxIo, target: &str, tls: bool) -> Result<BoxIo, TunnelFailure> {
    let (tx, rx) = mpsc::channel(POST_CHUNKS);
    let mut sender = handshake::<RequestBody>(io).await?;
    let scheme = if tls { "https" } else { "http" };
    let mut request = Request::new(RequestBody { rx });
    *request.method_mut() = Method::POST;
    *request.uri_mut() = parse(format!("{scheme}://{target}/"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(TunnelFailure::Http2)?;
    if response.status() != StatusCode::OK {
        return Err(TunnelFailure::Refused(response.status().as_u16()));
    }
    Ok(Box::new(Posted {
        tx: Some(tx),
        reserving: None,
        body: response.into_body(),
        pending: Bytes::new(),
        _sender: sender,
    }))
}

/// A CONNECT stream; the sender keeps the connection's dispatch alive while the stream lives.
struct Connected {
    io: TokioIo<Upgraded>,
    _sender: SendRequest<Empty<Bytes>>,
}

impl AsyncRead for Connected {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connected {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A POST's request body: the chunks written to the tunnel, ended when its write side is.
struct RequestBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Room for one more request-body chunk, being waited for.
type Reserving = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Bytes>, mpsc::error::SendError<()>>> + Send>,
>;

/// A POST tunnel: writes feed the request body, reads drain the response body.
struct Posted {
    /// `None` once our write side is shut down.
    tx: Option<mpsc::Sender<Bytes>>,
    reserving: Option<Reserving>,
    body: Incoming,
    /// What is left of the last response-body chunk.
    pending: Bytes,
    _sender: SendRequest<RequestBody>,
}

impl AsyncRead for Posted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers carry no tunnel bytes.
                    if let Ok(data) = frame.into_data() {
                        this.pending = data;
                    }
                }
                Some(Err(err)) => return Poll::Ready(Err(io::Error::other(err))),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for Posted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let Some(tx) = &this.tx else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let reserving = this
            .reserving
            .get_or_insert_with(|| Box::pin(tx.clone().reserve_owned()));
        let permit = ready!(reserving.as_mut().poll(cx));
        this.reserving = None;
        match permit {
            Ok(permit) => {
                permit.send(Bytes::copy_from_slice(buf));
                Poll::Ready(Ok(buf.len()))
            }
            // The request body is gone: the stream ended or was reset.
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.reserving = None;
        this.tx = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http::Response;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    fn tunnel(protocol: TunnelProtocol) -> Tunnel {
        Tunnel {
            protocol,
            http2: true,
            target_host: "external.example".into(),
            target_port: 8443,
        }
    }

    type Seen = Arc<Mutex<Vec<(Method, String)>>>;

    /// An HTTP/2 forward proxy on the other end of a pipe: answers `status`; on 200 it echoes
    /// the tunnel's bytes back (CONNECT: the upgraded stream; POST: the request body as the
    /// response body). Records each request's method and URI.
    fn proxy(status: u16) -> (BoxIo, Seen) {
        let (ours, theirs) = duplex(64 * 1024);
        let seen: Seen = Arc::default();
        let record = Arc::clone(&seen);
        let service = service_fn(move |req: Request<Incoming>| {
            record
                .lock()
                .unwrap()
                .push((req.method().clone(), req.uri().to_string()));
            async move {
                let status = StatusCode::from_u16(status).unwrap();
                if status != StatusCode::OK {
                    return Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .body(http_body_util::Either::Left(Empty::<Bytes>::new()))
                            .unwrap(),
                    );
                }
                if req.method() == Method::CONNECT {
                    tokio::spawn(async move {
                        let up = hyper::upgrade::on(req).await.unwrap();
                        let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                        tokio::io::copy(&mut r, &mut w).await.unwrap();
                        w.shutdown().await.unwrap();
                    });
                    return Ok(Response::new(http_body_util::Either::Left(Empty::new())));
                }
                Ok(Response::new(http_body_util::Either::Right(
                    req.into_body(),
                )))
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(theirs), service)
                .await;
        });
        (Box::new(ours), seen)
    }

    async fn round_trip(mut io: BoxIo) {
        io.write_all(b"hello ").await.unwrap();
        io.write_all(b"through the tunnel").await.unwrap();
        io.shutdown().await.unwrap();
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut back))
            .await
            .expect("the echo ends")
            .unwrap();
        assert_eq!(back, b"hello through the tunnel");
    }

    #[tokio::test]
    async fn connect_opens_a_stream_to_the_target_authority() {
        let (io, seen) = proxy(200);
        let io = establish(io, &tunnel(TunnelProtocol::Connect), false)
            .await
            .unwrap();
        round_trip(io).await;
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            [(Method::CONNECT, "external.example:8443".to_owned())]
        );
    }

    #[tokio::test]
    async fn post_streams_both_bodies_with_the_scheme_of_the_connection() {
        for (tls, uri) in [
            (false, "http://external.example:8443/"),
            (true, "https://external.example:8443/"),
        ] {
            let (io, seen) = proxy(200);
            let io = establish(io, &tunnel(TunnelProtocol::Post), tls)
                .await
                .unwrap();
            round_trip(io).await;
            assert_eq!(
                seen.lock().unwrap().as_slice(),
                [(Method::POST, uri.to_owned())]
            );
        }
    }

    #[tokio::test]
    async fn only_200_opens_the_tunnel() {
        for protocol in [TunnelProtocol::Connect, TunnelProtocol::Post] {
            for status in [403, 503, 204] {
                let (io, _) = proxy(status);
                let got = establish(io, &tunnel(protocol), false).await;
                assert!(
                    matches!(got, Err(TunnelFailure::Refused(s)) if s == status),
                    "{protocol:?} {status}: {:?}",
                    got.err()
                );
            }
        }
    }

    #[tokio::test]
    async fn a_proxy_that_does_not_speak_http2_is_an_http2_failure() {
        let (ours, mut theirs) = duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0_u8; 64];
            let _ = theirs.read(&mut buf).await;
            let _ = theirs.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let got = establish(Box::new(ours), &tunnel(TunnelProtocol::Connect), false).await;
        assert!(
            matches!(got, Err(TunnelFailure::Http2(_))),
            "{:?}",
            got.err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_http2_proxy_times_out_on_the_paused_clock() {
        let (ours, _theirs) = duplex(64 * 1024);
        let got = super::super::establish(
            Box::new(ours),
            &tunnel(TunnelProtocol::Post),
            false,
            Duration::from_secs(10),
        )
        .await;
        assert!(
            matches!(got, Err(TunnelFailure::Timeout)),
            "{:?}",
            got.err()
        );
    }
}
