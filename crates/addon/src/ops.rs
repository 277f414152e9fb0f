//! The `az aks mesh …` decorator rules as pure functions on a [`ServiceMeshProfile`]: az's
//! argument validators first, then `AKSManagedClusterContext`'s handlers in az's order, with
//! az's exact error classes and messages, then the service-side rules az leaves to the
//! resource provider (the default revision, the 500-gateway limit, two revisions at most).
//!
//! Each function takes the profile the decorator starts from (see
//! [`ManagedCluster::mesh_profile_or_disabled`](crate::profile::ManagedCluster::mesh_profile_or_disabled))
//! and returns the new profile; the caller stores it.

use std::sync::LazyLock;

use regex::Regex;

use crate::profile::{
    DEFAULT_EGRESS_NAMESPACE, DEFAULT_REVISION, IngressGatewayMode, IstioComponents,
    IstioEgressGateway, IstioIngressGateway, IstioServiceMesh, MeshMode, ProxyRedirectionMechanism,
    ServiceMeshProfile,
};

/// Longest egress gateway name: the service's limit per the how-to (`1-53` characters; the
/// Helm release `asm-egx-…` and Deployment `<name>-asm-X-Y` must stay within 63). az's own
/// constant is 63 (core CLI) or 253 (some aks-preview versions).
pub const MAX_EGRESS_NAME_LENGTH: usize = 53;
/// Most egress gateways one cluster may have: the service's limit per the how-to ("a maximum
/// of `500` Istio egress gateways per cluster"); az does not check it.
pub const MAX_EGRESS_GATEWAYS: usize = 500;
/// az's egress gateway name pattern (`validate_asm_egress_name`).
pub const EGRESS_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// az's revision pattern (`validate_azure_service_mesh_revision`).
pub const REVISION_PATTERN: &str = r"^asm-\d+-\d+$";
/// `az aks mesh disable`'s confirmation prompt.
pub const DISABLE_CONFIRMATION: &str = "Existing Azure Service Mesh Profile values will be reset.\nAre you sure you want to perform this operation?";
/// The generic confirmation prompt (`disable-egress-gateway`, `disable-ingress-gateway`).
pub const GENERIC_CONFIRMATION: &str = "Are you sure you want to perform this operation?";

const NOT_ENABLED: &str = "Istio has not been enabled for this cluster, please refer to https://aka.ms/asm-aks-addon-docs for more details on enabling Azure Service Mesh.";
const ALREADY_ENABLED: &str = "Istio has already been enabled for this cluster, please refer to https://aka.ms/asm-aks-upgrade-docs for more details on updating the mesh profile.";

static EGRESS_NAME_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(EGRESS_NAME_PATTERN).ok());
static REVISION_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(REVISION_PATTERN).ok());

/// An az (or service) error: the variant is az's error class, Display is the exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddonError {
    /// `ArgumentUsageError`.
    #[error("{0}")]
    ArgumentUsageError(String),
    /// `MutuallyExclusiveArgumentError`.
    #[error("{0}")]
    MutuallyExclusiveArgumentError(String),
    /// `RequiredArgumentMissingError`.
    #[error("{0}")]
    RequiredArgumentMissingError(String),
    /// `InvalidArgumentValueError`.
    #[error("{0}")]
    InvalidArgumentValueError(String),
    /// A rule the service enforces (az shows these as `(BadRequest) …`).
    #[error("{0}")]
    BadRequest(String),
}

impl AddonError {
    /// az's error class name (`BadRequest` for service-side refusals).
    pub fn class(&self) -> &'static str {
        match self {
            AddonError::ArgumentUsageError(_) => "ArgumentUsageError",
            AddonError::MutuallyExclusiveArgumentError(_) => "MutuallyExclusiveArgumentError",
            AddonError::RequiredArgumentMissingError(_) => "RequiredArgumentMissingError",
            AddonError::InvalidArgumentValueError(_) => "InvalidArgumentValueError",
            AddonError::BadRequest(_) => "BadRequest",
        }
    }
}

fn usage(m: impl Into<String>) -> AddonError {
    AddonError::ArgumentUsageError(m.into())
}

