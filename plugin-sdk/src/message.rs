//! The values a plugin works with: [`Request`], [`Response`], [`Action`],
//! [`Context`] (with [`UpstreamCall`]) and [`Settings`], and their conversion from
//! and to the WIT types.

use crate::__bindings::wasmgate::plugin::types as wit;
use crate::headers::Headers;

/// An HTTP request as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, upper-case, e.g. `GET`.
    pub method: String,
    /// The normalised path, without the query. If you change it, keep it normalised
    /// (no `.` or `..` segments): the gateway refuses anything else.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    /// The request headers (hop-by-hop headers already removed).
    pub headers: Headers,
    /// The buffered body, present only when [`Settings::request_body`] is on. Setting
    /// it replaces the body sent upstream.
    pub body: Option<Vec<u8>>,
}

/// An HTTP response as the plugin sees or makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: Headers,
    /// The body. In `on_response`, present only when [`Settings::response_body`] is
    /// on; setting it replaces the body sent to the client.
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
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
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
}

/// What `on_request` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass the request on to the next plugin and then the upstream.
    Continue(Request),
    /// Answer the client now; later plugins and the upstream are skipped.
    Respond(Response),
}

impl Action {
    /// The request, if the action continues.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Self::Continue(request) => Some(request),
            Self::Respond(_) => None,
        }
    }

    /// The response, if the action answers.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::Respond(response) => Some(response),
            Self::Continue(_) => None,
        }
    }
}

/// What a plugin asks of the host for a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Buffer request bodies and hand them to `on_request`.
    pub request_body: bool,
    /// Buffer response bodies and hand them to `on_response`.
    pub response_body: bool,
    /// The plugin has nothing to do in the response phase: the host does not call
    /// `on_response` for it on this route, which saves a call per request. Leave it
    /// `false` when `on_response` does anything.
    pub request_only: bool,
}

impl Settings {
    /// No bodies, and no response phase: for plugins that only look at requests
    /// (authentication, authorisation, request filters).
    pub const REQUEST_ONLY: Self = Self {
        request_body: false,
        response_body: false,
        request_only: true,
    };
}

/// Facts about the request being served, handed to both hooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The request id the client sees in `X-Request-Id`.
    pub request_id: String,
    /// The W3C trace id of the request (32 lower-case hex digits): the client's, from a
    /// valid `traceparent`, else one the gateway started. Also on the plugin's log lines.
    pub trace_id: String,
    /// The name of the matched route.
    pub route: String,
    /// The client's address, `ip:port`.
    pub client_addr: String,
    /// The request's method as received, e.g. `GET`, in both phases.
    pub method: String,
    /// The normalised path the route matched, as received, in both phases (an earlier
    /// plugin may have changed the path sent upstream; this one stays).
    pub path: String,
    /// When the gateway received the request, on the [`crate::clock::monotonic_ns`]
    /// clock; [`Context::elapsed`] is the time spent since.
    pub received_ns: u64,
    /// Values captured by the route's `{param}` segments.
    pub params: Vec<(String, String)>,
    /// Variables set by earlier plugins in the chain.
    pub vars: Vec<(String, String)>,
    /// In `on_response`, the upstream that answered; `None` in `on_request`, and when a
    /// plugin answered or the upstream could not be reached (the gateway's own 502 or
    /// 504).
    pub upstream: Option<UpstreamCall>,
}

/// The upstream call behind a response ([`Context::upstream`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamCall {
    /// The service's name in the gateway config.
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

impl Context {
    /// The value of path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of variable `name`, set by this or an earlier plugin.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The time since the gateway received the request ([`Context::received_ns`] to
    /// now on the host's monotonic clock).
    pub fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            crate::clock::monotonic_ns().saturating_sub(self.received_ns),
        )
    }

    /// Sets variable `name` for the plugins after this one (e.g. `consumer`, `role`).
    pub fn set_var(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
        crate::host::set_var(name, value);
    }
}

impl From<wit::Request> for Request {
    fn from(r: wit::Request) -> Self {
        Self {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: Headers::from_list(r.headers),
            body: r.body,
        }
    }
}

impl From<Request> for wit::Request {
    fn from(r: Request) -> Self {
        Self {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers.into_list(),
            body: r.body,
        }
    }
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Self {
            status: r.status,
            headers: Headers::from_list(r.headers),
            body: r.body,
        }
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers.into_list(),
            body: r.body,
        }
    }
}

impl From<wit::Context> for Context {
    fn from(c: wit::Context) -> Self {
        Self {
            request_id: c.request_id,
            trace_id: c.trace_id,
            route: c.route,
            client_addr: c.client_addr,
            method: c.method,
            path: c.path,
            received_ns: c.received_ns,
            params: c.params,
            vars: c.vars,
            upstream: c.upstream.map(|u| UpstreamCall {
                service: u.service,
                endpoint: u.endpoint,
            }),
        }
    }
}

impl From<Action> for wit::Action {
    fn from(action: Action) -> Self {
        match action {
            Action::Continue(request) => Self::Continue(request.into()),
            Action::Respond(response) => Self::Respond(response.into()),
        }
    }
}

impl From<Settings> for wit::Settings {
    fn from(s: Settings) -> Self {
        Self {
            request_body: s.request_body,
            response_body: s.response_body,
            request_only: s.request_only,
        }
    }
}
