//! The CEL subset of Telemetry access-log filters (`validate::telemetry::parse_cel`).
//!
//! Invariants: no panic; an expression that parses still parses inside parentheses and as
//! either side of `&&` (it is a whole expression, not a fragment that happened to fit; the
//! newlines keep a trailing `//` comment from swallowing what follows).
#![no_main]

use egress_model::validate::telemetry::parse_cel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    match parse_cel(expr) {
        Ok(()) => {
            let wrapped = format!("(\n{expr}\n)");
            assert!(parse_cel(&wrapped).is_ok(), "{wrapped:?} rejected");
            let joined = format!("(\n{expr}\n) && true");
            assert!(parse_cel(&joined).is_ok(), "{joined:?} rejected");
        }
        Err(e) => assert!(
            e.starts_with("ERROR: <input>:"),
            "unexpected error text {e:?}"
        ),
    }
});
