//! The readiness endpoint Kubernetes probes (`:15021/healthz/ready`, Istio's egress gateway
//! readinessProbe): 200 once the first snapshot with a version above 0 has been applied and
//! every listener it asks for is bound; 503 before that, while a listener cannot be bound
//! (the body names it and the error), and while draining. Other paths answer 404.
//!
//! The same server, given a [`Metrics`] registry, is a metrics port (Istio's merged `:15020`
//! endpoint, and Envoy's `:15090` prometheus port, which serve the same text):
//! `/stats/prometheus` answers the exposition in the Prometheus text format, and
//! `/healthz/ready` answers as above. [`Server`] runs one such server.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::drain::Drain;
use crate::metrics::{self, Metrics};

/// Readiness of a proxy instance.
#[derive(Debug)]
pub struct Readiness {
    loaded: AtomicBool,
    /// Why listeners of the current snapshot are not bound (empty: all are).
    unbound: Mutex<Vec<String>>,
    drain: Drain,
}

impl Readiness {
    /// Not ready until [`Readiness::set_loaded`]; never ready while `drain` is draining.
    pub fn new(drain: Drain) -> Readiness {
        Readiness {
            loaded: AtomicBool::new(false),
            unbound: Mutex::new(Vec::new()),
            drain,
        }
    }

    /// Records that a snapshot with a version above 0 is being served.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// Records the listeners of the current snapshot that could not be bound (each as its
    /// error); not ready while any is.
    pub fn set_unbound(&self, reasons: Vec<String>) {
        if let Ok(mut unbound) = self.unbound.lock() {
            *unbound = reasons;
        }
    }

    /// Why listeners are not bound (empty when every one is).
    pub fn unbound(&self) -> Vec<String> {
        self.unbound.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// True when the proxy should receive traffic: configured, serving every listener, and
    /// not draining.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
            && !self.drain.is_draining()
            && self.unbound.lock().is_ok_and(|u| u.is_empty())
    }
}

/// What a health (or metrics) server answers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `/healthz/ready`.
    pub readiness: Arc<Readiness>,
    /// `/stats/prometheus`, when this is a metrics port.
    pub metrics: Option<Arc<Metrics>>,
}

/// Answers one health request.
fn respond(endpoints: &Endpoints, path: &str) -> Response<Full<Bytes>> {
    if path == "/stats/prometheus"
        && let Some(metrics) = &endpoints.metrics
    {
        let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
        );
        return response;
    }
    let (status, body) = match path {
        "/healthz/ready" if endpoints.readiness.is_ready() => (StatusCode::OK, String::new()),
        "/healthz/ready" => {
            let mut body = String::from("not ready\n");
            for reason in endpoints.readiness.unbound() {
                body.push_str(&reason);
                body.push('\n');
            }
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Serves health requests on `listener` until `stop` fires (or its sender is dropped).
pub async fn serve(listener: TcpListener, endpoints: Endpoints, mut stop: oneshot::Receiver<()>) {
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
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&endpoints, req.uri().path());
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

/// A running health or metrics server.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `port` on `ip` and serves `endpoints`.
    pub(crate) async fn start(
        ip: IpAddr,
        port: u16,
        endpoints: Endpoints,
    ) -> Result<Server, (SocketAddr, std::io::Error)> {
        let addr = SocketAddr::new(ip, port);
        let (socket, bound) = bind(addr).await.map_err(|err| (addr, err))?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(socket, endpoints, stopped));
        Ok(Server {
            addr: bound,
            stop,
            task,
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Stops whichever servers run.
pub(crate) async fn stop_servers(servers: impl IntoIterator<Item = Option<Server>>) {
    for server in servers.into_iter().flatten() {
        server.stop().await;
    }
}

/// Starts the metrics servers on `ports` (the metrics port, then the prometheus port), each
/// serving `endpoints`; on a failure stops those already started.
pub(crate) async fn start_metrics_servers(
    ip: IpAddr,
    ports: [Option<u16>; 2],
    endpoints: &Endpoints,
) -> Result<[Option<Server>; 2], (SocketAddr, std::io::Error)> {
    let mut started: [Option<Server>; 2] = [None, None];
    for (slot, port) in started.iter_mut().zip(ports) {
        let Some(port) = port else {
            continue;
        };
        match Server::start(ip, port, endpoints.clone()).await {
            Ok(server) => *slot = Some(server),
            Err(err) => {
                stop_servers(started).await;
                return Err(err);
            }
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn health_only(readiness: Readiness) -> Endpoints {
        Endpoints {
            readiness: Arc::new(readiness),
            metrics: None,
        }
    }

    #[test]
    fn metrics_only_on_the_metrics_port() {
        let health = health_only(Readiness::new(Drain::new()));
        assert_eq!(
            respond(&health, "/stats/prometheus").status(),
            StatusCode::NOT_FOUND
        );
        let metrics = Endpoints {
            metrics: Some(Arc::new(Metrics::gateway())),
            ..health
        };
        let response = respond(&metrics, "/stats/prometheus");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            metrics::CONTENT_TYPE
        );
        assert_eq!(
            respond(&metrics, "/healthz/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn ready_after_load_until_drain() {
        let drain = Drain::new();
        let r = Arc::new(Readiness::new(drain.clone()));
        let e = Endpoints {
            readiness: Arc::clone(&r),
            metrics: None,
        };
        assert_eq!(
            respond(&e, "/healthz/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        r.set_loaded();
        assert_eq!(respond(&e, "/healthz/ready").status(), StatusCode::OK);
        assert_eq!(respond(&e, "/other").status(), StatusCode::NOT_FOUND);
        drain.signal();
        assert_eq!(
            respond(&e, "/healthz/ready").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn not_ready_while_a_listener_is_unbound_and_says_why() {
        use http_body_util::BodyExt;
        let r = Arc::new(Readiness::new(Drain::new()));
        let e = Endpoints {
            readiness: Arc::clone(&r),
            metrics: None,
        };
        r.set_loaded();
        r.set_unbound(vec![
            "binding listener 0.0.0.0_8080 on 127.70.3.2:8080: Address in use".into(),
        ]);
        assert!(!r.is_ready());
        let response = respond(&e, "/healthz/ready");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"not ready\nbinding listener 0.0.0.0_8080 on 127.70.3.2:8080: Address in use\n"
        );
        r.set_unbound(Vec::new());
        assert!(r.is_ready());
        assert_eq!(respond(&e, "/healthz/ready").status(), StatusCode::OK);
    }
}
