//! Core kinds the add-on reads: the shared MeshConfig ConfigMap, Services, Deployments and
//! ReplicaSets, and the StaticGatewayConfiguration's schema and controller rules.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::diag::{Report, idx, join};
use crate::resources::core::{MESH_CONFIG_KEY, shared_mesh_config_revision};
use crate::resources::mesh::MeshConfig;
use crate::resources::sgc::{StaticGatewayConfiguration, StaticGatewayConfigurationSpec};
use crate::validate::common::validate_duration;

/// The shared MeshConfig must parse as MeshConfig with only fields the add-on accepts.
pub fn validate_config_map(cm: &ConfigMap, r: &mut Report) {
    if shared_mesh_config_revision(cm).is_none() {
        return;
    }
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(MESH_CONFIG_KEY)) else {
        return;
    };
    let field = format!("data.{MESH_CONFIG_KEY}");
    match parse_mesh_config(text) {
        Ok((mesh, inner)) => {
            for f in inner {
                r.findings.push(crate::diag::Finding {
                    field: field.clone(),
                    ..f
                });
            }
            if let Some(t) = mesh.connect_timeout.as_deref()
                && let Err(e) = validate_duration(t)
            {
                r.error(&field, format!("mesh config: connectTimeout: {e}"));
            }
            if let Some(t) = mesh.dns_refresh_rate.as_deref()
                && let Err(e) = validate_duration(t)
            {
                r.error(&field, format!("mesh config: dnsRefreshRate: {e}"));
            }
        }
        Err(errs) => r
            .findings
            .extend(errs.into_iter().map(|f| crate::diag::Finding {
                field: field.clone(),
                ..f
            })),
    }
}

/// Parse MeshConfig YAML strictly. Findings carry the inner field and line in their message.
pub fn parse_mesh_config(
    text: &str,
) -> Result<(MeshConfig, Vec<crate::diag::Finding>), Vec<crate::diag::Finding>> {
    let docs = crate::yaml::parse_stream(text).map_err(|e| {
        vec![crate::diag::Finding::error(
            "",
            format!("mesh config line {}: {}", e.pos.line, e.message),
        )]
    })?;
    let Some(doc) = docs.into_iter().next() else {
        return Ok((MeshConfig::default(), Vec::new()));
    };
    let describe = |fs: Vec<crate::diag::Finding>| -> Vec<crate::diag::Finding> {
        fs.into_iter()
            .map(|f| {
                let line = doc.positions.lookup(&f.field).map(|p| p.line).unwrap_or(1);
                let message = if f.cause == crate::diag::Cause::UnknownField {
                    format!(
                        "mesh config line {line}: {}: not a MeshConfig field the add-on supports or allows",
                        f.message
                    )
                } else {
                    format!("mesh config line {line}: {}", f.message)
                };
                // Inside a ConfigMap's data: not the API server's decoding, a value it holds.
                crate::diag::Finding {
                    message,
                    cause: crate::diag::Cause::Invalid,
                    ..f
                }
            })
            .collect()
    };
    match crate::decode::typed::<MeshConfig>(&doc.value) {
        Ok((m, unknown)) => Ok((m, describe(unknown))),
        Err(e) => Err(describe(e)),
    }
}

/// Structural checks of a StaticGatewayConfiguration (the CRD schema).
pub fn validate_sgc(sgc: &StaticGatewayConfiguration, r: &mut Report) {
    let Some(spec) = &sgc.spec else {
        r.error("spec", "spec: Required value");
        return;
    };
    if let Some(size) = spec
        .gateway_vmss_profile
        .as_ref()
        .and_then(|p| p.public_ip_prefix_size)
        && !(0..=31).contains(&size)
    {
        let f = "spec.gatewayVmssProfile.publicIpPrefixSize";
        r.error(
            f,
            format!("{f}: Invalid value: {size}: {f} in body should be less than or equal to 31"),
        );
    }
}

/// kube-egress-gateway's controller rules (`validate()`), in its words. Empty when valid.
pub fn sgc_controller_errors(spec: &StaticGatewayConfigurationSpec) -> Vec<String> {
    let mut errs = Vec::new();
    let pool = spec
        .gateway_nodepool_name
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    match (&spec.gateway_vmss_profile, pool) {
        (None, false) => errs
            .push("Either GatewayNodepoolName or GatewayVmssProfile must be provided".to_owned()),
        (Some(_), true) => errs.push(
            "Only one of GatewayNodepoolName and GatewayVmssProfile should be provided".to_owned(),
        ),
        (Some(p), false) => {
            if p.vmss_resource_group
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                errs.push("Gateway vmss resource group is empty".to_owned());
            }
            if p.vmss_name.as_deref().unwrap_or_default().is_empty() {
                errs.push("Gateway vmss name is empty".to_owned());
            }
            if !(0..=31).contains(&p.public_ip_prefix_size.unwrap_or_default()) {
                errs.push(
                    "Gateway vmss public ip prefix size should be between 0 and 31 inclusively"
                        .to_owned(),
                );
            }
        }
        (None, true) => {}
    }
    if spec.provision_public_ips == Some(false)
        && spec
            .public_ip_prefix_id
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        errs.push("PublicIpPrefixId should be empty when ProvisionPublicIps is false".to_owned());
    }
    errs
}

