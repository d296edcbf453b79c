//! Slow and greedy clients with the real binary: a request body that stalls, a client
//! that stops reading its response, and more connections than the operator allows,
//! overall and from one address. Each is cut off or refused, with the other clients
//! still served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream as AsyncStream};
use wasmgate_e2e::{GatewayProcess, RawConnection, TestGateway, Upstream, assert_envelope};

fn start(upstream: &Upstream, limits: &str) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("bodyupper", "bodyupper")
        .toml(&format!(
            r#"
[limits]
{limits}

[[routes]]
name = "streamed"
prefix = "/s"
service = "echo"

[[routes]]
name = "buffered"
prefix = "/b"
service = "echo"

[[routes.plugins]]
name = "bodyupper"
"#
        ))
        .start()
}

fn get(gateway: &GatewayProcess, path: &str) -> u16 {
    let mut connection = RawConnection::open(gateway.address);
    connection
        .send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    connection.response().status
}

#[test]
fn a_stalled_request_body_gets_408_while_others_are_served() {
    let upstream = Upstream::start();
    let gateway = start(&upstream, "body_read_timeout_ms = 300");

    // Streamed to the upstream, and buffered for a plugin: the same answer.
    for path in ["/s/upload", "/b/upload"] {
        let mut stalled = RawConnection::open(gateway.address);
        stalled.send(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                .as_bytes(),
        );
        let started = Instant::now();
        assert_eq!(get(&gateway, "/s/other"), 200, "another client is served");
        let response = stalled.response();
        let waited = started.elapsed();
        assert_envelope(
            response.status,
            response.header("x-request-id"),
            &response.body,
            408,
            "REQUEST_TIMEOUT",
        );
        assert_eq!(response.header("connection"), Some("close"), "{path}");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "{path}: answered after {waited:?}"
        );
    }
    // A streamed body had started on its way upstream (and was cut there too); a
    // body buffered for a plugin never left the gateway.
    let paths = upstream.paths();
    assert!(!paths.contains(&"/b/upload".to_string()), "{paths:?}");

    // The limit is on a stall, not on the whole body: a body that keeps coming, slower
    // in all than the limit, goes through.
    for path in ["/s/steady", "/b/steady"] {
        let mut steady = TcpStream::connect(gateway.address).unwrap();
        steady
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        for byte in b"abcdefghij" {
            std::thread::sleep(Duration::from_millis(100));
            steady.write_all(&[*byte]).unwrap();
        }
        let mut response = String::new();
        steady.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    }
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    const SIZE: usize = 64 << 20;
    let upstream = Upstream::start();
    let gateway = start(&upstream, "send_timeout_ms = 500");

    let mut reader = TcpStream::connect(gateway.address).unwrap();
    reader
        .write_all(format!("GET /s/bytes?bytes={SIZE} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    // Read nothing for a while: the gateway's writes block, then time out.
    gateway.wait_for_log("stopped reading");
    std::thread::sleep(Duration::from_millis(200));
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(
        received < SIZE,
        "the connection was cut: {received} of {SIZE} bytes arrived"
    );

    // A client that reads gets the whole body.
    let mut whole = TcpStream::connect(gateway.address).unwrap();
    whole
        .write_all(
            format!("GET /s/bytes?bytes={SIZE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut body = Vec::new();
    whole.read_to_end(&mut body).unwrap();
    assert!(body.len() > SIZE, "{} bytes", body.len());
}

/// Connects from `source` (a loopback address) and sends one keep-alive request.
async fn connect_from(source: &str, gateway: SocketAddr) -> AsyncStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(gateway).await.unwrap();
    stream
        .write_all(b"GET /s/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// The status of the response on `stream`, or `None` when the gateway closed it
/// without one.
async fn status(stream: &mut AsyncStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "an answer or a close within 5 s");
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test]
async fn connections_over_the_limits_are_refused() {
    let upstream = Upstream::start();
    let gateway = start(
        &upstream,
        "max_connections = 3\nmax_connections_per_client = 2",
    );
    let address = gateway.address;

    let mut a = connect_from("127.0.0.1", address).await;
    assert_eq!(status(&mut a).await, Some(200));
    let mut b = connect_from("127.0.0.1", address).await;
    assert_eq!(status(&mut b).await, Some(200));
    // A third from the same address: over the per-client limit.
    let mut c = connect_from("127.0.0.1", address).await;
    assert!(matches!(status(&mut c).await, None | Some(429)));
    // Another address still gets in, up to the gateway's limit.
    let mut d = connect_from("127.0.0.2", address).await;
    assert_eq!(status(&mut d).await, Some(200));
    let mut e = connect_from("127.0.0.3", address).await;
    assert!(matches!(status(&mut e).await, None | Some(503)));
    assert_eq!(upstream.hits(), 3, "refused connections reached nothing");

    // A closed connection frees its place.
    drop(a);
    let served = async {
        loop {
            let mut again = connect_from("127.0.0.1", address).await;
            if status(&mut again).await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("a freed place is taken again");
    drop((b, c, d, e));

    // Both refusals are counted, by reason.
    let metrics = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut stream = AsyncStream::connect(address).await.unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text).await;
            if text.starts_with("HTTP/1.1 200") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("metrics once the connections are closed");
    for reason in ["per_client", "max_connections"] {
        let line = format!("wasmgate_connections_refused_total{{reason=\"{reason}\"}}");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&line) && !l.ends_with(" 0")),
            "{line} counted: {metrics}"
        );
    }
}

/// The gateway may answer before a request's body has arrived (a plugin refuses it, the
/// upstream is down): the rest of the body is still on its way, so the answer closes
/// the connection and says so, and the client's next request goes on a new one.
#[test]
fn an_answer_before_the_body_arrived_closes_the_connection() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .toml(
            r#"
[[routes]]
name = "open"
prefix = "/s"
service = "echo"

[[routes]]
name = "denied"
prefix = "/denied"
service = "echo"

[[routes.plugins]]
name = "deny"
config = { rules = [{}] }
"#,
        )
        .start();

    let mut early = RawConnection::open(gateway.address);
    early.send(b"POST /denied HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    let response = early.response();
    assert_eq!(response.status, 403);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        early.is_closed(),
        "the connection is closed after the answer"
    );

    // A body read to its end keeps the connection open for the next request.
    let mut kept = RawConnection::open(gateway.address);
    kept.send(b"POST /s/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    let response = kept.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None);
    kept.send(b"GET /s/y HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(kept.response().status, 200);
}
