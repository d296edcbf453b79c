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
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let parsed: P::Config =
        serde_json::from_str(config).map_err(|error| format!("invalid config: {error}"))?;
    P::new(parsed)
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
