//! Bad input gets the right status and the envelope, and nothing reaches the upstream.

use wasmgate_e2e::{
    GatewayProcess, RawConnection, TestGateway, Upstream, assert_envelope, raw_request,
};

fn start(upstream: &Upstream) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .toml(
            r#"
[limits]
max_header_bytes = 4096
max_uri_bytes = 1024

[[routes]]
name = "all"
prefix = "/"
service = "echo"
"#,
        )
        .start()
}

/// Sends raw bytes; checks status, envelope and that the upstream saw nothing.
fn refused(gateway: &GatewayProcess, upstream: &Upstream, request: &[u8], status: u16, code: &str) {
    let before = upstream.hits();
    let response = raw_request(gateway.address, request);
    assert_envelope(
        response.status,
        response.header("x-request-id"),
        &response.body,
        status,
        code,
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "envelope content type"
    );
    assert_eq!(
        upstream.hits(),
        before,
        "the request reached the upstream: {}",
        String::from_utf8_lossy(request)
    );
}

#[test]
fn dot_segments_are_resolved_before_routing_and_forwarding() {
    let upstream = Upstream::start();
    let gateway = start(&upstream);
    let response = raw_request(
        gateway.address,
        b"GET /a/b/../c/./d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        echo["path"], "/a/c/d",
        "the upstream gets the path that was routed"
    );
    let response = raw_request(
        gateway.address,
        b"GET /a/%2e%2e/%7Euser HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echo["path"], "/~user");
}

#[test]
fn paths_that_escape_or_hide_structure_are_refused() {
    let upstream = Upstream::start();
    let gateway = start(&upstream);
    for path in [
        "/..",
        "/a/../../etc/passwd",
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/a%00b",
        "/a%zz",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        refused(
            &gateway,
            &upstream,
            request.as_bytes(),
            400,
            "VALIDATION_ERROR",
        );
    }
}

#[test]
fn ambiguous_framing_is_refused() {
    let upstream = Upstream::start();
    let gateway = start(&upstream);
    // Content-Length before and after Transfer-Encoding.
    refused(
        &gateway,
        &upstream,
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "VALIDATION_ERROR",
    );
    refused(
        &gateway,
        &upstream,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
        "VALIDATION_ERROR",
    );
    // A smuggling attempt on a keep-alive connection: the second request is never
    // forwarded either, because the connection is closed after the refusal. Checked
    // once the connection is seen closed, when the smuggled request would have gone.
    let before = upstream.hits();
    let mut connection = RawConnection::open(gateway.address);
    connection.send(
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let response = connection.response();
    assert_envelope(
        response.status,
        response.header("x-request-id"),
        &response.body,
        400,
        "VALIDATION_ERROR",
    );
    assert!(connection.is_closed(), "the connection stays open");
    assert_eq!(upstream.hits(), before, "{:?}", upstream.paths());
    // Plain chunked and plain Content-Length requests on one connection still work.
    let response = raw_request(
        gateway.address,
        b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echo["body"], "hello");
}

#[test]
fn duplicate_or_missing_host_is_refused() {
    let upstream = Upstream::start();
    let gateway = start(&upstream);
    refused(
        &gateway,
        &upstream,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        400,
        "VALIDATION_ERROR",
    );
    refused(
        &gateway,
        &upstream,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        400,
        "VALIDATION_ERROR",
    );
}

#[test]
fn oversized_headers_and_uris_are_refused() {
    let upstream = Upstream::start();
    let gateway = start(&upstream);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(5000)
    );
    refused(
        &gateway,
        &upstream,
        big_header.as_bytes(),
        431,
        "HEADERS_TOO_LARGE",
    );
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(2000)
    );
    refused(
        &gateway,
        &upstream,
        long_uri.as_bytes(),
        414,
        "URI_TOO_LONG",
    );
    // Just under the limits passes.
    let fits = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(900),
        "b".repeat(3000)
    );
    assert_eq!(raw_request(gateway.address, fits.as_bytes()).status, 200);
}

#[test]
fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let upstream = Upstream::start();
    // Two different limits, so that each cut shows which timer made it.
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml(
            "[limits]\nheader_read_timeout_ms = 250\nidle_timeout_ms = 2000\n\n[[routes]]\nname = \"all\"\nprefix = \"/\"\nservice = \"echo\"\n",
        )
        .start();
    let header_limit = Duration::from_millis(1500); // well under the idle limit

    let closed_within = |stream: &mut std::net::TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let started = Instant::now();
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    };

    // A client that never finishes its headers is cut off at the header limit.
    let mut slow = std::net::TcpStream::connect(gateway.address).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let waited = closed_within(&mut slow);
    assert!(waited < header_limit, "slow headers kept for {waited:?}");

    // So is a new connection that never sends a byte: it owes its first head.
    let mut silent = std::net::TcpStream::connect(gateway.address).unwrap();
    let waited = closed_within(&mut silent);
    assert!(
        waited < header_limit,
        "a silent connection kept for {waited:?}"
    );

    // A kept-alive connection outlives the header limit between requests: the next
    // head's clock starts at its first byte.
    let mut idle = RawConnection::open(gateway.address);
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.response().status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        idle.response().status,
        200,
        "a connection idle for 1 s (header limit 250 ms, idle limit 2 s) could not be reused"
    );
    // And is closed once idle for the idle limit.
    let started = Instant::now();
    assert!(idle.is_closed(), "idle connection still open after 10 s");
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(1500),
        "idle connection closed after {waited:?} (idle limit 2 s)"
    );
    assert_eq!(upstream.hits(), 2);

    // A request slower than the idle limit still completes: it is in flight.
    let response = raw_request(
        gateway.address,
        b"GET /?delay_ms=2300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
}
