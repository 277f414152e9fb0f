//! Sidecar rules (istio-egress.md §2.5).

use super::*;

#[rustfmt::skip]
const SC_ERRORS: &[(&str, &str, &str)] = &[
    ("{}", "spec", "sidecar: empty configuration provided"),
    ("workloadSelector: {labels: {app: a}}", "spec", "sidecar: empty configuration provided"),
    ("workloadSelector: {labels: {app: \"*\"}}\negress: [{hosts: [\"*/*\"]}]", "spec.workloadSelector.labels.app", "wildcard is not supported in selector: \"app=*\""),
    // Egress hosts.
    ("egress: [{port: {number: 80}}]", "spec.egress[0].hosts", "spec.egress[0].hosts: Required value"),
    ("egress: [{hosts: []}]", "spec.egress[0].hosts", "sidecar: egress listener must contain at least one host"),
    ("egress: [{hosts: [a.com]}]", "spec.egress[0].hosts[0]", "host must be of form namespace/dnsName"),
    ("egress: [{hosts: [\"bad_ns/a.com\"]}]", "spec.egress[0].hosts[0]", "invalid namespace value \"bad_ns\" in sidecar"),
    ("egress: [{hosts: [\"~ns/a.com\"]}]", "spec.egress[0].hosts[0]", "invalid namespace value \"~ns\" in sidecar"),
    ("egress: [{hosts: [\"ns/reviews\"]}]", "spec.egress[0].hosts[0]", "short names (non FQDN) are not allowed"),
    ("egress: [{hosts: [\"ns/*foo.com\"]}]", "spec.egress[0].hosts[0]", "partial wildcard \"*foo.com\" not allowed"),
    ("egress: [{hosts: [\"/a.com\"]}]", "spec.egress[0].hosts[0]", "config namespace and dnsName in host entry cannot be empty"),
    ("egress: [{hosts: [\"ns/1.2.3.4\"]}]", "spec.egress[0].hosts[0]", "top level domain \"4\" cannot be all-numeric"),
    // Egress listeners and ports.
    ("egress: [{hosts: [\"*/*\"]}, {port: {number: 80}, hosts: [\"*/*\"]}]", "spec.egress[0]", "sidecar: the egress listener with empty port should be the last listener in the list"),
    ("egress: [{port: {number: 80}, hosts: [\"*/*\"]}, {hosts: [\"*/*\"]}, {hosts: [\"*/*\"]}]", "spec.egress[1]", "sidecar: the egress listener with empty port should be the last listener in the list"),
    ("egress: [{port: {number: 0}, hosts: [\"*/*\"]}]", "spec.egress[0].bind", "sidecar: ports with 0 value must have a unix domain socket bind address"),
    ("egress: [{port: {number: 0}, bind: \"unix:///a\", captureMode: IPTABLES, hosts: [\"*/*\"]}]", "spec.egress[0].captureMode", "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners"),
    ("egress: [{port: {number: 0}, bind: \"unix:///a\", hosts: [\"*/*\"]}, {port: {number: 0}, bind: \"unix:///a\", hosts: [\"*/*\"]}]", "spec.egress[1].bind", "sidecar: unix domain socket values for listeners must be unique"),
    ("egress: [{port: {number: 0}, bind: \"unix://rel\", hosts: [\"*/*\"]}]", "spec.egress[0].bind", "rel is not an absolute path to a file"),
    ("egress: [{port: {number: 80}, hosts: [\"*/*\"]}, {port: {number: 80}, hosts: [\"*/*\"]}]", "spec.egress[1].port.number", "sidecar: ports on IP bound listeners must be unique"),
    ("egress: [{port: {number: 80, protocol: bogus}, hosts: [\"*/*\"]}]", "spec.egress[0].port.protocol", "unsupported protocol: bogus"),
    ("egress: [{port: {number: 80, name: Bad_Name}, hosts: [\"*/*\"]}]", "spec.egress[0].port.name", "invalid port name: Bad_Name"),
    ("egress: [{port: {number: 70000}, hosts: [\"*/*\"]}]", "spec.egress[0].port.number", "port number 70000 must be in the range 1..65535"),
    ("egress: [{port: {number: 80, targetPort: 81}, hosts: [\"*/*\"]}]", "spec.egress[0].port.targetPort", "targetPort has no impact on Sidecars"),
    ("egress: [{port: {number: 80}, bind: \"not-an-ip\", hosts: [\"*/*\"]}]", "spec.egress[0].bind", "not-an-ip is not a valid IP"),
    ("egress: [{port: {number: 80}, captureMode: SOMETIMES, hosts: [\"*/*\"]}]", "spec.egress[0].captureMode", "Unsupported value: \"SOMETIMES\""),
    // Ingress listeners.
    ("ingress: [{defaultEndpoint: \"127.0.0.1:8080\"}]", "spec.ingress[0].port", "spec.ingress[0].port: Required value"),
    ("ingress: [{port: {number: 80}, defaultEndpoint: \"10.0.0.1:8080\"}]", "spec.ingress[0].defaultEndpoint", "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset"),
    ("ingress: [{port: {number: 80}, defaultEndpoint: \"127.0.0.1\"}]", "spec.ingress[0].defaultEndpoint", "address 127.0.0.1: missing port in address"),
    ("ingress: [{port: {number: 80}, defaultEndpoint: \"127.0.0.1:http\"}]", "spec.ingress[0].defaultEndpoint", "sidecar: defaultEndpoint port (http) is not a number: strconv.Atoi: parsing \"http\": invalid syntax"),
    ("ingress: [{port: {number: 80}, defaultEndpoint: \"[::1]:99999\"}]", "spec.ingress[0].defaultEndpoint", "port number 99999 must be in the range 1..65535"),
    ("ingress: [{port: {number: 80}, defaultEndpoint: \"unix://rel\"}]", "spec.ingress[0].defaultEndpoint", "rel is not an absolute path to a file"),
    ("ingress: [{port: {number: 80}}, {port: {number: 80}}]", "spec.ingress[1].port.number", "sidecar: ports on IP bound listeners must be unique"),
    ("ingress: [{port: {number: 80, targetPort: 8080}}]", "spec.ingress[0].port.targetPort", "targetPort has no impact on Sidecars"),
    ("ingress: [{port: {number: 0}}]", "spec.ingress[0].port.number", "port number 0 must be in the range 1..65535"),
    ("ingress: [{port: {number: 80}, bind: \"1.2.3.4.5\"}]", "spec.ingress[0].bind", "1.2.3.4.5 is not a valid IP"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, credentialName: c}}]", "spec.ingress[0].tls.credentialName", "sidecar: credentialName is not currently supported"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, credentialNames: [c]}}]", "spec.ingress[0].tls.credentialNames", "sidecar: credentialNames is not currently supported"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}}]", "spec.ingress[0].tls.tlsCertificates", "sidecar: tls_certificates is not currently supported"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, subjectAltNames: [a]}}]", "spec.ingress[0].tls.subjectAltNames", "sidecar: subjectAltNames is not supported in ingress tls"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, httpsRedirect: true}}]", "spec.ingress[0].tls.httpsRedirect", "sidecar: httpsRedirect is not supported"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}]", "spec.ingress[0].tls.mode", "configuration is invalid: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls"),
    ("ingress: [{port: {number: 443, protocol: TLS}, tls: {mode: AUTO_PASSTHROUGH}}]", "spec.ingress[0].tls.mode", "configuration is invalid: cannot set mode to AUTO_PASSTHROUGH in sidecar ingress tls"),
    ("ingress: [{port: {number: 80, protocol: HTTP}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]", "spec.ingress[0].tls", "server cannot have TLS settings for non HTTPS/TLS ports"),
    ("ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c}}]", "spec.ingress[0].tls", "SIMPLE TLS requires a private key"),
    // Connection pools.
    ("inboundConnectionPool: {}", "spec.inboundConnectionPool", "connection pool must have at least one field"),
    ("inboundConnectionPool: {tcp: {maxConnections: -1}}", "spec.inboundConnectionPool.tcp.maxConnections", "max connections must be non-negative"),
    ("inboundConnectionPool: {tcp: {connectTimeout: 1.5ms}}", "spec.inboundConnectionPool.tcp.connectTimeout", "only durations to ms precision are supported"),
    ("inboundConnectionPool: {tcp: {tcpKeepalive: {time: 0.1ms}}}", "spec.inboundConnectionPool.tcp.tcpKeepalive.time", "Invalid value: \"string\": must be a valid duration greater than 1ms"),
    ("inboundConnectionPool: {http: {http1MaxPendingRequests: -1}}", "spec.inboundConnectionPool.http.http1MaxPendingRequests", "http1 max pending requests must be non-negative"),
    ("inboundConnectionPool: {http: {http2MaxRequests: -1}}", "spec.inboundConnectionPool.http.http2MaxRequests", "http2 max requests must be non-negative"),
    ("inboundConnectionPool: {http: {maxRequestsPerConnection: -1}}", "spec.inboundConnectionPool.http.maxRequestsPerConnection", "max requests per connection must be non-negative"),
    ("inboundConnectionPool: {http: {maxRetries: -1}}", "spec.inboundConnectionPool.http.maxRetries", "max retries must be non-negative"),
    ("inboundConnectionPool: {http: {maxConcurrentStreams: -1}}", "spec.inboundConnectionPool.http.maxConcurrentStreams", "max concurrent streams must be non-negative"),
    ("inboundConnectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}", "spec.inboundConnectionPool.http.useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE"),
    ("ingress: [{port: {number: 80}, connectionPool: {http: {idleTimeout: 10x}}}]", "spec.ingress[0].connectionPool.http.idleTimeout", "type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: must be a valid duration greater than 1ms"),
    // Outbound traffic policy.
    ("outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}", "spec.outboundTrafficPolicy.mode", "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource"),
    ("outboundTrafficPolicy: {mode: SOMETIMES}", "spec.outboundTrafficPolicy.mode", "Unsupported value: \"SOMETIMES\""),
    ("outboundTrafficPolicy: {egressProxy: {host: proxy.a.com, port: {number: 80}}}", "spec.outboundTrafficPolicy.egressProxy", "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode"),
    ("outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.a.com}}", "spec.outboundTrafficPolicy.egressProxy.port", "sidecar: egress_proxy port must be non-nil"),
    ("outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {port: {number: 80}}}", "spec.outboundTrafficPolicy.egressProxy.host", "spec.outboundTrafficPolicy.egressProxy.host: Required value"),
    ("outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: \"*.a.com\", port: {number: 80}}}", "spec.outboundTrafficPolicy.egressProxy.host", "domain name \"*.a.com\" invalid (label \"*\" invalid)"),
    ("outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.a.com, subset: Bad_Subset, port: {number: 80}}}", "spec.outboundTrafficPolicy.egressProxy.subset", "subset name is invalid: Bad_Subset"),
    ("outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.a.com, port: {number: 0}}}", "spec.outboundTrafficPolicy.egressProxy.port.number", "port number 0 must be in the range 1..65535"),
];

