//! Run a plugin natively in `cargo test`, no gateway needed.
//!
//! [`Harness`] configures the plugin exactly as the gateway does (the same JSON
//! parsing and `new`), then calls its hooks with a [`Context`] you control. The host
//! imports are in memory, per test thread: a real key-value store with expiry against
//! a clock you set, captured log lines and metrics, and canned answers for outbound
//! HTTP. Output the gateway would refuse (a bad header, a status out of range, an
//! unnormalised path) fails the test with a message; a metric call the gateway would
//! refuse gets the gateway's error, and the test can see it in
//! [`Harness::refused_metrics`].
//!
//! The in-memory host belongs to the test's thread and [`Harness::new`] starts a fresh
//! one, so use one harness at a time in a test (Rust runs each test on its own thread).
//! The capability functions ([`crate::kv`], [`crate::log`], …) called directly from a
//! test reach the same host, which is handy for seeding or checking state.
//!
//! ```
//! use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
//! use wasmgate_plugin_sdk::{Action, Context, Plugin, Request};
//!
//! struct Count;
//! impl Plugin for Count {
//!     type Config = serde_json::Value;
//!     fn new(_: serde_json::Value) -> Result<Self, String> { Ok(Count) }
//!     fn on_request(&self, mut request: Request, _: &mut Context) -> Action {
//!         let n = wasmgate_plugin_sdk::kv::incr("hits", 1, None).unwrap();
//!         request.headers.set("x-hits", n.to_string());
//!         Action::Continue(request)
//!     }
//! }
//!
//! let mut harness = Harness::<Count>::new("{}").unwrap();
//! harness.on_request(TestRequest::get("/").build());
//! let action = harness.on_request(TestRequest::get("/").build());
//! assert_eq!(action.request().unwrap().headers.get("x-hits"), Some("2"));
//! assert_eq!(harness.kv_get("hits").as_deref(), Some(&b"2"[..]));
//! ```

mod metric_store;

use std::cell::RefCell;
use std::collections::HashMap;

use crate::http::{OutboundRequest, OutboundResponse};
use crate::log::Level;
use crate::{Action, Context, Headers, Plugin, Request, Response, Settings, UpstreamCall};
use metric_store::MetricStore;

pub use metric_store::{MetricCall, MetricValue};

/// 2026-01-01T00:00:00Z, the harness clock's starting time.
pub const DEFAULT_TIME_MS: u64 = 1_767_225_600_000;

/// The trace id in the harness's [`Context`] unless a test sets another.
pub const DEFAULT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The service of the harness's default [`Context::upstream`].
pub const DEFAULT_SERVICE: &str = "test";

/// The endpoint of the harness's default [`Context::upstream`].
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

type HttpHandler = Box<dyn FnMut(&OutboundRequest) -> Result<OutboundResponse, String>>;

/// The in-memory host of one test thread.
pub(crate) struct MockHost {
    now_ms: u64,
    kv: HashMap<String, (Vec<u8>, Option<u64>)>,
    logs: Vec<(Level, String)>,
    vars_set: Vec<(String, String)>,
    http: HashMap<String, HttpHandler>,
    http_calls: Vec<OutboundRequest>,
    metrics: MetricStore,
    secrets: HashMap<String, Vec<u8>>,
}

impl Default for MockHost {
    fn default() -> Self {
        Self {
            now_ms: DEFAULT_TIME_MS,
            kv: HashMap::new(),
            logs: Vec::new(),
            vars_set: Vec::new(),
            http: HashMap::new(),
            http_calls: Vec::new(),
            metrics: MetricStore::default(),
            secrets: HashMap::new(),
        }
    }
}

