//! A request's life on its route, as named phases (pingora's are the model):
//!
//! 1. **route**: normalise the path, pick the route;
//! 2. **request phase**: plugins in order, each lent the request's [`ExchangeState`]:
//!    `continue`, `continue-to` another granted upstream, or `respond`;
//! 3. **forward**: the upstream call (the route's service or the plugin's choice);
//! 4. **response phase**: in reverse, the plugins whose request phase continued, less
//!    those that are `request-only`;
//! 5. **log phase**: after the client has the whole body, `on-log` for the plugins
//!    that asked, with what happened (failures included), off the client's path.
//!
//! Bodies stream untouched unless a plugin in the chain asked for them; then they are
//! buffered up to the route's cap. Changes a plugin makes are checked as it makes
//! them (in the `exchange` resource); its own answers are checked here.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, BodyStream, StreamBody};

use crate::compress::{self, Inflated, RequestCoding};
use crate::config::{LargeResponses, Listener, OnError};
use crate::error::{ErrorCode, Reject};
use crate::message_rules;
use crate::metrics::RetryLabels;
use crate::normalize::normalize_path;
use crate::plugin::{
    Action, ExchangeState, Facts, FailureKind, LogEntry, LogFailure, LogFailureKind,
    MessageVerdict, PluginFailure, PluginTime, ResponseState, SocketMessage, Upstream,
    UpstreamCall, wit_method,
};
use crate::router::{Miss, RequestParts};
use crate::snapshot::{ChainPlugin, Route, Snapshot};
use crate::trace::{TRACEPARENT, TraceContext};
use crate::upstream::retry::{MAX_ATTEMPTS, TryFailure};
use crate::upstream::{
    BoxError, ProxyBody, Unavailable, UpstreamError, full_body, strip_hop_by_hop,
    strip_request_hop_by_hop,
};
use crate::websocket;

/// A body as the pipeline holds it: still streaming, or buffered.
enum Body {
    Stream(ProxyBody),
    Buffered(Bytes),
}

/// Why a body could not be buffered.
enum Unbuffered {
    /// Over the cap: the whole body, still to be read (what was read put back first).
    TooLarge(Body),
    /// The body failed while it was read.
    Broken,
}

impl Body {
    fn into_proxy(self) -> ProxyBody {
        match self {
            Self::Stream(body) => body,
            Self::Buffered(bytes) => full_body(bytes),
        }
    }

    /// Buffers the body, refusing more than `cap` bytes.
    async fn buffer(self, cap: usize) -> Result<Bytes, Unbuffered> {
        match self {
            Self::Buffered(bytes) if bytes.len() <= cap => Ok(bytes),
            Self::Buffered(_) => Err(Unbuffered::TooLarge(self)),
            Self::Stream(mut body) => {
                let mut buffer = bytes::BytesMut::new();
                while let Some(frame) = body.frame().await {
                    let Ok(data) = frame.map_err(|_| Unbuffered::Broken)?.into_data() else {
                        continue; // trailers
                    };
                    if buffer.len() + data.len() > cap {
                        buffer.extend_from_slice(&data);
                        return Err(Unbuffered::TooLarge(Self::Stream(prepend(
                            buffer.freeze(),
                            body,
                        ))));
                    }
                    buffer.extend_from_slice(&data);
                }
                Ok(buffer.freeze())
            }
        }
    }
}

/// `rest` with `head` (what was already read of it) put back in front.
fn prepend(head: Bytes, rest: ProxyBody) -> ProxyBody {
    let head = futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(head))]);
    let whole = futures_util::StreamExt::chain(head, BodyStream::new(rest));
    BodyExt::boxed(StreamBody::new(whole))
}

/// What the server knows about a request before the pipeline sees it.
pub struct RequestMeta<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// It came over TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
    /// Its connection's verified client certificate, as `X-Forwarded-Client-Cert`.
    pub client_cert: Option<&'a HeaderValue>,
    /// The request id (already chosen; the caller puts it on the response).
    pub request_id: &'a str,
    /// The trace the request belongs to.
    pub trace: &'a TraceContext,
    /// When it was received, on the `clock.monotonic-ns` clock.
    pub received_ns: u64,
}

/// What the log phase learns about a request as it goes through the others; it notes
/// nothing on a route that does not log.
#[derive(Default)]
struct Trail {
    logs: bool,
    answered_by: Option<Arc<str>>,
    failure: Option<(LogFailureKind, Option<Arc<str>>)>,
    bytes_in: Option<u64>,
    upstream: Option<UpstreamCall>,
    upstream_ns: Option<u64>,
    plugin_ns: Vec<(Arc<str>, u64)>,
    /// The upstream's side of a WebSocket it accepted (noted whether or not the route
    /// logs).
    switched: Option<hyper::upgrade::OnUpgrade>,
    /// A WebSocket whose plugins watch its messages before the upstream is connected.
    held: Option<Watched>,
}

/// What the request phase leaves for a WebSocket its plugins watch.
struct Watched {
    exchange: Box<ExchangeState>,
    target: Option<Upstream>,
    watchers: Vec<Watcher>,
}

impl Trail {
    fn time(&mut self, plugin: &Arc<str>, took: Duration) {
        if !self.logs {
            return;
        }
        let ns = took.as_nanos() as u64;
        match self.plugin_ns.iter_mut().find(|(p, _)| p == plugin) {
            Some(slot) => slot.1 += ns,
            None => self.plugin_ns.push((plugin.clone(), ns)),
        }
    }

