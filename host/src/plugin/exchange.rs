//! The host side of the WIT `exchange` resource: the request (and, in the response
//! phase, the response) being served, lent to one plugin call at a time. A plugin
//! reads what it touches through calls; every change is checked here, when it is
//! made (the rules in `message_rules` and the path normaliser), so nothing a plugin
//! hands back needs checking again.
//!
//! The pipeline owns an [`ExchangeState`] for the request's whole life, boxed, and
//! moves the box into the instance's resource table for the length of each call (a
//! pointer moves, not the ~400-byte state: `memmove` was 17% of a call unboxed).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use wasmtime::component::Resource;

use super::bindings::types::{self, EditError, Part};
use super::host::HostState;
use crate::message_rules;
use crate::normalize::normalize_path;

/// Most chain variables a request may carry.
pub const MAX_VARS: usize = 64;
/// Most bytes of name and value one variable may hold.
pub const MAX_VAR_BYTES: usize = 8192;

/// What does not change while a request is served.
#[derive(Debug)]
pub struct Facts {
    /// The request id.
    pub request_id: String,
    /// The W3C trace id.
    pub trace_id: String,
    /// The matched route.
    pub route: Arc<str>,
    /// The client's `ip:port`.
    pub client_addr: String,
    /// When it was received, on the `clock.monotonic-ns` clock.
    pub received_ns: u64,
    /// The method as received.
    pub method: Method,
    /// The normalised path as received.
    pub path: String,
    /// Path parameters.
    pub params: Vec<(String, String)>,
}

/// The response in the response phase.
#[derive(Debug, Clone)]
pub struct ResponseState {
    /// The status.
    pub status: StatusCode,
    /// The headers (hop-by-hop headers removed).
    pub headers: HeaderMap,
    /// The body, when buffered for a plugin that asked for it.
    pub body: Option<Bytes>,
}

/// Which bodies the plugin being called may read and replace.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyAccess {
    /// The request body (in `on-request`).
    pub request: bool,
    /// The response body (in `on-response`).
    pub response: bool,
}

/// One request as the plugins see it, carried through the phases. Cloned before a
/// call to an `on_error = "skip"` plugin, so that a failed call leaves no edit behind.
#[derive(Debug, Clone)]
pub struct ExchangeState {
    /// The fixed facts.
    pub facts: Arc<Facts>,
    /// Chain variables, in the order first set.
    pub vars: Vec<(String, String)>,
    /// The upstream that answered, in the response phase.
    pub upstream: Option<types::UpstreamCall>,
    /// The method to send upstream.
    pub method: Method,
    /// The path to send upstream (normalised).
    pub path: String,
    /// The query to send upstream.
    pub query: Option<String>,
    /// The request headers to send upstream; empty once the request has gone.
    pub request_headers: HeaderMap,
    /// The buffered request body, when some plugin on the route asked for it.
    pub request_body: Option<Bytes>,
    /// The response, in the response phase.
    pub response: Option<ResponseState>,
    /// What the plugin being called may do with bodies.
    pub access: BodyAccess,
    /// A WebSocket handshake on a route that relays them: plugins may watch its
    /// messages.
    pub websocket: bool,
    /// The plugin being called asked for the WebSocket's messages
    /// (`watch-messages`); the pipeline takes it after each call.
    pub watch_asked: bool,
}

impl ExchangeState {
    /// A request about to enter the request phase.
    pub fn new(facts: Arc<Facts>, query: Option<String>, headers: HeaderMap) -> Self {
        Self {
            method: facts.method.clone(),
            path: facts.path.clone(),
            facts,
            vars: Vec::new(),
            upstream: None,
            query,
            request_headers: headers,
            request_body: None,
            response: None,
            access: BodyAccess::default(),
            websocket: false,
            watch_asked: false,
        }
    }

