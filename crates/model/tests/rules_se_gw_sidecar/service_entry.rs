//! ServiceEntry rules (istio-egress.md §2.1, with the exportTo rules of §2).

use super::*;

/// (spec, field, message) that must be rejected.
#[rustfmt::skip]
const SE_ERRORS: &[(&str, &str, &str)] = &[
    // CRD structural rules.
    ("{}", "spec.hosts", "spec.hosts: Required value"),
    ("hosts: []", "spec.hosts", "spec.hosts in body should have at least 1 items"),
    ("hosts: [a.com]\nresolution: BLAH", "spec.resolution", "Unsupported value: \"BLAH\""),
    ("hosts: [a.com]\nlocation: OUTSIDE", "spec.location", "Unsupported value: \"OUTSIDE\""),
    ("hosts: [a.com]\nfoo: bar", "spec.foo", "unknown field \"spec.foo\""),
    ("hosts: [a.com]\nports: [{number: 80}]", "spec.ports[0].name", "spec.ports[0].name: Required value"),
    ("hosts: [a.com]\nports: [{name: a}]", "spec.ports[0].number", "spec.ports[0].number: Required value"),
    ("hosts: [a.com]\nports: [{name: a, number: 1}, {name: a, number: 12}]", "spec.ports[1]", "spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}"),
    ("hosts: [a.com]\naddresses: [\"1111:2222:3333:4444:5555:6666:7777:8888/128-and-some-more-text-to-be-long\"]", "spec.addresses[0]", "spec.addresses[0]: Too long: may not be more than 64 bytes"),
    // CEL rules.
    ("hosts: [\"*\"]", "spec.hosts[0]", "spec: Invalid value: \"object\": hostname cannot be wildcard"),
    ("hosts: [a.com]\naddresses: [1.2.3.4/16]\nresolution: DNS", "spec.addresses[0]", "CIDR addresses are allowed only for NONE/STATIC resolution types"),
    ("hosts: [a.com]\nports: [{name: a, number: 1}, {name: b, number: 1}]", "spec.ports", "spec.ports: Invalid value: \"array\": port number cannot be duplicated"),
    ("hosts: [a.com]\nports: [{name: a, number: 99999}]", "spec.ports[0].number", "spec.ports[0].number: Invalid value: 99999: port must be between 1-65535"),
    ("hosts: [a.com]\nports: [{name: a, number: 1, targetPort: 99999}]", "spec.ports[0].targetPort", "port must be between 1-65535"),
    ("hosts: [a.com]\nports: [{name: a, number: 0}]", "spec.ports[0].number", "port must be between 1-65535"),
    ("hosts: [a.com]\nendpoints: [{address: 1.2.3.4}]", "spec.endpoints", "NONE mode cannot set endpoints"),
    ("hosts: [a.com]\nendpoints: [{address: 1.2.3.4}]\nresolution: NONE", "spec.endpoints", "NONE mode cannot set endpoints"),
    ("hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: a.a.com}, {address: b.a.com}]", "spec.endpoints", "DNS_ROUND_ROBIN mode cannot have multiple endpoints"),
    ("hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {}\nendpoints: [{address: 1.2.3.4}]", "spec.workloadSelector", "only one of WorkloadSelector or Endpoints can be set"),
    ("hosts: [a.com]\nresolution: STATIC\nendpoints: [{locality: us}]", "spec.endpoints[0]", "Address is required"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: \"unix:///sock\", ports: {http: 80}}]", "spec.endpoints[0]", "UDS may not include ports"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: \"unix://rel/sock\"}]", "spec.endpoints[0].address", "UDS must be an absolute path or abstract socket"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: \"unix:///dir/\"}]", "spec.endpoints[0].address", "UDS may not be a dir"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: 1.2.3.4, ports: {http: 70000}}]", "spec.endpoints[0].ports.http", "spec.endpoints[0].ports[http]: Invalid value: 70000: port must be between 1-65535"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: 1.2.3.4, ports: {Bad_Name: 80}}]", "spec.endpoints[0].ports", "port name must be valid"),
    // Webhook: selector.
    ("hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {val: \"*\"}}", "spec.workloadSelector.labels.val", "wildcard is not supported in selector: \"val=*\""),
    ("hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {\"\": v}}", "spec.workloadSelector.labels.", "empty key is not supported in selector: \"=v\""),
    // Webhook: hosts.
    ("hosts: [\"*\"]\nresolution: DYNAMIC_DNS", "spec.hosts[0]", "invalid host *"),
    ("hosts: [\"foo*.bar.com\"]", "spec.hosts[0]", "domain name \"foo*.bar.com\" invalid (label \"foo*\" invalid)"),
    ("hosts: [\"foo.*.com\"]", "spec.hosts[0]", "invalid (label \"*\" invalid)"),
    ("hosts: [\"\"]", "spec.hosts[0]", "empty domain name not allowed"),
    // Webhook: addresses.
    ("hosts: [a.com]\naddresses: [1.2.3.4/99]", "spec.addresses[0]", "1.2.3.4/99 is not a valid CIDR block"),
    ("hosts: [a.com]\naddresses: [bogus]", "spec.addresses[0]", "bogus is not a valid IP"),
    // Webhook: ports.
    ("hosts: [a.com]\nports: [{name: Bad_Name, number: 80}]", "spec.ports[0].name", "invalid port name: Bad_Name"),
    ("hosts: [a.com]\nports: [{name: a, number: 80, protocol: bogus}]", "spec.ports[0].protocol", "unsupported protocol: bogus"),
    // Webhook: STATIC endpoints.
    ("hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: foo.com}]", "spec.endpoints[0].address", "endpoint address \"foo.com\" is not a valid IP address"),
    ("hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: \"\"}]", "spec.endpoints[0]", "address is required"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80}]\nendpoints: [{address: 1.2.3.4, ports: {grpc: 8080}}]", "spec.endpoints[0].ports.grpc", "endpoint port 8080 is not defined by the service entry"),
    ("hosts: [a.com]\nresolution: STATIC\nports: [{name: a, number: 80}, {name: b, number: 81}]\nendpoints: [{address: \"unix:///sock\"}]", "spec.endpoints[0]", "exactly 1 service port required for unix endpoints"),
    ("hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: 1.2.3.4, labels: {app: \"-bad-\"}}]", "spec.endpoints[0].labels.app", "invalid tag value: \"-bad-\""),
    // Webhook: DNS.
    ("hosts: [\"*.a.com\"]\nresolution: DNS", "spec.hosts[0]", "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode DNS"),
    ("hosts: [\"*.a.com\"]\nresolution: DNS_ROUND_ROBIN", "spec.hosts[0]", "for resolution mode DNS_ROUND_ROBIN"),
    ("hosts: [a.com]\nresolution: DNS\nendpoints: [{address: foo_bar}]", "spec.endpoints[0].address", "endpoint address \"foo_bar\" is not a valid FQDN or an IP address"),
    ("hosts: [a.com]\nresolution: DNS\nports: [{name: http, number: 80}]\nendpoints: [{address: b.com, ports: {tcp: 81}}]", "spec.endpoints[0].ports.tcp", "endpoint port 81 is not defined by the service entry"),
    // Webhook: multiple hosts with non-HTTP/TLS ports.
    ("hosts: [a.com, b.com]\nresolution: DNS\nports: [{name: tcp, number: 9000, protocol: TCP}]", "spec.ports[0]", "multiple hosts provided with non-HTTP, non-TLS ports"),
    ("hosts: [a.com, b.com]\nresolution: STATIC\nports: [{name: m, number: 27017, protocol: MONGO}]", "spec.ports[0]", "multiple hosts provided with non-HTTP, non-TLS ports"),
    // Webhook: DYNAMIC_DNS.
    ("hosts: [a.com]\nresolution: DYNAMIC_DNS\nports: [{name: http, number: 80, protocol: HTTP}]", "spec.hosts[0]", "host must be wildcarded for resolution mode DYNAMIC_DNS"),
    ("hosts: [\"*.a.com\"]\nresolution: DYNAMIC_DNS\naddresses: [1.2.3.4]", "spec.addresses", "for resolution mode DYNAMIC_DNS"),
    ("hosts: [\"*.a.com\"]\nresolution: DYNAMIC_DNS\nports: [{name: tcp, number: 80, protocol: TCP}]", "spec.ports[0].protocol", "for resolution mode DYNAMIC_DNS"),
    ("hosts: [\"*a.com\"]\nresolution: DYNAMIC_DNS", "spec.hosts[0]", "partial wildcard \"*a.com\" not allowed"),
    // exportTo.
    ("hosts: [a.com]\nexportTo: [default, .]", "spec.exportTo[1]", "duplicate entries in exportTo: . and current namespace default"),
    ("hosts: [a.com]\nexportTo: [foo, foo]", "spec.exportTo[1]", "duplicate entries in exportTo for entry foo"),
    ("hosts: [a.com]\nexportTo: [\"bad_ns!\"]", "spec.exportTo[0]", "only .,*,~, or a valid DNS 1123 label is allowed as exportTo entry"),
    ("hosts: [a.com]\nexportTo: [\"*\", foo]", "spec.exportTo", "cannot have both public (*) and non-public exportTo values for a resource"),
    ("hosts: [a.com]\nexportTo: [\"~\", foo]", "spec.exportTo", "cannot export service entry to no one (~) and someone"),
];

