//! Test guest: when the request has `x-malformed: 1`, answers with an invalid header
//! name and a status out of range.

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Response, export_plugin};

struct Malformed;

impl Plugin for Malformed {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
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