impl MockHost {
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }

    pub(crate) fn set_var(&mut self, name: &str, value: &str) {
        self.vars_set.push((name.to_string(), value.to_string()));
    }

    fn live(&self, key: &str) -> Option<&(Vec<u8>, Option<u64>)> {
        self.kv
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|at| at > self.now_ms))
    }

    pub(crate) fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.live(key).map(|(value, _)| value.clone())
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &[u8], ttl_ms: Option<u64>) {
        let expires = ttl_ms.map(|ttl| self.now_ms.saturating_add(ttl.max(1)));
        self.kv.insert(key.to_string(), (value.to_vec(), expires));
    }

    pub(crate) fn kv_incr(
        &mut self,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, String> {
        let (current, expires) = match self.live(key) {
            Some((value, expires)) => {
                let text = std::str::from_utf8(value)
                    .map_err(|_| format!("value of {key:?} is not an integer"))?;
                let n: i64 = text
                    .parse()
                    .map_err(|_| format!("value of {key:?} is not an integer"))?;
                (n, *expires)
            }
            None => (0, ttl_ms.map(|ttl| self.now_ms.saturating_add(ttl.max(1)))),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| format!("incr of {key:?} overflows"))?;
        self.kv
            .insert(key.to_string(), (next.to_string().into_bytes(), expires));
        Ok(next)
    }

    pub(crate) fn kv_delete(&mut self, key: &str) -> bool {
        let live = self.live(key).is_some();
        self.kv.remove(key);
        live
    }

    pub(crate) fn kv_insert(&mut self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> bool {
        if self.live(key).is_some() {
            return false;
        }
        self.kv_set(key, value, ttl_ms);
        true
    }

    pub(crate) fn kv_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let mut keys: Vec<&String> = self
            .kv
            .keys()
            .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
            .filter(|k| self.live(k).is_some())
            .collect();
        keys.sort();
        keys.into_iter()
            .take(limit)
            .map(|k| (k.clone(), self.kv[k].0.clone()))
            .collect()
    }

    pub(crate) fn secret(&self, name: &str) -> Option<Vec<u8>> {
        self.secrets.get(name).cloned()
    }

    pub(crate) fn metric(
        &mut self,
        name: &str,
        labels: Vec<(String, String)>,
        value: crate::metrics::Value,
    ) -> Result<(), String> {
        self.metrics.record(MetricCall {
            name: name.to_string(),
            labels,
            value: value.into(),
        })
    }

    pub(crate) fn http(&mut self, request: &OutboundRequest) -> Result<OutboundResponse, String> {
        self.http_calls.push(request.clone());
        match self.http.get_mut(&request.service) {
            Some(handler) => handler(request),
            None => Err(format!(
                "service {:?} is not granted to this plugin (no canned answer in the harness)",
                request.service
            )),
        }
    }
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
}

/// Runs `f` with this thread's in-memory host. Canned HTTP handlers run inside it and
/// must not call host functions themselves.
pub(crate) fn with_host<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    HOST.with(|host| f(&mut host.borrow_mut()))
}

/// A plugin under test with its in-memory host.
///
/// ```
/// # use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
/// # use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request};
/// # struct Who;
/// # impl Plugin for Who {
/// #     type Config = NoConfig;
/// #     fn new(_: NoConfig) -> Result<Self, String> { Ok(Who) }
/// #     fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
/// #         let user = ctx.param("user").unwrap_or("nobody").to_string();
/// #         ctx.set_var("consumer", &user);
/// #         Action::Continue(request)
/// #     }
/// # }
/// let mut harness = Harness::<Who>::new("{}").unwrap();
/// harness.ctx.params.push(("user".into(), "alice".into()));
/// harness.on_request(TestRequest::get("/users/alice").build());
/// assert_eq!(harness.ctx.var("consumer"), Some("alice"));
/// ```
pub struct Harness<P: Plugin> {
    plugin: P,
    settings: Settings,
    /// The context handed to each call; set request id, trace id, route, params or
    /// vars (as if set by earlier plugins) here. Variables the plugin sets stay in it
    /// for the next call, as the gateway keeps them from `on_request` to
    /// `on_response`; clear `ctx.vars` to start a fresh request.
    ///
    /// Starts with request id `test-request-1`, trace id [`DEFAULT_TRACE_ID`], route
    /// `test`, client `127.0.0.1:40000` and upstream [`DEFAULT_SERVICE`] at
    /// [`DEFAULT_ENDPOINT`]. As in the gateway:
    ///
    /// - [`Harness::on_request`] sets `method` and `path` from the request it is given
    ///   and `received_ns` to the clock's monotonic time, unless the test set them
    ///   itself (a value the harness did not write is kept, e.g. to pretend an earlier
    ///   plugin rewrote the path);
    /// - `upstream` is `None` in `on_request` (the harness hides it for that call) and
    ///   is handed to `on_response` as set: set it to `None` to test a response a
    ///   plugin made, or the gateway's own 502 or 504.
    pub ctx: Context,
    /// What the harness last wrote into `ctx.method`, `ctx.path`, `ctx.received_ns`.
    stamped: (String, String, u64),
}

