//! Columns and cells per kind, after kubectl's built-in printers and Istio's CRD printer columns.

use std::time::SystemTime;

use serde_json::Value;

use super::age::age;
use super::{event, pod};
use crate::jsonpath::result_text;
use crate::selector::Selector;

/// kubectl shortens load balancer addresses to this many bytes without `-o wide`.
const LOAD_BALANCER_WIDTH: usize = 16;

type RowFn = fn(&Value, bool, SystemTime) -> Vec<String>;

/// A kind's columns (`(header, wide_only)`) and its row builder producing every column's cell.
pub(super) struct KindSpec {
    pub columns: &'static [(&'static str, bool)],
    pub row: RowFn,
}

pub(super) fn spec(kind: &str) -> KindSpec {
    let (columns, row): (&'static [(&'static str, bool)], RowFn) =
        match kind.to_ascii_lowercase().as_str() {
            "service" => (
                &[
                    ("NAME", false),
                    ("TYPE", false),
                    ("CLUSTER-IP", false),
                    ("EXTERNAL-IP", false),
                    ("PORT(S)", false),
                    ("AGE", false),
                    ("SELECTOR", true),
                ],
                service,
            ),
            "deployment" => (
                &[
                    ("NAME", false),
                    ("READY", false),
                    ("UP-TO-DATE", false),
                    ("AVAILABLE", false),
                    ("AGE", false),
                    ("CONTAINERS", true),
                    ("IMAGES", true),
                    ("SELECTOR", true),
                ],
                deployment,
            ),
            "replicaset" => (
                &[
                    ("NAME", false),
                    ("DESIRED", false),
                    ("CURRENT", false),
                    ("READY", false),
                    ("AGE", false),
                    ("CONTAINERS", true),
                    ("IMAGES", true),
                    ("SELECTOR", true),
                ],
                replica_set,
            ),
            "pod" => (
                &[
                    ("NAME", false),
                    ("READY", false),
                    ("STATUS", false),
                    ("RESTARTS", false),
                    ("AGE", false),
                    ("IP", true),
                    ("NODE", true),
                    ("NOMINATED NODE", true),
                    ("READINESS GATES", true),
                ],
                pod::row,
            ),
            "event" => (event::COLUMNS, event::row),
            "namespace" => (
                &[("NAME", false), ("STATUS", false), ("AGE", false)],
                namespace,
            ),
            "configmap" => (
                &[("NAME", false), ("DATA", false), ("AGE", false)],
                config_map,
            ),
            "secret" => (
                &[
                    ("NAME", false),
                    ("TYPE", false),
                    ("DATA", false),
                    ("AGE", false),
                ],
                secret,
            ),
            "serviceaccount" => (
                &[("NAME", false), ("SECRETS", false), ("AGE", false)],
                service_account,
            ),
            "horizontalpodautoscaler" => (
                &[
                    ("NAME", false),
                    ("REFERENCE", false),
                    ("TARGETS", false),
                    ("MINPODS", false),
                    ("MAXPODS", false),
                    ("REPLICAS", false),
                    ("AGE", false),
                ],
                hpa,
            ),
            "poddisruptionbudget" => (
                &[
                    ("NAME", false),
                    ("MIN AVAILABLE", false),
                    ("MAX UNAVAILABLE", false),
                    ("ALLOWED DISRUPTIONS", false),
                    ("AGE", false),
                ],
                pdb,
            ),
            "endpointslice" => (
                &[
                    ("NAME", false),
                    ("ADDRESSTYPE", false),
                    ("PORTS", false),
                    ("ENDPOINTS", false),
                    ("AGE", false),
                ],
                endpoint_slice,
            ),
            "serviceentry" => (
                &[
                    ("NAME", false),
                    ("HOSTS", false),
                    ("LOCATION", false),
                    ("RESOLUTION", false),
                    ("AGE", false),
                ],
                |o, _, now| {
                    vec![
                        name(o),
                        cell(o, "/spec/hosts"),
                        cell(o, "/spec/location"),
                        cell(o, "/spec/resolution"),
                        age_of(o, now),
                    ]
                },
            ),
            "virtualservice" => (
                &[
                    ("NAME", false),
                    ("GATEWAYS", false),
                    ("HOSTS", false),
                    ("AGE", false),
                ],
                |o, _, now| {
                    vec![
                        name(o),
                        cell(o, "/spec/gateways"),
                        cell(o, "/spec/hosts"),
                        age_of(o, now),
                    ]
                },
            ),
            "destinationrule" => (
                &[("NAME", false), ("HOST", false), ("AGE", false)],
                |o, _, now| vec![name(o), cell(o, "/spec/host"), age_of(o, now)],
            ),
            "authorizationpolicy" => (
                &[("NAME", false), ("ACTION", false), ("AGE", false)],
                |o, _, now| vec![name(o), cell(o, "/spec/action"), age_of(o, now)],
            ),
            "peerauthentication" => (
                &[("NAME", false), ("MODE", false), ("AGE", false)],
                |o, _, now| vec![name(o), cell(o, "/spec/mtls/mode"), age_of(o, now)],
            ),
            "workloadentry" => (
                &[("NAME", false), ("AGE", false), ("ADDRESS", false)],
                |o, _, now| vec![name(o), age_of(o, now), cell(o, "/spec/address")],
            ),
            "staticgatewayconfiguration" => (
                &[("NAME", false), ("AGE", false), ("EGRESS-IP-PREFIX", true)],
                |o, _, now| vec![name(o), age_of(o, now), cell(o, "/status/egressIpPrefix")],
            ),
            _ => (&[("NAME", false), ("AGE", false)], |o, _, now| {
                vec![name(o), age_of(o, now)]
            }),
        };
    KindSpec { columns, row }
}