#[rustfmt::skip]
const SC_WARNINGS: &[(&str, &str, &str)] = &[
    ("workloadSelector: {}\negress: [{hosts: [\"*/*\"]}]", "spec.workloadSelector", "sidecar: workload selector specified without labels, will be applied to all services in namespace"),
    ("egress: [{hosts: [\"ns/a.com\", \"ns/a.com\"]}]", "spec.egress[0].hosts[1]", "duplicated egress host: ns/a.com"),
    ("egress: [{hosts: [\"ns/*\", \"ns/a.com\"]}]", "spec.egress[0].hosts[1]", "duplicated egress host: ns/a.com"),
    ("egress: [{hosts: [\"default/a.com\", \"./*\"]}]", "spec.egress[0].hosts[1]", "duplicated egress host: ./*"),
    ("egress: [{hosts: [\"*/*\", \"ns/a.com\"]}]", "spec.egress[0].hosts", "`*/*` host select all resources, no other hosts can be added"),
    ("ingress: [{port: {number: 9000, protocol: TCP, name: tcp}, connectionPool: {http: {maxRetries: 3}}}]", "spec.ingress[0].connectionPool.http", "sidecar: HTTP connection pool settings are configured for port 9000 (\"tcp\") but its protocol is not HTTP (TCP); only TCP settings will apply"),
];

