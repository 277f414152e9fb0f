//! The stand-in for the scenarios' external hosts, run by the soak itself (so it keeps
//! answering while `egress up` is killed and restarted): HTTP on port 80 and HTTPS on 443 of
//! one loopback address, with a certificate for every scenario host from a CA of its own that
//! the gateways (`egress up --upstream-ca`) and the soak's client trust. Every answer is `200`
//! and says where the connection came from and on which port, which is how the oracle tells a
//! request that went through a gateway (its static egress prefix) from one sent straight from
//! the workload's sidecar (the pod range):
//!
//! ```text
//! HTTP/1.1 200 OK
//! x-soak-seen-from: 127.91.1.0
//! x-soak-port: 443
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use egress_identity::{MeshCa, RootSource, client_config_simple, server_config_from_pem};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::SoakError;
use crate::manifests::SCENARIOS;

/// Header naming the address the stand-in saw the connection come from.
pub const SEEN_FROM: &str = "x-soak-seen-from";
/// Header naming the stand-in's port that answered.
pub const PORT: &str = "x-soak-port";

/// The running stand-in.
#[derive(Debug)]
pub struct Upstream {
    tasks: Vec<JoinHandle<()>>,
    ca_file: PathBuf,
    client_tls: Arc<rustls::ClientConfig>,
}

impl Upstream {
    /// Starts HTTP (80) and HTTPS (443) on `ip`; writes its CA to `<dir>/soak-ca.pem`.
    pub async fn start(ip: IpAddr, dir: &Path) -> Result<Upstream, SoakError> {
        let ca = MeshCa::generate("soak.test").map_err(|e| SoakError::Tls(e.to_string()))?;
        let names: Vec<String> = SCENARIOS.iter().map(|s| s.host.to_owned()).collect();
        let cert = ca
            .issue_server(&names, Duration::from_secs(7 * 24 * 3600))
            .map_err(|e| SoakError::Tls(e.to_string()))?;
        let server = server_config_from_pem(
            &cert.cert_chain_pem,
            &cert.key_pem,
            None,
            false,
            &[],
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        )
        .map_err(|e| SoakError::Tls(e.to_string()))?;
        let client_tls = client_config_simple(
            &RootSource::Pem(ca.root_pem().to_owned()),
            None,
            false,
            vec![b"http/1.1".to_vec()],
        )
        .map_err(|e| SoakError::Tls(e.to_string()))?;
        let ca_file = dir.join("soak-ca.pem");
        std::fs::write(&ca_file, ca.root_pem()).map_err(|e| SoakError::io(&ca_file, e))?;
        let mut tasks = Vec::new();
        for (port, tls) in [
            (80, None),
            (443, Some(tokio_rustls::TlsAcceptor::from(server))),
        ] {
            let addr = SocketAddr::new(ip, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SoakError::Bind { addr, source })?;
            tasks.push(tokio::spawn(serve(listener, tls, port)));
        }
        Ok(Upstream {
            tasks,
            ca_file,
            client_tls,
        })
    }

    /// The CA certificate file (PEM) the stand-in's certificate chains to.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A client configuration trusting the stand-in (for TLS through a CONNECT tunnel).
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.client_tls)
    }

    /// Stops the listeners (open connections end with the runtime).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, port: u16) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => answer(TokioIo::new(stream), peer.ip(), port).await,
                Some(acceptor) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        answer(TokioIo::new(s), peer.ip(), port).await;
                    }
                }
            }
        });
    }
}

async fn answer<I>(io: I, from: IpAddr, port: u16)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok\n")));
        let headers = resp.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&from.to_string()) {
            headers.insert(SEEN_FROM, v);
        }
        headers.insert(PORT, http::HeaderValue::from(port));
        Ok::<_, Infallible>(resp)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let _ = builder.serve_connection(io, service).await;
}
