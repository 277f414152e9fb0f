//! The ClientHello peek every TLS listener runs on a client's first bytes (`sni::parse`).
//!
//! Invariants: no panic; a complete hello is stable under more bytes after it (what follows
//! the hello on the wire cannot change what it said) and its server name is lower-cased.
#![no_main]

use egress_proxy::sni::{self, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = sni::parse(data);
    if let Parse::Hello(hello) = &first {
        if let Some(name) = &hello.sni {
            assert_eq!(name, &name.to_ascii_lowercase(), "SNI not lower-cased");
        }
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\x17\x03\x03\x00\x05hello");
        assert_eq!(
            sni::parse(&longer),
            first,
            "trailing bytes changed a complete hello"
        );
    }
    // Any prefix of the input is at most "incomplete" or a verdict: never a panic.
    if data.len() > 1 {
        let _ = sni::parse(&data[..data.len() / 2]);
    }
});
