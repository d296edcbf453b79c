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
//!     fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
//!         if request.headers.contains(&self.header) {
//!             ctx.set_var("checked", "yes");
//!             Action::Continue(request)
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
//! let action = harness.on_request(TestRequest::get("/").build());
//! assert_eq!(action.response().unwrap().status, 403);
//! ```
//!
//! How the gateway calls a plugin, per route that uses it:
//!
//! 1. [`Plugin::new`], once per instance, with the route's config parsed into
//!    [`Plugin::Config`]; an error (or a parse error, which names the field) refuses the
//!    route's config before it serves traffic. [`Plugin::settings`] is read right after.
//! 2. [`Plugin::on_request`], per request, in chain order: [`Action::Continue`] passes
//!    the (possibly changed) [`Request`] on; [`Action::Respond`] answers the client,
//!    skipping later plugins and the upstream.
//! 3. [`Plugin::on_response`], in reverse chain order, only for plugins whose
//!    `on_request` continued: change the [`Response`] or pass it on.
//!
//! A panic, a trap or output the gateway refuses (an invalid header, a status out of
//! range) fails that request with a 500 `PLUGIN_ERROR` envelope and discards the
//! instance.
//!
//! A plugin that takes no config uses [`NoConfig`] (accepts `{}`, refuses any field).
//! Errors for the client are [`Response::error`] and its shortcuts, which write the
//! gateway's JSON envelope.
//!
//! What the host gives a plugin: [`log`] (lines in the gateway's log, tagged with the
//! plugin, route, request id and trace id), [`clock`], [`kv`] (a key-value store kept
//! by the gateway), [`http`] (calls to services the operator granted) and [`metrics`]
//! (counters, gauges and histograms on the gateway's `/metrics`). Nothing else: no
//! files, no sockets, no environment.
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
mod envelope;
mod headers;
mod host;
mod message;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub mod identity;

pub use envelope::ErrorCode;
pub use headers::Headers;
pub use host::{clock, http, kv, log, metrics, secrets};
pub use message::{Action, Context, Request, Response, Settings, UpstreamCall};

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

    /// What the plugin needs from the host for this route (e.g. buffered bodies).
    fn settings(&self) -> Settings {
        Settings::default()
    }

    /// The request phase: pass the request on (possibly changed) or answer it.
    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        let _ = ctx;
        Action::Continue(request)
    }

    /// The response phase: runs only if this plugin's `on_request` continued.
    fn on_response(&self, response: Response, ctx: &mut Context) -> Response {
        let _ = ctx;
        response
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
/// instance's later calls; `on-request` and `on-response` call the hooks. A call before
/// a successful `configure` answers 500 `PLUGIN_ERROR`. On other targets it only checks
/// that the type fits, so `cargo test` builds the same crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // On native targets (tests), check the glue and mark the type as used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            let _ = $crate::__private::configure::<$plugin>;
            let _ = $crate::__private::on_request::<$plugin>;
            let _ = $crate::__private::on_response::<$plugin>;
        };

        // The export glue's `unsafe` comes from the SDK's macros, so the plugin crate
        // may keep `#![forbid(unsafe_code)]`.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __wasmgate_plugin_export {
            use super::*;
            use $crate::__bindings::exports::wasmgate::plugin::handler as __handler;

            struct Export;

            impl __handler::Guest for Export {
                fn configure(
                    config: ::std::string::String,
                ) -> ::std::result::Result<__handler::Settings, ::std::string::String> {
                    $crate::__private::configure::<$plugin>(&config)
                }

                fn on_request(ctx: __handler::Context, request: __handler::Request) -> __handler::Action {
                    $crate::__private::on_request::<$plugin>(ctx, request)
                }

                fn on_response(
                    ctx: __handler::Context,
                    response: __handler::Response,
                ) -> __handler::Response {
                    $crate::__private::on_response::<$plugin>(ctx, response)
                }
            }

            $crate::__bindings::__export_wasmgate_plugin!(Export with_types_in $crate::__bindings);
        }
    };
}
