//! The harness's in-memory `exchange`: the request (and response) of one hook, with
//! the gateway's rules on every change (the shared header, query and status rules, and
//! the gateway's own path normaliser).

use super::{SentRequest, TestContext, TestRequest, with_host};
use crate::exchange::{EditError, Part};
use crate::rules;
use crate::{Headers, Method, Response, Settings, UpstreamCall};

/// The gateway's path normaliser, the same file: a path a plugin sets must come out
/// of it unchanged.
#[path = "../../../host/src/normalize.rs"]
#[allow(dead_code)]
mod normalize;

/// Most chain variables a request may carry.
const MAX_VARS: usize = 64;
/// Most bytes of name and value one variable may hold.
const MAX_VAR_BYTES: usize = 8192;

type List = Vec<(String, Vec<u8>)>;

/// One message's headers and body.
#[derive(Debug, Clone)]
struct Message {
    headers: List,
    body: Option<Vec<u8>>,
}

/// The exchange of the hook being run.
#[derive(Debug)]
pub(crate) struct MockExchange {
    request_id: String,
    trace_id: String,
    route: String,
    client_addr: String,
    received_ns: u64,
    received_method: Method,
    received_path: String,
    params: Vec<(String, String)>,
    pub(super) vars: Vec<(String, String)>,
    upstream: Option<UpstreamCall>,
    method: Method,
    path: String,
    query: Option<String>,
    request: Message,
    status: Option<u16>,
    response: Option<Message>,
    settings: Settings,
    /// A WebSocket handshake on a route that relays them.
    websocket: bool,
    /// The plugin asked for the WebSocket's messages.
    pub(super) watching: bool,
}