    /// The chain variable `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers(&self, part: Part) -> Option<&HeaderMap> {
        match part {
            Part::Request if self.response.is_none() => Some(&self.request_headers),
            Part::Request => None,
            Part::Response => self.response.as_ref().map(|r| &r.headers),
        }
    }

    fn headers_mut(&mut self, part: Part) -> Result<&mut HeaderMap, EditError> {
        match part {
            Part::Request if self.response.is_none() => Ok(&mut self.request_headers),
            Part::Request => Err(EditError::Unavailable(
                "the request, in on-response (it has gone upstream)".into(),
            )),
            Part::Response => self
                .response
                .as_mut()
                .map(|r| &mut r.headers)
                .ok_or_else(no_response),
        }
    }

    /// Sets (`replace`) or appends a header a plugin asked for, checked first.
    fn put_header(
        &mut self,
        part: Part,
        name: &str,
        value: Vec<u8>,
        replace: bool,
    ) -> Result<(), EditError> {
        let (name, value) = checked_header(name, value)?;
        let map = self.headers_mut(part)?;
        if replace {
            map.insert(name, value);
        } else {
            map.append(name, value);
        }
        Ok(())
    }

    fn request_phase(&self, what: &str) -> Result<(), EditError> {
        match self.response {
            None => Ok(()),
            Some(_) => Err(EditError::Unavailable(format!(
                "{what}, in on-response (the request has gone upstream)"
            ))),
        }
    }
}

fn no_response() -> EditError {
    EditError::Unavailable("the response, in on-request".into())
}

/// A header name and value a plugin may set.
fn checked_header(name: &str, value: Vec<u8>) -> Result<(HeaderName, HeaderValue), EditError> {
    if !message_rules::is_valid_name(name) {
        return Err(EditError::InvalidName(name.to_string()));
    }
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| EditError::InvalidName(name.to_string()))?;
    if message_rules::is_reserved(name.as_str()) {
        return Err(EditError::Reserved(name.as_str().to_string()));
    }
    let value = HeaderValue::from_bytes(&value)
        .ok()
        .filter(|v| message_rules::is_valid_value(v.as_bytes()))
        .ok_or_else(|| EditError::InvalidValue(name.as_str().to_string()))?;
    Ok((name, value))
}

/// The WIT method of an HTTP method.
pub fn wit_method(method: &Method) -> types::Method {
    match *method {
        Method::GET => types::Method::Get,
        Method::HEAD => types::Method::Head,
        Method::POST => types::Method::Post,
        Method::PUT => types::Method::Put,
        Method::DELETE => types::Method::Delete,
        Method::CONNECT => types::Method::Connect,
        Method::OPTIONS => types::Method::Options,
        Method::TRACE => types::Method::Trace,
        Method::PATCH => types::Method::Patch,
        ref other => types::Method::Other(other.as_str().to_string()),
    }
}

/// The HTTP method of a WIT method, if it is a valid token.
pub fn http_method(method: &types::Method) -> Option<Method> {
    Some(match method {
        types::Method::Get => Method::GET,
        types::Method::Head => Method::HEAD,
        types::Method::Post => Method::POST,
        types::Method::Put => Method::PUT,
        types::Method::Delete => Method::DELETE,
        types::Method::Connect => Method::CONNECT,
        types::Method::Options => Method::OPTIONS,
        types::Method::Trace => Method::TRACE,
        types::Method::Patch => Method::PATCH,
        types::Method::Other(token) => {
            if !message_rules::is_token(token) {
                return None;
            }
            Method::from_bytes(token.as_bytes()).ok()?
        }
    })
}

type Handle = Resource<types::Exchange>;

impl HostState {
    /// The exchange behind a handle the guest was lent. The component model only lets a
    /// guest pass back a handle it was given during this call, so it is always there.
    fn exchange(&mut self, handle: &Handle) -> &mut ExchangeState {
        let ours = Resource::<Box<ExchangeState>>::new_borrow(handle.rep());
        self.table_mut()
            .get_mut(&ours)
            .expect("a lent exchange stays in the table for the whole call")
    }
}

fn first(map: Option<&HeaderMap>, name: &str) -> Option<Vec<u8>> {
    map?.get(name).map(|v| v.as_bytes().to_vec())
}

impl types::HostExchange for HostState {
    async fn request_id(&mut self, ex: Handle) -> String {
        self.exchange(&ex).facts.request_id.clone()
    }

