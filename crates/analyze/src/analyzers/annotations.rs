//! Istio's `annotations.K8sAnalyzer`: Istio annotations on Namespaces, Services, Pods and
//! Deployments that Istio does not know (IST0108), that are deprecated (IST0135), that belong
//! on another kind of resource (IST0107) or whose value the injector rejects (IST0125). The
//! registry is istio/api's `annotation` package (names, resource kinds, deprecation).

use std::net::IpAddr;

use super::messages::{
    DEPRECATED_ANNOTATION, INVALID_ANNOTATION, MISPLACED_ANNOTATION, UNKNOWN_ANNOTATION,
};
use super::{labels_of, of_kind, quote, report};
use crate::{Finding, Input};

/// One annotation of istio/api: its name, whether deprecated, and the kinds it applies to
/// (`Any` for every kind).
pub(super) struct Annotation {
    pub(super) name: &'static str,
    deprecated: bool,
    resources: &'static [&'static str],
}

const fn ann(
    name: &'static str,
    deprecated: bool,
    resources: &'static [&'static str],
) -> Annotation {
    Annotation {
        name,
        deprecated,
        resources,
    }
}

const POD: &[&str] = &["Pod"];
const SERVICE: &[&str] = &["Service"];
const ANY: &[&str] = &["Any"];
const WORKLOAD_ENTRY: &[&str] = &["WorkloadEntry"];
const GATEWAY: &[&str] = &["Gateway"];

/// istio/api's `AllResourceAnnotations()`.
pub(super) const ANNOTATIONS: &[Annotation] = &[
    ann("alpha.istio.io/canonical-serviceaccounts", true, SERVICE),
    ann("alpha.istio.io/kubernetes-serviceaccounts", true, SERVICE),
    ann("ambient.istio.io/bypass-inbound-capture", false, POD),
    ann("ambient.istio.io/redirection", false, POD),
    ann(
        "ambient.istio.io/waypoint-inbound-binding",
        false,
        &["GatewayClass", "Gateway"],
    ),
    ann("galley.istio.io/analyze-suppress", false, ANY),
    ann("gateway.istio.io/controller-version", false, ANY),
    ann("gateway.istio.io/name-override", false, GATEWAY),
    ann("gateway.istio.io/service-account", false, GATEWAY),
    ann("inject.istio.io/templates", false, POD),
    ann("istio.io/autoRegistrationGroup", false, WORKLOAD_ENTRY),
    ann("istio.io/connectedAt", false, WORKLOAD_ENTRY),
    ann("istio.io/disconnectedAt", false, WORKLOAD_ENTRY),
    ann("istio.io/dry-run", false, &["AuthorizationPolicy"]),
    ann("istio.io/rev", false, POD),
    ann("istio.io/workloadController", false, WORKLOAD_ENTRY),
    ann("kubernetes.io/ingress.class", false, &["Ingress"]),
    ann("networking.istio.io/exportTo", false, SERVICE),
    ann("networking.istio.io/service-type", false, GATEWAY),
    ann(
        "networking.istio.io/traffic-distribution",
        false,
        &["Service", "ServiceEntry"],
    ),
    ann("prometheus.istio.io/merge-metrics", false, POD),
    ann("proxy.istio.io/config", false, POD),
    ann("proxy.istio.io/overrides", false, POD),
    ann(
        "readiness.status.sidecar.istio.io/applicationPorts",
        false,
        POD,
    ),
    ann(
        "readiness.status.sidecar.istio.io/failureThreshold",
        false,
        POD,
    ),
    ann(
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        false,
        POD,
    ),
    ann(
        "readiness.status.sidecar.istio.io/periodSeconds",
        false,
        POD,
    ),
    ann("sidecar.istio.io/agentLogLevel", false, POD),
    ann("sidecar.istio.io/bootstrapOverride", false, POD),
    ann("sidecar.istio.io/componentLogLevel", false, POD),
    ann("sidecar.istio.io/discoveryAddress", true, POD),
    ann("sidecar.istio.io/enableCoreDump", false, POD),
    ann("sidecar.istio.io/extraStatTags", true, POD),
    ann("sidecar.istio.io/inject", true, POD),
    ann("sidecar.istio.io/interceptionMode", false, POD),
    ann("sidecar.istio.io/logLevel", false, POD),
    ann("sidecar.istio.io/nativeSidecar", false, POD),
    ann("sidecar.istio.io/proxyCPU", false, POD),
    ann("sidecar.istio.io/proxyCPULimit", false, POD),
    ann("sidecar.istio.io/proxyImage", false, POD),
    ann("sidecar.istio.io/proxyImageType", false, POD),
    ann("sidecar.istio.io/proxyMemory", false, POD),
    ann("sidecar.istio.io/proxyMemoryLimit", false, POD),
    ann("sidecar.istio.io/rewriteAppHTTPProbers", false, POD),
    ann("sidecar.istio.io/statsHistogramBuckets", false, POD),
    ann("sidecar.istio.io/statsInclusionPrefixes", true, POD),
    ann("sidecar.istio.io/statsInclusionRegexps", true, POD),
    ann("sidecar.istio.io/statsInclusionSuffixes", true, POD),
    ann("sidecar.istio.io/status", false, POD),
    ann("sidecar.istio.io/userVolume", false, POD),
    ann("sidecar.istio.io/userVolumeMount", false, POD),
    ann("status.sidecar.istio.io/port", false, POD),
    ann(
        "topology.istio.io/controlPlaneClusters",
        false,
        &["Namespace"],
    ),
    ann("traffic.istio.io/nodeSelector", false, SERVICE),
    ann("traffic.sidecar.istio.io/excludeInboundPorts", false, POD),
    ann("traffic.sidecar.istio.io/excludeInterfaces", false, POD),
    ann(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        false,
        POD,
    ),
    ann("traffic.sidecar.istio.io/excludeOutboundPorts", false, POD),
    ann("traffic.sidecar.istio.io/includeInboundPorts", false, POD),
    ann(
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        false,
        POD,
    ),
    ann("traffic.sidecar.istio.io/includeOutboundPorts", false, POD),
    ann("traffic.sidecar.istio.io/kubevirtInterfaces", false, POD),
];

