//! AuthorizationPolicy enforcement, as Envoy's RBAC filters do it for Istio
//! (`istio-egress.md` §3.10, §3.11): the snapshot's policies (`egress_snapshot::authz`) are
//! evaluated against one HTTP request (HTTP chains, before routing) or one connection (TCP
//! chains, before connecting upstream).
//!
//! Order: DENY policies first (the matching rule whose Envoy name sorts first wins, as Envoy
//! keeps policies in a sorted map), then, when any ALLOW policy applies, one ALLOW rule must
//! match. AUDIT policies only produce a `tracing` event. Dry-run policies are evaluated the
//! same way on their own (Envoy's shadow rules) and never enforced.
//!
//! What a denial looks like: HTTP answers 403 with the body [`DENIED_BODY`]; a TCP
//! connection is closed. The access-log line carries [`Verdict::Denied`]'s text,
//! `rbac_access_denied_matched_policy[ns[<ns>]-policy[<name>]-rule[<i>]]` for a DENY rule or
//! `rbac_access_denied_matched_policy[none]` when no ALLOW rule matched, in
//! `%RESPONSE_CODE_DETAILS%` (HTTP) or `%CONNECTION_TERMINATION_DETAILS%` (TCP). A request a
//! dry-run policy would have denied goes on normally and its line carries
//! `rbac_dry_run_denied_matched_policy[…]` (same bracket text) in
//! `%CONNECTION_TERMINATION_DETAILS%`, which is otherwise `-` for such lines.

mod matcher;

use std::net::{IpAddr, SocketAddr};

use egress_snapshot::authz::{Policy, PolicyAction};
use http::HeaderMap;

use crate::ctx::ConnInfo;

pub use matcher::template_matches;

/// The body of a 403 sent for a denied HTTP request.
pub const DENIED_BODY: &str = "RBAC: access denied";

/// Prefix of the details of an enforced denial.
const DENIED: &str = "rbac_access_denied_matched_policy";

/// Prefix of the details of a dry-run policy's would-be denial.
const DRY_RUN_DENIED: &str = "rbac_dry_run_denied_matched_policy";

/// What policy evaluation sees of a request or connection.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// The direct peer address.
    pub peer: IpAddr,
    /// The original client: the first `x-forwarded-for` hop when present, else the peer.
    pub remote: IpAddr,
    /// The address and port the connection arrived on.
    pub local: SocketAddr,
    /// The peer's SPIFFE identity without `spiffe://`, on mTLS-terminated connections.
    pub principal: Option<&'a str>,
    /// The TLS SNI.
    pub sni: Option<&'a str>,
    /// The request, on HTTP chains.
    pub http: Option<HttpAttributes<'a>>,
}

/// The HTTP part of [`Attributes`].
#[derive(Debug, Clone, Copy)]
pub struct HttpAttributes<'a> {
    /// `:authority`/Host as received.
    pub authority: &'a str,
    /// `:method`.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> Attributes<'a> {
    /// The connection-level attributes of `conn` (no request).
    pub fn of_conn(conn: &'a ConnInfo) -> Attributes<'a> {
        let principal = conn
            .peer_identity
            .as_deref()
            .filter(|_| conn.tls_terminated)
            .map(|id| id.strip_prefix("spiffe://").unwrap_or(id));
        Attributes {
            peer: conn.downstream_remote.ip(),
            remote: conn.downstream_remote.ip(),
            local: conn.downstream_local,
            principal,
            sni: conn.sni.as_deref(),
            http: None,
        }
    }

    /// Adds the request; the remote address becomes the first `x-forwarded-for` hop when
    /// the request carries one.
    pub fn with_http(mut self, http: HttpAttributes<'a>) -> Attributes<'a> {
        if let Some(first) = http
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        {
            self.remote = first;
        }
        self.http = Some(http);
        self
    }
}

/// The outcome of evaluating a chain's policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; `dry_run_denied` holds `rbac_dry_run_denied_matched_policy[…]` when a dry-run
    /// policy would have denied.
    Allowed {
        /// The would-be denial of dry-run policies, for the access log.
        dry_run_denied: Option<String>,
    },
    /// Refuse, with `rbac_access_denied_matched_policy[…]` for the access log.
    Denied(String),
}

impl Verdict {
    /// Everything allowed, nothing to log.
    pub const ALLOWED: Verdict = Verdict::Allowed {
        dry_run_denied: None,
    };
}

/// Evaluates `policies` (one chain kind's, from the snapshot) for `attrs`.
pub fn evaluate(policies: &[Policy], attrs: &Attributes<'_>) -> Verdict {
    if policies.is_empty() {
        return Verdict::ALLOWED;
    }
    for p in policies.iter().filter(|p| p.action == PolicyAction::Audit) {
        if let Some(rule) = first_match(p, attrs) {
            tracing::info!(policy = %rule, "AuthorizationPolicy AUDIT rule matched");
        }
    }
    let enforced = policies.iter().filter(|p| !p.dry_run);
    if let Some(matched) = decide(enforced, attrs) {
        return Verdict::Denied(format!("{DENIED}[{matched}]"));
    }
    let dry_run = policies.iter().filter(|p| p.dry_run);
    Verdict::Allowed {
        dry_run_denied: decide(dry_run, attrs).map(|m| format!("{DRY_RUN_DENIED}[{m}]")),
    }
}

/// DENY then ALLOW over `policies`: `None` = allowed, else the matched policy text (the
/// DENY rule's name, or `none`).
fn decide<'p>(
    policies: impl Iterator<Item = &'p Policy> + Clone,
    attrs: &Attributes<'_>,
) -> Option<String> {
    let denied = policies
        .clone()
        .filter(|p| p.action == PolicyAction::Deny)
        .flat_map(|p| {
            p.rules
                .iter()
                .filter(|r| matcher::rule_matches(r, attrs))
                .map(|r| p.rule_name(r.index))
        })
        .min();
    if denied.is_some() {
        return denied;
    }
    let mut allows = policies
        .filter(|p| p.action == PolicyAction::Allow)
        .peekable();
    allows.peek()?;
    let allowed = allows.any(|p| p.rules.iter().any(|r| matcher::rule_matches(r, attrs)));
    (!allowed).then(|| "none".to_owned())
}

/// The name of the first rule of `p` that matches.
fn first_match(p: &Policy, attrs: &Attributes<'_>) -> Option<String> {
    p.rules
        .iter()
        .find(|r| matcher::rule_matches(r, attrs))
        .map(|r| p.rule_name(r.index))
}

#[cfg(test)]
mod tests;
