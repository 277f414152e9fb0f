//! Istio's analysis-aware warnings on a VirtualService: rules that can never be reached
//! (`VirtualServiceUnreachableRule`) and matches shadowed by earlier ones
//! (`VirtualServiceIneffectiveMatch`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::diag::{Report, idx, join};
use crate::resources::virtual_service::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};

/// Add the unreachable / ineffective warnings for every route list of `vs`.
pub(super) fn unreachable_rules(r: &mut Report, vs: &VirtualService) {
    let http: Vec<Rule> = vs
        .http()
        .iter()
        .enumerate()
        .map(|(i, route)| Rule {
            name: route_name(route, i),
            matches: route
                .matches()
                .iter()
                .enumerate()
                .map(|(j, m)| {
                    let mut anonymous = m.clone();
                    anonymous.name = None;
                    (request_name(m, j), key(&anonymous))
                })
                .collect(),
        })
        .collect();
    analyze(r, "spec.http", &http);
    overlapping_prefixes(r, vs.http());

    let tcp: Vec<Rule> = vs
        .tcp()
        .iter()
        .enumerate()
        .map(|(i, route)| Rule {
            name: format!("#{i}"),
            matches: route
                .matches
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, m)| (format!("#{j}"), key(m)))
                .collect(),
        })
        .collect();
    analyze(r, "spec.tcp", &tcp);

    let tls: Vec<Rule> = vs
        .tls()
        .iter()
        .enumerate()
        .map(|(i, route)| Rule {
            name: format!("#{i}"),
            matches: route
                .matches
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, m)| (format!("#{j}"), key(m)))
                .collect(),
        })
        .collect();
    analyze(r, "spec.tls", &tls);
}

/// One rule as the analysis sees it: its display name and its matches (display name, key).
struct Rule {
    name: String,
    matches: Vec<(String, String)>,
}

fn key<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn route_name(route: &HttpRoute, i: usize) -> String {
    match route.name() {
        "" => format!("#{i}"),
        n => format!("{n:?}"),
    }
}

fn request_name(m: &HttpMatchRequest, j: usize) -> String {
    match m.name.as_deref().unwrap_or_default() {
        "" => format!("#{j}"),
        n => format!("{n:?}"),
    }
}

fn unused(r: &mut Report, path: String, rule: &str, reason: &str) {
    r.warn(
        path,
        format!("virtualService rule {rule} not used ({reason})"),
    );
}

fn ineffective(r: &mut Report, path: String, rule: &str, matchno: &str, dup: &str) {
    r.warn(
        path,
        format!("virtualService rule {rule} match {matchno} is not used (duplicate/overlapping match in rule {dup})"),
    );
}

/// `analyzeUnreachable{HTTP,TCP,TLS}Rules`.
fn analyze(r: &mut Report, path: &str, rules: &[Rule]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut empty_match: Option<usize> = None;
    for (i, rule) in rules.iter().enumerate() {
        let rpath = idx(path, i);
        if rule.matches.is_empty() {
            if empty_match.is_some() {
                unused(
                    r,
                    rpath,
                    &rule.name,
                    "only the last rule can have no matches",
                );
            }
            empty_match = Some(i);
            continue;
        }
        let mut duplicates = 0;
        for (j, (mname, k)) in rule.matches.iter().enumerate() {
            if empty_match.is_some() {
                unused(
                    r,
                    rpath.clone(),
                    &rule.name,
                    "route without matches defined before",
                );
                continue;
            }
            if let Some(&dup) = seen.get(k.as_str()) {
                ineffective(
                    r,
                    idx(&join(&rpath, "match"), j),
                    &rule.name,
                    mname,
                    &rules[dup].name,
                );
                duplicates += 1;
                continue;
            }
            seen.insert(k, i);
        }
        if duplicates == rule.matches.len() {
            unused(r, rpath, &rule.name, "all matches used by prior rules");
        }
    }
}

/// A URI-prefix match reduced to what the overlap check compares (`genMatchHTTPRoutes`).
struct PrefixMatch {
    route: String,
    matchno: String,
    path: String,
    prefix: String,
    port: i64,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    let Some(sm) = sm else { return String::new() };
    match (sm.exact.as_deref(), sm.prefix.as_deref()) {
        (Some(e), _) if !e.is_empty() => format!("exact:{e}"),
        (_, Some(p)) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn string_map(m: Option<&BTreeMap<String, StringMatch>>) -> BTreeMap<String, String> {
    m.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

/// `coveredValidation`: `a` (earlier) covers `b` (later).
fn covered(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    if !b.prefix.starts_with(&a.prefix) || a.port != b.port {
        return false;
    }
    let covers = |x: &str, y: &str| x == y || x.starts_with(y);
    if !covers(&a.method, &b.method) || !covers(&a.authority, &b.authority) {
        return false;
    }
    for (am, bm) in [
        (&a.headers, &b.headers),
        (&a.query_params, &b.query_params),
        (&a.without_headers, &b.without_headers),
    ] {
        if am.len() != bm.len() {
            return false;
        }
        for (k, v) in am {
            match bm.get(k) {
                Some(bv) if covers(v, bv) => {}
                _ => return false,
            }
        }
    }
    true
}

/// The prefix-overlap half of `analyzeUnreachableHTTPRules`.
fn overlapping_prefixes(r: &mut Report, routes: &[HttpRoute]) {
    let mut seen: Vec<String> = Vec::new();
    let mut found: Vec<PrefixMatch> = Vec::new();
    let mut empty_match = false;
    for (i, route) in routes.iter().enumerate() {
        if route.matches().is_empty() {
            empty_match = true;
            continue;
        }
        for (j, m) in route.matches().iter().enumerate() {
            if empty_match {
                continue;
            }
            let mut anonymous = m.clone();
            anonymous.name = None;
            let k = key(&anonymous);
            if seen.contains(&k) {
                continue;
            }
            seen.push(k);
            let Some(prefix) = m
                .uri
                .as_ref()
                .and_then(|u| u.prefix.clone())
                .filter(|p| !p.is_empty())
            else {
                continue;
            };
            let method = match exact_or_prefix(m.method.as_ref()) {
                s if s.is_empty() => "exact:GET".to_owned(),
                s => s,
            };
            found.push(PrefixMatch {
                route: route_name(route, i),
                matchno: request_name(m, j),
                path: idx(&join(&idx("spec.http", i), "match"), j),
                prefix,
                port: m.port.unwrap_or_default(),
                method,
                authority: exact_or_prefix(m.authority.as_ref()),
                headers: string_map(m.headers.as_ref()),
                query_params: string_map(m.query_params.as_ref()),
                without_headers: string_map(m.without_headers.as_ref()),
            });
        }
    }
    for (a_i, a) in found.iter().enumerate() {
        for b in &found[a_i + 1..] {
            if a.prefix == b.prefix {
                continue;
            }
            if covered(a, b) {
                ineffective(
                    r,
                    b.path.clone(),
                    &b.route,
                    &format!("{} of prefix {}", b.matchno, b.prefix),
                    &format!("{} of prefix {} on {}", a.matchno, a.prefix, a.route),
                );
            }
        }
    }
}
