//! The host's capabilities, the same functions on both targets: on `wasm32` they call
//! the gateway's imports; elsewhere they reach the [`crate::testing`] harness's
//! in-memory state for the current thread.

#[cfg(target_arch = "wasm32")]
use crate::__bindings::wasmgate::plugin as wit;

/// Sets a chain variable (used by [`crate::Context::set_var`]).
pub(crate) fn set_var(name: &str, value: &str) {
    #[cfg(target_arch = "wasm32")]
    wit::vars::set(name, value);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with_host(|host| host.set_var(name, value));
}

/// Log lines written into the gateway's log, tagged with the plugin, route and
/// request id.
pub mod log {
    #[cfg(target_arch = "wasm32")]
    use crate::__bindings::wasmgate::plugin::log as wit;

    /// Severity of a log line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Level {
        /// Fine-grained detail.
        Trace,
        /// Debugging information.
        Debug,
        /// Normal operation.
        Info,
        /// Something unexpected the plugin handled.
        Warn,
        /// A failure.
        Error,
    }

    /// Writes `message` at `level`.
    pub fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        wit::write(
            match level {
                Level::Trace => wit::Level::Trace,
                Level::Debug => wit::Level::Debug,
                Level::Info => wit::Level::Info,
                Level::Warn => wit::Level::Warn,
                Level::Error => wit::Level::Error,
            },
            message,
        );
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.log(level, message));
    }

    /// Writes at [`Level::Trace`].
    pub fn trace(message: &str) {
        write(Level::Trace, message);
    }

    /// Writes at [`Level::Debug`].
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }

    /// Writes at [`Level::Info`].
    pub fn info(message: &str) {
        write(Level::Info, message);
    }

    /// Writes at [`Level::Warn`].
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }

    /// Writes at [`Level::Error`].
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
}

/// Time, from the host.
pub mod clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_unix_ms() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::__bindings::wasmgate::plugin::clock::now_unix_ms();
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.now_ms())
    }

    /// Nanoseconds from a fixed point; only differences are meaningful.
    pub fn monotonic_ns() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return crate::__bindings::wasmgate::plugin::clock::monotonic_ns();
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.now_ms().saturating_mul(1_000_000))
    }

    /// `unix_ms` (e.g. from [`now_unix_ms`]) as RFC 3339 UTC with milliseconds, e.g.
    /// `2026-11-22T13:50:00.123Z`: the format of the gateway's own timestamps.
    pub fn rfc3339_utc(unix_ms: u64) -> String {
        crate::envelope::rfc3339_utc(unix_ms)
    }
}

/// A key-value store kept by the gateway, namespaced per plugin (or shared where the
/// operator grants a namespace to several plugins). Survives restarts.
pub mod kv {
    use std::time::Duration;

    #[cfg(target_arch = "wasm32")]
    use crate::__bindings::wasmgate::plugin::kv as wit;

    fn ms(ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|t| t.as_millis().min(u128::from(u64::MAX)) as u64)
    }

    /// The value under `key`, if present and not expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| Ok(host.kv_get(key)))
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), String> {
        #[cfg(target_arch = "wasm32")]
        return wit::set(key, value, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_set(key, value, ms(ttl));
            Ok(())
        })
    }

    /// Atomically adds `delta` to the integer under `key` (absent counts as 0) and
    /// returns the new value; `ttl` applies only when the key is created.
    pub fn incr(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::incr(key, delta, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.kv_incr(key, delta, ms(ttl)))
    }

    /// Removes `key`; whether it was there.
    pub fn delete(key: &str) -> Result<bool, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| Ok(host.kv_delete(key)))
    }

    /// Stores `value` under `key` only if no live value is there, atomically; whether
    /// it was stored. Claims a unique name (a username, an email) even when several
    /// instances race for it.
    pub fn insert(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::insert(key, value, ms(ttl));
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| Ok(host.kv_insert(key, value, ms(ttl))))
    }

    /// Up to `limit` (at most 1000) live entries whose keys start with `prefix`, in key
    /// order, after the key `after` when given: pass the last key of a page to get the
    /// next one.
    pub fn scan(
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        #[cfg(target_arch = "wasm32")]
        return wit::scan(prefix, after, limit);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| Ok(host.kv_scan(prefix, after, limit.min(1000) as usize)))
    }
}

/// Secrets the operator grants the plugin by name (`[plugins.NAME] secrets = { jwt =
/// { env = "JWT_SECRET" } }` in the gateway config), so keys stay out of route configs.
/// Read them in [`crate::Plugin::new`]; the gateway reads them again on every reload.
pub mod secrets {
    /// The secret granted under `name`, or `None` when none is.
    pub fn get(name: &str) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        return crate::__bindings::wasmgate::plugin::secrets::get(name);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.secret(name))
    }
}

