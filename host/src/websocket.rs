//! WebSocket: the handshake on both sides and the relay of messages between them.
//!
//! A route with `[routes.websocket]` takes `Upgrade: websocket` requests. The request
//! phase runs as for any request (an auth plugin refuses with the usual envelope);
//! then the gateway makes its own handshake with the upstream (a fresh
//! `Sec-WebSocket-Key`, the client's subprotocols offered, no extensions) through the
//! service's client, so balancing, timeouts, retries of failed connects and HTTPS
//! apply as for other requests. The upstream's `101` (checked) becomes the client's,
//! with the `Sec-WebSocket-Accept` for the client's key; any other answer reaches the
//! client as it is. Once both sides have switched, [`relay`] passes messages both
//! ways, message by message (frames are parsed and checked on each side, so a message
//! over the route's limit or a malformed frame never reaches the other side), until
//! one side closes, the connection is idle for `idle_timeout_ms`, or the gateway
//! stops (then both sides get `1001`, within the shutdown grace).
//!
//! Only HTTP/1.1 upgrades are taken (not RFC 8441's extended CONNECT over HTTP/2).
//! `permessage-deflate` is not negotiated: messages pass uncompressed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::clock::monotonic_ms;
use crate::metrics::{CloseLabels, MessageLabels, Metrics, SocketLabels};
use crate::pipeline::{Held, Judged};
use crate::plugin::SocketMessage;

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
const SEC_WEBSOCKET_EXTENSIONS: HeaderName = HeaderName::from_static("sec-websocket-extensions");
const SEC_WEBSOCKET_PROTOCOL: HeaderName = HeaderName::from_static("sec-websocket-protocol");

/// How long a side has, once the connection is closing, to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Each side's read buffer: small, so that idle connections cost little (a message
/// larger than this is read in several steps).
const READ_BUFFER_BYTES: usize = 4096;

/// A route's WebSocket settings, from `[routes.websocket]`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// No message either way for this long closes both sides with `1001`.
    pub idle_timeout: Duration,
    /// A message (or frame) over this many bytes closes its sender with `1009`.
    pub max_message_bytes: usize,
}

impl Policy {
    fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// A client's WebSocket handshake, as the request phase found it.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The client's `Sec-WebSocket-Key`.
    client_key: HeaderValue,
}

/// Whether `headers` ask to switch to WebSocket (`Upgrade: websocket` with
/// `Connection: upgrade`), whatever else is wrong with the handshake.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        crate::upstream::header_list(headers, name).any(|t| t.eq_ignore_ascii_case(token))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

impl Offer {
    /// The handshake of a request that asks for a WebSocket (see [`is_upgrade`]), or
    /// why it cannot be one.
    pub fn from_request(
        method: &Method,
        version: Version,
        headers: &HeaderMap,
    ) -> Result<Self, &'static str> {
        if version != Version::HTTP_11 {
            return Err("a WebSocket handshake must be an HTTP/1.1 request");
        }
        if method != Method::GET {
            return Err("a WebSocket handshake must be a GET request");
        }
        if headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err("a WebSocket handshake needs Sec-WebSocket-Version: 13");
        }
        match headers.get(SEC_WEBSOCKET_KEY) {
            // 16 bytes in base64: 22 characters and `==`.
            Some(key)
                if key.len() == 24
                    && key.as_bytes().ends_with(b"==")
                    && key.as_bytes()[..22]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/') =>
            {
                Ok(Self {
                    client_key: key.clone(),
                })
            }
            _ => Err("a WebSocket handshake needs a Sec-WebSocket-Key of 16 bytes in base64"),
        }
    }

    /// Makes `headers` (the request as the plugins left it, hop-by-hop headers gone)
    /// the gateway's own handshake with the upstream; returns the key it sent.
    pub fn upstream_request(&self, headers: &mut HeaderMap) -> HeaderValue {
        let key = HeaderValue::from_str(
            &tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .expect("base64 is a valid header value");
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(SEC_WEBSOCKET_KEY, key.clone());
        headers.remove(SEC_WEBSOCKET_EXTENSIONS);
        headers.remove(SEC_WEBSOCKET_ACCEPT);
        key
    }

    /// Checks the upstream's `101` to the gateway's handshake (`sent` is the key the
    /// gateway sent), and makes its headers (hop-by-hop ones already gone) the
    /// client's `101`.
    pub fn accept(&self, sent: &HeaderValue, headers: &mut HeaderMap) -> Result<(), String> {
        let expected = derive_accept(sent);
        if headers.get(SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes) != Some(expected.as_bytes())
        {
            return Err("its Sec-WebSocket-Accept does not answer the gateway's key".into());
        }
        if headers.contains_key(SEC_WEBSOCKET_EXTENSIONS) {
            return Err("it chose an extension the gateway did not offer".into());
        }
        headers.insert(SEC_WEBSOCKET_ACCEPT, derive_accept(&self.client_key));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        Ok(())
    }
}

