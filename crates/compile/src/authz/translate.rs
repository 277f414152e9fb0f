//! One AuthorizationPolicy rule to [`Rule`] checks, as Istio's `authz/model` generates Envoy
//! RBAC principals and permissions: string values are exact, `prefix*`, `*suffix` or `*`
//! (present); hosts are lower-cased; paths may be `{*}`/`{**}` templates; `serviceAccounts`
//! and `trustDomains` become principal suffix/prefix matches.

use egress_model::resources::security::{Condition, Operation, Rule as ApiRule, Source};

use super::{Attribute, Check, Cidr, Matcher, Rule, Segment};
use crate::ctx::Ctx;

/// Where a problem is reported from.
struct At<'c, 'a> {
    ctx: &'c Ctx<'a>,
    ns: &'c str,
    name: &'c str,
    index: usize,
}

impl At<'_, '_> {
    fn warn(&self, what: String) {
        self.ctx.warn(format!(
            "AuthorizationPolicy {}/{} rule {}: {what}",
            self.ns, self.name, self.index
        ));
    }
}

/// Translates rule `index` of policy `ns/name`.
pub(super) fn rule(ctx: &Ctx<'_>, ns: &str, name: &str, index: usize, rule: &ApiRule) -> Rule {
    let at = At {
        ctx,
        ns,
        name,
        index,
    };
    Rule {
        index,
        from: rule
            .from
            .iter()
            .flatten()
            .map(|f| {
                f.source
                    .as_ref()
                    .map(|s| source(&at, s))
                    .unwrap_or_default()
            })
            .collect(),
        to: rule
            .to
            .iter()
            .flatten()
            .map(|t| {
                t.operation
                    .as_ref()
                    .map(|o| operation(&at, o))
                    .unwrap_or_default()
            })
            .collect(),
        when: rule
            .when
            .iter()
            .flatten()
            .flat_map(|c| condition(&at, c))
            .collect(),
    }
}

/// Adds a check of `attribute` over `values` (nothing when the list is absent or empty).
fn push(
    out: &mut Vec<Check>,
    attribute: Attribute,
    values: Option<&Vec<String>>,
    negated: bool,
    matcher: impl Fn(&str) -> Option<Matcher>,
) {
    let matchers: Vec<Matcher> = values
        .into_iter()
        .flatten()
        .filter_map(|v| matcher(v))
        .collect();
    if values.is_some_and(|v| !v.is_empty()) {
        out.push(Check {
            attribute,
            matchers,
            negated,
        });
    }
}

fn source(at: &At<'_, '_>, s: &Source) -> Vec<Check> {
    let mut out = Vec::new();
    let pat = |v: &str| Some(pattern(v));
    push(
        &mut out,
        Attribute::Principal,
        s.principals.as_ref(),
        false,
        pat,
    );
    push(
        &mut out,
        Attribute::Principal,
        s.not_principals.as_ref(),
        true,
        pat,
    );
    let ra = Attribute::RequestAuth;
    push(
        &mut out,
        ra.clone(),
        s.request_principals.as_ref(),
        false,
        pat,
    );
    push(&mut out, ra, s.not_request_principals.as_ref(), true, pat);
    push(
        &mut out,
        Attribute::Namespace,
        s.namespaces.as_ref(),
        false,
        pat,
    );
    push(
        &mut out,
        Attribute::Namespace,
        s.not_namespaces.as_ref(),
        true,
        pat,
    );
    let sa = |v: &str| {
        let (ns, sa) = v.split_once('/').unwrap_or((at.ns, v));
        Some(Matcher::Suffix(format!("/ns/{ns}/sa/{sa}")))
    };
    push(
        &mut out,
        Attribute::Principal,
        s.service_accounts.as_ref(),
        false,
        sa,
    );
    push(
        &mut out,
        Attribute::Principal,
        s.not_service_accounts.as_ref(),
        true,
        sa,
    );
    let td = |v: &str| {
        Some(if v == "*" {
            Matcher::Present
        } else {
            Matcher::Prefix(format!("{v}/"))
        })
    };
    push(
        &mut out,
        Attribute::Principal,
        s.trust_domains.as_ref(),
        false,
        td,
    );
    push(
        &mut out,
        Attribute::Principal,
        s.not_trust_domains.as_ref(),
        true,
        td,
    );
    let ip = |v: &str| cidr(at, v);
    push(
        &mut out,
        Attribute::SourceIp,
        s.ip_blocks.as_ref(),
        false,
        ip,
    );
    push(
        &mut out,
        Attribute::SourceIp,
        s.not_ip_blocks.as_ref(),
        true,
        ip,
    );
    push(
        &mut out,
        Attribute::RemoteIp,
        s.remote_ip_blocks.as_ref(),
        false,
        ip,
    );
    push(
        &mut out,
        Attribute::RemoteIp,
        s.not_remote_ip_blocks.as_ref(),
        true,
        ip,
    );
    out
}

