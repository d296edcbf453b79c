//! Run a plugin natively in `cargo test`, no gateway needed.
//!
//! [`Harness`] configures the plugin exactly as the gateway does (the same JSON
//! parsing and `new`), then calls its hooks with a [`Context`] you control. The host
//! imports are in memory, per test thread: a real key-value store with expiry against
//! a clock you set, captured log lines, and canned answers for outbound HTTP. Output
//! the gateway would refuse (a bad header, a status out of range, an unnormalised
//! path) fails the test with a message.
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

use std::cell::RefCell;
use std::collections::HashMap;

use crate::http::{OutboundRequest, OutboundResponse};
use crate::log::Level;
use crate::{Action, Context, Headers, Plugin, Request, Response, Settings};

/// 2026-01-01T00:00:00Z, the harness clock's starting time.
pub const DEFAULT_TIME_MS: u64 = 1_767_225_600_000;

type HttpHandler = Box<dyn FnMut(&OutboundRequest) -> Result<OutboundResponse, String>>;

/// The in-memory host of one test thread.
pub(crate) struct MockHost {
    now_ms: u64,
    kv: HashMap<String, (Vec<u8>, Option<u64>)>,
    logs: Vec<(Level, String)>,
    vars_set: Vec<(String, String)>,
    http: HashMap<String, HttpHandler>,
    http_calls: Vec<OutboundRequest>,
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
    /// The context handed to each call; set request id, route, params or vars (as
    /// if set by earlier plugins) here. Variables the plugin sets stay in it for the
    /// next call, as the gateway keeps them from `on_request` to `on_response`; clear
    /// `ctx.vars` to start a fresh request. Starts with request id `test-request-1`,
    /// route `test` and client `127.0.0.1:40000`.
    pub ctx: Context,
}