impl Offer {
    /// The gateway's own `101` to the client, for a WebSocket whose plugins watch its
    /// messages (the upstream is connected later): the client's first subprotocol is
    /// chosen, and `request` (what goes upstream) offers only that one.
    pub fn answer_itself(&self, request: &mut HeaderMap) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, derive_accept(&self.client_key));
        let first = crate::upstream::header_list(request, SEC_WEBSOCKET_PROTOCOL)
            .next()
            .and_then(|protocol| HeaderValue::from_str(protocol).ok());
        if let Some(first) = first {
            request.insert(SEC_WEBSOCKET_PROTOCOL, first.clone());
            headers.insert(SEC_WEBSOCKET_PROTOCOL, first);
        }
        headers
    }
}

fn derive_accept(key: &HeaderValue) -> HeaderValue {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    HeaderValue::from_str(&accept).expect("base64 is a valid header value")
}

/// The upstream side of a switched connection, carried on the client's `101` from the
/// pipeline to the listener (in a [`Switched`]), which relays once the client's side
/// has switched too.
pub struct UpstreamSocket {
    /// The upstream's side.
    pub upstream: Upstream,
    /// The route's name, for metrics.
    pub route: Arc<str>,
    /// The route's settings.
    pub policy: Policy,
}

/// The upstream's side of a WebSocket.
pub enum Upstream {
    /// The upstream accepted the gateway's handshake: its connection, once hyper
    /// hands it over.
    Ready(OnUpgrade),
    /// Plugins watch the client's messages; the upstream is connected once they let
    /// it.
    Held(Box<Held>),
}

/// An [`UpstreamSocket`] as a response extension (which must be `Clone`): taken once.
#[derive(Clone)]
pub struct Switched(Arc<std::sync::Mutex<Option<UpstreamSocket>>>);

impl Switched {
    /// Wraps `socket`.
    pub fn new(socket: UpstreamSocket) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(socket))))
    }

    /// The socket, unless taken already.
    pub fn take(&self) -> Option<UpstreamSocket> {
        self.0.lock().expect("switched lock").take()
    }
}

/// Which side of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn direction(self) -> &'static str {
        match self {
            Self::Client => "client_to_upstream",
            Self::Upstream => "upstream_to_client",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
        }
    }
}