    fn fail(&mut self, kind: LogFailureKind, plugin: Option<&Arc<str>>) {
        self.failure = Some((kind, plugin.cloned()));
    }
}

/// Serves one request with `snapshot`. The matched route's name is left in `route`
/// (for metrics), even when the request then fails.
pub async fn handle(
    snapshot: Arc<Snapshot>,
    listener: Listener,
    request: Request<ProxyBody>,
    meta: &RequestMeta<'_>,
    matched: &mut Option<Arc<str>>,
) -> Result<Response<ProxyBody>, Reject> {
    let (parts, body) = request.into_parts();
    let path = normalize_path(parts.uri.path())
        .map_err(|bad| Reject::new(ErrorCode::ValidationError, bad.0))?;
    let host = request_host(&parts.uri, &parts.headers);
    let found = snapshot
        .table(listener)
        .lookup_request(
            host.as_deref(),
            &parts.method,
            &path,
            &RequestParts {
                headers: &parts.headers,
                query: parts.uri.query(),
            },
        )
        .map_err(|miss| refuse(miss, &parts.method, &path))?;
    let index = found.index;
    let route = &snapshot.routes[index];
    *matched = Some(route.name.clone());
    // Chosen by the client's own `Accept-Encoding`, whatever plugins make of it.
    let encoding = route
        .compression
        .as_ref()
        .and_then(|policy| policy.negotiate(&parts.headers));

    let facts = Arc::new(Facts {
        request_id: meta.request_id.to_string(),
        trace_id: meta.trace.trace_id.clone(),
        route: route.name.clone(),
        client_addr: meta.client.to_string(),
        received_ns: meta.received_ns,
        method: parts.method.clone(),
        path,
        params: found.params,
    });
    // A WebSocket handshake on a route that relays them; elsewhere the upgrade
    // headers go with the other hop-by-hop ones.
    let websocket = match &route.websocket {
        Some(_) if websocket::is_upgrade(&parts.headers) => Some(
            websocket::Offer::from_request(&parts.method, parts.version, &parts.headers)
                .map_err(|why| Reject::new(ErrorCode::ValidationError, why))?,
        ),
        _ => None,
    };
    let mut headers = parts.headers;
    strip_request_hop_by_hop(&mut headers);
    strip_identity(&mut headers);
    // A client's own never passes; a verified certificate's is the gateway's.
    headers.remove(crate::tls::X_FORWARDED_CLIENT_CERT);
    if let Some(cert) = meta.client_cert {
        headers.insert(crate::tls::X_FORWARDED_CLIENT_CERT, cert.clone());
    }
    // `X-Forwarded-Host` names what the client asked for, whatever plugins change.
    let forwarded = Forwarded {
        client: meta.client,
        proto: if meta.secure { "https" } else { "http" },
        host: headers.get(header::HOST).cloned().or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        }),
        request_id: meta.request_id,
        traceparent: meta.trace.header_value(),
        websocket,
    };
    let mut trail = Trail {
        logs: route.logs,
        bytes_in: route.logs.then(|| content_length(&headers)).flatten(),
        ..Trail::default()
    };
    let mut exchange = Box::new(ExchangeState::new(
        facts.clone(),
        parts.uri.query().map(str::to_string),
        headers,
    ));
    exchange.websocket = forwarded.websocket.is_some();
    let mut result = serve(route, exchange, body, &forwarded, &mut trail).await;
    if let (Some(policy), Ok((response, _))) = (&route.websocket, &mut result)
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let upstream = match (trail.switched.take(), trail.held.take()) {
            (Some(upgrade), _) => Some(websocket::Upstream::Ready(upgrade)),
            (None, Some(held)) => Some(websocket::Upstream::Held(Box::new(Held {
                snapshot: snapshot.clone(),
                route: index,
                exchange: Some(held.exchange),
                target: held.target,
                watchers: held.watchers,
                client: forwarded.client,
                proto: forwarded.proto,
                host: forwarded.host.clone(),
                request_id: forwarded.request_id.to_string(),
                traceparent: forwarded.traceparent.clone(),
                offer: forwarded.websocket.clone().expect("a WebSocket handshake"),
            }))),
            (None, None) => None,
        };
        if let Some(upstream) = upstream {
            response
                .extensions_mut()
                .insert(websocket::Switched::new(websocket::UpstreamSocket {
                    upstream,
                    route: route.name.clone(),
                    policy: policy.clone(),
                }));
        }
    }
    if !route.logs && route.compression.is_none() {
        return result
            .map(|(response, _)| response)
            .map_err(|(reject, _)| reject);
    }
    // Compression and the log phase take the final response, the gateway's own
    // answers included.
    let (response, vars) = match result {
        Ok(done) => done,
        Err((reject, vars)) => (
            reject
                .into_response::<Bytes>(meta.request_id)
                .map(full_body),
            vars,
        ),
    };
    let response = match &route.compression {
        Some(policy) => policy.apply(&parts.method, encoding, response),
        None => response,
    };
    if !route.logs {
        return Ok(response);
    }
    // The log phase runs once the client has the whole response.
    let entry = LogDraft {
        snapshot: snapshot.clone(),
        route: index,
        request_id: meta.request_id.to_string(),
        trace_id: meta.trace.trace_id.clone(),
        client_addr: meta.client.to_string(),
        received_ns: meta.received_ns,
        method: parts.method,
        path: facts.path.clone(),
        query: parts.uri.query().map(str::to_string),
        status: response.status().as_u16(),
        trail,
        vars,
    };
    Ok(response.map(|body| LoggedBody::wrap(body, entry)))
}

