//! Istio's message types (`pkg/config/analysis/msg/messages.yaml`): code, name and level. The
//! templates are written out where each analyzer formats its message.

use crate::Level;

/// One message type.
pub(super) struct Msg {
    pub(super) code: &'static str,
    pub(super) name: &'static str,
    pub(super) level: Level,
}

const fn msg(code: &'static str, name: &'static str, level: Level) -> Msg {
    Msg { code, name, level }
}

/// `Deprecated: %s`
pub(super) const DEPRECATED: Msg = msg("IST0002", "Deprecated", Level::Warning);
/// `Referenced %s not found: %q`
pub(super) const REFERENCED_RESOURCE_NOT_FOUND: Msg =
    msg("IST0101", "ReferencedResourceNotFound", Level::Error);
/// `The VirtualServices %s associated with mesh gateway define the same host %s which can lead
/// to undefined behavior. ...`
pub(super) const CONFLICTING_MESH_GATEWAY_VS_HOSTS: Msg = msg(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    Level::Error,
);
/// `DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates ...`
pub(super) const NO_CA_DESTINATION: Msg = msg(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    Level::Warning,
);
/// `... for host: %s at port %s`
pub(super) const NO_CA_PORT: Msg = msg(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    Level::Warning,
);
/// `one or more host %v defined in VirtualService %s not found in Gateway %s.`
pub(super) const HOST_NOT_IN_GATEWAY: Msg = msg(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    Level::Warning,
);
/// `ServiceEntry addresses are required for this protocol.`
pub(super) const ADDRESSES_REQUIRED: Msg =
    msg("IST0134", "ServiceEntryAddressesRequired", Level::Warning);
/// `Duplicate certificate in multiple gateways %v may cause 404s if clients re-use HTTP2
/// connections.`
pub(super) const GATEWAY_DUPLICATE_CERTIFICATE: Msg =
    msg("IST0138", "GatewayDuplicateCertificate", Level::Warning);
/// `Conflict with gateways %s (workload selector %s, port %s, hosts %v).`
pub(super) const CONFLICTING_GATEWAYS: Msg = msg("IST0145", "ConflictingGateways", Level::Error);
/// `The gateway is listening on a target port (port %d) that is not defined in the Service
/// associated with its workload instances (Pod selector %s). ...`
pub(super) const GATEWAY_PORT_NOT_DEFINED_ON_SERVICE: Msg =
    msg("IST0162", "GatewayPortNotDefinedOnService", Level::Warning);
/// `The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503
/// UH (NoHealthyUpstream).`
pub(super) const SUBSET_SELECTS_NO_PODS: Msg = msg(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    Level::Error,
);
/// `The host %s defined in the DestinationRule does not match any services in the mesh.`
pub(super) const UNKNOWN_DR_HOST: Msg =
    msg("IST0174", "UnknownDestinationRuleHost", Level::Warning);
/// `The Sidecars %v in namespace %q select the same workload pod %q, which can lead to undefined
/// behavior.`
pub(super) const CONFLICTING_SIDECAR_SELECTORS: Msg = msg(
    "IST0110",
    "ConflictingSidecarWorkloadSelectors",
    Level::Error,
);
/// `The Sidecars %v in namespace %q have no workload selector, which can lead to undefined
/// behavior.`
pub(super) const MULTIPLE_SIDECARS_WITHOUT_SELECTOR: Msg = msg(
    "IST0111",
    "MultipleSidecarsWithoutWorkloadSelectors",
    Level::Error,
);
/// `The Telemetry %v in namespace %q with empty providers will be ignored.`
pub(super) const INVALID_TELEMETRY_PROVIDER: Msg =
    msg("IST0157", "InvalidTelemetryProvider", Level::Warning);
/// `The Telemetries %v in namespace %q select the same workload pod %q, which can lead to
/// undefined behavior.`
pub(super) const CONFLICTING_TELEMETRY_SELECTORS: Msg = msg(
    "IST0159",
    "ConflictingTelemetryWorkloadSelectors",
    Level::Error,
);
/// `The Telemetries %v in namespace %q have no workload selector, which can lead to undefined
/// behavior.`
pub(super) const MULTIPLE_TELEMETRIES_WITHOUT_SELECTOR: Msg = msg(
    "IST0160",
    "MultipleTelemetriesWithoutWorkloadSelectors",
    Level::Error,
);
/// `The policy has no impact: %s.`
pub(super) const INEFFECTIVE_POLICY: Msg = msg("IST0167", "IneffectivePolicy", Level::Warning);
/// `No matching workloads for this resource with the following labels: %s`
pub(super) const NO_MATCHING_WORKLOADS: Msg =
    msg("IST0127", "NoMatchingWorkloadsFound", Level::Warning);
