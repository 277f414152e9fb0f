//! The StaticGatewayConfiguration controller: kube-egress-gateway's validation (a Warning
//! event `InvalidSpec` with its messages, and no prefix) and `status.egressIpPrefix` from the
//! local pool. Prefixes are rebuilt from the stored statuses on every pass, so a deleted
//! configuration's prefix is free again and a restart adopts what was assigned before.

use std::collections::BTreeMap;

use egress_addon::sgc::{PrefixAllocator, sgc_controller_errors, sgc_key};
use egress_model::resources::sgc::StaticGatewayConfigurationSpec;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::{Plan, Settings, State, at, name, namespace, warning_event};

/// The API group of StaticGatewayConfiguration.
pub const SGC_GROUP: &str = "egressgateway.kubernetes.azure.com";

/// The assigned prefix of every valid configuration, by `namespace/name`.
pub(super) fn reconcile(
    state: &State,
    settings: &Settings,
    plan: &mut Plan,
) -> BTreeMap<String, Ipv4Net> {
    let mut out = BTreeMap::new();
    let mut alloc = match PrefixAllocator::new(&settings.egress_pool) {
        Ok(a) => a,
        Err(e) => {
            plan.note(format!("egress IP pool: {e}"));
            return out;
        }
    };
    let mut sgcs: Vec<&Value> = state
        .sgcs
        .iter()
        .filter(|o| !super::is_terminating(o))
        .collect();
    sgcs.sort_by_key(|o| {
        (
            at(o, "/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            sgc_key(namespace(o), name(o)),
        )
    });
    // Adopt what is assigned; a prefix outside the pool (the pool changed) or taken twice is
    // reassigned below.
    let mut needs: Vec<&Value> = Vec::new();
    for o in &sgcs {
        let key = sgc_key(namespace(o), name(o));
        let prefix = at(o, "/status/egressIpPrefix")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if prefix.is_empty() || alloc.adopt(&key, prefix).is_err() {
            needs.push(o);
        }
    }
    for o in &sgcs {
        let spec: Result<StaticGatewayConfigurationSpec, _> =
            serde_json::from_value(o.get("spec").cloned().unwrap_or(Value::Null));
        let errors = match spec {
            Ok(spec) => sgc_controller_errors(&spec),
            Err(e) => vec![e.to_string()],
        };
        let key = sgc_key(namespace(o), name(o));
        if !errors.is_empty() {
            let listed = if errors.len() == 1 {
                errors.join("")
            } else {
                format!("[{}]", errors.join(", "))
            };
            let message = format!(
                "StaticGatewayConfiguration.{SGC_GROUP} \"{}\" is invalid: {listed}",
                name(o)
            );
            warning_event(state, settings, plan, o, "InvalidSpec", &message);
            if let Some(p) = alloc.get(&key) {
                out.insert(key, p);
            }
            continue;
        }
        if !needs.iter().any(|n| std::ptr::eq(*n, *o)) {
            if let Some(p) = alloc.get(&key) {
                out.insert(key, p);
            }
            continue;
        }
        match alloc.allocate(&key) {
            Ok(p) => {
                let mut updated = (*o).clone();
                updated["status"] = match updated.get("status") {
                    Some(Value::Object(s)) => {
                        let mut s = s.clone();
                        s.insert("egressIpPrefix".into(), json!(p.to_string()));
                        Value::Object(s)
                    }
                    _ => json!({"egressIpPrefix": p.to_string()}),
                };
                plan.note(format!(
                    "staticgatewayconfiguration {key}: egressIpPrefix {p}"
                ));
                plan.put(Some(o), updated);
                out.insert(key, p);
            }
            Err(e) => warning_event(
                state,
                settings,
                plan,
                o,
                "PrefixUnavailable",
                &e.to_string(),
            ),
        }
    }
    out
}