/// (spec, field, message) accepted with a warning.
#[rustfmt::skip]
const SE_WARNINGS: &[(&str, &str, &str)] = &[
    ("hosts: [\"*x\"]", "spec.hosts[0]", "partial wildcard \"*x\" not allowed"),
    ("hosts: [a.com]\nworkloadSelector: {}", "spec.workloadSelector", "service entry: workload selector specified without labels, will be applied to all services in namespace"),
    ("hosts: [a.com]\nworkloadSelector: {labels: {app: a}}", "spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE"),
    ("hosts: [a.com]\nports: [{name: tcp, number: 9000, protocol: TCP}]", "spec.ports[0]", "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled"),
    ("hosts: [a.com]\nports: [{name: tcp, number: 9000}]", "spec.ports[0]", "addresses are required for ports serving TCP"),
    ("hosts: [a.com]\nresolution: STATIC\nendpoints: [{network: n1}]", "spec.endpoints[0]", "address is unset with network \"n1\""),
    ("hosts: [a.com, b.com]\naddresses: [1.2.3.4]\nresolution: DNS\nports: [{name: h, number: 443, protocol: HTTPS}]", "spec.hosts", "service entry can not have more than one host specified simultaneously with address and tcp port"),
];

/// Specs accepted without any warning.
#[rustfmt::skip]
pub(crate) const SE_CLEAN: &[&str] = &[
    "hosts: [a.com]\nresolution: DNS\nports: [{name: tcp, number: 9000, protocol: TCP}]",
    "hosts: [\"*.wikipedia.org\", wikipedia.org]\nlocation: MESH_EXTERNAL\nresolution: NONE\nports: [{name: https, number: 443, protocol: TLS}]",
    "hosts: [a.com]\nresolution: STATIC\nports: [{name: http, number: 80, protocol: HTTP}]\nendpoints: [{address: \"unix:///var/run/sock\"}]",
    "hosts: [a.com]\nresolution: STATIC\nlocation: MESH_INTERNAL\nports: [{name: http, number: 80, protocol: HTTP}]\nendpoints: [{address: 2.2.2.2, ports: {http: 8080}, labels: {app: x}, weight: 3, locality: us/east, network: n1, serviceAccount: sa}]\nsubjectAltNames: [\"spiffe://cluster.local/ns/a/sa/b\"]",
    "hosts: [a.com]\nresolution: DNS\nports: [{name: http, number: 80, protocol: HTTP}]\nendpoints: [{address: us.a.com, ports: {http: 8080}}, {address: 1.2.3.4}]",
    "hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nports: [{name: http, number: 80, protocol: HTTP}]\nendpoints: [{address: us.a.com}]",
    "hosts: [a.com]\nresolution: STATIC\naddresses: [10.0.0.0/24]\nports: [{name: tcp, number: 9000, protocol: TCP}]\nendpoints: [{address: 10.0.0.1}]",
    "hosts: [a.com]\nresolution: DNS\nports: [{name: http, number: 80, protocol: HTTP, targetPort: 8080}]\nexportTo: [\"~\"]",
    "hosts: [a.com]\nexportTo: [\".\", other]",
    "hosts: [\"*.a.com\"]\nresolution: DYNAMIC_DNS\nports: [{name: http, number: 80, protocol: HTTP}, {name: tls, number: 443, protocol: TLS}]",
    // Istio warns about a workload selector with NONE resolution only, not with DNS ones.
    "hosts: [a.com]\nresolution: DNS\nworkloadSelector: {labels: {app: a}}",
    "hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nworkloadSelector: {labels: {app: a}}\nports: [{name: http, number: 80, protocol: HTTP}]",
];