/// How a relay ended.
#[derive(Debug)]
enum End {
    /// `side` sent a close frame, which was passed on.
    Closed(Side, Option<CloseFrame>),
    /// `side` went away without a close frame.
    Gone(Side),
    /// `side` broke the protocol or a limit: it gets this code, the other `1001`.
    Broke(Side, CloseCode, &'static str),
    /// A watching plugin closed it with this code and reason.
    Judged(u16, String),
    /// No message either way for the idle timeout.
    Idle,
    /// The gateway is stopping.
    Shutdown,
}

/// Relays messages between the client and the upstream once both have switched,
/// until one side closes, the connection idles out, or `stopping` turns true. With
/// watching plugins (a [`Held`] upstream), the client's messages go to them first,
/// and the upstream is connected once they let it.
pub async fn relay(
    client: OnUpgrade,
    socket: UpstreamSocket,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
) {
    let UpstreamSocket {
        upstream,
        route,
        policy,
    } = socket;
    let client = match client.await {
        Ok(client) => client,
        Err(error) => {
            tracing::debug!(%route, %error, "a WebSocket upgrade did not complete");
            return;
        }
    };
    let mut client =
        WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(policy.config()))
            .await;
    let open = metrics
        .websockets_open
        .get_or_create(&SocketLabels {
            route: route.clone(),
        })
        .clone();
    let _open = OpenSocket::start(open);
    let counters = |side: Side| {
        // Cloned: a guard held for the relay's life would block the family's writers.
        metrics
            .websocket_messages
            .get_or_create(&MessageLabels {
                route: route.clone(),
                direction: side.direction(),
            })
            .clone()
    };
    let (to_upstream, to_client) = (counters(Side::Client), counters(Side::Upstream));
    let count_close = |code: u16, by: &'static str| {
        // Codes a peer may choose (3000-4999) are counted by thousand, so that clients
        // cannot make a series per code.
        let code = if code >= 3000 {
            code / 1000 * 1000
        } else {
            code
        };
        metrics
            .websocket_closes
            .get_or_create(&CloseLabels {
                route: route.clone(),
                code,
                by,
            })
            .inc();
    };

    let (upgrade, mut held, queued) = match upstream {
        Upstream::Ready(upgrade) => (upgrade, None, Vec::new()),
        Upstream::Held(mut held) => {
            let queued =
                match hold(&mut client, &mut held, &policy, &mut stopping, &to_upstream).await {
                    Ok(queued) => queued,
                    Err((code, by)) => return count_close(code, by),
                };
            match held.connect().await {
                Ok(upgrade) => (upgrade, Some(held), queued),
                Err(why) => {
                    tracing::warn!(%route, "a watched WebSocket's upstream handshake failed: {why}");
                    close_alone(&mut client, CloseCode::Error, "the upstream is unavailable").await;
                    return count_close(1011, "gateway");
                }
            }
        }
    };
    let upstream = match upgrade.await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%route, %error, "a WebSocket upgrade did not complete upstream");
            close_alone(&mut client, CloseCode::Error, "the upstream went away").await;
            return count_close(1011, "gateway");
        }
    };
    let mut upstream = WebSocketStream::from_raw_socket(
        TokioIo::new(upstream),
        Role::Client,
        Some(policy.config()),
    )
    .await;
    for message in queued {
        if upstream.send(message).await.is_err() {
            close_alone(&mut client, CloseCode::Away, "the upstream went away").await;
            return count_close(1006, "upstream");
        }
    }

    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let last_ms = AtomicU64::new(monotonic_ms());
    let end = {
        let watching = held.as_deref_mut().filter(|held| held.watching());
        let up = pump(
            Side::Client,
            &mut client_rx,
            &mut upstream_tx,
            &last_ms,
            &to_upstream,
            watching,
        );
        let down = pump(
            Side::Upstream,
            &mut upstream_rx,
            &mut client_tx,
            &last_ms,
            &to_client,
            None,
        );
        let idle = async {
            loop {
                let idle_for = monotonic_ms().saturating_sub(last_ms.load(Ordering::Relaxed));
                let left = (policy.idle_timeout.as_millis() as u64).saturating_sub(idle_for);
                if left == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(left)).await;
            }
        };
        tokio::select! {
            end = up => end,
            end = down => end,
            () = idle => End::Idle,
            () = stopped(&mut stopping) => End::Shutdown,
        }
    };

    // Close what is still open, and give each side a moment to answer.
    let going_away = |reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: reason.into(),
        }))
    };
    let (code, by) = match &end {
        End::Closed(side, frame) => (
            frame.as_ref().map_or(1005, |f| u16::from(f.code)),
            side.name(),
        ),
        End::Gone(side) => (1006, side.name()),
        End::Broke(_, code, _) => (u16::from(*code), "gateway"),
        End::Judged(code, _) => (*code, "gateway"),
        End::Idle | End::Shutdown => (1001, "gateway"),
    };
    tracing::debug!(%route, ?end, "WebSocket closing");
    let close_both = async {
        match end {
            End::Closed(Side::Client, _) => {
                // The client's close went upstream; its own answer is queued.
                let _ = client_tx.close().await;
                drain(&mut upstream_rx).await;
            }
            End::Closed(Side::Upstream, _) => {
                let _ = upstream_tx.close().await;
                drain(&mut client_rx).await;
            }
            End::Gone(Side::Client) => {
                let _ = upstream_tx.send(going_away("the client went away")).await;
                drain(&mut upstream_rx).await;
            }
            End::Gone(Side::Upstream) => {
                let _ = client_tx.send(going_away("the upstream went away")).await;
                drain(&mut client_rx).await;
            }
            End::Broke(side, code, reason) => {
                let frame = Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }));
                let (broke_tx, other_tx) = match side {
                    Side::Client => (&mut client_tx, &mut upstream_tx),
                    Side::Upstream => (&mut upstream_tx, &mut client_tx),
                };
                let _ = broke_tx.send(frame).await;
                let _ = other_tx
                    .send(going_away("the other side broke the protocol"))
                    .await;
                tokio::join!(drain(&mut client_rx), drain(&mut upstream_rx));
            }
            End::Judged(code, reason) => {
                let frame = Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                }));
                let _ = tokio::join!(
                    client_tx.send(frame),
                    upstream_tx.send(going_away("closed by the gateway's policy"))
                );
                tokio::join!(drain(&mut client_rx), drain(&mut upstream_rx));
            }
            End::Idle | End::Shutdown => {
                let reason = if matches!(end, End::Idle) {
                    "idle timeout"
                } else {
                    "the gateway is shutting down"
                };
                let _ = tokio::join!(
                    client_tx.send(going_away(reason)),
                    upstream_tx.send(going_away(reason))
                );
                tokio::join!(drain(&mut client_rx), drain(&mut upstream_rx));
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, close_both).await;
    count_close(code, by);
}