    async fn watch_messages(&mut self, ex: Handle) -> Result<(), EditError> {
        let exchange = self.exchange(&ex);
        exchange.request_phase("WebSocket messages")?;
        if !exchange.websocket {
            return Err(EditError::Unavailable(
                "WebSocket messages: this request is not a WebSocket handshake on a route \
                 with [routes.websocket]"
                    .into(),
            ));
        }
        exchange.watch_asked = true;
        Ok(())
    }

    async fn trace_id(&mut self, ex: Handle) -> String {
        self.exchange(&ex).facts.trace_id.clone()
    }

    async fn route(&mut self, ex: Handle) -> String {
        self.exchange(&ex).facts.route.to_string()
    }

    async fn client_addr(&mut self, ex: Handle) -> String {
        self.exchange(&ex).facts.client_addr.clone()
    }

    async fn received_ns(&mut self, ex: Handle) -> u64 {
        self.exchange(&ex).facts.received_ns
    }

    async fn received_method(&mut self, ex: Handle) -> types::Method {
        wit_method(&self.exchange(&ex).facts.method)
    }

    async fn received_path(&mut self, ex: Handle) -> String {
        self.exchange(&ex).facts.path.clone()
    }

    async fn param(&mut self, ex: Handle, name: String) -> Option<String> {
        self.exchange(&ex)
            .facts
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    async fn params(&mut self, ex: Handle) -> Vec<(String, String)> {
        self.exchange(&ex).facts.params.clone()
    }

    async fn var(&mut self, ex: Handle, name: String) -> Option<String> {
        self.exchange(&ex).var(&name).map(str::to_string)
    }

    async fn vars(&mut self, ex: Handle) -> Vec<(String, String)> {
        self.exchange(&ex).vars.clone()
    }

    async fn set_var(&mut self, ex: Handle, name: String, value: String) -> Result<(), EditError> {
        if name.len() + value.len() > MAX_VAR_BYTES {
            return Err(EditError::TooLarge(format!(
                "variable {name:?} is over {MAX_VAR_BYTES} bytes"
            )));
        }
        let vars = &mut self.exchange(&ex).vars;
        let count = vars.len();
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None if count >= MAX_VARS => {
                return Err(EditError::TooLarge(format!(
                    "a request carries at most {MAX_VARS} variables"
                )));
            }
            None => vars.push((name, value)),
        }
        Ok(())
    }

    async fn upstream(&mut self, ex: Handle) -> Option<types::UpstreamCall> {
        self.exchange(&ex).upstream.clone()
    }

    async fn method(&mut self, ex: Handle) -> types::Method {
        wit_method(&self.exchange(&ex).method)
    }

    async fn set_method(&mut self, ex: Handle, method: types::Method) -> Result<(), EditError> {
        let exchange = self.exchange(&ex);
        exchange.request_phase("the method")?;
        let method = http_method(&method).ok_or_else(|| {
            EditError::InvalidMethod(match method {
                types::Method::Other(token) => token,
                _ => String::new(),
            })
        })?;
        exchange.method = method;
        Ok(())
    }

    async fn path(&mut self, ex: Handle) -> String {
        self.exchange(&ex).path.clone()
    }

    async fn set_path(&mut self, ex: Handle, path: String) -> Result<(), EditError> {
        let exchange = self.exchange(&ex);
        exchange.request_phase("the path")?;
        match normalize_path(&path) {
            Ok(normal) if normal == path => {
                exchange.path = path;
                Ok(())
            }
            Ok(normal) => Err(EditError::InvalidPath(format!(
                "{path:?} is not normalised (it would be {normal:?})"
            ))),
            Err(bad) => Err(EditError::InvalidPath(bad.to_string())),
        }
    }

    async fn query(&mut self, ex: Handle) -> Option<String> {
        self.exchange(&ex).query.clone()
    }

    async fn set_query(&mut self, ex: Handle, query: Option<String>) -> Result<(), EditError> {
        let exchange = self.exchange(&ex);
        exchange.request_phase("the query")?;
        if let Some(query) = &query {
            message_rules::check_query(query)
                .map_err(|why| EditError::InvalidQuery(why.to_string()))?;
        }
        exchange.query = query;
        Ok(())
    }

