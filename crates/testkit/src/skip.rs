//! Skipping a test whose prerequisite is missing, loudly: `skip` prints `SKIPPED: <why>` so a
//! run's output shows it, and under `EGRESS_TEST_STRICT=1` (what CI sets) it fails the test
//! instead, so nothing the CI machine should be able to run passes by not running.

/// The environment variable that turns skips into failures.
pub const STRICT_ENV: &str = "EGRESS_TEST_STRICT";

/// True when skips must fail (`EGRESS_TEST_STRICT=1`).
pub fn strict() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|v| v == "1")
}

/// Reports that the calling test cannot run because of `why`; the caller returns after it.
/// Under `EGRESS_TEST_STRICT=1` this panics (the test fails) with the same reason.
#[allow(clippy::panic)]
pub fn skip(why: &str) {
    if strict() {
        panic!("{STRICT_ENV}=1 and this test cannot run: {why}");
    }
    println!("SKIPPED: {why}");
}
