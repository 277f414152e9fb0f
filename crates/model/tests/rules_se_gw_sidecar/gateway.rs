//! Gateway rules (istio-egress.md §2.2).

use super::*;

const SERVER: &str = "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]";

#[rustfmt::skip]
const GW_ERRORS: &[(&str, &str, &str)] = &[
    ("{}", "spec.servers", "gateway must have at least one server"),
    ("servers: []", "spec.servers", "gateway must have at least one server"),
    // CRD required fields.
    ("servers:\n- hosts: [a.com]", "spec.servers[0].port", "spec.servers[0].port: Required value"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}", "spec.servers[0].hosts", "spec.servers[0].hosts: Required value"),
    ("servers:\n- port: {number: 80, name: http}\n  hosts: [a.com]", "spec.servers[0].port.protocol", "Required value"),
    ("servers:\n- port: {name: http, protocol: HTTP}\n  hosts: [a.com]", "spec.servers[0].port.number", "Required value"),
    ("servers:\n- port: {number: 80, protocol: HTTP}\n  hosts: [a.com]", "spec.servers[0].port.name", "Required value"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {mode: BOGUS}", "spec.servers[0].tls.mode", "Unsupported value: \"BOGUS\""),
    // Hosts.
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: []", "spec.servers[0].hosts", "server config must contain at least one host"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [reviews]", "spec.servers[0].hosts[0]", "short names (non FQDN) are not allowed"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"Bad_NS/a.com\"]", "spec.servers[0].hosts[0]", "invalid namespace value \"Bad_NS\" in gateway"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*foo.com\"]", "spec.servers[0].hosts[0]", "partial wildcard \"*foo.com\" not allowed"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"ns/\"]", "spec.servers[0].hosts[0]", "config namespace and dnsName in host entry cannot be empty"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"foo*.a.com\"]", "spec.servers[0].hosts[0]", "domain name \"foo*.a.com\" invalid (label \"foo*\" invalid)"),
    // Port.
    ("servers:\n- port: {number: 80, name: http, protocol: bogus}\n  hosts: [a.com]", "spec.servers[0].port.protocol", "invalid protocol \"bogus\", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP"),
    ("servers:\n- port: {number: 99999, name: http, protocol: HTTP}\n  hosts: [a.com]", "spec.servers[0].port.number", "port number 99999 must be in the range 1..65535"),
    ("servers:\n- port: {number: 0, name: http, protocol: HTTP}\n  hosts: [a.com]", "spec.servers[0].port.number", "port number 0 must be in the range 1..65535"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n  hosts: [a.com]", "spec.servers[0].port.targetPort", "targetPort has no impact on Gateways"),
    ("servers:\n- port: {number: 80, name: \"\", protocol: HTTP}\n  hosts: [a.com]", "spec.servers[0].port.name", "port name must be set: number:80 protocol:\"HTTP\""),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n- port: {number: 81, name: http, protocol: HTTP}\n  hosts: [b.com]", "spec.servers[1].port.name", "port names in servers must be unique: duplicate name http"),
    // Bind.
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  bind: \"unix:///sock\"\n  hosts: [a.com]", "spec.servers[0].port.number", "port number must be 0 for unix domain socket"),
    ("servers:\n- port: {number: 0, name: http, protocol: HTTP}\n  bind: \"unix://rel\"\n  hosts: [a.com]", "spec.servers[0].bind", "rel is not an absolute path to a file"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  bind: 1.2.3\n  hosts: [a.com]", "spec.servers[0].bind", "1.2.3 is not a valid IP"),
    // TLS presence.
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]", "spec.servers[0]", "server must have TLS settings for HTTPS/TLS protocols"),
    ("servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]", "spec.servers[0]", "server must have TLS settings for HTTPS/TLS protocols"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: c}", "spec.servers[0].tls", "server cannot have TLS settings for plain text HTTP ports"),
    ("servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {httpsRedirect: true, serverCertificate: /c}", "spec.servers[0].tls", "server cannot have TLS settings for plain text HTTP ports"),
    ("servers:\n- port: {number: 9000, name: tcp, protocol: TCP}\n  hosts: [a.com]\n  tls: {mode: PASSTHROUGH}", "spec.servers[0].tls", "server cannot have TLS settings for non HTTPS/TLS ports"),
    // TLS options.
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, serverCertificate: /c}", "spec.servers[0].tls.serverCertificate", "ISTIO_MUTUAL TLS cannot have associated server certificate"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, privateKey: /k}", "spec.servers[0].tls.privateKey", "ISTIO_MUTUAL TLS cannot have associated private key"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, caCertificates: /ca}", "spec.servers[0].tls.caCertificates", "ISTIO_MUTUAL TLS cannot have associated CA bundle"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, credentialName: c}", "spec.servers[0].tls.credentialName", "ISTIO_MUTUAL TLS cannot have associated credentialName"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, credentialNames: [c]}", "spec.servers[0].tls.credentialNames", "ISTIO_MUTUAL TLS cannot have associated credentialNames"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: ISTIO_MUTUAL, tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}", "spec.servers[0].tls.tlsCertificates", "ISTIO_MUTUAL TLS cannot have associated tlsCertificates"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c, privateKey: /k}", "spec.servers[0].tls", "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, privateKey: /k}", "spec.servers[0].tls", "SIMPLE TLS requires a server certificate"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, serverCertificate: /c}", "spec.servers[0].tls", "SIMPLE TLS requires a private key"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c}]}", "spec.servers[0].tls.tlsCertificates[0]", "SIMPLE TLS requires a private key"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: MUTUAL, serverCertificate: /c, privateKey: /k}", "spec.servers[0].tls.caCertificates", "MUTUAL TLS requires a client CA bundle"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: OPTIONAL_MUTUAL, privateKey: /k, caCertificates: /ca}", "spec.servers[0].tls", "MUTUAL TLS requires a server certificate"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}", "spec.servers[0].tls.caCrl", "CRL is not supported with SIMPLE TLS"),
    ("servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]\n  tls: {mode: PASSTHROUGH, credentialName: c, caCrl: /crl}", "spec.servers[0].tls.caCrl", "CRL is not supported with credentialName. CRL has to be specified in the credential"),
    // TLS CRD rules.
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialNames: [a], tlsCertificates: [{serverCertificate: /c, privateKey: /k}]}", "spec.servers[0].tls", "only one of credentialNames or tlsCertificates can be set"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: a, credentialNames: [b]}", "spec.servers[0].tls", "only one of credentialName or credentialNames can be set"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialNames: [a, b, c]}", "spec.servers[0].tls.credentialNames", "Too many: 3: must have at most 2 items"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialNames: []}", "spec.servers[0].tls.credentialNames", "should have at least 1 items"),
];

