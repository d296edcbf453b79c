//! A template plugin: requires a header on every request (answering 400 with the
//! gateway's envelope when it is missing) and tells the upstream who greeted it.
//!
//! Config: `{ "require_header": "x-api-version", "greeting": "hello" }`.

use serde::Deserialize;
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Request, Response, export_plugin, log,
};

/// The route's config for this plugin.
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
    require_header: String,
    greeting: String,
}

impl Plugin for Template {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        // Check the config here: an error refuses the route before it serves traffic.
        if !Headers::is_valid_name(&config.require_header) {
            return Err(format!(
                "require_header: {:?} is not a valid header name",
                config.require_header
            ));
        }
        if !Headers::is_valid_value(config.greeting.as_bytes()) {
            return Err("greeting: not a valid header value".into());
        }
        Ok(Self {
            require_header: config.require_header,
            greeting: config.greeting,
        })
    }

    fn on_request(&self, mut request: Request, ctx: &mut Context) -> Action {
        if !request.headers.contains(&self.require_header) {
            log::info(&format!("refused: no {}", self.require_header));
            let message = format!("the {} header is required", self.require_header);
            return Action::Respond(Response::bad_request(&message, ctx));
        }
        request.headers.set("x-greeting", self.greeting.as_str());
        Action::Continue(request)
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn greets_requests_that_carry_the_header() {
        let mut harness =
            Harness::<Template>::new(r#"{"require_header": "x-api-version"}"#).unwrap();
        let action = harness.on_request(TestRequest::get("/").header("X-Api-Version", "2").build());
        let request = action.request().expect("continues");
        assert_eq!(
            request.headers.get("x-greeting"),
            Some("hello from wasmgate")
        );
    }

    #[test]
    fn refuses_requests_without_it() {
        let mut harness =
            Harness::<Template>::new(r#"{"require_header": "x-api-version"}"#).unwrap();
        let action = harness.on_request(TestRequest::get("/").build());
        let response = action.response().expect("answers");
        assert_eq!(response.status, 400);
        let envelope: serde_json::Value =
            serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
        assert_eq!(envelope["code"], "VALIDATION_ERROR");
        assert_eq!(harness.logs().len(), 1);
    }

    #[test]
    fn uses_the_configured_greeting() {
        let mut harness =
            Harness::<Template>::new(r#"{"require_header": "x-key", "greeting": "hi"}"#).unwrap();
        let action = harness.on_request(TestRequest::post("/orders").header("x-key", "k").build());
        assert_eq!(
            action.request().unwrap().headers.get("x-greeting"),
            Some("hi")
        );
        assert!(harness.logs().is_empty());
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
