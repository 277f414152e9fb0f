//! Route selection as Envoy does it for a gateway's route table: the virtual host by
//! Host/:authority (lower-cased, port ignored; exact domains, then `*.suffix` longest first,
//! then `prefix.*` longest first, then `*`), then the first route whose conditions all hold.
//! Regexes are RE2 (via `regex`) matching the whole value, compiled once and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use egress_snapshot::snapshot::{RouteConfig, RouteMatch, StringMatch, WeightedCluster};
use http::HeaderMap;
use regex::Regex;

/// What a route is matched against.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:scheme` (`http`, or `https` after TLS termination).
    pub scheme: &'a str,
    /// `:authority` as sent (may carry a port).
    pub authority: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

pub use super::vhost_index::host_without_port;

/// The regular expressions of a configuration version's route tables, each compiled once
/// when the version is prepared ([`crate::ctx::Active`]), so matching a request takes no lock
/// and compiles nothing. Keyed by the pattern as written (`(?i:...)` around it for a
/// case-insensitive path); an invalid pattern maps to `None` and matches nothing.
#[derive(Debug, Default)]
pub struct Regexes(HashMap<String, Option<Arc<Regex>>>);

impl Regexes {
    /// Every pattern of `tables`' routes, compiled.
    pub fn of<'a>(tables: impl IntoIterator<Item = &'a RouteConfig>) -> Regexes {
        let mut out = Regexes::default();
        for rc in tables {
            for vh in &rc.virtual_hosts {
                for r in &vh.routes {
                    out.add_match(&r.matcher);
                }
            }
        }
        out
    }

    fn add_match(&mut self, m: &RouteMatch) {
        if let Some(StringMatch::Regex(r)) = &m.uri {
            if m.ignore_uri_case {
                self.add(&format!("(?i:{r})"));
            } else {
                self.add(r);
            }
        }
        let conditions = m
            .headers
            .iter()
            .chain(&m.without_headers)
            .chain(&m.query_params)
            .filter_map(|(_, c)| c.as_ref());
        for c in [&m.scheme, &m.method, &m.authority]
            .into_iter()
            .flatten()
            .chain(conditions)
        {
            if let StringMatch::Regex(r) = c {
                self.add(r);
            }
        }
    }

    fn add(&mut self, re: &str) {
        if !self.0.contains_key(re) {
            self.0.insert(re.to_owned(), compile(re));
        }
    }
}

/// True if every condition of `m` holds for `req`, with the version's compiled `regexes`.
pub fn route_matches(m: &RouteMatch, req: &RequestView<'_>, regexes: &Regexes) -> bool {
    let string_matches = |m: &StringMatch, v: &str| string_matches_with(m, v, regexes);
    if let Some(uri) = &m.uri
        && !uri_matches(uri, req.path, m.ignore_uri_case, regexes)
    {
        return false;
    }
    if let Some(scheme) = &m.scheme
        && !string_matches(scheme, req.scheme)
    {
        return false;
    }
    if let Some(method) = &m.method
        && !string_matches(method, req.method)
    {
        return false;
    }
    if let Some(authority) = &m.authority
        && !string_matches(authority, req.authority)
    {
        return false;
    }
    let header_ok = |(name, cond): &(String, Option<StringMatch>)| {
        let value = header_value(req, name);
        match (cond, value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(cond), Some(v)) => string_matches(cond, &v),
        }
    };
    if !m.headers.iter().all(header_ok) {
        return false;
    }
    if m.without_headers.iter().any(header_ok) {
        return false;
    }
    m.query_params
        .iter()
        .all(|(name, cond)| match (cond, query_param(req.query, name)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(cond), Some(v)) => string_matches(cond, v),
        })
}

