//! VirtualService TLS and TCP routes, and the unreachable-rule warnings.

use super::*;

// ---------------------------------------------------------------------------------------------
// VirtualService: TLS and TCP routes.

#[test]
fn tls_routes() {
    let tls = |body: &str| {
        vs(&format!(
            "hosts:\n- edition.cnn.com\n- \"*.wiki.org\"\ngateways:\n- mesh\ntls:\n{body}"
        ))
    };
    let dest = "  route:\n  - destination:\n      host: edition.cnn.com\n";
    valid(&tls(&format!(
        "- match:\n  - sniHosts:\n    - edition.cnn.com\n    - en.wiki.org\n    destinationSubnets:\n    - 10.0.0.0/8\n    port: 443\n    sourceLabels:\n      app: curl\n    sourceNamespace: default\n{dest}"
    )));
    rejected(
        &tls(&format!("- match: []\n{dest}")),
        "spec.tls[0].match",
        "TLS route must have at least one match condition",
    );
    rejected(
        &tls(dest
            .trim_start_matches(' ')
            .replacen("route", "- route", 1)
            .as_str()),
        "spec.tls[0]",
        "TLS route must have at least one match condition",
    );
    rejected(
        &tls(&format!("- match:\n  - port: 443\n{dest}")),
        "spec.tls[0].match[0].sniHosts",
        "spec.tls[0].match[0].sniHosts: Required value",
    );
    rejected(
        &tls(&format!("- match:\n  - sniHosts: []\n{dest}")),
        "spec.tls[0].match[0].sniHosts",
        "TLS match must have at least one SNI host",
    );
    rejected(
        &tls(&format!("- match:\n  - sniHosts:\n    - foo.com\n{dest}")),
        "spec.tls[0].match[0].sniHosts[0]",
        "SNI host \"foo.com\" is not a compatible subset of any of the virtual service hosts: [edition.cnn.com, *.wiki.org]",
    );
    rejected(
        &tls(&format!("- match:\n  - sniHosts:\n    - \"*.org\"\n{dest}")),
        "spec.tls[0].match[0].sniHosts[0]",
        "SNI host \"*.org\" is not a compatible subset",
    );
    rejected(
        &tls(&format!("- match:\n  - sniHosts:\n    - foo*.com\n{dest}")),
        "spec.tls[0].match[0].sniHosts[0]",
        "domain name \"foo*.com\" invalid (label \"foo*\" invalid)",
    );
    any_warning(
        &tls(&format!("- match:\n  - sniHosts:\n    - 1.2.3.4\n{dest}")),
        "spec.tls[0].match[0].sniHosts[0]",
        "using an IP address (\"1.2.3.4\") goes against SNI spec and most clients do not support this",
    );
    rejected(
        &tls(&format!(
            "- match:\n  - sniHosts:\n    - edition.cnn.com\n    destinationSubnets:\n    - 10.0.0.0/99\n{dest}"
        )),
        "spec.tls[0].match[0].destinationSubnets[0]",
        "is not a valid CIDR block",
    );
    rejected(
        &tls(&format!(
            "- match:\n  - sniHosts:\n    - edition.cnn.com\n    port: 0\n    gateways:\n    - ns/Bad_gw\n{dest}"
        )),
        "spec.tls[0].match[0].gateways[0]",
        "invalid value for gateway name: \"Bad_gw\"",
    );
    rejected(
        &tls(&format!(
            "- match:\n  - sniHosts:\n    - edition.cnn.com\n    port: 65536\n{dest}"
        )),
        "spec.tls[0].match[0].port",
        "port number 65536 must be in the range 1..65535",
    );
    rejected(
        &tls("- match:\n  - sniHosts:\n    - edition.cnn.com\n"),
        "spec.tls[0]",
        "TLS route is required",
    );
    rejected(
        &tls(
            "- match:\n  - sniHosts:\n    - edition.cnn.com\n  route:\n  - destination:\n      host: a.com\n  - destination:\n      host: b.com\n",
        ),
        "spec.tls[0].route",
        "total destination weight = 0",
    );
}

