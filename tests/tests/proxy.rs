//! Routing and proxying through the real gateway, with no plugins: route matching,
//! the 404/405 envelopes, forwarded headers, request ids, byte-exact bodies, and
//! upstream failures.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use wasmgate_e2e::{TestGateway, Upstream, assert_envelope, client, send};

fn routes(upstream: &Upstream) -> TestGateway {
    TestGateway::new().service("echo", upstream.address).toml(
        r#"
[[routes]]
name = "exact"
path = "/exact"
service = "echo"

[[routes]]
name = "params"
path = "/users/{id}/orders/{order}"
methods = ["GET"]
service = "echo"

[[routes]]
name = "api"
prefix = "/api/"
strip_prefix = true
service = "echo"

[[routes]]
name = "by-host"
host = "special.example"
prefix = "/"
service = "echo"

[[routes]]
name = "post-only"
path = "/submit"
methods = ["POST", "PUT"]
service = "echo"

[[routes]]
name = "raw"
prefix = "/raw"
service = "echo"

[[routes]]
name = "kept-host"
prefix = "/kept-host"
preserve_host = true
service = "echo"
"#,
    )
}

async fn echo_of(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 200);
    response.json().await.expect("echo JSON")
}

#[tokio::test]
async fn routes_by_exact_path_params_prefix_method_and_host() {
    let upstream = Upstream::start();
    let gateway = routes(&upstream).start();
    let http = client();

    let echo = echo_of(http.get(gateway.url("/exact?x=1")).send().await.unwrap()).await;
    assert_eq!(echo["path"], "/exact");
    assert_eq!(echo["query"], "x=1");

    let echo = echo_of(
        http.get(gateway.url("/users/42/orders/7"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["path"], "/users/42/orders/7");

    // Prefix with strip: /api/v1/items reaches the upstream as /v1/items; /api alone as /.
    let echo = echo_of(http.get(gateway.url("/api/v1/items")).send().await.unwrap()).await;
    assert_eq!(echo["path"], "/v1/items");
    let echo = echo_of(http.get(gateway.url("/api")).send().await.unwrap()).await;
    assert_eq!(echo["path"], "/");

    // Prefixes match whole segments: /apix is not under /api.
    send(Method::GET, &gateway.url("/apix"), None)
        .await
        .assert_envelope(404, "NOT_FOUND");

    // Host routing: only requests for special.example reach the catch-all route.
    let echo = echo_of(
        http.get(gateway.url("/anything"))
            .header("host", "special.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["path"], "/anything");
    let response = http.get(gateway.url("/anything")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    // A route's host matches whatever port the client named, in any letter case.
    for host in ["special.example:8080", "Special.Example:443"] {
        let echo = echo_of(
            http.get(gateway.url("/anything"))
                .header("host", host)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(echo["path"], "/anything", "Host: {host}");
    }
    for host in ["special.example.evil", "xspecial.example:80"] {
        let response = http
            .get(gateway.url("/anything"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "Host: {host}");
    }

    // Methods: POST /submit passes, GET /submit is 405 with Allow.
    let echo = echo_of(
        http.post(gateway.url("/submit"))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["method"], "POST");
    let response = http.get(gateway.url("/submit")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST, PUT");
    let body = response.bytes().await.unwrap();
    assert_envelope(405, None, &body, 405, "METHOD_NOT_ALLOWED");

    // Params route is GET only.
    let response = http
        .delete(gateway.url("/users/42/orders/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test]
async fn forwards_headers_and_sets_forwarded_headers_and_request_ids() {
    let upstream = Upstream::start();
    let gateway = routes(&upstream).start();
    let http = client();

    let response = http
        .get(gateway.url("/exact"))
        .header("x-custom", "Value With  Spaces")
        .header("x-multi", "one")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-request-id", "client-id-123")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-123");
    assert_eq!(response.headers()["x-upstream"], "echo");
    let echo = echo_of(response).await;
    let headers = &echo["headers"];
    assert_eq!(headers["x-custom"][0], "Value With  Spaces");
    assert_eq!(headers["x-forwarded-for"][0], "10.1.2.3, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"][0], "http");
    assert_eq!(
        headers["x-forwarded-host"][0],
        gateway.address.to_string().as_str()
    );
    assert_eq!(headers["x-request-id"][0], "client-id-123");
    assert!(
        headers.get("x-hop").is_none(),
        "hop-by-hop header passed: {headers}"
    );
    assert_eq!(headers["host"][0], upstream.address.to_string().as_str());

    // `preserve_host = true`: the upstream gets the client's Host as it was sent.
    let echo = echo_of(
        http.get(gateway.url("/kept-host"))
            .header("host", "Public.Example:8443")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["headers"]["host"][0], "Public.Example:8443");
    assert_eq!(echo["headers"]["host"].as_array().unwrap().len(), 1);

    // An insane request id is replaced by a generated one, which the upstream sees too.
    let response = http
        .get(gateway.url("/exact"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let echo = echo_of(response).await;
    assert_eq!(echo["headers"]["x-request-id"][0], id.as_str());

    // Without one, every response still carries one.
    let response = http.get(gateway.url("/exact")).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn streams_a_10_mib_body_byte_exact_both_ways() {
    let upstream = Upstream::start();
    let gateway = routes(&upstream).start();
    let http = client();

    let body: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let response = http
        .post(gateway.url("/raw/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-upstream-body-len"], "10485760");
    let mut received = Vec::with_capacity(body.len());
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == body, "the body came back changed");
}

#[tokio::test]
async fn unreachable_and_slow_upstreams_get_502_and_504() {
    let upstream = Upstream::start();
    // An endpoint that dies after the first probe found it up (the next probe is a
    // minute away): requests learn that it is gone by trying.
    let doomed = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .service("gone", doomed.address)
        .toml(
            r#"
[health]
interval_ms = 60000

[[routes]]
name = "gone"
prefix = "/gone"
service = "gone"
[routes.retry]
attempts = 1

[[routes]]
name = "slow"
prefix = "/slow"
service = "echo"
timeout_ms = 300
"#,
        )
        .start();
    wasmgate_e2e::wait_for("the first probes", Duration::from_secs(5), || {
        (gateway.log().matches("upstream up").count() == 2).then_some(())
    });
    doomed.stop();
    let http = client();

    let value = send(Method::GET, &gateway.url("/gone"), None)
        .await
        .assert_envelope(502, "BAD_GATEWAY");
    assert!(
        !value["error"].as_str().unwrap().contains("127.0.0.1"),
        "internals leak to the client: {value}"
    );

    let started = std::time::Instant::now();
    let response = http
        .get(gateway.url("/slow?delay_ms=3000"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_envelope(
        status,
        None,
        &response.bytes().await.unwrap(),
        504,
        "GATEWAY_TIMEOUT",
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );

    // The route still works for a quick answer.
    let response = http
        .get(gateway.url("/slow?delay_ms=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let upstream = Upstream::start();
    let mut gateway = routes(&upstream).start();
    let url = gateway.url("/exact?delay_ms=700");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    // Wait until the request reached the upstream, then ask the gateway to stop.
    wasmgate_e2e::wait_for(
        "the request to reach the upstream",
        Duration::from_secs(5),
        || (upstream.hits() == 1).then_some(()),
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = gateway.terminate();
        (status, gateway)
    });
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(response.status(), 200);
    let (status, _gateway) = status.await.unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[tokio::test]
async fn serves_http2_with_prior_knowledge() {
    let upstream = Upstream::start();
    let gateway = routes(&upstream).start();
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(gateway.url("/exact?via=h2")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(response.headers().contains_key("x-request-id"));
    let echo = echo_of(response).await;
    assert_eq!(echo["query"], "via=h2");
    assert_eq!(
        echo["headers"]["x-forwarded-host"][0],
        gateway.address.to_string().as_str(),
        "the :authority of an HTTP/2 request is the forwarded host"
    );
    let response = h2.get(gateway.url("/nope")).send().await.unwrap();
    let status = response.status().as_u16();
    assert_envelope(
        status,
        None,
        &response.bytes().await.unwrap(),
        404,
        "NOT_FOUND",
    );
}

/// A request still in flight when `shutdown_grace_ms` (3 s in the test gateway) runs
/// out is cut, the process exits 0 soon after, and from the signal on no new
/// connection is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_what_outlives_the_grace_period() {
    let upstream = Upstream::start();
    let mut gateway = routes(&upstream).start();
    let address = gateway.address;
    let url = gateway.url("/exact?delay_ms=20000");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    wasmgate_e2e::wait_until(
        "the request to reach the upstream",
        Duration::from_secs(5),
        || async { (upstream.hits() == 1).then_some(()) },
    )
    .await;
    let started = std::time::Instant::now();
    gateway.signal("TERM");
    wasmgate_e2e::wait_until("the listener to close", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(address)
            .await
            .err()
            .map(|_| ())
    })
    .await;
    let status = tokio::task::spawn_blocking(move || {
        let status = gateway.terminate();
        (status, gateway)
    });
    let cut = in_flight.await.unwrap();
    assert!(
        cut.is_err() || cut.as_ref().is_ok_and(|r| r.status() != 200),
        "the request outlived the grace period: {cut:?}"
    );
    let (status, _gateway) = status.await.unwrap();
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(10),
        "exited after {took:?}, the grace period being 3 s"
    );
}