/// A header's value for matching: pseudo-headers from the request line, repeated headers
/// joined with `,` (as Envoy does).
fn header_value(req: &RequestView<'_>, name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        ":method" => return Some(req.method.to_owned()),
        ":scheme" => return Some(req.scheme.to_owned()),
        ":authority" | "host" => return Some(req.authority.to_owned()),
        ":path" => {
            return Some(match req.query {
                Some(q) => format!("{}?{q}", req.path),
                None => req.path.to_owned(),
            });
        }
        _ => {}
    }
    let mut values = req
        .headers
        .get_all(name.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

/// The first value of query parameter `name` (not percent-decoded, as Envoy matches).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

fn uri_matches(m: &StringMatch, path: &str, ignore_case: bool, regexes: &Regexes) -> bool {
    match m {
        StringMatch::Exact(v) if ignore_case => path.eq_ignore_ascii_case(v),
        StringMatch::Prefix(p) if ignore_case => {
            path.len() >= p.len()
                && path.is_char_boundary(p.len())
                && path[..p.len()].eq_ignore_ascii_case(p)
        }
        StringMatch::Regex(r) if ignore_case => full_match(&format!("(?i:{r})"), path, regexes),
        other => string_matches_with(other, path, regexes),
    }
}

/// Istio StringMatch semantics (regex = whole value, RE2 syntax).
pub fn string_matches(m: &StringMatch, value: &str) -> bool {
    string_matches_with(m, value, &Regexes::default())
}

fn string_matches_with(m: &StringMatch, value: &str, regexes: &Regexes) -> bool {
    match m {
        StringMatch::Exact(v) => value == v,
        StringMatch::Prefix(p) => value.starts_with(p.as_str()),
        StringMatch::Regex(r) => full_match(r, value, regexes),
    }
}

/// `^(?:re)$` compiled; `None` (with a warning) when it does not compile.
fn compile(re: &str) -> Option<Arc<Regex>> {
    match Regex::new(&format!("^(?:{re})$")) {
        Ok(r) => Some(Arc::new(r)),
        Err(err) => {
            tracing::warn!(regex = re, error = %err, "route regex does not compile; it matches nothing");
            None
        }
    }
}

/// Whether `value` matches all of `re`: the version's compiled pattern, or (for a pattern
/// the version did not prepare) the process-wide cache; an invalid regex matches nothing.
fn full_match(re: &str, value: &str, regexes: &Regexes) -> bool {
    if let Some(prepared) = regexes.0.get(re) {
        return prepared.as_ref().is_some_and(|r| r.is_match(value));
    }
    cached_full_match(re, value)
}

/// Compiled `^(?:re)$`, cached; an invalid regex matches nothing.
fn cached_full_match(re: &str, value: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<Regex>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let compiled = {
        let mut map = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = map.get(re) {
            found.clone()
        } else {
            if map.len() > 4096 {
                map.clear();
            }
            let compiled = compile(re);
            map.insert(re.to_owned(), compiled.clone());
            compiled
        }
    };
    compiled.is_some_and(|r| r.is_match(value))
}

/// Picks a destination by weight (`roll` in `0..total weight`).
pub fn pick_weighted(clusters: &[WeightedCluster], roll: u64) -> Option<&WeightedCluster> {
    let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return clusters.first();
    }
    let mut roll = roll % total;
    for c in clusters {
        let w = u64::from(c.weight);
        if roll < w {
            return Some(c);
        }
        roll -= w;
    }
    clusters.last()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::http::vhost_index::VhostIndex;
    use egress_snapshot::snapshot::{HeaderOps, Route, RouteAction, RouteConfig, VirtualHost};

    /// The virtual host serving `authority` through a freshly built index of `rc`.
    fn select_vhost<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a VirtualHost> {
        VhostIndex::build(&rc.virtual_hosts).select(&rc.virtual_hosts, authority)
    }

    /// The linear scan the index replaced: the reference the index must agree with.
    fn select_vhost_linear<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a VirtualHost> {
        let host = host_without_port(authority);
        let mut best_suffix: Option<(usize, &VirtualHost)> = None;
        let mut best_prefix: Option<(usize, &VirtualHost)> = None;
        let mut catch_all: Option<&VirtualHost> = None;
        for vh in &rc.virtual_hosts {
            for domain in &vh.domains {
                let domain = host_without_port(domain);
                if domain == "*" {
                    catch_all.get_or_insert(vh);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    if host.len() > suffix.len()
                        && host.ends_with(suffix)
                        && best_suffix.is_none_or(|(len, _)| suffix.len() > len)
                    {
                        best_suffix = Some((suffix.len(), vh));
                    }
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    if host.len() > prefix.len()
                        && host.starts_with(prefix)
                        && best_prefix.is_none_or(|(len, _)| prefix.len() > len)
                    {
                        best_prefix = Some((prefix.len(), vh));
                    }
                } else if domain == host {
                    return Some(vh);
                }
            }
        }
        best_suffix
            .map(|(_, vh)| vh)
            .or(best_prefix.map(|(_, vh)| vh))
            .or(catch_all)
    }

    #[test]
    fn the_index_agrees_with_a_linear_scan() {
        use rand::{Rng, SeedableRng};
        // Few labels, so exact names, wildcards, ports and case collide often.
        const PARTS: &[&str] = &["a", "b", "ab", "x.a", "b.ab", "A", "a.b"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let name = |rng: &mut rand::rngs::StdRng| {
            let n = rng.random_range(1..=3);
            (0..n)
                .map(|_| PARTS[rng.random_range(0..PARTS.len())])
                .collect::<Vec<_>>()
                .join(".")
        };
        for _ in 0..300 {
            let vhosts: Vec<VirtualHost> = (0..rng.random_range(1..8))
                .map(|i| {
                    let domains: Vec<String> = (0..rng.random_range(1..4))
                        .map(|_| {
                            let n = name(&mut rng);
                            match rng.random_range(0..7) {
                                0 => "*".to_owned(),
                                1 => format!("*.{n}"),
                                2 => format!("*{n}"),
                                3 => format!("{n}*"),
                                4 => format!("{n}:80"),
                                _ => n,
                            }
                        })
                        .collect();
                    let refs: Vec<&str> = domains.iter().map(String::as_str).collect();
                    vh(&format!("vh{i}"), &refs)
                })
                .collect();
            let rc = RouteConfig {
                name: "t".into(),
                virtual_hosts: vhosts,
            };
            for _ in 0..20 {
                let mut host = name(&mut rng);
                if rng.random_bool(0.3) {
                    host.push_str(":8080");
                }
                let indexed = select_vhost(&rc, &host).map(|v| v.name.as_str());
                let linear = select_vhost_linear(&rc, &host).map(|v| v.name.as_str());
                assert_eq!(indexed, linear, "host {host:?} in {:?}", rc.virtual_hosts);
            }
        }
    }

    fn vh(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            routes: Vec::new(),
            require_tls: false,
        }
    }

    #[test]
    fn vhost_selection_order() {
        let rc = RouteConfig {
            name: "http.8080".into(),
            virtual_hosts: vec![
                vh("any", &["*"]),
                vh("short", &["*.com"]),
                vh("long", &["*.cnn.com"]),
                vh("prefix", &["api.*"]),
                vh("exact", &["edition.cnn.com"]),
            ],
        };
        let name = |a: &str| select_vhost(&rc, a).map(|v| v.name.as_str());
        assert_eq!(name("Edition.CNN.com:80"), Some("exact"));
        assert_eq!(name("www.cnn.com"), Some("long"));
        assert_eq!(name("cnn.com"), Some("short"));
        assert_eq!(name("api.example.org"), Some("prefix"));
        assert_eq!(name("example.org"), Some("any"));
        let rc = RouteConfig {
            name: "x".into(),
            virtual_hosts: vec![vh("exact", &["edition.cnn.com"])],
        };
        assert_eq!(
            select_vhost(&rc, "other.com").map(|v| v.name.as_str()),
            None
        );
        assert_eq!(
            select_vhost(&rc, "edition.cnn.com:8080").map(|v| v.name.as_str()),
            Some("exact")
        );
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("::1"), "::1");
    }

    #[test]
    fn match_conditions() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "jason".parse().unwrap());
        headers.append("x-multi", "a".parse().unwrap());
        headers.append("x-multi", "b".parse().unwrap());
        let req = RequestView {
            method: "GET",
            scheme: "http",
            authority: "edition.cnn.com",
            path: "/Politics/today",
            query: Some("lang=en&debug"),
            headers: &headers,
        };
        // Every case is decided the same way by a version's prepared regexes and by the
        // fallback cache.
        let m = |f: &dyn Fn(&mut RouteMatch)| {
            let mut m = RouteMatch::default();
            f(&mut m);
            let table = RouteConfig {
                name: "t".into(),
                virtual_hosts: vec![VirtualHost {
                    routes: vec![Route {
                        name: String::new(),
                        matcher: m.clone(),
                        action: RouteAction::DirectResponse {
                            status: 200,
                            body: None,
                        },
                        request_headers: HeaderOps::default(),
                        response_headers: HeaderOps::default(),
                    }],
                    ..vh("v", &["*"])
                }],
            };
            let prepared = Regexes::of([&table]);
            let regex_conditions = [&m.uri, &m.scheme, &m.method, &m.authority]
                .into_iter()
                .flatten()
                .chain(m.headers.iter().filter_map(|(_, c)| c.as_ref()))
                .chain(m.without_headers.iter().filter_map(|(_, c)| c.as_ref()))
                .chain(m.query_params.iter().filter_map(|(_, c)| c.as_ref()))
                .filter(|c| matches!(c, StringMatch::Regex(_)))
                .count();
            assert_eq!(prepared.0.is_empty(), regex_conditions == 0, "{m:?}");
            let fallback = route_matches(&m, &req, &Regexes::default());
            assert_eq!(route_matches(&m, &req, &prepared), fallback, "{m:?}");
            fallback
        };
        assert!(m(&|_| {}));
        assert!(m(&|m| m.uri = Some(StringMatch::Prefix("/Politics".into()))));
        assert!(!m(
            &|m| m.uri = Some(StringMatch::Prefix("/politics".into()))
        ));
        assert!(m(&|m| {
            m.uri = Some(StringMatch::Prefix("/politics".into()));
            m.ignore_uri_case = true;
        }));
        assert!(m(&|m| m.uri = Some(StringMatch::Regex("/P.*y".into()))));
        assert!(
            !m(&|m| m.uri = Some(StringMatch::Regex("/P".into()))),
            "regex matches the whole path"
        );
        assert!(m(
            &|m| m.uri = Some(StringMatch::Exact("/Politics/today".into()))
        ));
        assert!(m(&|m| m.method = Some(StringMatch::Exact("GET".into()))));
        assert!(!m(&|m| m.method = Some(StringMatch::Exact("POST".into()))));
        assert!(m(
            &|m| m.authority = Some(StringMatch::Prefix("edition".into()))
        ));
        assert!(m(&|m| m.scheme = Some(StringMatch::Exact("http".into()))));
        assert!(m(&|m| m.headers = vec![(
            "x-user".into(),
            Some(StringMatch::Exact("jason".into()))
        )]));
        assert!(m(&|m| m.headers = vec![("x-user".into(), None)]));
        assert!(!m(&|m| m.headers = vec![("x-none".into(), None)]));
        assert!(m(&|m| m.headers = vec![(
            "x-multi".into(),
            Some(StringMatch::Exact("a,b".into()))
        )]));
        assert!(!m(&|m| m.without_headers = vec![("x-user".into(), None)]));
        assert!(m(&|m| m.without_headers =
            vec![("x-user".into(), Some(StringMatch::Exact("bob".into())))]));
        assert!(m(
            &|m| m.query_params = vec![("lang".into(), Some(StringMatch::Exact("en".into())))]
        ));
        assert!(m(&|m| m.query_params = vec![("debug".into(), None)]));
        assert!(!m(
            &|m| m.query_params = vec![("lang".into(), Some(StringMatch::Regex("e".into())))]
        ));
        assert!(
            !m(&|m| m.uri = Some(StringMatch::Regex("(".into()))),
            "bad regex matches nothing"
        );
    }

    #[test]
    fn weighted_pick_distributes_by_weight() {
        let wc = |name: &str, weight| WeightedCluster {
            cluster: name.into(),
            weight,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        };
        let clusters = vec![wc("a", 75), wc("b", 25)];
        let picks: Vec<&str> = (0..100)
            .map(|r| pick_weighted(&clusters, r).unwrap().cluster.as_str())
            .collect();
        assert_eq!(picks.iter().filter(|c| **c == "a").count(), 75);
        assert!(pick_weighted(&[], 3).is_none());
    }
}