/// The client-facing answer for a request no route takes.
fn refuse(miss: Miss, method: &Method, path: &str) -> Reject {
    match miss {
        Miss::NotFound => Reject::new(ErrorCode::NotFound, format!("no route for {path}")),
        Miss::CaseVariant => Reject::new(
            ErrorCode::ValidationError,
            format!("{path} differs only in letter case from a route's path"),
        ),
        Miss::MethodNotAllowed(allowed) => {
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            Reject::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed here"),
            )
            .with_header(
                header::ALLOW,
                HeaderValue::from_str(&allow.join(", ")).expect("methods are tokens"),
            )
        }
    }
}

type Served = (Response<ProxyBody>, Vec<(String, String)>);

/// The phases after routing. On failure, the rejection and the chain variables so far.
async fn serve(
    route: &Route,
    mut exchange: Box<ExchangeState>,
    body: ProxyBody,
    forwarded: &Forwarded<'_>,
    trail: &mut Trail,
) -> Result<Served, (Reject, Vec<(String, String)>)> {
    macro_rules! fail {
        ($reject:expr) => {
            return Err(($reject, std::mem::take(&mut exchange.vars)))
        };
    }
    // A body plugins asked for is theirs, in the exchange, until it goes upstream.
    let mut stream = Some(body);
    let mut encoded = None;
    if route.needs_request_body {
        let body = Body::Stream(stream.take().expect("not taken yet"));
        match body.buffer(route.max_body_bytes).await {
            Ok(bytes) => {
                trail.bytes_in = Some(bytes.len() as u64);
                match inflate_request_body(route, &mut exchange, bytes).await {
                    Ok(kept) => encoded = kept,
                    Err(reject) => {
                        if reject.code == ErrorCode::PayloadTooLarge {
                            trail.fail(LogFailureKind::BodyTooLarge, None);
                        }
                        fail!(reject);
                    }
                }
            }
            Err(_) => {
                trail.fail(LogFailureKind::BodyTooLarge, None);
                fail!(Reject::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "the request body is over this route's limit of {} bytes",
                        route.max_body_bytes
                    ),
                ));
            }
        }
    }

    // Request phase.
    let mut ran = 0;
    let mut answered = None;
    let mut target = None;
    let mut watchers = Vec::new();
    for (index, plugin) in route.chain.iter().enumerate() {
        let before = skippable(plugin, &exchange);
        let (back, outcome, took) = plugin.pool.on_request(exchange).await;
        exchange = back;
        if std::mem::take(&mut exchange.watch_asked) {
            watchers.push(Watcher {
                plugin: index,
                holding: true,
            });
        }
        trail.time(plugin.pool.plugin(), took);
        let outcome = outcome.and_then(|action| checked_action(plugin, action));
        match outcome {
            Ok(Decision::Continue(chosen)) => {
                if chosen.is_some() {
                    target = chosen;
                }
                ran += 1;
            }
            Ok(Decision::Respond(status, headers, bytes)) => {
                trail.answered_by = Some(plugin.pool.plugin().clone());
                answered = Some((status, headers, bytes));
                break;
            }
            Err(failure) => {
                if let Err(reject) = skip_or_fail(plugin, &exchange, &failure) {
                    trail.fail(failure_kind(failure.kind), Some(plugin.pool.plugin()));
                    fail!(reject);
                }
                exchange = before.expect("a skipped plugin's exchange was kept");
                ran += 1;
            }
        }
    }
    let ran = &route.chain[..ran];

    // A WebSocket whose plugins watch its messages: the gateway answers the handshake
    // itself; the upstream is connected later, from the relay (`Held::connect`).
    if answered.is_none()
        && !watchers.is_empty()
        && let Some(offer) = &forwarded.websocket
    {
        let headers = offer.answer_itself(&mut exchange.request_headers);
        let vars = exchange.vars.clone();
        trail.held = Some(Watched {
            exchange,
            target,
            watchers,
        });
        return Ok((
            to_http_response(
                StatusCode::SWITCHING_PROTOCOLS,
                headers,
                Body::Buffered(Bytes::new()),
            ),
            vars,
        ));
    }

    // Forward.
    let (status, headers, mut response_body) = match answered {
        Some((status, headers, bytes)) => (status, headers, Body::Buffered(bytes)),
        None => {
            let body = match stream {
                Some(stream) => Body::Stream(stream),
                None => {
                    let body = exchange.request_body.take().unwrap_or_default();
                    Body::Buffered(match encoded {
                        Some(encoded) => encoded.upstream_body(body, &mut exchange),
                        None => body,
                    })
                }
            };
            Box::pin(forward(
                route,
                &mut exchange,
                target,
                body,
                forwarded,
                trail,
            ))
            .await
        }
    };

    // Response phase.
    let plugins: Vec<&ChainPlugin> = ran.iter().rev().filter(|p| !p.request_only).collect();
    if plugins.iter().any(|p| p.response_body) {
        match response_body.buffer(route.max_body_bytes).await {
            Ok(bytes) => response_body = Body::Buffered(bytes),
            Err(Unbuffered::TooLarge(whole)) if route.large_responses == LargeResponses::Stream => {
                // The plugins see no body; the client gets all of it, as it comes.
                response_body = whole;
            }
            Err(_) => {
                trail.fail(LogFailureKind::UpstreamTooLarge, None);
                fail!(Reject::new(
                    ErrorCode::BadGateway,
                    "the upstream response is over this route's body limit for its plugins",
                ));
            }
        }
    }
    exchange.request_headers = HeaderMap::new();
    exchange.response = Some(ResponseState {
        status,
        headers,
        body: match &response_body {
            Body::Buffered(bytes) => Some(bytes.clone()),
            Body::Stream(_) => None,
        },
    });
    for plugin in plugins {
        let before = skippable(plugin, &exchange);
        let (back, outcome, took) = plugin.pool.on_response(exchange).await;
        exchange = back;
        trail.time(plugin.pool.plugin(), took);
        if let Err(failure) = outcome {
            if let Err(reject) = skip_or_fail(plugin, &exchange, &failure) {
                trail.fail(failure_kind(failure.kind), Some(plugin.pool.plugin()));
                fail!(reject);
            }
            exchange = before.expect("a skipped plugin's exchange was kept");
        }
    }
    let response = exchange.response.take().expect("set above");
    if let (Some(bytes), Body::Buffered(_)) = (response.body, &response_body) {
        response_body = Body::Buffered(bytes);
    }
    Ok((
        to_http_response(response.status, response.headers, response_body),
        exchange.vars,
    ))
}

