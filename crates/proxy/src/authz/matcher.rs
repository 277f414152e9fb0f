//! Matching one rule's checks against [`Attributes`]: Envoy RBAC's `and_ids`/`or_ids`/`not_id`
//! semantics as Istio generates them (an absent attribute matches no value, so a negated
//! check on it holds).

use egress_snapshot::authz::{Attribute, Check, Matcher, Rule, Segment};

use super::Attributes;

/// True when `rule` matches: one `from` and one `to` alternative (any when none is given)
/// and every `when` check.
pub(super) fn rule_matches(rule: &Rule, attrs: &Attributes<'_>) -> bool {
    let any_of = |alternatives: &[Vec<Check>]| {
        alternatives.is_empty()
            || alternatives
                .iter()
                .any(|checks| checks.iter().all(|c| check(c, attrs)))
    };
    any_of(&rule.from) && any_of(&rule.to) && rule.when.iter().all(|c| check(c, attrs))
}

/// One check: any value matches (negated: none does).
fn check(c: &Check, a: &Attributes<'_>) -> bool {
    let hit = c.matchers.iter().any(|m| value_matches(&c.attribute, m, a));
    hit != c.negated
}

fn value_matches(attribute: &Attribute, m: &Matcher, a: &Attributes<'_>) -> bool {
    let http = a.http.as_ref();
    match attribute {
        Attribute::Principal => a.principal.is_some_and(|p| text_matches(m, p)),
        Attribute::Namespace => a
            .principal
            .and_then(namespace_of)
            .is_some_and(|ns| text_matches(m, ns)),
        Attribute::SourceIp => ip_matches(m, a.peer),
        Attribute::RemoteIp => ip_matches(m, a.remote),
        Attribute::DestinationIp => ip_matches(m, a.local.ip()),
        Attribute::DestinationPort => matches!(m, Matcher::Port(p) if *p == a.local.port()),
        Attribute::Host => http.is_some_and(|h| text_matches(m, &h.authority.to_ascii_lowercase())),
        Attribute::Method => http.is_some_and(|h| text_matches(m, h.method)),
        Attribute::Path => http.is_some_and(|h| text_matches(m, h.path)),
        Attribute::Header(name) => http.is_some_and(|h| {
            let values: Vec<&str> = h
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            !values.is_empty() && text_matches(m, &values.join(","))
        }),
        Attribute::Sni => a.sni.is_some_and(|s| text_matches(m, s)),
        Attribute::RequestAuth | Attribute::Unsupported(_) => false,
    }
}

/// The namespace of `td/ns/<ns>/sa/<sa>`.
fn namespace_of(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    Some(rest.split_once('/').map_or(rest, |(ns, _)| ns))
}

fn text_matches(m: &Matcher, value: &str) -> bool {
    match m {
        Matcher::Exact(e) => value == e,
        Matcher::Prefix(p) => value.starts_with(p.as_str()),
        Matcher::Suffix(s) => value.ends_with(s.as_str()),
        Matcher::Present => true,
        Matcher::Template(segments) => template_matches(segments, value),
        Matcher::Cidr(_) | Matcher::Port(_) => false,
    }
}

fn ip_matches(m: &Matcher, ip: std::net::IpAddr) -> bool {
    matches!(m, Matcher::Cidr(c) if c.contains(ip))
}

/// True when `path` matches a `{*}`/`{**}` template: `{*}` is one non-empty segment, `{**}`
/// (last) one or more segments.
pub fn template_matches(template: &[Segment], path: &str) -> bool {
    let mut parts = path.split('/');
    for (i, seg) in template.iter().enumerate() {
        match seg {
            Segment::Rest => {
                let rest: Vec<&str> = parts.collect();
                return i + 1 == template.len() && rest.first().is_some_and(|s| !s.is_empty());
            }
            Segment::One => {
                if parts.next().is_none_or(str::is_empty) {
                    return false;
                }
            }
            Segment::Literal(lit) => {
                if parts.next() != Some(lit.as_str()) {
                    return false;
                }
            }
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn template(t: &str) -> Vec<Segment> {
        t.split('/')
            .map(|s| match s {
                "{*}" => Segment::One,
                "{**}" => Segment::Rest,
                l => Segment::Literal(l.to_owned()),
            })
            .collect()
    }

    #[test]
    fn templates() {
        let t = template("/api/{*}/items");
        assert!(template_matches(&t, "/api/v1/items"));
        assert!(!template_matches(&t, "/api//items"));
        assert!(!template_matches(&t, "/api/v1/x/items"));
        let r = template("/files/{**}");
        assert!(template_matches(&r, "/files/a"));
        assert!(template_matches(&r, "/files/a/b/c"));
        assert!(!template_matches(&r, "/files"));
        assert!(!template_matches(&r, "/other/a"));
    }

    #[test]
    fn namespaces_of_principals() {
        assert_eq!(namespace_of("cluster.local/ns/foo/sa/bar"), Some("foo"));
        assert_eq!(namespace_of("cluster.local/sa/bar"), None);
    }
}
