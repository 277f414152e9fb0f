//! Helpers shared by VirtualService and DestinationRule validation: Istio's `labels`,
//! `visibility`, `host.Name` and string-match checks with their exact messages, plus the API
//! server's wording for CRD structural rules (`Required value`, `oneOf`, bounds).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::diag::{Report, join};
use crate::resources::virtual_service::{Destination, StringMatch};
use crate::validate::common;

static TAG_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let label = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?";
    let qualified = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
    Regex::new(&format!("^({label}(?:\\.{label})*/)?({qualified})$")).ok()
});
static LABEL_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new("^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").ok());
static HEADER_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new("^[^\\x00-\\x08\\x0A-\\x1F\\x7F]*$").ok());

/// Go's `%v` for a `float64` (shortest form; exponent below 1e-4 and from 1e21).
pub(crate) fn go_float(v: f64) -> String {
    let a = v.abs();
    if v != 0.0 && v.is_finite() && !(1e-4..1e21).contains(&a) {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{v}")
    }
}

/// Go's `%v` for a `[]string`: `[a b c]`.
pub(crate) fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// The API server's message for a missing required field.
pub(crate) fn required(r: &mut Report, path: &str) {
    r.error(path, format!("{path}: Required value"));
}

/// The API server's message for a `oneOf` schema with `set` members present (more than one).
pub(crate) fn one_of(r: &mut Report, path: &str, set: usize) {
    if set > 1 {
        r.error(
            path,
            format!(
                "{path}: Invalid value: \"object\": {path} in body must validate one and only one schema (oneOf). Found {set} valid alternatives"
            ),
        );
    }
}

/// Count the `Some`s among a oneof's members.
pub(crate) fn count_set(members: &[bool]) -> usize {
    members.iter().filter(|b| **b).count()
}

/// The CRD's bounds on a `uint32` field (`minimum: 0`, `maximum: 4294967295`), in the API
/// server's words; the webhook never sees a value outside them. True when within.
pub(crate) fn uint32(r: &mut Report, path: &str, value: i64) -> bool {
    let bound = if value < 0 {
        "greater than or equal to 0".to_owned()
    } else if value > i64::from(u32::MAX) {
        format!("less than or equal to {}", u32::MAX)
    } else {
        return true;
    };
    r.error(
        path,
        format!("{path}: Invalid value: {value}: {path} in body should be {bound}"),
    );
    false
}

/// `ValidatePort` on a `uint32` field, after the CRD's bounds.
pub(crate) fn port(r: &mut Report, path: &str, number: i64) {
    if uint32(r, path, number)
        && let Err(e) = common::validate_port(number)
    {
        r.error(path, e);
    }
}

/// The message of the CEL rule Istio's CRDs put on `google.protobuf.Duration` fields.
const DURATION_RULE: &str = "must be a valid duration greater than 1ms";

/// The CRD's rule on a duration field, `duration(self) >= duration('1ms')`, as the API server
/// reports it: a duration below 1ms (zero and negative included) fails the rule; a string CEL
/// cannot convert to a duration fails its evaluation. True when the rule holds.
pub(crate) fn crd_duration(r: &mut Report, path: &str, value: &str) -> bool {
    let magnitude = value.strip_prefix('-').map_or(value, |rest| {
        rest.strip_prefix(['+', '-']).map_or(rest, |_| "invalid")
    });
    match common::parse_go_duration(magnitude) {
        Err(_) => {
            r.error(
                path,
                format!("{path}: Invalid value: \"string\": type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: {DURATION_RULE}"),
            );
            false
        }
        Ok(d) if magnitude.len() != value.len() || d < Duration::from_millis(1) => {
            r.error(
                path,
                format!("{path}: Invalid value: \"string\": {DURATION_RULE}"),
            );
            false
        }
        Ok(_) => true,
    }
}

/// A duration field of the CRDs: the CRD's rule ([`crd_duration`]) and, when it holds, the
/// webhook's `ValidateDuration` (millisecond precision). True when both hold.
pub(crate) fn duration(r: &mut Report, path: &str, value: Option<&String>) -> bool {
    let Some(d) = value else { return true };
    crd_duration(r, path, d) && webhook_duration(r, path, Some(d))
}

/// A duration field whose CRD schema opts out of the duration rule: the webhook's
/// `ValidateDuration` only (at least 1ms, millisecond precision). True when it holds.
pub(crate) fn webhook_duration(r: &mut Report, path: &str, value: Option<&String>) -> bool {
    match value.map(|d| common::validate_duration(d)) {
        Some(Err(e)) => {
            r.error(path, e);
            false
        }
        _ => true,
    }
}