/// Most messages passed on while a watching plugin still holds the upstream back;
/// one more closes the WebSocket with 1008.
const MAX_QUEUED: usize = 16;

type ClientSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The watched phase: the client's messages go to the watching plugins until none
/// holds the upstream back; the messages to pass on then, or how the WebSocket ended
/// (its close code, and who ended it).
async fn hold(
    client: &mut ClientSocket,
    held: &mut Held,
    policy: &Policy,
    stopping: &mut watch::Receiver<bool>,
    counted: &prometheus_client::metrics::counter::Counter,
) -> Result<Vec<Message>, (u16, &'static str)> {
    let mut queued = Vec::new();
    while held.holding() {
        let next = tokio::select! {
            next = tokio::time::timeout(policy.idle_timeout, client.next()) => next,
            () = stopped(stopping) => {
                close_alone(client, CloseCode::Away, "the gateway is shutting down").await;
                return Err((1001, "gateway"));
            }
        };
        let message = match next {
            Err(_) => {
                close_alone(client, CloseCode::Away, "idle timeout").await;
                return Err((1001, "gateway"));
            }
            Ok(
                None
                | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_))),
            ) => {
                return Err((1006, "client"));
            }
            Ok(Some(Err(WsError::Capacity(_)))) => {
                close_alone(client, CloseCode::Size, "message too big").await;
                return Err((1009, "gateway"));
            }
            Ok(Some(Err(_))) => {
                close_alone(client, CloseCode::Protocol, "protocol error").await;
                return Err((1002, "gateway"));
            }
            Ok(Some(Ok(message))) => message,
        };
        match &message {
            Message::Text(_) | Message::Binary(_) => {
                counted.inc();
                match held.judge(socket_message(&message)).await {
                    Judged::Forward if queued.len() < MAX_QUEUED => queued.push(message),
                    Judged::Forward => {
                        close_alone(
                            client,
                            CloseCode::Policy,
                            "too many messages before the upstream connected",
                        )
                        .await;
                        return Err((1008, "gateway"));
                    }
                    Judged::Drop => {}
                    Judged::Close(code, reason) => {
                        close_alone(client, CloseCode::from(code), &reason).await;
                        return Err((code, "gateway"));
                    }
                }
            }
            Message::Close(frame) => {
                // tungstenite queued the answer; send it.
                let _ = client.flush().await;
                return Err((frame.as_ref().map_or(1005, |f| u16::from(f.code)), "client"));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    Ok(queued)
}

/// Closes the client's side when there is no upstream side to close: the frame, then
/// its answer (within [`CLOSE_GRACE`]).
async fn close_alone(client: &mut ClientSocket, code: CloseCode, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }));
    let closing = async {
        let _ = client.send(frame).await;
        while let Some(Ok(_)) = client.next().await {}
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}

/// Completes once `stopping` is true (never, if its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A text or binary message as the plugins' contract has it.
fn socket_message(message: &Message) -> SocketMessage {
    match message {
        Message::Text(text) => SocketMessage::Text(text.as_str().to_string()),
        other => SocketMessage::Binary(other.clone().into_data().to_vec()),
    }
}

type Stream = futures_util::stream::SplitStream<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>>;
type Sink =
    futures_util::stream::SplitSink<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, Message>;

