//! The operations behind the `egress` command, as library calls: kubectl-shaped `apply`, `get`,
//! `delete`, `label`, istioctl-shaped `validate`, and the local cluster's `up`. The binary is a
//! thin clap front over these; tests call them directly or run the binary.

pub mod capture;
pub mod error;
pub mod gateway;
pub mod input;
pub mod merge;
pub mod mesh;
pub mod meshcert;
pub mod ops;
pub mod sidecar;

pub use error::OpError;

use std::io::Write;

/// Where an operation writes: standard output and standard error.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Progress, warnings and errors.
    pub err: &'a mut dyn Write,
}