/// `labels.Instance.Validate`: every key a qualified label name (with optional DNS prefix),
/// every value a label value.
pub(crate) fn labels(r: &mut Report, path: &str, labels: Option<&BTreeMap<String, String>>) {
    for (k, v) in labels.into_iter().flatten() {
        let field = join(path, k);
        match TAG_KEY.as_ref().and_then(|re| re.captures(k)) {
            None => r.error(&field, format!("invalid tag key: {k:?}")),
            Some(c) => {
                let prefix = c.get(1).map_or(0, |m| m.as_str().len());
                let name = c.get(2).map_or(0, |m| m.as_str().len());
                if prefix > 0 && prefix - 1 > 253 {
                    r.error(
                        &field,
                        format!("invalid tag key: {k:?} (DNS prefix is too long)"),
                    );
                }
                if name > 63 {
                    r.error(&field, format!("invalid tag key: {k:?} (name is too long)"));
                }
            }
        }
        if !LABEL_VALUE.as_ref().is_some_and(|re| re.is_match(v)) {
            r.error(&field, format!("invalid tag value: {v:?}"));
        }
    }
}

/// `validateSubsetName`.
pub(crate) fn subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".into());
    }
    if !common::is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

/// `validateDestination`, plus the CRD's required `host`.
pub(crate) fn destination(r: &mut Report, path: &str, d: &Destination) {
    match d.host.as_deref() {
        None => required(r, &join(path, "host")),
        Some("*") => r.error(join(path, "host"), "invalid destination host *"),
        Some(h) => {
            if let Err(e) = common::validate_wildcard_domain(h) {
                r.error(join(path, "host"), e);
            }
        }
    }
    if let Some(s) = d.subset.as_deref().filter(|s| !s.is_empty())
        && let Err(e) = subset_name(s)
    {
        r.error(join(path, "subset"), e);
    }
    if let Some(p) = &d.port {
        port(
            r,
            &join(&join(path, "port"), "number"),
            p.number.unwrap_or_default(),
        );
    }
}

/// The CRD's `oneOf` over `exact` / `prefix` / `regex`.
pub(crate) fn string_match_one_of(r: &mut Report, path: &str, sm: &StringMatch) {
    one_of(
        r,
        path,
        count_set(&[sm.exact.is_some(), sm.prefix.is_some(), sm.regex.is_some()]),
    );
}

/// `validateStringMatch`: an empty prefix is refused; regexes are checked.
pub(crate) fn string_match(r: &mut Report, path: &str, sm: &StringMatch, place: &str) {
    string_match_one_of(r, path, sm);
    if sm.exact.is_none() && sm.prefix.as_deref() == Some("") {
        r.error(
            join(path, "prefix"),
            format!("{place:?}: prefix string match should not be empty"),
        );
    }
    string_match_regexp(r, path, sm, place);
}

/// `validateStringMatchRegexp`: only the regex form is checked (an empty prefix is fine).
pub(crate) fn string_match_regexp(r: &mut Report, path: &str, sm: &StringMatch, place: &str) {
    if sm.exact.is_some() || sm.prefix.is_some() {
        return;
    }
    if let Some(re) = &sm.regex {
        let field = join(path, "regex");
        if re.is_empty() {
            r.error(
                field,
                format!("{place:?}: regex string match should not be empty"),
            );
        } else if let Err(e) = string_regexp(re, place) {
            r.error(field, e);
        }
    }
}

/// `validateStringRegexp`: at most 1024 characters, and a valid RE2 expression.
pub(crate) fn string_regexp(re: &str, place: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "{place:?}: regex is too large, max length allowed is 1024"
        ));
    }
    crate::validate::re2::check(re).map_err(|e| {
        format!(
            "{place:?}: {e}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
        )
    })
}

/// `validateGatewayNames` (route semantics off). Like Istio, checking stops after the first
/// name without a `/` (a quirk kept for parity).
pub(crate) fn gateway_names(r: &mut Report, path: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let field = crate::diag::idx(path, i);
        let Some((ns, gw)) = name.split_once('/') else {
            if name.contains('.') {
                let parts: Vec<&str> = name.split('.').collect();
                let recommended = format!("{}/{}", parts.get(1).unwrap_or(&""), parts[0]);
                r.warn(
                    &field,
                    format!(
                        "using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: {recommended:?}"
                    ),
                );
            }
            if let Err(e) = common::validate_fqdn(name) {
                r.error(&field, e);
            }
            return;
        };
        if ns.is_empty() || gw.is_empty() {
            r.error(&field, "config namespace and gateway name cannot be empty");
        }
        if !common::is_dns1123_label(ns) {
            r.error(&field, format!("invalid value for namespace: {ns:?}"));
        }
        if !common::is_dns1123_label(gw) {
            r.error(&field, format!("invalid value for gateway name: {gw:?}"));
        }
    }
}

fn wildcarded(h: &str) -> bool {
    h.starts_with('*')
}