#[test]
fn tcp_routes() {
    let tcp = |body: &str| vs(&format!("hosts:\n- mysql.example.com\ntcp:\n{body}"));
    let dest = "  route:\n  - destination:\n      host: mysql.example.com\n      port:\n        number: 3306\n";
    valid(&tcp(&format!(
        "- match:\n  - port: 3306\n    destinationSubnets:\n    - 10.1.0.0/16\n    sourceSubnet: 10.2.0.0/16\n{dest}"
    )));
    valid(&tcp(dest.replacen("  route", "- route", 1).as_str()));
    rejected(
        &tcp("- match:\n  - port: 3306\n"),
        "spec.tcp[0]",
        "TCP route is required",
    );
    rejected(
        &tcp(&format!("- match:\n  - port: 99999\n{dest}")),
        "spec.tcp[0].match[0].port",
        "port number 99999 must be in the range 1..65535",
    );
    rejected(
        &tcp(&format!(
            "- match:\n  - destinationSubnets:\n    - not-an-ip\n{dest}"
        )),
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "not-an-ip is not a valid IP",
    );
    rejected(
        &tcp("- route:\n  - destination:\n      host: a.com\n    weight: -5\n"),
        "spec.tcp[0].route[0].weight",
        "weight -5 < 0",
    );
    rejected(
        &tcp("- route:\n  - weight: 1\n"),
        "spec.tcp[0].route[0].destination",
        "spec.tcp[0].route[0].destination: Required value",
    );
}

#[test]
fn unreachable_and_ineffective_rules() {
    let d = "  route:\n  - destination:\n      host: a.com\n";
    let v = |routes: &str| vs(&format!("hosts:\n- a.com\nhttp:\n{routes}"));
    warned(
        &v(&format!("- name: first\n{d}- name: second\n{d}")),
        "spec.http[1]",
        "virtualService rule \"second\" not used (only the last rule can have no matches)",
    );
    warned(
        &v(&format!(
            "- {}- match:\n  - uri:\n      prefix: /a\n{d}",
            d.trim_start()
        )),
        "spec.http[1]",
        "virtualService rule #1 not used (route without matches defined before)",
    );
    let dup = format!(
        "- match:\n  - uri:\n      exact: /a\n{d}- match:\n  - name: again\n    uri:\n      exact: /a\n{d}"
    );
    warned(
        &v(&dup),
        "spec.http[1].match[0]",
        "virtualService rule #1 match \"again\" is not used (duplicate/overlapping match in rule #0)",
    );
    warned(
        &v(&dup),
        "spec.http[1]",
        "virtualService rule #1 not used (all matches used by prior rules)",
    );
    warned(
        &v(&format!(
            "- match:\n  - uri:\n      prefix: /foo\n{d}- match:\n  - uri:\n      prefix: /foobar\n{d}"
        )),
        "spec.http[1].match[0]",
        "virtualService rule #1 match #0 of prefix /foobar is not used (duplicate/overlapping match in rule #0 of prefix /foo on #0)",
    );
    // Different ports do not overlap.
    let w = valid(&v(&format!(
        "- match:\n  - uri:\n      prefix: /foo\n    port: 80\n{d}- match:\n  - uri:\n      prefix: /foobar\n    port: 81\n{d}"
    )));
    assert!(w.is_empty(), "{}", render(&w));
    warned(
        &vs(
            "hosts:\n- a.com\ntcp:\n- match:\n  - port: 1\n  route:\n  - destination:\n      host: a.com\n- match:\n  - port: 1\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.tcp[1].match[0]",
        "virtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0)",
    );
    warned(
        &vs(
            "hosts:\n- a.com\ntls:\n- match:\n  - sniHosts: [a.com]\n  route:\n  - destination:\n      host: a.com\n- match:\n  - sniHosts: [a.com]\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.tls[1]",
        "virtualService rule #1 not used (all matches used by prior rules)",
    );
}
