//! The contract between the compiler (`egress-compile`, which reads Istio's resources) and the
//! data plane (`egress-proxy`, which serves): the immutable [`snapshot::Snapshot`] of one gateway
//! instance and the sidecar's [`snapshot::SidecarSnapshot`], the AuthorizationPolicies as the
//! proxy evaluates them ([`authz`]) and the access-log filter expressions ([`log_filter`]). Plain
//! data and the pure functions over it: no
//! dependency on the resource model, YAML or Kubernetes types, so the proxy builds without them.

pub mod authz;
pub mod log_filter;
pub mod sidecar_view;
pub mod snapshot;

pub use snapshot::{GatewayIdentity, Snapshot};
