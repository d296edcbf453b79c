//! Test guest: panics in `on_request` when the request has `x-panic: 1`, after editing
//! the request (sets `x-edited-before-panic: 1`, removes `x-keep`), so that a test
//! can show a skipped failure leaves no edit behind.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, export_plugin};

struct Panic;

impl Plugin for Panic {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Panic)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if request.headers.get("x-panic").as_deref() == Some("1") {
            request.headers.set("x-edited-before-panic", "1");
            request.headers.remove("x-keep");
            panic!("test guest panicked on purpose");
        }
        Action::Continue
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
    #[should_panic(expected = "on purpose")]
    fn panics_when_asked() {
        let mut harness = Harness::<Panic>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").header("x-panic", "1"));
    }
}