impl<P: Plugin> Harness<P> {
    /// Configures the plugin with `config` (JSON) as the gateway would, with a fresh
    /// in-memory host for this thread.
    pub fn new(config: &str) -> Result<Self, String> {
        Self::with_secrets(config, &[])
    }

    /// Like [`Harness::new`], with `secrets` granted (name, value) as the operator
    /// would grant them in `[plugins.NAME] secrets`.
    ///
    /// ```
    /// # use wasmgate_plugin_sdk::testing::Harness;
    /// # use wasmgate_plugin_sdk::{NoConfig, Plugin, secrets};
    /// struct Keyed(Vec<u8>);
    /// impl Plugin for Keyed {
    ///     type Config = NoConfig;
    ///     fn new(_: NoConfig) -> Result<Self, String> {
    ///         secrets::get("key").map(Keyed).ok_or_else(|| "no secret `key`".into())
    ///     }
    /// }
    /// assert!(Harness::<Keyed>::new("{}").is_err());
    /// let harness = Harness::<Keyed>::with_secrets("{}", &[("key", b"s3cret")]).unwrap();
    /// assert_eq!(harness.plugin().0, b"s3cret");
    /// ```
    pub fn with_secrets(config: &str, secrets: &[(&str, &[u8])]) -> Result<Self, String> {
        with_host(|host| {
            *host = MockHost::default();
            for (name, value) in secrets {
                host.secrets.insert(name.to_string(), value.to_vec());
            }
        });
        let plugin = crate::__private::build::<P>(config)?;
        let settings = plugin.settings();
        let received_ns = crate::clock::monotonic_ns();
        Ok(Self {
            plugin,
            settings,
            ctx: Context {
                request_id: "test-request-1".into(),
                trace_id: DEFAULT_TRACE_ID.into(),
                route: "test".into(),
                client_addr: "127.0.0.1:40000".into(),
                method: String::new(),
                path: String::new(),
                received_ns,
                params: Vec::new(),
                vars: Vec::new(),
                upstream: Some(UpstreamCall::new(DEFAULT_SERVICE, DEFAULT_ENDPOINT)),
            },
            stamped: (String::new(), String::new(), received_ns),
        })
    }

    /// What the plugin asked of the host.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The plugin itself.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// Runs `on_request`. As in the gateway, the body is handed over only if the
    /// plugin asked for request bodies, and the context carries the request's method
    /// and path, the time it was received and no upstream (see [`Harness::ctx`]).
    /// Panics on output the gateway would refuse.
    pub fn on_request(&mut self, mut request: Request) -> Action {
        if !self.settings.request_body {
            request.body = None;
        }
        self.stamp(&request);
        let upstream = self.ctx.upstream.take();
        let action = self.plugin.on_request(request, &mut self.ctx);
        self.ctx.upstream = upstream;
        match &action {
            Action::Continue(request) => check_request(request),
            Action::Respond(response) => check_response(response, 200),
        }
        action
    }

    /// Writes the request's facts into the context, except those the test set.
    fn stamp(&mut self, request: &Request) {
        let (method, path, received_ns) = &mut self.stamped;
        if self.ctx.method == *method {
            self.ctx.method.clone_from(&request.method);
            method.clone_from(&request.method);
        }
        if self.ctx.path == *path {
            self.ctx.path.clone_from(&request.path);
            path.clone_from(&request.path);
        }
        if self.ctx.received_ns == *received_ns {
            self.ctx.received_ns = crate::clock::monotonic_ns();
            *received_ns = self.ctx.received_ns;
        }
    }

    /// Runs `on_response`, as the gateway would: not at all for a `request_only`
    /// plugin (the response comes back unchanged), and with the body only if the
    /// plugin asked for response bodies. Panics on output the gateway would refuse.
    pub fn on_response(&mut self, mut response: Response) -> Response {
        if self.settings.request_only {
            return response;
        }
        if !self.settings.response_body {
            response.body = None;
        }
        let response = self.plugin.on_response(response, &mut self.ctx);
        check_response(&response, 100);
        response
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        with_host(|host| host.logs.clone())
    }