/// A compressed request body as the client sent it, kept while the plugins read it
/// inflated.
struct EncodedBody {
    /// The bytes as they came.
    sent: Bytes,
    /// What the plugins were given.
    inflated: Bytes,
    /// The client's `Content-Encoding` lines.
    content_encoding: Vec<HeaderValue>,
}

impl EncodedBody {
    /// What goes upstream when the plugins are done with `body`: the client's bytes,
    /// `Content-Encoding` back in place, if no plugin changed it; else `body` as it is,
    /// uncompressed (its length is then its own: `forward` drops `Content-Length`).
    fn upstream_body(self, body: Bytes, exchange: &mut ExchangeState) -> Bytes {
        if body != self.inflated {
            return body;
        }
        let headers = &mut exchange.request_headers;
        headers.remove(header::CONTENT_ENCODING);
        for value in self.content_encoding {
            headers.append(header::CONTENT_ENCODING, value);
        }
        self.sent
    }
}

/// Puts the buffered request body in the exchange for the plugins: inflated, under
/// the route's cap, when the client compressed it (the plugins then see no
/// `Content-Encoding` and no `Content-Length`); the original kept for the upstream.
async fn inflate_request_body(
    route: &Route,
    exchange: &mut ExchangeState,
    bytes: Bytes,
) -> Result<Option<EncodedBody>, Reject> {
    let coding = match RequestCoding::of(&exchange.request_headers) {
        Ok(Some(coding)) => coding,
        Ok(None) => {
            exchange.request_body = Some(bytes);
            return Ok(None);
        }
        Err(coding) => {
            return Err(Reject::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "the request body's content coding {coding:?} is not one the gateway reads"
                ),
            )
            .with_header(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, deflate, br, zstd"),
            ));
        }
    };
    let inflated = compress::inflate(&bytes, coding, route.max_body_bytes)
        .await
        .map_err(|why| match why {
            Inflated::TooLarge => Reject::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the request body inflates to over this route's limit of {} bytes",
                    route.max_body_bytes
                ),
            ),
            Inflated::Corrupt => Reject::new(
                ErrorCode::ValidationError,
                "the request body is not valid in its Content-Encoding",
            ),
        })?;
    let headers = &mut exchange.request_headers;
    let content_encoding = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::CONTENT_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    exchange.request_body = Some(inflated.clone());
    Ok(Some(EncodedBody {
        sent: bytes,
        inflated,
        content_encoding,
    }))
}

/// Removes the client's own identity headers (`X-User-*`, `X_User_*`…): only auth
/// plugins set them, whatever the route, so no upstream can be handed a forged one.
fn strip_identity(headers: &mut HeaderMap) {
    // An empty Vec does not allocate: the common case costs one pass over the names.
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| message_rules::is_identity_header(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// The host the client asked for, lower-case, without port.
fn request_host(uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
    let raw = match uri.host() {
        Some(host) => host,
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let host = match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => raw,
    };
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
}

/// A valid `Content-Length`, if the message has one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn invalid(plugin: &ChainPlugin, detail: String) -> PluginFailure {
    PluginFailure {
        plugin: plugin.pool.plugin().clone(),
        hash: plugin.pool.hash().clone(),
        kind: FailureKind::InvalidOutput,
        detail,
    }
}

/// What `on-request` decided, checked.
enum Decision {
    /// Go on, to the chosen upstream if any.
    Continue(Option<Upstream>),
    /// The plugin's answer.
    Respond(StatusCode, HeaderMap, Bytes),
}

/// Checks what `on-request` returned: a target inside the plugin's grant, an answer
/// with a final status and valid headers.
fn checked_action(plugin: &ChainPlugin, action: Action) -> Result<Decision, PluginFailure> {
    match action {
        Action::Continue => Ok(Decision::Continue(None)),
        Action::ContinueTo(target) => plugin
            .pool
            .grants()
            .targets
            .resolve(&target)
            .map(|upstream| Decision::Continue(Some(upstream)))
            .map_err(|why| invalid(plugin, why)),
        Action::Respond(response) => {
            if !message_rules::is_valid_answer_status(response.status) {
                return Err(invalid(
                    plugin,
                    format!("status {} is out of range 200..=599", response.status),
                ));
            }
            let status = StatusCode::from_u16(response.status)
                .map_err(|_| invalid(plugin, format!("status {}", response.status)))?;
            let mut headers = HeaderMap::with_capacity(response.headers.len());
            for (name, value) in &response.headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .filter(|_| message_rules::is_valid_name(name))
                    .ok_or_else(|| {
                        invalid(plugin, format!("{name:?} is not a valid header name"))
                    })?;
                if message_rules::is_reserved(name.as_str()) {
                    return Err(invalid(
                        plugin,
                        format!("header {name} is the gateway's to set"),
                    ));
                }
                let value = HeaderValue::from_bytes(value)
                    .ok()
                    .filter(|v| message_rules::is_valid_value(v.as_bytes()))
                    .ok_or_else(|| {
                        invalid(plugin, format!("the value of header {name} is not valid"))
                    })?;
                headers.append(name, value);
            }
            Ok(Decision::Respond(
                status,
                headers,
                Bytes::from(response.body),
            ))
        }
    }
}

