//! Test guest: asks for both bodies; upper-cases the request body and sets
//! `x-body-len`, and sets `x-response-body-len` on the response.

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Response, Settings, export_plugin};

struct BodyUpper;

impl Plugin for BodyUpper {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(BodyUpper)
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: true,
            response_body: true,
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
