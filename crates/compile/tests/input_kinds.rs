//! The kinds a configuration source reads are exactly the kinds the compiler consumes: every
//! kind of the model's registry is decoded from a minimal object and asked of
//! [`egress_compile::consumes`], and the answer must match [`egress_compile::INPUT_KINDS`]. A
//! source built on `INPUT_KINDS` (the store loader, `--config`) therefore never misses a kind
//! (the store loader once missed `Sidecar`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_compile::{INPUT_KINDS, consumes};
use egress_model::decode::to_resource;
use egress_model::kinds::KINDS;

#[test]
fn input_kinds_are_exactly_the_consumed_kinds() {
    let mut consumed = Vec::new();
    for info in KINDS {
        let mut obj = serde_json::json!({
            "apiVersion": info.api_version(),
            "kind": info.kind,
            "metadata": {"name": "x"},
        });
        if info.namespaced {
            obj["metadata"]["namespace"] = "default".into();
        }
        let resource = match to_resource(info, &obj) {
            Ok((r, _)) => r,
            Err(e) => panic!("{}: a minimal object does not decode: {e:?}", info.kind),
        };
        if consumes(&resource) {
            consumed.push((info.group, info.kind));
        }
    }
    let mut listed: Vec<_> = INPUT_KINDS.to_vec();
    listed.sort();
    consumed.sort();
    assert_eq!(listed, consumed);
    assert!(listed.contains(&("networking.istio.io", "Sidecar")));
}
