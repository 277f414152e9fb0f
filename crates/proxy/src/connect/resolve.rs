//! Name resolution for DNS clusters: an override table first (`ProxyOptions.hosts`, how tests
//! and the local cluster send `edition.cnn.com` to loopback), then the system's DNS through
//! hickory, with answers cached for their TTL (Envoy's `respect_dns_ttl: true`). The cache is
//! bounded ([`MAX_CACHED`] names), keeps failures for [`NEGATIVE_TTL`], and asks DNS once per
//! name however many connections want it at the same time (single flight); hickory's own
//! cache is off, so this one is the only one.
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;

/// Addresses of one name, in the order DNS gave them.
pub type Addrs = Arc<Vec<IpAddr>>;

/// A lookup in progress: every caller for the name awaits the same answer.
type Flight = Arc<OnceCell<Result<Addrs, String>>>;

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

/// A failed lookup is answered from the cache this long, so a client asking again and again
/// for a name that does not resolve (a DYNAMIC_DNS cluster's names are the client's choice)
/// costs one query per name and period.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// At most this many names are cached (Envoy's dynamic forward proxy keeps 1,024 hosts by
/// default).
pub const MAX_CACHED: usize = 1024;

/// The resolver of a proxy instance.
pub struct Resolver {
    overrides: HashMap<String, Addrs>,
    system: Option<TokioResolver>,
    cache: Mutex<DnsCache>,
    /// One query per name at a time: callers asking for a name already being looked up
    /// wait for that answer.
    inflight: Mutex<HashMap<String, Flight>>,
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
            cache: Mutex::new(DnsCache::new(MAX_CACHED)),
            inflight: Mutex::default(),
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

    /// A DNS answer for the canonical `name`: from the cache, from a query already in flight
    /// for the same name, or from a new query.
    async fn lookup(&self, name: String, fallback_ttl: Duration) -> Result<Addrs, String> {
        if let Some(answer) = self.cached(&name) {
            return answer;
        }
        let Some(system) = &self.system else {
            return Err("no resolver configured for this name".to_owned());
        };
        let flight = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(inflight.entry(name.clone()).or_default())
        };
        let answer = flight
            .get_or_init(|| async {
                // A flight that just landed may have filled the cache.
                if let Some(answer) = self.cached(&name) {
                    return answer;
                }
                let (answer, ttl) = query(system, &name, fallback_ttl).await;
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                cache.insert(name.clone(), answer.clone(), Instant::now() + ttl);
                answer
            })
            .await
            .clone();
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if inflight.get(&name).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            inflight.remove(&name);
        }
        answer
    }

    fn cached(&self, name: &str) -> Option<Result<Addrs, String>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(name, Instant::now())
    }
}

/// One DNS query for the canonical `name`: the answer and how long to keep it (its TTL, at
/// most [`MAX_TTL`]; `fallback_ttl` when DNS gave none; [`NEGATIVE_TTL`] for a failure).
async fn query(
    system: &TokioResolver,
    name: &str,
    fallback_ttl: Duration,
) -> (Result<Addrs, String>, Duration) {
    let lookup = match system.lookup_ip(format!("{name}.")).await {
        Ok(lookup) => lookup,
        Err(e) => return (Err(e.to_string()), NEGATIVE_TTL),
    };
    let addrs: Vec<IpAddr> = lookup.iter().collect();
    if addrs.is_empty() {
        return (Err("no addresses".to_owned()), NEGATIVE_TTL);
    }
    // The resolver states validity on the system clock; the cache keeps time on tokio's
    // (pausable) clock.
    #[allow(clippy::disallowed_types)]
    let ttl = lookup
        .valid_until()
        .saturating_duration_since(std::time::Instant::now());
    let ttl = if ttl.is_zero() {
        fallback_ttl
    } else {
        ttl.min(MAX_TTL)
    };
    (Ok(Arc::new(addrs)), ttl)
}

/// Answers by name, each until it expires; at most `capacity` of them. A full cache first
/// drops what has expired, then the answer that expires soonest.
#[derive(Debug)]
struct DnsCache {
    entries: HashMap<String, Cached>,
    capacity: usize,
}

#[derive(Debug)]
struct Cached {
    answer: Result<Addrs, String>,
    valid_until: Instant,
}

