//! AuthorizationPolicy: the CRD's rules, then Istio's `ValidateAuthorizationPolicy` (every error
//! prefixed `invalid policy <name>.<ns>:`), and the `istio.io/dry-run` action check.

use super::attributes::{
    check_empty_values, check_service_account, check_valid_path_template, validate_attribute,
    validate_ips, validate_ports,
};
use super::policy::{self, Layers};
use crate::diag::{Report, idx, join};
use crate::resources::CustomObject;
use crate::resources::security::{Action, AuthorizationPolicy, Condition, Operation, Rule, Source};

const DRY_RUN: &str = "istio.io/dry-run";

/// Validate an AuthorizationPolicy.
pub(crate) fn validate(obj: &CustomObject<AuthorizationPolicy>, r: &mut Report) {
    let default = AuthorizationPolicy::default();
    let spec = obj.spec.as_ref().unwrap_or(&default);
    let mut layers = Layers::default();
    crd(spec, &mut layers.crd);
    policy::attachment(
        &mut layers,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        spec.target_refs.as_ref(),
    );

    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
    let action = spec.action_or_default();
    let dry_run = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DRY_RUN));
    // Istio checks the annotation before the spec and stops there.
    let annotation_error = dry_run.and_then(|v| {
        if !matches!(action, Action::Allow | Action::Deny) {
            Some(format!(
                "the annotation {DRY_RUN} currently only supports action ALLOW/DENY, found action {} in {ns}/{name}",
                action.as_str()
            ))
        } else if !is_go_bool(v) {
            Some(format!(
                "{ns}/{name} has annotation {DRY_RUN} with invalid value ({v}): strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v)
            ))
        } else {
            None
        }
    });
    if let Some(message) = annotation_error {
        layers.hook = Report::default();
        layers
            .hook
            .error(format!("metadata.annotations.{DRY_RUN}"), message);
    } else {
        webhook(spec, &mut layers.hook);
        let prefix = format!("invalid policy {name}.{ns}:");
        for f in &mut layers.hook.findings {
            if f.severity == crate::diag::Severity::Error {
                f.message = format!("{prefix} {}", f.message);
            }
        }
    }
    layers.finish(r);
}

/// The CRD's structural and CEL rules beyond those of the attachment fields.
fn crd(spec: &AuthorizationPolicy, r: &mut Report) {
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let rp = idx("spec.rules", i);
        for (j, from) in rule.from.iter().flatten().enumerate() {
            let Some(src) = &from.source else { continue };
            let sa = src.service_accounts.is_some() || src.not_service_accounts.is_some();
            let other = src.principals.is_some()
                || src.not_principals.is_some()
                || src.namespaces.is_some()
                || src.not_namespaces.is_some();
            if sa && other {
                policy::cel(
                    r,
                    &join(&idx(&join(&rp, "from"), j), "source"),
                    "object",
                    "Cannot set serviceAccounts with namespaces or principals",
                );
            }
        }
        for (j, c) in rule.when.iter().flatten().enumerate() {
            if c.key.is_none() {
                policy::required(r, &join(&idx(&join(&rp, "when"), j), "key"));
            }
        }
    }
}

/// Istio's webhook, messages unprefixed.
fn webhook(spec: &AuthorizationPolicy, r: &mut Report) {
    let action = spec.action_or_default();
    if action == Action::Custom {
        match &spec.rules {
            None => r.error(
                "spec.rules",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
            ),
            Some(_) => {
                if spec.provider.as_ref().and_then(|p| p.name.as_deref()).unwrap_or_default().is_empty() {
                    r.error("spec.provider.name", "`provider.name` must not be empty");
                }
            }
        }
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            custom_unsupported(&idx("spec.rules", i), rule, r);
        }
    }
    if spec.provider.is_some() && action != Action::Custom {
        r.error(
            "spec.provider",
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                action.as_str()
            ),
        );
    }
    if action == Action::Deny && spec.rules.is_none() {
        r.error(
            "spec",
            "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
        );
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        validate_rule(&idx("spec.rules", i), i, rule, action, r);
    }
}

