//! Name resolution for DNS clusters: an override table first (`ProxyOptions.hosts`, how tests
//! and the local cluster send `edition.cnn.com` to loopback), then the system's DNS through
//! hickory, with answers cached for their TTL (Envoy's `respect_dns_ttl: true`).
//!
//! A name that is not in the table is sent to hickory only when system DNS is enabled
//! (`ProxyOptions.system_dns`, off by default so tests never leave loopback) and the system has
//! a resolver configuration (`/etc/resolv.conf`); otherwise it fails to resolve, which the
//! caller reports as `UH` (a DNS cluster with no hosts).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;

/// Addresses of one name, in the order DNS gave them.
pub type Addrs = Arc<Vec<IpAddr>>;

/// Cached answers are kept at most this long even when the TTL says more.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// The resolver of a proxy instance.
pub struct Resolver {
    overrides: HashMap<String, Addrs>,
    system: Option<TokioResolver>,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    addrs: Addrs,
    valid_until: Instant,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("system", &self.system.is_some())
            .finish()
    }
}

/// Canonical form of a name for lookups: lower case, no trailing dot.
fn canonical(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolver {
    /// A resolver answering `overrides` locally and, when `system_dns` is set, everything else
    /// from the system's DNS configuration, if there is one.
    pub fn new(overrides: &[(String, Vec<IpAddr>)], system_dns: bool) -> Resolver {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, addrs) in overrides {
            table
                .entry(canonical(name))
                .or_default()
                .extend(addrs.iter().copied());
        }
        let system = match system_dns.then(TokioResolver::builder_tokio) {
            None => None,
            Some(Ok(builder)) => Some(builder.build()),
            Some(Err(err)) => {
                tracing::warn!(%err, "no system resolver configuration; only the override table answers");
                None
            }
        };
        Resolver {
            overrides: table.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            system,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// All addresses of `host` (an IP literal resolves to itself). `fallback_ttl` is how long
    /// an answer is kept when DNS gave no usable TTL (MeshConfig `dnsRefreshRate`).
    pub async fn resolve(&self, host: &str, fallback_ttl: Duration) -> Result<Addrs, String> {
        let trimmed = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(Arc::new(vec![ip]));
        }
        let name = canonical(host);
        if let Some(addrs) = self.overrides.get(&name) {
            return Ok(Arc::clone(addrs));
        }
        if let Some(addrs) = self.cached(&name) {
            return Ok(addrs);
        }
        let Some(system) = &self.system else {
            return Err("no resolver configured for this name".to_owned());
        };
        let lookup = system
            .lookup_ip(format!("{name}."))
            .await
            .map_err(|e| e.to_string())?;
        let addrs: Vec<IpAddr> = lookup.iter().collect();
        if addrs.is_empty() {
            return Err("no addresses".to_owned());
        }
        let now = Instant::now();
        let ttl = lookup.valid_until().saturating_duration_since(now);
        let ttl = if ttl.is_zero() {
            fallback_ttl
        } else {
            ttl.min(MAX_TTL)
        };
        let addrs = Arc::new(addrs);
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, c| c.valid_until > now);
            cache.insert(
                name,
                Cached {
                    addrs: Arc::clone(&addrs),
                    valid_until: now + ttl,
                },
            );
        }
        Ok(addrs)
    }

    fn cached(&self, name: &str) -> Option<Addrs> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(name)?;
        (entry.valid_until > Instant::now()).then(|| Arc::clone(&entry.addrs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn overrides_and_literals() {
        let r = Resolver::new(
            &[
                ("Edition.CNN.com".into(), vec!["127.0.0.2".parse().unwrap()]),
                (
                    "edition.cnn.com.".into(),
                    vec!["127.0.0.3".parse().unwrap()],
                ),
            ],
            false,
        );
        assert!(
            r.resolve("unknown.example", Duration::from_secs(1))
                .await
                .is_err()
        );
        let ttl = Duration::from_secs(60);
        let got = r.resolve("edition.cnn.com", ttl).await.unwrap();
        assert_eq!(
            *got,
            vec![
                "127.0.0.2".parse::<IpAddr>().unwrap(),
                "127.0.0.3".parse().unwrap()
            ]
        );
        assert_eq!(*r.resolve("EDITION.cnn.com.", ttl).await.unwrap(), *got);
        assert_eq!(
            *r.resolve("127.0.0.7", ttl).await.unwrap(),
            vec!["127.0.0.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            *r.resolve("[::1]", ttl).await.unwrap(),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
    }
}
