//! Test guest: panics in `on_request` when the request has `x-panic: 1`, after editing
//! the request (sets `x-edited-before-panic: 1`, removes `x-keep`), and in
//! `on_response` when it has `x-panic: response`, after setting the response header
//! `x-edited-before-panic: 1`, so that a test can show a skipped failure leaves no
//! edit behind in either phase.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Reply, Request, export_plugin};

struct Panic;

impl Plugin for Panic {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Panic)
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        if request.headers.get("x-panic").as_deref() == Some("1") {
            request.headers.set("x-edited-before-panic", "1");
            request.headers.remove("x-keep");
            panic!("test guest panicked on purpose");
        }
        if request.headers.get("x-panic").as_deref() == Some("response") {
            ctx.set_var("panic", "response");
        }
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        if ctx.var("panic").as_deref() == Some("response") {
            response.headers.set("x-edited-before-panic", "1");
            panic!("test guest panicked on purpose in the response phase");
        }
    }
}

export_plugin!(Panic);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Panic>::new("{}").unwrap();
        let request = TestRequest::get("/").header("x-panic", "0");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }

    #[test]
    #[should_panic(expected = "on purpose in the response phase")]
    fn panics_in_the_response_phase_when_asked() {
        let mut harness = Harness::<Panic>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").header("x-panic", "response"));
        harness.on_response(wasmgate_plugin_sdk::Response::new(200));
    }

    #[test]
    #[should_panic(expected = "on purpose")]
    fn panics_when_asked() {
        let mut harness = Harness::<Panic>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").header("x-panic", "1"));
    }
}
