//! Write wasmgate plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`] and registered with
//! [`export_plugin!`]. Build the crate for `wasm32-wasip2` and drop the `.wasm` into
//! the gateway's plugin directory; test it natively with [`testing::Harness`].
//!
//! 1. Make a library crate with `crate-type = ["cdylib", "rlib"]` that depends on this
//!    crate, `serde` (with `derive`) and, for tests, `serde_json`.
//! 2. Write the plugin: a config type, a [`Plugin`] impl, one [`export_plugin!`] line.
//! 3. `cargo test`: the [`testing`] harness runs it natively with in-memory host imports.
//! 4. `cargo build --profile plugin --target wasm32-wasip2` (or `--release` with
//!    `strip = true`): the `.wasm` is a component exporting `wasmgate:plugin/handler`.
//!
//! ```
//! use wasmgate_plugin_sdk::{export_plugin, Action, Context, Plugin, Request, Response};
//!
//! /// Refuses requests without a configured header.
//! struct RequireHeader {
//!     header: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     header: String,
//! }
//!
//! impl Plugin for RequireHeader {
//!     type Config = Config;
//!
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(Self { header: config.header })
//!     }
//!
//!     fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
//!         if request.headers.contains(&self.header) {
//!             ctx.set_var("checked", "yes");
//!             Action::Continue
//!         } else {
//!             Action::Respond(Response::forbidden(&format!("{} is required", self.header), ctx))
//!         }
//!     }
//! }
//!
//! export_plugin!(RequireHeader);
//!
//! // In `cargo test`, no gateway needed:
//! use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
//! let mut harness = Harness::<RequireHeader>::new(r#"{"header": "x-key"}"#).unwrap();
//! let outcome = harness.on_request(TestRequest::get("/"));
//! assert_eq!(outcome.response().unwrap().status, 403);
//! ```
//!
//! How the gateway calls a plugin, per route that uses it:
//!
//! 1. [`Plugin::new`], once per instance, with the route's config parsed into
//!    [`Plugin::Config`]; an error (or a parse error, which names the field) refuses the
//!    route's config before it serves traffic. [`Plugin::settings`] is read right after.
//! 2. [`Plugin::on_request`], per request, in chain order, with the [`Request`] being
//!    served: [`Action::Continue`] passes it on (as changed), [`Action::ContinueTo`]
//!    also sends it to another [`Target`], [`Action::Respond`] answers the client,
//!    skipping later plugins and the upstream.
//! 3. [`Plugin::on_response`], in reverse chain order, only for plugins whose
//!    `on_request` continued: change the [`Reply`] in place.
//! 4. [`Plugin::on_log`], after the client has its answer, for every request on the
//!    route (failed ones too), if [`Settings::log`] asks for it: a [`LogEntry`].
//!
//! The request and reply are handles on the gateway's copy, not copies: each read or
//! change is a call into the gateway, checked there, so a plugin pays only for what it
//! touches. A change the gateway refuses (an invalid header, an unnormalised path)
//! fails the request with a 500 `PLUGIN_ERROR` envelope once the hook returns, as
//! does a panic or trap (which also discards the instance).
//!
//! A plugin that takes no config uses [`NoConfig`] (accepts `{}`, refuses any field).
//! Errors for the client are [`Response::error`] and its shortcuts, which write the
//! gateway's JSON envelope.
//!
//! What the host gives a plugin: [`log`] (lines in the gateway's log with structured
//! fields, tagged with the plugin, route, request id and trace id), [`clock`], [`kv`]
//! (a key-value store kept by the gateway, with durable writes), [`http`] (calls to
//! services the operator granted), [`secrets`] and [`metrics`] (counters, gauges and
//! histograms on the gateway's `/metrics`). Nothing else: no files, no sockets, no
//! environment.
//!
//! What a plugin knows about the request besides the request itself is its
//! [`Context`]: the request id and trace id, the route, the client's address, the
//! method and path as received, when it was received ([`Context::elapsed`]), path
//! parameters, variables set by earlier plugins and, in `on_response`, the upstream
//! that answered ([`UpstreamCall`]).
//!
//! An instance may serve many requests, one at a time: keep request data in the
//! arguments, not in globals.

#![deny(missing_docs)]

// The code wit-bindgen generates: the one place in the SDK with `unsafe` (the canonical
// ABI glue), hence the `allow`. Public only so that `export_plugin!` can reach it from
// the plugin's crate; plugin authors never name it.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
#[path = "bindings.rs"]
pub mod __bindings;

#[doc(hidden)]
pub mod __private;
mod convert;
mod envelope;
/// The envelope's code table, shared with the gateway (one file, so the two cannot
/// drift).
#[path = "../../host/src/error_code.rs"]
mod error_code;
mod exchange;
mod headers;
mod host;
mod message;
/// The header, query and status rules, shared with the gateway (one file, so the two
/// cannot drift).
#[path = "../../host/src/message_rules.rs"]
#[allow(dead_code)]
mod rules;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub mod identity;
pub mod paths;
pub mod query;
pub mod websocket;