    /// The total the plugin added to counter `name` with exactly `labels` (in any
    /// order); 0 if it never did.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        with_host(|host| {
            host.metrics
                .values(name, labels)
                .map(|value| match value {
                    MetricValue::Counter(v) => v,
                    _ => 0,
                })
                .sum()
        })
    }

    /// The last value the plugin set gauge `name` with exactly `labels` to.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        with_host(|host| {
            host.metrics
                .values(name, labels)
                .filter_map(|value| match value {
                    MetricValue::Gauge(v) => Some(v),
                    _ => None,
                })
                .last()
        })
    }

    /// The values the plugin observed in histogram `name` with exactly `labels`, in
    /// order.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        with_host(|host| {
            host.metrics
                .values(name, labels)
                .filter_map(|value| match value {
                    MetricValue::Histogram(v) => Some(v),
                    _ => None,
                })
                .collect()
        })
    }

    /// Every metric call the gateway would have accepted, in order.
    pub fn metric_calls(&self) -> Vec<MetricCall> {
        with_host(|host| host.metrics.accepted.clone())
    }

    /// Every metric call the gateway would have refused, with its reason (the error
    /// the plugin got), in order. `assert!(harness.refused_metrics().is_empty())`
    /// checks that a plugin, which usually ignores these errors, records only what
    /// the gateway takes.
    pub fn refused_metrics(&self) -> Vec<(MetricCall, String)> {
        with_host(|host| host.metrics.refused.clone())
    }

    /// The variables the plugin set through [`Context::set_var`], in order.
    pub fn vars_set(&self) -> Vec<(String, String)> {
        with_host(|host| host.vars_set.clone())
    }

    /// Reads the in-memory key-value store.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        with_host(|host| host.kv_get(key))
    }

    /// Writes the in-memory key-value store.
    pub fn kv_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) {
        with_host(|host| host.kv_set(key, value, ttl_ms));
    }

    /// Sets the clock (milliseconds since the Unix epoch).
    pub fn set_time_ms(&self, unix_ms: u64) {
        with_host(|host| host.now_ms = unix_ms);
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        with_host(|host| host.now_ms = host.now_ms.saturating_add(ms));
    }

    /// Answers outbound calls to `service` with `handler`.
    pub fn on_http(
        &self,
        service: &str,
        handler: impl FnMut(&OutboundRequest) -> Result<OutboundResponse, String> + 'static,
    ) {
        with_host(|host| {
            host.http.insert(service.to_string(), Box::new(handler));
        });
    }

    /// The outbound calls the plugin made, in order.
    pub fn http_calls(&self) -> Vec<OutboundRequest> {
        with_host(|host| host.http_calls.clone())
    }
}

fn check_headers(headers: &Headers) {
    for (name, value) in headers.iter() {
        assert!(
            Headers::is_valid_name(name),
            "the plugin returned an invalid header name {name:?}; the gateway would fail the request with PLUGIN_ERROR"
        );
        assert!(
            Headers::is_valid_value(value),
            "the plugin returned an invalid value for header {name:?}; the gateway would fail the request with PLUGIN_ERROR"
        );
    }
}

fn check_request(request: &Request) {
    assert!(
        !request.method.is_empty() && Headers::is_valid_name(&request.method),
        "the plugin returned an invalid method {:?}",
        request.method
    );
    assert!(
        request.path.starts_with('/')
            && !request.path.split('/').any(|s| s == "." || s == "..")
            && !request.path.contains(['?', '#', '\\']),
        "the plugin returned a path the gateway refuses: {:?} (it must be normalised)",
        request.path
    );
    check_headers(&request.headers);
}

fn check_response(response: &Response, min_status: u16) {
    assert!(
        (min_status..=599).contains(&response.status),
        "the plugin returned status {}; the gateway accepts {min_status}..=599 here",
        response.status
    );
    check_headers(&response.headers);
}

/// Builds a [`Request`] for tests.
#[derive(Debug, Clone)]
pub struct TestRequest(Request);

impl TestRequest {
    /// A request with `method` for `path` (which may carry `?query`).
    pub fn method(method: &str, path: &str) -> Self {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (path, None),
        };
        Self(Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query,
            headers: Headers::new(),
            body: None,
        })
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::method("GET", path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Self {
        Self::method("POST", path)
    }

    /// `PUT path`.
    pub fn put(path: &str) -> Self {
        Self::method("PUT", path)
    }

    /// `DELETE path`.
    pub fn delete(path: &str) -> Self {
        Self::method("DELETE", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// Sets the query string (without `?`).
    pub fn query(mut self, query: &str) -> Self {
        self.0.query = Some(query.to_string());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = Some(body.into());
        self
    }

    /// The request.
    pub fn build(self) -> Request {
        self.0
    }
}

#[cfg(test)]
mod tests;
