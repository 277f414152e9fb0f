//! Properties of decoding: no input makes it panic, and decode → encode → decode is identity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_model::decode::{DecodeOptions, Outcome, decode_file, to_resource};
use egress_model::kinds;
use egress_model::yaml::parse_stream;
use proptest::prelude::*;

fn opts() -> DecodeOptions {
    DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    }
}

/// Decode an object, encode it, decode again: the typed objects are equal.
fn assert_round_trip(file: &str, text: &str) -> usize {
    let mut n = 0;
    for outcome in decode_file(file, text, &opts()) {
        if let Outcome::Valid(d) = outcome {
            let encoded = d.resource.to_value().unwrap();
            let info = kinds::for_manifest(
                encoded["apiVersion"].as_str().unwrap(),
                encoded["kind"].as_str().unwrap(),
            )
            .unwrap();
            let (again, unknown) = to_resource(info, &encoded)
                .unwrap_or_else(|e| panic!("{file}: re-decoding failed: {e:?}"));
            assert!(
                unknown.is_empty(),
                "{file}: encoding produced unknown fields {unknown:?}"
            );
            assert_eq!(again, d.resource, "{file}: {}", d.object_ref());
            // And the YAML text of the encoding decodes to the same object too.
            let yaml_again = parse_stream(&serde_json::to_string(&encoded).unwrap()).unwrap();
            assert_eq!(yaml_again[0].value, encoded);
            n += 1;
        }
    }
    n
}

#[test]
fn corpus_objects_round_trip() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if !root.is_dir() {
        egress_testkit::skip("../shared is not beside the repository");
        return;
    }
    let mut count = 0;
    for sub in [
        "conformance/istio/validation",
        "conformance/istio/valid-configs",
    ] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                count += assert_round_trip(
                    &p.display().to_string(),
                    &std::fs::read_to_string(&p).unwrap(),
                );
            }
        }
    }
    println!("{count} valid corpus objects round-trip");
}

#[test]
fn sample_objects_round_trip() {
    let text = include_str!("../../../samples/curl.yaml");
    assert_eq!(assert_round_trip("curl.yaml", text), 3);
    let sgc = "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata:\n  name: sgc-istio-egress-1\n  namespace: aks-istio-egress\nspec:\n  gatewayNodepoolName: gwpool\n  provisionPublicIps: true\n  excludeCidrs: [10.0.0.0/8]\nstatus:\n  egressIpPrefix: 127.0.10.0/31\n";
    assert_eq!(assert_round_trip("sgc.yaml", sgc), 1);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n    accessLogFile: /dev/stdout\n";
    assert_eq!(assert_round_trip("cm.yaml", cm), 1);
}

#[test]
fn shared_mesh_config_rejects_fields_the_addon_blocks() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio-shared-configmap-asm-1-24\n  namespace: aks-istio-system\ndata:\n  mesh: |-\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n    configSources: []\n";
    let out = decode_file("cm.yaml", cm, &opts());
    let Outcome::Invalid(d) = &out[0] else {
        panic!("expected invalid: {out:?}")
    };
    let text = d[0].to_string();
    assert!(
        text.contains("data.mesh")
            && text.contains("mesh config line 3: unknown field \"configSources\""),
        "{text}"
    );
    let bad_mode = cm
        .replace("REGISTRY_ONLY", "DENY_ALL")
        .replace("    configSources: []\n", "");
    let out = decode_file("cm.yaml", &bad_mode, &opts());
    let Outcome::Invalid(d) = &out[0] else {
        panic!("expected invalid")
    };
    assert!(
        d[0].to_string().contains("Unsupported value: \"DENY_ALL\""),
        "{}",
        d[0]
    );
}

const YAML_CHARS: &str = "ab:- \n\t{}[],&*!|>'\"%@`#?~.0123456789/\\";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = decode_file("fuzz.yaml", &s, &opts());
    }

    #[test]
    fn yaml_shaped_text_never_panics(chars in proptest::collection::vec(proptest::sample::select(YAML_CHARS.chars().collect::<Vec<_>>()), 0..200)) {
        let s: String = chars.into_iter().collect();
        let _ = decode_file("fuzz.yaml", &s, &opts());
    }

    #[test]
    fn mutated_manifests_never_panic(cut in 0usize..400, insert in proptest::sample::select(vec!["", ":", "- ", "  ", "\n", "[", "{", "*a", "&a ", "!!str ", "---\n", "\t", "99999", "\"", "'"])) {
        let base = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: cnn\nspec:\n  hosts:\n  - edition.cnn.com\n  ports:\n  - number: 80\n    name: http-port\n    protocol: HTTP\n  - number: 443\n    name: https\n    protocol: HTTPS\n  resolution: DNS\n";
        let at = cut.min(base.len());
        let mut s = base.to_owned();
        s.insert_str(at, insert);
        let _ = decode_file("fuzz.yaml", &s, &opts());
    }

    #[test]
    fn configmaps_round_trip(name in "[a-z][a-z0-9-]{0,20}[a-z0-9]", data in proptest::collection::btree_map("[a-zA-Z0-9_.-]{1,12}", "[ -~]{0,30}", 0..5)) {
        let mut text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n", serde_json::to_string(&name).unwrap());
        if !data.is_empty() {
            text.push_str("data:\n");
            for (k, v) in &data {
                text.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
            }
        }
        prop_assert_eq!(assert_round_trip("cm.yaml", &text), 1);
    }
}