/// Fields and `when` keys a CUSTOM policy cannot use.
fn custom_unsupported(rp: &str, rule: &Rule, r: &mut Report) {
    for (j, from) in rule.from.iter().flatten().enumerate() {
        let Some(src) = &from.source else { continue };
        let sp = join(&idx(&join(rp, "from"), j), "source");
        for (field, name, v) in [
            ("namespaces", "From.Namespaces", &src.namespaces),
            ("notNamespaces", "From.NotNamespaces", &src.not_namespaces),
            (
                "serviceAccounts",
                "From.ServiceAccounts",
                &src.service_accounts,
            ),
            (
                "notServiceAccounts",
                "From.NotServiceAccounts",
                &src.not_service_accounts,
            ),
            ("trustDomains", "From.TrustDomains", &src.trust_domains),
            (
                "notTrustDomains",
                "From.NotTrustDomains",
                &src.not_trust_domains,
            ),
            ("principals", "From.Principals", &src.principals),
            ("notPrincipals", "From.NotPrincipals", &src.not_principals),
            (
                "requestPrincipals",
                "From.RequestPrincipals",
                &src.request_principals,
            ),
            (
                "notRequestPrincipals",
                "From.NotRequestPrincipals",
                &src.not_request_principals,
            ),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_empty()) {
                r.error(
                    join(&sp, field),
                    format!("{name} is currently not supported with CUSTOM action"),
                );
            }
        }
    }
    for (j, c) in rule.when.iter().flatten().enumerate() {
        let key = c.key.as_deref().unwrap_or_default();
        let unsupported = matches!(
            key,
            "source.namespace"
                | "source.serviceAccount"
                | "source.principal"
                | "source.trustDomain"
        ) || key.starts_with("request.auth.");
        if unsupported {
            r.error(
                join(&idx(&join(rp, "when"), j), "key"),
                format!("{key} is currently not supported with CUSTOM action"),
            );
        }
    }
}

fn non_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn validate_rule(rp: &str, i: usize, rule: &Rule, action: Action, r: &mut Report) {
    let mut tcp_in_from = false;
    let mut tcp_in_to = false;
    let mut from_exists = false;
    let mut to_exists = false;
    let fp = join(rp, "from");
    if rule.from.as_ref().is_some_and(Vec::is_empty) {
        r.error(&fp, format!("`from` must not be empty, found at rule {i}"));
    }
    for (j, from) in rule.from.iter().flatten().enumerate() {
        let sp = join(&idx(&fp, j), "source");
        match &from.source {
            None => r.error(
                &sp,
                format!("`from.source` must not be nil, found at rule {i}"),
            ),
            Some(src) => {
                from_exists = true;
                validate_source(&sp, i, src, r);
                tcp_in_from |= [
                    &src.not_principals,
                    &src.principals,
                    &src.ip_blocks,
                    &src.not_ip_blocks,
                    &src.namespaces,
                    &src.not_namespaces,
                    &src.remote_ip_blocks,
                    &src.not_remote_ip_blocks,
                    &src.service_accounts,
                    &src.not_service_accounts,
                    &src.trust_domains,
                    &src.not_trust_domains,
                ]
                .iter()
                .any(|v| v.is_some());
            }
        }
    }
    let tp = join(rp, "to");
    if rule.to.as_ref().is_some_and(Vec::is_empty) {
        r.error(&tp, format!("`to` must not be empty, found at rule {i}"));
    }
    for (j, to) in rule.to.iter().flatten().enumerate() {
        let op_path = join(&idx(&tp, j), "operation");
        match &to.operation {
            None => r.error(
                &op_path,
                format!("`to.operation` must not be nil, found at rule {i}"),
            ),
            Some(op) => {
                to_exists = true;
                validate_operation(&op_path, i, op, r);
                tcp_in_to |= op.ports.is_some() || op.not_ports.is_some();
            }
        }
    }
    for (j, c) in rule.when.iter().flatten().enumerate() {
        validate_condition(&idx(&join(rp, "when"), j), c, r);
    }
    if ((from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to))
        && action == Action::Deny
    {
        r.warn(
            rp,
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
        );
    }
}

