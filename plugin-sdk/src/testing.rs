//! Run a plugin natively in `cargo test`, no gateway needed.
//!
//! [`Harness`] configures the plugin exactly as the gateway does (the same JSON
//! parsing and `new`), then calls its hooks on an in-memory exchange that applies the
//! gateway's rules to every change (the same header, path, query and status checks, in
//! one file shared with the gateway). The host imports are in memory, per test thread:
//! a real key-value store with expiry against a clock you set, captured log lines and
//! metrics, and canned answers for outbound HTTP. A change the gateway would refuse
//! fails the test with a message (or comes back from [`Harness::try_on_request`]); a
//! metric call the gateway would refuse gets the gateway's error, and the test can see
//! it in [`Harness::refused_metrics`].
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
//!     fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
//!         let n = wasmgate_plugin_sdk::kv::incr("hits", 1, None).unwrap();
//!         request.headers.set("x-hits", n.to_string());
//!         Action::Continue
//!     }
//! }
//!
//! let mut harness = Harness::<Count>::new("{}").unwrap();
//! harness.on_request(TestRequest::get("/"));
//! let outcome = harness.on_request(TestRequest::get("/"));
//! assert_eq!(outcome.request().unwrap().headers.get("x-hits").as_deref(), Some("2"));
//! assert_eq!(harness.kv_get("hits").as_deref(), Some(&b"2"[..]));
//! ```

mod exchange;
mod metric_store;

use std::cell::RefCell;
use std::collections::HashMap;

use crate::http::{OutboundRequest, OutboundResponse};
use crate::log::{Level, Value};
use crate::{Action, Headers, LogEntry, Method, Plugin, Response, Settings, Target, UpstreamCall};
pub(crate) use exchange::MockExchange;
use metric_store::MetricStore;

pub use metric_store::{MetricCall, MetricValue};

/// 2026-01-01T00:00:00Z, the harness clock's starting time.
pub const DEFAULT_TIME_MS: u64 = 1_767_225_600_000;

/// The trace id in the harness's [`TestContext`] unless a test sets another.
pub const DEFAULT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The service of the harness's default [`TestContext::upstream`].
pub const DEFAULT_SERVICE: &str = "test";

/// The endpoint of the harness's default [`TestContext::upstream`].
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

type HttpHandler = Box<dyn FnMut(&OutboundRequest) -> Result<OutboundResponse, crate::http::Error>>;

/// One log line a plugin wrote: its level, message and structured fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// The structured fields, in order.
    pub fields: Vec<(String, Value)>,
}

impl LogLine {
    /// The value of field `name`, if the line has it.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// The line as the gateway's console shows it: the message, then `name=value` per
/// field (`line.to_string()` in a test).
impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for (name, value) in &self.fields {
            match value {
                Value::Text(v) => write!(f, " {name}={v}")?,
                Value::Int(v) => write!(f, " {name}={v}")?,
                Value::Float(v) => write!(f, " {name}={v}")?,
                Value::Flag(v) => write!(f, " {name}={v}")?,
            }
        }
        Ok(())
    }
}

/// The in-memory host of one test thread.
pub(crate) struct MockHost {
    now_ms: u64,
    kv: HashMap<String, (Vec<u8>, Option<u64>)>,
    /// When set, every `kv` call fails with this store error.
    kv_failure: Option<String>,
    durable_writes: usize,
    logs: Vec<LogLine>,
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
            kv_failure: None,
            durable_writes: 0,
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

    pub(crate) fn log(&mut self, level: Level, message: &str, fields: &[(&str, Value)]) {
        self.logs.push(LogLine {
            level,
            message: message.to_string(),
            fields: fields
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
        });
    }

    pub(crate) fn note_durable(&mut self, durable: bool) {
        if durable {
            self.durable_writes += 1;
        }
    }

