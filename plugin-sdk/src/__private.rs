//! Glue between the WIT exports and a [`Plugin`]: used by [`crate::export_plugin!`]
//! and by the test harness, so both configure and call a plugin the same way.
//! Not part of the public API.

use std::any::Any;
use std::cell::RefCell;

use crate::__bindings::wasmgate::plugin::types as wit;
use crate::{Context, ErrorCode, Plugin, Response};

thread_local! {
    /// The configured plugin of this instance.
    static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Parses `config` (JSON; empty means `{}`) and makes the plugin.
pub fn build<P: Plugin>(config: &str) -> Result<P, String> {
    P::new(parse(config)?)
}

/// Parses `config` into `C`; an error names the field (as a path like
/// `rules[0].header.name`) and the line and column.
fn parse<C: serde::de::DeserializeOwned>(config: &str) -> Result<C, String> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let mut deserializer = serde_json::Deserializer::from_str(config);
    let parsed =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            match error.path().to_string().as_str() {
                "." => format!("invalid config: {}", error.inner()),
                path => format!("invalid config at `{path}`: {}", error.inner()),
            }
        })?;
    deserializer
        .end()
        .map_err(|error| format!("invalid config: {error}"))?;
    Ok(parsed)
}

/// The `configure` export.
pub fn configure<P: Plugin>(config: &str) -> Result<wit::Settings, String> {
    let plugin = build::<P>(config)?;
    let settings = plugin.settings();
    PLUGIN.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
    Ok(settings.into())
}

fn with_plugin<P: Plugin, R>(f: impl FnOnce(&P) -> R) -> Option<R> {
    PLUGIN.with(|slot| {
        let slot = slot.borrow();
        slot.as_ref()?.downcast_ref::<P>().map(f)
    })
}

fn not_configured(ctx: &Context) -> Response {
    Response::from_code(ErrorCode::PluginError, "plugin is not configured", ctx)
}

/// The `on-request` export.
pub fn on_request<P: Plugin>(ctx: wit::Context, request: wit::Request) -> wit::Action {
    let mut ctx = Context::from(ctx);
    with_plugin::<P, _>(|plugin| plugin.on_request(request.into(), &mut ctx))
        .unwrap_or_else(|| crate::Action::Respond(not_configured(&ctx)))
        .into()
}

/// The `on-response` export.
pub fn on_response<P: Plugin>(ctx: wit::Context, response: wit::Response) -> wit::Response {
    let mut ctx = Context::from(ctx);
    with_plugin::<P, _>(|plugin| plugin.on_response(response.into(), &mut ctx))
        .unwrap_or_else(|| not_configured(&ctx))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, NoConfig, Request};

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        name: String,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        status: u16,
    }

    #[test]
    fn config_errors_name_the_field_and_the_place() {
        let error = parse::<Config>(r#"{"name": "a", "rules": [{"status": "x"}]}"#).unwrap_err();
        assert_eq!(
            error,
            "invalid config at `rules[0].status`: invalid type: string \"x\", expected u16 at line 1 column 38"
        );
        let error = parse::<Config>("{\n\"name\": \"a\",\n\"nmae\": 1}").unwrap_err();
        assert!(
            error.starts_with("invalid config at `nmae`: unknown field `nmae`"),
            "{error}"
        );
        assert!(error.ends_with("at line 3 column 6"), "{error}");
        let error = parse::<Config>("{}").unwrap_err();
        assert_eq!(
            error,
            "invalid config: missing field `name` at line 1 column 2"
        );
        assert!(
            parse::<Config>(r#"{"name": "a"} x"#).is_err(),
            "trailing text"
        );
    }

    #[test]
    fn no_config_takes_an_empty_object_or_nothing() {
        assert_eq!(parse::<NoConfig>("{}"), Ok(NoConfig {}));
        assert_eq!(parse::<NoConfig>("  "), Ok(NoConfig {}));
        let error = parse::<NoConfig>(r#"{"x": 1}"#).unwrap_err();
        assert!(error.contains("unknown field `x`"), "{error}");
    }

    struct Upper;

    impl Plugin for Upper {
        type Config = NoConfig;

        fn new(_: NoConfig) -> Result<Self, String> {
            Ok(Upper)
        }

        fn settings(&self) -> crate::Settings {
            crate::Settings {
                request_body: true,
                ..Default::default()
            }
        }

        fn on_request(&self, mut request: Request, _: &mut Context) -> Action {
            request.method = request.method.to_ascii_lowercase();
            Action::Continue(request)
        }
    }

    fn wit_ctx() -> wit::Context {
        wit::Context {
            request_id: "req-1".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            route: "r".into(),
            client_addr: "127.0.0.1:1".into(),
            method: "GET".into(),
            path: "/".into(),
            received_ns: 7,
            params: Vec::new(),
            vars: Vec::new(),
            upstream: Some(wit::UpstreamCall {
                service: "users".into(),
                endpoint: "http://127.0.0.1:9001".into(),
            }),
        }
    }

    fn wit_request() -> wit::Request {
        wit::Request {
            method: "GET".into(),
            path: "/".into(),
            query: None,
            headers: vec![("x-a".into(), b"1".to_vec())],
            body: None,
        }
    }

    #[test]
    fn the_context_comes_over_whole() {
        let ctx = Context::from(wit_ctx());
        assert_eq!(ctx.request_id, "req-1");
        assert_eq!(ctx.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!((ctx.method.as_str(), ctx.path.as_str()), ("GET", "/"));
        assert_eq!(ctx.received_ns, 7);
        assert_eq!(
            ctx.upstream,
            Some(crate::UpstreamCall::new("users", "http://127.0.0.1:9001"))
        );
    }

    #[test]
    fn calls_before_configure_answer_a_plugin_error() {
        PLUGIN.with(|slot| slot.borrow_mut().take());
        let wit::Action::Respond(response) = on_request::<Upper>(wit_ctx(), wit_request()) else {
            panic!("an unconfigured plugin must answer");
        };
        assert_eq!(response.status, 500);
        let body: serde_json::Value = serde_json::from_slice(&response.body.unwrap()).unwrap();
        assert_eq!(body["code"], "PLUGIN_ERROR");
        assert_eq!(body["request_id"], "req-1");
        let response = on_response::<Upper>(wit_ctx(), Response::new(200).into());
        assert_eq!(response.status, 500);
    }

    #[test]
    fn configure_keeps_the_plugin_for_later_calls() {
        assert!(configure::<Upper>(r#"{"x": 1}"#).is_err());
        let settings = configure::<Upper>("{}").unwrap();
        assert!(settings.request_body && !settings.response_body);
        let wit::Action::Continue(request) = on_request::<Upper>(wit_ctx(), wit_request()) else {
            panic!("a configured plugin continues");
        };
        assert_eq!(request.method, "get");
        assert_eq!(request.headers, [("x-a".to_string(), b"1".to_vec())]);
    }
}
