//! Test guest: counts requests with the `kv` import, returns the count in `x-hits`,
//! and logs `counter hit N`.

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Response, export_plugin, kv, log};

struct Counter;

impl Plugin for Counter {
    type Config = serde_json::Value;

    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Counter)
    }

    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        match kv::incr("hits", 1, None) {
            Ok(hits) => {
                log::info(&format!("counter hit {hits}"));
                ctx.set_var("hits", &hits.to_string());
                Action::Continue(request)
            }
            Err(error) => Action::Respond(Response::text(500, error)),
        }
    }

    fn on_response(&self, mut response: Response, ctx: &mut Context) -> Response {
        if let Some(hits) = ctx.var("hits") {
            response.headers.set("x-hits", hits);
        }
        response
    }
}

export_plugin!(Counter);
