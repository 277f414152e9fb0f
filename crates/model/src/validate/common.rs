//! Istio's shared validation helpers (`pkg/config/validation/agent`), with its exact messages.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::diag::Report;

static DNS1123_LABEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$").ok());
static WILDCARD_LABEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$").ok());
static HEADER_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$").ok());
static QUALIFIED_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").ok());
static LABEL_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").ok());
static DNS1123_SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});
static DNS1123_LABEL_LOWER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").ok());

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// Istio's DNS-1123 label test (upper case accepted), at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && matches(&DNS1123_LABEL, s)
}

/// Kubernetes' lower-case RFC 1123 label (namespaces, gateway names).
pub fn is_k8s_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && matches(&DNS1123_LABEL_LOWER, s)
}

/// Kubernetes' lower-case RFC 1123 subdomain (most object names).
pub fn is_k8s_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && matches(&DNS1123_SUBDOMAIN, s)
}

fn is_wildcard_label(s: &str) -> bool {
    s.len() <= 63 && matches(&WILDCARD_LABEL, s)
}

/// RFC 7230 token (header names).
pub fn is_header_token(s: &str) -> bool {
    matches(&HEADER_NAME, s)
}

/// `CheckDNS1123Preconditions`.
pub fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// `ValidateDNS1123Labels`: every label a DNS-1123 label, the TLD not all-numeric; a trailing
/// empty label (`istio.io.`) is allowed.
pub fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let top = parts.last().copied().unwrap_or_default();
    let top = if top.is_empty() && parts.len() > 1 {
        parts[parts.len() - 2]
    } else {
        top
    };
    if !top.is_empty() && top.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() && parts.len() > 1 {
            continue;
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// `ValidateFQDN`: single-label names are valid too.
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// `ValidateWildcardDomain`: `*`, `*.bar.com`, `*foo`, `*-foo.bar.com` are valid; `foo*.bar.com`
/// and IP addresses are not.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        None => Ok(()),
        Some(r) => validate_dns1123_labels(r),
    }
}

/// `ValidateWildcardDomainForVirtualServiceBoundToGateway`: with `sni`, the auto-generated
/// `outbound_.<PORT>_._.<HOSTNAME>` form is accepted too.
pub fn validate_wildcard_domain_for_vs_bound_to_gateway(
    sni: bool,
    domain: &str,
) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        const FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{FORMAT}' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        if !port.chars().any(|c| c.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow {FORMAT} format"
            ));
        }
        let host = parts[3].trim_matches('.');
        if !host.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {host:?} invalid). should follow {FORMAT} format"
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// `ValidatePartialWildCard`.
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// `ValidatePort`.
pub fn validate_port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// `ValidatePortName`.
pub fn validate_port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// Istio's protocol names (`pkg/config/protocol`), parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Protocol {
    Tcp,
    Udp,
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tls,
    Mongo,
    Redis,
    Mysql,
    Unsupported,
}

impl Protocol {
    /// Parse a protocol name; anything unknown (including empty) is `Unsupported`.
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unsupported,
        }
    }

    /// HTTP-family (`IsHTTP`).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// `IsTCP`.
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }

    /// `IsTLS`.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }
}

/// `ValidateProtocol`: empty means auto-detect and is fine.
pub fn validate_protocol(p: &str) -> Result<(), String> {
    if !p.is_empty() && Protocol::parse(p) == Protocol::Unsupported {
        return Err(format!("unsupported protocol: {p}"));
    }
    Ok(())
}

/// True when `s` is an IP address.
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// True when `s` is a CIDR prefix.
pub fn is_cidr(s: &str) -> bool {
    s.contains('/') && s.parse::<ipnet::IpNet>().is_ok()
}

/// `ValidateIPSubnet`: a CIDR (with one `/`) or an IP address.
pub fn validate_ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        if s.parse::<ipnet::IpNet>().is_ok() {
            return Ok(());
        }
        return Err(format!("{s} is not a valid CIDR block"));
    }
    if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// Parse a Go duration (`1h2m3.5s`, `300ms`, `10s`).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err("duration must be greater than 1ms".into());
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = body;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// `ValidateDuration`: at least 1ms, millisecond precision.
pub fn validate_duration(s: &str) -> Result<(), String> {
    let d = parse_go_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err("duration must be greater than 1ms".into());
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".into());
    }
    Ok(())
}

