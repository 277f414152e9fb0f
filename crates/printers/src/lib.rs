//! kubectl-compatible output: tables, JSONPath, YAML/JSON, label selectors.
//!
//! Everything works on Kubernetes-style `serde_json::Value` objects and mirrors the formats of
//! `kubectl get` (`k8s.io/kubectl` printers, `k8s.io/client-go/util/jsonpath`,
//! `k8s.io/apimachinery` label selectors, `sigs.k8s.io/yaml`).

mod gofmt;
pub mod jsonpath;
pub mod selector;
pub mod table;
pub mod yaml;

pub use yaml::{list, to_json, to_yaml};
