//! Istio's own analyzer testdata as the oracle: for each case of `analyzers_test.go` that an
//! implemented analyzer covers, the (code, resource) pairs reported must be exactly the
//! expected ones (as a multiset), and nothing else. Per-analyzer counts are printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use egress_analyze::{ANALYZERS, Input, analyze};
use egress_model::yaml::parse_stream;

struct Case {
    name: &'static str,
    file: &'static str,
    analyzer: &'static str,
    expected: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "gatewayNoWorkload",
        file: "gateway-no-workload.yaml",
        analyzer: "gateway.IngressGatewayPortAnalyzer",
        expected: &[("IST0101", "Gateway httpbin-gateway")],
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
        analyzer: "serviceentry.ProtocolAddressesAnalyzer",
        expected: &[
            ("IST0134", "ServiceEntry default/service-entry-test-03"),
            ("IST0134", "ServiceEntry default/service-entry-test-04"),
            ("IST0134", "ServiceEntry default/service-entry-test-07"),
        ],
    },
    Case {
        name: "destinationrule with no cacert, simple at destinationlevel",
        file: "destinationrule-simple-destination.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[("IST0128", "DestinationRule db-tls")],
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
        name: "destinationrule with both cacerts",
        file: "destinationrule-with-ca.yaml",
        analyzer: "destinationrule.CaCertificateAnalyzer",
        expected: &[],
    },
];

fn load(file: &str) -> Vec<Input> {
    let path = format!("{}/tests/testdata/istio/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = parse_stream(&text).unwrap();
    // As Istio's test does: a namespace omitted in the YAML stays empty.
    Input::from_documents(file, docs, None)
}

#[test]
fn istio_analyzer_testdata() {
    let mut per_analyzer: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in CASES {
        let info = ANALYZERS
            .iter()
            .find(|a| a.name == case.analyzer)
            .unwrap_or_else(|| panic!("no analyzer {}", case.analyzer));
        let inputs = load(case.file);
        let mut found = Vec::new();
        (info.run)(&inputs, &mut found);
        let mut got: Vec<(String, String)> = found
            .iter()
            .map(|f| {
                (
                    f.code.to_owned(),
                    format!("{} {}", f.kind, f.resource_name()),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = case
            .expected
            .iter()
            .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
            .collect();
        got.sort();
        want.sort();
        let entry = per_analyzer.entry(case.analyzer).or_default();
        entry.0 += 1;
        entry.1 += want.len();
        if got == want {
            entry.2 += 1;
        } else {
            failures.push(format!("{}: want {want:?}, got {got:?}", case.name));
        }
        // Every finding from a file names its file and a line.
        for f in &found {
            assert_eq!(f.file.as_deref(), Some(case.file));
            assert!(f.line.is_some_and(|l| l > 0), "{f:?}");
        }
    }
    for (name, (cases, expected, passed)) in &per_analyzer {
        println!("{name}: {passed}/{cases} cases exact, {expected} expected messages");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Every implemented analyzer has oracle cases.
    for a in ANALYZERS {
        assert!(
            per_analyzer.contains_key(a.name),
            "{} has no oracle case",
            a.name
        );
    }
}

#[test]
fn messages_match_istioctl_text() {
    let inputs = load("virtualservice_gateways.yaml");
    let all = analyze(&inputs, &[]);
    let logs: Vec<String> = all.iter().map(egress_analyze::format_log).collect();
    assert!(
        logs.contains(&"Error [IST0101] (VirtualService httpbin-bogus virtualservice_gateways.yaml:38) Referenced gateway not found: \"httpbin-gateway-bogus\"".to_owned()),
        "{logs:#?}"
    );
    assert!(
        logs.contains(&"Warning [IST0132] (VirtualService default/cross-test virtualservice_gateways.yaml:59) one or more host [*] defined in VirtualService default/cross-test not found in Gateway another/crossnamespace-gw.".to_owned()),
        "{logs:#?}"
    );
    let dr = analyze(&load("destinationrule-compound-simple-mutual.yaml"), &[]);
    let logs: Vec<String> = dr.iter().map(egress_analyze::format_log).collect();
    assert_eq!(
        logs,
        vec![
            "Error [IST0128] (DestinationRule db-mtls destinationrule-compound-simple-mutual.yaml:10) DestinationRule db-mtls in namespace  has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local".to_owned(),
            "Warning [IST0129] (DestinationRule db-mtls destinationrule-compound-simple-mutual.yaml:17) DestinationRule db-mtls in namespace  has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local at port number:443".to_owned(),
        ]
    );
}

#[test]
fn suppression_by_flag_and_annotation() {
    use egress_analyze::Suppression;
    let inputs = load("virtualservice_gateways.yaml");
    let all = analyze(&inputs, &[]);
    let s = Suppression::parse("IST0132=VirtualService *").unwrap();
    let kept = analyze(&inputs, &[s]);
    assert!(kept.len() < all.len());
    assert!(kept.iter().all(|f| f.code != "IST0132"));
    assert!(Suppression::parse("IST0132").is_err());

    let mut annotated = inputs.clone();
    for i in annotated.iter_mut().filter(|i| i.name == "httpbin-bogus") {
        i.value["metadata"]["annotations"] =
            serde_json::json!({"galley.istio.io/analyze-suppress": "IST0101,IST0132"});
    }
    let left = analyze(&annotated, &[]);
    assert!(left.iter().all(|f| f.name_of_resource != "httpbin-bogus"));
    assert!(left.iter().any(|f| f.name_of_resource == "cross-test"));
}
