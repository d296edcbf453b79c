//! A request's life on its route: the request phase (plugins in order, each
//! `continue` or `respond`), the upstream call, then the response phase (in reverse,
//! only the plugins whose `on-request` returned `continue`, less those that said they
//! are `request-only`).
//!
//! Bodies stream untouched unless a plugin in the chain asked for them; then they are
//! buffered up to the route's cap. Every plugin output is checked before use: an
//! invalid header, status or path is the plugin's failure, never the client's.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

use crate::config::Listener;
use crate::config::OnError;
use crate::error::{ErrorCode, Reject};
use crate::normalize::normalize_path;
use crate::plugin::{Action, Context, PluginFailure, UpstreamCall};
use crate::plugin::{Request as PluginRequest, Response as PluginResponse};
use crate::router::Miss;
use crate::snapshot::{ChainPlugin, Route, Snapshot};
use crate::trace::{TRACEPARENT, TraceContext};
use crate::upstream::{ProxyBody, full_body, stream_body, strip_hop_by_hop};

/// A body as the pipeline holds it: still streaming, or buffered.
enum Body {
    Stream(ProxyBody),
    Buffered(Bytes),
}

impl Body {
    fn into_proxy(self) -> ProxyBody {
        match self {
            Self::Stream(body) => body,
            Self::Buffered(bytes) => full_body(bytes),
        }
    }

    /// Buffers the body, refusing more than `cap` bytes.
    async fn buffer(self, cap: usize) -> Result<Bytes, ()> {
        match self {
            Self::Buffered(bytes) if bytes.len() <= cap => Ok(bytes),
            Self::Buffered(_) => Err(()),
            Self::Stream(mut body) => {
                let mut buffer = bytes::BytesMut::new();
                while let Some(frame) = body.frame().await {
                    let Ok(data) = frame.map_err(|_| ())?.into_data() else {
                        continue; // trailers
                    };
                    if buffer.len() + data.len() > cap {
                        return Err(());
                    }
                    buffer.extend_from_slice(&data);
                }
                Ok(buffer.freeze())
            }
        }
    }
}

/// What the server knows about a request before the pipeline sees it.
pub struct RequestMeta<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// The request id (already chosen; the caller puts it on the response).
    pub request_id: &'a str,
    /// The trace the request belongs to.
    pub trace: &'a TraceContext,
    /// When it was received, on the `clock.monotonic-ns` clock.
    pub received_ns: u64,
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
    let (client, request_id) = (meta.client, meta.request_id);
    let (parts, body) = request.into_parts();
    let path = normalize_path(parts.uri.path())
        .map_err(|bad| Reject::new(ErrorCode::ValidationError, bad.0))?;
    let host = request_host(&parts.uri, &parts.headers);
    let found = snapshot
        .table(listener)
        .lookup(host.as_deref(), &parts.method, &path)
        .map_err(|miss| match miss {
            Miss::NotFound => Reject::new(ErrorCode::NotFound, format!("no route for {path}")),
            Miss::CaseVariant => Reject::new(
                ErrorCode::ValidationError,
                format!("{path} differs only in letter case from a route's path"),
            ),
            Miss::MethodNotAllowed(allowed) => {
                let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                Reject::new(
                    ErrorCode::MethodNotAllowed,
                    format!("{} is not allowed here", parts.method),
                )
                .with_header(
                    header::ALLOW,
                    HeaderValue::from_str(&allow.join(", ")).expect("methods are tokens"),
                )
            }
        })?;
    let route = &snapshot.routes[found.index];
    *matched = Some(route.name.clone());

    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // `X-Forwarded-Host` names what the client asked for, whatever plugins change.
    let original_host = headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    let mut ctx = Context {
        request_id: request_id.to_string(),
        trace_id: meta.trace.trace_id.clone(),
        route: route.name.to_string(),
        client_addr: client.to_string(),
        method: parts.method.as_str().to_string(),
        path: path.clone(),
        received_ns: meta.received_ns,
        params: found.params,
        vars: Vec::new(),
        upstream: None,
    };
    // The headers live as a `HeaderMap`; plugins get them as a list, made once and
    // then taken from each plugin's (checked) output.
    let mut wit_request = PluginRequest {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().map(str::to_string),
        headers: if route.chain.is_empty() {
            Vec::new()
        } else {
            to_wit_headers(&headers)
        },
        body: None,
    };
    let mut body = Body::Stream(body);
    if route.needs_request_body {
        let bytes = body.buffer(route.max_body_bytes).await.map_err(|()| {
            Reject::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the request body is over this route's limit of {} bytes",
                    route.max_body_bytes
                ),
            )
        })?;
        body = Body::Buffered(bytes);
    }

    // Request phase.
    let mut ran = 0;
    let mut answered = None;
    for plugin in &route.chain {
        if plugin.request_body
            && let Body::Buffered(bytes) = &body
        {
            wit_request.body = Some(bytes.to_vec());
        }
        let outcome = plugin.pool.on_request(&ctx, &wit_request).await;
        match outcome.and_then(|(action, vars)| checked_action(plugin, action).map(|a| (a, vars))) {
            Ok((action, vars)) => {
                merge_vars(&mut ctx.vars, vars);
                match action {
                    Checked::Continue(mut next, checked_headers) => {
                        if let Some(replaced) = next.body.take() {
                            body = Body::Buffered(replaced.into());
                        }
                        wit_request = next;
                        headers = checked_headers;
                        ran += 1;
                    }
                    Checked::Respond(mut response, checked_headers) => {
                        let bytes = response.body.take().unwrap_or_default();
                        answered = Some((response.status, checked_headers, bytes));
                        break;
                    }
                }
            }
            Err(failure) => {
                wit_request.body = None;
                skip_or_fail(plugin, &ctx, failure)?;
                ran += 1;
            }
        }
    }
    let ran = &route.chain[..ran];

    let (mut status, mut response_headers, mut response_body) = match answered {
        Some((status, headers, bytes)) => (status, headers, Body::Buffered(bytes.into())),
        None => {
            let forwarded = Forwarded {
                client,
                host: original_host,
                request_id,
                traceparent: meta.trace.header_value(),
            };
            let (status, headers, body, upstream) =
                call_upstream(route, wit_request, headers, body, &forwarded).await;
            ctx.upstream = upstream;
            (status, headers, body)
        }
    };

    // Response phase.
    if ran.iter().any(|p| p.response_body && !p.request_only) {
        match response_body.buffer(route.max_body_bytes).await {
            Ok(bytes) => response_body = Body::Buffered(bytes),
            Err(()) => {
                return Err(Reject::new(
                    ErrorCode::BadGateway,
                    "the upstream response is over this route's body limit for its plugins",
                ));
            }
        }
    }
    if ran.iter().any(|p| !p.request_only) {
        let mut response = PluginResponse {
            status,
            headers: to_wit_headers(&response_headers),
            body: None,
        };
        for plugin in ran.iter().rev().filter(|p| !p.request_only) {
            if plugin.response_body
                && let Body::Buffered(bytes) = &response_body
            {
                response.body = Some(bytes.to_vec());
            }
            let outcome = plugin.pool.on_response(&ctx, &response).await;
            match outcome
                .and_then(|(next, vars)| checked_response(plugin, next, 100).map(|r| (r, vars)))
            {
                Ok(((mut next, checked_headers), vars)) => {
                    merge_vars(&mut ctx.vars, vars);
                    if let Some(replaced) = next.body.take() {
                        response_body = Body::Buffered(replaced.into());
                    }
                    status = next.status;
                    response_headers = checked_headers;
                    response = next;
                }
                Err(failure) => {
                    response.body = None;
                    skip_or_fail(plugin, &ctx, failure)?;
                }
            }
        }
    }
    Ok(to_http_response(status, response_headers, response_body))
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

