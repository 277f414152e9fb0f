//! A route table's virtual hosts indexed by domain, so picking the virtual host for a request
//! costs the same with ten hosts or ten thousand: exact names in a hash map, `*suffix` and
//! `prefix*` wildcards in hash maps probed with the request host's own suffixes and prefixes
//! (longest first), and the first `*`. The answer is Envoy's: an exact name wins, then the
//! longest suffix wildcard, then the longest prefix wildcard, then `*`; among equals the
//! first virtual host in order. Built once per route table when a configuration version is
//! prepared.

use std::collections::HashMap;

use egress_snapshot::snapshot::VirtualHost;

/// The domain index of one route table's virtual hosts. Built when a configuration version is
/// prepared ([`crate::ctx::Active`]), never on the request path; it belongs to the table it was
/// built from and answers only for it.
#[derive(Debug, Default)]
pub struct VhostIndex {
    exact: HashMap<String, usize>,
    suffix: HashMap<String, usize>,
    prefix: HashMap<String, usize>,
    catch_all: Option<usize>,
}

impl VhostIndex {
    /// The virtual host of `vhosts` (the table this index was built from) serving
    /// `authority` (port ignored, case-insensitive).
    pub fn select<'a>(
        &self,
        vhosts: &'a [VirtualHost],
        authority: &str,
    ) -> Option<&'a VirtualHost> {
        let host = host_without_port(authority);
        let found = self.exact.get(host.as_str()).copied().or_else(|| {
            // Longest wildcard first; a wildcard must leave at least one character.
            let longest = |map: &HashMap<String, usize>, take: fn(&str, usize) -> Option<&str>| {
                (1..host.len())
                    .rev()
                    .find_map(|len| take(&host, len).and_then(|part| map.get(part)).copied())
            };
            longest(&self.suffix, |h, len| h.get(h.len() - len..))
                .or_else(|| longest(&self.prefix, |h, len| h.get(..len)))
                .or(self.catch_all)
        });
        found.and_then(|i| vhosts.get(i))
    }

    /// The index of `vhosts`.
    pub fn build(vhosts: &[VirtualHost]) -> VhostIndex {
        let mut index = VhostIndex::default();
        for (i, vh) in vhosts.iter().enumerate() {
            for domain in &vh.domains {
                let domain = host_without_port(domain);
                if domain == "*" {
                    index.catch_all.get_or_insert(i);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    index.suffix.entry(suffix.to_owned()).or_insert(i);
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    index.prefix.entry(prefix.to_owned()).or_insert(i);
                } else {
                    index.exact.entry(domain).or_insert(i);
                }
            }
        }
        index
    }
}

/// `authority` without its port (IPv6 literals keep their brackets), lower-cased.
pub fn host_without_port(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    host.to_ascii_lowercase()
}