/// The log-entry kind of a plugin failure.
fn failure_kind(kind: FailureKind) -> LogFailureKind {
    match kind {
        FailureKind::Timeout => LogFailureKind::PluginTimeout,
        FailureKind::OutOfMemory => LogFailureKind::PluginOutOfMemory,
        FailureKind::Trap => LogFailureKind::PluginTrap,
        FailureKind::InvalidOutput => LogFailureKind::PluginRefused,
        FailureKind::Configure | FailureKind::Instantiate => LogFailureKind::PluginUnavailable,
    }
}

/// A copy of the exchange to go back to if `plugin`, being `on_error = "skip"`, fails:
/// a skipped plugin leaves none of its edits behind (an auth plugin that trapped
/// half-way must not have half-stripped or half-set identity headers).
fn skippable(plugin: &ChainPlugin, exchange: &ExchangeState) -> Option<Box<ExchangeState>> {
    (plugin.on_error == OnError::Skip).then(|| Box::new(exchange.clone()))
}

/// Logs a plugin failure; fails the request unless the plugin is `on_error = "skip"`.
fn skip_or_fail(
    plugin: &ChainPlugin,
    exchange: &ExchangeState,
    failure: &PluginFailure,
) -> Result<(), Reject> {
    if failure.kind == FailureKind::InvalidOutput {
        // The call itself succeeded and was counted; its output is what failed.
        plugin.pool.record_refused_output(failure);
    }
    let skipped = plugin.on_error == OnError::Skip;
    tracing::error!(
        event = "plugin_error",
        plugin = &*failure.plugin,
        hash = &*failure.hash,
        kind = failure.kind.as_str(),
        route = %exchange.facts.route,
        request_id = %exchange.facts.request_id,
        trace_id = %exchange.facts.trace_id,
        skipped,
        error = %failure.detail,
        "plugin failed"
    );
    if skipped {
        Ok(())
    } else {
        Err(Reject::new(
            ErrorCode::PluginError,
            format!("plugin {} failed", failure.plugin),
        ))
    }
}