/// Outbound HTTP calls to services the operator granted this plugin
/// (`http = ["name"]` under `[plugins.NAME]`).
pub mod http {
    /// A request to a granted service.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct OutboundRequest {
        /// The service's name in the gateway config.
        pub service: String,
        /// The method, e.g. `POST`.
        pub method: String,
        /// Path and query, e.g. `/v3/auth/tokens`.
        pub path_and_query: String,
        /// Request headers.
        pub headers: crate::Headers,
        /// The body (empty for none).
        pub body: Vec<u8>,
    }

    impl OutboundRequest {
        /// A request for `method` `path_and_query` on `service`, no headers, no body.
        pub fn new(service: &str, method: &str, path_and_query: &str) -> Self {
            Self {
                service: service.into(),
                method: method.into(),
                path_and_query: path_and_query.into(),
                ..Self::default()
            }
        }
    }

    /// A service's answer.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct OutboundResponse {
        /// The status code.
        pub status: u16,
        /// Response headers.
        pub headers: crate::Headers,
        /// The whole body.
        pub body: Vec<u8>,
    }

    /// Sends `request` and waits for the whole response (within the plugin's deadline).
    pub fn send(request: OutboundRequest) -> Result<OutboundResponse, String> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::__bindings::wasmgate::plugin::http as wit;
            let response = wit::send(&wit::OutboundRequest {
                service: request.service,
                method: request.method,
                path_and_query: request.path_and_query,
                headers: request.headers.into_list(),
                body: request.body,
            })?;
            Ok(OutboundResponse {
                status: response.status,
                headers: crate::Headers::from_list(response.headers),
                body: response.body,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.http(&request))
    }
}

/// Counters, gauges and histograms the gateway exports on its `/metrics` endpoint, each
/// series labelled `plugin="NAME"` besides the labels given.
///
/// The gateway refuses a call that breaks one of its rules, and the error says which:
/// a name is `[a-z_][a-z0-9_]*`, at most 64 bytes, and does not start with a prefix the
/// gateway uses itself (`http_`, `plugin_`, `upstream_`, `service_`, `wasmgate_`,
/// `process_`); a name keeps the kind (counter, gauge, histogram) it was first used
/// with; at most 4 labels, each named `[a-z_][a-z0-9_]*` (not `plugin`, none twice)
/// with a value of at most 128 bytes; at most 100 label combinations per metric; gauge
/// and histogram values are finite. The [`crate::testing`] harness applies the same
/// rules. Keep label values few and bounded (a route, a status class), never a user
/// id or a path.
///
/// ```
/// use wasmgate_plugin_sdk::metrics;
///
/// metrics::counter_add("rate_limit_exceeded_total", &[("route", "users")], 1).ok();
/// metrics::histogram_observe("auth_lookup_seconds", &[], 0.012).ok();
/// assert!(metrics::gauge_set("http_in_flight", &[], 1.0).is_err(), "a reserved prefix");
/// ```
pub mod metrics {
    /// Adds `value` to the counter `name` (end the name in `_total`, e.g.
    /// `rate_limit_exceeded_total`).
    pub fn counter_add(name: &str, labels: &[(&str, &str)], value: u64) -> Result<(), String> {
        record(name, labels, Value::Counter(value))
    }

    /// Sets the gauge `name` to `value`.
    pub fn gauge_set(name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), String> {
        record(name, labels, Value::Gauge(value))
    }

    /// Records `value` in the histogram `name`. The buckets are Prometheus's defaults
    /// (5 ms to 10 s), so observe seconds and end the name in `_seconds`.
    pub fn histogram_observe(
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), String> {
        record(name, labels, Value::Histogram(value))
    }

    /// A value to record, of one of the three kinds.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(crate) enum Value {
        Counter(u64),
        Gauge(f64),
        Histogram(f64),
    }

    fn record(name: &str, labels: &[(&str, &str)], value: Value) -> Result<(), String> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        #[cfg(target_arch = "wasm32")]
        {
            use crate::__bindings::wasmgate::plugin::metrics as wit;
            match value {
                Value::Counter(v) => wit::counter_add(name, &labels, v),
                Value::Gauge(v) => wit::gauge_set(name, &labels, v),
                Value::Histogram(v) => wit::histogram_observe(name, &labels, v),
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.metric(name, labels, value))
    }
}
