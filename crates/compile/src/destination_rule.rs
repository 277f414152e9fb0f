//! DestinationRules: which rule applies to a service as seen from the gateway (Istio's
//! `PushContext.destinationRule`), and the effective traffic policy of one cluster
//! (`GetPortLevelTrafficPolicy` / `MergeSubsetTrafficPolicy`).

use std::collections::BTreeMap;

use egress_model::resources::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    OutlierDetection, Subset, TrafficPolicy,
};
use egress_model::resources::mesh::MeshConfig;

use crate::Inputs;
use crate::ctx::{name_ns, sorted};
use crate::endpoints::labels_match;
use crate::host::{resolve_short, visible};

/// One DestinationRule, host resolved.
struct Rule<'a> {
    host: String,
    ns: &'a str,
    name: &'a str,
    spec: &'a DestinationRule,
}

/// All DestinationRules, oldest first.
pub(crate) struct DrIndex<'a> {
    rules: Vec<Rule<'a>>,
}

/// The rules for one host in one namespace, merged as Istio merges them: the first rule's
/// traffic policy (or the first one that has one) and every subset, first definition wins.
pub(crate) struct Consolidated<'a> {
    /// Top-level traffic policy.
    pub traffic_policy: Option<&'a TrafficPolicy>,
    /// Subsets.
    pub subsets: Vec<&'a Subset>,
    /// `ns/name` of the rules, for messages.
    pub names: Vec<String>,
}

impl<'a> Consolidated<'a> {
    /// The subset called `name`.
    pub fn subset(&self, name: &str) -> Option<&'a Subset> {
        self.subsets
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .copied()
    }
}

impl<'a> DrIndex<'a> {
    /// Index the DestinationRules of `inputs`.
    pub fn new(inputs: &'a Inputs) -> DrIndex<'a> {
        let rules = sorted(&inputs.destination_rules)
            .into_iter()
            .map(|(meta, spec)| {
                let (name, ns) = name_ns(meta);
                Rule {
                    host: resolve_short(spec.host(), ns),
                    ns,
                    name,
                    spec,
                }
            })
            .filter(|r| !r.host.is_empty())
            .collect();
        DrIndex { rules }
    }

    /// The rule for service `host` (defined in `svc_ns`) seen from a proxy in `proxy_ns` with
    /// `labels`: rules in the proxy's namespace first (a `workloadSelector` must select the
    /// proxy), then rules exported by the service's namespace, then by the root namespace;
    /// within a namespace the exact host wins over the most specific wildcard.
    pub fn for_service(
        &self,
        host: &str,
        svc_ns: &str,
        proxy_ns: &str,
        labels: &BTreeMap<String, String>,
        root_ns: &str,
        mesh: &MeshConfig,
    ) -> Option<Consolidated<'a>> {
        let defaults = mesh
            .default_destination_rule_export_to
            .clone()
            .unwrap_or_default();
        let local = |r: &&Rule<'a>| {
            r.ns == proxy_ns
                && r.spec.workload_selector.as_ref().is_none_or(|w| {
                    labels_match(&w.match_labels.clone().unwrap_or_default(), Some(labels))
                })
        };
        let in_ns: Vec<&Rule<'a>> = self.rules.iter().filter(local).collect();
        if let Some(c) = most_specific(host, &in_ns) {
            return Some(c);
        }
        let svc_rules: Vec<&Rule<'a>> = if svc_ns.is_empty() {
            Vec::new()
        } else {
            self.rules
                .iter()
                .filter(exported_from_ns(svc_ns, &defaults, proxy_ns))
                .collect()
        };
        if let Some(c) = most_specific(host, &svc_rules) {
            return Some(c);
        }
        let root: Vec<&Rule<'a>> = self
            .rules
            .iter()
            .filter(exported_from_ns(root_ns, &defaults, proxy_ns))
            .collect();
        most_specific(host, &root)
    }
}