impl<P: Plugin> Harness<P> {
    /// Configures the plugin with `config` (JSON) as the gateway would, with a fresh
    /// in-memory host for this thread.
    pub fn new(config: &str) -> Result<Self, String> {
        with_host(|host| *host = MockHost::default());
        let plugin = crate::__private::build::<P>(config)?;
        let settings = plugin.settings();
        Ok(Self {
            plugin,
            settings,
            ctx: Context {
                request_id: "test-request-1".into(),
                route: "test".into(),
                client_addr: "127.0.0.1:40000".into(),
                params: Vec::new(),
                vars: Vec::new(),
            },
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
    /// plugin asked for request bodies. Panics on output the gateway would refuse.
    pub fn on_request(&mut self, mut request: Request) -> Action {
        if !self.settings.request_body {
            request.body = None;
        }
        let action = self.plugin.on_request(request, &mut self.ctx);
        match &action {
            Action::Continue(request) => check_request(request),
            Action::Respond(response) => check_response(response, 200),
        }
        action
    }

    /// Runs `on_response`. The body is handed over only if the plugin asked for
    /// response bodies. Panics on output the gateway would refuse.
    pub fn on_response(&mut self, mut response: Response) -> Response {
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
mod tests {
    use super::*;
    use crate::kv;

    struct Echo;

    impl Plugin for Echo {
        type Config = serde_json::Value;
        fn new(config: serde_json::Value) -> Result<Self, String> {
            match config.get("fail") {
                Some(_) => Err("told to fail".into()),
                None => Ok(Echo),
            }
        }
    }

    #[test]
    fn config_errors_come_back() {
        assert_eq!(
            Harness::<Echo>::new(r#"{"fail": 1}"#).err().unwrap(),
            "told to fail"
        );
        assert!(
            Harness::<Echo>::new("{not json")
                .err()
                .unwrap()
                .starts_with("invalid config")
        );
        assert!(Harness::<Echo>::new("").is_ok(), "empty config means {{}}");
    }

    #[test]
    fn kv_expires_with_the_clock() {
        let harness = Harness::<Echo>::new("{}").unwrap();
        kv::set("k", b"v", Some(std::time::Duration::from_millis(100))).unwrap();
        assert_eq!(kv::get("k").unwrap().as_deref(), Some(&b"v"[..]));
        harness.advance_ms(100);
        assert_eq!(kv::get("k").unwrap(), None);
        assert_eq!(kv::incr("n", 5, None).unwrap(), 5);
        assert_eq!(kv::incr("n", -7, None).unwrap(), -2);
        kv::set("t", b"text", None).unwrap();
        assert!(kv::incr("t", 1, None).is_err());
        assert!(kv::delete("n").unwrap());
        assert!(!kv::delete("n").unwrap());
    }

    #[test]
    fn bodies_are_withheld_unless_asked_for() {
        let mut harness = Harness::<Echo>::new("{}").unwrap();
        let action = harness.on_request(TestRequest::post("/x?a=1").body("secret").build());
        let request = action.request().unwrap();
        assert_eq!(request.body, None);
        assert_eq!(request.query.as_deref(), Some("a=1"));
    }

    #[test]
    fn canned_http_and_logs() {
        let harness = Harness::<Echo>::new("{}").unwrap();
        harness.on_http("svc", |request| {
            Ok(OutboundResponse {
                status: 201,
                body: request.path_and_query.clone().into_bytes(),
                ..OutboundResponse::default()
            })
        });
        let response = crate::http::send(OutboundRequest::new("svc", "GET", "/ping")).unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (201, &b"/ping"[..])
        );
        assert!(crate::http::send(OutboundRequest::new("other", "GET", "/")).is_err());
        assert_eq!(harness.http_calls().len(), 2);
        crate::log::warn("careful");
        assert_eq!(harness.logs(), [(Level::Warn, "careful".to_string())]);
    }

    struct Bad;

    impl Plugin for Bad {
        type Config = serde_json::Value;
        fn new(_: serde_json::Value) -> Result<Self, String> {
            Ok(Bad)
        }
        fn on_request(&self, _: Request, _: &mut Context) -> Action {
            Action::Respond(Response::new(200).with_header("bad name", "x"))
        }
    }

    #[test]
    #[should_panic(expected = "invalid header name")]
    fn output_the_gateway_refuses_fails_the_test() {
        let mut harness = Harness::<Bad>::new("{}").unwrap();
        harness.on_request(TestRequest::get("/").build());
    }

    struct Status(u16);

    impl Plugin for Status {
        type Config = u16;
        fn new(status: u16) -> Result<Self, String> {
            Ok(Status(status))
        }
        fn on_request(&self, _: Request, _: &mut Context) -> Action {
            Action::Respond(Response::new(self.0))
        }
        fn on_response(&self, mut response: Response, _: &mut Context) -> Response {
            response.status = self.0;
            response
        }
    }

    #[test]
    #[should_panic(expected = "the gateway accepts 200..=599 here")]
    fn a_plugins_own_response_needs_a_final_status() {
        Harness::<Status>::new("101")
            .unwrap()
            .on_request(TestRequest::get("/").build());
    }

    #[test]
    #[should_panic(expected = "status 600")]
    fn a_changed_response_needs_a_status_below_600() {
        Harness::<Status>::new("600")
            .unwrap()
            .on_response(Response::new(200));
    }

    #[test]
    fn informational_statuses_may_pass_through_on_response() {
        let mut harness = Harness::<Status>::new("101").unwrap();
        assert_eq!(harness.on_response(Response::new(200)).status, 101);
    }

    struct Vars;

    impl Plugin for Vars {
        type Config = crate::NoConfig;
        fn new(_: crate::NoConfig) -> Result<Self, String> {
            Ok(Vars)
        }
        fn on_request(&self, mut request: Request, ctx: &mut Context) -> Action {
            let id = format!("{}@{}", ctx.param("id").unwrap_or("-"), ctx.route);
            request.headers.set("x-seen", id.as_str());
            if let Some(prev) = ctx.var("consumer") {
                request.headers.set("x-consumer", prev);
            }
            ctx.set_var("stage", "request");
            Action::Continue(request)
        }
        fn on_response(&self, response: Response, ctx: &mut Context) -> Response {
            let stage = ctx.var("stage").unwrap_or("none").to_string();
            ctx.set_var("stage", "response");
            response.with_header("x-stage", stage)
        }
    }

    #[test]
    fn the_context_is_the_tests_and_vars_carry_to_the_response() {
        let mut harness = Harness::<Vars>::new("{}").unwrap();
        harness.ctx.route = "users".into();
        harness.ctx.params.push(("id".into(), "42".into()));
        harness.ctx.vars.push(("consumer".into(), "alice".into()));
        let action = harness.on_request(TestRequest::method("patch", "/u/42").build());
        let request = action.request().unwrap();
        assert_eq!(request.method, "PATCH");
        assert_eq!(request.headers.get("x-seen"), Some("42@users"));
        assert_eq!(request.headers.get("x-consumer"), Some("alice"));
        let response = harness.on_response(Response::new(200));
        assert_eq!(response.headers.get("x-stage"), Some("request"));
        assert_eq!(harness.ctx.var("stage"), Some("response"));
        assert_eq!(
            harness.vars_set(),
            [
                ("stage".to_string(), "request".to_string()),
                ("stage".to_string(), "response".to_string())
            ]
        );
    }

    #[test]
    fn the_clock_is_fixed_until_moved() {
        let harness = Harness::<Vars>::new("{}").unwrap();
        assert_eq!(crate::clock::now_unix_ms(), DEFAULT_TIME_MS);
        let before = crate::clock::monotonic_ns();
        harness.advance_ms(1500);
        assert_eq!(crate::clock::now_unix_ms(), DEFAULT_TIME_MS + 1500);
        assert_eq!(crate::clock::monotonic_ns() - before, 1_500_000_000);
        harness.set_time_ms(0);
        assert_eq!(crate::clock::now_unix_ms(), 0);
    }

    #[test]
    fn kv_ttl_on_incr_applies_only_at_creation() {
        let harness = Harness::<Vars>::new("{}").unwrap();
        let ttl = Some(std::time::Duration::from_secs(10));
        assert_eq!(kv::incr("w", 1, ttl).unwrap(), 1);
        harness.advance_ms(6_000);
        assert_eq!(kv::incr("w", 1, ttl).unwrap(), 2, "no new expiry");
        harness.advance_ms(4_000);
        assert_eq!(kv::get("w").unwrap(), None, "expired 10 s after creation");
        assert_eq!(kv::incr("w", 1, ttl).unwrap(), 1);
        harness.kv_set("seed", b"x", None);
        assert_eq!(kv::get("seed").unwrap().as_deref(), Some(&b"x"[..]));
    }
}
