use std::collections::BTreeMap;

use wasmgate_plugin_sdk::Settings;
use wasmgate_plugin_sdk::testing::{Harness, SentRequest, TestContext, TestRequest, with_context};

use super::*;

const APP: &str = "https://app.example.com";

/// The config of the brief's example: a list, a wildcard, credentials.
const CREDENTIALED: &str = r#"{"origins": ["https://app.example.com", "https://*.example.com"],
    "methods": ["GET", "POST", "put"], "headers": ["Content-Type", "authorization"],
    "expose": ["x-request-id", "X-Total"], "credentials": true, "max_age": 300}"#;

fn harness(config: &str) -> Harness<Cors> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// Every header as name → values (names lower-case; one header's values in order).
fn fields(headers: &Headers) -> BTreeMap<String, Vec<String>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers.entries() {
        fields
            .entry(name)
            .or_default()
            .push(String::from_utf8(value).unwrap());
    }
    fields
}

/// `fields` written out.
fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in pairs {
        fields
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    fields
}

/// Only the CORS headers (and `vary`) of `headers`.
fn cors_fields(headers: &Headers) -> BTreeMap<String, Vec<String>> {
    let mut all = fields(headers);
    all.retain(|name, _| name.starts_with("access-control-") || name == "vary");
    all
}

/// `OPTIONS path` with `Origin` and `Access-Control-Request-Method`.
fn preflight(origin: &str, method: &str) -> TestRequest {
    TestRequest::method("OPTIONS", "/api/items")
        .header("origin", origin)
        .header("access-control-request-method", method)
}

/// The plugin's answer to a request it must answer (a fresh request: no variables).
fn answer(h: &mut Harness<Cors>, request: TestRequest) -> Response {
    h.ctx.vars.clear();
    match h.on_request(request).action {
        Action::Respond(response) => response,
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Checks a refused preflight: 403 `FORBIDDEN` envelope, no CORS headers; its message.
fn refused(h: &mut Harness<Cors>, request: TestRequest) -> String {
    let response = answer(h, request);
    assert_eq!(response.status, 403);
    let envelope: serde_json::Value =
        serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["code"], "FORBIDDEN");
    assert_eq!(envelope["request_id"], h.ctx.request_id.as_str());
    assert_eq!(
        cors_fields(&response.headers),
        want(&[("vary", PREFLIGHT_VARY)]),
        "a refused preflight carries no CORS headers"
    );
    assert_eq!(
        response.headers.get("content-type").as_deref(),
        Some("application/json")
    );
    envelope["error"].as_str().unwrap().to_string()
}

/// Runs a fresh request through both phases, checking the request went on untouched;
/// the response as the plugin left it.
fn exchange(h: &mut Harness<Cors>, request: TestRequest, upstream: Response) -> Response {
    h.ctx.vars.clear();
    let outcome = h.on_request(request.clone());
    assert_eq!(outcome.action, Action::Continue);
    assert_eq!(
        outcome.request(),
        Some(&SentRequest::from(request)),
        "actual requests go on untouched"
    );
    h.on_response(upstream)
}

fn upstream_ok() -> Response {
    Response::text(200, "ok")
}

#[test]
fn an_allowed_preflight_is_answered_with_every_header() {
    let mut h = harness(CREDENTIALED);
    let response = answer(
        &mut h,
        preflight(APP, "PUT").header("access-control-request-headers", "content-type"),
    );
    assert_eq!(response.status, 204);
    assert_eq!(response.body, None);
    assert_eq!(
        fields(&response.headers),
        want(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, POST, PUT"),
            (
                "access-control-allow-headers",
                "content-type, authorization"
            ),
            ("access-control-max-age", "300"),
            ("vary", PREFLIGHT_VARY),
        ])
    );
    assert!(h.vars_set().is_empty(), "a preflight leaves no variable");
}