/// az's `validate_asm_egress_name`, with the service's 53-character limit.
pub fn validate_egress_name(name: &str) -> Result<(), AddonError> {
    let ok = EGRESS_NAME_RE.as_ref().is_some_and(|r| r.is_match(name));
    if !ok || name.len() > MAX_EGRESS_NAME_LENGTH {
        return Err(AddonError::InvalidArgumentValueError(format!(
            "Istio egress name {name} is invalid. Name must be between 1 and {MAX_EGRESS_NAME_LENGTH} characters, must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character."
        )));
    }
    Ok(())
}

/// az's `validate_azure_service_mesh_revision`.
pub fn validate_revision(revision: &str) -> Result<(), AddonError> {
    if REVISION_RE.as_ref().is_some_and(|r| r.is_match(revision)) {
        Ok(())
    } else {
        Err(AddonError::InvalidArgumentValueError(format!(
            "Revision {revision} is not supported by the service mesh add-on."
        )))
    }
}

/// `asm-X-Y` as `(X, Y)`; az sorts revisions by the semver `X.Y.0`.
pub fn revision_version(revision: &str) -> Option<(u64, u64)> {
    let rest = revision.strip_prefix("asm-")?;
    let (x, y) = rest.split_once('-')?;
    Some((x.parse().ok()?, y.parse().ok()?))
}

fn istio_mut(p: &mut ServiceMeshProfile) -> &mut IstioServiceMesh {
    p.istio.get_or_insert_with(IstioServiceMesh::default)
}

fn components_mut(p: &mut ServiceMeshProfile) -> &mut IstioComponents {
    istio_mut(p)
        .components
        .get_or_insert_with(IstioComponents::default)
}

/// The service installs its default revision when the mesh is on without one.
fn default_revision(p: &mut ServiceMeshProfile) {
    if p.is_enabled() {
        let istio = istio_mut(p);
        if istio.revisions.is_empty() {
            istio.revisions.push(DEFAULT_REVISION.to_owned());
        }
    }
}

/// `az aks mesh enable [--revision]`.
pub fn enable(
    profile: &ServiceMeshProfile,
    revision: Option<&str>,
) -> Result<ServiceMeshProfile, AddonError> {
    if let Some(r) = revision {
        validate_revision(r)?;
    }
    if profile.is_enabled() {
        return Err(usage(ALREADY_ENABLED));
    }
    let mut p = profile.clone();
    p.mode = MeshMode::Istio;
    let istio = istio_mut(&mut p);
    if let Some(r) = revision {
        istio.revisions = vec![r.to_owned()];
    }
    default_revision(&mut p);
    Ok(p)
}

/// `az aks mesh disable`: mode `Disabled`; the service resets the profile's values (gateways,
/// revisions), as the command's confirmation prompt [`DISABLE_CONFIRMATION`] says.
pub fn disable(profile: &ServiceMeshProfile) -> Result<ServiceMeshProfile, AddonError> {
    if !profile.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    Ok(ServiceMeshProfile {
        mode: MeshMode::Disabled,
        istio: None,
    })
}

/// The raw arguments of `_handle_egress_gateways_asm`, for callers that need az's full order
/// (both flags, missing arguments).
#[derive(Debug, Clone, Default)]
pub struct EgressRequest<'a> {
    /// `enable_egress_gateway`.
    pub enable: bool,
    /// `disable_egress_gateway`.
    pub disable: bool,
    /// `--istio-egressgateway-name`.
    pub name: Option<&'a str>,
    /// `--istio-egressgateway-namespace` (default `aks-istio-egress`).
    pub namespace: Option<&'a str>,
    /// `--gateway-configuration-name`.
    pub gateway_configuration_name: Option<&'a str>,
}

