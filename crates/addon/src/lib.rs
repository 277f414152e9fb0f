//! The managed add-on, as pure logic: the ManagedCluster mesh profile shaped like the AKS API
//! (`profile`), the `az aks mesh …` decorator rules with az's exact order and messages (`ops`),
//! the local static egress prefix allocator for StaticGatewayConfigurations (`sgc`), and the
//! Kubernetes objects an enabled egress gateway consists of (`objects`).
//!
//! Nothing here performs I/O: callers load the profile and objects from the store, apply these
//! functions, and write the results back.

pub mod manifests;
pub mod objects;
pub mod ops;
pub mod profile;
pub mod revisions;
pub mod sgc;

pub use ops::AddonError;
pub use profile::{ManagedCluster, ServiceMeshProfile};
