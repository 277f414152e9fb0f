//! Static egress prefixes for StaticGatewayConfigurations, locally: where kube-egress-gateway
//! provisions a public IP prefix per SGC (`status.egressIpPrefix`), this allocator hands out
//! one /31 per SGC from a configurable loopback pool, lowest free first, and can be rebuilt
//! from the prefixes already written to SGC statuses so a restarted reconciler converges.
//!
//! Also re-exported here: kube-egress-gateway's controller validation and the CNI manager's
//! refusal while a prefix is missing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use egress_model::validate::core::sgc_controller_errors;

/// Default pool: a loopback range, so the "static egress IPs" are bindable locally.
pub const DEFAULT_POOL: &str = "127.0.10.0/24";
/// Prefix length handed out per SGC (AKS's default `publicIPPrefixSize`).
pub const PREFIX_LEN: u8 = 31;
/// What kube-egress-gateway's CNI manager answers (gRPC FailedPrecondition) while an SGC has
/// no `status.egressIpPrefix`: pods annotated with it stay in `ContainerCreating`.
pub const PREFIX_NOT_READY: &str = "the egress IP prefix is not ready yet.";
/// Pod annotation that opts a pod into a StaticGatewayConfiguration (same namespace).
pub const SGC_POD_ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";

/// Allocation failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The pool string is not an IPv4 CIDR, or is narrower than one prefix.
    #[error("invalid egress prefix pool {pool:?}: {reason}")]
    InvalidPool {
        /// The pool as given.
        pool: String,
        /// Why.
        reason: String,
    },
    /// Every prefix of the pool is assigned.
    #[error("egress prefix pool {pool} is exhausted: all {count} /{len} prefixes are assigned")]
    Exhausted {
        /// The pool.
        pool: Ipv4Net,
        /// How many prefixes it holds.
        count: usize,
        /// Prefix length.
        len: u8,
    },
    /// An existing assignment is not one of the pool's prefixes.
    #[error("egress prefix {prefix} of {key} is not a /{len} prefix of pool {pool}")]
    OutOfPool {
        /// The SGC key.
        key: String,
        /// The prefix as found.
        prefix: String,
        /// The pool.
        pool: Ipv4Net,
        /// Prefix length.
        len: u8,
    },
    /// An existing assignment is already held by another SGC.
    #[error("egress prefix {prefix} of {key} is already assigned to {holder}")]
    Conflict {
        /// The SGC key.
        key: String,
        /// The prefix.
        prefix: Ipv4Net,
        /// Who holds it.
        holder: String,
    },
}

/// The allocator key of an SGC: `namespace/name`.
pub fn sgc_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// One /31 (by default) per SGC key out of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixAllocator {
    pool: Ipv4Net,
    len: u8,
    by_key: BTreeMap<String, Ipv4Net>,
    by_prefix: BTreeMap<Ipv4Net, String>,
}

impl PrefixAllocator {
    /// An empty allocator over `pool` (e.g. [`DEFAULT_POOL`]) handing out /31s.
    pub fn new(pool: &str) -> Result<Self, AllocError> {
        Self::with_prefix_len(pool, PREFIX_LEN)
    }

    /// An empty allocator handing out `/len` prefixes.
    pub fn with_prefix_len(pool: &str, len: u8) -> Result<Self, AllocError> {
        let invalid = |reason: String| AllocError::InvalidPool {
            pool: pool.to_owned(),
            reason,
        };
        let net: Ipv4Net = pool
            .parse()
            .map_err(|e: ipnet::AddrParseError| invalid(e.to_string()))?;
        if len > 32 || len < net.prefix_len() {
            return Err(invalid(format!(
                "cannot hold a /{len} prefix (pool is /{})",
                net.prefix_len()
            )));
        }
        Ok(PrefixAllocator {
            pool: net.trunc(),
            len,
            by_key: BTreeMap::new(),
            by_prefix: BTreeMap::new(),
        })
    }

