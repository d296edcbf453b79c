//! Glue between the WIT exports and a [`Plugin`]: used by [`crate::export_plugin!`]
//! and by the test harness, so both configure and call a plugin the same way.
//! Not part of the public API.

use std::any::Any;
use std::cell::RefCell;

use crate::__bindings::wasmgate::plugin::types as wit;
use crate::exchange::{Ex, take_refused};
use crate::{Action, Context, LogEntry, Plugin, Reply, Request};

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

fn with_plugin<P: Plugin, R>(f: impl FnOnce(&P) -> R) -> Result<R, String> {
    PLUGIN.with(|slot| {
        let slot = slot.borrow();
        slot.as_ref()
            .and_then(|plugin| plugin.downcast_ref::<P>())
            .map(f)
            .ok_or_else(|| "the plugin is not configured".to_string())
    })
}

/// Runs `on_request` on `ex`; the first edit the gateway refused becomes the error.
pub(crate) fn request_hook<P: Plugin>(plugin: &P, ex: Ex<'_>) -> Result<Action, String> {
    let _ = take_refused();
    let action = plugin.on_request(&mut Request::new(ex), &mut Context::new(ex));
    match take_refused() {
        Some(refused) => Err(refused.to_string()),
        None => Ok(action),
    }
}

/// Runs `on_response` on `ex`; the first edit the gateway refused becomes the error.
pub(crate) fn response_hook<P: Plugin>(plugin: &P, ex: Ex<'_>) -> Result<(), String> {
    let _ = take_refused();
    plugin.on_response(&mut Reply::new(ex), &mut Context::new(ex));
    match take_refused() {
        Some(refused) => Err(refused.to_string()),
        None => Ok(()),
    }
}

/// The `on-request` export.
#[cfg(target_arch = "wasm32")]
pub fn on_request<P: Plugin>(exchange: &wit::Exchange) -> Result<wit::Action, String> {
    with_plugin::<P, _>(|plugin| request_hook(plugin, Ex::new(exchange)))?.map(Into::into)
}

/// The `on-response` export.
#[cfg(target_arch = "wasm32")]
pub fn on_response<P: Plugin>(exchange: &wit::Exchange) -> Result<(), String> {
    with_plugin::<P, _>(|plugin| response_hook(plugin, Ex::new(exchange)))?
}

/// Runs `on_message` on `ex` with `message`; the first edit the gateway refused
/// becomes the error.
pub(crate) fn message_hook<P: Plugin>(
    plugin: &P,
    ex: Ex<'_>,
    message: &crate::websocket::SocketMessage,
) -> Result<crate::websocket::Verdict, String> {
    let _ = take_refused();
    let verdict = plugin.on_message(message, &mut Request::new(ex), &mut Context::new(ex));
    match take_refused() {
        Some(refused) => Err(refused.to_string()),
        None => Ok(verdict),
    }
}

/// The `websocket.on-message` export.
#[cfg(target_arch = "wasm32")]
pub fn on_message<P: Plugin>(
    exchange: &wit::Exchange,
    message: wit::SocketMessage,
) -> Result<wit::MessageVerdict, String> {
    let message = message.into();
    with_plugin::<P, _>(|plugin| message_hook(plugin, Ex::new(exchange), &message))?.map(Into::into)
}

/// The `on-log` export.
pub fn on_log<P: Plugin>(entry: wit::LogEntry) {
    let entry = LogEntry::from(entry);
    let _ = with_plugin::<P, _>(|plugin| plugin.on_log(&entry));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoConfig;

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

    struct Quiet;

    impl Plugin for Quiet {
        type Config = NoConfig;

        fn new(_: NoConfig) -> Result<Self, String> {
            Ok(Quiet)
        }

        fn settings(&self) -> crate::Settings {
            crate::Settings {
                request_body: true,
                log: true,
                ..Default::default()
            }
        }
    }

    #[test]
    fn calls_before_configure_are_errors_and_configure_keeps_the_plugin() {
        PLUGIN.with(|slot| slot.borrow_mut().take());
        assert!(with_plugin::<Quiet, _>(|_| ()).is_err());
        assert!(configure::<Quiet>(r#"{"x": 1}"#).is_err());
        let settings = configure::<Quiet>("{}").unwrap();
        assert!(settings.request_body && !settings.response_body && settings.log);
        assert!(with_plugin::<Quiet, _>(|_| ()).is_ok());
    }
}