fn validate_source(sp: &str, i: usize, src: &Source, r: &mut Report) {
    let sa = non_empty(&src.service_accounts) || non_empty(&src.not_service_accounts);
    let other = non_empty(&src.principals)
        || non_empty(&src.not_principals)
        || non_empty(&src.namespaces)
        || non_empty(&src.not_namespaces);
    if sa && other {
        r.error(
            sp,
            format!("cannot set serviceAccounts with namespaces or principals, found at rule {i}"),
        );
    }
    let all = [
        &src.principals,
        &src.request_principals,
        &src.namespaces,
        &src.ip_blocks,
        &src.remote_ip_blocks,
        &src.not_principals,
        &src.not_request_principals,
        &src.not_namespaces,
        &src.not_ip_blocks,
        &src.not_remote_ip_blocks,
        &src.service_accounts,
        &src.not_service_accounts,
        &src.trust_domains,
        &src.not_trust_domains,
    ];
    if !all.iter().any(|v| non_empty(v)) {
        r.error(
            sp,
            format!("`from.source` must not be empty, found at rule {i}"),
        );
    }
    for (field, v) in [
        ("ipBlocks", &src.ip_blocks),
        ("notIpBlocks", &src.not_ip_blocks),
        ("remoteIpBlocks", &src.remote_ip_blocks),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
    ] {
        validate_ips(&join(sp, field), v.as_deref().unwrap_or_default(), r);
    }
    for (field, name, v, service_account) in [
        ("principals", "Principals", &src.principals, false),
        (
            "requestPrincipals",
            "RequestPrincipals",
            &src.request_principals,
            false,
        ),
        ("namespaces", "Namespaces", &src.namespaces, false),
        (
            "serviceAccounts",
            "ServiceAccounts",
            &src.service_accounts,
            true,
        ),
        ("ipBlocks", "IpBlocks", &src.ip_blocks, false),
        (
            "remoteIpBlocks",
            "RemoteIpBlocks",
            &src.remote_ip_blocks,
            false,
        ),
        ("notPrincipals", "NotPrincipals", &src.not_principals, false),
        (
            "notRequestPrincipals",
            "NotRequestPrincipals",
            &src.not_request_principals,
            false,
        ),
        ("notNamespaces", "NotNamespaces", &src.not_namespaces, false),
        (
            "notServiceAccounts",
            "NotServiceAccounts",
            &src.not_service_accounts,
            true,
        ),
        ("notIpBlocks", "NotIpBlocks", &src.not_ip_blocks, false),
        (
            "notRemoteIpBlocks",
            "NotRemoteIpBlocks",
            &src.not_remote_ip_blocks,
            false,
        ),
        ("trustDomains", "TrustDomains", &src.trust_domains, false),
        (
            "notTrustDomains",
            "NotTrustDomains",
            &src.not_trust_domains,
            false,
        ),
    ] {
        let values = v.as_deref().unwrap_or_default();
        let res = if service_account {
            check_service_account(name, values)
        } else {
            check_empty_values(name, values)
        };
        if let Err(e) = res {
            r.error(join(sp, field), e);
        }
    }
}

fn validate_operation(op_path: &str, i: usize, op: &Operation, r: &mut Report) {
    let all = [
        &op.ports,
        &op.methods,
        &op.paths,
        &op.hosts,
        &op.not_ports,
        &op.not_methods,
        &op.not_paths,
        &op.not_hosts,
    ];
    if !all.iter().any(|v| non_empty(v)) {
        r.error(
            op_path,
            format!("`to.operation` must not be empty, found at rule {i}"),
        );
    }
    for (field, v) in [("ports", &op.ports), ("notPorts", &op.not_ports)] {
        for e in validate_ports(v.as_deref().unwrap_or_default()) {
            r.error(join(op_path, field), e);
        }
    }
    for (field, name, v) in [
        ("ports", "Ports", &op.ports),
        ("methods", "Methods", &op.methods),
        ("paths", "Paths", &op.paths),
        ("hosts", "Hosts", &op.hosts),
        ("notPorts", "NotPorts", &op.not_ports),
        ("notMethods", "NotMethods", &op.not_methods),
        ("notPaths", "NotPaths", &op.not_paths),
        ("notHosts", "NotHosts", &op.not_hosts),
    ] {
        if let Err(e) = check_empty_values(name, v.as_deref().unwrap_or_default()) {
            r.error(join(op_path, field), e);
        }
    }
    for (field, name, v) in [
        ("paths", "Paths", &op.paths),
        ("notPaths", "NotPaths", &op.not_paths),
    ] {
        if let Err(e) = check_valid_path_template(name, v.as_deref().unwrap_or_default()) {
            r.error(join(op_path, field), e);
        }
    }
}

fn validate_condition(cp: &str, c: &Condition, r: &mut Report) {
    let key = c.key.as_deref().unwrap_or_default();
    if key.is_empty() {
        if c.key.is_some() {
            r.error(join(cp, "key"), "`key` must not be empty");
        }
        return;
    }
    let values = c.values.as_deref().unwrap_or_default();
    let not_values = c.not_values.as_deref().unwrap_or_default();
    if values.is_empty() && not_values.is_empty() {
        r.error(
            cp,
            format!("at least one of `values` or `notValues` must be set for key {key}"),
        );
        return;
    }
    if let Err(e) = validate_attribute(key, values) {
        r.error(
            join(cp, "values"),
            format!("invalid `value` for `key` {key}: {e}"),
        );
    }
    if let Err(e) = validate_attribute(key, not_values) {
        r.error(
            join(cp, "notValues"),
            format!("invalid `notValue` for `key` {key}: {e}"),
        );
    }
}

/// The strings Go's `strconv.ParseBool` accepts.
fn is_go_bool(v: &str) -> bool {
    matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

/// Go's `%q` (`strconv.Quote`) for the common cases: double quotes, backslash escapes.
fn go_quote(v: &str) -> String {
    format!("{v:?}")
}
