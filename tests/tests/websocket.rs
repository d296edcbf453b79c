//! WebSockets through the real gateway, with a real client (tokio-tungstenite) and a
//! real WebSocket upstream: a JWT in the query checked by `jwt-auth` before the
//! upstream sees a handshake, echo both ways, closes passed on with their codes, the
//! route's message limit and idle timeout, `1001` when the gateway stops, a refused
//! or malformed handshake answered over HTTP, an HTTPS upstream that also offers
//! HTTP/2, and the metrics.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wasmgate_e2e::{
    GatewayProcess, RawConnection, TestCa, TestGateway, WsUpstream, assert_envelope, metric,
    wait_for, wait_until,
};

const SECRET: &str = "an HMAC secret for the end-to-end tests, 48 bytes";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u-1", "username": "alice", "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn gateway(upstream: &WsUpstream) -> GatewayProcess {
    TestGateway::new()
        .service("realtime", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(
            r#"
[plugins.jwt-auth]
secrets = { jwt = { env = "E2E_JWT_SECRET" } }

[[routes]]
name = "ws"
prefix = "/ws"
service = "realtime"
[routes.websocket]
max_message_bytes = 1024
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], query_token = "token" }

[[routes]]
name = "first"
prefix = "/realtime"
service = "realtime"
[routes.websocket]
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], first_message = true }

[[routes]]
name = "idle"
prefix = "/idle"
service = "realtime"
[routes.websocket]
idle_timeout_ms = 400

[[routes]]
name = "plain"
prefix = "/plain"
service = "realtime"
"#,
        )
        .start()
}

async fn connect(gateway: &GatewayProcess, target: &str) -> Result<Socket, WsError> {
    let url = gateway.url(target).replacen("http://", "ws://", 1);
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the handshake is answered")
    .map(|(socket, response)| {
        assert!(response.headers().contains_key("x-request-id"));
        socket
    })
}

/// The next message, within 10 seconds.
async fn next(socket: &mut Socket) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .map(|message| message.expect("no error"))
}

/// Reads until the close frame, which must come within 10 seconds; its code and reason.
async fn close_of(socket: &mut Socket) -> (u16, String) {
    loop {
        match next(socket).await {
            Some(Message::Close(Some(frame))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Message::Close(None)) => return (1005, String::new()),
            Some(_) => continue,
            None => panic!("the connection ended without a close frame"),
        }
    }
}

#[tokio::test]
async fn an_authenticated_websocket_echoes_both_ways_and_its_close_is_passed_on() {
    let upstream = WsUpstream::start();
    let gateway = gateway(&upstream);
    let mut socket = connect(&gateway, &format!("/ws/chat?room=7&token={}", token()))
        .await
        .expect("the handshake succeeds");
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("hello")));
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut socket).await,
        Some(Message::binary(vec![0u8, 1, 2, 255]))
    );
    // A ping is answered (by the gateway); it is no message to relay.
    socket.send(Message::Ping("p".into())).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::Pong("p".into())));

    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 1);
    let seen = &handshakes[0];
    assert!(
        seen.target.starts_with("/ws/chat?room=7&token="),
        "{}",
        seen.target
    );
    assert_eq!(seen.headers["x-user-id"], "u-1");
    assert!(seen.headers.contains_key("x-request-id"));
    assert!(!seen.headers.contains_key("sec-websocket-extensions"));

    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    // The close is answered with its own code and reason, and passed upstream.
    assert_eq!(close_of(&mut socket).await, (1000, "bye".into()));
    assert_eq!(
        upstream.messages(),
        vec![
            Message::text("hello"),
            Message::binary(vec![0u8, 1, 2, 255])
        ]
    );

    let metrics = gateway.admin_url("/metrics");
    // The relay counts the close once both sides are done.
    let closes = wait_until("the close to be counted", Duration::from_secs(10), || {
        metric(
            &metrics,
            "wasmgate_websocket_closes_total",
            &[r#"route="ws""#, r#"code="1000""#, r#"by="client""#],
        )
    })
    .await;
    assert_eq!(closes, 1.0);
    for direction in ["client_to_upstream", "upstream_to_client"] {
        let label = format!(r#"direction="{direction}""#);
        assert_eq!(
            metric(
                &metrics,
                "wasmgate_websocket_messages_total",
                &[r#"route="ws""#, &label]
            )
            .await,
            Some(2.0),
            "{direction}"
        );
    }
    assert_eq!(
        metric(&metrics, "wasmgate_websockets_open", &[r#"route="ws""#]).await,
        Some(0.0)
    );
}

#[tokio::test]
async fn a_handshake_without_a_good_token_gets_the_401_envelope_and_never_reaches_the_upstream() {
    let upstream = WsUpstream::start();
    let gateway = gateway(&upstream);
    for target in ["/ws/chat", "/ws/chat?token=a.b.c", "/ws/chat?tokens=x"] {
        match connect(&gateway, target).await {
            Err(WsError::Http(response)) => {
                let id = response
                    .headers()
                    .get("x-request-id")
                    .map(|v| v.to_str().unwrap().to_string());
                assert_envelope(
                    response.status().as_u16(),
                    id.as_deref(),
                    response.body().as_deref().unwrap_or_default(),
                    401,
                    "UNAUTHORIZED",
                );
            }
            other => panic!("{target}: not refused: {:?}", other.map(|_| ())),
        }
    }
    assert!(upstream.handshakes().is_empty());

    // A handshake the upstream refuses reaches the client as the upstream's answer.
    match connect(&gateway, &format!("/ws/refuse?token={}", token())).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }

    // A malformed handshake is the client's error.
    let mut raw = RawConnection::open(gateway.address);
    raw.send(
        format!(
            "GET /ws/x?token={} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            token()
        )
        .as_bytes(),
    );
    let response = raw.response();
    assert_envelope(
        response.status,
        response.header("x-request-id"),
        &response.body,
        400,
        "VALIDATION_ERROR",
    );
    assert!(String::from_utf8_lossy(&response.body).contains("Sec-WebSocket-Version: 13"));
    assert!(upstream.handshakes().is_empty());

    // A route without [routes.websocket] drops the upgrade: the upstream gets a plain
    // GET, which this upstream cannot answer, so the client never switches.
    assert!(connect(&gateway, "/plain/x").await.is_err());
    assert!(upstream.handshakes().is_empty());
}

#[tokio::test]
async fn limits_idle_connections_upstream_closes_and_shutdown_each_end_a_websocket_with_its_code() {
    let upstream = WsUpstream::start();
    let mut gateway = gateway(&upstream);
    let with_token = format!("/ws/a?token={}", token());

    // A message over max_message_bytes: 1009 to its sender, never passed on.
    let mut socket = connect(&gateway, &with_token).await.unwrap();
    socket.send(Message::text("x".repeat(2000))).await.unwrap();
    assert_eq!(close_of(&mut socket).await.0, 1009);
    assert!(upstream.messages().is_empty(), "{:?}", upstream.messages());

    // The upstream closes with its own code.
    let mut socket = connect(&gateway, &with_token).await.unwrap();
    socket.send(Message::text("close")).await.unwrap();
    assert_eq!(close_of(&mut socket).await, (4000, "asked to".into()));

    // No message either way for idle_timeout_ms: 1001.
    let mut socket = connect(&gateway, "/idle/x").await.unwrap();
    socket.send(Message::text("one")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("one")));
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));

    // The gateway stops: 1001 to the client, and the gateway exits well within its
    // grace.
    let mut socket = connect(&gateway, &with_token).await.unwrap();
    socket.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("still here")));
    gateway.signal("TERM");
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(
        (code, reason.as_str()),
        (1001, "the gateway is shutting down")
    );
    wait_for("the gateway to exit", Duration::from_secs(10), || {
        (!gateway.is_running()).then_some(())
    });
}