/// Checks a list of headers as the gateway checks a plugin's own answer.
pub(crate) fn check_headers(headers: &List) -> Result<(), String> {
    for (name, value) in headers {
        check_header(name, value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn check_header(name: &str, value: &[u8]) -> Result<(), EditError> {
    if !rules::is_valid_name(name) {
        return Err(EditError::InvalidName(name.to_string()));
    }
    let name = name.to_ascii_lowercase();
    if rules::is_reserved(&name) {
        return Err(EditError::Reserved(name));
    }
    if !rules::is_valid_value(value) {
        return Err(EditError::InvalidValue(name));
    }
    Ok(())
}

fn no_response() -> EditError {
    EditError::Unavailable("the response, in on_request".into())
}

impl MockExchange {
    pub(crate) fn new(
        ctx: &TestContext,
        request: &TestRequest,
        response: Option<&Response>,
        settings: Settings,
    ) -> Self {
        let request = &request.0;
        Self {
            request_id: ctx.request_id.clone(),
            trace_id: ctx.trace_id.clone(),
            route: ctx.route.clone(),
            client_addr: ctx.client_addr.clone(),
            received_ns: ctx.received_ns.unwrap_or_else(crate::clock::monotonic_ns),
            received_method: ctx.method.clone().unwrap_or_else(|| request.method.clone()),
            received_path: ctx.path.clone().unwrap_or_else(|| request.path.clone()),
            params: ctx.params.clone(),
            vars: ctx.vars.clone(),
            upstream: response.and(ctx.upstream.clone()),
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            request: Message {
                headers: request.headers.entries(),
                body: request.body.clone(),
            },
            status: response.map(|r| r.status),
            response: response.map(|r| Message {
                headers: r.headers.entries(),
                body: r.body.clone(),
            }),
            settings,
            websocket: ctx.websocket,
            watching: false,
        }
    }

    /// The request as the plugin left it.
    pub(crate) fn sent_request(&self, given: &TestRequest) -> SentRequest {
        SentRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: Headers::from_list(self.request.headers.clone()),
            body: if self.settings.request_body {
                self.request.body.clone()
            } else {
                given.0.body.clone()
            },
        }
    }

    /// The response as the plugin left it (`given` supplies a body it could not see).
    pub(crate) fn sent_response(&self, given: Response) -> Response {
        let message = self.response.clone().expect("a response phase");
        Response {
            status: self.status.unwrap_or(given.status),
            headers: Headers::from_list(message.headers),
            body: if self.settings.response_body {
                message.body
            } else {
                given.body
            },
        }
    }

    /// The message `part` names, if it can be read now: in `on_response` the request
    /// has gone upstream, so its headers and body read as absent (as in the gateway).
    fn message(&self, part: Part) -> Option<&Message> {
        match part {
            Part::Request if self.response.is_none() => Some(&self.request),
            Part::Request => None,
            Part::Response => self.response.as_ref(),
        }
    }

    fn message_mut(&mut self, part: Part) -> Result<&mut Message, EditError> {
        match part {
            Part::Request if self.response.is_none() => Ok(&mut self.request),
            Part::Request => Err(EditError::Unavailable(
                "the request, in on_response (it has gone upstream)".into(),
            )),
            Part::Response => self.response.as_mut().ok_or_else(no_response),
        }
    }

    fn in_request_phase(&self, what: &str) -> Result<(), EditError> {
        match self.response {
            None => Ok(()),
            Some(_) => Err(EditError::Unavailable(format!(
                "{what}, in on_response (the request has gone upstream)"
            ))),
        }
    }

    pub(crate) fn request_id(&mut self) -> String {
        self.request_id.clone()
    }

    pub(crate) fn watch_messages(&mut self) -> Result<(), EditError> {
        self.in_request_phase("WebSocket messages")?;
        if !self.websocket {
            return Err(EditError::Unavailable(
                "WebSocket messages: this request is not a WebSocket handshake on a route \
                 with [routes.websocket]"
                    .into(),
            ));
        }
        self.watching = true;
        Ok(())
    }

    pub(crate) fn trace_id(&mut self) -> String {
        self.trace_id.clone()
    }

    pub(crate) fn route(&mut self) -> String {
        self.route.clone()
    }

    pub(crate) fn client_addr(&mut self) -> String {
        self.client_addr.clone()
    }

    pub(crate) fn received_ns(&mut self) -> u64 {
        self.received_ns
    }

    pub(crate) fn received_method(&mut self) -> Method {
        self.received_method.clone()
    }

    pub(crate) fn received_path(&mut self) -> String {
        self.received_path.clone()
    }

    pub(crate) fn param(&mut self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn params(&mut self) -> Vec<(String, String)> {
        self.params.clone()
    }

    pub(crate) fn var(&mut self, name: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn vars(&mut self) -> Vec<(String, String)> {
        self.vars.clone()
    }

    pub(crate) fn set_var(&mut self, name: &str, value: &str) -> Result<(), EditError> {
        if name.len() + value.len() > MAX_VAR_BYTES {
            return Err(EditError::TooLarge(format!(
                "variable {name:?} is over {MAX_VAR_BYTES} bytes"
            )));
        }
        let count = self.vars.len();
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None if count >= MAX_VARS => {
                return Err(EditError::TooLarge(format!(
                    "a request carries at most {MAX_VARS} variables"
                )));
            }
            None => self.vars.push((name.to_string(), value.to_string())),
        }
        with_host(|host| host.vars_set.push((name.to_string(), value.to_string())));
        Ok(())
    }

    pub(crate) fn upstream(&mut self) -> Option<UpstreamCall> {
        self.upstream.clone()
    }

    pub(crate) fn method(&mut self) -> Method {
        self.method.clone()
    }

    pub(crate) fn set_method(&mut self, method: &Method) -> Result<(), EditError> {
        self.in_request_phase("the method")?;
        if !rules::is_token(method.as_str()) {
            return Err(EditError::InvalidMethod(method.as_str().to_string()));
        }
        self.method = Method::parse(method.as_str());
        Ok(())
    }

    pub(crate) fn path(&mut self) -> String {
        self.path.clone()
    }

    pub(crate) fn set_path(&mut self, path: &str) -> Result<(), EditError> {
        self.in_request_phase("the path")?;
        match normalize::normalize_path(path) {
            Ok(normal) if normal == path => {
                self.path = normal;
                Ok(())
            }
            Ok(normal) => Err(EditError::InvalidPath(format!(
                "{path:?} is not normalised (it would be {normal:?})"
            ))),
            Err(bad) => Err(EditError::InvalidPath(bad.to_string())),
        }
    }

    pub(crate) fn query(&mut self) -> Option<String> {
        self.query.clone()
    }

    pub(crate) fn set_query(&mut self, query: Option<&str>) -> Result<(), EditError> {
        self.in_request_phase("the query")?;
        if let Some(query) = query {
            rules::check_query(query).map_err(|why| EditError::InvalidQuery(why.into()))?;
        }
        self.query = query.map(str::to_string);
        Ok(())
    }

    pub(crate) fn status(&mut self) -> Option<u16> {
        self.status
    }

    pub(crate) fn set_status(&mut self, status: u16) -> Result<(), EditError> {
        if self.response.is_none() {
            return Err(no_response());
        }
        if !rules::is_valid_status(status) {
            return Err(EditError::InvalidStatus(status));
        }
        self.status = Some(status);
        Ok(())
    }

    pub(crate) fn header(&mut self, part: Part, name: &str) -> Option<Vec<u8>> {
        self.message(part)?
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn header_all(&mut self, part: Part, name: &str) -> Vec<Vec<u8>> {
        self.message(part)
            .map(|m| {
                m.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn headers(&mut self, part: Part, names: &[String]) -> Vec<Option<Vec<u8>>> {
        names.iter().map(|name| self.header(part, name)).collect()
    }

    pub(crate) fn has_header(&mut self, part: Part, name: &str) -> bool {
        self.header(part, name).is_some()
    }

    pub(crate) fn set_header(
        &mut self,
        part: Part,
        name: &str,
        value: &[u8],
    ) -> Result<(), EditError> {
        self.put_header(part, name, value, true)
    }

    pub(crate) fn append_header(
        &mut self,
        part: Part,
        name: &str,
        value: &[u8],
    ) -> Result<(), EditError> {
        self.put_header(part, name, value, false)
    }

    /// Sets (`replace`) or appends a header, checked first, as the host does.
    fn put_header(
        &mut self,
        part: Part,
        name: &str,
        value: &[u8],
        replace: bool,
    ) -> Result<(), EditError> {
        check_header(name, value)?;
        let headers = &mut self.message_mut(part)?.headers;
        if replace {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        headers.push((name.to_ascii_lowercase(), value.to_vec()));
        Ok(())
    }

    pub(crate) fn remove_header(&mut self, part: Part, name: &str) -> Result<bool, EditError> {
        let message = self.message_mut(part)?;
        let before = message.headers.len();
        message
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(message.headers.len() != before)
    }

    pub(crate) fn header_entries(&mut self, part: Part) -> Vec<(String, Vec<u8>)> {
        self.message(part)
            .map(|m| m.headers.clone())
            .unwrap_or_default()
    }

    fn body_allowed(&self, part: Part) -> bool {
        match part {
            Part::Request => self.settings.request_body,
            Part::Response => self.settings.response_body,
        }
    }

    pub(crate) fn body(&mut self, part: Part) -> Option<Vec<u8>> {
        if !self.body_allowed(part) {
            return None;
        }
        Some(self.message(part)?.body.clone().unwrap_or_default())
    }

    pub(crate) fn set_body(&mut self, part: Part, body: &[u8]) -> Result<(), EditError> {
        if !self.body_allowed(part) {
            return Err(EditError::Unavailable(
                "a body the plugin did not ask for in its settings".into(),
            ));
        }
        self.message_mut(part)?.body = Some(body.to_vec());
        Ok(())
    }
}