/// A string or number at `ptr` as text, or empty.
pub(super) fn text(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => result_text(v),
        _ => String::new(),
    }
}

/// A non-empty string at `ptr`.
pub(super) fn non_empty<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(super) fn int(obj: &Value, ptr: &str) -> Option<i64> {
    obj.pointer(ptr)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

pub(super) fn list<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn name(obj: &Value) -> String {
    text(obj, "/metadata/name")
}

pub(super) fn age_of(obj: &Value, now: SystemTime) -> String {
    age(&text(obj, "/metadata/creationTimestamp"), now)
}

/// A CRD printer-column cell: the value as JSONPath prints it, empty when absent.
fn cell(obj: &Value, ptr: &str) -> String {
    match obj.pointer(ptr) {
        None | Some(Value::Null) => String::new(),
        Some(v) => result_text(v),
    }
}

fn count(obj: &Value, ptr: &str) -> usize {
    match obj.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn service(o: &Value, wide: bool, now: SystemTime) -> Vec<String> {
    let svc_type = non_empty(o, "/spec/type").unwrap_or("ClusterIP");
    let cluster_ip = list(o, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| non_empty(o, "/spec/clusterIP"))
        .unwrap_or("<none>")
        .to_string();
    let external_ips: Vec<&str> = list(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let mut lb: Vec<&str> = list(o, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| non_empty(i, "/ip").or_else(|| non_empty(i, "/hostname")))
                .collect();
            lb.sort_unstable();
            lb.dedup();
            let mut lb = lb.join(",");
            if !wide && lb.len() > LOAD_BALANCER_WIDTH {
                let cut = (0..=LOAD_BALANCER_WIDTH - 3)
                    .rev()
                    .find(|i| lb.is_char_boundary(*i))
                    .unwrap_or(0);
                lb = format!("{}...", &lb[..cut]);
            }
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(o, "/spec/externalName"),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = list(o, "/spec/ports")
        .iter()
        .map(|p| {
            let port = text(p, "/port");
            let protocol = non_empty(p, "/protocol").unwrap_or("TCP");
            match int(p, "/nodePort").filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = super::format_labels(o.pointer("/spec/selector").and_then(Value::as_object));
    vec![
        name(o),
        svc_type.to_string(),
        cluster_ip,
        external,
        ports,
        age_of(o, now),
        selector,
    ]
}

/// CONTAINERS and IMAGES cells of a pod template.
fn containers_and_images(o: &Value) -> (String, String) {
    let containers = list(o, "/spec/template/spec/containers");
    let names: Vec<String> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<String> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Deployment's SELECTOR: `LabelSelectorAsSelector(...).String()`.
fn selector_text(o: &Value) -> String {
    match o.pointer("/spec/selector") {
        None | Some(Value::Null) => String::new(),
        Some(s) => Selector::from_label_selector(s)
            .map_or_else(|_| "<invalid>".to_string(), |sel| sel.to_string()),
    }
}

/// `metav1.FormatLabelSelector`: like [`selector_text`] but `<none>` when empty, `<error>` when bad.
fn format_label_selector(o: &Value) -> String {
    let selector = match o.pointer("/spec/selector") {
        None | Some(Value::Null) => return "<none>".into(),
        Some(s) => Selector::from_label_selector(s),
    };
    match selector {
        Ok(sel) if sel.is_empty() => "<none>".into(),
        Ok(sel) => sel.to_string(),
        Err(_) => "<error>".into(),
    }
}

fn deployment(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let desired = int(o, "/spec/replicas").unwrap_or(1);
    let ready = int(o, "/status/readyReplicas").unwrap_or(0);
    let updated = int(o, "/status/updatedReplicas").unwrap_or(0);
    let available = int(o, "/status/availableReplicas").unwrap_or(0);
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        format!("{ready}/{desired}"),
        updated.to_string(),
        available.to_string(),
        age_of(o, now),
        containers,
        images,
        selector_text(o),
    ]
}

fn replica_set(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let desired = int(o, "/spec/replicas").unwrap_or(1);
    let current = int(o, "/status/replicas").unwrap_or(0);
    let ready = int(o, "/status/readyReplicas").unwrap_or(0);
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        desired.to_string(),
        current.to_string(),
        ready.to_string(),
        age_of(o, now),
        containers,
        images,
        format_label_selector(o),
    ]
}

fn namespace(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let phase = non_empty(o, "/status/phase").unwrap_or("Active");
    vec![name(o), phase.to_string(), age_of(o, now)]
}

fn config_map(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let n = count(o, "/data") + count(o, "/binaryData");
    vec![name(o), n.to_string(), age_of(o, now)]
}

fn secret(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let secret_type = non_empty(o, "/type").unwrap_or("Opaque");
    // The API server folds stringData into data; count the union.
    let mut keys: Vec<&String> = Vec::new();
    for ptr in ["/data", "/stringData"] {
        if let Some(m) = o.pointer(ptr).and_then(Value::as_object) {
            keys.extend(m.keys());
        }
    }
    keys.sort();
    keys.dedup();
    vec![
        name(o),
        secret_type.to_string(),
        keys.len().to_string(),
        age_of(o, now),
    ]
}

fn service_account(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    vec![name(o), count(o, "/secrets").to_string(), age_of(o, now)]
}

/// A quantity or int-or-string as Go prints it.
fn quantity(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(result_text(&Value::Number(n.clone()))),
        _ => None,
    }
}

/// TARGETS of an HPA (`formatHPAMetrics`), for autoscaling/v2 metrics or a v1 CPU target.
fn hpa_targets(o: &Value) -> String {
    let specs = list(o, "/spec/metrics");
    let statuses = list(o, "/status/currentMetrics");
    if specs.is_empty() {
        return match int(o, "/spec/targetCPUUtilizationPercentage") {
            Some(target) => {
                let current = int(o, "/status/currentCPUUtilizationPercentage")
                    .map_or_else(|| "<unknown>".to_string(), |c| format!("{c}%"));
                format!("cpu: {current}/{target}%")
            }
            None => "<none>".into(),
        };
    }
    let unknown = || "<unknown>".to_string();
    let mut parts = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let cur = |source: &str, field: &str| {
            status
                .and_then(|s| s.get(source))
                .and_then(|s| quantity(s.pointer(&format!("/current/{field}"))))
                .unwrap_or_else(unknown)
        };
        let part = match spec.get("type").and_then(Value::as_str).unwrap_or_default() {
            source_type @ ("External" | "Object") => {
                let source = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.get(source).and_then(|s| s.get("target"));
                match quantity(target.and_then(|t| t.get("averageValue"))) {
                    Some(avg) => format!("{}/{avg} (avg)", cur(source, "averageValue")),
                    None => {
                        let value =
                            quantity(target.and_then(|t| t.get("value"))).unwrap_or_else(unknown);
                        format!("{}/{value}", cur(source, "value"))
                    }
                }
            }
            "Pods" => {
                let target =
                    quantity(spec.pointer("/pods/target/averageValue")).unwrap_or_else(unknown);
                format!("{}/{target}", cur("pods", "averageValue"))
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let source = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let res = spec.get(source).cloned().unwrap_or(Value::Null);
                let metric = text(&res, "/name");
                let prefix = format!("{metric}: ");
                match quantity(res.pointer("/target/averageValue")) {
                    Some(avg) => format!("{prefix}{}/{avg}", cur(source, "averageValue")),
                    None => {
                        let current = status
                            .and_then(|s| s.get(source))
                            .and_then(|s| int(s, "/current/averageUtilization"))
                            .map_or_else(unknown, |c| format!("{c}%"));
                        let target = int(&res, "/target/averageUtilization")
                            .map_or_else(|| "<auto>".to_string(), |t| format!("{t}%"));
                        format!("{prefix}{current}/{target}")
                    }
                }
            }
            _ => "<unknown type>".into(),
        };
        parts.push(part);
    }
    if parts.len() > 2 {
        let more = parts.len() - 2;
        return format!("{} + {more} more...", parts[..2].join(", "));
    }
    parts.join(", ")
}

fn hpa(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let reference = format!(
        "{}/{}",
        text(o, "/spec/scaleTargetRef/kind"),
        text(o, "/spec/scaleTargetRef/name")
    );
    let min = int(o, "/spec/minReplicas").map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    let max = int(o, "/spec/maxReplicas").unwrap_or(0);
    let current = int(o, "/status/currentReplicas").unwrap_or(0);
    vec![
        name(o),
        reference,
        hpa_targets(o),
        min,
        max.to_string(),
        current.to_string(),
        age_of(o, now),
    ]
}

fn pdb(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    let min = quantity(o.pointer("/spec/minAvailable")).unwrap_or_else(|| "N/A".into());
    let max = quantity(o.pointer("/spec/maxUnavailable")).unwrap_or_else(|| "N/A".into());
    let allowed = int(o, "/status/disruptionsAllowed").unwrap_or(0);
    vec![name(o), min, max, allowed.to_string(), age_of(o, now)]
}

/// At most three items comma-joined, then ` + N more...` for the rest; `<unset>` when there
/// are none (kubectl's cells for EndpointSlices).
fn first_three(items: &[String]) -> String {
    const SHOWN: usize = 3;
    if items.is_empty() {
        return "<unset>".into();
    }
    let shown = items[..items.len().min(SHOWN)].join(",");
    match items.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{shown} + {more} more..."),
        _ => shown,
    }
}

fn endpoint_slice(o: &Value, _wide: bool, now: SystemTime) -> Vec<String> {
    // A port is shown by number, else by name (even an empty one), else as `*`.
    let ports: Vec<String> = list(o, "/ports")
        .iter()
        .map(|p| match int(p, "/port") {
            Some(n) => n.to_string(),
            None => p
                .pointer("/name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    let addresses: Vec<String> = list(o, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    vec![
        name(o),
        text(o, "/addressType"),
        first_three(&ports),
        first_three(&addresses),
        age_of(o, now),
    ]
}
