//! AuthorizationPolicy compilation: which policies a gateway instance enforces (namespace,
//! selector, root namespace), how rules become checks, and how HTTP-only attributes are
//! treated on TCP chains (ALLOW rules dropped, DENY/AUDIT attributes ignored).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{NS, inputs, snap};
use egress_compile::authz::{
    Attribute, Check, Cidr, Matcher, Policy, PolicyAction, ROOT_NAMESPACE, Segment,
};

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

fn names(policies: &[Policy]) -> Vec<String> {
    policies
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect()
}

fn check(attribute: Attribute, matchers: Vec<Matcher>, negated: bool) -> Check {
    Check {
        attribute,
        matchers,
        negated,
    }
}

fn exact(v: &str) -> Matcher {
    Matcher::Exact(v.to_owned())
}

const ALLOW_ALL: &str = "  rules:\n  - {}\n";

#[test]
fn inputs_keep_authorization_policies() {
    let i = inputs(&policy(NS, "a", ALLOW_ALL));
    assert_eq!(i.authorization_policies.len(), 1);
}

#[test]
fn selection_by_namespace_selector_and_root_namespace() {
    let yaml = [
        policy(
            NS,
            "selected",
            "  selector:\n    matchLabels: {istio: asm-egress-test}\n  rules:\n  - {}\n",
        ),
        policy(
            NS,
            "other-labels",
            "  selector:\n    matchLabels: {istio: another-gateway}\n  rules:\n  - {}\n",
        ),
        policy(NS, "whole-namespace", ALLOW_ALL),
        policy(ROOT_NAMESPACE, "mesh-wide", ALLOW_ALL),
        policy(
            ROOT_NAMESPACE,
            "mesh-wide-other",
            "  selector:\n    matchLabels: {app: sleep}\n  rules:\n  - {}\n",
        ),
        policy("default", "elsewhere", ALLOW_ALL),
        policy(
            NS,
            "target-ref",
            "  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n  rules:\n  - {}\n",
        ),
    ]
    .concat();
    let s = snap(&yaml);
    let expected = vec![
        format!("{NS}/selected"),
        format!("{NS}/whole-namespace"),
        format!("{ROOT_NAMESPACE}/mesh-wide"),
    ];
    assert_eq!(names(&s.authz.http), expected);
    assert_eq!(names(&s.authz.tcp), expected);
    assert!(s.authz.http.iter().all(|p| p.action == PolicyAction::Allow));
}