#[rustfmt::skip]
pub(crate) const SC_CLEAN: &[&str] = &[
    "egress:\n- hosts: [\"./*\", \"istio-system/*\", \"~/a.com\", \"*/edition.cnn.com\"]",
    // `*/*` alone, and `~/*` (no namespace), are what Istio accepts without a word.
    "egress:\n- hosts: [\"*/*\"]",
    "egress:\n- hosts: [\"~/*\"]",
    "workloadSelector: {labels: {app: curl}}\noutboundTrafficPolicy: {mode: ALLOW_ANY}",
    "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.a.com, subset: v1, port: {number: 3128}}}",
    "egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  bind: 127.0.0.1\n  captureMode: NONE\n  hosts: [\"*/*\"]\n- port: {number: 0, protocol: HTTP}\n  bind: \"unix:///var/run/app.sock\"\n  hosts: [\"*/*\"]\n- hosts: [\"ns/*\"]",
    "ingress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  defaultEndpoint: \"127.0.0.1:8080\"\n  captureMode: IPTABLES\n  connectionPool: {http: {http1MaxPendingRequests: 10, idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 5, http2KeepAlive: {interval: 10s, timeout: 2s}}, tcp: {maxConnections: 100, connectTimeout: 10s, maxConnectionDuration: 1h, idleTimeout: 0s, tcpKeepalive: {probes: 3, time: 1m, interval: 10s}}}\n- port: {number: 9443, protocol: HTTPS, name: https}\n  defaultEndpoint: \"unix:///var/run/app.sock\"\n  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}\n- port: {number: 9090}\n  defaultEndpoint: \":8081\"\ninboundConnectionPool: {tcp: {maxConnections: 10}}",
];