    fn live(&self, key: &str) -> Option<&(Vec<u8>, Option<u64>)> {
        self.kv
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|at| at > self.now_ms))
    }

    /// The store error every `kv` call gets while a failure is injected.
    pub(crate) fn kv_fails(&self) -> Result<(), crate::kv::Error> {
        match &self.kv_failure {
            Some(why) => Err(crate::kv::Error::Store(why.clone())),
            None => Ok(()),
        }
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
    ) -> Result<i64, crate::kv::Error> {
        let (current, expires) = match self.live(key) {
            Some((value, expires)) => {
                let n: i64 = std::str::from_utf8(value)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .ok_or(crate::kv::Error::NotAnInteger)?;
                (n, *expires)
            }
            None => (0, ttl_ms.map(|ttl| self.now_ms.saturating_add(ttl.max(1)))),
        };
        let next = current
            .checked_add(delta)
            .ok_or(crate::kv::Error::Overflow)?;
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

    pub(crate) fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> bool {
        if self.live(key).map(|(v, _)| v.as_slice()) != expected {
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

    pub(crate) fn http(
        &mut self,
        request: &OutboundRequest,
    ) -> Result<OutboundResponse, crate::http::Error> {
        self.http_calls.push(request.clone());
        match self.http.get_mut(&request.service) {
            Some(handler) => handler(request),
            None => Err(crate::http::Error::NotGranted(request.service.clone())),
        }
    }
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
    static EXCHANGE: RefCell<Option<MockExchange>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's in-memory host. Canned HTTP handlers run inside it and
/// must not call host functions themselves.
pub(crate) fn with_host<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    HOST.with(|host| f(&mut host.borrow_mut()))
}

/// Runs `f` with the exchange of the hook being run by the harness.
pub(crate) fn with_exchange<R>(f: impl FnOnce(&mut MockExchange) -> R) -> R {
    EXCHANGE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let exchange = slot
            .as_mut()
            .expect("no request is being served: call the plugin's hooks through the Harness");
        f(exchange)
    })
}

/// The facts the harness hands the plugin as its [`crate::Context`]: set request id,
/// trace id, route, params or vars (as if set by earlier plugins) here. The facts
/// left `None` are those of each `on_request`'s request, and `on_response` keeps the
/// ones its request phase had (as received, whatever the plugin changed). Variables the
/// plugin sets stay here for the next call, as the gateway keeps them from
/// `on_request` to `on_response`; clear `vars` to start a fresh request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestContext {
    /// The request id (default `test-request-1`).
    pub request_id: String,
    /// The trace id (default [`DEFAULT_TRACE_ID`]).
    pub trace_id: String,
    /// The route (default `test`).
    pub route: String,
    /// The client's address (default `127.0.0.1:40000`).
    pub client_addr: String,
    /// The method as received; `None` (the default) takes the request's.
    pub method: Option<Method>,
    /// The path as received; `None` (the default) takes the request's (e.g. set it to
    /// pretend an earlier plugin rewrote the path).
    pub path: Option<String>,
    /// When the request was received on the monotonic clock; `None` (the default)
    /// means when `on_request` is called.
    pub received_ns: Option<u64>,
    /// Path parameters.
    pub params: Vec<(String, String)>,
    /// Chain variables.
    pub vars: Vec<(String, String)>,
    /// The upstream handed to `on_response` (default [`DEFAULT_SERVICE`] at
    /// [`DEFAULT_ENDPOINT`]); `None` to test a response a plugin made, or the
    /// gateway's own 502 or 504. Never shown in `on_request`.
    pub upstream: Option<UpstreamCall>,
    /// The request is a WebSocket handshake on a route with `[routes.websocket]`, so
    /// that [`crate::Context::watch_messages`] succeeds (default `false`).
    pub websocket: bool,
}

impl Default for TestContext {
    fn default() -> Self {
        Self {
            request_id: "test-request-1".into(),
            trace_id: DEFAULT_TRACE_ID.into(),
            route: "test".into(),
            client_addr: "127.0.0.1:40000".into(),
            method: None,
            path: None,
            received_ns: None,
            params: Vec::new(),
            vars: Vec::new(),
            upstream: Some(UpstreamCall::new(DEFAULT_SERVICE, DEFAULT_ENDPOINT)),
            websocket: false,
        }
    }
}

impl TestContext {
    /// The value of variable `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request as a plugin left it (what the gateway would send on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// The headers.
    pub headers: Headers<'static>,
    /// The body, when the plugin asked for request bodies (else what the test gave,
    /// untouched).
    pub body: Option<Vec<u8>>,
}

/// What `on_request` did: its [`Action`] and the request as it left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The action.
    pub action: Action,
    /// The request after the call.
    pub sent: SentRequest,
    /// The plugin asked for the WebSocket's messages.
    pub watching: bool,
}

/// What `on_message` did: its verdict and the handshake request as it left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The verdict.
    pub verdict: crate::websocket::Verdict,
    /// The handshake request after the call (what goes upstream if the upstream is
    /// connected now).
    pub sent: SentRequest,
}

impl Outcome {
    /// The request as the plugin left it, if the action continues.
    pub fn request(&self) -> Option<&SentRequest> {
        self.action.continues().then_some(&self.sent)
    }

    /// The response, if the action answers.
    pub fn response(&self) -> Option<&Response> {
        self.action.response()
    }

    /// The target, if the action chose one.
    pub fn target(&self) -> Option<&Target> {
        self.action.target()
    }

