//! Resources to snapshots: the pure function from the cluster's Istio objects to the one
//! immutable [`snapshot::Snapshot`] a gateway instance serves (listeners, filter chains, route
//! tables, upstream clusters, TLS settings, access-log settings), following Istio's gateway
//! translation (`istio-egress.md` §3.5). No I/O: table-tested.

pub mod snapshot;
