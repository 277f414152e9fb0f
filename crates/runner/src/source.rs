//! Where a gateway's or sidecar's configuration comes from, and how the runner learns that it
//! may have changed: the cluster store's change feed (only events of the kinds a proxy reads
//! count), a directory's stamp, or the Kubernetes API cache's generation.

use std::path::PathBuf;
use std::time::Duration;

use egress_store::Store;

use crate::decode::WATCHED;
use crate::settle;

/// A configuration source.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// The cluster store (its change feed).
    Store(Store),
    /// A directory of YAML manifests, re-read when files change.
    Dir(PathBuf),
    /// The Kubernetes API server: watches feeding a cache whose generation is the reload key.
    Kube(egress_kube::KubeSource),
}

impl ConfigSource {
    /// Waits until the source may have changed since `seen` (the key the last reading
    /// reflected: the store's resourceVersion, the directory's stamp, the cache generation),
    /// so nothing committed in between is missed.
    pub async fn changed(&self, seen: Option<u64>) {
        match self {
            ConfigSource::Store(store) => wait_for_store(store, seen).await,
            ConfigSource::Kube(source) => wait_for_generation(source, seen).await,
            ConfigSource::Dir(dir) => wait_for_dir_change(dir, seen).await,
        }
    }

    /// Waits until the source can be read whole: every watch of a Kubernetes source has
    /// listed once (logging what is still missing now and then), so the first configuration
    /// is never built from half of it. Other sources are ready at once.
    pub async fn ready(&self) {
        let ConfigSource::Kube(source) = self else {
            return;
        };
        loop {
            match tokio::time::timeout(Duration::from_secs(10), source.ready()).await {
                Ok(()) => return,
                Err(_) => tracing::warn!(
                    pending = ?source.pending(),
                    "waiting for the API server to list every watched kind"
                ),
            }
        }
    }
}

/// Polls a configuration directory until its stamp differs from `seen`.
async fn wait_for_dir_change(dir: &std::path::Path, seen: Option<u64>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = dir.to_path_buf();
        match tokio::task::spawn_blocking(move || settle::dir_stamp(&d)).await {
            Ok(now) if Some(now) == seen => {}
            _ => return,
        }
    }
}

/// Waits for a change to an object of a watched kind after resourceVersion `seen`; changes to
/// other kinds (Events, Deployments, ...) pass by. One watcher follows the feed across the
/// short slices.
async fn wait_for_store(store: &Store, seen: Option<u64>) {
    let mut watcher: Option<egress_store::Watcher> = None;
    loop {
        let store = store.clone();
        let current = watcher.take();
        // Short watch slices: a blocking task cannot be cancelled, and shutdown must not
        // wait long for one.
        let slice = tokio::task::spawn_blocking(
            move || -> Result<(bool, egress_store::Watcher), egress_store::StoreError> {
                let mut w = match current {
                    Some(w) => w,
                    None => store.watch(match seen {
                        Some(rv) => rv,
                        None => store.resource_version()?,
                    })?,
                };
                let events = w.next_events(Duration::from_millis(500))?;
                Ok((events.iter().any(|e| read_by_proxies(&e.key)), w))
            },
        )
        .await;
        match slice {
            Ok(Ok((true, _))) => return,
            Ok(Ok((false, w))) => watcher = Some(w),
            // Expired or unreadable feed: relist.
            Ok(Err(_)) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        }
    }
}

/// Whether an object of this key's kind is configuration a gateway or sidecar reads.
fn read_by_proxies(key: &egress_store::ObjectKey) -> bool {
    WATCHED
        .iter()
        .any(|(g, k)| key.group == *g && key.kind == *k)
}

/// Waits until the Kubernetes cache's generation differs from `seen`; without one, until the
/// next change.
async fn wait_for_generation(source: &egress_kube::KubeSource, seen: Option<u64>) {
    let mut rx = source.subscribe();
    if let Some(seen) = seen {
        if *rx.borrow_and_update() != seen {
            return;
        }
    } else {
        rx.mark_unchanged();
    }
    let _ = rx.changed().await;
}

#[cfg(test)]
mod tests {
    use egress_store::ObjectKey;

    use super::read_by_proxies;

    #[test]
    fn only_the_kinds_a_proxy_reads_wake_it() {
        let key = |g: &str, k: &str| ObjectKey::new(g, k, Some("default"), "x");
        for (g, k) in [
            ("networking.istio.io", "VirtualService"),
            ("networking.istio.io", "ServiceEntry"),
            ("security.istio.io", "AuthorizationPolicy"),
            ("telemetry.istio.io", "Telemetry"),
            ("", "Pod"),
            ("", "Secret"),
            ("", "ConfigMap"),
        ] {
            assert!(read_by_proxies(&key(g, k)), "{g}/{k}");
        }
        for (g, k) in [
            ("", "Event"),
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("", "Namespace"),
            (
                "egressgateway.kubernetes.azure.com",
                "StaticGatewayConfiguration",
            ),
        ] {
            assert!(!read_by_proxies(&key(g, k)), "{g}/{k}");
        }
    }
}
