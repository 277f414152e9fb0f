//! Kubernetes mode: the API server as the configuration source of a gateway.
//!
//! * [`KubeOptions`] turns `--kubeconfig`/`--context` (or the in-cluster service account) into
//!   a [`kube::Client`].
//! * [`scope::plan`] decides what a gateway watches, kind by kind and namespace by namespace
//!   (the table is in [`scope`]).
//! * [`KubeSource`] runs one `kube::runtime::watcher` per planned watch (default backoff; a
//!   `410 Gone` makes it list again) and keeps the objects as JSON in a [`Cache`]: a relist is
//!   applied as one atomic replace, and every change bumps a generation published on a tokio
//!   watch channel. Decoding and validation are the caller's (the same rules as the embedded
//!   store's).

mod cache;
mod client;
pub mod scope;
mod source;

pub use cache::{Cache, CacheSnapshot};
pub use client::KubeOptions;
pub use kube::Client;
pub use kube::runtime::watcher::Event;
pub use scope::{Namespace, Scope, WatchSpec, Workload};
pub use source::KubeSource;

/// Errors of Kubernetes mode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig file could not be read, or has no such context.
    #[error("kubeconfig {file} (context {context:?}): {message}")]
    Kubeconfig {
        /// The file.
        file: String,
        /// The context asked for (or "the current context").
        context: String,
        /// What went wrong.
        message: String,
    },
    /// Neither a kubeconfig nor the in-cluster configuration is usable.
    #[error(
        "no Kubernetes configuration: kubeconfig {file}: {kubeconfig}; in-cluster: {incluster} \
         (pass --kubeconfig, or run in a Pod with a service account)"
    )]
    NoConfig {
        /// The kubeconfig file tried.
        file: String,
        /// Why it failed.
        kubeconfig: String,
        /// Why the in-cluster configuration failed.
        incluster: String,
    },
    /// The client could not be built for the server.
    #[error("Kubernetes client for {server}: {message}")]
    Client {
        /// The server URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// A planned watch names a kind the model does not know.
    #[error("no API resource for {group:?} {kind}")]
    UnknownKind {
        /// API group.
        group: String,
        /// Kind.
        kind: String,
    },
}
