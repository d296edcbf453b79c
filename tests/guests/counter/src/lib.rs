//! Test guest: counts requests with the `kv` import (`incr("hits", 1)`), logs
//! `counter hit N`, passes the count to its response phase in the var `hits`, and
//! returns it in the response header `x-hits`.

use wasmgate_plugin_sdk::{
    Action, Context, NoConfig, Plugin, Request, Response, export_plugin, kv, log,
};

struct Counter;

impl Plugin for Counter {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Counter)
    }

    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        match kv::incr("hits", 1, None) {
            Ok(hits) => {
                log::info(&format!("counter hit {hits}"));
                ctx.set_var("hits", &hits.to_string());
                Action::Continue(request)
            }
            Err(error) => {
                log::error(&format!("kv.incr failed: {error}"));
                Action::Respond(Response::internal_error("counter unavailable", ctx))
            }
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

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::log::Level;
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn counts_logs_and_reports_hits() {
        let mut harness = Harness::<Counter>::new("{}").unwrap();
        for want in ["1", "2"] {
            harness.ctx.vars.clear();
            harness.on_request(TestRequest::get("/").build());
            let response = harness.on_response(Response::new(200));
            assert_eq!(response.headers.get("x-hits"), Some(want));
        }
        assert_eq!(harness.kv_get("hits").as_deref(), Some(&b"2"[..]));
        assert_eq!(
            harness.logs()[1],
            (Level::Info, "counter hit 2".to_string())
        );
    }
}
