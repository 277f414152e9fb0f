//! The readiness endpoint Kubernetes probes (`:15021/healthz/ready`, Istio's egress gateway
//! readinessProbe): 200 once the first snapshot with a version above 0 has been applied (its
//! listeners bound), 503 before that and while draining. Other paths answer 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::drain::Drain;

/// Readiness of a proxy instance.
#[derive(Debug)]
pub struct Readiness {
    loaded: AtomicBool,
    drain: Drain,
}

impl Readiness {
    /// Not ready until [`Readiness::set_loaded`]; never ready while `drain` is draining.
    pub fn new(drain: Drain) -> Readiness {
        Readiness {
            loaded: AtomicBool::new(false),
            drain,
        }
    }

    /// Records that a snapshot with a version above 0 is being served.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// True when the proxy should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && !self.drain.is_draining()
    }
}

/// Answers one health request.
fn respond(readiness: &Readiness, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/healthz/ready" if readiness.is_ready() => (StatusCode::OK, ""),
        "/healthz/ready" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => (StatusCode::NOT_FOUND, ""),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Serves health requests on `listener` until `stop` fires (or its sender is dropped).
pub async fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "health: accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let readiness = Arc::clone(&readiness);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&readiness, req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "health: connection error");
            }
        });
    }
}

/// Binds the health port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn ready_after_load_until_drain() {
        let drain = Drain::new();
        let r = Readiness::new(drain.clone());
        assert_eq!(
            respond(&r, "/healthz/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        r.set_loaded();
        assert_eq!(respond(&r, "/healthz/ready").status(), StatusCode::OK);
        assert_eq!(respond(&r, "/other").status(), StatusCode::NOT_FOUND);
        drain.signal();
        assert_eq!(
            respond(&r, "/healthz/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
