//! The VirtualService part of Istio's schema validation analyzer that has its own codes:
//! rules no request can reach (IST0130) and matches an earlier rule already takes
//! (IST0131), for HTTP, TCP and TLS routes. (The rest of schema validation, IST0106/IST0133,
//! is egress's own validation, not run here.)

use serde_json::{Map, Value};

use super::messages::{VS_INEFFECTIVE_MATCH, VS_UNREACHABLE_RULE};
use super::{array, of_kind, quote, report, str_of};
use crate::{Finding, Input};

/// A match as istioctl compares them (its JSON without the match `name`): zero values dropped,
/// as Go's `omitempty` drops them.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let n = normalized(v);
                if !is_zero(&n) {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn match_key(m: &Value, http: bool) -> Value {
    let mut m = m.clone();
    if http && let Some(o) = m.as_object_mut() {
        o.remove("name");
    }
    normalized(&m)
}

/// Istio's `routeName`: an HTTP route's quoted name, else `#n`.
fn route_name(route: &Value, n: usize, http: bool) -> String {
    let name = str_of(route, "name");
    if http && !name.is_empty() {
        quote(name)
    } else {
        format!("#{n}")
    }
}

/// Istio's `requestName`: an HTTP match's quoted name, else `#n`.
fn request_name(m: &Value, n: usize, http: bool) -> String {
    route_name(m, n, http)
}

/// `exact:v` or `prefix:v` of a string match, or empty.
fn exact_or_prefix(sm: Option<&Value>) -> String {
    let sm = sm.unwrap_or(&Value::Null);
    let (exact, prefix) = (str_of(sm, "exact"), str_of(sm, "prefix"));
    if !exact.is_empty() {
        format!("exact:{exact}")
    } else if !prefix.is_empty() {
        format!("prefix:{prefix}")
    } else {
        String::new()
    }
}

/// An HTTP match with a URI prefix, reduced to what the overlap check compares.
struct PrefixMatch {
    route: String,
    request: String,
    prefix: String,
    port: u64,
    method: String,
    authority: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    without_headers: Vec<(String, String)>,
}

fn string_matches(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
                .collect()
        })
        .unwrap_or_default()
}

fn prefix_match(route: String, request: String, m: &Value) -> Option<PrefixMatch> {
    let prefix = str_of(m.get("uri")?, "prefix");
    if prefix.is_empty() {
        return None;
    }
    let mut method = exact_or_prefix(m.get("method"));
    if method.is_empty() {
        method = "exact:GET".to_owned();
    }
    Some(PrefixMatch {
        route,
        request,
        prefix: prefix.to_owned(),
        port: m.get("port").and_then(Value::as_u64).unwrap_or(0),
        method,
        authority: exact_or_prefix(m.get("authority")),
        headers: string_matches(m.get("headers")),
        query: string_matches(m.get("queryParams")),
        without_headers: string_matches(m.get("withoutHeaders")),
    })
}

