//! Properties of request-path normalization over generated paths built from the pieces
//! attackers combine (dots, slashes, backslashes, escapes of each, other escapes, letters):
//! every mode is idempotent (normalizing a normalized path changes nothing, so what policy saw
//! is what a second proxy would see), a normalized path carries no dot segment, merged modes no
//! `//` (but Envoy's lone `//`), DECODE_AND_MERGE_SLASHES no encoded slash, and output is ASCII.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use egress_proxy::http::normalize::{PathRejected, normalize};
use egress_snapshot::snapshot::PathNormalization;
use proptest::prelude::*;

const MODES: [PathNormalization; 4] = [
    PathNormalization::None,
    PathNormalization::Base,
    PathNormalization::MergeSlashes,
    PathNormalization::DecodeAndMergeSlashes,
];

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "\\", "a", "B", "%41",
        "%7e", "%25", "%", "%z", "%00", "%C3%A9", "~", "-", "^", "|", "{", ";", "?",
    ])
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn normalization_is_idempotent_and_leaves_no_ambiguity(p in path()) {
        for mode in MODES {
            let once = match normalize(&p, mode) {
                Ok(once) => once.into_owned(),
                Err(e) => {
                    prop_assert!(p.contains("%00"), "{p:?} refused: {e}");
                    prop_assert_eq!(e, PathRejected::EncodedNul);
                    continue;
                }
            };
            let twice = normalize(&once, mode).unwrap().into_owned();
            prop_assert_eq!(&twice, &once, "{:?} not idempotent on {:?}", mode, p);
            prop_assert!(once.is_ascii());
            if mode >= PathNormalization::Base {
                prop_assert!(
                    !once.split('/').any(|s| s == "." || s == ".."),
                    "{:?}: {:?} -> {:?}", mode, p, once
                );
                prop_assert!(!once.contains('\\'), "{:?}: {:?} -> {:?}", mode, p, once);
            }
            if mode >= PathNormalization::MergeSlashes {
                prop_assert!(once == "//" || !once.contains("//"), "{:?}: {:?} -> {:?}", mode, p, once);
            }
            if mode == PathNormalization::DecodeAndMergeSlashes {
                let lower = once.to_ascii_lowercase();
                prop_assert!(
                    !lower.contains("%2f") && !lower.contains("%5c"),
                    "{:?} -> {:?}", p, once
                );
            }
        }
    }
}