/// `Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port.`
pub(super) const PORT_NAME_NOT_CONVENTIONAL: Msg =
    msg("IST0118", "PortNameIsNotUnderNamingConvention", Level::Info);
/// `Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and
/// unmatched traffic for ports serving TCP protocol from being forwarded correctly`
pub(super) const EXTERNAL_NAME_INVALID_PORT_NAME: Msg = msg(
    "IST0150",
    "ExternalNameServiceTypeInvalidPortName",
    Level::Warning,
);
/// `The namespace is not enabled for Istio injection. Run 'kubectl label namespace %s
/// istio-injection=enabled' to enable it, or ...`
pub(super) const NAMESPACE_NOT_INJECTED: Msg = msg("IST0102", "NamespaceNotInjected", Level::Info);
/// `The pod %s is missing the Istio proxy. This can often be resolved by restarting or
/// redeploying the workload.`
pub(super) const POD_MISSING_PROXY: Msg = msg("IST0103", "PodMissingProxy", Level::Warning);
/// `The namespace has more than one type of injection labels %v, which may lead to undefined
/// behavior. Make sure only one injection label exists.`
pub(super) const NAMESPACE_MULTIPLE_INJECTION_LABELS: Msg = msg(
    "IST0123",
    "NamespaceMultipleInjectionLabels",
    Level::Warning,
);
/// `is enabled for Istio injection, as Istio is installed with enableNamespacesByDefault as
/// true.`
pub(super) const NAMESPACE_INJECTION_ENABLED_BY_DEFAULT: Msg =
    msg("IST0148", "NamespaceInjectionEnabledByDefault", Level::Info);
/// `Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols
/// (%s).`
pub(super) const CONFLICTING_SERVICE_ENTRY_PROTOCOL: Msg =
    msg("IST0177", "ConflictingServiceEntryProtocol", Level::Warning);
/// `This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port
/// in the destination is required to disambiguate.`
pub(super) const PORT_SELECTOR_REQUIRED: Msg = msg(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    Level::Error,
);
/// `Subset in virtual service %s has no effect on ingress gateway %s requests`
pub(super) const INGRESS_ROUTE_RULES_NOT_AFFECTED: Msg =
    msg("IST0140", "IngressRouteRulesNotAffected", Level::Warning);
/// `VirtualService rule %v not used (%s).`
pub(super) const VS_UNREACHABLE_RULE: Msg =
    msg("IST0130", "VirtualServiceUnreachableRule", Level::Warning);
/// `VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).`
pub(super) const VS_INEFFECTIVE_MATCH: Msg =
    msg("IST0131", "VirtualServiceIneffectiveMatch", Level::Info);
/// `The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the
/// traffic not to work as expected.`
pub(super) const INVALID_GATEWAY_CREDENTIAL: Msg =
    msg("IST0161", "InvalidGatewayCredential", Level::Error);
/// `Misplaced annotation: %s can only be applied to %s`
pub(super) const MISPLACED_ANNOTATION: Msg = msg("IST0107", "MisplacedAnnotation", Level::Warning);
/// `Unknown annotation: %s`
pub(super) const UNKNOWN_ANNOTATION: Msg = msg("IST0108", "UnknownAnnotation", Level::Warning);
/// `Invalid annotation %s: %s`
pub(super) const INVALID_ANNOTATION: Msg = msg("IST0125", "InvalidAnnotation", Level::Warning);
/// `Annotation %q has been deprecated%s and may not work in future Istio versions.`
pub(super) const DEPRECATED_ANNOTATION: Msg = msg("IST0135", "DeprecatedAnnotation", Level::Info);
/// `User ID (UID) 1337 is reserved for the sidecar proxy.`
pub(super) const INVALID_APPLICATION_UID: Msg =
    msg("IST0144", "InvalidApplicationUID", Level::Warning);
/// `A condition with a negative status is present: type=%s, reason=%s, message=%s.`
pub(super) const NEGATIVE_CONDITION_STATUS: Msg =
    msg("IST0171", "NegativeConditionStatus", Level::Warning);
/// `Gateway reference in VirtualService %s is to an implementation-generated internal Gateway:
/// %s.`
pub(super) const REFERENCED_INTERNAL_GATEWAY: Msg =
    msg("IST0165", "ReferencedInternalGateway", Level::Warning);
/// `This deployment %s is associated with multiple services using port %d but different
/// protocols: %v`
pub(super) const DEPLOYMENT_MULTIPLE_SERVICES: Msg = msg(
    "IST0116",
    "DeploymentAssociatedToMultipleServices",
    Level::Warning,
);
/// `This deployment %s is associated with multiple services %v using targetPort %q but different
/// ports: %v.`
pub(super) const DEPLOYMENT_CONFLICTING_PORTS: Msg =
    msg("IST0137", "DeploymentConflictingPorts", Level::Warning);