    /// Rebuild from existing assignments (`namespace/name`, `status.egressIpPrefix`).
    pub fn from_assignments<'a>(
        pool: &str,
        existing: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, AllocError> {
        let mut a = Self::new(pool)?;
        for (key, prefix) in existing {
            a.adopt(key, prefix)?;
        }
        Ok(a)
    }

    /// The pool.
    pub fn pool(&self) -> Ipv4Net {
        self.pool
    }

    /// How many prefixes the pool holds.
    pub fn capacity(&self) -> usize {
        1usize << (self.len - self.pool.prefix_len())
    }

    /// Record an existing assignment. Re-adopting the same pair is a no-op; a key adopting a
    /// new prefix gives up its old one.
    pub fn adopt(&mut self, key: &str, prefix: &str) -> Result<(), AllocError> {
        let out_of_pool = || AllocError::OutOfPool {
            key: key.to_owned(),
            prefix: prefix.to_owned(),
            pool: self.pool,
            len: self.len,
        };
        let net: Ipv4Net = prefix.parse().map_err(|_| out_of_pool())?;
        if net.prefix_len() != self.len || net.trunc() != net || !self.pool.contains(&net) {
            return Err(out_of_pool());
        }
        match self.by_prefix.get(&net) {
            Some(holder) if holder == key => return Ok(()),
            Some(holder) => {
                return Err(AllocError::Conflict {
                    key: key.to_owned(),
                    prefix: net,
                    holder: holder.clone(),
                });
            }
            None => {}
        }
        self.release(key);
        self.by_key.insert(key.to_owned(), net);
        self.by_prefix.insert(net, key.to_owned());
        Ok(())
    }

    /// The prefix of `key`: its existing one, or the lowest free one.
    pub fn allocate(&mut self, key: &str) -> Result<Ipv4Net, AllocError> {
        if let Some(p) = self.by_key.get(key) {
            return Ok(*p);
        }
        let free = self
            .pool
            .subnets(self.len)
            .ok()
            .and_then(|mut s| s.find(|p| !self.by_prefix.contains_key(p)));
        let Some(p) = free else {
            return Err(AllocError::Exhausted {
                pool: self.pool,
                count: self.capacity(),
                len: self.len,
            });
        };
        self.by_key.insert(key.to_owned(), p);
        self.by_prefix.insert(p, key.to_owned());
        Ok(p)
    }

    /// Give back `key`'s prefix (the SGC was deleted).
    pub fn release(&mut self, key: &str) -> Option<Ipv4Net> {
        let p = self.by_key.remove(key)?;
        self.by_prefix.remove(&p);
        Some(p)
    }

    /// The prefix of `key`, if assigned.
    pub fn get(&self, key: &str) -> Option<Ipv4Net> {
        self.by_key.get(key).copied()
    }

    /// All assignments, by key.
    pub fn assignments(&self) -> impl Iterator<Item = (&str, Ipv4Net)> {
        self.by_key.iter().map(|(k, p)| (k.as_str(), *p))
    }
}