/// Passes `side`'s messages to the other side until `side` closes or fails.
async fn pump(
    side: Side,
    from: &mut Stream,
    to: &mut Sink,
    last_ms: &AtomicU64,
    counted: &prometheus_client::metrics::counter::Counter,
    mut watching: Option<&mut Held>,
) -> End {
    loop {
        let message = match from.next().await {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                return End::Gone(side);
            }
            Some(Err(WsError::Io(_))) => return End::Gone(side),
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                return End::Broke(side, CloseCode::Size, "message too big");
            }
            Some(Err(WsError::Utf8(_))) => {
                return End::Broke(side, CloseCode::Invalid, "text message is not UTF-8");
            }
            Some(Err(_)) => return End::Broke(side, CloseCode::Protocol, "protocol error"),
            Some(Ok(message)) => message,
        };
        last_ms.store(monotonic_ms(), Ordering::Relaxed);
        match message {
            Message::Text(_) | Message::Binary(_) => {
                counted.inc();
                if let Some(held) = watching.as_deref_mut().filter(|held| held.watching()) {
                    match held.judge(socket_message(&message)).await {
                        Judged::Forward => {}
                        Judged::Drop => continue,
                        Judged::Close(code, reason) => return End::Judged(code, reason),
                    }
                }
                if to.send(message).await.is_err() {
                    let other = match side {
                        Side::Client => Side::Upstream,
                        Side::Upstream => Side::Client,
                    };
                    return End::Gone(other);
                }
            }
            Message::Close(frame) => {
                let _ = to.send(Message::Close(frame.clone())).await;
                return End::Closed(side, frame);
            }
            // Each side's pings are answered where they arrive; they only keep the
            // connection from idling out.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Reads what a closing side still sends (its close answer) until it ends.
async fn drain(from: &mut Stream) {
    while let Some(Ok(_)) = from.next().await {}
}

/// A relay counted in `wasmgate_websockets_open`, however it ends.
struct OpenSocket(prometheus_client::metrics::gauge::Gauge);

impl OpenSocket {
    fn start(gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn an_upgrade_needs_both_the_upgrade_token_and_connection_upgrade() {
        assert!(is_upgrade(&headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
        ])));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&headers(&[
            ("upgrade", "h2c"),
            ("connection", "upgrade"),
        ])));
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])));
    }

    #[test]
    fn a_handshake_is_checked_as_rfc_6455_says() {
        let good = headers(&[("sec-websocket-version", "13"), ("sec-websocket-key", KEY)]);
        assert!(Offer::from_request(&Method::GET, Version::HTTP_11, &good).is_ok());
        for (method, version, why) in [
            (Method::POST, Version::HTTP_11, "GET"),
            (Method::GET, Version::HTTP_10, "HTTP/1.1"),
            (Method::GET, Version::HTTP_2, "HTTP/1.1"),
        ] {
            let error = Offer::from_request(&method, version, &good).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        for bad in [
            headers(&[("sec-websocket-key", KEY)]),
            headers(&[("sec-websocket-version", "8"), ("sec-websocket-key", KEY)]),
        ] {
            let error = Offer::from_request(&Method::GET, Version::HTTP_11, &bad).unwrap_err();
            assert!(error.contains("Version: 13"), "{error}");
        }
        for key in [
            "",
            "short==",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZ?==",
            "dGhlIHNhbXBsZSBub25jZQ=x",
        ] {
            let bad = headers(&[("sec-websocket-version", "13"), ("sec-websocket-key", key)]);
            let error = Offer::from_request(&Method::GET, Version::HTTP_11, &bad).unwrap_err();
            assert!(error.contains("Sec-WebSocket-Key"), "{key}: {error}");
        }
    }

    #[test]
    fn the_clients_101_answers_its_own_key_and_the_upstreams_is_checked_against_ours() {
        let offer = Offer::from_request(
            &Method::GET,
            Version::HTTP_11,
            &headers(&[("sec-websocket-version", "13"), ("sec-websocket-key", KEY)]),
        )
        .unwrap();
        let mut request = headers(&[
            ("sec-websocket-extensions", "permessage-deflate"),
            ("sec-websocket-protocol", "chat"),
        ]);
        let sent = offer.upstream_request(&mut request);
        assert_ne!(sent, KEY, "the gateway sends its own key");
        assert_eq!(request.get("sec-websocket-key"), Some(&sent));
        assert_eq!(request.get("upgrade").unwrap(), "websocket");
        assert_eq!(request.get("sec-websocket-protocol").unwrap(), "chat");
        assert!(!request.contains_key("sec-websocket-extensions"));

        let mut answer = headers(&[("sec-websocket-protocol", "chat")]);
        answer.insert(SEC_WEBSOCKET_ACCEPT, derive_accept(&sent));
        offer.accept(&sent, &mut answer).unwrap();
        // RFC 6455's own example.
        assert_eq!(
            answer.get("sec-websocket-accept").unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(answer.get("upgrade").unwrap(), "websocket");

        let mut wrong = headers(&[]);
        wrong.insert(
            SEC_WEBSOCKET_ACCEPT,
            derive_accept(&HeaderValue::from_static(KEY)),
        );
        assert!(offer.accept(&sent, &mut wrong).is_err());
        let mut extended = headers(&[("sec-websocket-extensions", "permessage-deflate")]);
        extended.insert(SEC_WEBSOCKET_ACCEPT, derive_accept(&sent));
        assert!(offer.accept(&sent, &mut extended).is_err());
    }
}