/// Istio's `coveredValidation`: does earlier match `a` take every request later match `b`
/// takes (b's prefix extends a's, same port, and method, authority and each header, query
/// parameter and absent header equal or with b's value a prefix of a's)?
fn covers(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let same_or_prefix = |x: &str, y: &str| x == y || x.starts_with(y);
    let maps = |x: &[(String, String)], y: &[(String, String)]| {
        x.len() == y.len()
            && x.iter().all(|(k, v)| {
                y.iter()
                    .find(|(yk, _)| yk == k)
                    .is_some_and(|(_, yv)| same_or_prefix(v, yv))
            })
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && same_or_prefix(&a.method, &b.method)
        && same_or_prefix(&a.authority, &b.authority)
        && maps(&a.headers, &b.headers)
        && maps(&a.query, &b.query)
        && maps(&a.without_headers, &b.without_headers)
}

/// Istio's `analyzeUnreachable{HTTP,TCP,TLS}Rules` over one route list.
fn analyze_rules(vs: &Input, kind: &str, out: &mut Vec<Finding>) {
    let http = kind == "http";
    let routes = array(vs.get(&["spec", kind]));
    let unreachable = |out: &mut Vec<Finding>, i: usize, rule: &str, reason: &str| {
        report(
            out,
            &VS_UNREACHABLE_RULE,
            vs,
            &format!("spec.{kind}[{i}]"),
            format!("VirtualService rule {rule} not used ({reason})."),
        );
    };
    let ineffective = |out: &mut Vec<Finding>, i: usize, rule: &str, m: &str, dup: &str| {
        report(
            out,
            &VS_INEFFECTIVE_MATCH,
            vs,
            &format!("spec.{kind}[{i}]"),
            format!(
                "VirtualService rule {rule} match {m} is not used (duplicate/overlapping match in rule {dup})."
            ),
        );
    };
    let mut seen: Vec<(Value, usize)> = Vec::new();
    let mut empty_match: Option<usize> = None;
    let mut prefixes: Vec<(usize, PrefixMatch)> = Vec::new();
    for (n, route) in routes.iter().enumerate() {
        if route.is_null() {
            continue;
        }
        let name = route_name(route, n, http);
        let matches = array(route.get("match"));
        if matches.is_empty() {
            if empty_match.is_some() {
                unreachable(out, n, &name, "only the last rule can have no matches");
            }
            empty_match = Some(n);
            continue;
        }
        let mut duplicates = 0;
        for (mn, m) in matches.iter().enumerate() {
            if empty_match.is_some() {
                unreachable(out, n, &name, "route without matches defined before");
                continue;
            }
            let key = match_key(m, http);
            if let Some((_, dup)) = seen.iter().find(|(k, _)| *k == key) {
                let dup_name = route_name(&routes[*dup], *dup, http);
                ineffective(out, n, &name, &request_name(m, mn, http), &dup_name);
                duplicates += 1;
                continue;
            }
            seen.push((key, n));
            if http && let Some(p) = prefix_match(name.clone(), request_name(m, mn, http), m) {
                prefixes.push((n, p));
            }
        }
        if duplicates == matches.len() {
            unreachable(out, n, &name, "all matches used by prior rules");
        }
    }
    for (i, (_, a)) in prefixes.iter().enumerate() {
        for (n, b) in &prefixes[i + 1..] {
            if b.prefix != a.prefix && covers(a, b) {
                ineffective(
                    out,
                    *n,
                    &b.route,
                    &format!("{} of prefix {}", b.request, b.prefix),
                    &format!("{} of prefix {} on {}", a.request, a.prefix, a.route),
                );
            }
        }
    }
}

/// `schema.ValidationAnalyzer.VirtualService`, its analysis-aware part: IST0130 for a rule
/// after one without matches, or whose matches all repeat earlier ones; IST0131 for a match
/// repeating an earlier one (ignoring its name), or an HTTP URI-prefix match an earlier prefix
/// match covers.
pub(super) fn unreachable_rules(inputs: &[Input], out: &mut Vec<Finding>) {
    for vs in of_kind(inputs, "VirtualService") {
        for kind in ["http", "tcp", "tls"] {
            analyze_rules(vs, kind, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_compare_without_names_and_zero_values() {
        let a = json!({"name": "x", "uri": {"prefix": "/a"}, "ignoreUriCase": false});
        let b = json!({"uri": {"prefix": "/a"}});
        assert_eq!(match_key(&a, true), match_key(&b, true));
        assert_ne!(
            match_key(&a, true),
            match_key(&json!({"uri": {"exact": "/a"}}), true)
        );
    }

    #[test]
    fn prefix_cover() {
        let p = |v: Value| prefix_match("#0".into(), "#0".into(), &v);
        let a = p(json!({"uri": {"prefix": "/api"}})).unwrap_or_else(|| panic!("a prefix"));
        let b = p(json!({"uri": {"prefix": "/api/v1"}})).unwrap_or_else(|| panic!("a prefix"));
        let post = p(json!({"uri": {"prefix": "/api/v1"}, "method": {"exact": "POST"}}))
            .unwrap_or_else(|| panic!("a prefix"));
        assert!(covers(&a, &b));
        assert!(!covers(&b, &a));
        assert!(!covers(&a, &post));
        assert!(p(json!({"uri": {"exact": "/"}})).is_none());
    }
}