/// Istio's `validateExportTo`: `.`, `*`, namespaces, and `~` for ServiceEntries only; a
/// DestinationRule with a workload selector may only export to its own namespace.
pub fn validate_export_to(
    r: &mut Report,
    field: &str,
    export_to: &[String],
    service_entry: bool,
    dr_with_selector: bool,
    namespace: &str,
) {
    let mut set: Vec<&str> = Vec::new();
    for (i, e) in export_to.iter().enumerate() {
        let path = crate::diag::idx(field, i);
        let key = if e == "." { namespace } else { e.as_str() };
        if set.contains(&key) {
            if key != e {
                r.error(
                    path,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                r.error(path, format!("duplicate entries in exportTo for entry {e}"));
            }
            continue;
        }
        match key {
            "~" if service_entry => set.push(key),
            "~" => r.error(
                path,
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            ),
            "*" | "." => set.push(key),
            k if is_dns1123_label(k) => set.push(key),
            _ if service_entry => r.error(
                path,
                "only .,*,~, or a valid DNS 1123 label is allowed as exportTo entry",
            ),
            _ => r.error(
                path,
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
            ),
        }
    }
    if dr_with_selector && !set.is_empty() {
        if !set.contains(&namespace) {
            r.error(field, "destination rule with workload selector cannot have exportTo beyond current namespace");
        } else if set.len() > 1 {
            r.error(
                field,
                "destination rule with workload selector cannot have multiple entries in exportTo",
            );
        }
    }
    if set.contains(&"*") && export_to.len() > 1 {
        r.error(
            field,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if service_entry && set.contains(&"~") && export_to.len() > 1 {
        r.error(
            field,
            "cannot export service entry to no one (~) and someone",
        );
    }
}

/// `ValidateIPAddress`.
pub fn validate_ip_address(addr: &str) -> Result<(), String> {
    if is_ip(addr) {
        Ok(())
    } else {
        Err(format!("{addr} is not a valid IP"))
    }
}

/// `ValidateNamespaceSlashWildcardHostname(host, isGateway, gatewaySemantics)`: every error,
/// for Gateway server hosts (`ns/` optional) and Sidecar egress hosts (`ns/` required).
pub fn validate_namespace_slash_wildcard_hostname(
    host: &str,
    is_gateway: bool,
    semantics: bool,
) -> Vec<String> {
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            return hostname_part(host, true);
        }
        return vec!["host must be of form namespace/dnsName".into()];
    };
    let mut errs = Vec::new();
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".into());
    }
    if is_gateway {
        if ns != "*" && ns != "." && (ns != "~" || !semantics) && !is_dns1123_label(ns) {
            errs.push(format!("invalid namespace value {ns:?} in gateway"));
        }
    } else if ns != "*" && ns != "." && ns != "~" && !is_dns1123_label(ns) {
        errs.push(format!("invalid namespace value {ns:?} in sidecar"));
    }
    errs.extend(hostname_part(name, is_gateway));
    errs
}

/// `validateSidecarOrGatewayHostnamePart`.
fn hostname_part(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if host != "*" && !host.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_owned());
    }
    if let Err(e) = validate_wildcard_domain(host)
        && (!is_gateway || !is_ip(host))
    {
        errs.push(e);
    }
    if let Err(e) = validate_partial_wildcard(host) {
        errs.push(e);
    }
    errs
}

/// Kubernetes label key check (`prefix/name`), in apimachinery's words.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || !is_k8s_dns1123_subdomain(p))
    {
        return Err(format!(
            "prefix part {p:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    if name.is_empty() || name.len() > 63 || !matches(&QUALIFIED_NAME, name) {
        return Err(format!(
            "name part {name:?} must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and must be no more than 63 characters"
        ));
    }
    Ok(())
}

/// Kubernetes label value check.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 || !matches(&LABEL_VALUE, value) {
        return Err(format!(
            "{value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?') and must be no more than 63 characters"
        ));
    }
    Ok(())
}

