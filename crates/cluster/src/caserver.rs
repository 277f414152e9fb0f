//! The local cluster's istiod CA endpoint: Istio's `CreateCertificate` API served over TLS on
//! a loopback port (written to `<store>/run/ca.addr`), signing with the cluster's mesh CA for
//! callers whose service-account token the cluster itself minted. The token signing key is
//! kept in the Secret `aks-istio-system/sa-signing-key` (key `sa.key`, as kubeadm names the
//! API server's key), next to `istio-ca-secret`. Gateways and sidecars of the local cluster get
//! their certificates through the same [`CaClient`] a Pod in a real cluster uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use egress_identity::MeshCa;
use egress_identity::istioca::{
    CaClient, CaServer, CaServerOptions, DEFAULT_SERVER_NAME, ISTIO_CA_AUDIENCE, LocalTokenIssuer,
    TokenSource,
};
use egress_store::{ObjectKey, Store};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ClusterError;

/// Namespace and name of the Secret holding the service-account token signing key.
pub const TOKEN_KEY_SECRET: (&str, &str) = ("aks-istio-system", "sa-signing-key");

/// The `iss` of the local cluster's service-account tokens (Kubernetes' default issuer).
pub const TOKEN_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long a minted token is valid (the kubelet's default projected token lifetime).
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The file holding the CA endpoint's address (`127.0.0.1:<port>`) while `egress up` runs.
pub fn addr_path(store_dir: &Path) -> PathBuf {
    crate::up::run_dir(store_dir).join("ca.addr")
}

/// The cluster's token signing key, created (with its namespace) on first use.
pub fn load_or_create_token_issuer(store: &Store) -> Result<LocalTokenIssuer, ClusterError> {
    let (ns, name) = TOKEN_KEY_SECRET;
    let key = ObjectKey::new("", "Secret", Some(ns), name);
    let mut created: Option<LocalTokenIssuer> = None;
    let committed = store.transact(|tx| -> Result<Option<Value>, ClusterError> {
        if let Some(existing) = tx.get(&key)? {
            return Ok(Some(existing));
        }
        let issuer = LocalTokenIssuer::generate(TOKEN_ISSUER)
            .map_err(|e| ClusterError::Ca(e.to_string()))?;
        let ns_key = ObjectKey::for_namespace(ns);
        if tx.get(&ns_key)?.is_none() {
            tx.create(
                &ns_key,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        tx.create(
            &key,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "type": "Opaque",
                "data": {"sa.key": STANDARD.encode(issuer.pkcs8_pem())},
            }),
        )?;
        created = Some(issuer);
        Ok(None)
    })?;
    if let Some(issuer) = created {
        return Ok(issuer);
    }
    let secret = committed.value.unwrap_or(Value::Null);
    let pem = secret["data"]["sa.key"]
        .as_str()
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ClusterError::Ca(format!("the Secret {ns}/{name} lacks sa.key")))?;
    LocalTokenIssuer::from_pkcs8_pem(TOKEN_ISSUER, &pem)
        .map_err(|e| ClusterError::Ca(format!("{ns}/{name}: {e}")))
}

/// The running CA endpoint, and what workloads of the local cluster need to call it.
pub struct LocalCa {
    addr: SocketAddr,
    roots_pem: String,
    issuer: Arc<LocalTokenIssuer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    addr_file: PathBuf,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Serves the CA API on `127.0.0.1:0` with `ca` and `issuer`'s tokens, for identities of
    /// `trust_domain`, and writes the address to [`addr_path`].
    pub async fn start(
        store_dir: &Path,
        ca: Arc<MeshCa>,
        issuer: LocalTokenIssuer,
        trust_domain: &str,
    ) -> Result<LocalCa, ClusterError> {
        let roots_pem = ca.root_pem().to_owned();
        let issuer = Arc::new(issuer);
        let server = CaServer::new(
            ca,
            Arc::new(issuer.reviewer()),
            CaServerOptions {
                trust_domain: trust_domain.to_owned(),
                ..CaServerOptions::default()
            },
        )
        .map_err(|e| ClusterError::Ca(e.to_string()))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ClusterError::Settings(format!("CA endpoint on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ClusterError::Settings(format!("CA endpoint: {e}")))?;
        let addr_file = addr_path(store_dir);
        let run_dir = crate::up::run_dir(store_dir);
        std::fs::create_dir_all(&run_dir).map_err(|e| ClusterError::io(&run_dir, e))?;
        std::fs::write(&addr_file, format!("{addr}\n"))
            .map_err(|e| ClusterError::io(&addr_file, e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Ok(LocalCa {
            addr,
            roots_pem,
            issuer,
            stop: Some(stop),
            task: Some(task),
            addr_file,
        })
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mesh root the endpoint's certificate and the issued ones chain to.
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// A client for a Pod running as `namespace/service_account`: each call carries a freshly
    /// minted token for that service account with audience `istio-ca`, as the kubelet
    /// projects it.
    pub fn client_for(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<CaClient, ClusterError> {
        let issuer = Arc::clone(&self.issuer);
        let (ns, sa) = (namespace.to_owned(), service_account.to_owned());
        let token = TokenSource::Mint(Arc::new(move || {
            issuer.mint(&ns, &sa, &[ISTIO_CA_AUDIENCE], TOKEN_TTL)
        }));
        CaClient::new(
            self.addr.to_string(),
            DEFAULT_SERVER_NAME,
            &self.roots_pem,
            token,
        )
        .map_err(|e| ClusterError::Ca(e.to_string()))
    }

    /// Stops serving and removes the address file.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.addr_file);
    }
}

impl Drop for LocalCa {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
