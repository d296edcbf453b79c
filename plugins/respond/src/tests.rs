use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

fn harness(config: &str) -> Harness<Respond> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// The answer to `request`, which the plugin must make.
fn answer(h: &mut Harness<Respond>, request: TestRequest) -> Response {
    match h.on_request(request).action {
        Action::Respond(response) => response,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_slice(response.body.as_deref().expect("a body"))
        .unwrap_or_else(|e| panic!("{e}: {}", response.body_text()))
}

#[test]
fn an_info_page_as_json_with_the_request_id() {
    let mut h = harness(
        r#"{"json": {"name": "shop-api", "version": "1.4.0", "status": "running",
                     "request_id": "{request_id}", "n": [1, 2.5, null, true]}}"#,
    );
    h.ctx.request_id = "abc-123".into();
    let response = answer(&mut h, TestRequest::get("/"));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers.entries(),
        [("content-type".to_string(), b"application/json".to_vec())]
    );
    assert_eq!(
        json(&response),
        serde_json::json!({"name": "shop-api", "version": "1.4.0", "status": "running",
                           "request_id": "abc-123", "n": [1, 2.5, null, true]})
    );
    assert_eq!(h.settings(), Settings::REQUEST_ONLY);
}

#[test]
fn a_text_body_with_placeholders_and_other_braces_kept() {
    let mut h =
        harness(r#"{"status": 404, "text": "{method} {path}: no such page ({request_id}) {id}"}"#);
    let response = answer(&mut h, TestRequest::delete("/x/y?q=1"));
    assert_eq!(response.status, 404);
    assert_eq!(
        response.headers.get("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        response.body_text(),
        "DELETE /x/y: no such page (test-request-1) {id}"
    );
}

#[test]
fn values_in_a_json_body_cannot_add_json() {
    let mut h = harness(r#"{"json": {"path": "{path}", "{method}": "{request_id}"}}"#);
    h.ctx.request_id = "r1".into();
    // A path a client chose, with what would end a JSON string if it were not escaped.
    let response = answer(&mut h, TestRequest::get("/a\",\"admin\":true,\"x\":\"\\"));
    let value = json(&response);
    assert_eq!(value["path"], "/a\",\"admin\":true,\"x\":\"\\");
    assert_eq!(value["GET"], "r1");
    assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
}

#[test]
fn maintenance_mode_with_retry_after_on_every_request() {
    let mut h = harness(
        r#"{"status": 503, "headers": {"Retry-After": "600", "x-request": "{request_id}"},
            "json": {"success": false, "error": "down for maintenance", "request_id": "{request_id}"}}"#,
    );
    for request in [
        TestRequest::get("/"),
        TestRequest::post("/orders").body("{}"),
    ] {
        let response = answer(&mut h, request);
        assert_eq!(response.status, 503);
        assert_eq!(response.headers.get("retry-after").as_deref(), Some("600"));
        assert_eq!(
            response.headers.get("x-request").as_deref(),
            Some("test-request-1")
        );
        assert_eq!(json(&response)["request_id"], "test-request-1");
    }
}

#[test]
fn redirects_with_the_shorthand_or_a_location_header() {
    let mut h = harness(r#"{"redirect": "https://example.com/docs"}"#);
    let response = answer(&mut h, TestRequest::get("/docs"));
    assert_eq!(response.status, 302, "the default redirect status");
    assert_eq!(
        response.headers.entries(),
        [("location".to_string(), b"https://example.com/docs".to_vec())]
    );
    assert_eq!(response.body, None);

    let mut h = harness(r#"{"redirect": "https://new.example.com{path}", "status": 301}"#);
    let response = answer(&mut h, TestRequest::get("/a/b?x=1"));
    assert_eq!(response.status, 301);
    assert_eq!(
        response.headers.get("location").as_deref(),
        Some("https://new.example.com/a/b")
    );

    let mut h =
        harness(r#"{"status": 308, "headers": {"Location": "/v2"}, "text": "moved to /v2"}"#);
    let response = answer(&mut h, TestRequest::post("/v1"));
    assert_eq!(response.status, 308);
    assert_eq!(response.headers.get("location").as_deref(), Some("/v2"));
    assert_eq!(response.body_text(), "moved to /v2");
}

#[test]
fn conditions_answer_only_their_requests_and_pass_the_rest_on() {
    let mut h = harness(
        r#"{"methods": ["get", "HEAD"], "paths": ["/", "/info"], "json": {"status": "running"}}"#,
    );
    assert_eq!(answer(&mut h, TestRequest::get("/")).status, 200);
    assert_eq!(
        answer(&mut h, TestRequest::method("HEAD", "/info")).status,
        200
    );
    assert_eq!(
        answer(&mut h, TestRequest::get("/INFO/")).status,
        200,
        "letters in any case, one trailing slash"
    );
    assert_eq!(answer(&mut h, TestRequest::get("/?x=1")).status, 200);
    for request in [
        TestRequest::post("/"),
        TestRequest::get("/users"),
        TestRequest::get("/info/x"),
        TestRequest::get("/informations"),
    ] {
        let outcome = h.on_request(request.header("x-a", "b").body("keep"));
        assert_eq!(outcome.action, Action::Continue);
        let sent = outcome.request().unwrap();
        assert_eq!(sent.headers.entries(), [("x-a".to_string(), b"b".to_vec())]);
        assert_eq!(sent.body.as_deref(), Some(&b"keep"[..]), "untouched");
    }
}

#[test]
fn no_body_and_a_content_type_of_ones_own() {
    let mut h = harness(r#"{"status": 204, "headers": {"cache-control": "no-store"}}"#);
    let response = answer(&mut h, TestRequest::get("/ping"));
    assert_eq!(response.status, 204);
    assert_eq!(response.body, None);
    assert_eq!(
        response.headers.entries(),
        [("cache-control".to_string(), b"no-store".to_vec())]
    );

    let mut h = harness(
        r#"{"headers": {"Content-Type": "text/html; charset=utf-8"}, "text": "<h1>shop-api</h1>"}"#,
    );
    let response = answer(&mut h, TestRequest::get("/"));
    assert_eq!(
        response.headers.entries(),
        [(
            "content-type".to_string(),
            b"text/html; charset=utf-8".to_vec()
        )],
        "the configured content-type replaces the body's own"
    );
    assert_eq!(response.body_text(), "<h1>shop-api</h1>");
}

#[test]
fn a_json_body_may_be_any_json_value() {
    let mut h = harness(r#"{"json": ["a", "{path}"]}"#);
    assert_eq!(
        json(&answer(&mut h, TestRequest::get("/p"))),
        serde_json::json!(["a", "/p"])
    );
    let mut h = harness(r#"{"json": "ok"}"#);
    assert_eq!(answer(&mut h, TestRequest::get("/")).body_text(), r#""ok""#);
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (config, want) in [
        (
            r#"{"status": 199}"#,
            "status: 199 must be between 200 and 599",
        ),
        (
            r#"{"status": 600}"#,
            "status: 600 must be between 200 and 599",
        ),
        (
            r#"{"status": 301}"#,
            "status: 301 is a redirect without a location",
        ),
        (
            r#"{"redirect": "/x", "status": 200}"#,
            "status: 200 does not redirect",
        ),
        (
            r#"{"redirect": "/x", "headers": {"Location": "/y"}}"#,
            "redirect: the location is given twice",
        ),
        (
            r#"{"redirect": ""}"#,
            "redirect: \"\" is not a valid location",
        ),
        (r#"{"redirect": "/x\ny"}"#, "is not a valid location"),
        (
            r#"{"json": {}, "text": ""}"#,
            "json and text: give one body, not both",
        ),
        (
            r#"{"headers": {"a b": "1"}}"#,
            r#"headers: "a b" is not a valid header name"#,
        ),
        (
            r#"{"headers": {"x-a": "1\r\nx-b: 2"}}"#,
            "headers.x-a: the value holds a control character",
        ),
        (
            r#"{"headers": {"X-A": "1", "x-a": "2"}}"#,
            "headers: x-a is given twice",
        ),
        (
            r#"{"headers": {"Transfer-Encoding": "chunked"}}"#,
            "headers: transfer-encoding is the gateway's to set",
        ),
        (
            r#"{"headers": {"content-length": "3"}}"#,
            "headers: content-length is the gateway's to set",
        ),
        (
            r#"{"status": 204, "text": "x"}"#,
            "status: a 204 response has no body",
        ),
        (
            r#"{"methods": ["GET POST"]}"#,
            r#"methods: "GET POST" is not a method"#,
        ),
        (
            r#"{"paths": ["/", "info"]}"#,
            r#"paths: "info" must start with '/'"#,
        ),
        (
            r#"{"body": "x"}"#,
            "invalid config at `body`: unknown field `body`",
        ),
        (
            r#"{"headers": {"x-a": 1}}"#,
            "invalid config at `headers.x-a`",
        ),
    ] {
        match Harness::<Respond>::new(config) {
            Ok(_) => panic!("{config} was accepted"),
            Err(error) => assert!(error.contains(want), "{config}: {error:?} lacks {want:?}"),
        }
    }
}

#[test]
fn an_empty_config_answers_200_with_no_body() {
    let mut h = harness("{}");
    let response = answer(&mut h, TestRequest::post("/anything"));
    assert_eq!((response.status, response.body), (200, None));
    assert!(response.headers.is_empty());
    assert!(h.logs().is_empty());
}
