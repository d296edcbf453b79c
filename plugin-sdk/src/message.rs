//! The values a plugin works with: the [`Request`] and [`Reply`] being served (handles
//! on the gateway's copy), the [`Response`] a plugin makes itself, the [`Action`] it
//! decides, its [`Context`], its [`Settings`], and the [`Method`].

use crate::exchange::{EditError, Ex, Part, remember};
use crate::headers::Headers;

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as its token (e.g. `PROPFIND`).
    Other(String),
}

impl Method {
    /// The method as it is sent, e.g. `"GET"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Patch => "PATCH",
            Self::Other(token) => token,
        }
    }

    /// The method named `token` (standard methods in any case, e.g. `get`).
    pub fn parse(token: &str) -> Self {
        match token.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            _ => Self::Other(token.to_string()),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The request being served, in `on_request`: a handle on the gateway's copy. Reads
/// and changes are calls to the gateway, checked when made.
pub struct Request<'a> {
    ex: Ex<'a>,
    /// The request's headers (hop-by-hop headers already removed).
    pub headers: Headers<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(ex: Ex<'a>) -> Self {
        Self {
            ex,
            headers: Headers::exchange(ex, Part::Request),
        }
    }

    /// The method (as earlier plugins left it).
    pub fn method(&self) -> Method {
        self.ex.method()
    }

    /// Changes the method sent upstream.
    pub fn set_method(&mut self, method: Method) {
        remember(self.ex.set_method(&method));
    }

    /// The normalised path, without the query.
    pub fn path(&self) -> String {
        self.ex.path()
    }

    /// Changes the path sent upstream. It must be normalised (starts with `/`, no `.`
    /// or `..` segments, no `//`): anything else fails the request once the hook
    /// returns; [`Request::try_set_path`] hands the error back instead.
    pub fn set_path(&mut self, path: &str) {
        remember(self.try_set_path(path));
    }

    /// Changes the path sent upstream, or says why the gateway refused.
    pub fn try_set_path(&mut self, path: &str) -> Result<(), EditError> {
        self.ex.set_path(path)
    }

    /// The raw query string without `?`, if any.
    pub fn query(&self) -> Option<String> {
        self.ex.query()
    }

    /// Changes (or with `None` removes) the query sent upstream.
    pub fn set_query(&mut self, query: Option<&str>) {
        remember(self.ex.set_query(query));
    }

    /// The buffered body, present only when [`Settings::request_body`] is on.
    pub fn body(&self) -> Option<Vec<u8>> {
        self.ex.body(Part::Request)
    }

    /// Replaces the body sent upstream (needs [`Settings::request_body`]).
    pub fn set_body(&mut self, body: impl AsRef<[u8]>) {
        remember(self.ex.set_body(Part::Request, body.as_ref()));
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("headers", &self.headers)
            .finish()
    }
}

/// The response on its way back to the client, in `on_response`: a handle on the
/// gateway's copy (from the upstream, a later plugin, or the gateway's own error).
pub struct Reply<'a> {
    ex: Ex<'a>,
    /// The response's headers (hop-by-hop headers already removed).
    pub headers: Headers<'a>,
}

impl<'a> Reply<'a> {
    pub(crate) fn new(ex: Ex<'a>) -> Self {
        Self {
            ex,
            headers: Headers::exchange(ex, Part::Response),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.ex.status().unwrap_or(0)
    }

    /// Changes the status (100 to 599).
    pub fn set_status(&mut self, status: u16) {
        remember(self.ex.set_status(status));
    }

    /// The buffered body, present only when [`Settings::response_body`] is on and the
    /// body fits the route's `max_body_bytes` (a larger one fails the request with
    /// 502, or, on a route with `large_responses = "stream"`, goes to the client
    /// unread and this is `None`).
    pub fn body(&self) -> Option<Vec<u8>> {
        self.ex.body(Part::Response)
    }

    /// Replaces the body sent to the client (needs [`Settings::response_body`]).
    pub fn set_body(&mut self, body: impl AsRef<[u8]>) {
        remember(self.ex.set_body(Part::Response, body.as_ref()));
    }
}

impl std::fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status())
            .field("headers", &self.headers)
            .finish()
    }
}

/// A response the plugin makes itself ([`Action::Respond`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (200 to 599).
    pub status: u16,
    /// The response headers.
    pub headers: Headers<'static>,
    /// The body; `None` for none.
    pub body: Option<Vec<u8>>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Headers::new(),
            body: None,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        let mut response =
            Self::new(status).with_header("content-type", "text/plain; charset=utf-8");
        response.body = Some(text.into().into_bytes());
        response
    }

    /// An `application/json` response with `value` serialised as its body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let mut response = Self::new(status).with_header("content-type", "application/json");
        response.body = Some(serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()));
        response
    }

    /// The body as text (lossily), for tests and logs.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Where a request goes instead of the route's own service ([`Action::ContinueTo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A service of the gateway config granted to the plugin (`services = [...]`
    /// under `[plugins.NAME]`).
    Service(String),
    /// An endpoint `http://host:port` inside the plugin's allowlist (`upstreams =
    /// [...]` under `[plugins.NAME]`).
    Endpoint(String),
}