    /// Whether the request goes on.
    pub fn continues(&self) -> bool {
        self.action.continues()
    }
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
/// #     fn on_request(&self, _: &mut Request, ctx: &mut Context) -> Action {
/// #         let user = ctx.param("user").unwrap_or_else(|| "nobody".into());
/// #         ctx.set_var("consumer", &user);
/// #         Action::Continue
/// #     }
/// # }
/// let mut harness = Harness::<Who>::new("{}").unwrap();
/// harness.ctx.params.push(("user".into(), "alice".into()));
/// harness.on_request(TestRequest::get("/users/alice"));
/// assert_eq!(harness.ctx.var("consumer"), Some("alice"));
/// ```
pub struct Harness<P: Plugin> {
    plugin: P,
    settings: Settings,
    /// The context handed to each call.
    pub ctx: TestContext,
    /// The request of the last `on_request`, which `on_response` carries on.
    last_request: Option<TestRequest>,
    /// The facts of the last `on_request` as received (method, path, when), which
    /// stay the same in `on_response`, as the gateway's do.
    last_received: Option<(Method, String, u64)>,
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
        Ok(Self {
            plugin,
            settings,
            ctx: TestContext::default(),
            last_request: None,
            last_received: None,
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

    /// The context of the response phase: the test's, with the facts the request
    /// phase received where the test left them unset.
    fn response_ctx(&self) -> TestContext {
        let mut ctx = self.ctx.clone();
        if let Some((method, path, received_ns)) = &self.last_received {
            ctx.method.get_or_insert_with(|| method.clone());
            ctx.path.get_or_insert_with(|| path.clone());
            ctx.received_ns.get_or_insert(*received_ns);
        }
        ctx
    }

    /// Runs `on_request` as the gateway would: the body is readable only if the
    /// plugin asked for request bodies, and the context has no upstream. Panics when
    /// the gateway would fail the request (a refused change, an invalid response).
    pub fn on_request(&mut self, request: TestRequest) -> Outcome {
        self.try_on_request(request).unwrap_or_else(|why| {
            panic!("the gateway would fail this request with PLUGIN_ERROR: {why}")
        })
    }

    /// Runs `on_request`; `Err` with the reason when the gateway would fail the
    /// request with `PLUGIN_ERROR` (a change it refuses, a response it refuses).
    pub fn try_on_request(&mut self, request: TestRequest) -> Result<Outcome, String> {
        let exchange = MockExchange::new(&self.ctx, &request, None, self.settings);
        let (result, mut exchange) = run(exchange, |ex| {
            crate::__private::request_hook(&self.plugin, ex)
        });
        self.ctx.vars = exchange.vars.clone();
        self.last_received = Some((
            exchange.received_method(),
            exchange.received_path(),
            exchange.received_ns(),
        ));
        let action = result?;
        if let Action::Respond(response) = &action {
            check_answer(response)?;
        }
        let sent = exchange.sent_request(&request);
        self.last_request = Some(TestRequest(sent.clone()));
        Ok(Outcome {
            action,
            sent,
            watching: exchange.watching,
        })
    }

    /// Runs `on_message` with a client's WebSocket `message`, as the gateway would
    /// for a plugin that asked for messages, on the request of the last `on_request`
    /// (or `GET /`); changes it makes to the request are kept for the next call.
    /// Panics when the gateway would close the WebSocket for a plugin error (a
    /// refused change).
    pub fn on_message(&mut self, message: crate::websocket::SocketMessage) -> MessageOutcome {
        let request = self
            .last_request
            .clone()
            .unwrap_or_else(|| TestRequest::get("/"));
        let mut ctx = self.response_ctx();
        ctx.websocket = true;
        let exchange = MockExchange::new(&ctx, &request, None, self.settings);
        let (result, exchange) = run(exchange, |ex| {
            crate::__private::message_hook(&self.plugin, ex, &message)
        });
        self.ctx.vars = exchange.vars.clone();
        let verdict = result.unwrap_or_else(|why| {
            panic!("the gateway would close this WebSocket with 1011: {why}")
        });
        let sent = exchange.sent_request(&request);
        self.last_request = Some(TestRequest(sent.clone()));
        MessageOutcome { verdict, sent }
    }

    /// Runs `on_response` as the gateway would: not at all for a `request_only`
    /// plugin (the response comes back unchanged), with the body readable only if the
    /// plugin asked for response bodies, on the request of the last `on_request`
    /// (or `GET /`). Returns the response as the plugin left it. Panics when the
    /// gateway would fail the request.
    pub fn on_response(&mut self, response: Response) -> Response {
        self.try_on_response(response).unwrap_or_else(|why| {
            panic!("the gateway would fail this request with PLUGIN_ERROR: {why}")
        })
    }

    /// Runs `on_response`; `Err` with the reason when the gateway would fail the
    /// request with `PLUGIN_ERROR`.
    pub fn try_on_response(&mut self, response: Response) -> Result<Response, String> {
        if self.settings.request_only {
            return Ok(response);
        }
        let request = self
            .last_request
            .clone()
            .unwrap_or_else(|| TestRequest::get("/"));
        let exchange = MockExchange::new(
            &self.response_ctx(),
            &request,
            Some(&response),
            self.settings,
        );
        let (result, exchange) = run(exchange, |ex| {
            crate::__private::response_hook(&self.plugin, ex)
        });
        self.ctx.vars = exchange.vars.clone();
        result?;
        Ok(exchange.sent_response(response))
    }

    /// Runs `on_log` with `entry`, as the gateway would after the client has its
    /// answer. Panics if the plugin's settings do not ask for the log phase (the
    /// gateway would not call it).
    pub fn on_log(&mut self, entry: &LogEntry) {
        assert!(
            self.settings.log,
            "the gateway calls on_log only for plugins whose settings() set `log: true`"
        );
        self.plugin.on_log(entry);
    }

    /// The log lines written so far, as (level, message).
    pub fn logs(&self) -> Vec<(Level, String)> {
        with_host(|host| {
            host.logs
                .iter()
                .map(|line| (line.level, line.message.clone()))
                .collect()
        })
    }

    /// The log lines written so far, with their structured fields.
    pub fn log_lines(&self) -> Vec<LogLine> {
        with_host(|host| host.logs.clone())
    }

    /// How many `kv` writes were durable (`set_durable`, `insert_durable`,
    /// `delete_durable`).
    pub fn durable_writes(&self) -> usize {
        with_host(|host| host.durable_writes)
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

    /// The variables the plugin set through [`crate::Context::set_var`], in order.
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

    /// Makes every `kv` call fail with `Store(why)` (`Some`), as a gateway whose state
    /// store is down would, or work again (`None`): to test what a plugin does then.
    pub fn fail_kv(&self, why: Option<&str>) {
        with_host(|host| host.kv_failure = why.map(str::to_string));
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
        handler: impl FnMut(&OutboundRequest) -> Result<OutboundResponse, crate::http::Error> + 'static,
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

/// Runs `f` with a [`crate::Context`] made from `ctx` (for a `GET /`), outside any
/// hook: for testing a plugin's helpers that take a context, e.g. one that builds an
/// error response.
///
/// ```
/// use wasmgate_plugin_sdk::testing::{TestContext, with_context};
/// use wasmgate_plugin_sdk::Response;
/// let ctx = TestContext { request_id: "req-1".into(), ..TestContext::default() };
/// let response = with_context(&ctx, |ctx| Response::not_found("no such user", ctx));
/// assert!(response.body_text().contains(r#""request_id":"req-1""#));
/// ```
pub fn with_context<R>(ctx: &TestContext, f: impl FnOnce(&mut crate::Context<'_>) -> R) -> R {
    let exchange = MockExchange::new(ctx, &TestRequest::get("/"), None, Settings::default());
    run(exchange, |ex| f(&mut crate::Context::new(ex))).0
}

/// Runs `hook` with `exchange` installed for this thread; returns its result and the
/// exchange as the hook left it.
fn run<R>(
    exchange: MockExchange,
    hook: impl FnOnce(crate::exchange::Ex<'_>) -> R,
) -> (R, MockExchange) {
    EXCHANGE.with(|slot| *slot.borrow_mut() = Some(exchange));
    let result = hook(crate::exchange::Ex::native());
    let exchange = EXCHANGE
        .with(|slot| slot.borrow_mut().take())
        .expect("the exchange is still installed");
    (result, exchange)
}

/// Checks a plugin's own answer as the gateway does.
fn check_answer(response: &Response) -> Result<(), String> {
    if !crate::rules::is_valid_answer_status(response.status) {
        return Err(format!(
            "status {} is out of range 200..=599 for a plugin's answer",
            response.status
        ));
    }
    exchange::check_headers(&response.headers.entries())
}

/// Builds a request for [`Harness::on_request`].
#[derive(Debug, Clone)]
pub struct TestRequest(SentRequest);

impl TestRequest {
    /// A request with `method` for `path` (which may carry `?query`).
    pub fn method(method: &str, path: &str) -> Self {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (path, None),
        };
        Self(SentRequest {
            method: Method::parse(method),
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
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
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
}

/// The request as the test built it: what a plugin that changes nothing sends on, so
/// `assert_eq!(outcome.request(), Some(&request.into()))` checks that it passed the
/// request through unchanged.
impl From<TestRequest> for SentRequest {
    fn from(request: TestRequest) -> Self {
        request.0
    }
}

#[cfg(test)]
mod tests;
