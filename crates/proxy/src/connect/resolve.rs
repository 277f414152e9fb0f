//! Name resolution for DNS clusters: an override table first (`ProxyOptions.hosts`, how tests
//! and the local cluster send `edition.cnn.com` to loopback), then the system's DNS through
//! hickory, with answers cached for their TTL (Envoy's `respect_dns_ttl: true`).
//!
//! A name that is not in the table is sent to hickory only when system DNS is enabled
//! (`ProxyOptions.system_dns`, off by default so tests never leave loopback) and the system has
//! a resolver configuration (`/etc/resolv.conf`); otherwise it fails to resolve, which the
//! caller reports as `UH` (a DNS cluster with no hosts). `ProxyOptions.dns_server` names one
//! DNS server (UDP, then TCP on truncation) to ask instead of the system's configuration; it
//! implies `system_dns`.
//!
//! Every answer says where it came from ([`Origin`]): the resolved-address guard
//! ([`crate::guard`]) screens only what DNS said, never an IP literal or the operator's own
//! override table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;

/// Addresses of one name, in the order DNS gave them.
pub type Addrs = Arc<Vec<IpAddr>>;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The name was an IP literal.
    Literal,
    /// The operator's override table (`ProxyOptions.hosts`).
    Override,
    /// DNS (the system's configuration or `ProxyOptions.dns_server`), fresh or cached.
    Dns,
}

/// The addresses of a name and where they came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The addresses, in the order the source gave them.
    pub addrs: Addrs,
    /// Their source.
    pub origin: Origin,
}

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
        Resolver::with_dns_server(overrides, system_dns, None)
    }

    /// Like [`Resolver::new`]; with `dns_server`, names missing from `overrides` are asked of
    /// that server only (no `/etc/resolv.conf`, no `/etc/hosts`, no search domains), whatever
    /// `system_dns` says.
    pub fn with_dns_server(
        overrides: &[(String, Vec<IpAddr>)],
        system_dns: bool,
        dns_server: Option<SocketAddr>,
    ) -> Resolver {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, addrs) in overrides {
            table
                .entry(canonical(name))
                .or_default()
                .extend(addrs.iter().copied());
        }
        let system = match dns_server {
            Some(server) => Some(single_server(server)),
            None => system_resolver(system_dns),
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
        self.resolve_with_origin(host, fallback_ttl)
            .await
            .map(|r| r.addrs)
    }

    /// Like [`Resolver::resolve`], saying where the answer came from.
    pub async fn resolve_with_origin(
        &self,
        host: &str,
        fallback_ttl: Duration,
    ) -> Result<Resolved, String> {
        let trimmed = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: Arc::new(vec![ip]),
                origin: Origin::Literal,
            });
        }
        let name = canonical(host);
        if let Some(addrs) = self.overrides.get(&name) {
            return Ok(Resolved {
                addrs: Arc::clone(addrs),
                origin: Origin::Override,
            });
        }
        let addrs = self.lookup(name, fallback_ttl).await?;
        Ok(Resolved {
            addrs,
            origin: Origin::Dns,
        })
    }

    /// A DNS answer for the canonical `name`, from the cache or the server.
    async fn lookup(&self, name: String, fallback_ttl: Duration) -> Result<Addrs, String> {
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
        // The resolver states validity on the system clock; the cache keeps time on tokio's
        // (pausable) clock.
        #[allow(clippy::disallowed_types)]
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(std::time::Instant::now());
        let now = Instant::now();
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

/// A resolver asking only `server`.
fn single_server(server: SocketAddr) -> TokioResolver {
    let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
    let config = ResolverConfig::from_parts(None, Vec::new(), servers);
    let mut builder =
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    builder.build()
}

/// The system's resolver, when enabled and configured.
fn system_resolver(enabled: bool) -> Option<TokioResolver> {
    match enabled.then(TokioResolver::builder_tokio) {
        None => None,
        Some(Ok(builder)) => Some(builder.build()),
        Some(Err(err)) => {
            tracing::warn!(%err, "no system resolver configuration; only the override table answers");
            None
        }
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
        let origin = |host: &'static str| {
            let r = &r;
            async move { r.resolve_with_origin(host, ttl).await.unwrap().origin }
        };
        assert_eq!(origin("edition.cnn.com").await, Origin::Override);
        assert_eq!(origin("10.0.0.1").await, Origin::Literal);
    }
}
