//! Test guest: when the request has `x-malformed: 1`, answers (`Action::Respond`) with
//! the status 1000 and the header name `"bad header\n"`, both of which the gateway
//! refuses.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, Response, export_plugin};

struct Malformed;

impl Plugin for Malformed {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Malformed)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if request.headers.get("x-malformed").as_deref() == Some("1") {
            return Action::Respond(malformed_answer());
        }
        Action::Continue
    }
}

/// A status out of range and a header name that is no HTTP token (it holds a space and
/// a newline).
fn malformed_answer() -> Response {
    Response::new(1000).with_header("bad header\n", "x")
}

export_plugin!(Malformed);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_normal_requests() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        let request = TestRequest::get("/").header("x-malformed", "0");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }

    #[test]
    #[should_panic(expected = "status 1000 is out of range 200..=599")]
    fn the_harness_refuses_what_the_gateway_refuses() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").header("x-malformed", "1"));
    }

    #[test]
    fn the_answer_is_malformed_in_status_and_header_name() {
        let mut harness = Harness::<Malformed>::new("{}").unwrap();
        let error = harness
            .try_on_request(TestRequest::get("/").header("x-malformed", "1"))
            .unwrap_err();
        assert!(error.contains("status 1000"), "{error}");
        let answer = malformed_answer();
        assert_eq!(answer.status, 1000);
        assert_eq!(
            answer.headers.entries(),
            [("bad header\n".to_string(), b"x".to_vec())]
        );
    }
}
