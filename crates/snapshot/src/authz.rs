//! AuthorizationPolicies as the data plane evaluates them: the policies that apply to one
//! gateway instance, translated into checks once for HTTP filter chains and once for TCP ones
//! (passthrough and TLS-terminated TCP servers), where HTTP-only attributes cannot be seen.
//! `egress-compile` selects and translates them (Istio's `pilot/pkg/security/authz/model`);
//! the proxy evaluates them: DENY policies first, then, when any ALLOW policy applies, one
//! ALLOW rule must match; AUDIT policies only log. Policies annotated `istio.io/dry-run:
//! "true"` are evaluated but not enforced.

use std::net::IpAddr;

/// The mesh root namespace of the AKS add-on: policies here apply mesh-wide (Istio's own
/// default root namespace is `istio-system`).
pub const ROOT_NAMESPACE: &str = "aks-istio-system";

/// The annotation that makes a policy dry-run (evaluated and logged, never enforced).
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// The policies a gateway instance enforces, translated for each kind of filter chain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Authz {
    /// For HTTP chains (plaintext HTTP listeners and HTTPS-terminated chains), sorted by
    /// namespace and name.
    pub http: Vec<Policy>,
    /// For TCP chains (passthrough and TLS-terminated TCP servers): the same policies with
    /// HTTP-only attributes removed (DENY, AUDIT) or the rules using them dropped (ALLOW).
    pub tcp: Vec<Policy>,
}

impl Authz {
    /// True when no policy applies (everything is allowed).
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.tcp.is_empty()
    }
}

/// What a policy does when one of its rules matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyAction {
    /// Requests must match a rule of some ALLOW policy (when there is one).
    #[default]
    Allow,
    /// Requests matching a rule are denied.
    Deny,
    /// Requests matching a rule are logged only.
    Audit,
}

/// One applicable AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// ALLOW, DENY or AUDIT.
    pub action: PolicyAction,
    /// `istio.io/dry-run: "true"` (ALLOW and DENY only): evaluated, not enforced.
    pub dry_run: bool,
    /// The rules kept for this chain kind, in order (an ALLOW rule dropped on TCP chains
    /// leaves a gap in the indexes).
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Envoy's RBAC policy name of rule `index`: `ns[<ns>]-policy[<name>]-rule[<index>]`.
    pub fn rule_name(&self, index: usize) -> String {
        format!("ns[{}]-policy[{}]-rule[{index}]", self.namespace, self.name)
    }
}

/// One rule: it matches when one `from` alternative, one `to` alternative and every `when`
/// check match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    /// Index of the rule in the policy's `rules` (names the Envoy policy).
    pub index: usize,
    /// Source alternatives, each a conjunction of checks; empty = any source.
    pub from: Vec<Vec<Check>>,
    /// Operation alternatives, each a conjunction of checks; empty = any operation.
    pub to: Vec<Vec<Check>>,
    /// Conditions that must all hold.
    pub when: Vec<Check>,
}

impl Rule {
    /// True when the rule uses an attribute only HTTP requests carry.
    pub fn uses_http_only(&self) -> bool {
        self.from
            .iter()
            .chain(&self.to)
            .flatten()
            .chain(&self.when)
            .any(|c| c.attribute.http_only())
    }

    /// The rule without its HTTP-only checks (what a DENY or AUDIT rule is on a TCP chain).
    pub fn without_http_only(&self) -> Rule {
        let keep = |checks: &Vec<Check>| -> Vec<Check> {
            checks
                .iter()
                .filter(|c| !c.attribute.http_only())
                .cloned()
                .collect()
        };
        Rule {
            index: self.index,
            from: self.from.iter().map(keep).collect(),
            to: self.to.iter().map(keep).collect(),
            when: keep(&self.when),
        }
    }
}

/// One attribute compared with a list of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is compared.
    pub attribute: Attribute,
    /// The values; the check holds when any matches (or, when `negated`, none does).
    pub matchers: Vec<Matcher>,
    /// A `not*` field or `notValues`: holds when no value matches (also when the attribute
    /// is absent, e.g. no peer certificate).
    pub negated: bool,
}

/// A request or connection attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// The peer's SPIFFE identity without `spiffe://` (`cluster.local/ns/x/sa/y`); only
    /// present on mTLS-terminated connections.
    Principal,
    /// The namespace of the peer's SPIFFE identity; only present with a principal.
    Namespace,
    /// The direct peer address (`ipBlocks`, `source.ip`).
    SourceIp,
    /// The original client address (`remoteIpBlocks`, `remote.ip`): the first
    /// `x-forwarded-for` hop of an HTTP request when present, else the peer address.
    RemoteIp,
    /// The address the connection arrived on (`destination.ip`).
    DestinationIp,
    /// The port the connection arrived on (`ports`, `destination.port`): the listener's
    /// (container target) port.
    DestinationPort,
    /// `:authority`/Host, compared case-insensitively and port included. HTTP only.
    Host,
    /// `:method`. HTTP only.
    Method,
    /// The request path without its query. HTTP only.
    Path,
    /// A request header (lower-case name); several values are joined with `,`. HTTP only.
    Header(String),
    /// The TLS SNI of the connection (`connection.sni`).
    Sni,
    /// Request authentication (`requestPrincipals`, `request.auth.*`): no
    /// RequestAuthentication is supported, so it is never present. HTTP only.
    RequestAuth,
    /// An attribute this gateway does not know (never present).
    Unsupported(String),
}

impl Attribute {
    /// True for the attributes only HTTP requests carry.
    pub fn http_only(&self) -> bool {
        matches!(
            self,
            Attribute::Host
                | Attribute::Method
                | Attribute::Path
                | Attribute::Header(_)
                | Attribute::RequestAuth
        )
    }
}

/// How one value of a policy matches an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Equal (for [`Attribute::Host`], already lower-cased).
    Exact(String),
    /// `prefix*`.
    Prefix(String),
    /// `*suffix`.
    Suffix(String),
    /// `*`: the attribute is present.
    Present,
    /// An address in a CIDR block (a bare address is a /32 or /128).
    Cidr(Cidr),
    /// A port number.
    Port(u16),
    /// A path template with `{*}` (one segment) and `{**}` (the rest) segments.
    Template(Vec<Segment>),
}

/// One segment of a path template, split on `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment.
    Literal(String),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: one or more segments (only last).
    Rest,
}

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = len.unwrap_or(max);
        (prefix_len <= max).then_some(Cidr { addr, prefix_len })
    }

    /// True when `ip` is in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.prefix_len, 32);
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
    }
}
