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
