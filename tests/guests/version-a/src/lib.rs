//! Test guest for hot reload: sets `x-plugin-version` on the request (so the upstream
//! sees it) and on the response to its version, the last letter of its package name.
//! `version-a` and `version-b` are this one source built under two names, so swapping
//! one file for the other changes the behaviour and nothing else.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, Response, export_plugin};

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

    fn on_request(&self, mut request: Request, _: &mut Context) -> Action {
        request.headers.set("x-plugin-version", VERSION);
        Action::Continue(request)
    }

    fn on_response(&self, mut response: Response, _: &mut Context) -> Response {
        response.headers.set("x-plugin-version", VERSION);
        response
    }
}

export_plugin!(Versioned);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn marks_both_phases_with_its_version() {
        let mut harness = Harness::<Versioned>::new("{}").unwrap();
        let action = harness.on_request(
            TestRequest::get("/")
                .header("x-plugin-version", "z")
                .build(),
        );
        let request = action.request().unwrap();
        assert_eq!(request.headers.get("x-plugin-version"), Some(VERSION));
        let response = harness.on_response(Response::new(200));
        assert_eq!(response.headers.get("x-plugin-version"), Some(VERSION));
    }
}