/// Calls the upstream (the plugins' choice, else the route's service) with the request
/// as the plugins left it. Upstream failures become envelope responses that still pass
/// the response phase.
async fn forward(
    route: &Route,
    exchange: &mut ExchangeState,
    target: Option<Upstream>,
    body: Body,
    forwarded: &Forwarded<'_>,
    trail: &mut Trail,
) -> (StatusCode, HeaderMap, Body) {
    let request_id = forwarded.request_id;
    let (service, endpoint) = match target {
        Some(Upstream::Service(service)) => (service, None),
        Some(Upstream::Endpoint(direct, endpoint)) => (direct, Some(endpoint)),
        None => match route.pick_service() {
            Some(service) => (service.clone(), None),
            None => {
                trail.fail(LogFailureKind::NoUpstream, None);
                return envelope_response(
                    ErrorCode::BadGateway,
                    format!("route {} has no upstream service", route.name),
                    request_id,
                );
            }
        },
    };
    let upstream_path = if route.strip_prefix {
        route.pattern.strip(&exchange.path)
    } else {
        &exchange.path
    };
    let path_and_query = match &exchange.query {
        Some(query) => format!("{upstream_path}?{query}"),
        None => upstream_path.to_string(),
    };
    let mut headers = std::mem::take(&mut exchange.request_headers);
    forwarded.apply(&mut headers);
    let websocket_key = forwarded
        .websocket
        .as_ref()
        .map(|offer| offer.upstream_request(&mut headers));
    if !route.preserve_host {
        headers.remove(header::HOST);
    }
    if matches!(body, Body::Buffered(_)) {
        headers.remove(header::CONTENT_LENGTH);
    }
    // Only a body that can be sent again allows another try: a buffered one, or none.
    let replayable = match &body {
        Body::Buffered(bytes) => Some(bytes.clone()),
        Body::Stream(stream) if stream.is_end_stream() => Some(Bytes::new()),
        Body::Stream(_) => None,
    };
    let attempts = match (&replayable, &endpoint) {
        (Some(_), None) => route.retry.attempts_for(&exchange.method),
        _ => 1,
    };
    let key = service.hash_key(&headers, forwarded.client.ip());
    let mut uri = match http::Uri::try_from(path_and_query) {
        Ok(uri) => uri,
        Err(error) => {
            return envelope_response(
                ErrorCode::BadGateway,
                format!("bad upstream request: {error}"),
                request_id,
            );
        }
    };
    let mut body = Some(body);
    // The endpoints tried so far: one per try.
    let mut tried = [0usize; MAX_ATTEMPTS as usize];
    let mut tries = 0;
    let started = Instant::now();
    let deadline = started + route.timeout;
    let mut attempt = 1;
    let (sent, called) = loop {
        let last = attempt >= attempts;
        // A try that may not be the last keeps what the next one needs: the URI (shared
        // bytes) and the header pairs (shared bytes, one allocation; far cheaper than a
        // `HeaderMap` clone). The last try takes them.
        let kept = (!last).then(|| {
            let pairs: Vec<(HeaderName, HeaderValue)> = headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            (uri.clone(), pairs)
        });
        let mut outbound = Request::new(match &replayable {
            Some(bytes) => full_body(bytes.clone()),
            None => body.take().expect("sent once").into_proxy(),
        });
        *outbound.method_mut() = exchange.method.clone();
        *outbound.uri_mut() = std::mem::take(&mut uri);
        *outbound.headers_mut() = std::mem::take(&mut headers);
        // The first try has the whole of the route's time, unread from the clock.
        let remaining = if attempt == 1 {
            route.timeout
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let timeout = route
            .retry
            .per_try()
            .map_or(remaining, |t| t.min(remaining));
        let (sent, called) = match &endpoint {
            Some(endpoint) => (
                service.send_to(endpoint, outbound, timeout).await,
                endpoint.url.clone(),
            ),
            None => match service.claim(key, &tried[..tries]) {
                Ok(claim) => {
                    let index = claim.index();
                    if tries < tried.len() {
                        tried[tries] = index;
                        tries += 1;
                    }
                    let sent = service.send_claimed(claim, outbound, timeout).await;
                    (sent, service.endpoint(index).url.clone())
                }
                Err(reason) => {
                    let reason = crate::upstream::UpstreamError::Unavailable {
                        service: service.name.to_string(),
                        reason,
                    };
                    break (Err(reason), Arc::from(""));
                }
            },
        };
        let failure = match &sent {
            Ok(response) if response.status().is_server_error() => Some(TryFailure::Status5xx),
            Ok(_) => None,
            Err(error) => error.try_failure(),
        };
        let retry = failure.filter(|&failure| {
            attempt < attempts
                && route.retry.retries(failure)
                && deadline > Instant::now()
                && route.retry.take_budget()
        });
        let Some(failure) = retry else {
            break (sent, called);
        };
        tracing::debug!(route = %route.name, request_id, endpoint = %called, failure = failure.as_str(), attempt, "upstream try failed; trying again");
        service
            .metrics()
            .upstream_retries
            .get_or_create(&RetryLabels {
                service: service.name.clone(),
                reason: failure.as_str(),
            })
            .inc();
        drop(sent);
        let (next_uri, pairs) = kept.expect("kept for a try that was not the last");
        uri = next_uri;
        headers = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            headers.append(name, value);
        }
        let wait = route.retry.backoff(attempt);
        tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        attempt += 1;
    };
    match sent {
        Ok(response) => {
            trail.upstream_ns = Some(started.elapsed().as_nanos() as u64);
            let call = UpstreamCall {
                service: service.name.to_string(),
                endpoint: called.to_string(),
            };
            trail.upstream = Some(call.clone());
            exchange.upstream = Some(call);
            let (mut parts, body) = response.into_parts();
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            if let (Some(offer), Some(sent)) = (&forwarded.websocket, &websocket_key)
                && parts.status == StatusCode::SWITCHING_PROTOCOLS
            {
                let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
                match (offer.accept(sent, &mut headers), upgrade) {
                    (Ok(()), Some(upgrade)) => trail.switched = Some(upgrade),
                    (accepted, _) => {
                        let why = accepted.err().unwrap_or_else(|| "no connection".into());
                        tracing::warn!(route = %route.name, request_id, endpoint = %called, "a WebSocket handshake failed upstream: {why}");
                        trail.fail(LogFailureKind::UpstreamUnreachable, None);
                        return envelope_response(
                            ErrorCode::BadGateway,
                            format!(
                                "service {} refused the WebSocket handshake: {why}",
                                service.name
                            ),
                            request_id,
                        );
                    }
                }
            }
            (parts.status, headers, Body::Stream(body))
        }
        Err(error) => {
            tracing::warn!(route = %route.name, request_id, error = %error, attempts = attempt, "upstream call failed");
            let name = if service.name.is_empty() {
                "the chosen endpoint".to_string()
            } else {
                format!("service {}", service.name)
            };
            match error {
                UpstreamError::Timeout { .. } => {
                    trail.fail(LogFailureKind::UpstreamTimeout, None);
                    envelope_response(
                        ErrorCode::GatewayTimeout,
                        format!("{name} did not answer in time"),
                        request_id,
                    )
                }
                UpstreamError::Unavailable { reason, .. } => {
                    trail.fail(LogFailureKind::UpstreamUnreachable, None);
                    let mut answer = envelope_response(
                        ErrorCode::ServiceUnavailable,
                        format!("{name} is unavailable: {reason}"),
                        request_id,
                    );
                    if let Unavailable::Open(ms) = reason {
                        answer.1.insert(
                            header::RETRY_AFTER,
                            HeaderValue::from(ms.div_ceil(1000).max(1)),
                        );
                    }
                    answer
                }
                _ => {
                    trail.fail(LogFailureKind::UpstreamUnreachable, None);
                    envelope_response(
                        ErrorCode::BadGateway,
                        format!("{name} is unreachable"),
                        request_id,
                    )
                }
            }
        }
    }
}

