//! The local cluster behind `egress up`: the controllers a Kubernetes cluster would run for
//! the add-on's objects (StaticGatewayConfiguration prefixes, Deployments, ReplicaSets, Pods,
//! garbage collection) as a pure function over the embedded store, and the runtime that runs
//! one in-process gateway instance per gateway Pod on the Pod's own loopback address.
//!
//! ```text
//! store ──read──▶ controllers::reconcile ──plan──▶ one transaction ──▶ store
//!   │                                                        (Pods with IPs)
//!   └──(change feed)──▶ runtime: one egress_runner::Instance per Pod ──▶ gateways, sidecars
//! ```

pub mod api;
pub mod ca;
pub mod caserver;
pub mod config;
pub mod controllers;
mod error;
pub mod runtime;
pub mod standin;
pub mod up;

pub use error::ClusterError;