/// The API server's Service rules egress relies on (ports), then istioctl's port checks.
pub fn validate_service(svc: &Service, r: &mut Report) {
    let Some(spec) = &svc.spec else { return };
    crate::validate::istioctl::service_ports(svc, r);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !headless && spec.type_.as_deref() != Some("ExternalName") {
        r.error("spec.ports", "spec.ports: Required value");
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = idx("spec.ports", i);
        if !(1..=65535).contains(&p.port) {
            let pf = join(&f, "port");
            r.error(
                &pf,
                format!(
                    "{pf}: Invalid value: {}: must be between 1 and 65535, inclusive",
                    p.port
                ),
            );
        }
        match p.name.as_deref() {
            None | Some("") if ports.len() > 1 => {
                let nf = join(&f, "name");
                r.error(&nf, format!("{nf}: Required value"));
            }
            Some(n) => {
                if names.contains(&n) {
                    let nf = join(&f, "name");
                    r.error(&nf, format!("{nf}: Duplicate value: {n:?}"));
                }
                names.push(n);
            }
            None => {}
        }
        if let Some(proto) = p.protocol.as_deref()
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            let pf = join(&f, "protocol");
            r.error(&pf, format!("{pf}: Unsupported value: {proto:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""));
        }
    }
}

/// The API server's Deployment rules egress relies on (selector and template). A Deployment
/// without a spec is accepted, as istioctl accepts it (it judges only the template's labels).
pub fn validate_deployment(d: &Deployment, r: &mut Report) {
    let Some(spec) = &d.spec else {
        return;
    };
    validate_selector_and_template(&spec.selector, &spec.template, r);
}

/// The API server's ReplicaSet rules egress relies on: the same selector and template rules
/// as a Deployment's, with the same messages (the API server shares them).
pub fn validate_replica_set(rs: &ReplicaSet, r: &mut Report) {
    let Some(spec) = &rs.spec else {
        r.error("spec", "spec: Required value");
        return;
    };
    // apps/v1 may omit the template; the API server then validates an empty one.
    let empty = PodTemplateSpec::default();
    let template = spec.template.as_ref().unwrap_or(&empty);
    validate_selector_and_template(&spec.selector, template, r);
}

/// A workload controller's selector is not empty, selects its own template, and the template
/// has containers.
fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    r: &mut Report,
) {
    let want = selector.match_labels.clone().unwrap_or_default();
    if want.is_empty()
        && selector
            .match_expressions
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        r.error(
            "spec.selector",
            "spec.selector: Invalid value: \"null\": empty selector is invalid for deployment",
        );
    }
    let have = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
        r.error(
            "spec.template.metadata.labels",
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
        );
    }
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.len())
        .unwrap_or(0);
    if containers == 0 {
        r.error(
            "spec.template.spec.containers",
            "spec.template.spec.containers: Required value",
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::resources::mesh::NormalizationType;

    #[test]
    fn path_normalization_is_typed() {
        let read = |text: &str| parse_mesh_config(text).map(|(m, _)| m.path_normalization());
        assert_eq!(
            read("accessLogFile: /dev/stdout\n"),
            Ok(NormalizationType::Base)
        );
        for (name, want) in [
            ("DEFAULT", NormalizationType::Base),
            ("NONE", NormalizationType::None),
            ("BASE", NormalizationType::Base),
            ("MERGE_SLASHES", NormalizationType::MergeSlashes),
            (
                "DECODE_AND_MERGE_SLASHES",
                NormalizationType::DecodeAndMergeSlashes,
            ),
        ] {
            let text = format!("pathNormalization:\n  normalization: {name}\n");
            assert_eq!(read(&text), Ok(want), "{name}");
        }
        let errors =
            parse_mesh_config("accessLogFile: x\npathNormalization:\n  normalization: SOME\n")
                .map(|_| ())
                .unwrap_err();
        let text = format!("{errors:?}");
        assert!(
            text.contains("line 3") && text.contains("SOME"),
            "the error names the line and the value: {text}"
        );
    }
}