fn exported_from_ns<'r, 'a: 'r>(
    ns: &'r str,
    defaults: &'r [String],
    proxy_ns: &'r str,
) -> impl Fn(&&Rule<'a>) -> bool + 'r {
    move |r: &&Rule<'a>| {
        r.ns == ns
            && r.spec.workload_selector.is_none()
            && visible(r.spec.export_to(), defaults, r.ns, proxy_ns)
    }
}

/// `MostSpecificHostMatch` over `rules`, then the rules for that host merged.
fn most_specific<'a>(host: &str, rules: &[&Rule<'a>]) -> Option<Consolidated<'a>> {
    let chosen: String = if rules.iter().any(|r| r.host == host) {
        host.to_owned()
    } else {
        let needle = host.strip_prefix('*').unwrap_or(host);
        rules
            .iter()
            .filter(|r| r.host.starts_with('*'))
            .filter(|r| needle.ends_with(r.host.get(1..).unwrap_or_default()))
            .map(|r| r.host.as_str())
            .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| b.cmp(a)))?
            .to_owned()
    };
    let mut out = Consolidated {
        traffic_policy: None,
        subsets: Vec::new(),
        names: Vec::new(),
    };
    for r in rules.iter().filter(|r| r.host == chosen) {
        if out.traffic_policy.is_none() {
            out.traffic_policy = r.spec.traffic_policy.as_ref();
        }
        for s in r.spec.subsets() {
            if out.subset(s.name.as_deref().unwrap_or_default()).is_none() {
                out.subsets.push(s);
            }
        }
        out.names.push(format!("{}/{}", r.ns, r.name));
    }
    Some(out)
}

/// The parts of a traffic policy a cluster uses.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy<'a> {
    /// Load balancing.
    pub lb: Option<&'a LoadBalancerSettings>,
    /// Connection pool.
    pub pool: Option<&'a ConnectionPoolSettings>,
    /// Outlier detection.
    pub outlier: Option<&'a OutlierDetection>,
    /// Upstream TLS.
    pub tls: Option<&'a ClientTlsSettings>,
}

/// `GetPortLevelTrafficPolicy`: the port-level settings for `port` replace the whole policy
/// (fields they omit fall back to defaults, not to the top level); `true` when they exist.
fn port_level(tp: Option<&TrafficPolicy>, port: u16) -> (Option<Policy<'_>>, bool) {
    let Some(tp) = tp else { return (None, false) };
    match tp.for_port(i64::from(port)) {
        Some(p) => (
            Some(Policy {
                lb: p.load_balancer.as_ref(),
                pool: p.connection_pool.as_ref(),
                outlier: p.outlier_detection.as_ref(),
                tls: p.tls.as_ref(),
            }),
            true,
        ),
        None => (
            Some(Policy {
                lb: tp.load_balancer.as_ref(),
                pool: tp.connection_pool.as_ref(),
                outlier: tp.outlier_detection.as_ref(),
                tls: tp.tls.as_ref(),
            }),
            false,
        ),
    }
}

/// The effective policy of cluster `outbound|port|subset|host`: the rule's (port-level)
/// policy, overlaid field by field with the subset's (port-level) policy; subset port-level
/// settings replace all four fields.
pub(crate) fn effective_policy<'a>(
    rule: Option<&Consolidated<'a>>,
    subset: Option<&'a Subset>,
    port: u16,
) -> Policy<'a> {
    let (original, _) = port_level(rule.and_then(|r| r.traffic_policy), port);
    let Some(subset_tp) = subset.and_then(|s| s.traffic_policy.as_ref()) else {
        return original.unwrap_or_default();
    };
    let (sub, has_port_level) = port_level(Some(subset_tp), port);
    let sub = sub.unwrap_or_default();
    let Some(mut merged) = original else {
        return sub;
    };
    if sub.pool.is_some() || has_port_level {
        merged.pool = sub.pool;
    }
    if sub.outlier.is_some() || has_port_level {
        merged.outlier = sub.outlier;
    }
    if sub.lb.is_some() || has_port_level {
        merged.lb = sub.lb;
    }
    if sub.tls.is_some() || has_port_level {
        merged.tls = sub.tls;
    }
    merged
}
