//! Configuration in, a serving proxy out: the one path every gateway and sidecar takes,
//! whether `egress gateway run`, `egress sidecar run` or a Pod of `egress up` runs it.
//!
//! ```text
//! ConfigSource (store feed | directory | Kubernetes API cache)
//!   └─ load::Reader (only changed objects decoded: decode::DecodeCache)
//!        └─ lastgood::LastGood (a bad object keeps its last good version)
//!             └─ compile (per instance) ──offer──▶ watch ──▶ proxy's Active (one swap)
//! ```
//!
//! [`instance::Instance`] wires one source to one proxy; [`reload::reload_loop`] is the loop.

pub mod decode;
pub mod files;
pub mod instance;
pub mod lastgood;
pub mod load;
mod memory;
pub mod offer;
pub mod reload;
pub mod settle;
pub mod source;

pub use instance::{Instance, Plane, StartError, run};
pub use source::ConfigSource;
