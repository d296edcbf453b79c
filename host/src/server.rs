//! The client-facing listener: accepting connections up to the connection caps (plain
//! TCP, or TLS with its handshake when `[gateway.tls]` is set; then HTTP/1.1, or HTTP/2
//! by prior knowledge or ALPN), per-connection limits (slow headers, idle
//! keep-alive, stalled bodies, clients that stop reading), the checks every request
//! passes before routing (URI length, header size, ambiguous framing, duplicate
//! `Host`), the request id, and graceful shutdown.
//!
//! It owns no routing or plugin logic: each checked request goes to `pipeline::handle`
//! with the snapshot current at that moment.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::client_body::BodyFault;
use crate::config::{Limits, Listener};
use crate::connection::{Activity, ActivityIo, Admitted, Cancels, ConnectionLimits, Refusal};
use crate::error::{ErrorCode, Reject};
use crate::framing::{FramingFacts, SniffedIo, TrackLimits, Verdict};
use crate::health::Health;
use crate::metrics::{self, Metrics, RefusedLabels, RequestLabels, RouteLabels};
use crate::pipeline;
use crate::plugin::monotonic_ns;
use crate::request_id;
use crate::snapshot::Snapshot;
use crate::status::{self, BuiltinPaths};
use crate::trace::TraceContext;
use crate::upstream::{ProxyBody, full_body};
use crate::websocket;

/// The future of one served request, boxed to keep the connection type nameable.
type ServedFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>,
>;

/// What every connection shares: the current snapshot, metrics and health.
pub struct Shared {
    /// The snapshot requests start with; swapped whole on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Every metric the gateway exports.
    pub metrics: Arc<Metrics>,
    /// Upstream probes and the gateway's readiness.
    pub health: Arc<Health>,
    /// Where this listener answers `/health` and `/metrics`.
    pub builtin: BuiltinPaths,
}

/// Serves `listener` until `shutdown` completes, then lets in-flight requests finish
/// for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    grace: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let track = TrackLimits {
        max_target: limits.max_uri_bytes,
        max_buf: (limits.max_header_bytes + limits.max_uri_bytes) * 2 + 8192,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The header read timeout is ours (below): hyper's also runs between
        // requests, and would close kept-alive connections before `idle_timeout_ms`.
        .header_read_timeout(None)
        .max_buf_size(track.max_buf)
        .max_headers(256)
        .keep_alive(true);
    // HTTP/2 abuse: streams in flight are capped, and so are cancelled ones (streams
    // reset before hyper took them, here; after, by `Cancels`); a header block over
    // the list size (a CONTINUATION flood included) is refused as it arrives.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size((limits.max_header_bytes * 2) as u32)
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(Some(limits.http2_max_resets as usize));
    let builder = Arc::new(builder);
    let timeouts = ConnectionPolicy {
        max_cancels: limits.http2_max_resets,
        header: Duration::from_millis(limits.header_read_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
        send: Duration::from_millis(limits.send_timeout_ms),
    };
    let caps = ConnectionLimits::new(limits.max_connections, limits.max_connections_per_client);
    let connections = TaskTracker::new();
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = match caps.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                refuse_connection(&stream, refusal);
                shared
                    .metrics
                    .connections_refused
                    .get_or_create(&RefusedLabels {
                        reason: refusal.reason(),
                    })
                    .inc();
                tracing::debug!(%peer, reason = refusal.reason(), "connection refused");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The listener is TLS when the gateway started with `[gateway.tls]` (a reload
        // cannot change that); each connection takes the certificates in force.
        let tls = shared.snapshot.load().tls.clone();
        connections.spawn(serve_connection(
            builder.clone(),
            stream,
            peer,
            admitted,
            shared.clone(),
            stopping.clone(),
            connections.clone(),
            timeouts,
            track,
            tls,
        ));
    }

    drop(listener);
    let _ = stop.send(true);
    connections.close();
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        connections = connections.len(),
        "shutting down: waiting for in-flight requests"
    );
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

