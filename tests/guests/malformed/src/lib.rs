//! Test guest: when the request has `x-malformed: 1`, answers with an invalid header
//! name and a status out of range.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, Response, export_plugin};

struct Malformed;

impl Plugin for Malformed {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Malformed)
    }

    fn on_request(&self, request: Request, _: &mut Context) -> Action {
        if request.headers.get("x-malformed") == Some("1") {
            return Action::Respond(Response::new(1000).with_header("bad header\n", "x"));
        }
        Action::Continue(request)
    }
}

export_plugin!(Malformed);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        let request = TestRequest::get("/").build();
        assert_eq!(
            harness.on_request(request.clone()),
            Action::Continue(request)
        );
    }

    #[test]
    #[should_panic(expected = "the plugin returned status 1000")]
    fn the_harness_refuses_what_the_gateway_refuses() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").header("x-malformed", "1").build());
    }
}
