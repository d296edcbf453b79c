//! Test guest: asks for both bodies; upper-cases the request body and sets
//! `x-body-len`, and sets `x-response-body-len` on the response.

use wasmgate_plugin_sdk::{
    Action, Context, NoConfig, Plugin, Request, Response, Settings, export_plugin,
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
            request_only: false,
        }
    }

    fn on_request(&self, mut request: Request, _: &mut Context) -> Action {
        let body = request.body.take().unwrap_or_default().to_ascii_uppercase();
        request.headers.set("x-body-len", body.len().to_string());
        request.body = Some(body);
        Action::Continue(request)
    }

    fn on_response(&self, mut response: Response, _: &mut Context) -> Response {
        let len = response.body.as_ref().map_or(0, Vec::len);
        response.headers.set("x-response-body-len", len.to_string());
        response
    }
}

export_plugin!(BodyUpper);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn upper_cases_the_body_and_reports_lengths() {
        let mut harness = Harness::<BodyUpper>::new("{}").unwrap();
        let action = harness.on_request(TestRequest::post("/").body("héllo, body").build());
        let request = action.request().unwrap();
        assert_eq!(request.body.as_deref(), Some("HéLLO, BODY".as_bytes()));
        assert_eq!(request.headers.get("x-body-len"), Some("12"));
        let mut response = Response::new(200);
        response.body = Some(b"abc".to_vec());
        let response = harness.on_response(response);
        assert_eq!(response.headers.get("x-response-body-len"), Some("3"));
    }
}
