//! Test guest: panics in `on_request` when the request has `x-panic: 1`.

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, export_plugin};

struct Panic;

impl Plugin for Panic {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Panic)
    }

    fn on_request(&self, request: Request, _: &mut Context) -> Action {
        if request.headers.get("x-panic") == Some("1") {
            panic!("test guest panicked on purpose");
        }
        Action::Continue(request)
    }
}

export_plugin!(Panic);
