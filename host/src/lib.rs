//! wasmgate: an HTTP API gateway whose every policy is a sandboxed WebAssembly
//! component on a per-route request/response pipeline.
//!
//! The request's path through the crate: `server` (listener, limits, request id) →
//! `router` (route lookup on the `normalize`d path) → `pipeline` (request-phase plugins,
//! then `upstream`, then response-phase plugins) → client. The `plugin` runtime runs
//! the WebAssembly components; `state` keeps their key-value data; `snapshot` builds
//! everything a request needs from a validated `config`, and `reload` (triggered by
//! `watch`, `SIGHUP` or the `admin` API) swaps in a new one; `error` is the one place a
//! failure becomes the JSON envelope.

pub mod admin;
pub mod allowlist;
pub mod cli;
pub mod client_body;
pub mod clock;
pub mod compress;
pub mod config;
pub mod connection;
pub mod error;
pub mod error_code;
pub mod framing;
pub mod health;
pub mod logging;
pub mod message_rules;
pub mod metric_rules;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod plugin;
pub mod reload;
pub mod request_id;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod watch;
pub mod websocket;
