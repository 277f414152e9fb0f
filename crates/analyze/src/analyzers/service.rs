//! Istio's `service` analyzer: Service port names that do not name a protocol (IST0118), and
//! ExternalName Services whose ports would be treated as opaque TCP (IST0150).

use serde_json::Value;

use super::messages::{EXTERNAL_NAME_INVALID_PORT_NAME, PORT_NAME_NOT_CONVENTIONAL};
use super::{array, labels_of, of_kind, report, str_of};
use crate::{Finding, Input};

/// Namespaces istioctl never injects and skips here.
const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Ports on which a port name that names no protocol still means TCP (SMTP, DNS, MySQL,
/// MongoDB).
const WELL_KNOWN_PORTS: [u64; 4] = [25, 53, 3306, 27017];

/// Istio's `protocol.Parse` (case-insensitive): is `name` a protocol Istio knows?
fn known_protocol(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "tcp"
            | "udp"
            | "grpc"
            | "grpc-web"
            | "http"
            | "http_proxy"
            | "http2"
            | "https"
            | "tls"
            | "mongo"
            | "redis"
            | "mysql"
    )
}

/// Istio's `kube.ConvertProtocol` reduced to the question the analyzer asks: does the port's
/// `appProtocol`, or else its name up to the first `-`, name a supported protocol (UDP ports,
/// `grpc-web*` names, Kubernetes' `kubernetes.io/h2c|ws|wss` and well-known ports always do)?
fn protocol_supported(port: &Value) -> bool {
    if str_of(port, "protocol") == "UDP" {
        return true;
    }
    let name = match port.get("appProtocol").and_then(Value::as_str) {
        Some(app) => {
            if matches!(
                app,
                "kubernetes.io/h2c" | "kubernetes.io/ws" | "kubernetes.io/wss"
            ) {
                return true;
            }
            app
        }
        None => str_of(port, "name"),
    };
    if name.to_ascii_lowercase().starts_with("grpc-web") {
        return true;
    }
    let prefix = name.split('-').next().unwrap_or_default();
    if known_protocol(prefix) {
        return true;
    }
    let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
    WELL_KNOWN_PORTS.contains(&number)
}

/// Kubernetes' `IntOrString.String()` for a targetPort (`0` when unset).
fn target_port_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_owned(),
    }
}

/// Services istioctl leaves out: system namespaces, the control plane (an `istio` label or
/// `release=istio`), and gateways Istio manages (`gateway.istio.io/managed`).
fn skipped(svc: &Input) -> bool {
    if SYSTEM_NAMESPACES.contains(&svc.namespace.as_str()) {
        return true;
    }
    let labels = labels_of(svc);
    labels.contains_key("istio")
        || labels.get("release").map(String::as_str) == Some("istio")
        || labels
            .get("gateway.istio.io/managed")
            .is_some_and(|v| !v.is_empty())
}

/// `service.PortNameAnalyzer`: a port whose protocol cannot be told from its name or
/// `appProtocol`: IST0118, or IST0150 on an ExternalName Service (where a port named `tcp` is
/// reported too).
pub(super) fn port_names(inputs: &[Input], out: &mut Vec<Finding>) {
    for svc in of_kind(inputs, "Service").filter(|s| !skipped(s)) {
        let external = svc
            .get(&["spec", "type"])
            .and_then(Value::as_str)
            .is_some_and(|t| t == "ExternalName");
        for (i, port) in array(svc.get(&["spec", "ports"])).iter().enumerate() {
            let name = str_of(port, "name");
            if protocol_supported(port) && !(external && name == "tcp") {
                continue;
            }
            let path = format!("spec.ports[{i}]");
            if external {
                report(
                    out,
                    &EXTERNAL_NAME_INVALID_PORT_NAME,
                    svc,
                    &path,
                    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly".to_owned(),
                );
            } else {
                let number = port.get("port").and_then(Value::as_u64).unwrap_or(0);
                report(
                    out,
                    &PORT_NAME_NOT_CONVENTIONAL,
                    svc,
                    &path,
                    format!(
                        "Port name {name} (port: {number}, targetPort: {}) doesn't follow the naming convention of Istio port.",
                        target_port_text(port.get("targetPort"))
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn protocols_from_names() {
        let p = |v: Value| protocol_supported(&v);
        assert!(p(json!({"name": "http-web", "port": 80})));
        assert!(p(json!({"name": "HTTPS", "port": 443})));
        assert!(p(json!({"name": "grpc-web-x", "port": 1})));
        assert!(!p(json!({"name": "web", "port": 80})));
        assert!(!p(json!({"port": 8080})));
        assert!(p(json!({"port": 3306})));
        assert!(p(json!({"name": "x", "appProtocol": "http", "port": 1})));
        assert!(!p(json!({"name": "http", "appProtocol": "foo", "port": 1})));
        assert!(p(json!({"name": "dns", "protocol": "UDP", "port": 1053})));
        assert_eq!(target_port_text(Some(&json!("http"))), "http");
        assert_eq!(target_port_text(None), "0");
    }
}