fn to_wit_headers(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect()
}

/// Headers from a plugin, each checked. Hop-by-hop headers a plugin adds are dropped.
fn from_wit_headers(headers: &[(String, Vec<u8>)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
        map.append(name, value);
    }
    strip_hop_by_hop(&mut map);
    Ok(map)
}

fn invalid(plugin: &ChainPlugin, detail: String) -> PluginFailure {
    PluginFailure {
        plugin: plugin.pool.plugin().clone(),
        hash: plugin.pool.hash().clone(),
        kind: crate::plugin::FailureKind::InvalidOutput,
        detail,
    }
}

/// What `on-request` returned, checked, with its headers as a `HeaderMap`.
enum Checked {
    Continue(PluginRequest, HeaderMap),
    Respond(PluginResponse, HeaderMap),
}

/// Checks what `on-request` returned.
fn checked_action(plugin: &ChainPlugin, action: Action) -> Result<Checked, PluginFailure> {
    match action {
        Action::Continue(request) => {
            Method::from_bytes(request.method.as_bytes())
                .map_err(|_| invalid(plugin, format!("{:?} is not a method", request.method)))?;
            match normalize_path(&request.path) {
                Ok(normal) if normal == request.path => {}
                _ => {
                    return Err(invalid(
                        plugin,
                        format!("path {:?} is not a normalised path", request.path),
                    ));
                }
            }
            if let Some(query) = &request.query
                && http::uri::PathAndQuery::try_from(format!("/?{query}")).is_err()
            {
                return Err(invalid(plugin, format!("query {query:?} is not valid")));
            }
            let headers = from_wit_headers(&request.headers).map_err(|why| invalid(plugin, why))?;
            Ok(Checked::Continue(request, headers))
        }
        Action::Respond(response) => checked_response(plugin, response, 200)
            .map(|(response, headers)| Checked::Respond(response, headers)),
    }
}

/// Checks a response from a plugin; its status must be at least `min_status`.
fn checked_response(
    plugin: &ChainPlugin,
    response: PluginResponse,
    min_status: u16,
) -> Result<(PluginResponse, HeaderMap), PluginFailure> {
    if !(min_status..=599).contains(&response.status) {
        return Err(invalid(
            plugin,
            format!(
                "status {} is out of range {min_status}..=599",
                response.status
            ),
        ));
    }
    let headers = from_wit_headers(&response.headers).map_err(|why| invalid(plugin, why))?;
    Ok((response, headers))
}

