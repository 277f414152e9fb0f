//! Shared by the model's rule tables: decoding one test document as `egress apply` would (the
//! default namespace filled in) and rendering diagnostics for assertion messages.
#![allow(dead_code, clippy::expect_used)]

use egress_model::decode::{DecodeOptions, Outcome, decode_document};
use egress_model::diag::Diagnostic;
use egress_model::yaml::parse_stream;

/// Decodes the first document of `text` (file `test.yaml`, namespace `default`).
pub fn decode(text: &str) -> Outcome {
    let mut docs = parse_stream(text).expect("test YAML parses");
    let opts = DecodeOptions {
        default_namespace: Some("default".into()),
        enforce_namespace: false,
    };
    decode_document("test.yaml", docs.remove(0), &opts)
}

/// Diagnostics one per line, for assertion messages.
pub fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|d| format!("  {d}\n")).collect()
}