/// Answers a connection over the caps (429 for its address, 503 for the gateway) and
/// closes it: one non-blocking write of a short HTTP/1.1 response, which a fresh
/// socket's buffer takes, so that the accept loop never waits on such a client.
fn refuse_connection(stream: &tokio::net::TcpStream, refusal: Refusal) {
    let (code, message) = match refusal {
        Refusal::PerClient => (
            ErrorCode::RateLimited,
            "too many connections from this address",
        ),
        Refusal::Total => (
            ErrorCode::ServiceUnavailable,
            "the gateway is at its connection limit",
        ),
    };
    write_refusal(stream, code, message, true);
}

/// Writes a short HTTP/1.1 error envelope (with `Retry-After: 1` when `retry`) and
/// `Connection: close` in one non-blocking write, which a fresh socket's buffer takes.
fn write_refusal(stream: &tokio::net::TcpStream, code: ErrorCode, message: &str, retry: bool) {
    let request_id = request_id::generate();
    let body = crate::error::envelope(code, message, &request_id);
    let status = crate::error::status_of(code);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{}{}: {request_id}\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        if retry { "retry-after: 1\r\n" } else { "" },
        request_id::HEADER,
    );
    let _ = stream.try_write(&[head.as_bytes(), &body].concat());
}

/// The connection limits the server enforces itself (the pipeline enforces the
/// body's timeout, hyper the HTTP/2 settings).
#[derive(Debug, Clone, Copy)]
struct ConnectionPolicy {
    /// A request head (or a new connection's first) unfinished for this long: cut off.
    header: Duration,
    /// No request in flight and no bytes moving for this long: closed gracefully.
    idle: Duration,
    /// The client took none of its response for this long: cut off.
    send: Duration,
    /// Requests the client may cancel in 10 seconds; one more: cut off.
    max_cancels: u32,
}

/// Serves one connection until it ends, is idle for `idle`, its client takes longer
/// than `header` over a request head or stops reading for `send`, or the gateway stops
/// (then in-flight requests finish first).
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    shared: Arc<Shared>,
    stopping: watch::Receiver<bool>,
    tasks: TaskTracker,
    timeouts: ConnectionPolicy,
    track: TrackLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let switch = Switch {
        open: Arc::new(OpenConnection::start(
            &shared.metrics.connections_open,
            admitted,
        )),
        stopping,
        tasks,
    };
    let activity = Arc::new(Activity::default());
    let Some(tls) = tls else {
        let io = ActivityIo::new(stream, activity.clone());
        let transport = Transport::default();
        serve_http(
            builder, io, transport, activity, peer, shared, switch, timeouts, track,
        )
        .await;
        return;
    };
    // The handshake counts as the first request head: it must be over within the
    // header timeout. A client speaking plain HTTP to this port is told so.
    let deadline = tokio::time::Instant::now() + timeouts.header;
    let cut = |reason: &'static str| {
        shared
            .metrics
            .connections_cut
            .get_or_create(&RefusedLabels { reason })
            .inc();
    };
    let slow = || {
        tracing::info!(%peer, limit_ms = timeouts.header.as_millis() as u64, "cutting off: a client did not finish its TLS handshake");
        cut("slow_handshake");
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(Ok(1)) => {
            refuse_plain_http(&stream);
            cut("tls_required");
            return;
        }
        Ok(_) => return,
        Err(_) => return slow(),
    }
    let io = ActivityIo::new(stream, activity.clone());
    let accept = tokio_rustls::TlsAcceptor::from(tls).accept(io);
    match tokio::time::timeout_at(deadline, accept).await {
        Ok(Ok(io)) => {
            let transport = Transport {
                secure: true,
                client_cert: io
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(crate::tls::forwarded_client_cert),
            };
            serve_http(
                builder, io, transport, activity, peer, shared, switch, timeouts, track,
            )
            .await;
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            cut("tls_handshake");
        }
        Err(_) => slow(),
    }
}