fn operation(at: &At<'_, '_>, o: &Operation) -> Vec<Check> {
    let mut out = Vec::new();
    let host = |v: &str| Some(pattern(&v.to_ascii_lowercase()));
    push(&mut out, Attribute::Host, o.hosts.as_ref(), false, host);
    push(&mut out, Attribute::Host, o.not_hosts.as_ref(), true, host);
    let p = |v: &str| port(at, v);
    push(
        &mut out,
        Attribute::DestinationPort,
        o.ports.as_ref(),
        false,
        p,
    );
    push(
        &mut out,
        Attribute::DestinationPort,
        o.not_ports.as_ref(),
        true,
        p,
    );
    let pat = |v: &str| Some(pattern(v));
    push(&mut out, Attribute::Method, o.methods.as_ref(), false, pat);
    push(
        &mut out,
        Attribute::Method,
        o.not_methods.as_ref(),
        true,
        pat,
    );
    let path = |v: &str| Some(path_matcher(v));
    push(&mut out, Attribute::Path, o.paths.as_ref(), false, path);
    push(&mut out, Attribute::Path, o.not_paths.as_ref(), true, path);
    out
}

fn condition(at: &At<'_, '_>, c: &Condition) -> Vec<Check> {
    let key = c.key.as_deref().unwrap_or_default();
    let attribute = if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|k| k.strip_suffix(']'))
    {
        Attribute::Header(name.to_ascii_lowercase())
    } else {
        match key {
            "source.ip" => Attribute::SourceIp,
            "remote.ip" => Attribute::RemoteIp,
            "destination.ip" => Attribute::DestinationIp,
            "destination.port" => Attribute::DestinationPort,
            "source.principal" => Attribute::Principal,
            "source.namespace" => Attribute::Namespace,
            "connection.sni" => Attribute::Sni,
            k if k.starts_with("request.auth.") => Attribute::RequestAuth,
            k => {
                at.warn(format!(
                    "condition key {k:?} is not supported; it never matches"
                ));
                Attribute::Unsupported(k.to_owned())
            }
        }
    };
    let mut out = Vec::new();
    let matcher = |v: &str| match &attribute {
        Attribute::SourceIp | Attribute::RemoteIp | Attribute::DestinationIp => cidr(at, v),
        Attribute::DestinationPort => port(at, v),
        _ => Some(pattern(v)),
    };
    push(
        &mut out,
        attribute.clone(),
        c.values.as_ref(),
        false,
        matcher,
    );
    push(
        &mut out,
        attribute.clone(),
        c.not_values.as_ref(),
        true,
        matcher,
    );
    out
}

/// Istio's string match: `*` present, `*suffix`, `prefix*`, else exact.
pub(super) fn pattern(v: &str) -> Matcher {
    if v == "*" {
        Matcher::Present
    } else if let Some(suffix) = v.strip_prefix('*') {
        Matcher::Suffix(suffix.to_owned())
    } else if let Some(prefix) = v.strip_suffix('*') {
        Matcher::Prefix(prefix.to_owned())
    } else {
        Matcher::Exact(v.to_owned())
    }
}

/// A path value: a `{*}`/`{**}` template, else a string match.
fn path_matcher(v: &str) -> Matcher {
    if !v.contains('{') {
        return pattern(v);
    }
    Matcher::Template(
        v.split('/')
            .map(|s| match s {
                "{*}" => Segment::One,
                "{**}" => Segment::Rest,
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect(),
    )
}

fn cidr(at: &At<'_, '_>, v: &str) -> Option<Matcher> {
    let parsed = Cidr::parse(v).map(Matcher::Cidr);
    if parsed.is_none() {
        at.warn(format!(
            "{v:?} is not an IP address or CIDR block; value ignored"
        ));
    }
    parsed
}

fn port(at: &At<'_, '_>, v: &str) -> Option<Matcher> {
    let parsed = v.parse::<u16>().ok().map(Matcher::Port);
    if parsed.is_none() {
        at.warn(format!("{v:?} is not a port number; value ignored"));
    }
    parsed
}
