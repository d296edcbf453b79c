//! Test guest for chain order: appends its configured `name` to the request header
//! `x-chain` and the response header `x-chain-response`, copies the var `last` (set by
//! the plugin before it) into `x-prev-NAME`, then sets `last` to its name.

use serde::Deserialize;
use wasmgate_plugin_sdk::{Action, Context, Plugin, Reply, Request, export_plugin};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
}

struct Record {
    name: String,
}

impl Plugin for Record {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Record { name: config.name })
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        request.headers.append("x-chain", &self.name);
        if let Some(previous) = ctx.var("last") {
            request
                .headers
                .set(&format!("x-prev-{}", self.name), previous);
        }
        ctx.set_var("last", &self.name);
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        response.headers.append("x-chain-response", &self.name);
    }
}

export_plugin!(Record);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::Response;
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn records_its_name_and_the_previous_one() {
        let mut harness = Harness::<Record>::new(r#"{"name": "b"}"#).unwrap();
        harness.ctx.vars.push(("last".into(), "a".into()));
        let outcome = harness.on_request(TestRequest::get("/").header("x-chain", "a"));
        let request = outcome.request().unwrap();
        assert_eq!(request.headers.get_all("x-chain"), ["a", "b"]);
        assert_eq!(request.headers.get("x-prev-b").as_deref(), Some("a"));
        assert_eq!(harness.ctx.var("last"), Some("b"));
        let response = harness.on_response(Response::new(200).with_header("x-chain-response", "c"));
        assert_eq!(response.headers.get_all("x-chain-response"), ["c", "b"]);
        assert!(Harness::<Record>::new("{}").is_err(), "name is required");
    }

    #[test]
    fn the_first_in_the_chain_has_no_previous() {
        let mut harness = Harness::<Record>::new(r#"{"name": "a"}"#).unwrap();
        let outcome = harness.on_request(TestRequest::get("/"));
        let request = outcome.request().unwrap();
        assert_eq!(request.headers.get_all("x-chain"), ["a"]);
        assert!(!request.headers.contains("x-prev-a"));
        assert_eq!(harness.vars_set(), [("last".to_string(), "a".to_string())]);
    }
}