/// Answers a plain-HTTP request sent to a TLS listener with a 400 envelope saying so,
/// and closes (as `refuse_connection`, one non-blocking write).
fn refuse_plain_http(stream: &tokio::net::TcpStream) {
    // What already came is read first, so that closing sends FIN, not RST (which
    // could discard the answer before the client reads it).
    let mut sink = [0u8; 8192];
    let _ = stream.try_read(&mut sink);
    write_refusal(
        stream,
        ErrorCode::ValidationError,
        "this port serves HTTPS: send the request over TLS (https://)",
        false,
    );
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves HTTP/1.1 or HTTP/2 over `io` (plain TCP, or TLS after its handshake) until
/// the connection ends, is idle for too long, its client is too slow, or the gateway
/// stops.
#[allow(clippy::too_many_arguments)]
async fn serve_http<I>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: I,
    transport: Transport,
    activity: Arc<Activity>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    switch: Switch,
    timeouts: ConnectionPolicy,
    track: TrackLimits,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let metrics = shared.metrics.clone();
    let (io, facts) = SniffedIo::new(io, track);
    let requests = activity.clone();
    let heads = facts.clone();
    let mut stopping = switch.stopping.clone();
    let cancels = Cancels::new(timeouts.max_cancels, metrics.requests_cancelled.clone());
    let counted = cancels.clone();
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let facts = facts.clone();
        let switch = switch.clone();
        let transport = transport.clone();
        let in_flight = requests.request();
        let watch = counted.watch();
        let served: ServedFuture = Box::pin(async move {
            let response = respond(shared, request, peer, transport, facts, switch).await;
            watch.finish();
            drop(in_flight);
            Ok(response)
        });
        served
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut ticks = tokio::time::interval(
        (timeouts.idle.min(timeouts.send).min(timeouts.header) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1)),
    );
    let mut draining = *stopping.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                }
                break;
            }
            () = cancels.exceeded() => {
                tracing::info!(%peer, limit = timeouts.max_cancels, "cutting off: a client cancelled too many requests (rapid reset)");
                metrics
                    .connections_cut
                    .get_or_create(&RefusedLabels { reason: "too_many_resets" })
                    .inc();
                cancels.cut_by_gateway();
                break;
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                // Graceful shutdown would wait for the response to be written; a head
                // pipelined behind a request being served waits its turn.
                let cut = if activity.write_blocked_for(timeouts.send) {
                    Some(("stopped_reading", timeouts.send, "a client stopped reading its response"))
                } else if !activity.busy() && heads.head_pending_for(timeouts.header) {
                    Some(("slow_headers", timeouts.header, "a client did not finish its request head"))
                } else {
                    None
                };
                if let Some((reason, limit, what)) = cut {
                    tracing::info!(%peer, reason, limit_ms = limit.as_millis() as u64, "cutting off: {what}");
                    metrics
                        .connections_cut
                        .get_or_create(&RefusedLabels { reason })
                        .inc();
                    cancels.cut_by_gateway();
                    break;
                }
                if !draining && activity.idle_for(timeouts.idle) {
                    tracing::debug!(%peer, "closing an idle connection");
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection's transport tells its requests: TLS or not, and the client's
/// verified certificate, if it presented one.
#[derive(Clone, Default)]
struct Transport {
    secure: bool,
    client_cert: Option<HeaderValue>,
}

/// What a connection's requests need to switch it to a WebSocket, whose relay then
/// outlives the connection's task (which ends, freeing its state): the connection's
/// place under the caps, the gateway's stop signal (the relay closes with `1001` on
/// it), and the tasks shutdown waits for.
#[derive(Clone)]
struct Switch {
    open: Arc<OpenConnection>,
    stopping: watch::Receiver<bool>,
    tasks: TaskTracker,
}

/// A connection counted in `wasmgate_connections_open`, holding its place under the
/// caps until dropped.
struct OpenConnection {
    gauge: prometheus_client::metrics::gauge::Gauge,
    _admitted: Admitted,
}

impl OpenConnection {
    fn start(gauge: &prometheus_client::metrics::gauge::Gauge, admitted: Admitted) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
            _admitted: admitted,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Serves one request: checks, pipeline, and the request id on the response.
async fn respond(
    shared: Arc<Shared>,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    transport: Transport,
    facts: FramingFacts,
    switch: Switch,
) -> Response<ProxyBody> {
    let received_ns = monotonic_ns();
    let started = std::time::Instant::now();
    let request_id = request_id::from_headers(request.headers());
    let snapshot = shared.snapshot.load_full();
    let checked = check(&request, &snapshot.limits, &facts);
    if checked.is_ok()
        && matches!(*request.method(), Method::GET | Method::HEAD)
        && let Some(endpoint) = shared.builtin.lookup(request.uri().path())
    {
        let mut response = status::answer(&shared, endpoint).map(full_body);
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(request_id::HEADER, id);
        }
        return response;
    }
    // Taken before the pipeline sees the request: the client's side of a WebSocket,
    // switched once the 101 is written.
    let upgrade = (request.version() == Version::HTTP_11
        && websocket::is_upgrade(request.headers()))
    .then(|| hyper::upgrade::on(&mut request));
    let body_fault = BodyFault::default();
    let stall = Duration::from_millis(snapshot.limits.body_read_timeout_ms);
    let http1 = request.version() < Version::HTTP_2;
    let headers = request.headers();
    let framed = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let request = request.map(|body| body_fault.watch(body, stall, framed));
    let routed = Routed {
        listener: Listener::Gateway,
        client: peer,
        secure: transport.secure,
        client_cert: transport.client_cert.as_ref(),
        request_id: &request_id,
        received_ns,
        started,
        body_fault: Some(&body_fault),
    };
    let mut response = routed.serve(&shared, snapshot, request, checked).await;
    let switched = response
        .extensions_mut()
        .remove::<websocket::Switched>()
        .and_then(|switched| switched.take());
    match (switched, upgrade) {
        (Some(socket), Some(client)) => {
            facts.switched();
            let relay = websocket::relay(client, socket, shared.metrics.clone(), switch.stopping);
            let open = switch.open;
            switch.tasks.spawn(async move {
                relay.await;
                drop(open);
            });
            return response;
        }
        // Only a WebSocket the upstream accepted switches the connection; any other
        // informational answer (a plugin's `set-status(101)`) is refused.
        _ if response.status().is_informational() => {
            tracing::warn!(
                request_id,
                status = response.status().as_u16(),
                "an informational status reached the client's answer"
            );
            response = Reject::new(
                ErrorCode::BadGateway,
                "the response had an informational status",
            )
            .into_response::<Bytes>(&request_id)
            .map(full_body);
        }
        _ => {}
    }
    if http1 && !body_fault.read_to_end() {
        // Answered before the body was read (a plugin's refusal, an unreachable
        // upstream): hyper will not read on, so the client must not reuse the
        // connection.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request on its way through a listener's routes.
pub struct Routed<'a> {
    /// The listener it came to.
    pub listener: Listener,
    /// The client's address.
    pub client: SocketAddr,
    /// It came over TLS.
    pub secure: bool,
    /// The client's verified certificate, as `X-Forwarded-Client-Cert` says it.
    pub client_cert: Option<&'a HeaderValue>,
    /// Its request id.
    pub request_id: &'a str,
    /// When it was received, on the `clock.monotonic-ns` clock.
    pub received_ns: u64,
    /// When it was received.
    pub started: std::time::Instant,
    /// Set when its body, streamed from the client, failed: the answer is then a 400
    /// whatever the pipeline made of it (an upstream call cut short, a buffer that
    /// could not fill).
    pub body_fault: Option<&'a BodyFault>,
}

impl Routed<'_> {
    /// Runs the request through `snapshot`'s routes for the listener (unless `checked`
    /// already refused it), and counts it in the metrics: the part of serving that the
    /// gateway and admin listeners share.
    pub async fn serve(
        self,
        shared: &Shared,
        snapshot: Arc<Snapshot>,
        request: Request<ProxyBody>,
        checked: Result<(), Reject>,
    ) -> Response<ProxyBody> {
        let Self {
            listener,
            client,
            secure,
            client_cert,
            request_id,
            received_ns,
            started,
            body_fault,
        } = self;
        let trace = TraceContext::from_headers(request.headers());
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let in_progress = InProgress::start(&shared.metrics.in_progress);
        let mut matched = None;
        let result = match checked {
            Ok(()) => {
                let meta = pipeline::RequestMeta {
                    client,
                    secure,
                    client_cert,
                    request_id,
                    trace: &trace,
                    received_ns,
                };
                pipeline::handle(snapshot, listener, request, &meta, &mut matched).await
            }
            Err(reject) => Err(reject),
        };
        let result = match body_fault.and_then(|fault| Some((fault, fault.reject()?))) {
            Some((fault, reject)) => {
                if fault.stalled() {
                    tracing::info!(request_id, %client, "the request body stalled: 408");
                    shared
                        .metrics
                        .connections_cut
                        .get_or_create(&RefusedLabels {
                            reason: "body_stalled",
                        })
                        .inc();
                }
                Err(reject)
            }
            None => result,
        };
        drop(in_progress);
        let mut response = match result {
            Ok(response) => response,
            Err(reject) => {
                tracing::debug!(request_id, code = ?reject.code, message = %reject.message, "request refused");
                reject
                    .into_response::<bytes::Bytes>(request_id)
                    .map(full_body)
            }
        };
        if let Ok(id) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert(request_id::HEADER, id);
        }
        let elapsed = started.elapsed();
        let route = matched.unwrap_or_else(|| Arc::from("unmatched"));
        let method_label = metrics::method_label(&method);
        shared
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method_label,
                status: response.status().as_u16(),
            })
            .inc();
        shared
            .metrics
            .request_duration
            .get_or_create(&RouteLabels {
                route,
                method: method_label,
            })
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            request_id,
            trace_id = %trace.trace_id,
            %method,
            path,
            status = response.status().as_u16(),
            micros = elapsed.as_micros() as u64,
            "request served"
        );
        response
    }
}

