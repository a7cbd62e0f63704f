//! Tests that need something this machine may lack (root's mount, FUSE).
//! Where the test command says they must run, they fail with the reason;
//! elsewhere they say SKIPPED and pass. `scripts/test` sets
//! [`REQUIRE_PRIVILEGED`] when it runs as root, so CI never hides them.

/// The environment variable that turns a skip into a failure: set to `1` by
/// `scripts/test` when it runs as root. Not `PULPO_`-prefixed: the `pulpo`
/// processes the tests start read every `PULPO_*` variable as a config key.
pub const REQUIRE_PRIVILEGED: &str = "TESTKIT_REQUIRE_PRIVILEGED";

/// Skips `test` for `reason`: panics when [`REQUIRE_PRIVILEGED`] is `1`,
/// else prints `SKIPPED` on stderr (run with `--nocapture` to see it).
pub fn skip(test: &str, reason: &str) {
    if std::env::var(REQUIRE_PRIVILEGED).is_ok_and(|v| v == "1") {
        panic!("{test} cannot run: {reason} ({REQUIRE_PRIVILEGED}=1 says it must)");
    }
    eprintln!("SKIPPED: {test}: {reason}");
}
