//! Istio's `destinationrule` analyzers: TLS origination without a CA (IST0128, IST0129).

use serde_json::Value;

use super::messages::{NO_CA_DESTINATION, NO_CA_PORT};
use super::{of_kind, report};
use crate::{Finding, Input};

fn tls_without_ca(tls: Option<&Value>) -> Option<String> {
    let tls = tls?;
    let mode = tls.get("mode")?.as_str()?;
    if mode != "SIMPLE" && mode != "MUTUAL" {
        return None;
    }
    let ca = tls
        .get("caCertificates")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ca.is_empty().then(|| mode.to_owned())
}

/// Go's proto text for a PortSelector: `number:443`.
fn port_text(port: Option<&Value>) -> String {
    match port.and_then(|p| p.get("number")).and_then(Value::as_u64) {
        Some(n) => format!("number:{n}"),
        None => String::new(),
    }
}

/// `destinationrule.CaCertificateAnalyzer`: TLS SIMPLE/MUTUAL without caCertificates: IST0128
/// (top level), IST0129 (per port). A rule with a workloadSelector whose TLS names a
/// credentialName gets its CA from that secret and is not reported.
pub(super) fn ca_certificates(inputs: &[Input], out: &mut Vec<Finding>) {
    for dr in of_kind(inputs, "DestinationRule") {
        let host = dr
            .get(&["spec", "host"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        let has_selector = dr.get(&["spec", "workloadSelector"]).is_some();
        let exempt = |tls: Option<&Value>| {
            has_selector
                && tls
                    .and_then(|t| t.get("credentialName"))
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty())
        };
        let tls = dr.get(&["spec", "trafficPolicy", "tls"]);
        if let Some(mode) = tls_without_ca(tls)
            && !exempt(tls)
        {
            report(
                out,
                &NO_CA_DESTINATION,
                dr,
                "spec.trafficPolicy.tls.mode",
                format!(
                    "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host}",
                    dr.full_name(),
                    dr.namespace
                ),
            );
        }
        let ports = dr
            .get(&["spec", "trafficPolicy", "portLevelSettings"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            let tls = p.get("tls");
            if let Some(mode) = tls_without_ca(tls)
                && !exempt(tls)
            {
                report(
                    out,
                    &NO_CA_PORT,
                    dr,
                    &format!("spec.trafficPolicy.portLevelSettings[{i}].tls.mode"),
                    format!(
                        "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host} at port {}",
                        dr.full_name(),
                        dr.namespace,
                        port_text(p.get("port"))
                    ),
                );
            }
        }
    }
}
