//! VirtualService top-level rules: delegates, gateways, hosts, exportTo, strict decoding; HTTP route actions, delegation, mirrors and destinations.

use super::*;

// ---------------------------------------------------------------------------------------------
// VirtualService: top level (§2.3 hosts, gateways, delegates, exportTo).

#[test]
fn vs_delegate_restrictions() {
    let route = "http:\n- route:\n  - destination:\n      host: a.com\n";
    valid(&vs(route));
    rejected(
        &vs(&format!("gateways:\n- gw\n{route}")),
        "spec.gateways",
        "delegate virtual service must have no gateways specified",
    );
    rejected(
        &vs(
            "tls:\n- match:\n  - sniHosts:\n    - a.com\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.tls",
        "delegate virtual service must have no tls route specified",
    );
    rejected(
        &vs("tcp:\n- route:\n  - destination:\n      host: a.com\n"),
        "spec.tcp",
        "delegate virtual service must have no tcp route specified",
    );
}

#[test]
fn vs_gateway_names() {
    let body = "http:\n- route:\n  - destination:\n      host: a.com\n";
    let with = |gw: &str| vs(&format!("hosts:\n- a.com\ngateways:\n- {gw}\n{body}"));
    valid(&with("istio-system/egress"));
    valid(&with("mesh"));
    rejected(
        &with("Bad_ns/gw"),
        "spec.gateways[0]",
        "invalid value for namespace: \"Bad_ns\"",
    );
    rejected(
        &with("ns/Bad_gw"),
        "spec.gateways[0]",
        "invalid value for gateway name: \"Bad_gw\"",
    );
    rejected(
        &with("/gw"),
        "spec.gateways[0]",
        "config namespace and gateway name cannot be empty",
    );
    rejected(
        &with("bad_gw"),
        "spec.gateways[0]",
        "domain name \"bad_gw\" invalid (label \"bad_gw\" invalid)",
    );
    warned(
        &with("egress.istio-system"),
        "spec.gateways[0]",
        "using legacy gatewayName format \"egress.istio-system\"; prefer the <namespace>/<name> format: \"istio-system/egress\"",
    );
    // Match-level gateways follow the same rules.
    rejected(
        &http_vs("match:\n  - gateways:\n    - ns/Bad_gw\n"),
        "spec.http[0].match[0].gateways[0]",
        "invalid value for gateway name: \"Bad_gw\"",
    );
}

#[test]
fn vs_hosts() {
    let body = "http:\n- route:\n  - destination:\n      host: a.com\n";
    rejected(
        &vs(&format!("hosts:\n- \"*\"\n{body}")),
        "spec.hosts[0]",
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
    );
    rejected(
        &vs(&format!("hosts:\n- \"*\"\ngateways:\n- mesh\n- gw\n{body}")),
        "spec.hosts[0]",
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
    );
    valid(&vs(&format!("hosts:\n- \"*\"\ngateways:\n- gw\n{body}")));
    valid(&vs(&format!("hosts:\n- 10.1.2.3\n{body}")));
    valid(&vs(&format!("hosts:\n- reviews\n- \"*.cnn.com\"\n{body}")));
    rejected(
        &vs(&format!("hosts:\n- foo.*.com\n{body}")),
        "spec.hosts[0]",
        "domain name \"*.com\" invalid (label \"*\" invalid)",
    );
    rejected(
        &vs(&format!("hosts:\n- \"*.foo.com\"\n- bar.foo.com\n{body}")),
        "spec.hosts[1]",
        "duplicate hosts in virtual service: *.foo.com & bar.foo.com",
    );
    rejected(
        &vs(&format!("hosts:\n- a.com\n- a.com\n{body}")),
        "spec.hosts[1]",
        "duplicate hosts in virtual service: a.com & a.com",
    );
    // The auto-generated SNI form is accepted for gateway-only VirtualServices with SNI hosts.
    valid(&vs(
        "hosts:\n- outbound_.80_._.e2e.foobar.mesh\ngateways:\n- gw\ntls:\n- match:\n  - sniHosts:\n    - outbound_.80_._.e2e.foobar.mesh\n  route:\n  - destination:\n      host: a.com\n",
    ));
    rejected(
        &vs(&format!(
            "hosts:\n- outbound_.80_._.e2e.foobar.mesh\n{body}"
        )),
        "spec.hosts[0]",
        "invalid (label \"outbound_\" invalid)",
    );
}

#[test]
fn vs_requires_some_routes() {
    rejected(
        &vs("hosts:\n- a.com\n"),
        "spec",
        "http, tcp or tls must be provided in virtual service",
    );
    rejected(
        &vs("hosts:\n- a.com\nhttp: []\n"),
        "spec",
        "http, tcp or tls must be provided in virtual service",
    );
}

#[test]
fn vs_jwt_claim_routing_only_on_gateways() {
    let m = "match:\n  - headers:\n      \"@request.auth.claims.group\":\n        exact: admin\n";
    rejected(
        &http_vs(m),
        "spec.http[0].match[0].headers.@request.auth.claims.group",
        "JWT claim based routing (key: @request.auth.claims.group) is only supported for gateway, found no gateways: []",
    );
    let gw = vs(&format!(
        "hosts:\n- edition.cnn.com\ngateways:\n- gw\nhttp:\n- {}{ROUTE}",
        m.trim_start()
    ));
    valid(&gw);
    rejected(
        &vs(
            "hosts:\n- a.com\ngateways:\n- mesh\nhttp:\n- match:\n  - withoutHeaders:\n      \"@request.auth.claims[group]\":\n        exact: x\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.http[0].match[0].withoutHeaders.@request.auth.claims[group]",
        "is only supported for gateway, found no gateways: [mesh]",
    );
}

#[test]
fn vs_export_to() {
    let with = |e: &str| {
        vs(&format!(
            "hosts:\n- a.com\nexportTo: {e}\nhttp:\n- route:\n  - destination:\n      host: a.com\n"
        ))
    };
    valid(&with("[\".\"]"));
    valid(&with("[\"*\"]"));
    valid(&with("[\".\", \"other\"]"));
    rejected(
        &with("[\"~\"]"),
        "spec.exportTo[0]",
        "exportTo ~ (none) is not allowed for Istio configuration objects",
    );
    rejected(
        &with("[\"default\", \".\"]"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo: . and current namespace default",
    );
    rejected(
        &with("[\".\", \"default\"]"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo for entry default",
    );
    rejected(
        &with("[\"ns\", \"ns\"]"),
        "spec.exportTo[1]",
        "duplicate entries in exportTo for entry ns",
    );
    rejected(
        &with("[\"*\", \"ns\"]"),
        "spec.exportTo",
        "cannot have both public (*) and non-public exportTo values for a resource",
    );
    rejected(
        &with("[\"bad_ns\"]"),
        "spec.exportTo[0]",
        "only .,*, or a valid DNS 1123 label is allowed as exportTo entry",
    );
}

#[test]
fn vs_strict_decoding() {
    rejected(
        &http_vs("foo: bar\n"),
        "spec.http[0].foo",
        "unknown field \"spec.http[0].foo\"",
    );
    rejected(
        &http_vs("redirect:\n    derivePort: FROM_NOWHERE\n"),
        "spec.http[0].redirect.derivePort",
        "Unsupported value: \"FROM_NOWHERE\": supported values: \"FROM_PROTOCOL_DEFAULT\", \"FROM_REQUEST_PORT\"",
    );
    rejected(
        &http_vs("corsPolicy:\n    unmatchedPreflights: DROP\n"),
        "spec.http[0].corsPolicy.unmatchedPreflights",
        "supported values: \"UNSPECIFIED\", \"FORWARD\", \"IGNORE\"",
    );
}

// ---------------------------------------------------------------------------------------------
// VirtualService: HTTP routes (§2.3 HTTPRoute, destinations, matches).

#[test]
fn http_route_actions_are_exclusive() {
    let base = "hosts:\n- a.com\nhttp:\n- ";
    let dest = "route:\n  - destination:\n      host: a.com\n";
    let redirect = "redirect:\n    uri: /new\n";
    let direct = "directResponse:\n    status: 503\n";
    rejected(
        &vs(&format!("{base}name: r\n")),
        "spec.http[0]",
        "HTTP route, redirect or direct_response is required",
    );
    valid(&vs(&format!("{base}{redirect}")));
    valid(&vs(&format!("{base}{direct}")));
    rejected(
        &vs(&format!("{base}{redirect}  {dest}")),
        "spec.http[0].route",
        "HTTP route cannot contain both route and redirect",
    );
    rejected(
        &vs(&format!(
            "{base}{redirect}  fault:\n    abort:\n      httpStatus: 500\n"
        )),
        "spec.http[0].fault",
        "HTTP route cannot contain both fault and redirect",
    );
    rejected(
        &vs(&format!("{base}{redirect}  rewrite:\n    uri: /x\n")),
        "spec.http[0].rewrite",
        "HTTP route rule cannot contain both rewrite and redirect",
    );
    rejected(
        &vs(&format!("{base}{redirect}  {direct}")),
        "spec.http[0].directResponse",
        "HTTP route rule cannot contain both direct_response and redirect",
    );
    rejected(
        &vs(&format!("{base}{direct}  {dest}")),
        "spec.http[0].route",
        "HTTP route cannot contain both route and direct_response",
    );
    rejected(
        &vs(&format!(
            "{base}{direct}  fault:\n    delay:\n      fixedDelay: 1s\n"
        )),
        "spec.http[0].fault",
        "HTTP route cannot contain both fault and direct_response",
    );
    rejected(
        &vs(&format!("{base}{direct}  rewrite:\n    uri: /x\n")),
        "spec.http[0].rewrite",
        "HTTP route rule cannot contain both rewrite and direct_response",
    );
}

#[test]
fn http_delegation() {
    valid(&vs(
        "hosts:\n- a.com\nhttp:\n- name: root\n  delegate:\n    name: child\n    namespace: ns\n",
    ));
    rejected(
        &vs(
            "hosts:\n- a.com\nhttp:\n- name: root\n  delegate:\n    name: child\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.http[0].route",
        "root HTTP route root must not specify route",
    );
    rejected(
        &vs(
            "hosts:\n- a.com\nhttp:\n- name: root\n  delegate:\n    name: child\n  redirect:\n    uri: /x\n",
        ),
        "spec.http[0].redirect",
        "root HTTP route root must not specify redirect",
    );
    rejected(
        &vs(
            "http:\n- delegate:\n    name: grandchild\n  route:\n  - destination:\n      host: a.com\n",
        ),
        "spec.http[0].delegate",
        "delegate HTTP route cannot contain delegate",
    );
}

#[test]
fn http_mirrors() {
    valid(&http_vs(
        "mirror:\n    host: mirror.com\n  mirrorPercentage:\n    value: 50.5\n",
    ));
    valid(&http_vs(
        "mirrors:\n  - destination:\n      host: m1.com\n    percentage:\n      value: 10\n",
    ));
    rejected(
        &http_vs("mirror:\n    host: m.com\n  mirrors:\n  - destination:\n      host: m1.com\n"),
        "spec.http[0].mirrors",
        "HTTP route cannot contain both mirror and mirrors",
    );
    let text = http_vs("mirror:\n    host: m.com\n  mirrorPercent: 101\n");
    rejected(
        &text,
        "spec.http[0].mirrorPercent",
        "mirror_percent must have a max value of 100 (it has 101)",
    );
    any_warning(
        &text,
        "spec.http[0].mirrorPercent",
        "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
    );
    warned(
        &http_vs("mirror:\n    host: m.com\n  mirrorPercent: 50\n"),
        "spec.http[0].mirrorPercent",
        "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
    );
    rejected(
        &http_vs("mirror:\n    host: m.com\n  mirrorPercentage:\n    value: 150\n"),
        "spec.http[0].mirrorPercentage.value",
        "mirror_percentage must have a max value of 100 (it has 150.000000)",
    );
    rejected(
        &http_vs("mirror:\n    host: m.com\n  mirrorPercentage:\n    value: -1\n"),
        "spec.http[0].mirrorPercentage.value",
        "mirror_percentage must have a min value of 0 (it has -1.000000)",
    );
    rejected(
        &http_vs(
            "mirrors:\n  - destination:\n      host: m1.com\n    percentage:\n      value: 101\n",
        ),
        "spec.http[0].mirrors[0].percentage.value",
        "mirror percentage must have a max value of 100 (it has 101.000000)",
    );
    rejected(
        &http_vs("mirrors:\n  - percentage:\n      value: 10\n"),
        "spec.http[0].mirrors[0].destination",
        "spec.http[0].mirrors[0].destination: Required value",
    );
    rejected(
        &http_vs("mirror:\n    host: \"*\"\n"),
        "spec.http[0].mirror.host",
        "invalid destination host *",
    );
}

#[test]
fn http_destinations_and_weights() {
    let routes = |r: &str| vs(&format!("hosts:\n- a.com\nhttp:\n- route:\n{r}"));
    valid(&routes(
        "  - destination:\n      host: a.com\n    weight: 30\n  - destination:\n      host: b.com\n    weight: 30\n",
    ));
    rejected(
        &routes("  - destination:\n      host: a.com\n  - destination:\n      host: b.com\n"),
        "spec.http[0].route",
        "total destination weight = 0",
    );
    rejected(
        &routes("  - destination:\n      host: a.com\n    weight: -1\n"),
        "spec.http[0].route[0].weight",
        "weight -1 < 0",
    );
    rejected(
        &routes("  - weight: 100\n"),
        "spec.http[0].route[0].destination",
        "spec.http[0].route[0].destination: Required value",
    );
    rejected(
        &routes("  - destination:\n      subset: v1\n"),
        "spec.http[0].route[0].destination.host",
        "spec.http[0].route[0].destination.host: Required value",
    );
    rejected(
        &routes("  - destination:\n      host: \"*\"\n"),
        "spec.http[0].route[0].destination.host",
        "invalid destination host *",
    );
    rejected(
        &routes("  - destination:\n      host: \"\"\n"),
        "spec.http[0].route[0].destination.host",
        "empty domain name not allowed",
    );
    rejected(
        &routes("  - destination:\n      host: a.com\n      subset: bad_subset\n"),
        "spec.http[0].route[0].destination.subset",
        "subset name is invalid: bad_subset",
    );
    rejected(
        &routes("  - destination:\n      host: a.com\n      port:\n        number: 99999\n"),
        "spec.http[0].route[0].destination.port.number",
        "port number 99999 must be in the range 1..65535",
    );
    rejected(
        &routes(
            "  - destination:\n      host: a.com\n    headers:\n      request:\n        set:\n          \":path\": /x\n",
        ),
        "spec.http[0].route[0].headers.request.set.:path",
        "invalid header \":path\": header cannot have \":\" prefix",
    );
}