/// A gateway-made error response that still passes the response phase.
fn envelope_response(
    code: ErrorCode,
    message: String,
    request_id: &str,
) -> (StatusCode, HeaderMap, Body) {
    let body = Reject::new(code, message).body(request_id);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (crate::error::status_of(code), headers, Body::Buffered(body))
}

/// A plugin watching a WebSocket's messages: its place in the chain, and whether it
/// still holds the upstream back (it has let no message through yet).
#[derive(Debug, Clone, Copy)]
struct Watcher {
    plugin: usize,
    holding: bool,
}

/// A WebSocket whose plugins watch the client's messages: the exchange kept for them,
/// and what the gateway's handshake with the upstream needs once they let it go.
pub struct Held {
    snapshot: Arc<Snapshot>,
    route: usize,
    exchange: Option<Box<ExchangeState>>,
    target: Option<Upstream>,
    watchers: Vec<Watcher>,
    client: SocketAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
    request_id: String,
    traceparent: HeaderValue,
    offer: websocket::Offer,
}

/// What the watching plugins made of a client's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// Pass it on.
    Forward,
    /// Keep it from the upstream.
    Drop,
    /// Close the WebSocket with this code and reason.
    Close(u16, String),
}

impl Held {
    /// Whether a watching plugin still holds the upstream back.
    pub fn holding(&self) -> bool {
        self.watchers.iter().any(|w| w.holding)
    }

    /// Whether any plugin still watches.
    pub fn watching(&self) -> bool {
        !self.watchers.is_empty()
    }

    /// The route's name.
    pub fn route(&self) -> &Arc<str> {
        &self.snapshot.routes[self.route].name
    }

    /// Hands the client's `message` to each watching plugin in chain order, until one
    /// keeps it from the upstream or closes; what becomes of it.
    pub async fn judge(&mut self, message: SocketMessage) -> Judged {
        use MessageVerdict as V;
        let snapshot = self.snapshot.clone();
        let chain = &snapshot.routes[self.route].chain;
        let mut i = 0;
        while i < self.watchers.len() {
            let plugin = &chain[self.watchers[i].plugin];
            let exchange = self
                .exchange
                .take()
                .expect("the exchange is back after each call");
            let (back, outcome, _) = plugin.pool.on_message(exchange, message.clone()).await;
            self.exchange = Some(back);
            let verdict = match outcome {
                Ok(verdict) => verdict,
                Err(failure) => {
                    tracing::warn!(route = %self.route(), request_id = %self.request_id, plugin = %failure.plugin, kind = failure.kind.as_str(), detail = %failure.detail, "a plugin failed on a WebSocket message");
                    return Judged::Close(1011, format!("plugin {} failed", failure.plugin));
                }
            };
            match verdict {
                V::Forward => {
                    self.watchers[i].holding = false;
                    i += 1;
                }
                V::Release => {
                    self.watchers.remove(i);
                }
                V::Accept => {
                    self.watchers.remove(i);
                    return Judged::Drop;
                }
                V::Drop => return Judged::Drop,
                V::Close(frame) => {
                    let code = match frame.code {
                        1000..=1003 | 1007..=1014 | 3000..=4999 => frame.code,
                        _ => 1008,
                    };
                    let mut reason = frame.reason;
                    let mut cut = reason.len().min(123);
                    while !reason.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    reason.truncate(cut);
                    return Judged::Close(code, reason);
                }
            }
        }
        Judged::Forward
    }

    /// Makes the gateway's handshake with the upstream, with the request as the
    /// plugins left it; the upstream's side once it switched, or why not.
    pub async fn connect(&mut self) -> Result<hyper::upgrade::OnUpgrade, String> {
        let snapshot = self.snapshot.clone();
        let route = &snapshot.routes[self.route];
        let forwarded = Forwarded {
            client: self.client,
            proto: self.proto,
            host: self.host.clone(),
            request_id: &self.request_id,
            traceparent: self.traceparent.clone(),
            websocket: Some(self.offer.clone()),
        };
        let mut trail = Trail::default();
        let exchange = self
            .exchange
            .as_mut()
            .expect("the exchange is back after each call");
        // Later edits to the request would go nowhere: it is sent now.
        let saved = exchange.request_headers.clone();
        let (status, _, _) = Box::pin(forward(
            route,
            exchange,
            self.target.clone(),
            Body::Buffered(Bytes::new()),
            &forwarded,
            &mut trail,
        ))
        .await;
        exchange.request_headers = saved;
        trail
            .switched
            .ok_or_else(|| format!("the upstream answered the handshake with {status}"))
    }
}

/// What the upstream learns about the original request.
struct Forwarded<'a> {
    client: SocketAddr,
    /// `http` or `https`, as the client came.
    proto: &'static str,
    host: Option<HeaderValue>,
    request_id: &'a str,
    traceparent: HeaderValue,
    /// The client's WebSocket handshake, on a route that relays them.
    websocket: Option<websocket::Offer>,
}

