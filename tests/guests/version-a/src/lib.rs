//! Test guest for hot reload: sets `x-plugin-version` on the request (so the upstream
//! sees it) and on the response to its version, the last letter of its package name.
//! `version-a` and `version-b` are this one source built under two names, so swapping
//! one file for the other changes the behaviour and nothing else.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Reply, Request, export_plugin};

/// `a` or `b`.
const VERSION: &str = match env!("CARGO_PKG_NAME").as_bytes() {
    b"version-a" => "a",
    b"version-b" => "b",
    _ => panic!("built under an unexpected name"),
};

struct Versioned;

impl Plugin for Versioned {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Versioned)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        request.headers.set("x-plugin-version", VERSION);
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        response.headers.set("x-plugin-version", VERSION);
    }
}

export_plugin!(Versioned);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::Response;
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn marks_both_phases_with_its_version() {
        let mut harness = Harness::<Versioned>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::get("/").header("x-plugin-version", "z"));
        let request = outcome.request().unwrap();
        assert_eq!(request.headers.get_all("x-plugin-version"), [VERSION]);
        let response = harness.on_response(Response::new(200).with_header("x-plugin-version", "z"));
        assert_eq!(response.headers.get_all("x-plugin-version"), [VERSION]);
    }
}
