//! A template plugin: refuses requests without a configured header (400, in the
//! gateway's JSON envelope), tells the upstream who greeted it in `x-greeting`, and
//! records the header's value in the chain variable `api_version` for later plugins.
//!
//! Config: `{ "require_header": "x-api-version", "greeting": "hello" }`.
//!
//! The other hooks default to doing nothing: `on_response(&self, &mut Reply, &mut
//! Context)` changes the response on its way back, and `on_log(&self, &LogEntry)`
//! (with `Settings { log: true, .. }`) sees how each request ended.

use serde::Deserialize;
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Request, Response, Settings, export_plugin, log,
};

/// The route's config for this plugin; a typo in a field name is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests without this header are refused.
    require_header: String,
    /// Sent upstream in `x-greeting`.
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "hello from wasmgate".into()
}

/// The plugin: its config, checked once per instance.
pub struct Template {
    config: Config,
}

impl Plugin for Template {
    type Config = Config;

    /// Checks the config: an error refuses the route before it serves traffic.
    fn new(config: Config) -> Result<Self, String> {
        if !Headers::is_valid_name(&config.require_header) {
            let name = &config.require_header;
            return Err(format!(
                "require_header: {name:?} is not a valid header name"
            ));
        }
        if !Headers::is_valid_value(config.greeting.as_bytes()) {
            return Err("greeting: not a valid header value".into());
        }
        Ok(Self { config })
    }

    /// Nothing to do on the way back: the gateway skips this plugin's response phase.
    fn settings(&self) -> Settings {
        Settings::REQUEST_ONLY
    }

    /// `request` and `ctx` are handles on the gateway's copy of the request: each read
    /// or change is one call into the gateway, so touch only what you need.
    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let required = &self.config.require_header;
        let Some(version) = request.headers.get(required) else {
            log::info(&format!("refused {}: no {required}", ctx.path()));
            let message = format!("the {required} header is required");
            return Action::Respond(Response::bad_request(&message, ctx));
        };
        request.headers.set("x-greeting", &self.config.greeting);
        ctx.set_var("api_version", &version);
        Action::Continue
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    fn harness(config: &str) -> Harness<Template> {
        Harness::new(config).unwrap()
    }

    #[test]
    fn greets_requests_that_carry_the_header() {
        let mut harness = harness(r#"{"require_header": "x-api-version"}"#);
        let outcome = harness.on_request(TestRequest::get("/").header("X-Api-Version", "2"));
        let request = outcome.request().expect("continues");
        assert_eq!(
            request.headers.get("x-greeting").as_deref(),
            Some("hello from wasmgate")
        );
        assert_eq!(harness.ctx.var("api_version"), Some("2"));
    }

    #[test]
    fn refuses_requests_without_it() {
        let mut harness = harness(r#"{"require_header": "x-api-version"}"#);
        let outcome = harness.on_request(TestRequest::get("/orders"));
        let response = outcome.response().expect("answers");
        assert_eq!(response.status, 400);
        let envelope: serde_json::Value =
            serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
        assert_eq!(envelope["code"], "VALIDATION_ERROR");
        assert_eq!(envelope["error"], "the x-api-version header is required");
        assert_eq!(harness.logs().len(), 1);
        assert!(harness.vars_set().is_empty());
    }

    #[test]
    fn uses_the_configured_greeting() {
        let mut harness = harness(r#"{"require_header": "x-key", "greeting": "hi"}"#);
        let outcome = harness.on_request(TestRequest::post("/orders").header("x-key", "k"));
        assert_eq!(
            outcome
                .request()
                .unwrap()
                .headers
                .get("x-greeting")
                .as_deref(),
            Some("hi")
        );
        assert!(harness.logs().is_empty());
        assert_eq!(harness.settings(), Settings::REQUEST_ONLY);
    }

    #[test]
    fn refuses_a_bad_config() {
        for (config, want) in [
            (r#"{"require_header": ""}"#, "not a valid header name"),
            (r#"{"require_header": "x", "greeting": "a\nb"}"#, "greeting"),
            (r#"{}"#, "missing field `require_header`"),
            (
                r#"{"require_header": "x", "greting": "hi"}"#,
                "unknown field `greting`",
            ),
        ] {
            let error = Harness::<Template>::new(config).err().expect(config);
            assert!(error.contains(want), "{config}: {error}");
        }
    }
}