#[test]
fn defaults_allow_the_common_methods_and_the_safelisted_headers() {
    let mut h = harness(r#"{"origins": ["https://app.example.com"]}"#);
    assert_eq!(
        h.settings(),
        Settings::default(),
        "needs the response phase"
    );
    let response = answer(&mut h, preflight(APP, "DELETE"));
    assert_eq!(response.status, 204);
    assert_eq!(
        fields(&response.headers),
        want(&[
            ("access-control-allow-origin", APP),
            (
                "access-control-allow-methods",
                "GET, HEAD, POST, PUT, PATCH, DELETE"
            ),
            (
                "access-control-allow-headers",
                "accept, accept-language, content-language, content-type"
            ),
            ("access-control-max-age", "600"),
            ("vary", PREFLIGHT_VARY),
        ]),
        "no credentials header unless configured"
    );
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", APP),
        upstream_ok(),
    );
    assert_eq!(
        cors_fields(&response.headers),
        want(&[("access-control-allow-origin", APP), ("vary", "Origin")]),
        "no expose or credentials header unless configured"
    );
}

#[test]
fn a_disallowed_origin_gets_a_403_preflight_and_no_headers_on_actual_requests() {
    let mut h = harness(CREDENTIALED);
    for origin in [
        "https://evil.org",
        "https://example.com",
        "https://example.com.evil.org",
        "https://evilexample.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://APP.example.com",
        "null",
        "",
    ] {
        let message = refused(&mut h, preflight(origin, "GET"));
        assert!(message.contains("origin"), "{origin}: {message}");
        let response = exchange(
            &mut h,
            TestRequest::post("/api").header("origin", origin).body("x"),
            upstream_ok(),
        );
        assert_eq!(
            cors_fields(&response.headers),
            want(&[("vary", "Origin")]),
            "{origin}"
        );
        assert!(h.vars_set().is_empty(), "{origin}");
    }
    assert_eq!(
        h.logs()[0],
        (
            wasmgate_plugin_sdk::log::Level::Debug,
            "preflight refused: this origin may not make cross-origin requests here".into()
        )
    );
}

#[test]
fn wildcard_subdomains_take_one_label_or_more_with_the_same_scheme() {
    let mut h = harness(CREDENTIALED);
    for origin in ["https://a.example.com", "https://a.b-c.example.com"] {
        let response = answer(&mut h, preflight(origin, "GET"));
        assert_eq!(response.status, 204, "{origin}");
        assert_eq!(
            response
                .headers
                .get("access-control-allow-origin")
                .as_deref(),
            Some(origin),
            "the origin is echoed, never the pattern"
        );
        let response = exchange(
            &mut h,
            TestRequest::get("/").header("origin", origin),
            upstream_ok(),
        );
        assert_eq!(
            response
                .headers
                .get("access-control-allow-origin")
                .as_deref(),
            Some(origin)
        );
    }
    for origin in [
        "https://example.com",
        "https://example.com.evil.org",
        "https://evilexample.com",
        "http://a.example.com",
        "https://a.example.com:444",
    ] {
        refused(&mut h, preflight(origin, "GET"));
    }
}

#[test]
fn an_allowed_actual_request_gets_origin_credentials_expose_and_vary() {
    let mut h = harness(CREDENTIALED);
    let upstream = Response::text(201, "made")
        .with_header("vary", "Accept-Encoding")
        .with_header("x-request-id", "r1");
    let response = exchange(
        &mut h,
        TestRequest::put("/api/items/1")
            .header("origin", APP)
            .header("cookie", "s=1")
            .body("{}"),
        upstream,
    );
    assert_eq!(response.status, 201);
    assert_eq!(response.body_text(), "made");
    assert_eq!(
        fields(&response.headers),
        want(&[
            ("content-type", "text/plain; charset=utf-8"),
            ("x-request-id", "r1"),
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id, x-total"),
            ("vary", "Accept-Encoding"),
            ("vary", "Origin"),
        ]),
        "the upstream's Vary is kept, Origin appended; no preflight-only headers"
    );
    assert_eq!(
        h.vars_set(),
        [(ALLOWED_ORIGIN_VAR.to_string(), APP.to_string())]
    );
}

