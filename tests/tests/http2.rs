//! HTTP/2 abuse with a real HTTP/2 client (the `h2` crate, which lets a test send what
//! browsers never do): a rapid-reset flood (CVE-2023-44487: open a stream, cancel it,
//! again and again) costs the attacker its connection after `http2_max_resets`
//! cancellations, while a client on another connection keeps being served; a
//! CONTINUATION flood (a header block that never ends) loses its connection after a
//! bounded number of bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmgate_e2e::{TestGateway, Upstream, metric};

/// Streams the flood may open before the test calls it unbounded.
const FLOOD: usize = 20_000;

#[tokio::test]
async fn a_rapid_reset_flood_loses_its_connection_and_a_parallel_client_is_served() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml(
            r#"
[limits]
http2_max_resets = 50

[[routes]]
name = "all"
prefix = "/"
service = "echo"
"#,
        )
        .start();

    // A well-behaved HTTP/2 client on its own connection, all along.
    let url = gateway.url("/served");
    let done = Arc::new(AtomicBool::new(false));
    let flooded = done.clone();
    let parallel = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let mut served = 0;
        while served < 20 || !flooded.load(Ordering::Relaxed) {
            let response = client.get(&url).send().await.expect("served");
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), http::Version::HTTP_2);
            served += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        served
    });

    let target = gateway.url("/slow?delay_ms=500");
    let metrics = gateway.admin_url("/metrics");
    let cut = || {
        metric(
            &metrics,
            "wasmgate_connections_cut_total",
            &[r#"reason="too_many_resets""#],
        )
    };

    // Paced: each stream is taken (its request under way) before it is cancelled, so
    // the gateway's own count of cancelled requests ends the connection.
    let opened = flood(gateway.address, &target, Some(Duration::from_millis(3))).await;
    assert!(opened <= 1_000, "a paced flood opened {opened} streams");
    assert_eq!(cut().await, Some(1.0), "opened {opened}");

    // As fast as the client can: a stream reset before hyper takes it costs the
    // gateway nothing but h2's bookkeeping (h2 sends GOAWAY once `http2_max_resets`
    // of them wait at once); a stream taken and then reset is a request started and
    // cancelled, counted by the gateway against the same limit. How many streams the
    // flood gets to open depends on how the two race (hundreds, on a busy machine
    // over a thousand); what it costs the gateway is the requests it started: none or
    // one in runs here, several hundred with h2's limit switched off (the gateway's own
    // count then cuts the connection, later).
    let cancelled = || metric(&metrics, "wasmgate_requests_cancelled_total", &[]);
    let before = cancelled().await.expect("the cancellation counter");
    let opened = flood(gateway.address, &target, None).await;
    // The count settles once the streams' tasks have seen the connection end.
    let mut started = cancelled().await.unwrap() - before;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = cancelled().await.unwrap() - before;
        if now == started {
            break;
        }
        started = now;
    }
    eprintln!(
        "the fast flood opened {opened} streams, the gateway started {started} of them; cut: {:?}",
        cut().await
    );
    assert!(
        started <= 200.0,
        "the fast flood started {started} requests"
    );
    done.store(true, Ordering::Relaxed);
    assert!(parallel.await.unwrap() >= 20);
    assert!(
        upstream.hits() <= 2_000,
        "{} upstream calls",
        upstream.hits()
    );
}

/// Opens streams on a new HTTP/2 connection and cancels each (after `pause`, if
/// any), until the gateway ends the connection; how many it opened. Panics if the
/// connection outlives `FLOOD` streams or does not end.
async fn flood(address: std::net::SocketAddr, target: &str, pause: Option<Duration>) -> usize {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut opened = 0;
    while opened < FLOOD {
        send = match send.ready().await {
            Ok(ready) => ready,
            Err(_) => break,
        };
        let request = http::Request::get(target).body(()).unwrap();
        match send.send_request(request, false) {
            Ok((_response, mut stream)) => {
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
                stream.send_reset(h2::Reason::CANCEL);
                opened += 1;
            }
            Err(_) => break,
        }
        tokio::task::yield_now().await;
    }
    assert!(
        opened < FLOOD,
        "the connection took {FLOOD} cancelled streams"
    );
    // Ended by the gateway: a GOAWAY, or the socket closed (which h2 may report as a
    // clean end once no stream is open).
    let _ = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the flooding connection ends")
        .unwrap();
    opened
}

/// Most bytes a CONTINUATION flood may send before the gateway ends its connection
/// (the gateway stops after a few frames; what the flood sends besides is what the
/// sockets buffer while the gateway's answer is on its way).
const CONTINUATION_BUDGET: usize = 4 * 1024 * 1024;

#[tokio::test]
async fn a_continuation_flood_loses_its_connection_within_the_header_limit() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"all\"\nprefix = \"/\"\nservice = \"echo\"\n")
        .start();
    // Full frames (the header block grows past the limit) and empty ones (it never
    // grows, but the frames never end): each costs the attacker its connection after
    // a bounded number of bytes, and the next client is served.
    for frame_bytes in [16_000, 0] {
        let sent = continuation_flood(gateway.address, frame_bytes).await;
        assert!(
            sent <= CONTINUATION_BUDGET,
            "{frame_bytes}-byte frames: {sent} bytes sent before the connection ended"
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let response = client.get(gateway.url("/after")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        upstream.hits(),
        2,
        "the flooding requests never went upstream"
    );
}

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Opens a connection (prior knowledge), starts a request's header block and never
/// ends it: CONTINUATION frames of `frame_bytes` each (literal headers) until the
/// gateway ends the connection; the bytes sent by then. Panics if the connection
/// does not end within 10 seconds.
async fn continuation_flood(address: std::net::SocketAddr, frame_bytes: usize) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const END_STREAM: u8 = 0x1;
    const GOAWAY: u8 = 0x7;
    // A literal header without indexing, new name: `x-fill: f…` (100 bytes).
    let mut literal = vec![0x00, 6];
    literal.extend_from_slice(b"x-fill");
    literal.push(100);
    literal.extend_from_slice(&[b'f'; 100]);
    let block = literal.repeat(frame_bytes / literal.len());

    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    // The gateway's side: ended by a GOAWAY, or by closing the socket.
    let ended = tokio::spawn(async move {
        let mut head = [0u8; 9];
        loop {
            if reader.read_exact(&mut head).await.is_err() {
                return "closed";
            }
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as u64;
            if head[3] == GOAWAY {
                return "goaway";
            }
            let mut payload = (&mut reader).take(length);
            if tokio::io::copy(&mut payload, &mut tokio::io::sink())
                .await
                .is_err()
            {
                return "closed";
            }
        }
    });
    let flood = async {
        let mut sent = 0;
        writer
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        writer.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        // `:method GET`, `:scheme http`, `:path /` from the static table, then fill.
        let mut first = vec![0x82, 0x86, 0x84];
        first.extend_from_slice(&block);
        let mut next = frame(HEADERS, END_STREAM, 1, &first);
        for frames in 1usize.. {
            if ended.is_finished() || writer.write_all(&next).await.is_err() {
                break;
            }
            sent += next.len();
            next = frame(CONTINUATION, 0, 1, &block);
            // Let the reader see a GOAWAY as it comes.
            match frames % 64 {
                0 => tokio::time::sleep(Duration::from_millis(1)).await,
                _ => tokio::task::yield_now().await,
            }
        }
        sent
    };
    let sent = tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .expect("the flood is stopped within 10 s");
    let how = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the connection ends")
        .unwrap();
    eprintln!("{frame_bytes}-byte CONTINUATION frames: {sent} bytes sent, then {how}");
    sent
}
