//! Support for the end-to-end tests: builders that start the real `wasmgate` binary
//! with a real config and real plugins, a real upstream on a loopback port, and a raw
//! HTTP/1.1 client for requests no well-behaved client would send.
//!
//! The binary and the plugins must be built first; `scripts/test.sh` does that. The
//! binary is found beside the test executable's profile directory (or at
//! `$WASMGATE_BIN`), the plugins under `target/wasm32-wasip2/plugin/` (or in
//! `$WASMGATE_PLUGIN_DIR`).

mod background;
mod browser;
mod gateway;
mod keystone;
mod raw;
mod redis;
mod registry;
mod tls;
mod upstream;
mod websocket;

pub use background::Background;
pub use browser::Browser;
pub use gateway::{GatewayProcess, TestGateway, plugin_wasm, wasmgate_bin};
pub use keystone::{FakeKeystone, KEYSTONE_USER};
pub use raw::{RawConnection, RawResponse, raw_request};
pub use redis::{RedisServer, redis_state_toml, shared_redis};
pub use registry::{register_instance, registry_toml};
pub use tls::{Issued, TestCa, TlsAnswer, TlsUpstream, tls_get, write_by_rename};
pub use upstream::{Upstream, UpstreamBehaviour, UpstreamProcess};
pub use websocket::{Handshake, WsUpstream};

use std::time::{Duration, Instant};

/// A loopback address that refuses connections for as long as this is held: its port
/// is bound but never listened on, so no socket opened meanwhile (a gateway of a test
/// running alongside, given port 0) can take it, as it could a port merely freed.
pub struct DeadAddress {
    /// The address.
    pub address: std::net::SocketAddr,
    _socket: tokio::net::TcpSocket,
}

/// A [`DeadAddress`] on 127.0.0.1.
pub fn dead_address() -> DeadAddress {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind 127.0.0.1:0");
    DeadAddress {
        address: socket.local_addr().expect("local address"),
        _socket: socket,
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the async `check` every 20 ms until it returns `Some`, or panics after
/// `timeout`: the async twin of [`wait_for`], for conditions a request answers.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it returns `Ok`, or panics after `timeout` with
/// the last `Err` in the message: [`wait_for`] for a wait whose failure should say
/// what was seen last (the last body, the gateway's log).
pub fn wait_for_ok<T, E: std::fmt::Display>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the async `check` every 20 ms until it returns `Ok`, or panics after
/// `timeout` with the last `Err` in the message: the async twin of [`wait_for_ok`].
pub async fn wait_until_ok<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET` of an admin API path on `gateway`, which must answer 200 with JSON.
pub async fn admin_json(gateway: &GatewayProcess, path: &str) -> serde_json::Value {
    let response = client()
        .get(gateway.admin_url(path))
        .send()
        .await
        .expect("admin request");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("admin JSON")
}

/// The value of the first sample of the `/metrics` at `url` named `name` whose line
/// holds every one of `labels` (`key="value"`); `None` when there is no such sample.
pub async fn metric(url: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let text = client()
        .get(url)
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// A blocking HTTP client for tests: no proxies, no automatic redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds")
}

/// What a test reads of an answer: its status, its `X-Request-Id` (empty without
/// one) and its whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `X-Request-Id` header.
    pub request_id: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Checks that the body is the gateway's error envelope with `status` and `code`
    /// (see [`assert_envelope`]) and returns it.
    pub fn assert_envelope(&self, status: u16, code: &str) -> serde_json::Value {
        assert_envelope(
            self.status,
            Some(&self.request_id),
            &self.body,
            status,
            code,
        )
    }
}

/// Sends `method url`, with `body` as JSON when given, and reads the whole answer.
pub async fn send(method: reqwest::Method, url: &str, body: Option<&serde_json::Value>) -> Answer {
    send_with(method, url, &[], body).await
}

/// [`send`] with `headers` (name, value) added to the request.
pub async fn send_with(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Answer {
    let mut request = client().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.bytes().await.expect("the body").to_vec();
    Answer {
        status,
        request_id,
        body,
    }
}

/// Parses a response body as the gateway's error envelope and checks its shape:
/// `success: false`, the `code`, a `request_id` equal to the `X-Request-Id` header,
/// and an RFC 3339 `timestamp`.
pub fn assert_envelope(
    status: u16,
    request_id_header: Option<&str>,
    body: &[u8],
    want_status: u16,
    want_code: &str,
) -> serde_json::Value {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, want_status, "status; body: {text}");
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {text}"));
    assert_eq!(value["success"], false, "{text}");
    assert_eq!(value["code"], want_code, "{text}");
    assert!(
        value["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{text}"
    );
    let id = value["request_id"].as_str().expect("request_id");
    assert!(!id.is_empty(), "{text}");
    if let Some(header) = request_id_header {
        assert_eq!(id, header, "envelope request_id matches X-Request-Id");
    }
    let timestamp = value["timestamp"].as_str().expect("timestamp");
    assert!(
        timestamp.len() >= 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "timestamp {timestamp:?} is RFC 3339 UTC"
    );
    value
}