/// az's name validator, then `_handle_egress_gateways_asm` step by step, then the service's
/// 500-gateway limit.
pub fn egress_gateway(
    profile: &ServiceMeshProfile,
    req: &EgressRequest<'_>,
) -> Result<ServiceMeshProfile, AddonError> {
    if let Some(n) = req.name {
        validate_egress_name(n)?;
    }
    let namespace = req.namespace.unwrap_or(DEFAULT_EGRESS_NAMESPACE);
    let mut p = profile.clone();
    if req.disable && !p.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    if req.enable && req.disable {
        return Err(AddonError::MutuallyExclusiveArgumentError(
            "Cannot both enable and disable azure service mesh egress gateway at the same time."
                .into(),
        ));
    }
    if req.enable {
        p.mode = MeshMode::Istio;
        istio_mut(&mut p);
        if req.gateway_configuration_name.is_none_or(str::is_empty) {
            return Err(AddonError::RequiredArgumentMissingError(
                "--gateway-configuration-name is required.".into(),
            ));
        }
    }
    let Some(name) = req.name.filter(|n| !n.is_empty()) else {
        return Err(AddonError::RequiredArgumentMissingError(
            "--istio-egressgateway-name is required.".into(),
        ));
    };
    let config = req.gateway_configuration_name.unwrap_or_default();
    let list = &mut components_mut(&mut p).egress_gateways;
    match list
        .iter_mut()
        .find(|e| e.name == name && e.namespace == namespace)
    {
        Some(e) if !e.enabled && req.disable => {
            return Err(usage(format!(
                "Egress gateway {name} in namespace {namespace} is already disabled."
            )));
        }
        Some(e)
            if e.enabled
                && req.enable
                && e.gateway_configuration_name.as_deref() == Some(config) =>
        {
            return Err(usage(format!(
                "Egress gateway {name} in namespace {namespace} is already enabled with gateway configuration name {config}."
            )));
        }
        Some(e) => {
            e.enabled = req.enable;
            if req.enable {
                e.gateway_configuration_name = Some(config.to_owned());
            }
        }
        None if req.enable => list.push(IstioEgressGateway {
            enabled: true,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            gateway_configuration_name: Some(config.to_owned()),
        }),
        None => {
            return Err(usage(format!(
                "Egress gateway {name} in namespace {namespace} does not exist, cannot disable."
            )));
        }
    }
    let enabled = p.enabled_egress_gateways().count();
    if req.enable && enabled > MAX_EGRESS_GATEWAYS {
        return Err(AddonError::BadRequest(format!(
            "A cluster can have at most {MAX_EGRESS_GATEWAYS} Istio egress gateways; {} are already enabled.",
            enabled - 1
        )));
    }
    default_revision(&mut p);
    Ok(p)
}

/// `az aks mesh enable-egress-gateway`. `namespace` `None` means `aks-istio-egress`.
pub fn enable_egress_gateway(
    profile: &ServiceMeshProfile,
    name: &str,
    namespace: Option<&str>,
    gateway_configuration_name: &str,
) -> Result<ServiceMeshProfile, AddonError> {
    egress_gateway(
        profile,
        &EgressRequest {
            enable: true,
            name: Some(name),
            namespace,
            gateway_configuration_name: Some(gateway_configuration_name),
            ..EgressRequest::default()
        },
    )
}

/// `az aks mesh disable-egress-gateway`: the entry stays, with `enabled: false`.
pub fn disable_egress_gateway(
    profile: &ServiceMeshProfile,
    name: &str,
    namespace: Option<&str>,
) -> Result<ServiceMeshProfile, AddonError> {
    egress_gateway(
        profile,
        &EgressRequest {
            disable: true,
            name: Some(name),
            namespace,
            ..EgressRequest::default()
        },
    )
}

/// `az aks mesh enable-ingress-gateway` / `disable-ingress-gateway` (`_handle_ingress_gateways_asm`).
pub fn ingress_gateway(
    profile: &ServiceMeshProfile,
    enable: bool,
    mode: Option<IngressGatewayMode>,
) -> Result<ServiceMeshProfile, AddonError> {
    let mut p = profile.clone();
    if !enable && !p.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    if enable {
        p.mode = MeshMode::Istio;
    }
    let Some(mode) = mode else {
        return Err(AddonError::RequiredArgumentMissingError(
            "--ingress-gateway-type is required.".into(),
        ));
    };
    let list = &mut components_mut(&mut p).ingress_gateways;
    match list.iter_mut().find(|g| g.mode == mode) {
        Some(g) => g.enabled = enable,
        None => list.push(IstioIngressGateway {
            mode,
            enabled: enable,
        }),
    }
    default_revision(&mut p);
    Ok(p)
}

/// `az aks mesh proxy-redirection-mechanism --mechanism …` (`_handle_istio_cni_asm`).
pub fn set_proxy_redirection_mechanism(
    profile: &ServiceMeshProfile,
    mechanism: ProxyRedirectionMechanism,
) -> Result<ServiceMeshProfile, AddonError> {
    if !profile.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    let mut p = profile.clone();
    let c = components_mut(&mut p);
    if c.proxy_redirection_mechanism == Some(mechanism) {
        return Err(usage(format!(
            "Proxy redirection mechanism is already set to '{}' for this cluster.",
            mechanism.as_str()
        )));
    }
    c.proxy_redirection_mechanism = Some(mechanism);
    Ok(p)
}