/// Counts a request in `http_requests_in_progress` until dropped (also when the
/// client goes away mid-request and the future is dropped).
struct InProgress<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InProgress<'a> {
    fn start(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The checks made before routing.
fn check(request: &Request<Incoming>, limits: &Limits, facts: &FramingFacts) -> Result<(), Reject> {
    let close = || (header::CONNECTION, HeaderValue::from_static("close"));
    let too_long = || {
        Reject::new(
            ErrorCode::UriTooLong,
            format!("the request target is over {} bytes", limits.max_uri_bytes),
        )
    };
    match facts.take() {
        Verdict::Clean => {}
        Verdict::UriTooLong => return Err(too_long()),
        Verdict::Ambiguous => {
            let (name, value) = close();
            return Err(Reject::new(
                ErrorCode::ValidationError,
                "a request must not carry both Content-Length and Transfer-Encoding",
            )
            .with_header(name, value));
        }
        Verdict::Unknown => {
            let (name, value) = close();
            return Err(Reject::new(
                ErrorCode::ValidationError,
                "an earlier request on this connection was malformed; open a new connection",
            )
            .with_header(name, value));
        }
    }
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len())
        + request.uri().authority().map_or(0, |a| a.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(too_long());
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(Reject::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request headers are over {} bytes",
                limits.max_header_bytes
            ),
        ));
    }
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(Reject::new(
            ErrorCode::ValidationError,
            "a request must carry one Host header",
        ));
    }
    if hosts == 0 && request.version() == Version::HTTP_11 {
        return Err(Reject::new(
            ErrorCode::ValidationError,
            "an HTTP/1.1 request must carry a Host header",
        ));
    }
    Ok(())
}