#[rustfmt::skip]
const GW_WARNINGS: &[(&str, &str, &str)] = &[
    ("servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]\n  tls: {httpsRedirect: true}", "spec.servers[0].tls.httpsRedirect", "tls.httpsRedirect should only be used with http servers"),
    ("servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]\n  tls: {mode: PASSTHROUGH, serverCertificate: /c}", "spec.servers[0].tls", "PASSTHROUGH mode does not use certificates, they will be ignored"),
    ("servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]\n  tls: {mode: AUTO_PASSTHROUGH, credentialName: c}", "spec.servers[0].tls", "AUTO_PASSTHROUGH mode does not use certificates, they will be ignored"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}", "spec.servers[0].tls.minProtocolVersion", "TLS version below TLSV1_2 require setting compatible ciphers"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: c, cipherSuites: [FOO, BAR, AES128-SHA]}", "spec.servers[0].tls.cipherSuites", "ignoring invalid cipher suites: [BAR FOO]"),
    ("servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA, AES128-SHA]}", "spec.servers[0].tls.cipherSuites", "ignoring duplicate cipher suites: [AES128-SHA]"),
];

#[rustfmt::skip]
pub(crate) const GW_CLEAN: &[&str] = &[
    SERVER,
    "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*\"]",
    "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"./a.com\", \"*/b.com\", \"ns1/*.c.com\", 1.2.3.4, \"ns/*\"]",
    "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {httpsRedirect: true}",
    "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCertificates: /ca}",
    "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: MUTUAL, credentialName: c}",
    "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: OPTIONAL_MUTUAL, credentialNames: [rsa, ecdsa], subjectAltNames: [a], minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, \"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]\"]}",
    "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]\n  tls: {mode: MUTUAL, caCertificates: /ca, caCrl: /crl, tlsCertificates: [{serverCertificate: /c1, privateKey: /k1}, {serverCertificate: /c2, privateKey: /k2, caCertificates: /ca2}], verifyCertificateSpki: [x], verifyCertificateHash: [abcd], insecureSkipVerify: false, caCertCredentialName: cacred}",
    "servers:\n- port: {number: 0, name: uds, protocol: HTTP}\n  bind: \"unix:///var/run/gw.sock\"\n  hosts: [a.com]\n  name: uds-server\n  defaultEndpoint: 127.0.0.1:8080",
    "servers:\n- port: {number: 15443, name: tls, protocol: TLS}\n  hosts: [\"*.local\"]\n  tls: {mode: AUTO_PASSTHROUGH}",
    "servers:\n- port: {number: 27018, name: mongo, protocol: MONGO}\n  hosts: [\"*\"]",
];

#[test]
fn gateway_rules() {
    for (spec, field, msg) in GW_ERRORS {
        rejects(&gw(spec), field, msg);
    }
    for (spec, field, msg) in GW_WARNINGS {
        warns(&gw(spec), field, msg);
    }
    for spec in GW_CLEAN {
        clean(&gw(spec));
    }
}

#[test]
fn gateway_name_and_spec() {
    rejects(
        &object("Gateway", "my.gateway", SERVER),
        "metadata.name",
        "invalid gateway name: \"my.gateway\"",
    );
    let semantics = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: my.gateway\n  annotations:\n    internal.istio.io/gateway-semantics: gateway\nspec:\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"~/a.com\"]\n";
    clean(semantics);
    let no_spec = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n";
    rejects(
        no_spec,
        "spec.servers",
        "gateway must have at least one server",
    );
    // The CRD's required port hides the webhook's "port is required".
    let d = decode(&gw("servers:\n- hosts: [a.com]")).diagnostics();
    assert!(
        !d.iter().any(|d| d.message.contains("port is required")),
        "{}",
        render(&d)
    );
}