#[test]
fn sidecar_rules() {
    for (spec, field, msg) in SC_ERRORS {
        rejects(&sc(spec), field, msg);
    }
    for (spec, field, msg) in SC_WARNINGS {
        warns(&sc(spec), field, msg);
    }
    for spec in SC_CLEAN {
        clean(&sc(spec));
    }
    let no_spec = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: sc\n";
    rejects(no_spec, "spec", "sidecar: empty configuration provided");
}

/// Istio warns about `*/*` only beside hosts of other namespaces; within the `*` namespace a
/// further host is a duplicate, nothing more.
#[test]
fn select_all_warning_only_beside_other_namespaces() {
    const SELECT_ALL: &str = "`*/*` host select all resources, no other hosts can be added";
    for (hosts, select_all, duplicates) in [
        ("[\"*/*\"]", false, 0),
        ("[\"*/*\", \"*/a.com\"]", false, 1),
        ("[\"*/a.com\", \"*/*\"]", false, 1),
        ("[\"*/*\", \"ns/a.com\"]", true, 0),
        ("[\"*/*\", \"./*\"]", true, 0),
        ("[\"*/*\", \"~/*\"]", true, 0),
    ] {
        let w = accepts(&sc(&format!("egress: [{{hosts: {hosts}}}]")));
        let messages: Vec<&str> = w.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages.contains(&SELECT_ALL),
            select_all,
            "{hosts}: {messages:?}"
        );
        let dup = messages
            .iter()
            .filter(|m| m.starts_with("duplicated egress host"))
            .count();
        assert_eq!(dup, duplicates, "{hosts}: {messages:?}");
    }
}
