//! Mesh certificates over Istio's CA API: the gRPC call
//! `istio.v1.auth.IstioCertificateService/CreateCertificate` that Istio's agent makes to istiod
//! (port 15012, TLS verified with the mesh root), authenticated with the Pod's projected
//! service-account token (audience `istio-ca`) as `authorization: Bearer <token>`.
//!
//! * [`CaClient`] generates a key and CSR, calls the CA, and checks the returned chain against
//!   the mesh roots and the requested SPIFFE id; [`spawn_rotation`] keeps an
//!   [`IdentityHandle`](crate::IdentityHandle) renewed through it (half-life, backoff on failure).
//! * [`CaServer`] serves the same API over TLS, signing with a [`MeshCa`](crate::MeshCa) for the
//!   identity a pluggable [`TokenReviewer`] vouches for; refusals carry Istio's gRPC statuses
//!   and messages.
//! * [`LocalTokenIssuer`] mints ES256 service-account tokens as the local cluster's API server
//!   would, and [`LocalTokenReviewer`] checks them (signature, issuer, audience, expiry).
//!
//! gRPC is spoken directly over hyper's HTTP/2: one message each way, status in trailers.

mod client;
mod jwt;
pub mod proto;
mod rotate;
mod server;

use std::fmt;

pub use client::{CaClient, TokenSource};
pub use jwt::{LocalTokenIssuer, LocalTokenReviewer};
pub use rotate::{
    ObtainError, Rotation, RotationOptions, RotationStatus, WorkloadCert, obtain, spawn_rotation,
};
pub use server::{CaServer, CaServerOptions, ReviewFuture, ServiceAccount, TokenReviewer};

/// The audience of the tokens the CA accepts (Istio's `istio-ca`).
pub const ISTIO_CA_AUDIENCE: &str = "istio-ca";

/// The TLS server name of the CA in the local cluster (istiod's Service in the add-on's
/// namespace), also the client's default.
pub const DEFAULT_SERVER_NAME: &str = "istiod.aks-istio-system.svc";

/// The cluster id the client sends in the `ClusterID` header by default (Istio's default).
pub const DEFAULT_CLUSTER_ID: &str = "Kubernetes";

/// Where Istio's sidecars find their projected token (audience `istio-ca`).
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/tokens/istio-token";

/// A gRPC status code (the subset of grpc/codes the CA API uses, plus any other by number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: success.
    Ok,
    /// 2: unknown error.
    Unknown,
    /// 3: the request is invalid (a bad CSR, a TTL over the limit).
    InvalidArgument,
    /// 7: the caller may not do this.
    PermissionDenied,
    /// 12: the method is not served.
    Unimplemented,
    /// 13: the server failed.
    Internal,
    /// 14: the server is unavailable.
    Unavailable,
    /// 16: the caller's credentials were refused.
    Unauthenticated,
    /// Any other code.
    Other(u32),
}

impl Code {
    /// The numeric code sent in `grpc-status`.
    pub fn as_u32(self) -> u32 {
        match self {
            Code::Ok => 0,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::PermissionDenied => 7,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
            Code::Other(n) => n,
        }
    }

    /// The code for a numeric `grpc-status`.
    pub fn from_u32(n: u32) -> Code {
        match n {
            0 => Code::Ok,
            2 => Code::Unknown,
            3 => Code::InvalidArgument,
            7 => Code::PermissionDenied,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            16 => Code::Unauthenticated,
            other => Code::Other(other),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Code::Ok => "OK",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::PermissionDenied => "PermissionDenied",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::Unauthenticated => "Unauthenticated",
            Code::Other(n) => return write!(f, "code {n}"),
        };
        f.write_str(name)
    }
}

/// Errors of the CA client, server and token handling.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA answered the call with a non-OK gRPC status.
    #[error("the CA refused the certificate request: rpc error: code = {code} desc = {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The `grpc-message`.
        message: String,
    },
    /// The CA could not be reached.
    #[error("connecting to the CA at {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The TLS handshake with the CA failed (e.g. its certificate does not chain to the roots).
    #[error("TLS handshake with the CA at {addr}: {source}")]
    Handshake {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The HTTP/2 exchange failed.
    #[error("HTTP/2 exchange with the CA: {0}")]
    Transport(String),
    /// The answer was not a valid CA response (framing, protobuf, or a chain that does not
    /// verify).
    #[error("invalid CA response: {0}")]
    InvalidResponse(String),
    /// The token file could not be read.
    #[error("reading the CA token {path}: {source}")]
    Token {
        /// The token file.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A token could not be minted or a token key used.
    #[error("token key: {0}")]
    TokenKey(String),
    /// The CA address is not `HOST:PORT`, or the server name is not a DNS name.
    #[error("{0}")]
    Config(String),
    /// Certificates, keys or TLS configuration.
    #[error(transparent)]
    Identity(#[from] crate::Error),
    /// The server's listener failed.
    #[error("CA server: {0}")]
    Io(#[from] std::io::Error),
}

impl CaError {
    /// The gRPC status code when the CA refused the call.
    pub fn code(&self) -> Option<Code> {
        match self {
            CaError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The gRPC message when the CA refused the call.
    pub fn status_message(&self) -> Option<&str> {
        match self {
            CaError::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Percent-decodes a `grpc-message` (gRPC percent-encodes bytes outside printable ASCII and
/// `%`).
pub(crate) fn decode_grpc_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits: at most 0xff.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a `grpc-message`.
pub(crate) fn encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..20 {
            assert_eq!(Code::from_u32(n).as_u32(), n);
        }
        assert_eq!(Code::Unauthenticated.as_u32(), 16);
        assert_eq!(Code::InvalidArgument.as_u32(), 3);
        assert_eq!(Code::Unauthenticated.to_string(), "Unauthenticated");
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        let msg = "CSR signing error (100% wrong: é)\n";
        let enc = encode_grpc_message(msg);
        assert!(enc.is_ascii());
        assert!(enc.contains("100%25"));
        assert_eq!(decode_grpc_message(enc.as_bytes()), msg);
        assert_eq!(decode_grpc_message(b"50%"), "50%");
    }
}
