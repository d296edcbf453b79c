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
//! The config is checked once, in `new`: unknown fields, invalid names or values,
//! hop-by-hop headers (the gateway's to set), a header named twice in one operation,
//! and rename chains (`a → b`, `b → c`) are refused, so the result never depends on
//! the order of entries in the config and no edit is refused at request time.
//!
//! The edits go to the gateway's copy of the message through [`Headers`] (one call
//! per edit); the plugin reads nothing but the headers it renames.

mod config;

use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Reply, Request, Settings, export_plugin,
};

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
            match values.split_first() {
                Some((first, rest)) => {
                    headers.set(name, first);
                    for value in rest {
                        headers.append(name, value);
                    }
                }
                None => {
                    headers.remove(name);
                }
            }
        }
        for (name, values) in &self.add {
            for value in values {
                headers.append(name, value);
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
    fn settings(&self) -> Settings {
        Settings {
            request_only: self.response.is_empty(),
            ..Settings::default()
        }
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        self.request.apply(&mut request.headers);
        Action::Continue
    }

    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        self.response.apply(&mut response.headers);
    }
}

export_plugin!(HeadersPlugin);

#[cfg(test)]
mod tests;
