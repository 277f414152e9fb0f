//! The egress gateway's data plane. It serves one [`egress_compile::snapshot::Snapshot`] at a
//! time, read from a `tokio::sync::watch` channel: a new snapshot is swapped in for new
//! connections and requests while in-flight ones finish on the old one.
//!
//! Layout: `listener` binds and accepts, `sni` peeks ClientHellos, `tcp_proxy` splices bytes,
//! `tls_server` terminates downstream TLS, `connect` resolves, balances and opens upstream
//! connections (with TLS origination and an optional source address), `http` routes requests,
//! `accesslog` writes Istio-format lines, `health` answers 15021, `drain` stops gracefully.

pub mod accesslog;
pub mod connect;
pub mod ctx;
pub mod drain;
pub mod health;
pub mod http;
pub mod listener;
pub mod sni;
pub mod tcp_proxy;
pub mod tls_server;

pub use ctx::{ConnInfo, Ctx, ProxyOptions};
