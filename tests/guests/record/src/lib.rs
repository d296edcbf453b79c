//! Test guest for chain order: appends its configured `name` to the request header
//! `x-chain` and the response header `x-chain-response`, copies the var `last` (set by
//! the plugin before it) into `x-prev-NAME`, then sets `last` to its name.

use serde::Deserialize;
use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Response, export_plugin};

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

    fn on_request(&self, mut request: Request, ctx: &mut Context) -> Action {
        request.headers.append("x-chain", self.name.as_str());
        if let Some(previous) = ctx.var("last") {
            request
                .headers
                .set(&format!("x-prev-{}", self.name), previous);
        }
        ctx.set_var("last", &self.name);
        Action::Continue(request)
    }

    fn on_response(&self, mut response: Response, _: &mut Context) -> Response {
        response
            .headers
            .append("x-chain-response", self.name.as_str());
        response
    }
}

export_plugin!(Record);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn records_its_name_and_the_previous_one() {
        let mut harness = Harness::<Record>::new(r#"{"name": "b"}"#).unwrap();
        harness.ctx.vars.push(("last".into(), "a".into()));
        let action = harness.on_request(TestRequest::get("/").header("x-chain", "a").build());
        let request = action.request().unwrap();
        assert_eq!(
            request.headers.get_all("x-chain").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(request.headers.get("x-prev-b"), Some("a"));
        assert_eq!(harness.ctx.var("last"), Some("b"));
        let response = harness.on_response(Response::new(200).with_header("x-chain-response", "c"));
        assert_eq!(
            response
                .headers
                .get_all("x-chain-response")
                .collect::<Vec<_>>(),
            ["c", "b"]
        );
        assert!(Harness::<Record>::new("{}").is_err(), "name is required");
    }
}
