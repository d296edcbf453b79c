//! Requests an attacker would send to get past a protected route, or past the
//! framing checks, with the real binary in front of a recording upstream.
//!
//! The gateway has a protected `/admin` prefix (the `deny` plugin answers 403), a
//! protected `/internal` prefix that is `case_insensitive`, and a catch-all `/` to the
//! same upstream. Every spelling of an admin path that an upstream framework could
//! read as `/admin` (repeated slashes, dot-segments behind `;`, `;params`, letter case,
//! and their %-encoded forms) must get the deny plugin's 403 or a 400, and the
//! upstream must never receive an admin path.

use wasmgate_e2e::{
    GatewayProcess, RawConnection, RawResponse, TestGateway, Upstream, assert_envelope, raw_request,
};

const DENY: &str =
    r#"config = { rules = [{}], status = 403, code = "FORBIDDEN", message = "protected" }"#;

fn start(upstream: &Upstream, limits: &str) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .toml(&format!(
            r#"
{limits}

[[routes]]
name = "public"
prefix = "/"
service = "echo"

[[routes]]
name = "admin"
prefix = "/admin"
service = "echo"

[[routes.plugins]]
name = "deny"
{DENY}

[[routes]]
name = "internal"
prefix = "/internal"
case_insensitive = true
service = "echo"

[[routes.plugins]]
name = "deny"
{DENY}
"#
        ))
        .start()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The envelope's code, once its shape is checked.
fn envelope_code(response: &RawResponse) -> String {
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "status {}: not an envelope ({e}): {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    });
    let code = value["code"].as_str().unwrap_or_default().to_string();
    assert_envelope(
        response.status,
        response.header("x-request-id"),
        &response.body,
        response.status,
        &code,
    );
    code
}