/// Logs a plugin failure; fails the request unless the plugin is `on_error = "skip"`.
fn skip_or_fail(plugin: &ChainPlugin, ctx: &Context, failure: PluginFailure) -> Result<(), Reject> {
    if failure.kind == crate::plugin::FailureKind::InvalidOutput {
        // The call itself succeeded and was counted; its output is what failed.
        plugin.pool.record_refused_output(&failure);
    }
    let skipped = plugin.on_error == OnError::Skip;
    tracing::error!(
        event = "plugin_error",
        plugin = &*failure.plugin,
        hash = &*failure.hash,
        kind = failure.kind.as_str(),
        route = %ctx.route,
        request_id = %ctx.request_id,
        trace_id = %ctx.trace_id,
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

fn merge_vars(vars: &mut Vec<(String, String)>, set: Vec<(String, String)>) {
    for (name, value) in set {
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => vars.push((name, value)),
        }
    }
}

/// Calls the route's upstream with the request as the plugins left it (`headers` are
/// `request`'s, checked). Upstream failures become envelope responses that still pass
/// the response phase. Returns the status, headers and body of the response and,
/// when the upstream answered, which service and endpoint.
async fn call_upstream(
    route: &Route,
    request: PluginRequest,
    mut headers: HeaderMap,
    body: Body,
    forwarded: &Forwarded<'_>,
) -> (u16, HeaderMap, Body, Option<UpstreamCall>) {
    let request_id = forwarded.request_id;
    let Some(service) = &route.service else {
        let (status, headers, body) = envelope_response(
            ErrorCode::BadGateway,
            format!("route {} has no upstream service", route.name),
            request_id,
        );
        return (status, headers, body, None);
    };
    let upstream_path = if route.strip_prefix {
        route.pattern.strip(&request.path)
    } else {
        &request.path
    };
    let path_and_query = match &request.query {
        Some(query) => format!("{upstream_path}?{query}"),
        None => upstream_path.to_string(),
    };
    forwarded.apply(&mut headers);
    if !route.preserve_host {
        headers.remove(header::HOST);
    }
    if matches!(body, Body::Buffered(_)) {
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut builder = Request::builder()
        .method(Method::from_bytes(request.method.as_bytes()).expect("checked method"))
        .uri(path_and_query);
    *builder.headers_mut().expect("valid builder") = headers;
    let outbound = match builder.body(body.into_proxy()) {
        Ok(outbound) => outbound,
        Err(error) => {
            let (status, headers, body) = envelope_response(
                ErrorCode::BadGateway,
                format!("bad upstream request: {error}"),
                request_id,
            );
            return (status, headers, body, None);
        }
    };
    match service.send(outbound, route.timeout).await {
        Ok((response, endpoint)) => {
            let (parts, body) = response.into_parts();
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            (
                parts.status.as_u16(),
                headers,
                Body::Stream(stream_body(body)),
                Some(UpstreamCall {
                    service: service.name.to_string(),
                    endpoint: endpoint.to_string(),
                }),
            )
        }
        Err(error) => {
            let code = match error {
                crate::upstream::UpstreamError::Timeout { .. } => ErrorCode::GatewayTimeout,
                _ => ErrorCode::BadGateway,
            };
            tracing::warn!(route = %route.name, request_id, error = %error, "upstream call failed");
            let message = match code {
                ErrorCode::GatewayTimeout => {
                    format!("service {} did not answer in time", service.name)
                }
                _ => format!("service {} is unreachable", service.name),
            };
            let (status, headers, body) = envelope_response(code, message, request_id);
            (status, headers, body, None)
        }
    }
}

/// A gateway-made error response that still passes the response phase.
fn envelope_response(code: ErrorCode, message: String, request_id: &str) -> (u16, HeaderMap, Body) {
    let body = Reject::new(code, message).body(request_id);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (code.status().as_u16(), headers, Body::Buffered(body))
}

/// What the upstream learns about the original request.
struct Forwarded<'a> {
    client: SocketAddr,
    host: Option<HeaderValue>,
    request_id: &'a str,
    traceparent: HeaderValue,
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
            HeaderValue::from_static("http"),
        );
        if let Some(host) = &self.host {
            headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
        }
        if let Ok(id) = HeaderValue::from_str(self.request_id) {
            headers.insert(crate::request_id::HEADER, id);
        }
        headers.insert(TRACEPARENT, self.traceparent.clone());
    }
}

fn to_http_response(status: u16, mut headers: HeaderMap, body: Body) -> Response<ProxyBody> {
    if matches!(body, Body::Buffered(_)) {
        // The length of a buffered (possibly replaced) body is the body's own.
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut out = Response::new(body.into_proxy());
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *out.headers_mut() = headers;
    out
}