#[test]
fn service_entry_rules() {
    for (spec, field, msg) in SE_ERRORS {
        rejects(&se(spec), field, msg);
    }
    for (spec, field, msg) in SE_WARNINGS {
        warns(&se(spec), field, msg);
    }
    for spec in SE_CLEAN {
        clean(&se(spec));
    }
}

#[test]
fn service_entry_document_level_rules() {
    let no_spec =
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: no-spec\n";
    rejects(no_spec, "spec", "spec: Required value");
    let many: Vec<String> = (0..257).map(|i| format!("h{i}.a.com")).collect();
    rejects(
        &se(&format!("hosts: [{}]", many.join(", "))),
        "spec.hosts",
        "spec.hosts: Too many: 257: must have at most 256 items",
    );
    // Opting out of auto-allocation brings the TCP warning back.
    let opted_out = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  labels:\n    networking.istio.io/enable-autoallocate-ip: \"false\"\nspec:\n  hosts: [a.com]\n  resolution: DNS\n  ports: [{name: tcp, number: 9000, protocol: TCP}]\n";
    warns(
        opted_out,
        "spec.ports[0]",
        "addresses are required for ports serving TCP",
    );
    // The CRD rule replaces the webhook's message for the same problem.
    let d = decode(&se("hosts: [\"*\"]"));
    let all = d.diagnostics();
    assert!(
        !all.iter().any(|d| d.message.contains("invalid host *")),
        "{}",
        render(&all)
    );
    let d = decode(&se("hosts: [a.com]\nendpoints: [{address: 1.2.3.4}]"));
    assert!(
        !d.diagnostics()
            .iter()
            .any(|d| d.message.contains("no endpoints should be provided"))
    );
}
