//! Support for the resolved-address guard tests: the testkit's stub DNS server.

#![allow(dead_code)]

pub use egress_testkit::dns::StubDns;