/// The addresses of a prefix (a /31 has two: one per gateway node in AKS).
pub fn prefix_addresses(prefix: Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    let start = u32::from(prefix.network());
    let count = 1u64 << (32 - u32::from(prefix.prefix_len()));
    (0..count).filter_map(move |i| u32::try_from(i).ok().map(|i| Ipv4Addr::from(start + i)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lowest_free_deterministic_and_idempotent() {
        let mut a = PrefixAllocator::new(DEFAULT_POOL).unwrap();
        assert_eq!(a.allocate("ns/a").unwrap().to_string(), "127.0.10.0/31");
        assert_eq!(a.allocate("ns/b").unwrap().to_string(), "127.0.10.2/31");
        assert_eq!(a.allocate("ns/a").unwrap().to_string(), "127.0.10.0/31");
        assert_eq!(a.release("ns/a").unwrap().to_string(), "127.0.10.0/31");
        assert_eq!(a.allocate("ns/c").unwrap().to_string(), "127.0.10.0/31");
        assert_eq!(a.capacity(), 128);
        assert_eq!(sgc_key("aks-istio-egress", "sgc"), "aks-istio-egress/sgc");
        let addrs: Vec<_> = prefix_addresses(a.get("ns/c").unwrap()).collect();
        assert_eq!(
            addrs,
            vec![Ipv4Addr::new(127, 0, 10, 0), Ipv4Addr::new(127, 0, 10, 1)]
        );
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut a = PrefixAllocator::new("127.0.10.0/30").unwrap();
        a.allocate("a/1").unwrap();
        a.allocate("a/2").unwrap();
        let e = a.allocate("a/3").unwrap_err();
        assert_eq!(
            e.to_string(),
            "egress prefix pool 127.0.10.0/30 is exhausted: all 2 /31 prefixes are assigned"
        );
        a.release("a/1");
        assert_eq!(a.allocate("a/3").unwrap().to_string(), "127.0.10.0/31");
    }

    #[test]
    fn rebuild_converges_and_rejects_bad_assignments() {
        let mut a = PrefixAllocator::from_assignments(
            DEFAULT_POOL,
            [("ns/x", "127.0.10.2/31"), ("ns/y", "127.0.10.6/31")],
        )
        .unwrap();
        assert_eq!(a.allocate("ns/x").unwrap().to_string(), "127.0.10.2/31");
        assert_eq!(a.allocate("ns/z").unwrap().to_string(), "127.0.10.0/31");
        assert_eq!(a.allocate("ns/w").unwrap().to_string(), "127.0.10.4/31");
        assert!(matches!(
            a.adopt("ns/q", "127.0.10.2/31"),
            Err(AllocError::Conflict { .. })
        ));
        for bad in ["127.0.11.0/31", "127.0.10.1/31", "127.0.10.0/30", "nope"] {
            assert!(matches!(
                a.adopt("ns/q", bad),
                Err(AllocError::OutOfPool { .. })
            ));
        }
        assert!(PrefixAllocator::new("10.0.0.0/32").is_err());
        assert!(PrefixAllocator::new("x").is_err());
    }

    #[test]
    fn reexports() {
        let spec = egress_model::resources::sgc::StaticGatewayConfigurationSpec::default();
        assert_eq!(
            sgc_controller_errors(&spec),
            vec!["Either GatewayNodepoolName or GatewayVmssProfile must be provided".to_owned()]
        );
        assert_eq!(PREFIX_NOT_READY, "the egress IP prefix is not ready yet.");
    }

    proptest! {
        #[test]
        fn no_two_keys_share_a_prefix(ops in proptest::collection::vec((0u8..40, any::<bool>()), 0..200)) {
            let mut a = PrefixAllocator::new("127.0.10.0/26").unwrap();
            for (k, alloc) in ops {
                let key = format!("ns/{k}");
                if alloc {
                    match a.allocate(&key) {
                        Ok(p) => prop_assert!(a.pool().contains(&p)),
                        Err(AllocError::Exhausted { .. }) => prop_assert_eq!(a.assignments().count(), 32),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                } else if let Some(p) = a.release(&key) {
                    // Released prefixes are reused first when they are the lowest free.
                    let again = a.allocate("reuse/probe").unwrap();
                    prop_assert!(again <= p);
                    a.release("reuse/probe");
                }
                let prefixes: Vec<Ipv4Net> = a.assignments().map(|(_, p)| p).collect();
                let mut dedup = prefixes.clone();
                dedup.sort();
                dedup.dedup();
                prop_assert_eq!(dedup.len(), prefixes.len());
                let pairs: Vec<(String, String)> =
                    a.assignments().map(|(k, p)| (k.to_owned(), p.to_string())).collect();
                let rebuilt = PrefixAllocator::from_assignments(
                    "127.0.10.0/26",
                    pairs.iter().map(|(k, p)| (k.as_str(), p.as_str())),
                )
                .unwrap();
                prop_assert_eq!(&rebuilt, &a);
            }
        }
    }
}