/// What `on_request` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass the request (as changed) on to the next plugin, then the route's service.
    Continue,
    /// Pass the request on, and send it to `target` instead of the route's service.
    /// A target outside the plugin's grant fails the request with `PLUGIN_ERROR`,
    /// and no connection is made.
    ContinueTo(Target),
    /// Answer the client now; later plugins and the upstream are skipped.
    Respond(Response),
}

impl Action {
    /// The response, if the action answers.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::Respond(response) => Some(response),
            _ => None,
        }
    }

    /// Whether the request goes on (to the route's service or another target).
    pub fn continues(&self) -> bool {
        !matches!(self, Self::Respond(_))
    }

    /// The target, if the action chose one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::ContinueTo(target) => Some(target),
            _ => None,
        }
    }
}

/// What a plugin asks of the host for a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Buffer request bodies and make them readable in `on_request`
    /// ([`Request::body`]).
    pub request_body: bool,
    /// Buffer response bodies and make them readable in `on_response`
    /// ([`Reply::body`]).
    pub response_body: bool,
    /// The plugin has nothing to do in the response phase: the host does not call
    /// `on_response` for it on this route, which saves a call per request. Leave it
    /// `false` when `on_response` does anything.
    pub request_only: bool,
    /// Call [`crate::Plugin::on_log`] for every request on the route, after the client
    /// has its answer. Off by default.
    pub log: bool,
}

impl Settings {
    /// No bodies, no response phase and no log phase: for plugins that only look at
    /// requests (authentication, authorisation, request filters).
    pub const REQUEST_ONLY: Self = Self {
        request_body: false,
        response_body: false,
        request_only: true,
        log: false,
    };
}

/// Facts about the request being served, in both phases: a handle on the gateway's
/// copy (each read is a call, so read what you need once).
pub struct Context<'a> {
    ex: Ex<'a>,
}

/// The upstream call behind a response ([`Context::upstream`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamCall {
    /// The service's name in the gateway config (`""` for an endpoint a plugin chose).
    pub service: String,
    /// The endpoint that answered, e.g. `http://127.0.0.1:9001`.
    pub endpoint: String,
}

impl UpstreamCall {
    /// The call to `endpoint` of `service`.
    pub fn new(service: &str, endpoint: &str) -> Self {
        Self {
            service: service.to_string(),
            endpoint: endpoint.to_string(),
        }
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(ex: Ex<'a>) -> Self {
        Self { ex }
    }

    /// The request id the client sees in `X-Request-Id`.
    pub fn request_id(&self) -> String {
        self.ex.request_id()
    }

    /// The W3C trace id of the request (32 lower-case hex digits): the client's, from
    /// a valid `traceparent`, else one the gateway started. Also on the plugin's log
    /// lines.
    pub fn trace_id(&self) -> String {
        self.ex.trace_id()
    }

    /// The name of the matched route.
    pub fn route(&self) -> String {
        self.ex.route()
    }

    /// The client's address, `ip:port`.
    pub fn client_addr(&self) -> String {
        self.ex.client_addr()
    }

    /// The method as the client sent it (an earlier plugin may have changed the one
    /// sent upstream; this one stays).
    pub fn method(&self) -> Method {
        self.ex.received_method()
    }

    /// The normalised path the route matched, as received.
    pub fn path(&self) -> String {
        self.ex.received_path()
    }

    /// When the gateway received the request, on the [`crate::clock::monotonic_ns`]
    /// clock.
    pub fn received_ns(&self) -> u64 {
        self.ex.received_ns()
    }

    /// The time since the gateway received the request.
    pub fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            crate::clock::monotonic_ns().saturating_sub(self.received_ns()),
        )
    }

    /// The value of path parameter `name` (a `{name}` segment of the route's path).
    pub fn param(&self, name: &str) -> Option<String> {
        self.ex.param(name)
    }

    /// Every path parameter, in the order of the route's path.
    pub fn params(&self) -> Vec<(String, String)> {
        self.ex.params()
    }

    /// The value of variable `name`, set by this or an earlier plugin.
    pub fn var(&self, name: &str) -> Option<String> {
        self.ex.var(name)
    }

    /// Every chain variable, in the order they were first set.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.ex.vars()
    }

    /// Sets variable `name` for the plugins after this one, the response phase and
    /// the log phase (e.g. `consumer`, `role`). The value is kept as it is: nothing
    /// splits it. Over the gateway's limits (64 variables of 8 KiB) the request fails
    /// once the hook returns.
    pub fn set_var(&mut self, name: &str, value: &str) {
        remember(self.ex.set_var(name, value));
    }

    /// In `on_request`, on a WebSocket handshake to a route with
    /// `[routes.websocket]`: asks for the client's messages, each handed to
    /// [`crate::Plugin::on_message`] before it goes upstream. The gateway answers the
    /// handshake itself and connects the upstream once every watching plugin has let
    /// a message through. An error on any other request (which the plugin may take as
    /// "not a WebSocket"). Needs a gateway with contract 0.5.2 or later.
    pub fn watch_messages(&mut self) -> Result<(), EditError> {
        self.ex.watch_messages()
    }

    /// In `on_response`, the upstream that answered; `None` in `on_request`, and when
    /// a plugin answered or the upstream could not be reached (the gateway's own 502
    /// or 504).
    pub fn upstream(&self) -> Option<UpstreamCall> {
        self.ex.upstream()
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("request_id", &self.request_id())
            .field("route", &self.route())
            .finish_non_exhaustive()
    }
}