impl DnsCache {
    fn new(capacity: usize) -> DnsCache {
        DnsCache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The answer for `name` if it is still valid at `now`.
    fn get(&self, name: &str, now: Instant) -> Option<Result<Addrs, String>> {
        let entry = self.entries.get(name)?;
        (entry.valid_until > now).then(|| entry.answer.clone())
    }

    fn insert(&mut self, name: String, answer: Result<Addrs, String>, valid_until: Instant) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&name) {
            let now = Instant::now().min(valid_until);
            self.entries.retain(|_, c| c.valid_until > now);
            if self.entries.len() >= self.capacity
                && let Some(soonest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, c)| c.valid_until)
                    .map(|(n, _)| n.clone())
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(
            name,
            Cached {
                answer,
                valid_until,
            },
        );
    }
}

/// A resolver asking only `server`.
fn single_server(server: SocketAddr) -> TokioResolver {
    let servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
    let config = ResolverConfig::from_parts(None, Vec::new(), servers);
    let mut builder =
        TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    builder.options_mut().cache_size = 0;
    builder.build()
}

/// The system's resolver, when enabled and configured.
fn system_resolver(enabled: bool) -> Option<TokioResolver> {
    match enabled.then(TokioResolver::builder_tokio) {
        None => None,
        Some(Ok(mut builder)) => {
            builder.options_mut().cache_size = 0;
            Some(builder.build())
        }
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

    fn addrs(ip: &str) -> Addrs {
        Arc::new(vec![ip.parse().unwrap()])
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_and_keeps_failures_for_their_own_ttl() {
        let t0 = Instant::now();
        let mut cache = DnsCache::new(3);
        cache.insert(
            "a".into(),
            Ok(addrs("192.0.2.1")),
            t0 + Duration::from_secs(60),
        );
        cache.insert(
            "b".into(),
            Ok(addrs("192.0.2.2")),
            t0 + Duration::from_secs(30),
        );
        cache.insert("c".into(), Err("nxdomain".into()), t0 + NEGATIVE_TTL);
        assert!(
            matches!(cache.get("c", t0), Some(Err(_))),
            "a failure is an answer"
        );
        assert!(
            cache.get("c", t0 + NEGATIVE_TTL).is_none(),
            "until it expires"
        );
        // Full: the answer expiring soonest ("c") goes.
        cache.insert(
            "d".into(),
            Ok(addrs("192.0.2.4")),
            t0 + Duration::from_secs(90),
        );
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.get("c", t0).is_none());
        assert!(cache.get("a", t0).is_some() && cache.get("d", t0).is_some());
        // Once some have expired, they go first, whatever the rest say.
        tokio::time::advance(Duration::from_secs(31)).await;
        cache.insert(
            "e".into(),
            Ok(addrs("192.0.2.5")),
            Instant::now() + NEGATIVE_TTL,
        );
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.get("b", t0).is_none(), "expired b made room");
        assert!(cache.get("a", Instant::now()).is_some());
        // Replacing a name never evicts another.
        cache.insert(
            "a".into(),
            Ok(addrs("192.0.2.9")),
            t0 + Duration::from_secs(120),
        );
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.get("d", Instant::now()).is_some());
    }

    #[tokio::test]
    async fn one_query_per_name_however_many_ask_at_once_and_failures_are_cached() {
        let dns = egress_testkit::dns::StubDns::start(&[
            ("one.dyn.test", "192.0.2.1".parse().unwrap()),
            ("two.dyn.test", "192.0.2.2".parse().unwrap()),
        ])
        .await
        .unwrap();
        let r = Arc::new(Resolver::with_dns_server(&[], false, Some(dns.addr)));
        let ttl = Duration::from_secs(60);
        // What one lookup of a name costs on the wire (A, and AAAA when there is no A).
        r.resolve("two.dyn.test", ttl).await.unwrap();
        let per_name = dns.queries();
        assert!(per_name >= 1);
        let before = dns.queries();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let r = Arc::clone(&r);
            set.spawn(async move { r.resolve("one.dyn.test", ttl).await });
        }
        let all = set.join_all().await;
        assert_eq!(all.len(), 20);
        assert!(
            all.iter()
                .all(|a| a.as_ref().is_ok_and(|a| a[0].to_string() == "192.0.2.1"))
        );
        assert_eq!(dns.queries() - before, per_name, "20 callers, one flight");
        // Answered from the cache now.
        r.resolve("one.dyn.test", ttl).await.unwrap();
        assert_eq!(dns.queries() - before, per_name);
        // A name that does not resolve is asked once, then its failure is the answer.
        let before = dns.queries();
        assert!(r.resolve("missing.dyn.test", ttl).await.is_err());
        let asked = dns.queries() - before;
        assert!(asked >= 1);
        assert!(r.resolve("missing.dyn.test", ttl).await.is_err());
        assert_eq!(dns.queries() - before, asked, "the failure is cached");
    }
}