/// `host.Name.Matches`: the two hosts overlap.
pub(crate) fn host_matches(a: &str, b: &str) -> bool {
    match (wildcarded(a), wildcarded(b)) {
        (true, true) => {
            if a.len() < b.len() {
                b[1..].ends_with(&a[1..])
            } else {
                a[1..].ends_with(&b[1..])
            }
        }
        (true, false) => b.ends_with(&a[1..]),
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// `host.Name.SubsetOf`: every name matched by `a` is matched by `b`.
pub(crate) fn host_subset_of(a: &str, b: &str) -> bool {
    match (wildcarded(a), wildcarded(b)) {
        (true, true) => a.len() >= b.len() && a[1..].ends_with(&b[1..]),
        (true, false) => false,
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// Header names usable in matches (`ValidateHTTPHeaderNameOrJwtClaimRoute`).
pub(crate) fn header_name_or_jwt_claim(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".into());
    }
    if is_jwt_claim_route(name) {
        return Ok(());
    }
    if [":method", ":scheme", ":authority", ":path", ":status"].contains(&name) {
        return Ok(());
    }
    if !common::is_header_token(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// `jwt.ToRoutingClaim(name).Match`: `@request.auth.claims.a.b` or `@request.auth.claims[a][b]`.
pub(crate) fn is_jwt_claim_route(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    if name.len() < PREFIX.len() || !name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = &name[PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// `ValidateHTTPHeaderValue`: no control characters but TAB; `%` escapes well formed.
pub(crate) fn header_value(value: &str) -> Result<(), String> {
    if !HEADER_VALUE.as_ref().is_some_and(|re| re.is_match(value)) {
        return Err(format!("header value configuration {value} is invalid"));
    }
    header_value_syntax(value).map_err(|e| format!("header value configuration: {e}"))
}

/// Envoy's header formatter grammar (`%VAR%`, `%VAR(args)%`, `%%`), as Istio ports it.
fn header_value_syntax(v: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum S {
        Literal,
        VarName,
        ExpectArray,
        ExpectString,
        InString,
        ExpectDelimOrEnd,
        ExpectArgsEnd,
        ExpectVarEnd,
    }
    let b = v.as_bytes();
    let mut state = S::Literal;
    let mut pos = 0;
    while pos < b.len() {
        let ch = b[pos];
        let has_next = pos + 1 < b.len();
        match state {
            S::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".into());
                    }
                    if b[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = S::VarName;
                    }
                }
            }
            S::VarName => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch == b'(' {
                    state = S::ExpectArray;
                }
            }
            S::ExpectArray => {
                if ch == b'[' {
                    state = S::ExpectString;
                } else if ch != b' ' {
                    state = S::InString;
                }
            }
            S::ExpectDelimOrEnd => {
                if ch == b',' {
                    state = S::ExpectString;
                } else if ch == b']' {
                    state = S::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ',', ']', or whitespace".into(),
                    );
                }
            }
            S::ExpectString => {
                if ch == b'"' {
                    state = S::InString;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".into());
                }
            }
            S::InString => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string"
                                .into(),
                        );
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch == b'"' {
                    state = S::ExpectDelimOrEnd;
                }
            }
            S::ExpectArgsEnd => {
                if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting ')' or whitespace after '{}', but found '{}'".into());
                }
            }
            S::ExpectVarEnd => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting '%' or whitespace after".into(),
                    );
                }
            }
        }
        pos += 1;
    }
    if state != S::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{v}'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats_like_go() {
        assert_eq!(go_float(150.0), "150");
        assert_eq!(go_float(-0.1), "-0.1");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1e21), "1e+21");
    }

    #[test]
    fn hosts_overlap_and_subsets() {
        assert!(host_matches("*.foo.com", "bar.foo.com"));
        assert!(host_matches("*.com", "*.foo.com"));
        assert!(!host_matches("a.com", "b.com"));
        assert!(host_subset_of("a.foo.com", "*.foo.com"));
        assert!(host_subset_of("*.a.foo.com", "*.foo.com"));
        assert!(!host_subset_of("*.foo.com", "a.foo.com"));
        assert!(!host_subset_of("*.com", "*.foo.com"));
    }

    #[test]
    fn header_values() {
        assert!(header_value("foo").is_ok());
        assert!(header_value("%HOSTNAME%").is_ok());
        assert!(header_value("100%%").is_ok());
        assert!(header_value("%REQ(x)%").is_ok());
        assert!(header_value("abc%123").is_err());
        assert!(header_value("%START_TIME%%").is_err());
        assert!(header_value("a\nb").is_err());
    }

    #[test]
    fn auto_generated_sni() {
        assert!(
            common::validate_wildcard_domain_for_vs_bound_to_gateway(
                true,
                "outbound_.80_._.e2e.foobar.mesh"
            )
            .is_ok()
        );
        assert!(
            common::validate_wildcard_domain_for_vs_bound_to_gateway(
                false,
                "outbound_.80_._.e2e.foobar.mesh"
            )
            .is_err()
        );
        assert!(
            common::validate_wildcard_domain_for_vs_bound_to_gateway(true, "outbound_.x_._.e2e")
                .is_err()
        );
    }
}