/// Istio's selector label rules (`workloadSelector.labels`, `selector.matchLabels`): no empty
/// keys, no wildcards. Errors sit at `<labels_path>.<key>`; true when any was found.
pub fn validate_selector_labels<'a>(
    r: &mut Report,
    labels_path: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> bool {
    let mut failed = false;
    for (k, v) in labels {
        let pair = format!("{k}={v}");
        let field = crate::diag::join(labels_path, k);
        if k.is_empty() {
            r.error(
                &field,
                format!("empty key is not supported in selector: {pair:?}"),
            );
            failed = true;
        }
        if k.contains('*') || v.contains('*') {
            r.error(
                &field,
                format!("wildcard is not supported in selector: {pair:?}"),
            );
            failed = true;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domain_table() {
        // agent/validation_test.go table.
        for ok in [
            "*",
            "*.bar.com",
            "*foo",
            "*foo.bar.com",
            "*-foo.bar.com",
            "foo.bar.com",
            "istio.io.",
        ] {
            assert!(validate_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for (bad, msg) in [
            // Istio reports the remainder after the first label, as its code does.
            (
                "foo.*.com",
                "domain name \"*.com\" invalid (label \"*\" invalid)",
            ),
            (
                "foo*.bar.com",
                "domain name \"foo*.bar.com\" invalid (label \"foo*\" invalid)",
            ),
            (
                "1.1.1.1",
                "domain name \"1.1.1\" invalid (top level domain \"1\" cannot be all-numeric)",
            ),
            ("", "empty domain name not allowed"),
        ] {
            assert_eq!(validate_wildcard_domain(bad).unwrap_err(), msg, "{bad}");
        }
        let long = "a".repeat(256);
        assert!(
            validate_wildcard_domain(&long)
                .unwrap_err()
                .contains("too long (max 255)")
        );
    }

    #[test]
    fn fqdn_and_partial_wildcards() {
        assert!(validate_fqdn("reviews").is_ok());
        assert!(validate_fqdn("edition.cnn.com").is_ok());
        assert!(validate_fqdn("*.cnn.com").is_err());
        assert_eq!(
            validate_partial_wildcard("*foo.com").unwrap_err(),
            "partial wildcard \"*foo.com\" not allowed"
        );
        assert!(validate_partial_wildcard("*.foo.com").is_ok());
        assert!(validate_partial_wildcard("*").is_ok());
    }

    #[test]
    fn ports_protocols_durations_subnets() {
        assert_eq!(
            validate_port(0).unwrap_err(),
            "port number 0 must be in the range 1..65535"
        );
        assert!(validate_port(65535).is_ok());
        assert_eq!(
            validate_protocol("bogus").unwrap_err(),
            "unsupported protocol: bogus"
        );
        assert!(validate_protocol("").is_ok());
        assert!(validate_protocol("hTTps").is_ok());
        assert!(validate_duration("10s").is_ok());
        assert!(validate_duration("1h2m").is_ok());
        assert_eq!(
            validate_duration("0.5ms").unwrap_err(),
            "duration must be greater than 1ms"
        );
        assert_eq!(
            validate_duration("1.5ms").unwrap_err(),
            "only durations to ms precision are supported"
        );
        assert!(validate_duration("10x").is_err());
        assert!(validate_ip_subnet("1.2.3.4/16").is_ok());
        assert_eq!(
            validate_ip_subnet("1.2.3.4/99").unwrap_err(),
            "1.2.3.4/99 is not a valid CIDR block"
        );
        assert!(
            validate_ip_subnet("001:db8::").is_ok() || validate_ip_subnet("2001:db8::").is_ok()
        );
    }

    #[test]
    fn gateway_hosts() {
        let ok = |h: &str| validate_namespace_slash_wildcard_hostname(h, true, false).is_empty();
        let errs = |h: &str, gw: bool| validate_namespace_slash_wildcard_hostname(h, gw, false);
        assert!(ok("edition.cnn.com"));
        assert!(ok("*/*.cnn.com"));
        assert!(ok("./edition.cnn.com"));
        assert!(ok("*"));
        assert!(ok("1.2.3.4"));
        assert!(
            errs("reviews", true).contains(&"short names (non FQDN) are not allowed".to_owned())
        );
        assert!(
            errs("Bad_NS/foo.com", true)
                .contains(&"invalid namespace value \"Bad_NS\" in gateway".to_owned())
        );
        assert!(
            errs("*foo.com", true)
                .contains(&"partial wildcard \"*foo.com\" not allowed".to_owned())
        );
        assert_eq!(
            errs("foo.com", false),
            vec!["host must be of form namespace/dnsName".to_owned()]
        );
    }

    #[test]
    fn export_to_rules() {
        let mut r = Report::default();
        validate_export_to(
            &mut r,
            "spec.exportTo",
            &["*".into(), "foo".into()],
            false,
            false,
            "ns",
        );
        assert!(r.errors().any(|f| f.message
            == "cannot have both public (*) and non-public exportTo values for a resource"));
        let mut r = Report::default();
        validate_export_to(&mut r, "spec.exportTo", &["~".into()], false, false, "ns");
        assert!(r.errors().any(
            |f| f.message == "exportTo ~ (none) is not allowed for Istio configuration objects"
        ));
        let mut r = Report::default();
        validate_export_to(
            &mut r,
            "spec.exportTo",
            &["ns".into(), ".".into()],
            true,
            false,
            "ns",
        );
        assert!(
            r.errors()
                .any(|f| f.message == "duplicate entries in exportTo: . and current namespace ns")
        );
    }
}
