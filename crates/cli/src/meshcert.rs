//! Mesh certificates for `egress gateway run` and `egress sidecar run` from istiod's CA API, as
//! Istio's agent gets them: the CA's address and root, and the Pod's projected
//! service-account token (re-read on every renewal). Returns the workload's live identity and
//! the task that renews it at half-life.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use egress_identity::SpiffeId;
use egress_identity::istioca::{
    CaClient, CaError, DEFAULT_SERVER_NAME, DEFAULT_TOKEN_PATH, ObtainError, RotationOptions,
    TokenSource, WorkloadCert,
};

/// Where the workload certificate comes from (`--ca-address` enables it).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshCertArgs {
    /// istiod's CA endpoint (Istio's CA_ADDR, port 15012), HOST:PORT; `egress up` writes the
    /// local cluster's to <store>/run/ca.addr
    #[arg(long = "ca-address", value_name = "HOST:PORT", requires = "ca_root")]
    pub ca_address: Option<String>,
    /// PEM file of the mesh root(s) the CA and the issued certificates are verified with
    #[arg(long = "ca-root", value_name = "FILE")]
    pub ca_root: Option<PathBuf>,
    /// The projected service-account token (audience istio-ca), re-read on every renewal
    #[arg(long = "token-file", value_name = "FILE", default_value = DEFAULT_TOKEN_PATH)]
    pub token_file: PathBuf,
    /// The name the CA's serving certificate must carry
    #[arg(long = "ca-server-name", value_name = "NAME", default_value = DEFAULT_SERVER_NAME)]
    pub ca_server_name: String,
}

/// Why no certificate could be obtained.
#[derive(Debug, thiserror::Error)]
pub enum MeshCertError {
    /// `--ca-address` without `--ca-root`.
    #[error("--ca-root is required with --ca-address")]
    MissingRoot,
    /// The root file could not be read.
    #[error("reading --ca-root {path}: {source}")]
    ReadRoot {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The CA client could not be made.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The CA call, or the certificate it issued, failed.
    #[error(transparent)]
    Obtain(#[from] ObtainError),
}

/// A workload identity kept fresh through the CA (the identity crate's, shared with the local
/// cluster's Pods).
pub type MeshCert = WorkloadCert;

/// The lifetime asked for (Istio's default workload certificate TTL).
pub const CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Obtains a certificate for `id` from the CA named by `args` and starts renewing it (on the
/// current tokio runtime). `Ok(None)` when `--ca-address` is not given.
pub async fn obtain(args: &MeshCertArgs, id: &SpiffeId) -> Result<Option<MeshCert>, MeshCertError> {
    let Some(addr) = &args.ca_address else {
        return Ok(None);
    };
    let root_path = args.ca_root.as_ref().ok_or(MeshCertError::MissingRoot)?;
    let roots_pem =
        std::fs::read_to_string(root_path).map_err(|source| MeshCertError::ReadRoot {
            path: root_path.display().to_string(),
            source,
        })?;
    let client = Arc::new(CaClient::new(
        addr.as_str(),
        &args.ca_server_name,
        &roots_pem,
        TokenSource::File(args.token_file.clone()),
    )?);
    let options = RotationOptions {
        ttl: CERT_TTL,
        ..RotationOptions::default()
    };
    Ok(Some(
        egress_identity::istioca::obtain(client, id, options).await?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;
    use egress_identity::MeshCa;
    use egress_identity::istioca::{CaServer, CaServerOptions, LocalTokenIssuer};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mesh: MeshCertArgs,
    }

    #[test]
    fn flags_parse_with_istio_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.mesh.ca_address, None);
        assert_eq!(
            cli.mesh.token_file,
            PathBuf::from("/var/run/secrets/tokens/istio-token")
        );
        assert_eq!(cli.mesh.ca_server_name, "istiod.aks-istio-system.svc");
        assert!(Cli::try_parse_from(["x", "--ca-address", "127.0.0.1:15012"]).is_err());
        let cli = Cli::try_parse_from([
            "x",
            "--ca-address",
            "127.0.0.1:15012",
            "--ca-root",
            "root.pem",
            "--token-file",
            "t",
            "--ca-server-name",
            "istiod-asm-1-24.aks-istio-system.svc",
        ])
        .unwrap();
        assert_eq!(cli.mesh.ca_address.as_deref(), Some("127.0.0.1:15012"));
        assert_eq!(cli.mesh.ca_root, Some(PathBuf::from("root.pem")));
    }

    #[tokio::test]
    async fn obtains_a_renewed_identity_from_the_ca() {
        let ca = Arc::new(MeshCa::generate("cluster.local").unwrap());
        let issuer = LocalTokenIssuer::generate("https://kubernetes.default.svc").unwrap();
        let server = CaServer::new(
            Arc::clone(&ca),
            Arc::new(issuer.reviewer()),
            CaServerOptions::default(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root-cert.pem");
        std::fs::write(&root, ca.root_pem()).unwrap();
        let token = dir.path().join("istio-token");
        let minted = issuer
            .mint(
                "aks-istio-egress",
                "istio-egressgateway",
                &["istio-ca"],
                Duration::from_secs(600),
            )
            .unwrap();
        std::fs::write(&token, minted).unwrap();
        let args = MeshCertArgs {
            ca_address: Some(addr),
            ca_root: Some(root),
            token_file: token,
            ca_server_name: DEFAULT_SERVER_NAME.into(),
        };
        let id = SpiffeId::new("cluster.local", "aks-istio-egress", "istio-egressgateway").unwrap();
        let got = obtain(&args, &id).await.unwrap().unwrap();
        assert_eq!(got.handle.spiffe_id(), Some(id.to_string()));
        assert_eq!(got.handle.roots_pem(), ca.root_pem());
        assert!(
            obtain(&MeshCertArgs::default(), &id)
                .await
                .unwrap()
                .is_none()
        );
        let missing = MeshCertArgs {
            ca_root: Some(dir.path().join("absent.pem")),
            ..args.clone()
        };
        assert!(matches!(
            obtain(&missing, &id).await,
            Err(MeshCertError::ReadRoot { .. })
        ));
        let _ = stop.send(());
    }
}