/// Is the annotation in Istio's namespace (its prefix ends in `istio.io`), or the Kubernetes
/// ingress class Istio documents?
pub(super) fn istio_annotation(name: &str) -> bool {
    name == "kubernetes.io/ingress.class"
        || name
            .split('/')
            .next()
            .unwrap_or_default()
            .ends_with("istio.io")
}

/// Go's `strconv.ParseUint(s, 10, bits)` error, if any.
fn parse_uint(s: &str, bits: u32) -> Result<u64, String> {
    let syntax = || format!("strconv.ParseUint: parsing {}: invalid syntax", quote(s));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    match s.parse::<u64>() {
        Ok(v) if bits >= 64 || v < (1u64 << bits) => Ok(v),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            quote(s)
        )),
    }
}

/// Go's `strconv.ParseBool` error, if any.
fn parse_bool(s: &str) -> Result<(), String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false"
        | "False" => Ok(()),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote(s)
        )),
    }
}

/// The injector's port parser: a trimmed 16-bit number.
fn parse_port(s: &str) -> Result<u64, String> {
    parse_uint(s.trim(), 16).map_err(|e| format!("failed parsing port '{s}': {e}"))
}

fn port_list(parameter: &str, ports: &str) -> Result<(), String> {
    let ports = ports.trim();
    if ports.is_empty() {
        return Ok(());
    }
    for p in ports.split(',') {
        parse_port(p)
            .map_err(|e| format!("{parameter} invalid: failed parsing port '{p}': {e}"))?;
    }
    Ok(())
}

/// Go's `netip.ParsePrefix` for the common failures (the address's own error is reduced to
/// `unable to parse IP`).
fn parse_prefix(s: &str) -> Result<(), String> {
    let err = |m: &str| format!("netip.ParsePrefix({}): {m}", quote(s));
    let Some((addr, bits)) = s.rsplit_once('/') else {
        return Err(err("no '/'"));
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| err(&format!("ParseAddr({}): unable to parse IP", quote(addr))))?;
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return Err(err(&format!("bad bits after slash: {}", quote(bits))));
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u32>() {
        Ok(b) if b <= max => Ok(()),
        _ => Err(err("prefix length out of range")),
    }
}

fn cidr_list(cidrs: &str) -> Result<(), String> {
    if cidrs.is_empty() {
        return Ok(());
    }
    for c in cidrs.split(',') {
        parse_prefix(c).map_err(|e| format!("failed parsing cidr '{c}': {e}"))?;
    }
    Ok(())
}

