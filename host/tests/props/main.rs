//! Property tests (proptest) of what the gateway takes from outside: the path
//! normaliser, the router, the config loader and the HTTP/1 framing checks. (The
//! checks on what a plugin hands back are in `src/plugin/exchange/tests.rs`: they need
//! the crate's private WIT bindings.)
//!
//! Every test's name starts with `prop_`, so `cargo test --release -p wasmgate prop_`
//! runs them all. Each test runs a modest number of cases by default, so that the
//! suite stays within seconds in CI; `PROPTEST_CASES=20000` runs that many of each.
//!
//! Failures are not persisted to `proptest-regressions/` files: proptest prints the
//! shrunk input that fails, and it becomes a named example test next to the property.

mod config;
mod framing;
mod normalize;
mod router;

use proptest::test_runner::Config;

/// `default_cases` cases, or `PROPTEST_CASES` when it is set; no regression files.
pub fn cases(default_cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}
