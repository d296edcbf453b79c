//! Test guest: counts requests with the `kv` import (`incr("hits", 1)`), logs
//! `counter hit N`, passes the count to its response phase in the var `hits`, and
//! returns it in the response header `x-hits`. The response header `x-instance-calls`
//! counts the calls of this instance (not stored: a fresh instance says 1), so a test
//! can tell reused instances from fresh ones.

use std::sync::atomic::{AtomicU64, Ordering};

use wasmgate_plugin_sdk::{
    Action, Context, NoConfig, Plugin, Reply, Request, Response, export_plugin, kv, log,
};

struct Counter {
    calls: AtomicU64,
}

impl Plugin for Counter {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Counter {
            calls: AtomicU64::new(0),
        })
    }

    fn on_request(&self, _: &mut Request, ctx: &mut Context) -> Action {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match kv::incr("hits", 1, None) {
            Ok(hits) => {
                log::info(&format!("counter hit {hits}"));
                ctx.set_var("hits", &hits.to_string());
                Action::Continue
            }
            Err(error) => {
                log::error(&format!("kv.incr failed: {error}"));
                Action::Respond(Response::internal_error("counter unavailable", ctx))
            }
        }
    }

    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        if let Some(hits) = ctx.var("hits") {
            response.headers.set("x-hits", hits);
        }
        let calls = self.calls.load(Ordering::Relaxed).to_string();
        response.headers.set("x-instance-calls", &calls);
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
            harness.on_request(TestRequest::get("/"));
            let response = harness.on_response(Response::new(200));
            assert_eq!(response.headers.get("x-hits").as_deref(), Some(want));
            assert_eq!(
                response.headers.get("x-instance-calls").as_deref(),
                Some(want),
                "one instance, called again"
            );
        }
        assert_eq!(harness.kv_get("hits").as_deref(), Some(&b"2"[..]));
        assert_eq!(
            harness.logs()[1],
            (Level::Info, "counter hit 2".to_string())
        );
    }

    #[test]
    fn a_store_error_is_a_500_envelope() {
        let mut harness = Harness::<Counter>::new("{}").unwrap();
        harness.kv_set("hits", b"not a number", None);
        let outcome = harness.on_request(TestRequest::get("/"));
        let response = outcome.response().expect("answers");
        assert_eq!(response.status, 500);
        assert!(response.body_text().contains("INTERNAL_ERROR"));
        assert_eq!(
            harness.logs(),
            [(
                Level::Error,
                "kv.incr failed: the value is not an integer".to_string()
            )]
        );
    }
}