#[tokio::test]
async fn a_first_message_token_is_checked_before_the_upstream_sees_anything() {
    let upstream = WsUpstream::start();
    let gateway = gateway(&upstream);
    let auth = |token: &str| Message::text(json!({"type": "auth", "token": token}).to_string());

    // No message, a message that is no auth message, a bad token: 1008 (or nothing),
    // and the upstream is never contacted.
    let socket = connect(&gateway, "/realtime/feed")
        .await
        .expect("the gateway answers");
    drop(socket);
    for (first, why) in [
        (Message::text("hello"), "authentication required"),
        (auth("a.b.c"), "invalid token"),
        (Message::binary(b"{}".to_vec()), "authentication required"),
    ] {
        let mut socket = connect(&gateway, "/realtime/feed").await.unwrap();
        socket.send(first.clone()).await.unwrap();
        let (code, reason) = close_of(&mut socket).await;
        assert_eq!(code, 1008, "{first:?}: {reason}");
        assert!(reason.contains(why), "{first:?}: {reason}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        upstream.handshakes().is_empty(),
        "{:?}",
        upstream.handshakes()
    );
    assert!(upstream.messages().is_empty());

    // A good token: the auth message is kept back, the upstream's handshake carries
    // the identity, and the WebSocket echoes as any other.
    let mut socket = connect(&gateway, "/realtime/feed?room=1").await.unwrap();
    socket.send(auth(&token())).await.unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("hello")));
    let handshakes = upstream.handshakes();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].target, "/realtime/feed?room=1");
    assert_eq!(handshakes[0].headers["x-user-id"], "u-1");
    assert_eq!(upstream.messages(), vec![Message::text("hello")]);
    socket.close(None).await.unwrap();

    let metrics = gateway.admin_url("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "wasmgate_websocket_closes_total",
            &[r#"route="first""#, r#"code="1008""#, r#"by="gateway""#],
        )
        .await,
        Some(3.0)
    );
}

#[tokio::test]
async fn a_websocket_reaches_an_https_upstream_that_also_offers_http2() {
    // An HTTPS upstream that prefers `h2` by ALPN: the gateway's handshake upstream
    // must go over HTTP/1.1, the only version that switches protocols.
    let ca = TestCa::new();
    let upstream = WsUpstream::start_tls(&ca.issue(&["127.0.0.1"]));
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.secure]\nendpoints = [\"https://127.0.0.1:{}\"]\nca_file = {:?}\n\n\
             [[routes]]\nname = \"secure\"\nprefix = \"/secure\"\nservice = \"secure\"\n\
             [routes.websocket]\n",
            upstream.address.port(),
            ca_file.display().to_string()
        ))
        .start();
    let mut socket = connect(&gateway, "/secure/feed")
        .await
        .expect("the handshake succeeds");
    socket.send(Message::text("over tls")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("over tls")));
    assert_eq!(upstream.handshakes()[0].target, "/secure/feed");
}