/// `az aks mesh upgrade start --revision …`: adds the canary revision. az checks only the
/// format; the service allows two revisions at most, only upgrades (higher revisions), and
/// only to n+1 or n+2 of the same major.
pub fn upgrade_start(
    profile: &ServiceMeshProfile,
    revision: &str,
) -> Result<ServiceMeshProfile, AddonError> {
    validate_revision(revision)?;
    if !profile.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    let current = profile.revisions();
    if current.len() >= 2 {
        return Err(AddonError::BadRequest(format!(
            "Azure Service Mesh upgrade is already in progress with revisions {}; complete or roll back the upgrade before starting another.",
            current.join(", ")
        )));
    }
    if let Some(cur) = current.first() {
        let (Some((cx, cy)), Some((tx, ty))) = (revision_version(cur), revision_version(revision))
        else {
            return Err(AddonError::BadRequest(format!(
                "Revision {revision} is not a valid upgrade from revision {cur}."
            )));
        };
        if tx != cx || ty <= cy || ty > cy + 2 {
            return Err(AddonError::BadRequest(format!(
                "Revision {revision} is not a valid upgrade from revision {cur}: only the next two minor revisions are allowed (use `az aks mesh get-upgrades`)."
            )));
        }
    }
    let mut p = profile.clone();
    istio_mut(&mut p).revisions.push(revision.to_owned());
    Ok(p)
}

/// The outcome of `upgrade complete` / `upgrade rollback`, before confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeFinish {
    /// The revision whose control plane (and gateway Deployments) go away.
    pub remove: String,
    /// The revision that stays.
    pub keep: String,
    /// az's prompt (asked unless `--yes`; "n" leaves the cluster unchanged).
    pub prompt: String,
    /// The profile with `remove` gone.
    pub profile: ServiceMeshProfile,
}

fn upgrade_finish(
    profile: &ServiceMeshProfile,
    complete: bool,
) -> Result<UpgradeFinish, AddonError> {
    if !profile.is_enabled() {
        return Err(usage(NOT_ENABLED));
    }
    let mut sorted: Vec<String> = profile.revisions().to_vec();
    if sorted.len() < 2 {
        return Err(usage("Azure Service Mesh upgrade is not in progress."));
    }
    sorted.sort_by_key(|r| revision_version(r).unwrap_or_default());
    let (lowest, highest) = (sorted[0].clone(), sorted[sorted.len() - 1].clone());
    let (remove, keep) = if complete {
        (lowest, highest)
    } else {
        (highest, lowest)
    };
    let prompt = format!(
        "This operation will remove Istio control plane for revision {remove}. Please ensure all data plane workloads have been rolled over to revision {keep} so that they are still part of the mesh.\nAre you sure you want to proceed?"
    );
    let mut p = profile.clone();
    istio_mut(&mut p).revisions.retain(|r| *r != remove);
    Ok(UpgradeFinish {
        remove,
        keep,
        prompt,
        profile: p,
    })
}

/// `az aks mesh upgrade complete`: removes the lowest revision.
pub fn upgrade_complete(profile: &ServiceMeshProfile) -> Result<UpgradeFinish, AddonError> {
    upgrade_finish(profile, true)
}

/// `az aks mesh upgrade rollback`: removes the highest revision.
pub fn upgrade_rollback(profile: &ServiceMeshProfile) -> Result<UpgradeFinish, AddonError> {
    upgrade_finish(profile, false)
}

/// The warning az logs after every mesh update when the cluster runs exactly one revision
/// that `supported` (the location's mesh revisions) does not list.
pub fn unsupported_revision_warning(
    profile: &ServiceMeshProfile,
    supported: &[&str],
) -> Option<String> {
    match profile.revisions() {
        [only] if profile.is_enabled() && !supported.contains(&only.as_str()) => Some(format!(
            "Istio mesh revision {only} currently in use in your cluster is no longer supported.\nPlease upgrade for continued support. Use `az aks mesh get-upgrades` to check for available upgrades.\nMore information about mesh upgrades and version support can be found here: https://aka.ms/asm-aks-upgrade-docs"
        )),
        _ => None,
    }
}