#[test]
fn vary_origin_is_not_added_twice() {
    let mut h = harness(CREDENTIALED);
    for vary in ["origin", "Accept, ORIGIN", "*"] {
        let upstream = upstream_ok().with_header("vary", vary);
        let response = exchange(
            &mut h,
            TestRequest::get("/").header("origin", APP),
            upstream,
        );
        assert_eq!(response.headers.get_all("vary"), [vary]);
    }
}

#[test]
fn requests_without_origin_pass_and_their_responses_only_vary() {
    let mut h = harness(CREDENTIALED);
    let upstream = upstream_ok().with_header("access-control-allow-origin", "*");
    let response = exchange(&mut h, TestRequest::get("/"), upstream);
    assert_eq!(cors_fields(&response.headers), want(&[("vary", "Origin")]));
    // Access-Control-Request-Method without Origin is no preflight.
    let request =
        TestRequest::method("OPTIONS", "/").header("access-control-request-method", "PUT");
    let response = exchange(&mut h, request, upstream_ok());
    assert_eq!(cors_fields(&response.headers), want(&[("vary", "Origin")]));
}

#[test]
fn the_plugin_owns_cors_and_replaces_the_upstreams_headers() {
    let mut h = harness(CREDENTIALED);
    let upstream = || {
        upstream_ok()
            .with_header("access-control-allow-origin", "*")
            .with_header("Access-Control-Allow-Methods", "GET")
            .with_header("access-control-expose-headers", "x-secret")
            .with_header("access-control-allow-origin", "https://other.example")
            .with_header("access-control-max-age", "99999")
    };
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", APP),
        upstream(),
    );
    assert_eq!(
        cors_fields(&response.headers),
        want(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id, x-total"),
            ("vary", "Origin"),
        ])
    );
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", "https://evil.org"),
        upstream(),
    );
    assert_eq!(
        cors_fields(&response.headers),
        want(&[("vary", "Origin")]),
        "a disallowed origin gets none, not even the upstream's"
    );
}

#[test]
fn answers_of_later_plugins_and_the_gateway_get_the_headers_too() {
    let mut h = harness(CREDENTIALED);
    h.ctx.upstream = None;
    let later = with_context(&TestContext::default(), |ctx| {
        Response::forbidden("no", ctx)
    });
    let response = exchange(&mut h, TestRequest::get("/").header("origin", APP), later);
    assert_eq!(response.status, 403);
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .as_deref(),
        Some(APP)
    );
    assert_eq!(response.headers.get("vary").as_deref(), Some("Origin"));
}

#[test]
fn a_plain_options_request_goes_to_the_upstream() {
    let mut h = harness(CREDENTIALED);
    let request = TestRequest::method("OPTIONS", "/api/items").header("origin", APP);
    let response = exchange(
        &mut h,
        request,
        upstream_ok().with_header("allow", "GET, OPTIONS"),
    );
    assert_eq!(
        cors_fields(&response.headers),
        want(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id, x-total"),
            ("vary", "Origin"),
        ])
    );
    assert_eq!(
        response.headers.get("allow").as_deref(),
        Some("GET, OPTIONS")
    );
    // Access-Control-Request-Method on another method is no preflight either.
    let request = TestRequest::get("/")
        .header("origin", APP)
        .header("access-control-request-method", "PUT");
    exchange(&mut h, request, upstream_ok());
}

