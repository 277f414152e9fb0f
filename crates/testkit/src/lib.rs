//! Test support for the proxy's and the CLI's integration tests, all on loopback:
//!
//! * [`CertFactory`]: a stand-in "public" CA issuing server and client certificates for DNS
//!   names, and its root as a file for `curl --cacert`.
//! * [`HttpUpstream`], [`HttpsUpstream`]: HTTP/1.1 and h2 servers answering every path
//!   (configurable status, body and delay per path) and recording each request and connection;
//!   [`TcpRecorder`]: a raw TCP echo server recording peers. All can refuse sources outside a
//!   CIDR ([`HttpUpstream::allow_only`]) to stand in for a partner's firewall.
//! * [`Curl`]: runs the real `curl` binary with the usual flags (`--resolve`, `--cacert`, ...).
//! * [`apiserver::MockApiServer`]: a mock Kubernetes API server speaking the API's JSON
//!   (list, watch, server-side apply, 410 Gone) with a request log and test controls.
//! * [`eventually`]: polls a condition until a deadline, for waiting on external processes.
//! * [`addrs::Block`]: the address plan, a loopback /24 claimed per test instead of literals.
//!
//! Waiting for recorded events ([`HttpUpstream::wait_for_requests`] and friends) is driven by
//! notifications, never by sleeping.

pub mod addrs;
pub mod apiserver;
mod certs;
mod curl;
pub mod dns;
pub mod envoy;
pub mod forward;
pub mod kubectl;
mod record;
mod skip;
mod tcp;
mod upstream;
mod wait;

pub use certs::CertFactory;
pub use curl::{Curl, CurlOutput};
pub use record::{ConnectionRecord, RecordedRequest};
pub use skip::{STRICT_ENV, skip, strict};
pub use tcp::TcpRecorder;
pub use upstream::{HttpUpstream, HttpsUpstream, Reply};
pub use wait::{TimedOut, eventually};

/// Errors of the test kit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket, file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate or TLS configuration failed.
    #[error(transparent)]
    Identity(#[from] egress_identity::Error),
    /// A CIDR did not parse.
    #[error("invalid CIDR {0:?} (expected e.g. 127.0.0.0/8)")]
    Cidr(String),
    /// A wait ran past its deadline.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
}

/// Result alias of the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