/// The injector's `AnnotationValidation` (its `proxy.istio.io/config` check, a ProxyConfig
/// validation, is not repeated here).
fn validate(name: &str, value: &str) -> Result<(), String> {
    match name {
        "sidecar.istio.io/interceptionMode" => match value {
            "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
            _ => Err(format!(
                "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {value}"
            )),
        },
        "status.sidecar.istio.io/port" => parse_port(value)
            .map(|_| ())
            .map_err(|e| format!("excludeInboundPorts invalid: {e}")),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => parse_uint(value, 32).map(|_| ()),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => {
            cidr_list(value).map_err(|e| format!("includeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => {
            cidr_list(value).map_err(|e| format!("excludeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/includeInboundPorts" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeInboundPorts" => port_list("includeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeInboundPorts" => port_list("excludeInboundPorts", value),
        "traffic.sidecar.istio.io/excludeOutboundPorts" => port_list("excludeOutboundPorts", value),
        "prometheus.istio.io/merge-metrics" => parse_bool(value),
        _ => Ok(()),
    }
}

/// `annotations.K8sAnalyzer` over Namespaces, Services, Pods and Deployments (their own
/// metadata): for each Istio annotation, IST0108 if unknown; IST0135 if deprecated (not for
/// `sidecar.istio.io/inject` when the label of that name is set too); then, unless it applies
/// to any kind, IST0107 if it does not apply to this kind, else IST0125 if its value is
/// invalid.
pub(super) fn annotations(inputs: &[Input], out: &mut Vec<Finding>) {
    for kind in ["Namespace", "Service", "Pod", "Deployment"] {
        for r in of_kind(inputs, kind) {
            let Some(annotations) = r
                .get(&["metadata", "annotations"])
                .and_then(|a| a.as_object())
            else {
                continue;
            };
            for (name, value) in annotations {
                if !istio_annotation(name) {
                    continue;
                }
                let path = format!("metadata.annotations.{name}");
                let Some(def) = ANNOTATIONS.iter().find(|a| a.name == name) else {
                    report(
                        out,
                        &UNKNOWN_ANNOTATION,
                        r,
                        &path,
                        format!("Unknown annotation: {name}"),
                    );
                    continue;
                };
                if def.deprecated
                    && !(name == "sidecar.istio.io/inject"
                        && labels_of(r).contains_key("sidecar.istio.io/inject"))
                {
                    let extra = if name == "sidecar.istio.io/inject" {
                        " in favor of the \"sidecar.istio.io/inject\" label"
                    } else {
                        ""
                    };
                    report(
                        out,
                        &DEPRECATED_ANNOTATION,
                        r,
                        &path,
                        format!(
                            "Annotation {} has been deprecated{extra} and may not work in future Istio versions.",
                            quote(name)
                        ),
                    );
                }
                if def.resources.contains(&"Any") {
                    continue;
                }
                if !def.resources.contains(&kind) {
                    report(
                        out,
                        &MISPLACED_ANNOTATION,
                        r,
                        &path,
                        format!(
                            "Misplaced annotation: {name} can only be applied to {}",
                            def.resources.join(", ")
                        ),
                    );
                    continue;
                }
                if let Err(problem) = validate(name, value.as_str().unwrap_or_default()) {
                    report(
                        out,
                        &INVALID_ANNOTATION,
                        r,
                        &path,
                        format!("Invalid annotation {name}: {problem}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_number_errors() {
        assert_eq!(
            parse_uint("bar", 32),
            Err("strconv.ParseUint: parsing \"bar\": invalid syntax".to_owned())
        );
        assert_eq!(
            parse_uint("4294967296", 32),
            Err("strconv.ParseUint: parsing \"4294967296\": value out of range".to_owned())
        );
        assert_eq!(parse_uint("10", 32), Ok(10));
        assert!(parse_bool("True").is_ok());
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn injector_validation() {
        assert!(validate("traffic.sidecar.istio.io/includeOutboundIPRanges", "*").is_ok());
        assert!(
            validate(
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/8,fd00::/8"
            )
            .is_ok()
        );
        assert_eq!(
            validate("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0"),
            Err("excludeIPRanges invalid: failed parsing cidr '10.0.0.0': netip.ParsePrefix(\"10.0.0.0\"): no '/'".to_owned())
        );
        assert_eq!(
            validate("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/33"),
            Err("excludeIPRanges invalid: failed parsing cidr '10.0.0.0/33': netip.ParsePrefix(\"10.0.0.0/33\"): prefix length out of range".to_owned())
        );
        assert!(validate("traffic.sidecar.istio.io/excludeInboundPorts", "80, 443").is_ok());
        assert!(validate("traffic.sidecar.istio.io/excludeInboundPorts", "80,x").is_err());
        assert!(validate("sidecar.istio.io/interceptionMode", "TPROXY").is_ok());
        assert!(validate("sidecar.istio.io/interceptionMode", "tproxy").is_err());
        assert!(istio_annotation("sidecar.istio.io/inject"));
        assert!(istio_annotation("istio.io/rev"));
        assert!(!istio_annotation("helm.sh/hook"));
        assert!(!istio_annotation("kubernetes.io/psp"));
    }
}
