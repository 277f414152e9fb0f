//! Gateway (`networking.istio.io`): servers (ports, hosts, TLS) a gateway workload exposes.
//!
//! Modelled field for field after `networking/v1alpha3/gateway.proto`. `ServerTlsSettings` is
//! also the type of a Sidecar ingress listener's `tls`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::common::Protocol;

/// Gateway spec (`networking.v1alpha3.Gateway`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schemars", schemars(rename = "GatewaySpec"))]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    /// Servers (listeners) the gateway exposes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<Server>>,
    /// Labels of the gateway pods this configuration applies to (none: all workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
}

impl Gateway {
    /// The servers (empty when unset).
    pub fn servers(&self) -> &[Server] {
        self.servers.as_deref().unwrap_or_default()
    }

    /// True when the gateway applies to a workload with `pod_labels` (a missing selector
    /// selects every workload).
    pub fn selects(&self, pod_labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .iter()
            .flatten()
            .all(|(k, v)| pod_labels.get(k) == Some(v))
    }
}

/// One server of a Gateway (`networking.v1alpha3.Server`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// Port the proxy listens on (the gateway Service port). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// IP or `unix://` socket to bind to (hidden API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts exposed, `[namespace/]dnsName`. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Loopback endpoint / socket to forward to (not implemented by Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// Optional server name (stat prefix); should be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Server {
    /// The parsed port protocol (`Unsupported` when unset or unknown).
    pub fn protocol(&self) -> Protocol {
        Protocol::parse(self.port.as_ref().map(Port::protocol).unwrap_or_default())
    }

    /// The port number (0 when unset).
    pub fn port_number(&self) -> u32 {
        self.port.as_ref().map(Port::number).unwrap_or_default()
    }

    /// The port name (empty when unset).
    pub fn port_name(&self) -> &str {
        self.port.as_ref().map(Port::name).unwrap_or_default()
    }

    /// The hosts (empty when unset).
    pub fn hosts(&self) -> &[String] {
        self.hosts.as_deref().unwrap_or_default()
    }

    /// The bind address (empty when unset).
    pub fn bind(&self) -> &str {
        self.bind.as_deref().unwrap_or_default()
    }

    /// The TLS mode, when the server has TLS settings.
    pub fn tls_mode(&self) -> Option<TlsMode> {
        self.tls.as_ref().map(ServerTlsSettings::mode_or_default)
    }

    /// `IsPassThroughServer`: TLS mode PASSTHROUGH or AUTO_PASSTHROUGH.
    pub fn is_passthrough(&self) -> bool {
        matches!(
            self.tls_mode(),
            Some(TlsMode::Passthrough | TlsMode::AutoPassthrough)
        )
    }

    /// `IsTLSServer`: has TLS settings and the protocol is not HTTP.
    pub fn is_tls_server(&self) -> bool {
        self.tls.is_some() && !self.protocol().is_http()
    }

    /// `IsHTTPSServerWithTLSTermination`: HTTPS with TLS settings that terminate.
    pub fn is_https_with_tls_termination(&self) -> bool {
        self.protocol() == Protocol::Https && self.tls.is_some() && !self.is_passthrough()
    }

    /// `IsTCPServerWithTLSTermination`: a terminating TLS server that is neither HTTP nor
    /// HTTPS (TLS/TCP/… with SIMPLE, MUTUAL, ISTIO_MUTUAL, OPTIONAL_MUTUAL).
    pub fn is_tcp_with_tls_termination(&self) -> bool {
        let p = self.protocol();
        self.tls.is_some() && !self.is_passthrough() && !p.is_http() && p != Protocol::Https
    }
}

/// A server port (`networking.v1alpha3.Port`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port number. REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Protocol (`HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP`, `TLS`). REQUIRED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name. REQUIRED, unique within a Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated, hidden; any non-zero value is rejected on Gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl Port {
    /// The port number (0 when unset).
    pub fn number(&self) -> u32 {
        self.number.unwrap_or_default()
    }

    /// The protocol as written (empty when unset).
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or_default()
    }

    /// The port name (empty when unset).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// Server-side TLS settings (`networking.v1alpha3.ServerTLSSettings`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerTlsSettings {
    /// Send a 301 redirect to HTTPS for plain HTTP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// TLS mode (default PASSTHROUGH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,
    /// Path of the server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path of the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle verifying client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// Path of a certificate revocation list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// Name of the secret holding key, certificate (and CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Up to two secrets (e.g. RSA and ECDSA certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_names: Option<Vec<String>>,
    /// Name of the secret holding only the CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    /// Up to two file-based certificate/key pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificates: Option<Vec<TlsCertificate>>,
    /// Client subject alternative names to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_alt_names: Option<Vec<String>>,
    /// Base64 SHA-256 hashes of accepted client certificate SPKIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_certificate_spki: Option<Vec<String>>,
    /// Hex SHA-256 hashes of accepted client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_certificate_hash: Option<Vec<String>>,
    /// Minimum TLS version (default TLSv1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// Allowed cipher suites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<String>>,
    /// Skip verification of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

impl ServerTlsSettings {
    /// The TLS mode, PASSTHROUGH when unset (the proto zero value).
    pub fn mode_or_default(&self) -> TlsMode {
        self.mode.unwrap_or_default()
    }

    /// True when `httpsRedirect` is set to true.
    pub fn https_redirect(&self) -> bool {
        self.https_redirect.unwrap_or_default()
    }
}

/// A certificate/key pair of `ServerTLSSettings.tlsCertificates`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// Path of the server certificate file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// Path of the private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Path of the CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// `ServerTLSSettings.TLSmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Route on SNI without terminating (the proto default).
    #[default]
    Passthrough,
    /// Terminate TLS with a server certificate.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Passthrough with the destination encoded in the SNI (multi-network).
    AutoPassthrough,
    /// Terminate Istio mTLS with the workload certificate.
    IstioMutual,
    /// Like MUTUAL, but a client certificate is optional.
    OptionalMutual,
}

impl TlsMode {
    /// The proto enum name (what Go's `%v` prints).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Passthrough => "PASSTHROUGH",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
            TlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }
}

/// `ServerTLSSettings.TLSProtocol`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum TlsProtocol {
    /// Let the proxy choose.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}
