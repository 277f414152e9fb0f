//! The manifest decoder every command reads files with: YAML stream parse, strict typed decode
//! and validation (`egress_model::decode_file`).
//!
//! Invariants: no panic; one outcome per document; a refused document says why; a valid
//! object written back out as JSON (which is YAML) decodes again, valid, to the same object.
#![no_main]

use egress_model::{DecodeOptions, Outcome, decode_file, yaml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = DecodeOptions {
        default_namespace: Some("default".to_owned()),
        enforce_namespace: false,
    };
    let outcomes = decode_file("fuzz.yaml", text, &opts);
    if let Ok(docs) = yaml::parse_stream(text) {
        assert_eq!(outcomes.len(), docs.len(), "one outcome per document");
    }
    for outcome in &outcomes {
        match outcome {
            Outcome::Invalid(diags) => assert!(!diags.is_empty(), "refused without a reason"),
            Outcome::Unsupported { .. } => {}
            Outcome::Valid(decoded) => {
                let json = decoded.value.to_string();
                let again = decode_file("again.yaml", &json, &opts);
                match again.as_slice() {
                    [Outcome::Valid(d)] => {
                        assert_eq!(d.value, decoded.value, "{json} decoded differently")
                    }
                    other => panic!("valid object {json} re-decoded as {other:?}"),
                }
            }
        }
    }
});