impl Forwarded<'_> {
    /// Sets `X-Forwarded-For` (appended), `-Proto`, `-Host`, `X-Request-Id` and
    /// `traceparent` (the gateway's span as parent).
    fn apply(&self, headers: &mut HeaderMap) {
        const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
        let client_ip = self.client.ip().to_string();
        let forwarded_for = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
            Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {client_ip}"),
            _ => client_ip,
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            headers.insert(XFF, value);
        }
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(self.proto),
        );
        // The client's own never passes: an HTTP/1.0 request may name no host.
        const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
        match &self.host {
            Some(host) => headers.insert(XFH, host.clone()),
            None => headers.remove(XFH),
        };
        if let Ok(id) = HeaderValue::from_str(self.request_id) {
            headers.insert(crate::request_id::HEADER, id);
        }
        headers.insert(TRACEPARENT, self.traceparent.clone());
    }
}

fn to_http_response(status: StatusCode, mut headers: HeaderMap, body: Body) -> Response<ProxyBody> {
    if matches!(body, Body::Buffered(_)) {
        // The length of a buffered (possibly replaced) body is the body's own.
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut out = Response::new(body.into_proxy());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// Everything the log phase needs but the body's byte count and end.
struct LogDraft {
    snapshot: Arc<Snapshot>,
    route: usize,
    request_id: String,
    trace_id: String,
    client_addr: String,
    received_ns: u64,
    method: Method,
    path: String,
    query: Option<String>,
    status: u16,
    trail: Trail,
    vars: Vec<(String, String)>,
}

impl LogDraft {
    /// Runs the log phase in the background: `on-log` of every plugin that asked, in
    /// chain order, each with the same entry.
    fn finish(self, bytes_out: u64, complete: bool) {
        let total_ns = crate::plugin::monotonic_ns().saturating_sub(self.received_ns);
        let received_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(total_ns / 1_000_000);
        let trail = self.trail;
        let failure = trail.failure.map(|(kind, plugin)| LogFailure {
            kind,
            code: failure_code(kind, self.status).to_string(),
            plugin: plugin.map(|p| p.to_string()),
        });
        let entry = LogEntry {
            request_id: self.request_id,
            trace_id: self.trace_id,
            route: self.snapshot.routes[self.route].name.to_string(),
            client_addr: self.client_addr,
            received_unix_ms,
            method: wit_method(&self.method),
            path: self.path,
            query: self.query,
            status: self.status,
            answered_by: trail.answered_by.map(|p| p.to_string()),
            failure,
            bytes_in: trail.bytes_in,
            bytes_out,
            complete,
            total_ns,
            upstream_ns: trail.upstream_ns,
            upstream: trail.upstream,
            plugins: trail
                .plugin_ns
                .into_iter()
                .map(|(plugin, ns)| PluginTime {
                    plugin: plugin.to_string(),
                    ns,
                })
                .collect(),
            vars: self.vars,
        };
        let snapshot = self.snapshot;
        let route = self.route;
        // Without a runtime (the process is shutting down), there is no log phase.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for plugin in snapshot.routes[route].chain.iter().filter(|p| p.log) {
                if let Err(failure) = plugin.pool.on_log(&entry).await {
                    tracing::warn!(
                        event = "plugin_error",
                        plugin = &*failure.plugin,
                        hash = &*failure.hash,
                        kind = failure.kind.as_str(),
                        phase = "log",
                        request_id = %entry.request_id,
                        error = %failure.detail,
                        "plugin failed in the log phase"
                    );
                }
            }
        });
    }
}

/// The envelope code the client got for a failure of `kind` with `status`.
fn failure_code(kind: LogFailureKind, status: u16) -> &'static str {
    match kind {
        LogFailureKind::PluginTrap
        | LogFailureKind::PluginTimeout
        | LogFailureKind::PluginOutOfMemory
        | LogFailureKind::PluginRefused
        | LogFailureKind::PluginUnavailable => ErrorCode::PluginError.as_str(),
        LogFailureKind::BodyTooLarge => ErrorCode::PayloadTooLarge.as_str(),
        LogFailureKind::UpstreamTimeout if status == 504 => ErrorCode::GatewayTimeout.as_str(),
        LogFailureKind::UpstreamUnreachable if status == 503 => {
            ErrorCode::ServiceUnavailable.as_str()
        }
        _ => ErrorCode::BadGateway.as_str(),
    }
}

/// A response body that counts what it hands on and starts the log phase when it
/// ends, or when it is dropped before its end (the client went away).
struct LoggedBody {
    inner: ProxyBody,
    bytes: u64,
    draft: Option<LogDraft>,
}

impl LoggedBody {
    fn wrap(inner: ProxyBody, draft: LogDraft) -> ProxyBody {
        if inner.is_end_stream() {
            // An empty body may never be polled.
            draft.finish(0, true);
            return inner;
        }
        BodyExt::boxed(Self {
            inner,
            bytes: 0,
            draft: Some(draft),
        })
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                // A body of known length is not polled to its end: hyper stops once it
                // has the length's worth, so its last frame is where it ends.
                if self.inner.is_end_stream() {
                    let bytes = self.bytes;
                    if let Some(draft) = self.draft.take() {
                        draft.finish(bytes, true);
                    }
                }
            }
            Poll::Ready(None) => {
                let bytes = self.bytes;
                if let Some(draft) = self.draft.take() {
                    draft.finish(bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                let bytes = self.bytes;
                if let Some(draft) = self.draft.take() {
                    draft.finish(bytes, false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(draft) = self.draft.take() {
            draft.finish(self.bytes, false);
        }
    }
}
