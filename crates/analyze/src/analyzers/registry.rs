//! The mesh's services as istioctl's analyzers see them (`util.InitServiceEntryHostMap`,
//! `util.GetDestinationHost`): every ServiceEntry host and every Kubernetes Service, per
//! `exportTo` scope, and the lookup of a destination host from a namespace.

use std::collections::BTreeMap;

use serde_json::Value;

use super::hosts::{DEFAULT_KUBERNETES_DOMAIN, to_fqdn};
use super::{array, of_kind, string_map, strings};
use crate::Input;

/// The Service annotation that limits where a Kubernetes Service is visible.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A service as a ServiceEntry: its port numbers and workload selector labels.
#[derive(Debug, Clone, Default)]
pub(super) struct Service {
    /// The port numbers, in order.
    pub(super) ports: Vec<u64>,
    /// A ServiceEntry's `workloadSelector.labels` (empty for Kubernetes Services).
    pub(super) workload_labels: BTreeMap<String, String>,
}

/// `(scope, fqdn)` → service; scope `*` is every namespace. Later definitions replace earlier
/// ones, Kubernetes Services last, as in istioctl.
pub(super) struct Registry {
    hosts: BTreeMap<(String, String), Service>,
}

impl Registry {
    /// Every ServiceEntry and Service of `inputs`.
    pub(super) fn new(inputs: &[Input]) -> Registry {
        let mut hosts = BTreeMap::new();
        for se in of_kind(inputs, "ServiceEntry") {
            let spec = se.get(&["spec"]).cloned().unwrap_or(Value::Null);
            let service = Service {
                ports: array(spec.get("ports"))
                    .iter()
                    .map(|p| p.get("number").and_then(Value::as_u64).unwrap_or(0))
                    .collect(),
                workload_labels: string_map(
                    spec.get("workloadSelector").and_then(|w| w.get("labels")),
                ),
            };
            let export_to = strings(spec.get("exportTo"));
            for h in strings(spec.get("hosts")) {
                let fqdn = to_fqdn(&se.namespace, &h);
                if export_to.is_empty() {
                    hosts.insert(("*".to_owned(), fqdn), service.clone());
                    continue;
                }
                for e in &export_to {
                    let scope = if e == "." { &se.namespace } else { e };
                    hosts.insert((scope.clone(), fqdn.clone()), service.clone());
                    if e == "*" {
                        break;
                    }
                }
            }
        }
        for svc in of_kind(inputs, "Service") {
            let service = Service {
                ports: array(svc.get(&["spec", "ports"]))
                    .iter()
                    .map(|p| p.get("port").and_then(Value::as_u64).unwrap_or(0))
                    .collect(),
                workload_labels: BTreeMap::new(),
            };
            let fqdn = format!(
                "{}.{}.svc.{DEFAULT_KUBERNETES_DOMAIN}",
                svc.name, svc.namespace
            );
            let scopes: Vec<String> = match svc.annotation(EXPORT_TO_ANNOTATION) {
                None | Some("") => vec!["*".to_owned()],
                Some(list) => list
                    .split(',')
                    .map(|ns| {
                        if ns == "." {
                            svc.namespace.clone()
                        } else {
                            ns.to_owned()
                        }
                    })
                    .collect(),
            };
            for scope in scopes {
                hosts.insert((scope, fqdn.clone()), service.clone());
            }
        }
        Registry { hosts }
    }

    /// The service a destination `host` names from namespace `source_ns`, for a resource
    /// exported to `export_to`: exported everywhere, then in the resource's scopes, then a
    /// wildcard host visible there covering it.
    pub(super) fn lookup(
        &self,
        source_ns: &str,
        export_to: &[String],
        host: &str,
    ) -> Option<&Service> {
        let fqdn = to_fqdn(source_ns, host);
        let get = |scope: &str| self.hosts.get(&(scope.to_owned(), fqdn.clone()));
        if let Some(s) = get("*") {
            return Some(s);
        }
        if export_to.is_empty() {
            if let Some(s) = get(source_ns) {
                return Some(s);
            }
        } else {
            for e in export_to {
                let scope = if e == "." { source_ns } else { e.as_str() };
                if let Some(s) = get(scope) {
                    return Some(s);
                }
            }
        }
        let bare = host.strip_prefix('*').unwrap_or(host);
        self.hosts.iter().find_map(|((scope, se_host), s)| {
            let suffix = se_host.strip_prefix('*')?;
            ((scope == "*" || scope == source_ns) && bare.ends_with(suffix)).then_some(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value) -> Input {
        Input::new(v, None).unwrap_or_else(|| panic!("not an object"))
    }

    #[test]
    fn lookups() {
        let inputs = vec![
            input(
                json!({"kind": "ServiceEntry", "metadata": {"name": "a", "namespace": "x"},
                "spec": {"hosts": ["*.wiki.test"], "exportTo": ["."], "ports": [{"number": 443, "name": "tls"}]}}),
            ),
            input(
                json!({"kind": "Service", "metadata": {"name": "s", "namespace": "y",
                "annotations": {"networking.istio.io/exportTo": "z,."}},
                "spec": {"ports": [{"port": 80}]}}),
            ),
        ];
        let r = Registry::new(&inputs);
        assert!(r.lookup("x", &[], "a.wiki.test").is_some());
        assert!(r.lookup("x", &[], "*.wiki.test").is_some());
        assert!(r.lookup("other", &[], "a.wiki.test").is_none());
        assert!(r.lookup("z", &[], "s.y.svc.cluster.local").is_some());
        assert!(r.lookup("y", &[], "s").is_some());
        assert!(r.lookup("w", &[], "s.y.svc.cluster.local").is_none());
        let only_w = vec!["w".to_owned()];
        assert!(r.lookup("y", &only_w, "s").is_none());
        assert_eq!(
            r.lookup("x", &[], "b.wiki.test").map(|s| s.ports.clone()),
            Some(vec![443])
        );
    }
}