pub use envelope::ErrorCode;
pub use exchange::EditError;
pub use headers::Headers;
pub use host::{clock, http, kv, log, metrics, secrets};
pub use message::{
    Action, Context, Failure, FailureKind, LogEntry, Method, Reply, Request, Response, Settings,
    Target, UpstreamCall,
};

/// The config of a plugin that takes none: accepts `{}` (what the gateway sends when a
/// route gives no `config`) and refuses any field.
///
/// ```
/// # use wasmgate_plugin_sdk::{NoConfig, Plugin};
/// struct Quiet;
/// impl Plugin for Quiet {
///     type Config = NoConfig;
///     fn new(_: NoConfig) -> Result<Self, String> {
///         Ok(Quiet)
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// A wasmgate plugin. Implement it for your type and register the type with
/// [`export_plugin!`]. Every hook has a default that passes things through.
pub trait Plugin: Sized + 'static {
    /// The route's configuration for this plugin, parsed from the `config` table of
    /// the route's `[[routes.plugins]]` entry (`{}` when there is none). Use
    /// `#[serde(deny_unknown_fields)]` so typos are refused, and [`NoConfig`] when the
    /// plugin takes none. A parse error refuses the route's config with a message that
    /// names the field, e.g. ``invalid config at `rules[0].status`: invalid type: …``.
    type Config: serde::de::DeserializeOwned;

    /// Makes the plugin from its configuration. An error refuses the route's config
    /// before it serves traffic; the message is shown to the operator.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// What the plugin needs from the host for this route (bodies, the log phase).
    fn settings(&self) -> Settings {
        Settings::default()
    }

    /// The request phase: change the request and pass it on, send it elsewhere, or
    /// answer it.
    fn on_request(&self, request: &mut Request<'_>, ctx: &mut Context<'_>) -> Action {
        let _ = (request, ctx);
        Action::Continue
    }

    /// The response phase: runs only if this plugin's `on_request` continued (and the
    /// plugin is not [`Settings::request_only`]). Change the reply in place.
    fn on_response(&self, response: &mut Reply<'_>, ctx: &mut Context<'_>) {
        let _ = (response, ctx);
    }

    /// The log phase: runs after the client has its answer, for every request on the
    /// route, when [`Settings::log`] is on. Nothing here can change the response.
    fn on_log(&self, entry: &LogEntry) {
        let _ = entry;
    }

    /// A message the client sent on a WebSocket this plugin watches (it called
    /// [`Context::watch_messages`] in `on_request`), before the message goes upstream.
    /// `request` is the handshake as the request phase left it: until the upstream is
    /// connected, headers set here (an identity) go into its handshake. The default
    /// passes the message on and stops watching.
    fn on_message(
        &self,
        message: &websocket::SocketMessage,
        request: &mut Request<'_>,
        ctx: &mut Context<'_>,
    ) -> websocket::Verdict {
        let _ = (message, request, ctx);
        websocket::Verdict::Release
    }
}

/// Registers a [`Plugin`] type as the component's exports. Use once per crate.
///
/// ```ignore
/// wasmgate_plugin_sdk::export_plugin!(MyPlugin);
/// ```
///
/// On `wasm32` it exports `wasmgate:plugin/handler`: `configure` parses the JSON config
/// into [`Plugin::Config`], calls [`Plugin::new`] and keeps the plugin for the
/// instance's later calls; `on-request`, `on-response` and `on-log` call the hooks. A
/// call before a successful `configure` fails with `PLUGIN_ERROR`. On other targets it
/// only checks that the type fits, so `cargo test` builds the same crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // On native targets (tests), check the glue and mark the type as used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $crate::__private::configure::<$plugin>;
            let _ = $crate::__private::on_log::<$plugin>;
        };

        // The export glue's `unsafe` comes from the SDK's macros, so the plugin crate
        // may keep `#![forbid(unsafe_code)]`.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __wasmgate_plugin_export {
            use super::*;
            use $crate::__bindings::exports::wasmgate::plugin::handler as __handler;
            use $crate::__bindings::exports::wasmgate::plugin::websocket as __websocket;

            struct Export;

            impl __handler::Guest for Export {
                fn configure(
                    config: ::std::string::String,
                ) -> ::std::result::Result<__handler::Settings, ::std::string::String> {
                    $crate::__private::configure::<$plugin>(&config)
                }

                fn on_request(
                    exchange: &__handler::Exchange,
                ) -> ::std::result::Result<__handler::Action, ::std::string::String> {
                    $crate::__private::on_request::<$plugin>(exchange)
                }

                fn on_response(
                    exchange: &__handler::Exchange,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::__private::on_response::<$plugin>(exchange)
                }

                fn on_log(entry: __handler::LogEntry) {
                    $crate::__private::on_log::<$plugin>(entry)
                }
            }

            impl __websocket::Guest for Export {
                fn on_message(
                    exchange: &__websocket::Exchange,
                    message: __websocket::SocketMessage,
                ) -> ::std::result::Result<__websocket::MessageVerdict, ::std::string::String> {
                    $crate::__private::on_message::<$plugin>(exchange, message)
                }
            }

            $crate::__bindings::__export_wasmgate_plugin!(Export with_types_in $crate::__bindings);
        }
    };
}
