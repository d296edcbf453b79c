//! `headers`: adds, sets, removes and renames request and response headers, from the
//! route's config. For each direction the operations apply in this order: `remove`,
//! `rename`, `set`, `add`. Header names are case-insensitive.
//!
//! ```json
//! {"request":  {"remove": ["x-internal"], "rename": {"x-old": "x-new"},
//!               "set": {"x-env": "prod"}, "add": {"x-tag": ["a", "b"]}},
//!  "response": {"set": {"x-powered-by": "wasmgate"}}}
//! ```
//!
//! The config is checked once, in `new`: unknown fields, invalid names or values, a
//! header named twice in one operation, and rename chains (`a → b`, `b → c`) are
//! refused, so the result never depends on the order of entries in the config.

mod config;

use wasmgate_plugin_sdk::{Action, Context, Headers, Plugin, Request, Response, export_plugin};

pub use config::Config;

/// The checked changes for one direction, in application order.
#[derive(Debug, Default)]
struct Edits {
    remove: Vec<String>,
    rename: Vec<(String, String)>,
    set: Vec<(String, Vec<String>)>,
    add: Vec<(String, Vec<String>)>,
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    fn apply(&self, headers: &mut Headers) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (from, to) in &self.rename {
            headers.rename(from, to);
        }
        for (name, values) in &self.set {
            headers.remove(name);
            for value in values {
                headers.append(name, value.as_bytes());
            }
        }
        for (name, values) in &self.add {
            for value in values {
                headers.append(name, value.as_bytes());
            }
        }
    }
}

/// Header edits for one route.
pub struct HeadersPlugin {
    request: Edits,
    response: Edits,
}

impl Plugin for HeadersPlugin {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            request: config.request.check("request")?,
            response: config.response.check("response")?,
        })
    }

    /// Without response edits the host need not call `on_response`.
    fn settings(&self) -> wasmgate_plugin_sdk::Settings {
        wasmgate_plugin_sdk::Settings {
            request_only: self.response.is_empty(),
            ..Default::default()
        }
    }

    fn on_request(&self, mut request: Request, _ctx: &mut Context) -> Action {
        self.request.apply(&mut request.headers);
        Action::Continue(request)
    }

    fn on_response(&self, mut response: Response, _ctx: &mut Context) -> Response {
        self.response.apply(&mut response.headers);
        response
    }
}

export_plugin!(HeadersPlugin);

#[cfg(test)]
mod tests;
