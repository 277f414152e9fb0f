//! The oracle's cases: the entries of Istio's `analyzers_test.go` test grid for the implemented
//! analyzers, each with its testdata file and expected (code, resource) pairs.

/// One case of Istio's test grid.
pub struct Case {
    pub name: &'static str,
    pub file: &'static str,
    pub analyzer: &'static str,
    pub expected: &'static [(&'static str, &'static str)],
}

pub const CASES: &[Case] = &[
    Case {
        name: "misannoted",
        file: "misannotated.yaml",
        analyzer: "annotations.K8sAnalyzer",
        expected: &[
            ("IST0108", "Service httpbin"),
            ("IST0125", "Pod invalid-annotations"),
            ("IST0107", "Pod grafana-test"),
            ("IST0107", "Deployment fortio-deploy"),
            ("IST0107", "Namespace staging"),
            ("IST0135", "Deployment fortio-deploy"),
        ],
    },
    Case {
        name: "gatewayNoWorkload",
        file: "gateway-no-workload.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0101", "Gateway httpbin-gateway")],
    },
    Case {
        name: "gatewayBadPort",
        file: "gateway-no-port.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0162", "Gateway httpbin-gateway")],
    },
    Case {
        name: "gatewayCorrectPort",
        file: "gateway-correct-port.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[],
    },
    Case {
        name: "gatewayCustomIngressGateway",
        file: "gateway-custom-ingressgateway.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[],
    },
    Case {
        name: "gatewayCustomIngressGatewayBadPort",
        file: "gateway-custom-ingressgateway-badport.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0162", "Gateway httpbin-gateway")],
    },
    Case {
        name: "gatewayCustomIngressGatewayBadPortWithoutTarget",
        file: "gateway-custom-ingressgateway-badport-notarget.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0162", "Gateway httpbin-gateway")],
    },
    Case {
        name: "gatewayCustomIngressGatewayTranslation",
        file: "gateway-custom-ingressgateway-translation.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[],
    },
    Case {
        name: "gatewayServiceMatchPod",
        file: "gateway-custom-ingressgateway-svcselector.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0162", "Gateway httpbin8002-gateway")],
    },
    Case {
        name: "gatewaySecret",
        file: "gateway-secrets.yaml",
        analyzer: "gateway.SecretAnalyzer",
        expected: &[
            ("IST0101", "Gateway defaultgateway-bogusCredentialName"),
            ("IST0101", "Gateway customgateway-wrongnamespace"),
            ("IST0101", "Gateway bogusgateway"),
        ],
    },
    Case {
        name: "gatewaySecretValidations",
        file: "gateway-secrets-validation.yaml",
        analyzer: "gateway.SecretAnalyzer",
        expected: &[
            ("IST0161", "Gateway defaultgateway-invalid-keys"),
            ("IST0161", "Gateway defaultgateway-missing-keys"),
            ("IST0161", "Gateway defaultgateway-invalid-cert"),
            ("IST0161", "Gateway defaultgateway-expired"),
        ],
    },
    Case {
        name: "conflicting gateways detect",
        file: "conflicting-gateways.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[("IST0145", "Gateway alpha"), ("IST0145", "Gateway beta")],
    },
    Case {
        name: "gateways with different port are non-conflicting",
        file: "gateway-different-port.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[],
    },
    Case {
        name: "conflicting gateways with multiple port declarations",
        file: "conflicting-gateways-multiple-ports.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[("IST0145", "Gateway alpha"), ("IST0145", "Gateway beta")],
    },
    Case {
        name: "conflicting gateways detect by sub selector",
        file: "conflicting-gateways-subSelector.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[("IST0145", "Gateway alpha"), ("IST0145", "Gateway beta")],
    },
    Case {
        name: "conflicting gateways detect: no port",
        file: "conflicting-gateways-invalid-port.yaml",
        analyzer: "gateway.ConflictingGatewayAnalyzer",
        expected: &[],
    },
    Case {
        name: "certificate duplication in Gateway",
        file: "gateway-duplicate-certificate.yaml",
        analyzer: "gateway.CertificateAnalyzer",
        expected: &[
            ("IST0138", "Gateway istio-system/gateway-01-test-01"),
            ("IST0138", "Gateway istio-system/gateway-02-test-01"),
            ("IST0138", "Gateway istio-system/gateway-01-test-02"),
            ("IST0138", "Gateway default/gateway-01-test-03"),
        ],
    },
    Case {
        name: "istioInjection",
        file: "injection.yaml",
        analyzer: "injection.Analyzer",
        expected: &[
            ("IST0102", "Namespace bar"),
            ("IST0103", "Pod default/noninjectedpod"),
            ("IST0123", "Namespace busted"),
            ("IST0123", "Namespace multi-ns-1"),
            ("IST0123", "Namespace multi-ns-2"),
            ("IST0123", "Namespace multi-ns-3"),
        ],
    },
    Case {
        name: "portNameNotFollowConvention",
        file: "service-no-port-name.yaml",
        analyzer: "service.PortNameAnalyzer",
        expected: &[
            ("IST0118", "Service my-namespace1/my-service1"),
            ("IST0118", "Service my-namespace1/my-service1"),
            ("IST0118", "Service my-namespace2/my-service2"),
        ],
    },
    Case {
        name: "namedPort",
        file: "service-port-name.yaml",
        analyzer: "service.PortNameAnalyzer",
        expected: &[],
    },
    Case {
        name: "unnamedPortInSystemNamespace",
        file: "service-no-port-name-system-namespace.yaml",
        analyzer: "service.PortNameAnalyzer",
        expected: &[],
    },
    Case {
        name: "ExternalNameServiceTypeInvalidPortName",
        file: "incorrect-port-name-external-name-service-type.yaml",
        analyzer: "service.PortNameAnalyzer",
        expected: &[
            ("IST0150", "Service nginx-ns/nginx"),
            ("IST0150", "Service nginx-ns2/nginx-svc2"),
            ("IST0150", "Service nginx-ns3/nginx-svc3"),
        ],
    },
    Case {
        name: "ExternalNameServiceTypeValidPortName",
        file: "correct-port-name-external-name-service-type.yaml",
        analyzer: "service.PortNameAnalyzer",
        expected: &[],
    },
    Case {
        name: "sidecarDefaultSelector",
        file: "sidecar-default-selector.yaml",
        analyzer: "sidecar.SelectorAnalyzer",
        expected: &[
            ("IST0111", "Sidecar ns2/has-conflict-2"),
            ("IST0111", "Sidecar ns2/has-conflict-1"),
            ("IST0167", "Sidecar ns-ambient/namespace-scoped"),
            ("IST0167", "Sidecar ns-ambient/pod-scoped"),
        ],
    },
    Case {
        name: "sidecarSelector",
        file: "sidecar-selector.yaml",
        analyzer: "sidecar.SelectorAnalyzer",
        expected: &[
            ("IST0101", "Sidecar default/maps-to-nonexistent"),
            ("IST0101", "Sidecar other/maps-to-different-ns"),
            ("IST0110", "Sidecar default/dupe-1"),
            ("IST0110", "Sidecar default/dupe-2"),
            ("IST0110", "Sidecar default/overlap-1"),
            ("IST0110", "Sidecar default/overlap-2"),
        ],
    },
    Case {
        name: "Analyze invalid telemetry",
        file: "telemetry-invalid-provider.yaml",
        analyzer: "telemetry.ProviderAnalyzer",
        expected: &[("IST0157", "Telemetry istio-system/mesh-default")],
    },
    Case {
        name: "Analyze invalid telemetry (disabled)",
        file: "telemetry-disable-provider.yaml",
        analyzer: "telemetry.ProviderAnalyzer",
        expected: &[],
    },
    Case {
        name: "telemetrySelector",
        file: "telemetry-selector.yaml",
        analyzer: "telemetry.SelectorAnalyzer",
        expected: &[
            ("IST0101", "Telemetry default/maps-to-nonexistent"),
            ("IST0101", "Telemetry other/maps-to-different-ns"),
            ("IST0159", "Telemetry default/dupe-1"),
            ("IST0159", "Telemetry default/dupe-2"),
            ("IST0159", "Telemetry default/overlap-1"),
            ("IST0159", "Telemetry default/overlap-2"),
        ],
    },
    Case {
        name: "telemetryDefaultSelector",
        file: "telemetry-default-selector.yaml",
        analyzer: "telemetry.DefaultSelectorAnalyzer",
        expected: &[
            ("IST0160", "Telemetry ns2/has-conflict-2"),
            ("IST0160", "Telemetry ns2/has-conflict-1"),
        ],
    },
    Case {
        name: "virtualServiceConflictingMeshGatewayHosts",
        file: "virtualservice_conflictingmeshgatewayhosts.yaml",
        analyzer: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        expected: &[
            ("IST0109", "VirtualService team3/ratings"),
            ("IST0109", "VirtualService team4/ratings"),
            ("IST0109", "VirtualService foo/ratings"),
            ("IST0109", "VirtualService bar/ratings"),
            ("IST0109", "VirtualService foo/productpage"),
            ("IST0109", "VirtualService foo/bogus-productpage"),
            ("IST0109", "VirtualService team2/ratings"),
        ],
    },
    Case {
        name: "virtualServiceConflictingMeshGatewayHostsWithExportTo",
        file: "virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml",
        analyzer: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        expected: &[
            ("IST0109", "VirtualService foo/productpage"),
            ("IST0109", "VirtualService bar/productpage"),
            ("IST0109", "VirtualService foo/productpage-c"),
            ("IST0109", "VirtualService bar/productpage-c"),
            ("IST0109", "VirtualService foo/productpage-d"),
            ("IST0109", "VirtualService bar/productpage-d"),
        ],
    },
    Case {
        name: "virtualServiceDestinationHosts",
        file: "virtualservice_destinationhosts.yaml",
        analyzer: "virtualservice.DestinationHostAnalyzer",
        expected: &[
            ("IST0101", "VirtualService default/reviews-bogushost"),
            ("IST0101", "VirtualService default/reviews-bogushost"),
            ("IST0101", "VirtualService default/reviews-bookinfo-other"),
            ("IST0101", "VirtualService default/reviews-mirror-bogushost"),
            ("IST0101", "VirtualService default/reviews-bogusport"),
            ("IST0112", "VirtualService default/reviews-2port-missing"),
            (
                "IST0101",
                "VirtualService istio-system/cross-namespace-details",
            ),
            ("IST0101", "VirtualService hello/hello-export-to-bogus"),
        ],
    },
    Case {
        name: "Route Rule no effect on Ingress",
        file: "virtualservice_route_rule_no_effects_ingress.yaml",
        analyzer: "virtualservice.DestinationHostAnalyzer",
        expected: &[(
            "IST0140",
            "VirtualService default/testing-service-01-test-01",
        )],
    },
    Case {
        name: "virtualServiceDestinationRules",
        file: "virtualservice_destinationrules.yaml",
        analyzer: "virtualservice.DestinationRuleAnalyzer",
        expected: &[
            ("IST0101", "VirtualService default/reviews-bogussubset"),
            (
                "IST0101",
                "VirtualService default/reviews-mirror-bogussubset",
            ),
        ],
    },
    // Istio's "dupmatches" case reads both files at once; each file is a case here. The
    // stored file ends with `many-dups-case`, which the stored grid does not list: its 12
    // duplicate rules (each IST0131 + IST0130) are expected as Istio's rules give them.
    Case {
        name: "dupmatches (virtualservice_dupmatches.yaml)",
        file: "virtualservice_dupmatches.yaml",
        analyzer: "schema.ValidationAnalyzer.VirtualService",
        expected: &[
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0131", "VirtualService default/many-dups-case"),
            ("IST0130", "VirtualService duplicate-match"),
            ("IST0130", "VirtualService foo/sample-foo-cluster01"),
            ("IST0131", "VirtualService almost-duplicate-match"),
            ("IST0131", "VirtualService duplicate-match"),
            ("IST0130", "VirtualService duplicate-tcp-match"),
            ("IST0130", "VirtualService duplicate-empty-tcp"),
            ("IST0131", "VirtualService almost-duplicate-tcp-match"),
            ("IST0131", "VirtualService duplicate-tcp-match"),
            ("IST0130", "VirtualService none/tls-routing"),
            ("IST0131", "VirtualService none/tls-routing-almostmatch"),
            ("IST0131", "VirtualService none/tls-routing"),
        ],
    },
    Case {
        name: "dupmatches (virtualservice_overlappingmatches.yaml)",
        file: "virtualservice_overlappingmatches.yaml",
        analyzer: "schema.ValidationAnalyzer.VirtualService",
        expected: &[
            ("IST0131", "VirtualService non-method-get"),
            ("IST0131", "VirtualService overlapping-in-single-match"),
            ("IST0131", "VirtualService overlapping-in-two-matches"),
            (
                "IST0131",
                "VirtualService overlapping-mathes-with-different-methods",
            ),
        ],
    },
    Case {
        name: "virtualServiceGateways",
        file: "virtualservice_gateways.yaml",
        analyzer: "virtualservice.GatewayAnalyzer",
        expected: &[
            ("IST0101", "VirtualService httpbin-bogus"),
            ("IST0132", "VirtualService default/cross-test"),
            ("IST0132", "VirtualService httpbin-bogus"),
            ("IST0132", "VirtualService httpbin"),
        ],
    },
    Case {
        name: "virtualServiceInternalGatewayRef",
        file: "virtualservice_internal_gateway_ref.yaml",
        analyzer: "virtualservice.GatewayAnalyzer",
        expected: &[("IST0165", "VirtualService httpbin")],
    },
    Case {
        name: "host defined in virtualservice not found in the gateway",
        file: "virtualservice_host_not_found_gateway.yaml",
        analyzer: "virtualservice.GatewayAnalyzer",
        expected: &[
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-01",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-02",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-03",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-03-test-04",
            ),
        ],
    },
    Case {
        name: "host defined in virtualservice not found in the gateway(beta version)",
        file: "virtualservice_host_not_found_gateway_beta.yaml",
        analyzer: "virtualservice.GatewayAnalyzer",
        expected: &[
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-01",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-02",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-02-test-03",
            ),
            (
                "IST0132",
                "VirtualService default/testing-service-03-test-04",
            ),
        ],
    },
    Case {
        name: "host defined in virtualservice not found in the gateway with ns",
        file: "virtualservice_host_not_found_gateway_with_ns_prefix.yaml",
        analyzer: "virtualservice.GatewayAnalyzer",
        expected: &[(
            "IST0132",
            "VirtualService default/testing-service-01-test-01",
        )],
    },
    Case {
        name: "missing Addresses and Protocol in Service Entry",
        file: "serviceentry-missing-addresses-protocol.yaml",
        analyzer: "serviceentry.Analyzer",
        expected: &[
            ("IST0134", "ServiceEntry default/service-entry-test-03"),
            ("IST0134", "ServiceEntry default/service-entry-test-04"),
            ("IST0134", "ServiceEntry default/service-entry-test-07"),
        ],
    },
    Case {
        name: "Application Pod SecurityContext with UID 1337",
        file: "pod-sec-uid.yaml",
        analyzer: "applicationUID.Analyzer",
        expected: &[("IST0144", "Pod pod-sec-uid")],
    },
    Case {
        name: "Application Container SecurityContext with UID 1337",
        file: "pod-con-sec-uid.yaml",
        analyzer: "applicationUID.Analyzer",
        expected: &[("IST0144", "Pod con-sec-uid")],
    },
    Case {
        name: "Deployment Pod SecurityContext with UID 1337",
        file: "deployment-pod-sec-uid.yaml",
        analyzer: "applicationUID.Analyzer",
        expected: &[("IST0144", "Deployment deploy-pod-sec-uid")],
    },
    Case {
        name: "Deployment Container SecurityContext with UID 1337",
        file: "deployment-con-sec-uid.yaml",
        analyzer: "applicationUID.Analyzer",
        expected: &[("IST0144", "Deployment deploy-con-sec-uid")],
    },
    Case {
        name: "authorizationpolicies",
        file: "authorizationpolicies.yaml",
        analyzer: "auth.AuthorizationPoliciesAnalyzer",
        expected: &[
            (
                "IST0127",
                "AuthorizationPolicy istio-system/meshwide-httpbin-v1",
            ),
            (
                "IST0127",
                "AuthorizationPolicy httpbin-empty/httpbin-empty-namespace-wide",
            ),
            ("IST0127", "AuthorizationPolicy httpbin/httpbin-nopods"),
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-ns"),
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-ns"),
            (
                "IST0101",
                "AuthorizationPolicy httpbin/httpbin-bogus-not-ns",
            ),
            (
                "IST0101",
                "AuthorizationPolicy httpbin/httpbin-bogus-not-ns",
            ),
            ("IST0127", "AuthorizationPolicy test-ambient/no-workload"),
        ],
    },
    Case {
        name: "missing Addresses and Protocol in Service Entry with ISTIO_META_DNS_AUTO_ALLOCATE enabled",
        file: "serviceentry-missing-addresses-protocol.yaml",
        analyzer: "serviceentry.Analyzer",
        expected: &[],
    },
    Case {
        name: "ServiceEntry Addresses Required Lowercase Protocol",
        file: "serviceentry-address-required-lowercase.yaml",
        analyzer: "serviceentry.Analyzer",
        expected: &[("IST0134", "ServiceEntry address-missing-lowercase")],
    },
    Case {
        name: "ServiceEntry Addresses Required Uppercase Protocol",
        file: "serviceentry-address-required-uppercase.yaml",
        analyzer: "serviceentry.Analyzer",
        expected: &[("IST0134", "ServiceEntry address-missing-uppercase")],
    },
    Case {
        name: "ServiceEntry Addresses Allocated",
        file: "serviceentry-address-allocated.yaml",
        analyzer: "serviceentry.Analyzer",
        expected: &[],
    },
    // Newer than the stored test grid: the expectation is the file's own comments and the
    // analyzer's pull request (a warning on each conflicting ServiceEntry).
    Case {
        name: "ServiceEntry Conflicting Protocol",
        file: "serviceentry-conflicting-protocol.yaml",
        analyzer: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        expected: &[
            ("IST0177", "ServiceEntry default/se-https"),
            ("IST0177", "ServiceEntry default/se-http"),
        ],
    },
    Case {
        name: "Condition Analyzer",
        file: "condition-analyzer.yaml",
        analyzer: "conditions.ConditionAnalyzer",
        expected: &[
            ("IST0171", "Service default/negative-condition-svc"),
            (
                "IST0171",
                "ServiceEntry default/negative-condition-svcEntry",
            ),
            (
                "IST0171",
                "AuthorizationPolicy default/negative-condition-authz",
            ),
            ("IST0171", "Gateway default/negative-condition-gateway"),
            ("IST0171", "HTTPRoute default/negative-condition-httproute"),
            ("IST0171", "GRPCRoute default/negative-condition-grpcroute"),
            (
                "IST0171",
                "AuthorizationPolicy default/negative-condition-authz-partially-invalid",
            ),
        ],
    },
    Case {
        name: "serviceMultipleDeployments",
        file: "deployment-multi-service.yaml",
        analyzer: "deployment.MultiServiceAnalyzer",
        expected: &[
            ("IST0116", "Deployment bookinfo/multiple-svc-multiple-prot"),
            ("IST0116", "Deployment bookinfo/multiple-without-port"),
            ("IST0137", "Deployment bookinfo/conflicting-ports"),
        ],
    },
    Case {
        name: "deploymentMultiServicesInDifferentNamespace",
        file: "deployment-multi-service-different-ns.yaml",
        analyzer: "deployment.MultiServiceAnalyzer",
        expected: &[],
    },
    Case {
        name: "serviceWithNoSelector",
        file: "deployment-service-no-selector.yaml",
        analyzer: "deployment.MultiServiceAnalyzer",
        expected: &[],
    },
    Case {
        name: "deprecation",
        file: "deprecation.yaml",
        analyzer: "deprecation.DeprecationAnalyzer",
        expected: &[
            ("IST0002", "VirtualService foo/productpage"),
            ("IST0002", "Sidecar default/no-selector"),
        ],
    },
];

/// The cases given a MeshConfig file (`meshConfigFile`): the oracle puts it in the `istio`
/// ConfigMap of `istio-system`, where istioctl reads it from a cluster.
pub const MESH_CONFIGS: &[(&str, &str)] = &[
    ("Telemetry Lightstep", "telemetry-lightstep-meshconfig.yaml"),
    ("injectionImageDistroless", "common-meshconfig.yaml"),
    (
        "missing Addresses and Protocol in Service Entry with ISTIO_META_DNS_AUTO_ALLOCATE enabled",
        "serviceentry-missing-addresses-protocol-mesh-cfg.yaml",
    ),
    (
        "ServiceEntry Addresses Allocated",
        "serviceentry-address-allocated-mesh-cfg.yaml",
    ),
];
