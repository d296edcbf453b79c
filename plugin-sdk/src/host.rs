//! The host's capabilities, the same functions on both targets: on `wasm32` they call
//! the gateway's imports; elsewhere they reach the [`crate::testing`] harness's
//! in-memory state for the current thread.

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

    /// The value of a structured field of a log line ([`event`]).
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        /// Text.
        Text(String),
        /// A signed integer.
        Int(i64),
        /// A floating-point number (non-finite ones are written as `null`).
        Float(f64),
        /// True or false.
        Flag(bool),
    }

    impl From<&str> for Value {
        fn from(v: &str) -> Self {
            Self::Text(v.to_string())
        }
    }

    impl From<String> for Value {
        fn from(v: String) -> Self {
            Self::Text(v)
        }
    }

    impl From<i64> for Value {
        fn from(v: i64) -> Self {
            Self::Int(v)
        }
    }

    impl From<u64> for Value {
        fn from(v: u64) -> Self {
            i64::try_from(v).map_or(Self::Float(v as f64), Self::Int)
        }
    }

    impl From<u16> for Value {
        fn from(v: u16) -> Self {
            Self::Int(v.into())
        }
    }

    impl From<f64> for Value {
        fn from(v: f64) -> Self {
            Self::Float(v)
        }
    }

    impl From<bool> for Value {
        fn from(v: bool) -> Self {
            Self::Flag(v)
        }
    }

    /// Writes `message` at `level`.
    pub fn write(level: Level, message: &str) {
        event(level, message, &[]);
    }

    /// Writes `message` at `level` with structured `fields`: with `LOG_FORMAT=json`
    /// each is a JSON field of the line, on the console `name=value` after the
    /// message. Names are `[a-z_][a-z0-9_]*`; at most 32 fields.
    ///
    /// ```
    /// use wasmgate_plugin_sdk::log::{self, Level};
    /// log::event(Level::Info, "login_success", &[("user", "alice".into()), ("attempts", 1i64.into())]);
    /// ```
    pub fn event(level: Level, message: &str, fields: &[(&str, Value)]) {
        #[cfg(target_arch = "wasm32")]
        {
            let fields: Vec<(String, wit::Value)> = fields
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::Text(v) => wit::Value::Text(v.clone()),
                        Value::Int(v) => wit::Value::Int(*v),
                        Value::Float(v) => wit::Value::Float(*v),
                        Value::Flag(v) => wit::Value::Flag(*v),
                    };
                    (name.to_string(), value)
                })
                .collect();
            wit::write(
                match level {
                    Level::Trace => wit::Level::Trace,
                    Level::Debug => wit::Level::Debug,
                    Level::Info => wit::Level::Info,
                    Level::Warn => wit::Level::Warn,
                    Level::Error => wit::Level::Error,
                },
                message,
                &fields,
            );
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| host.log(level, message, fields));
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
///
/// Writes reach the disk within a fraction of a second; a process killed before then
/// loses them. The `_durable` writes (and every write to a namespace the operator
/// declares durable with `kv_durable = true`) are on disk before they return: use them
/// for what a client is told was kept (an account, an API key).
pub mod kv {
    use std::time::Duration;

    #[cfg(target_arch = "wasm32")]
    use crate::__bindings::wasmgate::plugin::kv as wit;