    async fn status(&mut self, ex: Handle) -> Option<u16> {
        self.exchange(&ex)
            .response
            .as_ref()
            .map(|r| r.status.as_u16())
    }

    async fn set_status(&mut self, ex: Handle, status: u16) -> Result<(), EditError> {
        let response = self
            .exchange(&ex)
            .response
            .as_mut()
            .ok_or_else(no_response)?;
        if !message_rules::is_valid_status(status) {
            return Err(EditError::InvalidStatus(status));
        }
        response.status =
            StatusCode::from_u16(status).map_err(|_| EditError::InvalidStatus(status))?;
        Ok(())
    }

    async fn header(&mut self, ex: Handle, part: Part, name: String) -> Option<Vec<u8>> {
        first(self.exchange(&ex).headers(part), &name)
    }

    async fn header_all(&mut self, ex: Handle, part: Part, name: String) -> Vec<Vec<u8>> {
        let Some(map) = self.exchange(&ex).headers(part) else {
            return Vec::new();
        };
        map.get_all(name.as_str())
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    }

    async fn headers(
        &mut self,
        ex: Handle,
        part: Part,
        names: Vec<String>,
    ) -> Vec<Option<Vec<u8>>> {
        let map = self.exchange(&ex).headers(part);
        names.iter().map(|name| first(map, name)).collect()
    }

    async fn has_header(&mut self, ex: Handle, part: Part, name: String) -> bool {
        self.exchange(&ex)
            .headers(part)
            .is_some_and(|map| map.contains_key(name.as_str()))
    }

    async fn set_header(
        &mut self,
        ex: Handle,
        part: Part,
        name: String,
        value: Vec<u8>,
    ) -> Result<(), EditError> {
        self.exchange(&ex).put_header(part, &name, value, true)
    }

    async fn append_header(
        &mut self,
        ex: Handle,
        part: Part,
        name: String,
        value: Vec<u8>,
    ) -> Result<(), EditError> {
        self.exchange(&ex).put_header(part, &name, value, false)
    }

    async fn remove_header(
        &mut self,
        ex: Handle,
        part: Part,
        name: String,
    ) -> Result<bool, EditError> {
        let map = self.exchange(&ex).headers_mut(part)?;
        Ok(match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => map.remove(name).is_some(),
            Err(_) => false,
        })
    }

    async fn header_entries(&mut self, ex: Handle, part: Part) -> Vec<(String, Vec<u8>)> {
        self.exchange(&ex)
            .headers(part)
            .map(|map| {
                map.iter()
                    .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn body(&mut self, ex: Handle, part: Part) -> Option<Vec<u8>> {
        let exchange = self.exchange(&ex);
        match part {
            Part::Request if exchange.access.request && exchange.response.is_none() => Some(
                exchange
                    .request_body
                    .as_deref()
                    .unwrap_or_default()
                    .to_vec(),
            ),
            Part::Response if exchange.access.response => {
                // None: a response too large to buffer, streamed past the plugins.
                exchange
                    .response
                    .as_ref()?
                    .body
                    .as_ref()
                    .map(|b| b.to_vec())
            }
            _ => None,
        }
    }

    async fn set_body(&mut self, ex: Handle, part: Part, body: Vec<u8>) -> Result<(), EditError> {
        let exchange = self.exchange(&ex);
        let unavailable =
            || EditError::Unavailable("a body the plugin did not ask for in its settings".into());
        match part {
            Part::Request if exchange.access.request => {
                exchange.request_phase("the request body")?;
                exchange.request_body = Some(body.into());
            }
            Part::Response if exchange.access.response => {
                exchange.response.as_mut().ok_or_else(no_response)?.body = Some(body.into());
            }
            _ => return Err(unavailable()),
        }
        Ok(())
    }

    async fn drop(&mut self, _: Handle) -> wasmtime::Result<()> {
        // Exchanges are only ever lent (`borrow<exchange>`); the pipeline takes them back.
        Ok(())
    }
}

#[cfg(test)]
mod tests;
