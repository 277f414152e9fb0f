//! Gateway validation (Istio's webhook rules and messages), preceded by the CRD's structural
//! and CEL rules (reported instead of the webhook's when both catch the same problem).
//!
//! The server TLS rules and the `namespace/host` rules are shared with the Sidecar validator.

use std::collections::{BTreeSet, HashSet};

use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::gateway::{Gateway, Port, Server, ServerTlsSettings, TlsMode, TlsProtocol};
use crate::validate::common::{
    Protocol, is_dns1123_label, validate_ip_address, validate_namespace_slash_wildcard_hostname,
    validate_port,
};
use crate::validate::service_entry::crd::{cel_object, max_items, min_items, required};

/// Annotation marking Gateways converted from the Kubernetes Gateway API.
const GATEWAY_SEMANTICS_ANNOTATION: &str = "internal.istio.io/gateway-semantics";
/// Prefix of Unix domain socket addresses.
pub(crate) const UNIX_PREFIX: &str = "unix://";

/// Cipher suites Envoy (BoringSSL) accepts in `cipherSuites`.
const VALID_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Validate a Gateway.
pub fn validate(obj: &CustomObject<Gateway>, r: &mut Report) {
    let semantics = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GATEWAY_SEMANTICS_ANNOTATION))
        .is_some_and(|v| v == "gateway");
    if let Some(name) = obj.metadata.name.as_deref().filter(|n| !n.is_empty())
        && !is_dns1123_label(name)
        && !semantics
    {
        r.error("metadata.name", format!("invalid gateway name: {name:?}"));
    }
    let empty = Gateway::default();
    let spec = obj.spec.as_ref().unwrap_or(&empty);
    let servers = spec.servers();
    if servers.is_empty() {
        r.error("spec.servers", "gateway must have at least one server");
    }
    for (i, s) in servers.iter().enumerate() {
        validate_server(r, &idx("spec.servers", i), s, semantics);
    }
    let mut names = HashSet::new();
    for (i, s) in servers.iter().enumerate() {
        let Some(port) = &s.port else { continue };
        let path = idx("spec.servers", i);
        if let Some(name) = &port.name
            && !names.insert(name.as_str())
        {
            r.error(
                join(&path, "port.name"),
                format!("port names in servers must be unique: duplicate name {name}"),
            );
        }
        if !s.protocol().is_http()
            && s.tls
                .as_ref()
                .is_some_and(ServerTlsSettings::https_redirect)
        {
            r.warn(
                join(&path, "tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

/// `validateServer`, with the CRD's required fields first.
fn validate_server(r: &mut Report, path: &str, s: &Server, semantics: bool) {
    let hosts_path = join(path, "hosts");
    match &s.hosts {
        None => required(r, &hosts_path),
        Some(h) if h.is_empty() => {
            r.error(hosts_path, "server config must contain at least one host")
        }
        Some(h) => {
            for (j, host) in h.iter().enumerate() {
                for e in validate_namespace_slash_wildcard_hostname(host, true, semantics) {
                    r.error(idx(&hosts_path, j), e);
                }
            }
        }
    }
    let port_ok = validate_server_port(r, &join(path, "port"), s.port.as_ref(), s.bind());
    validate_server_bind(r, path, s.port.as_ref(), s.bind());
    if let Some(tls) = &s.tls {
        validate_server_tls(r, &join(path, "tls"), tls);
    }
    if port_ok {
        let p = s.protocol();
        match &s.tls {
            None if p.is_tls() => r.error(
                path,
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !p.is_tls() => {
                let tpath = join(path, "tls");
                if p.is_http() {
                    let certs = [
                        &tls.ca_certificates,
                        &tls.private_key,
                        &tls.server_certificate,
                    ]
                    .iter()
                    .any(|f| f.as_deref().is_some_and(|v| !v.is_empty()));
                    if !s.is_passthrough() || certs {
                        r.error(
                            tpath,
                            "server cannot have TLS settings for plain text HTTP ports",
                        );
                    }
                } else {
                    r.error(
                        tpath,
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

/// `validateServerPort`; true when the port is present and valid.
fn validate_server_port(r: &mut Report, path: &str, port: Option<&Port>, bind: &str) -> bool {
    let Some(port) = port else {
        // "port is required": the CRD's required rule fires first.
        required(r, path);
        return false;
    };
    let before = r.findings.len();
    match &port.protocol {
        None => required(r, &join(path, "protocol")),
        Some(p) if Protocol::parse(p) == Protocol::Unsupported => r.error(
            join(path, "protocol"),
            format!("invalid protocol {p:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP"),
        ),
        Some(_) => {}
    }
    match port.number {
        None => required(r, &join(path, "number")),
        Some(n) if n > 0 || !bind.starts_with(UNIX_PREFIX) => {
            if let Err(e) = validate_port(i64::from(n)) {
                r.error(join(path, "number"), e);
            }
        }
        Some(_) => {}
    }
    if port.target_port.is_some_and(|t| t > 0) {
        r.error(
            join(path, "targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    match &port.name {
        None => required(r, &join(path, "name")),
        Some(n) if n.is_empty() => r.error(
            join(path, "name"),
            format!("port name must be set: {}", port_text(port)),
        ),
        Some(_) => {}
    }
    !r.findings[before..]
        .iter()
        .any(|f| f.severity == crate::diag::Severity::Error)
}

/// A Port as Go's `%v` prints the proto message (its non-zero fields in text format).
fn port_text(port: &Port) -> String {
    let mut parts = Vec::new();
    if port.number() != 0 {
        parts.push(format!("number:{}", port.number()));
    }
    if !port.protocol().is_empty() {
        parts.push(format!("protocol:{:?}", port.protocol()));
    }
    if !port.name().is_empty() {
        parts.push(format!("name:{:?}", port.name()));
    }
    if let Some(t) = port.target_port.filter(|t| *t != 0) {
        parts.push(format!("target_port:{t}"));
    }
    parts.join(" ")
}

/// `validateServerBind`.
fn validate_server_bind(r: &mut Report, path: &str, port: Option<&Port>, bind: &str) {
    let bpath = join(path, "bind");
    if let Some(socket) = bind.strip_prefix(UNIX_PREFIX) {
        if let Err(e) = validate_unix_address(socket) {
            r.error(bpath.clone(), e);
        }
        if let Some(p) = port.filter(|p| p.number() != 0) {
            r.error(
                join(path, "port.number"),
                format!(
                    "port number must be 0 for unix domain socket: {}",
                    port_text(p)
                ),
            );
        }
    } else if !bind.is_empty()
        && let Err(e) = validate_ip_address(bind)
    {
        r.error(bpath, e);
    }
}

/// `validateTLSOptions` for server TLS settings (Gateway servers and Sidecar ingress).
pub(crate) fn validate_server_tls(r: &mut Report, path: &str, tls: &ServerTlsSettings) {
    crd_server_tls(r, path, tls);
    let set = |f: &Option<String>| f.as_deref().is_some_and(|v| !v.is_empty());
    let ciphers = tls.cipher_suites.as_deref().unwrap_or_default();
    let cpath = join(path, "cipherSuites");
    if matches!(
        tls.min_protocol_version,
        Some(TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1)
    ) && ciphers.is_empty()
    {
        r.warn(
            join(path, "minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid = BTreeSet::new();
    let mut valid = HashSet::new();
    let mut duplicate = BTreeSet::new();
    for c in ciphers {
        if !is_valid_cipher_suite(c) {
            invalid.insert(c.as_str());
        } else if !valid.insert(c.as_str()) {
            duplicate.insert(c.as_str());
        }
    }
    if !invalid.is_empty() {
        r.warn(
            cpath.clone(),
            format!("ignoring invalid cipher suites: {}", go_list(&invalid)),
        );
    }
    if !duplicate.is_empty() {
        r.warn(
            cpath,
            format!("ignoring duplicate cipher suites: {}", go_list(&duplicate)),
        );
    }

    let mode = tls.mode_or_default();
    let tls_certs = tls.tls_certificates.as_deref().unwrap_or_default();
    let cred_names = tls.credential_names.as_deref().unwrap_or_default();
    if mode == TlsMode::IstioMutual {
        for (field, present, what) in [
            (
                "serverCertificate",
                set(&tls.server_certificate),
                "server certificate",
            ),
            ("privateKey", set(&tls.private_key), "private key"),
            ("caCertificates", set(&tls.ca_certificates), "CA bundle"),
            ("tlsCertificates", !tls_certs.is_empty(), "tlsCertificates"),
            (
                "credentialName",
                set(&tls.credential_name),
                "credentialName",
            ),
            ("credentialNames", !cred_names.is_empty(), "credentialNames"),
        ] {
            if present {
                r.error(
                    join(path, field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    if matches!(mode, TlsMode::Passthrough | TlsMode::AutoPassthrough)
        && (set(&tls.ca_crl)
            || set(&tls.server_certificate)
            || set(&tls.private_key)
            || set(&tls.ca_certificates)
            || !tls_certs.is_empty()
            || set(&tls.credential_name)
            || !cred_names.is_empty())
    {
        r.warn(
            path,
            format!(
                "{} mode does not use certificates, they will be ignored",
                mode.as_str()
            ),
        );
    }
    let sources = [
        set(&tls.server_certificate) && set(&tls.private_key),
        set(&tls.credential_name),
        !cred_names.is_empty(),
        !tls_certs.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        r.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    let terminating = matches!(
        mode,
        TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual
    );
    if terminating && (set(&tls.credential_name) || !cred_names.is_empty()) {
        return;
    }
    if terminating {
        let prefix = if mode == TlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != TlsMode::Simple && !set(&tls.ca_certificates) {
            r.error(
                join(path, "caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        if tls_certs.len() > 2 {
            r.warn(
                join(path, "tlsCertificates"),
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        let mut certs: Vec<(String, bool, bool)> = tls_certs
            .iter()
            .enumerate()
            .map(|(k, c)| {
                (
                    idx(&join(path, "tlsCertificates"), k),
                    set(&c.server_certificate),
                    set(&c.private_key),
                )
            })
            .collect();
        if certs.is_empty() {
            certs.push((
                path.to_owned(),
                set(&tls.server_certificate),
                set(&tls.private_key),
            ));
        }
        for (cert_path, has_cert, has_key) in certs {
            if !has_cert {
                r.error(
                    cert_path.clone(),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if !has_key {
                r.error(cert_path, format!("{prefix} requires a private key"));
            }
        }
    }
    if set(&tls.ca_crl) {
        let crl = join(path, "caCrl");
        if set(&tls.credential_name) {
            r.error(
                crl.clone(),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if mode == TlsMode::Simple {
            r.error(crl, "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// The CRD rules of `ServerTLSSettings`.
fn crd_server_tls(r: &mut Report, path: &str, tls: &ServerTlsSettings) {
    if let Some(names) = &tls.credential_names {
        let p = join(path, "credentialNames");
        min_items(r, &p, names.len(), 1);
        max_items(r, &p, names.len(), 2);
    }
    if let Some(certs) = &tls.tls_certificates {
        let p = join(path, "tlsCertificates");
        min_items(r, &p, certs.len(), 1);
        max_items(r, &p, certs.len(), 2);
    }
    if tls.credential_names.is_some() && tls.tls_certificates.is_some() {
        cel_object(
            r,
            path,
            path,
            "only one of credentialNames or tlsCertificates can be set",
        );
    }
    if tls.credential_name.is_some() && tls.credential_names.is_some() {
        cel_object(
            r,
            path,
            path,
            "only one of credentialName or credentialNames can be set",
        );
    }
    // The CRD's third rule: its message names credentialName, but its expression counts
    // credentialNames and tlsCertificates (the first rule's pair), so it fires with the first.
    if tls.credential_names.is_some() && tls.tls_certificates.is_some() {
        cel_object(
            r,
            path,
            path,
            "only one of credentialName or tlsCertificates can be set",
        );
    }
}

/// Istio's `security.IsValidCipherSuite`.
fn is_valid_cipher_suite(cs: &str) -> bool {
    cs.is_empty()
        || cs == "ALL"
        || !cs.starts_with(|c: char| c.is_alphanumeric())
        || VALID_CIPHER_SUITES.contains(&cs)
}

/// A sorted string list as Go's `%v` prints a `[]string`.
fn go_list(items: &BTreeSet<&str>) -> String {
    format!("[{}]", items.iter().copied().collect::<Vec<_>>().join(" "))
}

/// `ValidateUnixAddress` (the part after `unix://`).
pub(crate) fn validate_unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}
