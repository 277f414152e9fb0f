//! Istio's value checks for AuthorizationPolicy fields and `when` conditions
//! (`pkg/config/security`): empty values, service accounts, IPs and CIDRs, ports, path
//! templates and the attributes a `when` key may name.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use crate::diag::Report;

/// `security.CheckEmptyValues`.
pub(super) fn check_empty_values(key: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(String::is_empty) {
        return Err(format!("empty value not allowed, found in {key}"));
    }
    Ok(())
}

/// `security.CheckServiceAccount`.
pub(super) fn check_service_account(key: &str, values: &[String]) -> Result<(), String> {
    if values.len() > 16 {
        return Err("may not have more than 16 values".into());
    }
    let form = "expected format 'serviceAccount' or 'namespace/serviceAccount'";
    for v in values {
        if v.is_empty() {
            return Err(format!("empty value not allowed, found in {key}"));
        }
        if v.contains('*') {
            return Err(format!("wildcard not allowed, found in {key}"));
        }
        if v.matches('/').count() > 1 {
            return Err(format!("{form}, found {v:?} in {key}"));
        }
        if v.len() > 320 {
            return Err(format!(
                "value cannot exceed 320 characters, found {v:?} in {key}"
            ));
        }
        if let Some((ns, sa)) = v.split_once('/') {
            if ns.is_empty() {
                return Err(format!("{form}, found empty namespace {v:?} in {key}"));
            }
            if sa.is_empty() {
                return Err(format!("{form}, found empty serviceAccount {v:?} in {key}"));
            }
        }
    }
    Ok(())
}

/// Go's `netip.ParseAddr` error for `s`, if it is not an IP address.
fn parse_addr(s: &str) -> Result<(), String> {
    let addr = s.split_once('%').map_or(s, |(a, _)| a);
    if addr.parse::<IpAddr>().is_ok() && (addr.contains(':') || !s.contains('%')) {
        Ok(())
    } else {
        Err(format!("ParseAddr({s:?}): unable to parse IP"))
    }
}

/// `security.ValidateIPs`: every value an IP address or a CIDR prefix.
pub(super) fn validate_ips(path: &str, values: &[String], r: &mut Report) {
    for v in values {
        if let Some((addr, bits)) = v.rsplit_once('/') {
            let err = if let Err(e) = parse_addr(addr) {
                Some(e)
            } else {
                let max = if addr.contains(':') { 128 } else { 32 };
                let well_formed = !bits.is_empty()
                    && bits.bytes().all(|b| b.is_ascii_digit())
                    && !(bits.len() > 1 && bits.starts_with('0'));
                match bits.parse::<u32>() {
                    Ok(b) if well_formed && b <= max => None,
                    Ok(_) if well_formed => Some("prefix length out of range".to_owned()),
                    _ if well_formed => Some("prefix length out of range".to_owned()),
                    _ => Some(format!("bad bits after slash: {bits:?}")),
                }
            };
            if let Some(e) = err {
                r.error(
                    path,
                    format!("bad CIDR range ({v}): netip.ParsePrefix({v:?}): {e}"),
                );
            }
        } else if parse_addr(v).is_err() {
            r.error(path, format!("bad IP address ({v})"));
        }
    }
}

/// `security.ValidatePorts`: decimal numbers 0..65535 (Go's `strconv.ParseUint(p, 10, 32)`).
pub(super) fn validate_ports(ports: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in ports {
        let err = if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            Some(format!("strconv.ParseUint: parsing {p:?}: invalid syntax"))
        } else {
            match p.parse::<u64>() {
                Ok(n) if n <= u64::from(u32::MAX) => (n > 65535).then(|| "<nil>".to_owned()),
                _ => Some(format!(
                    "strconv.ParseUint: parsing {p:?}: value out of range"
                )),
            }
        };
        if let Some(e) = err {
            out.push(format!("bad port ({p}): {e}"));
        }
    }
    out
}

static VALID_LITERAL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$").ok());

/// `security.CheckValidPathTemplate`: `{*}` and `{**}` only as whole segments, `{**}` last.
pub(super) fn check_valid_path_template(key: &str, paths: &[String]) -> Result<(), String> {
    for path in paths {
        let templated = path.contains("{*}") || path.contains("{**}");
        let mut found_any = false;
        let trimmed = path.trim_matches('/');
        for glob in trimmed.split('/') {
            if glob == "{*}" && !found_any {
                continue;
            }
            if glob == "{**}" && !found_any {
                found_any = true;
                continue;
            }
            if glob == "{**}" || glob == "{*}" {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. {{**}} is not the last operator"
                ));
            }
            if glob.contains(['{', '}']) {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. Contains '{{' or '}}' beyond a supported path template"
                ));
            }
            if templated && !VALID_LITERAL.as_ref().is_some_and(|re| re.is_match(glob)) {
                return Err(format!(
                    "invalid or unsupported path {trimmed}, found in {key}. Contains segment {glob} with invalid string literal"
                ));
            }
        }
    }
    Ok(())
}

/// `security.validateMapKey`: `a[b]`.
fn validate_map_key(key: &str) -> Result<(), String> {
    match key.find('[') {
        Some(open) if key.ends_with(']') && open > 0 && open + 2 < key.len() => Ok(()),
        _ => Err(format!("bad key ({key}): should have format a[b]")),
    }
}

/// `security.ValidateAttribute`: the `when` keys Istio knows, and their values.
pub(super) fn validate_attribute(key: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(key, values)?;
    let ips = |values: &[String]| {
        let mut r = Report::default();
        validate_ips("", values, &mut r);
        match r
            .findings
            .into_iter()
            .map(|f| f.message)
            .collect::<Vec<_>>()
        {
            errs if errs.is_empty() => Ok(()),
            errs => Err(multi(&errs)),
        }
    };
    match key {
        k if k.starts_with("request.headers") => validate_map_key(k),
        k if k.starts_with("request.experimental.inline.headers") => validate_map_key(k),
        "source.ip" | "remote.ip" | "destination.ip" => ips(values),
        "source.namespace"
        | "source.principal"
        | "source.trustDomain"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        "source.serviceAccount" => check_service_account(key, values),
        k if k.starts_with("request.auth.claims") => validate_map_key(k),
        "destination.port" => match validate_ports(values) {
            errs if errs.is_empty() => Ok(()),
            errs => Err(multi(&errs)),
        },
        k if k.starts_with("experimental.envoy.filters.") => validate_map_key(k),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

/// go-multierror's rendering of several errors (without its trailing blank line).
fn multi(errs: &[String]) -> String {
    let items: Vec<String> = errs.iter().map(|e| format!("\t* {e}")).collect();
    let head = if errs.len() == 1 {
        "1 error occurred:".to_owned()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    format!("{head}\n{}", items.join("\n"))
}
