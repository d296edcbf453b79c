//! HTTP/2 abuse with a real HTTP/2 client (the `h2` crate, which lets a test send what
//! browsers never do): a rapid-reset flood (CVE-2023-44487: open a stream, cancel it,
//! again and again) costs the attacker its connection after `http2_max_resets`
//! cancellations, while a client on another connection keeps being served.

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

    // As fast as the client can: streams reset before hyper takes them are counted by
    // h2 (GOAWAY past the same limit), the rest by the gateway; either way the
    // connection ends within the limit's order.
    let opened = flood(gateway.address, &target, None).await;
    assert!(opened <= 1_000, "a fast flood opened {opened} streams");
    eprintln!(
        "the fast flood opened {opened} streams; cut: {:?}",
        cut().await
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
