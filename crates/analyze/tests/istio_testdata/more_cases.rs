//! The oracle's cases, continued (split from `cases.rs` for size): DestinationRule and later
//! analyzers.

use super::Case;

pub const MORE_CASES: &[Case] = &[
    Case {
        name: "destinationrule with no cacert, simple at destinationlevel",
        file: "destinationrule-simple-destination.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0128", "DestinationRule db-tls")],
    },
    Case {
        name: "destinationrule with no cacert, mutual at destinationlevel",
        file: "destinationrule-mutual-destination.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0128", "DestinationRule db-mtls")],
    },
    Case {
        name: "destinationrule with no cacert, simple at portlevel",
        file: "destinationrule-simple-port.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0129", "DestinationRule db-tls")],
    },
    Case {
        name: "destinationrule with credentialname, simple at portlevel, no workloadSelector",
        file: "destinationrule-simple-port-credentialname.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0129", "DestinationRule db-tls")],
    },
    Case {
        name: "destinationrule with no cacert, simple at destinationlevel and mutual at port level",
        file: "destinationrule-compound-mutual-simple.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[
            ("IST0129", "DestinationRule db-mtls"),
            ("IST0128", "DestinationRule db-mtls"),
        ],
    },
    Case {
        name: "destinationrule with credentialname, simple at destinationlevel, no workloadSelector",
        file: "destinationrule-simple-destination-credentialname.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0128", "DestinationRule db-tls")],
    },
    Case {
        name: "destinationrule with credentialname, simple at destinationlevel, workloadSelector",
        file: "destinationrule-simple-destination-credentialname-selector.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[],
    },
    Case {
        name: "destinationrule with credentialname, simple at portlevel, workloadSelector",
        file: "destinationrule-simple-port-credentialname-selector.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[],
    },
    Case {
        name: "destinationrule with no cacert, mutual at portlevel",
        file: "destinationrule-mutual-port.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0129", "DestinationRule db-mtls")],
    },
    Case {
        name: "destinationrule with no cacert, mutual at destinationlevel and simple at port level",
        file: "destinationrule-compound-simple-mutual.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[
            ("IST0128", "DestinationRule db-mtls"),
            ("IST0129", "DestinationRule db-mtls"),
        ],
    },
    Case {
        name: "DestinationRuleWithFakeHost",
        file: "destinationrule-with-fake-host.yaml",
        analyzer: "destinationrule.SubsetSelectPodAnalyzer",
        expected: &[("IST0174", "DestinationRule default/fake-host")],
    },
    Case {
        name: "DestinationRuleSubsetsNotSelectPods",
        file: "destinationrule-subsets-not-select-pods.yaml",
        analyzer: "destinationrule.SubsetSelectPodAnalyzer",
        expected: &[("IST0173", "DestinationRule default/subsets-not-select-pods")],
    },
    Case {
        name: "DestinationRuleSubsetsWithTopologyLabels",
        file: "destinationrule-subsets-with-topology-labels.yaml",
        analyzer: "destinationrule.SubsetSelectPodAnalyzer",
        expected: &[],
    },
    Case {
        name: "DestinationRuleEmptyTopologyLabels",
        file: "destinationrule-empty-topology-labels.yaml",
        analyzer: "destinationrule.SubsetSelectPodAnalyzer",
        expected: &[("IST0173", "DestinationRule default/empty-topology-labels")],
    },
    Case {
        name: "destinationrule with both cacerts",
        file: "destinationrule-with-ca.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[],
    },
    Case {
        name: "virtualServiceJWTClaimRoute",
        file: "virtualservice_jwtclaimroute.yaml",
        analyzer: "virtualservice.JWTClaimRouteAnalyzer",
        expected: &[("IST0149", "VirtualService foo")],
    },
    Case {
        name: "externalControlPlaneMissingWebhooks",
        file: "externalcontrolplane-missing-urls.yaml",
        analyzer: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        expected: &[
            (
                "IST0163",
                "MutatingWebhookConfiguration istio-sidecar-injector-external-istiod",
            ),
            (
                "IST0163",
                "ValidatingWebhookConfiguration istio-validator-external-istiod",
            ),
        ],
    },
    Case {
        name: "externalControlPlaneMissingWebhooks",
        file: "externalcontrolplane-missing-urls-custom-ns.yaml",
        analyzer: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        expected: &[
            (
                "IST0163",
                "MutatingWebhookConfiguration istio-sidecar-injector-custom-ns",
            ),
            (
                "IST0163",
                "ValidatingWebhookConfiguration istio-validator-custom-ns",
            ),
        ],
    },
    Case {
        name: "externalControlPlaneUsingIpAddresses",
        file: "externalcontrolplane-using-ip-addr.yaml",
        analyzer: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        expected: &[(
            "IST0164",
            "MutatingWebhookConfiguration istio-sidecar-injector-external-istiod",
        )],
    },
    Case {
        name: "externalControlPlaneValidWebhooks",
        file: "externalcontrolplane-valid-urls.yaml",
        analyzer: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        expected: &[],
    },
    Case {
        name: "externalControlPlaneValidWebhooks",
        file: "externalcontrolplane-valid-urls-custom-ns.yaml",
        analyzer: "externalcontrolplane.ExternalControlPlaneAnalyzer",
        expected: &[],
    },
    Case {
        name: "istioInjectionEnableNamespacesByDefault",
        file: "injection.yaml",
        analyzer: "injection.Analyzer",
        expected: &[
            ("IST0148", "Namespace bar"),
            ("IST0103", "Pod default/noninjectedpod"),
            ("IST0123", "Namespace busted"),
            ("IST0123", "Namespace multi-ns-1"),
            ("IST0123", "Namespace multi-ns-2"),
            ("IST0123", "Namespace multi-ns-3"),
        ],
    },
    Case {
        name: "istioInjectionProxyImageMismatch",
        file: "injection-with-mismatched-sidecar.yaml",
        analyzer: "injection.ImageAnalyzer",
        expected: &[
            ("IST0158", "Namespace enabled-namespace"),
            ("IST0158", "Namespace enabled-namespace-native"),
        ],
    },
    Case {
        name: "injectionImageDistroless",
        file: "injection-image-distroless.yaml",
        analyzer: "injection.ImageAnalyzer",
        expected: &[("IST0158", "Namespace enabled-namespace")],
    },
    Case {
        name: "injectionImageDistrolessNoMeshConfig",
        file: "injection-image-distroless-no-meshconfig.yaml",
        analyzer: "injection.ImageAnalyzer",
        expected: &[],
    },
    Case {
        name: "istioInjectionProxyImageMismatchAbsolute",
        file: "injection-with-mismatched-sidecar.yaml",
        analyzer: "injection.ImageAnalyzer",
        expected: &[
            ("IST0158", "Namespace enabled-namespace"),
            ("IST0158", "Namespace enabled-namespace-native"),
        ],
    },
    Case {
        name: "istioInjectionProxyImageMismatchWithRevisionCanary",
        file: "injection-with-mismatched-sidecar.yaml",
        analyzer: "injection.ImageAnalyzer",
        expected: &[
            ("IST0158", "Namespace enabled-namespace"),
            ("IST0158", "Namespace enabled-namespace-native"),
            ("IST0158", "Namespace revision-namespace"),
        ],
    },
    Case {
        name: "KubernetesGatewaySelector",
        file: "k8sgateway-selector.yaml",
        analyzer: "k8sgateway.SelectorAnalyzer",
        expected: &[
            ("IST0166", "RequestAuthentication default/ra-ineffective"),
            ("IST0166", "AuthorizationPolicy default/ap-ineffective"),
            ("IST0166", "WasmPlugin default/wasmplugin-ineffective"),
            ("IST0166", "Telemetry default/telemetry-ineffective"),
        ],
    },
    Case {
        name: "Detect `image: auto` in non-injected pods",
        file: "image-auto.yaml",
        analyzer: "injection.ImageAutoAnalyzer",
        expected: &[
            (
                "IST0146",
                "Deployment not-injected/non-injected-gateway-deployment",
            ),
            ("IST0147", "Pod default/injected-pod"),
        ],
    },
    // `testdata/webhook.yaml` is not in the stored copy of Istio's repository; the file is taken
    // from a mirror of Istio's testdata (see the NOTICE).
    Case {
        name: "webook",
        file: "webhook.yaml",
        analyzer: "webhook.Analyzer",
        expected: &[
            (
                "IST0139",
                "MutatingWebhookConfiguration istio-sidecar-injector-missing-overlap",
            ),
            (
                "IST0139",
                "MutatingWebhookConfiguration istio-sidecar-injector-missing-overlap",
            ),
            (
                "IST0139",
                "MutatingWebhookConfiguration istio-sidecar-injector-overlap",
            ),
        ],
    },
    Case {
        name: "Telemetry Lightstep",
        file: "telemetry-lightstep.yaml",
        analyzer: "telemetry.LightstepAnalyzer",
        expected: &[("IST0002", "Telemetry istio-system/mesh-default")],
    },
    // Newer than the stored test grid: the expectation follows the analyzer's exportTo scopes
    // (each ServiceEntry visible in its own namespace only).
    Case {
        name: "ServiceEntry Conflicting Protocol ExportTo",
        file: "serviceentry-conflicting-exportto.yaml",
        analyzer: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        expected: &[],
    },
    // Newer than the stored test grid: two Gateways on the same ports with disjoint hosts.
    Case {
        name: "conflicting gateways: disjoint hosts",
        file: "conflicting-gateways-no-conflict.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[],
    },
    Case {
        name: "Analyze conflicting gateway with list type",
        file: "analyze-list-type.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[
            ("IST0145", "Gateway alpha"),
            ("IST0145", "Gateway alpha-l"),
            ("IST0145", "Gateway beta-l"),
        ],
    },
    // Not run by istioctl (nor `analyze`) by default (`skipAll` in Istio's grid).
    Case {
        name: "alpha",
        file: "misannotated.yaml",
        analyzer: "annotations.AlphaAnalyzer",
        expected: &[
            ("IST0136", "Deployment fortio-deploy"),
            ("IST0136", "Pod invalid-annotations"),
            ("IST0136", "Pod invalid-annotations"),
            ("IST0136", "Service httpbin"),
            ("IST0136", "Pod anno-not-set-by-default"),
            ("IST0136", "Pod anno-not-set-by-default"),
            ("IST0136", "Pod anno-not-set-by-default"),
            ("IST0136", "Pod anno-not-set-by-default"),
        ],
    },
    // relative-envoy-filter-operation.yaml, envoy-filter-replace-operation.yaml and
    // envoy-filter-remove-operation.yaml are at the version of the grid (see the NOTICE).
    Case {
        name: "EnvoyFilterUsesRelativeOperation",
        file: "relative-envoy-filter-operation.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[
            ("IST0151", "EnvoyFilter bookinfo/test-relative-1"),
            ("IST0151", "EnvoyFilter bookinfo/test-relative-2"),
            ("IST0151", "EnvoyFilter bookinfo/test-relative-3"),
            ("IST0155", "EnvoyFilter bookinfo/test-relative-3"),
        ],
    },
    Case {
        name: "EnvoyFilterFilterChainMatch",
        file: "envoy-filter-filterchain.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[],
    },
    Case {
        name: "EnvoyFilterUsesAbsoluteOperation",
        file: "absolute-envoy-filter-operation.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[],
    },
    Case {
        name: "EnvoyFilterUsesReplaceOperation",
        file: "envoy-filter-replace-operation.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[
            ("IST0152", "EnvoyFilter bookinfo/test-replace-1"),
            ("IST0155", "EnvoyFilter bookinfo/test-replace-3"),
            ("IST0151", "EnvoyFilter bookinfo/test-replace-3"),
        ],
    },
    Case {
        name: "EnvoyFilterUsesAddOperation",
        file: "envoy-filter-add-operation.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[
            ("IST0153", "EnvoyFilter bookinfo/test-auth-2"),
            ("IST0153", "EnvoyFilter bookinfo/test-auth-3"),
        ],
    },
    Case {
        name: "EnvoyFilterUsesRemoveOperation",
        file: "envoy-filter-remove-operation.yaml",
        analyzer: "envoyfilter.EnvoyPatchAnalyzer",
        expected: &[
            ("IST0151", "EnvoyFilter bookinfo/test-remove-1"),
            ("IST0154", "EnvoyFilter bookinfo/test-remove-2"),
            ("IST0154", "EnvoyFilter bookinfo/test-remove-3"),
            ("IST0151", "EnvoyFilter bookinfo/test-remove-5"),
        ],
    },
];

/// The further input files of the cases reading more than one (`inputFiles`), by case name.
pub const EXTRA_FILES: &[(&str, &[&str])] = &[
    (
        "istioInjectionEnableNamespacesByDefault",
        &["common-sidecar-injector-enabled-nsbydefault.yaml"],
    ),
    (
        "istioInjectionProxyImageMismatch",
        &["common-sidecar-injector-configmap.yaml"],
    ),
    (
        "injectionImageDistroless",
        &["common-sidecar-injector-configmap.yaml"],
    ),
    (
        "injectionImageDistrolessNoMeshConfig",
        &["common-sidecar-injector-configmap.yaml"],
    ),
    (
        "istioInjectionProxyImageMismatchAbsolute",
        &["sidecar-injector-configmap-absolute-override.yaml"],
    ),
    (
        "istioInjectionProxyImageMismatchWithRevisionCanary",
        &[
            "sidecar-injector-configmap-absolute-override.yaml",
            "sidecar-injector-configmap-with-revision-canary.yaml",
        ],
    ),
];