#[test]
fn the_requested_method_must_be_allowed_or_safelisted() {
    let mut h = harness(r#"{"origins": ["https://app.example.com"], "methods": ["patch"]}"#);
    for method in ["GET", "HEAD", "POST", "PATCH"] {
        let response = answer(&mut h, preflight(APP, method));
        assert_eq!(response.status, 204, "{method}");
        assert_eq!(
            response
                .headers
                .get("access-control-allow-methods")
                .as_deref(),
            Some("PATCH"),
            "the configured list, upper-cased"
        );
    }
    for (method, message) in [
        ("DELETE", "method DELETE is not allowed"),
        ("get", "method get is not allowed"),
        ("patch", "method patch is not allowed"),
        ("", "not a method"),
        ("GET POST", "not a method"),
    ] {
        let error = refused(&mut h, preflight(APP, method));
        assert!(error.contains(message), "{method}: {error}");
    }
    let mut h = harness(r#"{"origins": ["https://app.example.com"], "methods": []}"#);
    let response = answer(&mut h, preflight(APP, "POST"));
    assert_eq!(response.status, 204);
    assert!(!response.headers.contains("access-control-allow-methods"));
    refused(&mut h, preflight(APP, "PUT"));
}

#[test]
fn every_requested_header_must_be_allowed() {
    let mut h = harness(CREDENTIALED);
    for requested in [
        "content-type",
        "Content-Type,AUTHORIZATION",
        " authorization ,\tcontent-type ",
        "content-type,,",
        "",
    ] {
        let request = preflight(APP, "POST").header("access-control-request-headers", requested);
        let response = answer(&mut h, request);
        assert_eq!(response.status, 204, "{requested:?}");
        assert_eq!(
            response
                .headers
                .get("access-control-allow-headers")
                .as_deref(),
            Some("content-type, authorization"),
            "the configured list"
        );
    }
    let request = preflight(APP, "POST")
        .header("access-control-request-headers", "content-type")
        .header("access-control-request-headers", "x-custom");
    assert!(refused(&mut h, request).contains("header x-custom is not allowed"));
    let request =
        preflight(APP, "POST").header("access-control-request-headers", "Content-Type, X-Other");
    assert!(refused(&mut h, request).contains("header x-other is not allowed"));
    let request = preflight(APP, "POST").header("access-control-request-headers", "bad header");
    assert!(refused(&mut h, request).contains("invalid header name"));
}

#[test]
fn wildcards_without_credentials_allow_any_origin_method_and_header() {
    let mut h =
        harness(r#"{"origins": ["*"], "methods": ["*"], "headers": ["*"], "expose": ["*"]}"#);
    let request = preflight("https://anyone.test", "PURGE")
        .header("access-control-request-headers", "X-One, x-two, X-ONE");
    let response = answer(&mut h, request);
    assert_eq!(
        fields(&response.headers),
        want(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PURGE"),
            ("access-control-allow-headers", "x-one, x-two"),
            ("access-control-max-age", "600"),
            ("vary", PREFLIGHT_VARY),
        ]),
        "the requested method and headers echoed, no credentials"
    );
    let request = preflight("https://anyone.test", "GET")
        .header("access-control-request-headers", "authorization");
    assert!(
        refused(&mut h, request).contains("header authorization"),
        "`*` does not cover authorization"
    );
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", "http://localhost:3000"),
        upstream_ok(),
    );
    assert_eq!(
        cors_fields(&response.headers),
        want(&[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "*"),
            ("vary", "Origin"),
        ])
    );
    assert_eq!(
        h.vars_set(),
        [(ALLOWED_ORIGIN_VAR.to_string(), "*".to_string())]
    );

    let mut h = harness(r#"{"origins": ["*"], "headers": ["*", "Authorization"]}"#);
    let request = preflight("https://anyone.test", "GET")
        .header("access-control-request-headers", "authorization, x-a");
    let response = answer(&mut h, request);
    assert_eq!(
        response
            .headers
            .get("access-control-allow-headers")
            .as_deref(),
        Some("authorization, x-a")
    );
}

#[test]
fn the_null_origin_only_when_listed() {
    let mut h = harness(r#"{"origins": ["*"]}"#);
    refused(&mut h, preflight("null", "GET"));
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", "null"),
        upstream_ok(),
    );
    assert_eq!(cors_fields(&response.headers), want(&[("vary", "Origin")]));

    let mut h = harness(r#"{"origins": ["*", "null"]}"#);
    let response = answer(&mut h, preflight("null", "GET"));
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .as_deref(),
        Some("*")
    );

    let mut h = harness(r#"{"origins": ["null"], "credentials": true}"#);
    let response = answer(&mut h, preflight("null", "GET"));
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .as_deref(),
        Some("null")
    );
    let response = exchange(
        &mut h,
        TestRequest::get("/").header("origin", "null"),
        upstream_ok(),
    );
    assert_eq!(
        response
            .headers
            .get("access-control-allow-origin")
            .as_deref(),
        Some("null")
    );
    refused(&mut h, preflight(APP, "GET"));
}

#[test]
fn a_variable_the_plugin_did_not_allow_is_never_echoed() {
    let mut h = harness(CREDENTIALED);
    h.on_request(TestRequest::get("/"));
    h.ctx.vars = vec![(ALLOWED_ORIGIN_VAR.into(), "https://evil.org".into())];
    let response = h.on_response(upstream_ok());
    assert_eq!(cors_fields(&response.headers), want(&[("vary", "Origin")]));
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (config, want) in [
        (r#"{}"#, "missing field `origins`"),
        (r#"{"origins": []}"#, "origins: empty"),
        (
            r#"{"origins": ["*"], "credentials": true}"#,
            r#"origins: "*" cannot go with credentials = true"#,
        ),
        (
            r#"{"origins": ["*", "https://a.example.com"]}"#,
            r#"origins: "*" already allows "https://a.example.com""#,
        ),
        (
            r#"{"origins": ["https://a.example.com", "https://B.example.com/"]}"#,
            r#"origins[1]: "https://B.example.com/" is not an origin as browsers send it (lower case, no path, no default port): write "https://b.example.com""#,
        ),
        (
            r#"{"origins": ["example.com"]}"#,
            r#"origins[0]: "example.com" is not an origin"#,
        ),
        (
            r#"{"origins": ["https://*.com"]}"#,
            "origins[0]: \"https://*.com\" would allow every host",
        ),
        (
            r#"{"origins": ["https://a.com"], "methods": ["*"], "credentials": true}"#,
            r#"methods[0]: "*" cannot go with credentials = true"#,
        ),
        (
            r#"{"origins": ["https://a.com"], "headers": ["x-a", "*"], "credentials": true}"#,
            r#"headers[1]: "*" cannot go with credentials = true"#,
        ),
        (
            r#"{"origins": ["https://a.com"], "expose": ["*"], "credentials": true}"#,
            r#"expose[0]: "*" cannot go with credentials = true"#,
        ),
        (
            r#"{"origins": ["https://a.com"], "methods": ["GET POST"]}"#,
            r#"methods[0]: "GET POST" is not a valid name"#,
        ),
        (
            r#"{"origins": ["https://a.com"], "headers": ["x:y"]}"#,
            r#"headers[0]: "x:y" is not a valid name"#,
        ),
        (
            r#"{"origins": ["https://a.com"], "max_age": 86401}"#,
            "max_age: 86401 is over 86400 seconds",
        ),
        (
            r#"{"origins": ["https://a.com"], "max_age": -1}"#,
            "invalid config at `max_age`",
        ),
        (
            r#"{"origins": ["https://a.com"], "origin": ["https://b.com"]}"#,
            "unknown field `origin`",
        ),
        (
            r#"{"origins": "https://a.com"}"#,
            "invalid config at `origins`: invalid type: string",
        ),
        (
            r#"{"origins": ["https://a.com"], "credentials": "yes"}"#,
            "invalid config at `credentials`",
        ),
    ] {
        let error = Harness::<Cors>::new(config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {config}"));
        assert!(
            error.contains(want),
            "{config}\n  got:  {error}\n  want: {want}"
        );
    }
}

#[test]
fn an_options_request_the_plugin_answers_never_continues() {
    let mut h = harness(CREDENTIALED);
    h.ctx.vars.clear();
    let outcome = h.on_request(preflight(APP, "GET"));
    assert!(!outcome.continues(), "the upstream never sees a preflight");
    assert!(outcome.request().is_none());
}
