//! kubectl's label-selector parser (`printers::selector`).
//!
//! Invariants: no panic; a selector that parses prints back to text that parses to the same
//! selector, and printing that again gives the same text (a fixed point after one round).
#![no_main]

use egress_printers::selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = selector::parse(text) else {
        return;
    };
    let printed = sel.to_string();
    let again = match selector::parse(&printed) {
        Ok(s) => s,
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    };
    assert_eq!(again, sel, "{text:?} -> {printed:?} parsed differently");
    assert_eq!(again.to_string(), printed, "printing is not a fixed point");
});