    /// Why a `kv` call failed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Error {
        /// [`incr`] on a value that is not a decimal integer.
        NotAnInteger,
        /// [`incr`] would overflow a signed 64-bit integer.
        Overflow,
        /// The store failed (disk full, I/O error…); the gateway's message.
        Store(String),
    }

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::NotAnInteger => f.write_str("the value is not an integer"),
                Self::Overflow => f.write_str("the increment overflows"),
                Self::Store(why) => write!(f, "state store: {why}"),
            }
        }
    }

    impl std::error::Error for Error {}

    #[cfg(target_arch = "wasm32")]
    impl From<wit::KvError> for Error {
        fn from(e: wit::KvError) -> Self {
            match e {
                wit::KvError::NotAnInteger => Self::NotAnInteger,
                wit::KvError::Overflow => Self::Overflow,
                wit::KvError::Store(why) => Self::Store(why),
            }
        }
    }

    fn ms(ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|t| t.as_millis().min(u128::from(u64::MAX)) as u64)
    }

    /// The value under `key`, if present and not expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::get(key).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            Ok(host.kv_get(key))
        })
    }

    fn write_set(
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::set(key, value, ms(ttl), durable).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            host.kv_set(key, value, ms(ttl));
            host.note_durable(durable);
            Ok(())
        })
    }

    /// Stores `value` under `key`, expiring after `ttl` if given.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        write_set(key, value, ttl, false)
    }

    /// Like [`set`], and on disk before it returns.
    pub fn set_durable(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        write_set(key, value, ttl, true)
    }

    /// Atomically adds `delta` to the integer under `key` (absent counts as 0) and
    /// returns the new value; `ttl` applies only when the key is created.
    pub fn incr(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::incr(key, delta, ms(ttl)).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            host.kv_incr(key, delta, ms(ttl))
        })
    }

    fn write_delete(key: &str, durable: bool) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::delete(key, durable).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            host.note_durable(durable);
            Ok(host.kv_delete(key))
        })
    }

    /// Removes `key`; whether it was there.
    pub fn delete(key: &str) -> Result<bool, Error> {
        write_delete(key, false)
    }

    /// Like [`delete`], and on disk before it returns (e.g. a revoked key).
    pub fn delete_durable(key: &str) -> Result<bool, Error> {
        write_delete(key, true)
    }

    fn write_insert(
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::insert(key, value, ms(ttl), durable).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            host.note_durable(durable);
            Ok(host.kv_insert(key, value, ms(ttl)))
        })
    }

    /// Stores `value` under `key` only if no live value is there, atomically; whether
    /// it was stored. Claims a unique name (a username, an email) even when several
    /// instances race for it.
    pub fn insert(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        write_insert(key, value, ttl, false)
    }

    /// Like [`insert`], and on disk before it returns (e.g. a new account).
    pub fn insert_durable(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error> {
        write_insert(key, value, ttl, true)
    }

    fn write_compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
        durable: bool,
    ) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::compare_and_swap(key, expected, value, ms(ttl), durable).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            let swapped = host.kv_compare_and_swap(key, expected, value, ms(ttl));
            if swapped {
                host.note_durable(durable);
            }
            Ok(swapped)
        })
    }

    /// Replaces the value under `key` with `value` (expiring after `ttl` if given) only
    /// if the live value there is exactly `expected` (`None`: no live value),
    /// atomically; whether it replaced it. For updates [`incr`] cannot express: read
    /// with [`get`], compute, swap, and on `false` (someone else wrote first) read again.
    /// Needs a gateway with contract 0.5.1 or later.
    ///
    /// ```no_run
    /// # use wasmgate_plugin_sdk::kv;
    /// loop {
    ///     let seen = kv::get("doubled")?;
    ///     let n: u64 = seen.as_deref().map_or(1, |v| String::from_utf8_lossy(v).parse().unwrap_or(1));
    ///     if kv::compare_and_swap("doubled", seen.as_deref(), (n * 2).to_string().as_bytes(), None)? {
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), kv::Error>(())
    /// ```
    pub fn compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        write_compare_and_swap(key, expected, value, ttl, false)
    }

    /// Like [`compare_and_swap`], and on disk before it returns when it swapped.
    pub fn compare_and_swap_durable(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        write_compare_and_swap(key, expected, value, ttl, true)
    }

    /// Up to `limit` (at most 1000) live entries whose keys start with `prefix`, in key
    /// order, after the key `after` when given: pass the last key of a page to get the
    /// next one.
    pub fn scan(
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        #[cfg(target_arch = "wasm32")]
        return wit::scan(prefix, after, limit).map_err(Into::into);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|host| {
            host.kv_fails()?;
            Ok(host.kv_scan(prefix, after, limit.min(1000) as usize))
        })
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
    use crate::{Headers, Method};

    /// A request to a granted service.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OutboundRequest {
        /// The service's name in the gateway config.
        pub service: String,
        /// The method.
        pub method: Method,
        /// Path and query, e.g. `/v3/auth/tokens`.
        pub path_and_query: String,
        /// Request headers.
        pub headers: Headers<'static>,
        /// The body (empty for none).
        pub body: Vec<u8>,
    }

    impl OutboundRequest {
        /// A request for `method` `path_and_query` on `service`, no headers, no body.
        pub fn new(service: &str, method: Method, path_and_query: &str) -> Self {
            Self {
                service: service.into(),
                method,
                path_and_query: path_and_query.into(),
                headers: Headers::new(),
                body: Vec::new(),
            }
        }
    }

    /// A service's answer.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct OutboundResponse {
        /// The status code.
        pub status: u16,
        /// Response headers.
        pub headers: Headers<'static>,
        /// The whole body.
        pub body: Vec<u8>,
    }

    /// Why a call failed.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Error {
        /// The service is unknown or not granted to this plugin; its name.
        NotGranted(String),
        /// The request is malformed; why.
        InvalidRequest(String),
        /// No endpoint of the service could be reached; why.
        Unreachable(String),
        /// The service did not answer in time: the gateway gives up with a tenth of the
        /// plugin's `timeout_ms` left, so the plugin can still answer its client.
        Timeout,
        /// The response body was over the gateway's limit.
        TooLarge,
    }

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Self::NotGranted(service) => write!(
                    f,
                    "service {service:?} is not granted to this plugin (grant it with `http = [...]` under [plugins.NAME])"
                ),
                Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
                Self::Unreachable(why) => write!(f, "unreachable: {why}"),
                Self::Timeout => f.write_str("the service did not answer in time"),
                Self::TooLarge => f.write_str("the response is over the gateway's limit"),
            }
        }
    }

    impl std::error::Error for Error {}

    /// Sends `request` and waits for the whole response, until a tenth of the plugin's
    /// `timeout_ms` is left (then [`Error::Timeout`]).
    pub fn send(request: OutboundRequest) -> Result<OutboundResponse, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::__bindings::wasmgate::plugin::http as wit;
            let response = wit::send(&wit::OutboundRequest {
                service: request.service,
                method: (&request.method).into(),
                path_and_query: request.path_and_query,
                headers: request.headers.into_list(),
                body: request.body,
            })
            .map_err(|e| match e {
                wit::HttpError::NotGranted(s) => Error::NotGranted(s),
                wit::HttpError::InvalidRequest(s) => Error::InvalidRequest(s),
                wit::HttpError::Unreachable(s) => Error::Unreachable(s),
                wit::HttpError::Timeout => Error::Timeout,
                wit::HttpError::TooLarge => Error::TooLarge,
            })?;
            Ok(OutboundResponse {
                status: response.status,
                headers: Headers::from_list(response.headers),
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