/// How a request failed ([`Failure::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A plugin trapped or panicked.
    PluginTrap,
    /// A plugin ran past its deadline.
    PluginTimeout,
    /// A plugin ran out of memory.
    PluginOutOfMemory,
    /// A plugin's output was refused, or the plugin gave up on the request.
    PluginRefused,
    /// No instance of a plugin could be made.
    PluginUnavailable,
    /// The request body was over the route's limit.
    BodyTooLarge,
    /// The upstream could not be reached.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream response was over the route's limit for its plugins.
    UpstreamTooLarge,
    /// The route has no upstream service.
    NoUpstream,
}

impl FailureKind {
    /// A short name for logs, e.g. `upstream_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PluginTrap => "plugin_trap",
            Self::PluginTimeout => "plugin_timeout",
            Self::PluginOutOfMemory => "plugin_out_of_memory",
            Self::PluginRefused => "plugin_refused",
            Self::PluginUnavailable => "plugin_unavailable",
            Self::BodyTooLarge => "body_too_large",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamTooLarge => "upstream_too_large",
            Self::NoUpstream => "no_upstream",
        }
    }
}

/// A failure behind a response ([`LogEntry::failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub kind: FailureKind,
    /// The envelope code the client got, e.g. `PLUGIN_ERROR`.
    pub code: String,
    /// The plugin that failed, for plugin failures.
    pub plugin: Option<String>,
}

/// What happened to a request, handed to [`crate::Plugin::on_log`] after the client
/// has its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The request id the client saw.
    pub request_id: String,
    /// The W3C trace id.
    pub trace_id: String,
    /// The matched route.
    pub route: String,
    /// The client's address, `ip:port`.
    pub client_addr: String,
    /// When the gateway received the request, in milliseconds since the Unix epoch.
    pub received_unix_ms: u64,
    /// The method as received.
    pub method: Method,
    /// The normalised path as received.
    pub path: String,
    /// The query as received, without `?`.
    pub query: Option<String>,
    /// The status the client got.
    pub status: u16,
    /// The plugin that answered in the request phase, if one did.
    pub answered_by: Option<String>,
    /// Why the request failed, if it did.
    pub failure: Option<Failure>,
    /// Request body bytes read from the client (`None` when it sent none).
    pub bytes_in: Option<u64>,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Whether the client got the whole response body.
    pub complete: bool,
    /// From receiving the request to the end of the response body.
    pub total: std::time::Duration,
    /// From sending the request upstream to its response head.
    pub upstream_time: Option<std::time::Duration>,
    /// The upstream that answered.
    pub upstream: Option<UpstreamCall>,
    /// Time spent in each plugin that ran, in chain order.
    pub plugins: Vec<(String, std::time::Duration)>,
    /// The chain variables at the end of the request.
    pub vars: Vec<(String, String)>,
}

impl LogEntry {
    /// The value of chain variable `name` at the end of the request.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Default for LogEntry {
    /// A `GET /` answered 200 by the upstream [`crate::testing::DEFAULT_SERVICE`]-like
    /// `test` service in 1 ms, with nothing else set: a start for tests.
    fn default() -> Self {
        Self {
            request_id: "test-request-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            route: "test".into(),
            client_addr: "127.0.0.1:40000".into(),
            received_unix_ms: 1_767_225_600_000,
            method: Method::Get,
            path: "/".into(),
            query: None,
            status: 200,
            answered_by: None,
            failure: None,
            bytes_in: None,
            bytes_out: 0,
            complete: true,
            total: std::time::Duration::from_millis(1),
            upstream_time: Some(std::time::Duration::from_micros(800)),
            upstream: Some(UpstreamCall::new("test", "http://127.0.0.1:9000")),
            plugins: Vec::new(),
            vars: Vec::new(),
        }
    }
}
