//! The resource model of egress: the Istio, AKS add-on and Kubernetes kinds the seed uses,
//! decoded from Kubernetes-style YAML with source positions, and validated with Istio's rules
//! and messages. Pure: no I/O, no async, no network.
//!
//! Flow: [`yaml::parse_stream`] turns text into JSON documents with field positions;
//! [`decode::decode_document`] decodes one strictly into a typed [`resources::Resource`] and
//! runs [`validate::validate`]; every problem comes back as a [`diag::Diagnostic`] naming the
//! file, line, object and field.

pub mod decode;
pub mod diag;
pub mod kinds;
pub mod resources;
#[cfg(feature = "schemars")]
pub mod schema;
pub mod validate;
pub mod yaml;

pub use decode::{DecodeOptions, Decoded, Outcome, decode_document, decode_file};
pub use diag::{Cause, Diagnostic, Finding, ObjectRef, Report, Severity};
pub use kinds::KindInfo;
pub use resources::Resource;
