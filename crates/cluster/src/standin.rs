//! Stand-in external hosts: `egress up --stand-in edition.cnn.com` answers for that host on a
//! loopback address (HTTP on 80, HTTPS on 443 with a certificate from the local cluster's
//! stand-in CA), so the seed's walk-through runs on a machine that must not, or cannot, reach
//! the real host. Gateways and sidecars resolve the name to the stand-in and trust its CA;
//! `egress exec` workloads trust it too. Every response says who answered and from which
//! address the request came, which shows the static egress IP at work:
//!
//! ```text
//! HTTP/1.1 200 OK
//! x-egress-stand-in: edition.cnn.com
//! x-egress-seen-from: 127.0.10.1
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_identity::MeshCa;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::ClusterError;

/// Where the stand-in CA is kept (so the bundle workloads trust survives restarts).
pub const STAND_IN_CA_SECRET: (&str, &str) = ("aks-istio-system", "egress-stand-in-ca");

/// Stand-in addresses come from here, one per host, in the order given.
pub const STAND_IN_RANGE: [u8; 3] = [127, 0, 30];

/// One stand-in host: `NAME` or `NAME=IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandIn {
    /// The host name it answers for.
    pub host: String,
    /// The loopback address it listens on.
    pub ip: IpAddr,
}

/// Parses `--stand-in` values, giving addresses from [`STAND_IN_RANGE`] to those without one.
pub fn parse(values: &[String]) -> Result<Vec<StandIn>, ClusterError> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let (host, ip) = match v.split_once('=') {
            Some((h, ip)) => (
                h,
                ip.parse::<IpAddr>().map_err(|_| {
                    ClusterError::Settings(format!("invalid --stand-in {v:?}: want NAME[=IP]"))
                })?,
            ),
            None => {
                let last = u8::try_from(10 + i)
                    .map_err(|_| ClusterError::Settings("too many --stand-in hosts".to_owned()))?;
                let [a, b, c] = STAND_IN_RANGE;
                (v.as_str(), IpAddr::from([a, b, c, last]))
            }
        };
        if host.is_empty() || !ip.is_loopback() {
            return Err(ClusterError::Settings(format!(
                "invalid --stand-in {v:?}: want NAME[=IP] with a loopback IP"
            )));
        }
        out.push(StandIn {
            host: host.to_ascii_lowercase(),
            ip,
        });
    }
    Ok(out)
}

/// The running stand-in servers.
#[derive(Debug)]
pub struct StandIns {
    tasks: Vec<JoinHandle<()>>,
    /// What each binds (or why it could not).
    pub report: Vec<String>,
}

impl StandIns {
    /// Starts HTTP (80) and HTTPS (443) for each host; a port that cannot be bound (ports
    /// below 1024 need root) is reported, not fatal.
    pub async fn start(hosts: &[StandIn], ca: &MeshCa) -> StandIns {
        let mut tasks = Vec::new();
        let mut report = Vec::new();
        for h in hosts {
            let host = Arc::new(h.host.clone());
            match TcpListener::bind(SocketAddr::new(h.ip, 80)).await {
                Ok(l) => {
                    report.push(format!("stand-in {} on http://{}:80", h.host, h.ip));
                    tasks.push(tokio::spawn(serve(l, None, Arc::clone(&host))));
                }
                Err(e) => report.push(format!("stand-in {}: cannot bind {}:80: {e}", h.host, h.ip)),
            }
            let tls = ca
                .server_config(
                    std::slice::from_ref(&h.host),
                    Duration::from_secs(365 * 24 * 3600),
                    vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                )
                .map_err(|e| e.to_string());
            let tls = match tls {
                Ok(t) => t,
                Err(e) => {
                    report.push(format!("stand-in {}: certificate: {e}", h.host));
                    continue;
                }
            };
            match TcpListener::bind(SocketAddr::new(h.ip, 443)).await {
                Ok(l) => {
                    report.push(format!("stand-in {} on https://{}:443", h.host, h.ip));
                    tasks.push(tokio::spawn(serve(
                        l,
                        Some(tokio_rustls::TlsAcceptor::from(tls)),
                        host,
                    )));
                }
                Err(e) => {
                    report.push(format!(
                        "stand-in {}: cannot bind {}:443: {e}",
                        h.host, h.ip
                    ));
                }
            }
        }
        StandIns { tasks, report }
    }

    /// Stops every server.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, host: Arc<String>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let tls = tls.clone();
        let host = Arc::clone(&host);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let host = Arc::clone(&host);
                async move { Ok::<_, Infallible>(answer(&host, peer, &req)) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(s), service).await;
                    }
                }
            }
        });
    }
}

fn answer(host: &str, peer: SocketAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body = format!(
        "stand-in for {host}: {} {} from {}\n",
        req.method(),
        req.uri().path(),
        peer.ip()
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(host) {
        headers.insert("x-egress-stand-in", v);
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert("x-egress-seen-from", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_assigns_loopback_addresses_and_refuses_others() {
        let got = parse(&[
            "Edition.cnn.com".into(),
            "api.example.com=127.0.31.5".into(),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                StandIn {
                    host: "edition.cnn.com".into(),
                    ip: "127.0.30.10".parse().unwrap()
                },
                StandIn {
                    host: "api.example.com".into(),
                    ip: "127.0.31.5".parse().unwrap()
                },
            ]
        );
        assert!(parse(&["x=10.0.0.1".into()]).is_err());
        assert!(parse(&["=127.0.0.1".into()]).is_err());
        assert!(parse(&["x=nope".into()]).is_err());
    }
}
