//! Connecting to the API server: an explicit kubeconfig file, else `KUBECONFIG` or
//! `~/.kube/config`, else the Pod's service-account (in-cluster) configuration.

use std::path::PathBuf;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::Error;

/// The User-Agent of egress's Kubernetes clients.
pub const USER_AGENT: &str = concat!("egress/", env!("CARGO_PKG_VERSION"));

/// How to reach the API server (`--kubeconfig`, `--context`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeOptions {
    /// An explicit kubeconfig file; without it `KUBECONFIG`, `~/.kube/config`, then the
    /// in-cluster configuration are tried in that order.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; without it the file's current-context.
    pub context: Option<String>,
}

impl KubeOptions {
    /// The client configuration these options select.
    pub async fn config(&self) -> Result<Config, Error> {
        let opts = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let context = || {
            self.context
                .clone()
                .unwrap_or_else(|| "the current context".to_owned())
        };
        if let Some(path) = &self.kubeconfig {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
                file: path.display().to_string(),
                context: context(),
                message: e.to_string(),
            })?;
            return Config::from_custom_kubeconfig(kubeconfig, &opts)
                .await
                .map_err(|e| Error::Kubeconfig {
                    file: path.display().to_string(),
                    context: context(),
                    message: e.to_string(),
                });
        }
        let file = std::env::var("KUBECONFIG")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "~/.kube/config".to_owned());
        match Config::from_kubeconfig(&opts).await {
            Ok(c) => Ok(c),
            Err(e) if self.context.is_some() => Err(Error::Kubeconfig {
                file,
                context: context(),
                message: e.to_string(),
            }),
            Err(kubeconfig) => Config::incluster().map_err(|incluster| Error::NoConfig {
                file,
                kubeconfig: kubeconfig.to_string(),
                incluster: incluster.to_string(),
            }),
        }
    }

    /// A client for the selected API server.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let mut config = self.config().await?;
        // Named in the API server's audit (and request) log, as kubectl names itself.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
        let server = config.cluster_url.to_string();
        kube::Client::try_from(config).map_err(|e| Error::Client {
            server,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = "apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: 'http://127.0.0.1:6443'}
- name: b
  cluster: {server: 'http://127.0.0.2:7443'}
users:
- name: u
  user: {token: t}
contexts:
- name: ctx-a
  context: {cluster: a, user: u}
- name: ctx-b
  context: {cluster: b, user: u, namespace: apps}
current-context: ctx-a
";

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[tokio::test]
    async fn explicit_file_and_context_select_the_server() {
        let f = file(TWO_CONTEXTS);
        let mut o = KubeOptions {
            kubeconfig: Some(f.path().to_owned()),
            context: None,
        };
        let c = o.config().await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:6443/");
        o.context = Some("ctx-b".into());
        let c = o.config().await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.2:7443/");
        assert_eq!(c.default_namespace, "apps");
    }

    #[tokio::test]
    async fn errors_name_the_file_and_the_context() {
        let f = file(TWO_CONTEXTS);
        let o = KubeOptions {
            kubeconfig: Some(f.path().to_owned()),
            context: Some("nope".into()),
        };
        let e = o.config().await.unwrap_err().to_string();
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("\"nope\""), "{e}");

        let o = KubeOptions {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            context: None,
        };
        let e = o.config().await.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/kubeconfig"), "{e}");
        assert!(e.contains("the current context"), "{e}");
    }
}