#[test]
fn custom_is_skipped_with_a_warning_and_no_policy_is_empty() {
    assert!(snap("").authz.is_empty());
    let s = snap(&policy(
        NS,
        "ext",
        "  action: CUSTOM\n  provider: {name: my-ext}\n  rules:\n  - to:\n    - operation: {paths: [/admin]}\n",
    ));
    assert!(s.authz.is_empty());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("ext") && w.contains("CUSTOM is not supported")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn actions_dry_run_and_rule_names() {
    let yaml = [
        policy(NS, "deny", "  action: DENY\n  rules:\n  - {}\n"),
        policy(NS, "audit", "  action: AUDIT\n  rules:\n  - {}\n"),
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: dry\n  namespace: {NS}\n  annotations: {{istio.io/dry-run: \"true\"}}\nspec:\n{ALLOW_ALL}"
        ),
    ]
    .concat();
    let s = snap(&yaml);
    let got: Vec<(String, PolicyAction, bool)> = s
        .authz
        .http
        .iter()
        .map(|p| (p.name.clone(), p.action, p.dry_run))
        .collect();
    assert_eq!(
        got,
        vec![
            ("audit".to_owned(), PolicyAction::Audit, false),
            ("deny".to_owned(), PolicyAction::Deny, false),
            ("dry".to_owned(), PolicyAction::Allow, true),
        ]
    );
    assert_eq!(
        s.authz.http[1].rule_name(0),
        format!("ns[{NS}]-policy[deny]-rule[0]")
    );
}

#[test]
fn rules_translate_to_checks() {
    let spec = "  rules:
  - from:
    - source:
        principals: [cluster.local/ns/aks-istio-egress/sa/curl, '*/sa/sleep']
        notNamespaces: [kube-system]
        ipBlocks: [10.0.0.0/8]
    - source:
        serviceAccounts: [default/sleep]
    to:
    - operation:
        hosts: [Edition.CNN.com, '*.example.org']
        ports: ['8443']
        methods: [GET]
        paths: ['/api/{*}/items', '/static*']
    when:
    - key: request.headers[X-Team]
      values: [blue]
    - key: connection.sni
      notValues: [evil.example.org]
";
    let s = snap(&policy(NS, "p", spec));
    let rule = &s.authz.http[0].rules[0];
    assert_eq!(rule.index, 0);
    assert_eq!(
        rule.from,
        vec![
            vec![
                check(
                    Attribute::Principal,
                    vec![
                        exact("cluster.local/ns/aks-istio-egress/sa/curl"),
                        Matcher::Suffix("/sa/sleep".into())
                    ],
                    false
                ),
                check(Attribute::Namespace, vec![exact("kube-system")], true),
                check(
                    Attribute::SourceIp,
                    vec![Matcher::Cidr(Cidr::parse("10.0.0.0/8").unwrap())],
                    false
                ),
            ],
            vec![check(
                Attribute::Principal,
                vec![Matcher::Suffix("/ns/default/sa/sleep".into())],
                false
            )],
        ]
    );
    assert_eq!(
        rule.to,
        vec![vec![
            check(
                Attribute::Host,
                vec![
                    exact("edition.cnn.com"),
                    Matcher::Suffix(".example.org".into())
                ],
                false
            ),
            check(Attribute::DestinationPort, vec![Matcher::Port(8443)], false),
            check(Attribute::Method, vec![exact("GET")], false),
            check(
                Attribute::Path,
                vec![
                    Matcher::Template(vec![
                        Segment::Literal(String::new()),
                        Segment::Literal("api".into()),
                        Segment::One,
                        Segment::Literal("items".into()),
                    ]),
                    Matcher::Prefix("/static".into()),
                ],
                false
            ),
        ]]
    );
    assert_eq!(
        rule.when,
        vec![
            check(
                Attribute::Header("x-team".into()),
                vec![exact("blue")],
                false
            ),
            check(Attribute::Sni, vec![exact("evil.example.org")], true),
        ]
    );
}

#[test]
fn http_only_attributes_on_tcp_chains() {
    let allow = "  rules:
  - to:
    - operation: {hosts: [edition.cnn.com]}
  - to:
    - operation: {ports: ['8443']}
  - when:
    - key: request.headers[x-team]
      values: [blue]
";
    let deny = "  action: DENY
  rules:
  - to:
    - operation: {methods: [POST], ports: ['8443']}
    when:
    - key: connection.sni
      values: [edition.cnn.com]
    - key: request.headers[x-team]
      values: [red]
";
    let yaml = [policy(NS, "a-allow", allow), policy(NS, "b-deny", deny)].concat();
    let s = snap(&yaml);

    // HTTP chains: everything as written.
    assert_eq!(s.authz.http[0].rules.len(), 3);
    assert_eq!(s.authz.http[1].rules[0].to[0].len(), 2);
    assert_eq!(s.authz.http[1].rules[0].when.len(), 2);

    // TCP chains: ALLOW rules using HTTP-only attributes are dropped (indexes kept) ...
    let tcp_allow = &s.authz.tcp[0];
    assert_eq!(
        tcp_allow.rules.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![1]
    );
    // ... while DENY rules lose the HTTP-only attributes only.
    let tcp_deny = &s.authz.tcp[1].rules[0];
    assert_eq!(
        tcp_deny.to,
        vec![vec![check(
            Attribute::DestinationPort,
            vec![Matcher::Port(8443)],
            false
        )]]
    );
    assert_eq!(
        tcp_deny.when,
        vec![check(Attribute::Sni, vec![exact("edition.cnn.com")], false)]
    );
}

#[test]
fn allow_policy_without_rules_keeps_no_rule() {
    let s = snap(&policy(NS, "nothing", "  {}\n"));
    assert_eq!(s.authz.http.len(), 1);
    assert!(s.authz.http[0].rules.is_empty());
}