/// `The virtual service uses the JWT claim based routing (key: %s) but found no request
/// authentication for the gateway (%s) pod (%s). …`
pub(super) const JWT_CLAIM_ROUTE_WITHOUT_REQUEST_AUTHN: Msg = msg(
    "IST0149",
    "JwtClaimBasedRoutingWithoutRequestAuthN",
    Level::Error,
);
/// `The hostname (%s) that was provided for the webhook (%s) to reach the ingress gateway on the
/// external control plane cluster %s. Traffic may not flow properly.`
pub(super) const INVALID_EXTERNAL_CONTROL_PLANE: Msg = msg(
    "IST0163",
    "InvalidExternalControlPlaneConfig",
    Level::Warning,
);
/// `The address (%s) that was provided for the webhook (%s) to reach the ingress gateway on the
/// external control plane cluster is an IP address. This is not recommended for a production
/// environment.`
pub(super) const EXTERNAL_CONTROL_PLANE_ADDRESS_IS_IP: Msg = msg(
    "IST0164",
    "ExternalControlPlaneAddressIsNotAHostname",
    Level::Info,
);
/// `The Istio proxy images of the pods running in the namespace do not match the image defined
/// in the injection configuration (pod names: %v). …`
pub(super) const PROXY_IMAGE_MISMATCH_IN_NAMESPACE: Msg = msg(
    "IST0158",
    "PodsIstioProxyImageMismatchInNamespace",
    Level::Warning,
);
/// `Ineffective selector on Kubernetes Gateway %s. Use the TargetRef field instead.`
pub(super) const INEFFECTIVE_SELECTOR: Msg = msg("IST0166", "IneffectiveSelector", Level::Warning);
/// `%s %s contains `image: auto` but does not match any Istio injection webhook selectors.`
pub(super) const IMAGE_AUTO_WITHOUT_INJECTION_WARNING: Msg = msg(
    "IST0146",
    "ImageAutoWithoutInjectionWarning",
    Level::Warning,
);
/// `%s %s contains `image: auto` but does not match any Istio injection webhook selectors.`
pub(super) const IMAGE_AUTO_WITHOUT_INJECTION_ERROR: Msg =
    msg("IST0147", "ImageAutoWithoutInjectionError", Level::Error);
/// `%v` (the overlap or missing Service).
pub(super) const INVALID_WEBHOOK: Msg = msg("IST0139", "InvalidWebhook", Level::Error);
/// `Annotation %q is part of an alpha-phase feature and may be incompletely supported.`
pub(super) const ALPHA_ANNOTATION: Msg = msg("IST0136", "AlphaAnnotation", Level::Info);
/// `This EnvoyFilter does not have a priority and has a relative patch operation set …`
pub(super) const ENVOY_FILTER_RELATIVE_OPERATION: Msg = msg(
    "IST0151",
    "EnvoyFilterUsesRelativeOperation",
    Level::Warning,
);
/// `The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.`
pub(super) const ENVOY_FILTER_REPLACE_INCORRECTLY: Msg = msg(
    "IST0152",
    "EnvoyFilterUsesReplaceOperationIncorrectly",
    Level::Error,
);
/// `The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or
/// HTTP_ROUTE.`
pub(super) const ENVOY_FILTER_ADD_INCORRECTLY: Msg = msg(
    "IST0153",
    "EnvoyFilterUsesAddOperationIncorrectly",
    Level::Error,
);
/// `The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or
/// HTTP_ROUTE.`
pub(super) const ENVOY_FILTER_REMOVE_INCORRECTLY: Msg = msg(
    "IST0154",
    "EnvoyFilterUsesRemoveOperationIncorrectly",
    Level::Error,
);
/// `This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/
/// AFTER, REPLACE, MERGE, DELETE) and proxyVersion set …`
pub(super) const ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION: Msg = msg(
    "IST0155",
    "EnvoyFilterUsesRelativeOperationWithProxyVersion",
    Level::Warning,
);

/// egress's own: a REGISTRY_ONLY mesh's VirtualService for a host no ServiceEntry exports.
pub(super) const REGISTRY_ONLY_HOST: Msg =
    msg("EGR0001", "RegistryOnlyHostNotRegistered", Level::Warning);
/// egress's own: an egress gateway whose StaticGatewayConfiguration is missing or has no prefix.
pub(super) const CONFIGURATION_WITHOUT_PREFIX: Msg = msg(
    "EGR0002",
    "GatewayConfigurationWithoutPrefix",
    Level::Warning,
);
/// egress's own: TLS origination with an SNI the DestinationRule's host does not cover.
pub(super) const ORIGINATION_SNI_MISMATCH: Msg =
    msg("EGR0003", "OriginationSniMismatch", Level::Warning);
