//! Policy evaluation tables: order, absent attributes, addresses and ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_snapshot::authz::{Attribute, Check, Cidr, Matcher, Policy, PolicyAction, Rule};
use http::HeaderMap;

use super::*;

fn conn(tls_peer: Option<&str>) -> ConnInfo {
    ConnInfo {
        downstream_remote: "10.0.0.7:40000".parse().unwrap(),
        downstream_local: "127.0.0.1:8443".parse().unwrap(),
        sni: Some("edition.cnn.com".into()),
        peer_identity: tls_peer.map(str::to_owned),
        server_port: 443,
        tls_terminated: tls_peer.is_some(),
    }
}

fn check(attribute: Attribute, matchers: Vec<Matcher>, negated: bool) -> Check {
    Check {
        attribute,
        matchers,
        negated,
    }
}

fn rule(index: usize, from: Vec<Check>, to: Vec<Check>) -> Rule {
    Rule {
        index,
        from: if from.is_empty() { vec![] } else { vec![from] },
        to: if to.is_empty() { vec![] } else { vec![to] },
        when: vec![],
    }
}

fn policy(name: &str, action: PolicyAction, rules: Vec<Rule>) -> Policy {
    Policy {
        namespace: "ns".into(),
        name: name.into(),
        action,
        dry_run: false,
        rules,
    }
}

fn principal(p: &str) -> Check {
    check(Attribute::Principal, vec![Matcher::Exact(p.into())], false)
}

fn denied(text: &str) -> Verdict {
    Verdict::Denied(format!("rbac_access_denied_matched_policy[{text}]"))
}

#[test]
fn no_policy_allows_everything() {
    let c = conn(None);
    assert_eq!(evaluate(&[], &Attributes::of_conn(&c)), Verdict::ALLOWED);
}

#[test]
fn allow_policy_without_rules_denies_everything() {
    let c = conn(None);
    let p = [policy("empty", PolicyAction::Allow, vec![])];
    assert_eq!(evaluate(&p, &Attributes::of_conn(&c)), denied("none"));
}

#[test]
fn principals_need_mtls_and_not_principals_match_without() {
    let plain = conn(None);
    let mtls = conn(Some("spiffe://cluster.local/ns/a/sa/curl"));
    let allow = [policy(
        "allow",
        PolicyAction::Allow,
        vec![rule(
            0,
            vec![principal("cluster.local/ns/a/sa/curl")],
            vec![],
        )],
    )];
    assert_eq!(
        evaluate(&allow, &Attributes::of_conn(&mtls)),
        Verdict::ALLOWED
    );
    assert_eq!(
        evaluate(&allow, &Attributes::of_conn(&plain)),
        denied("none")
    );

    let ns = check(Attribute::Namespace, vec![Matcher::Exact("a".into())], true);
    let deny = [policy(
        "deny",
        PolicyAction::Deny,
        vec![rule(0, vec![ns], vec![])],
    )];
    assert_eq!(
        evaluate(&deny, &Attributes::of_conn(&plain)),
        denied("ns[ns]-policy[deny]-rule[0]"),
        "no peer: notNamespaces holds"
    );
    assert_eq!(
        evaluate(&deny, &Attributes::of_conn(&mtls)),
        Verdict::ALLOWED
    );
}

#[test]
fn deny_wins_with_envoys_sorted_policy_name() {
    let c = conn(None);
    let any = |i| rule(i, vec![], vec![]);
    let p = [
        policy("allow", PolicyAction::Allow, vec![any(0)]),
        policy("deny", PolicyAction::Deny, vec![any(2), any(10)]),
    ];
    // `rule[10]` sorts before `rule[2]`, as in Envoy's policy map.
    assert_eq!(
        evaluate(&p, &Attributes::of_conn(&c)),
        denied("ns[ns]-policy[deny]-rule[10]")
    );
}

#[test]
fn audit_only_logs_and_dry_run_is_reported() {
    let c = conn(None);
    let any = rule(0, vec![], vec![]);
    let mut dry = policy("dry", PolicyAction::Deny, vec![any.clone()]);
    dry.dry_run = true;
    let p = [policy("audit", PolicyAction::Audit, vec![any]), dry];
    assert_eq!(
        evaluate(&p, &Attributes::of_conn(&c)),
        Verdict::Allowed {
            dry_run_denied: Some(
                "rbac_dry_run_denied_matched_policy[ns[ns]-policy[dry]-rule[0]]".into()
            )
        }
    );
}

#[test]
fn addresses_ports_and_forwarded_for() {
    let c = conn(None);
    let cidr = |s: &str| Matcher::Cidr(Cidr::parse(s).unwrap());
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", "192.0.2.9, 10.0.0.7".parse().unwrap());
    let http = HttpAttributes {
        authority: "Edition.CNN.com",
        method: "GET",
        path: "/politics",
        headers: &headers,
    };
    let with_xff = Attributes::of_conn(&c).with_http(http);
    let deny_with = |attribute: Attribute, m: Matcher| {
        [policy(
            "d",
            PolicyAction::Deny,
            vec![rule(0, vec![check(attribute, vec![m], false)], vec![])],
        )]
    };
    let hit = denied("ns[ns]-policy[d]-rule[0]");
    let attrs = Attributes::of_conn(&c);
    assert_eq!(
        evaluate(&deny_with(Attribute::SourceIp, cidr("10.0.0.0/8")), &attrs),
        hit
    );
    assert_eq!(
        evaluate(&deny_with(Attribute::RemoteIp, cidr("10.0.0.7")), &attrs),
        hit
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::RemoteIp, cidr("192.0.2.0/24")),
            &with_xff
        ),
        hit,
        "remote.ip is the first x-forwarded-for hop"
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::SourceIp, cidr("192.0.2.0/24")),
            &with_xff
        ),
        Verdict::ALLOWED,
        "source.ip stays the peer"
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::DestinationPort, Matcher::Port(8443)),
            &attrs
        ),
        hit,
        "ports are the port the connection arrived on"
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::DestinationPort, Matcher::Port(443)),
            &attrs
        ),
        Verdict::ALLOWED
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::Host, Matcher::Exact("edition.cnn.com".into())),
            &with_xff
        ),
        hit,
        "hosts compare case-insensitively"
    );
    assert_eq!(
        evaluate(&deny_with(Attribute::Host, Matcher::Present), &attrs),
        Verdict::ALLOWED,
        "no request: HTTP attributes are absent"
    );
    assert_eq!(
        evaluate(
            &deny_with(Attribute::Sni, Matcher::Suffix(".cnn.com".into())),
            &attrs
        ),
        hit
    );
}
