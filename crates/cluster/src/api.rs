//! The local cluster's Kubernetes API ([`egress_apiserver`]) as `egress up` runs it: a serving
//! certificate from the local cluster's CA for the listening address (and `localhost`,
//! `kubernetes.default.svc`), a fresh bearer token per start, and the `egress` context merged
//! into the user's kubeconfig so that `kubectl` works at once.
//!
//! The default address (`127.0.0.1:6443`) may be taken by another local cluster (kind, k3d, a
//! second `egress up` on another store): then the API is not served and a warning says so,
//! while the rest of the cluster runs. An address given with `--api-server` must bind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use egress_apiserver::{ApiServer, ApiServerError, Config, kubeconfig};
use egress_identity::MeshCa;
use egress_store::Store;

use crate::ClusterError;

/// The default address of the API.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6443";

/// How long the serving certificate is valid (renewed at every start).
const SERVING_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where and how the API is served.
#[derive(Clone)]
pub struct ApiOptions {
    /// The address.
    pub addr: SocketAddr,
    /// True when the address was asked for (a bind failure is then an error).
    pub explicit: bool,
    /// The kubeconfig to merge the context into (none: `$KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// How `kubectl exec` runs commands (as `egress exec` runs them); none: not served.
    pub exec: Option<Arc<dyn egress_apiserver::exec::Runner>>,
}

impl std::fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("addr", &self.addr)
            .field("explicit", &self.explicit)
            .field("kubeconfig", &self.kubeconfig)
            .field("exec", &self.exec.is_some())
            .finish()
    }
}

/// A served API and the kubeconfig it was written into.
pub struct Served {
    /// The server.
    pub server: ApiServer,
    /// The kubeconfig written, or why none was (the default location could not be used; an
    /// asked-for `--write-kubeconfig` that fails is an error instead).
    pub kubeconfig: Result<PathBuf, String>,
    /// The cluster's own kubeconfig (`<store>/run/kubeconfig`, mode 0600): the local
    /// gateways read their configuration through the API with it.
    pub runtime_kubeconfig: PathBuf,
}

impl Served {
    /// A Kubernetes client for the served API, built as `egress gateway run --kube` builds
    /// one (the `egress` context of the cluster's own kubeconfig).
    pub async fn client(&self) -> Result<egress_kube::Client, egress_kube::Error> {
        egress_kube::KubeOptions {
            kubeconfig: Some(self.runtime_kubeconfig.clone()),
            context: Some(kubeconfig::NAME.to_owned()),
        }
        .client()
        .await
    }
}

/// Starts the API. `Ok(Err(warning))` when the default address is taken (the caller prints
/// the warning and runs without the API).
pub async fn start(
    store: &Store,
    ca: &MeshCa,
    options: &ApiOptions,
) -> Result<Result<Served, String>, ClusterError> {
    let settings = |e: String| ClusterError::Settings(format!("Kubernetes API: {e}"));
    let names = vec![
        options.addr.ip().to_string(),
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ];
    let tls = ca
        .server_config(&names, SERVING_CERT_TTL, Vec::new())
        .map_err(|e| ClusterError::Ca(e.to_string()))?;
    let token = egress_apiserver::new_token();
    let run = crate::up::run_dir(store.dir());
    let server = match ApiServer::start(Config {
        addr: options.addr,
        store: store.clone(),
        tls,
        token: token.clone(),
        pod_logs: Some(run.join("pods")),
        exec: options.exec.clone(),
        request_log: egress_apiserver::requestlog::RequestLog::open(&run.join("api-requests.log"))
            .map_err(|e| tracing::warn!("the Kubernetes API's request log: {e}"))
            .ok(),
    })
    .await
    {
        Ok(s) => s,
        Err(e @ ApiServerError::Bind { .. }) if !options.explicit => {
            return Ok(Err(format!(
                "warning: the Kubernetes API is not served ({e}); pass --api-server IP:PORT to serve it elsewhere"
            )));
        }
        Err(e) => return Err(settings(e.to_string())),
    };
    let url = format!("https://{}", server.local_addr());
    let entry = kubeconfig::Entry {
        server: &url,
        ca_pem: ca.root_pem(),
        token: &token,
    };
    let written = match &options.kubeconfig {
        Some(p) => {
            kubeconfig::merge(p, &entry).map_err(|e| settings(e.to_string()))?;
            Ok(p.clone())
        }
        None => kubeconfig::default_path()
            .and_then(|p| kubeconfig::merge(&p, &entry).map(|()| p))
            .map_err(|e| e.to_string()),
    };
    let runtime_kubeconfig = run.join("kubeconfig");
    kubeconfig::merge(&runtime_kubeconfig, &entry).map_err(|e| settings(e.to_string()))?;
    Ok(Ok(Served {
        server,
        kubeconfig: written,
        runtime_kubeconfig,
    }))
}
