//! Test guest: asks for both bodies; upper-cases the request body and sets
//! `x-body-len`, and sets `x-response-body-len` on the response.

use wasmgate_plugin_sdk::{
    Action, Context, NoConfig, Plugin, Reply, Request, Settings, export_plugin,
};

struct BodyUpper;

impl Plugin for BodyUpper {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(BodyUpper)
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: true,
            response_body: true,
            ..Settings::default()
        }
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let body = request.body().unwrap_or_default().to_ascii_uppercase();
        request.headers.set("x-body-len", body.len().to_string());
        request.set_body(body);
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        let len = response.body().map_or(0, |body| body.len());
        response.headers.set("x-response-body-len", len.to_string());
    }
}

export_plugin!(BodyUpper);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::Response;
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn upper_cases_the_body_and_reports_lengths() {
        let mut harness = Harness::<BodyUpper>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::post("/").body("héllo, body"));
        let request = outcome.request().unwrap();
        assert_eq!(request.body.as_deref(), Some("HéLLO, BODY".as_bytes()));
        assert_eq!(request.headers.get("x-body-len").as_deref(), Some("12"));
        let mut response = Response::new(200);
        response.body = Some(b"abc".to_vec());
        let response = harness.on_response(response);
        assert_eq!(
            response.headers.get("x-response-body-len").as_deref(),
            Some("3")
        );
        assert_eq!(response.body.as_deref(), Some(&b"abc"[..]), "unchanged");
    }

    #[test]
    fn no_body_is_an_empty_one() {
        let mut harness = Harness::<BodyUpper>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::get("/"));
        let request = outcome.request().unwrap();
        assert_eq!(request.body.as_deref(), Some(&b""[..]));
        assert_eq!(request.headers.get("x-body-len").as_deref(), Some("0"));
        let response = harness.on_response(Response::new(204));
        assert_eq!(
            response.headers.get("x-response-body-len").as_deref(),
            Some("0")
        );
    }
}