/// Reads `path` the way the loosest upstream would: decoded (twice), `;params`
/// stripped from each segment, repeated slashes merged, dot-segments resolved, lower
/// case.
fn loosely(path: &str) -> String {
    let mut text = path.to_string();
    for _ in 0..2 {
        text = percent_decode(&text);
    }
    let mut out: Vec<String> = Vec::new();
    for segment in text.replace('\\', "/").split('/') {
        match segment.split(';').next().unwrap_or("") {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other.to_ascii_lowercase()),
        }
    }
    format!("/{}", out.join("/"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn no_spelling_of_a_protected_path_gets_past_its_plugins() {
    let upstream = Upstream::start();
    let gateway = start(&upstream, "");
    let admin_variants = [
        // The plain paths, for comparison.
        "/admin",
        "/admin/users",
        // Repeated slashes.
        "//admin",
        "///admin//users",
        "/x//../admin",
        "/public/..//admin",
        "/.//admin/",
        // Dot-segments, plain and encoded.
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2E/admin",
        "/%2e/admin",
        "/%61dmin",
        // Dot-segments behind `;` and `;params`, raw and encoded.
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/.;/admin",
        "/;/admin",
        "/admin;x=1",
        "/admin;jsessionid=1/users",
        "/public/%2e%2e;/admin",
        "/public/..%3B/admin",
        "/public/..%3b/admin",
        "/admin%3Bx=1",
        "/public/%2e%2e%3b/admin",
        // Letter case, plain and encoded.
        "/ADMIN",
        "/Admin/users",
        "//ADMIN",
        "/%41DMIN",
        "/%41dmin/users",
        "/public/../AdMiN",
        // Encoded separators and double encoding.
        "/public/..%2Fadmin",
        "/public/..%2fadmin",
        "/public/..%5Cadmin",
        "/%252e%252e/admin",
        "/public/%252e%252e/admin",
        "/%2561dmin",
        "/public%252F..%252Fadmin",
        "/%C0%AE%C0%AE/admin",
    ];
    let internal_variants = [
        "/internal",
        "/INTERNAL",
        "/Internal/x",
        "//internal",
        "/%49nternal",
        "/public/..;/internal",
        "/INTERNAL;x=1",
    ];
    for path in admin_variants.iter().chain(&internal_variants) {
        let response = raw_request(gateway.address, &get(path));
        let code = envelope_code(&response);
        assert!(
            (response.status, code.as_str()) == (403, "FORBIDDEN")
                || (response.status, code.as_str()) == (400, "VALIDATION_ERROR"),
            "{path}: {} {code}",
            response.status
        );
    }
    assert_eq!(
        upstream.paths(),
        Vec::<String>::new(),
        "nothing reached the upstream"
    );

    // Paths that merely look alike still reach the catch-all, and nothing it
    // received reads as a protected path to any upstream.
    for path in [
        "/administrator",
        "/x//admin/..",
        "/public/admin",
        "/adminx/..",
    ] {
        let response = raw_request(gateway.address, &get(path));
        assert_eq!(response.status, 200, "{path}");
    }
    let received = upstream.paths();
    assert_eq!(received.len(), 4, "{received:?}");
    for path in &received {
        let read = loosely(path);
        assert!(
            !["/admin", "/internal"]
                .iter()
                .any(|p| read == *p || read.starts_with(&format!("{p}/"))),
            "the upstream received {path}, which reads as {read}"
        );
    }
}

#[test]
fn the_upstream_receives_the_merged_path() {
    let upstream = Upstream::start();
    let gateway = start(&upstream, "");
    for (sent, merged) in [
        ("//x", "/x"),
        ("//x//y/", "/x/y/"),
        ("/a///b?q=1//2", "/a/b"),
        ("/x//admin/..", "/x/"),
    ] {
        let response = raw_request(gateway.address, &get(sent));
        assert_eq!(response.status, 200, "{sent}");
        let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(echo["path"], merged, "{sent}");
    }
    assert_eq!(upstream.paths(), ["/x", "/x/y/", "/a/b", "/x/"]);
}

#[test]
fn a_malformed_chunked_body_is_a_validation_error() {
    let upstream = Upstream::start();
    let gateway = start(&upstream, "");
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5;\r\nhello\r\nffffffffffffffffffff\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
    ] {
        let request =
            format!("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let response = raw_request(gateway.address, request.as_bytes());
        assert_envelope(
            response.status,
            response.header("x-request-id"),
            &response.body,
            400,
            "VALIDATION_ERROR",
        );
        assert_eq!(response.header("connection"), Some("close"), "{body:?}");
    }
}

#[test]
fn a_request_target_over_the_limit_is_414_even_past_the_read_buffer() {
    let upstream = Upstream::start();
    // The read buffer is (4096 + 1024) * 2 + 8192 bytes.
    let gateway = start(
        &upstream,
        "[limits]\nmax_header_bytes = 4096\nmax_uri_bytes = 1024",
    );
    for length in [1100, 20_000, 200_000] {
        let mut connection = RawConnection::open(gateway.address);
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(length),
            "p".repeat(3000)
        );
        connection.send(request.as_bytes());
        let response = connection.response();
        assert_envelope(
            response.status,
            response.header("x-request-id"),
            &response.body,
            414,
            "URI_TOO_LONG",
        );
        // The connection's framing is intact: the next request is served.
        connection.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(connection.response().status, 200, "after {length}");
    }
    assert_eq!(upstream.paths(), ["/next", "/next", "/next"]);
}

const SMUGGLE: &[u8] = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn every_request_on_a_connection_gets_the_framing_checks() {
    let upstream = Upstream::start();
    let gateway = start(&upstream, "[limits]\nmax_header_bytes = 400000");
    let long_line = format!(
        "GET /long HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "l".repeat(300_000)
    );
    let before: [(&str, Vec<u8>); 5] = [
        (
            "an upgrade that was not performed",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec(),
        ),
        (
            "an h2c upgrade with a body",
            b"POST /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        (
            "a chunked body with trailers",
            b"POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n".to_vec(),
        ),
        ("a long header line", long_line.into_bytes()),
        (
            "a plain request",
            b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ];
    for (what, first) in &before {
        // One request at a time, then pipelined in one write.
        for pipelined in [false, true] {
            let mut connection = RawConnection::open(gateway.address);
            if pipelined {
                connection.send(&[first.as_slice(), first.as_slice(), SMUGGLE].concat());
            } else {
                connection.send(first);
            }
            assert!(connection.response().status < 500, "{what}");
            if !pipelined {
                connection.send(first);
            }
            assert!(connection.response().status < 500, "{what}, again");
            if !pipelined {
                connection.send(SMUGGLE);
            }
            let refused = connection.response();
            assert_envelope(
                refused.status,
                refused.header("x-request-id"),
                &refused.body,
                400,
                "VALIDATION_ERROR",
            );
            assert!(connection.is_closed(), "{what}: the connection stays open");
        }
    }
    let received = upstream.paths();
    assert!(
        !received.iter().any(|p| p.contains("smuggled") || p == "/x"),
        "{received:?}"
    );
}

/// A `deny` rule for a path, on a catch-all route, in front of an upstream that reads
/// letters in any case (as IIS or a case-insensitive Spring app would).
#[test]
fn a_path_rule_holds_for_every_letter_case() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .toml(
            r#"
[[routes]]
name = "all"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/private" }, { path = "/ops/metrics" }], status = 403, code = "FORBIDDEN", message = "protected" }
"#,
        )
        .start();
    for path in [
        "/private",
        "/PRIVATE/x",
        "/Private/Users/1",
        "/%50rivate/x",
        "/ops/metrics",
        "/OPS/Metrics",
    ] {
        let response = raw_request(gateway.address, &get(path));
        assert_eq!(envelope_code(&response), "FORBIDDEN", "{path}");
    }
    assert_eq!(raw_request(gateway.address, &get("/privateer")).status, 200);
    let reached: Vec<String> = upstream.paths().iter().map(|p| loosely(p)).collect();
    assert_eq!(
        reached,
        ["/privateer"],
        "only the unprotected path got through"
    );
}

/// Identity headers are the auth plugins' to set: a client's own never reach an
/// upstream, on any route, in any spelling a server could read as one.
#[test]
fn a_client_cannot_send_identity_headers_on_any_route() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"public\"\nprefix = \"/\"\nservice = \"echo\"\n")
        .start();
    let response = raw_request(
        gateway.address,
        b"GET /me HTTP/1.1\r\nHost: x\r\nX-User-Id: 1\r\nX-User-Role: admin\r\nX_User_Permissions: *\r\nx-username: root\r\nX-User-Anything: y\r\nX-Other: kept\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("x-user") && !n.starts_with("x_user")),
        "{names:?}"
    );
    assert_eq!(echo["headers"]["x-other"], serde_json::json!(["kept"]));
}

/// An exact route in front of a catch-all: `/admin/` is `/admin` to Express, Spring
/// before 6 and the like, so it gets the exact route's plugins, never the catch-all.
#[test]
fn an_exact_route_holds_for_its_path_with_a_trailing_slash() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .toml(&format!(
            r#"
[[routes]]
name = "all"
prefix = "/"
service = "echo"

[[routes]]
name = "admin"
path = "/admin"
service = "echo"

[[routes.plugins]]
name = "deny"
{DENY}
"#
        ))
        .start();
    for path in ["/admin", "/admin/", "/x/../admin/", "/%61dmin/"] {
        let response = raw_request(gateway.address, &get(path));
        assert_eq!(envelope_code(&response), "FORBIDDEN", "{path}");
    }
    assert_eq!(raw_request(gateway.address, &get("/admin/x")).status, 200);
    assert_eq!(upstream.paths(), ["/admin/x"]);
}
