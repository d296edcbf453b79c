use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

const USER_SCHEMA: &str = r#"{"schema": {
    "type": "object",
    "required": ["user"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["email", "name"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string", "minLength": 1},
                "age": {"type": "integer", "minimum": 0}
            }
        }
    }
}}"#;

fn harness(config: &str) -> Harness<RequestValidator> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

fn json_post(body: &str) -> TestRequest {
    TestRequest::post("/users")
        .header("content-type", "application/json")
        .body(body)
}

/// The envelope of a refusal, after checking its shape; `None` if the request passed.
fn refused(h: &mut Harness<RequestValidator>, request: TestRequest) -> Option<Value> {
    let outcome = h.on_request(request);
    let response = outcome.response()?;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.headers.get("content-type").as_deref(),
        Some("application/json")
    );
    let envelope: Value = serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["code"], "VALIDATION_ERROR");
    assert_eq!(envelope["request_id"], h.ctx.request_id.as_str());
    assert!(
        envelope["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid request: ")
    );
    Some(envelope)
}

/// The (field, message) pairs of a refusal.
fn fields(envelope: &Value) -> Vec<(String, String)> {
    envelope["data"]["fields"]
        .as_array()
        .expect("data.fields")
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn field_names(envelope: &Value) -> Vec<String> {
    fields(envelope)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

#[test]
fn a_valid_body_passes_unchanged() {
    let mut h = harness(USER_SCHEMA);
    assert_eq!(
        h.settings(),
        Settings {
            request_body: true,
            ..Settings::REQUEST_ONLY
        }
    );
    let body = r#"{"user": {"email": "a@example.com", "name": "Ann", "age": 3}, "extra": [1]}"#;
    let outcome = h.on_request(json_post(body).header("x-a", "b").query("q=1"));
    assert_eq!(outcome.action, Action::Continue);
    let sent = outcome.request().unwrap();
    assert_eq!(sent.body.as_deref(), Some(body.as_bytes()), "byte for byte");
    assert_eq!(sent.query.as_deref(), Some("q=1"));
    assert_eq!(sent.headers.get("x-a").as_deref(), Some("b"));
    assert!(h.logs().is_empty());
}

#[test]
fn schema_failures_name_each_field_by_its_json_pointer() {
    let mut h = harness(USER_SCHEMA);
    let envelope = refused(
        &mut h,
        json_post(r#"{"user": {"email": "not-an-address", "age": -1}}"#),
    )
    .expect("refused");
    let mut found = fields(&envelope);
    found.sort();
    assert_eq!(
        found.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["/user/age", "/user/email", "/user/name"],
        "{envelope}"
    );
    let message = |field: &str| &found.iter().find(|(f, _)| f == field).unwrap().1;
    assert!(message("/user/name").contains("required"), "{found:?}");
    assert!(message("/user/email").contains("email"), "{found:?}");
    assert!(message("/user/age").contains("minimum"), "{found:?}");
    assert!(
        !message("/user/email").contains("not-an-address"),
        "the client's values are not echoed: {found:?}"
    );
    assert!(
        envelope["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid request: 3 problems, the first: "),
        "{envelope}"
    );
    assert_eq!(
        h.logs(),
        [(
            log::Level::Debug,
            "refused POST /users: invalid request".to_string()
        )]
    );

    let envelope = refused(&mut h, json_post("[1, 2]")).unwrap();
    assert_eq!(
        field_names(&envelope),
        ["body"],
        "the whole body: {envelope}"
    );
    assert_eq!(
        envelope["error"],
        "invalid request: body value is not of type \"object\""
    );
}

#[test]
fn a_missing_property_with_a_slash_is_escaped_in_its_pointer() {
    let mut h = harness(r#"{"schema": {"required": ["a/b", "c~d"]}}"#);
    let envelope = refused(&mut h, json_post("{}")).unwrap();
    let mut names = field_names(&envelope);
    names.sort();
    assert_eq!(names, ["/a~1b", "/c~0d"]);
}

#[test]
fn invalid_json_and_a_missing_body_fail() {
    let mut h = harness(USER_SCHEMA);
    let envelope = refused(&mut h, json_post(r#"{"user": "#)).unwrap();
    let found = fields(&envelope);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "body");
    assert!(found[0].1.starts_with("is not valid JSON"), "{found:?}");

    for request in [
        TestRequest::post("/users").header("content-type", "application/json"),
        TestRequest::get("/users"),
    ] {
        let envelope = refused(&mut h, request).unwrap();
        assert_eq!(
            fields(&envelope),
            [("body".to_string(), "a JSON body is required".to_string())]
        );
    }

    let mut h =
        harness(&USER_SCHEMA.replace(r#"{"schema""#, r#"{"body_required": false, "schema""#));
    assert!(refused(&mut h, TestRequest::get("/users")).is_none());
    assert!(
        refused(&mut h, json_post("{}")).is_some(),
        "a body still must fit"
    );

    let mut h = harness(r#"{"body_required": true}"#);
    assert_eq!(
        fields(&refused(&mut h, TestRequest::post("/x")).unwrap()),
        [("body".to_string(), "a body is required".to_string())]
    );
    assert!(refused(&mut h, TestRequest::post("/x").body("anything")).is_none());
}

#[test]
fn content_types_are_checked_when_there_is_a_body() {
    let mut h = harness(r#"{"schema": {}}"#);
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let request = TestRequest::post("/x")
            .header("content-type", content_type)
            .body("{}");
        assert!(refused(&mut h, request).is_none(), "{content_type}");
    }
    for (request, want) in [
        (
            TestRequest::post("/x")
                .header("content-type", "text/plain")
                .body("{}"),
            r#""text/plain" is not allowed; expected application/json"#,
        ),
        (
            TestRequest::post("/x").body("{}"),
            "is required with a body; expected application/json",
        ),
        (
            TestRequest::post("/x")
                .header("content-type", "application/json")
                .header("content-type", "text/plain")
                .body("{}"),
            "is given more than once",
        ),
        (
            // Not read as JSON when it is not declared as JSON: no second problem.
            TestRequest::post("/x")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("a=1"),
            r#""application/x-www-form-urlencoded" is not allowed; expected application/json"#,
        ),
    ] {
        let envelope = refused(&mut h, request).expect(want);
        assert_eq!(
            fields(&envelope),
            [("header:content-type".to_string(), want.to_string())]
        );
    }

    let mut h = harness(r#"{"content_types": ["application/json", "text/*"]}"#);
    assert!(h.settings().request_body);
    for content_type in ["text/csv", "TEXT/plain;charset=x", "application/json"] {
        let request = TestRequest::put("/x")
            .header("content-type", content_type)
            .body("a,b");
        assert!(refused(&mut h, request).is_none(), "{content_type}");
    }
    for content_type in ["application/xml", "text", "textual/plain", "text/"] {
        let request = TestRequest::put("/x")
            .header("content-type", content_type)
            .body("x");
        assert!(refused(&mut h, request).is_some(), "{content_type}");
    }
    assert!(
        refused(&mut h, TestRequest::get("/x")).is_none(),
        "no body, nothing to check, none required"
    );
}

#[test]
fn required_headers_with_patterns() {
    let mut h = harness(
        r#"{"headers": {"X-Api-Version": "v[12]", "x-tenant": {"required": true},
                        "x-trace": {"pattern": "[0-9a-f]{8}", "required": false}}}"#,
    );
    assert_eq!(h.settings(), Settings::REQUEST_ONLY, "no body needed");
    let ok = || {
        TestRequest::get("/")
            .header("x-api-version", "v2")
            .header("x-tenant", "")
    };
    assert!(refused(&mut h, ok()).is_none());
    assert!(refused(&mut h, ok().header("x-trace", "0badf00d")).is_none());
    for (request, want) in [
        (
            TestRequest::get("/").header("x-tenant", "t"),
            ("header:x-api-version", "is required"),
        ),
        (
            TestRequest::get("/")
                .header("x-api-version", "v3")
                .header("x-tenant", "t"),
            ("header:x-api-version", "does not match the pattern v[12]"),
        ),
        (
            // The whole value must match: the pattern is anchored.
            TestRequest::get("/")
                .header("X-API-VERSION", "v1x")
                .header("x-tenant", "t"),
            ("header:x-api-version", "does not match the pattern v[12]"),
        ),
        (
            // Every value must match.
            ok().header("x-api-version", "v9"),
            ("header:x-api-version", "does not match the pattern v[12]"),
        ),
        (
            ok().header("x-trace", "nope"),
            ("header:x-trace", "does not match the pattern [0-9a-f]{8}"),
        ),
        (
            TestRequest::get("/").header("x-api-version", "v1"),
            ("header:x-tenant", "is required"),
        ),
    ] {
        let envelope = refused(&mut h, request).expect(want.0);
        assert_eq!(
            fields(&envelope),
            [(want.0.to_string(), want.1.to_string())]
        );
        assert_eq!(
            envelope["error"],
            format!("invalid request: {} {}", want.0, want.1)
        );
    }
}

#[test]
fn required_query_parameters_with_patterns() {
    let mut h =
        harness(r#"{"query": {"page": "[0-9]+", "q": {"pattern": "[a-z ]*", "required": false}}}"#);
    assert!(refused(&mut h, TestRequest::get("/items?page=2")).is_none());
    assert!(refused(&mut h, TestRequest::get("/items?page=%32&q=red+shoes")).is_none());
    for (path, want) in [
        ("/items", "is required"),
        ("/items?pages=1", "is required"),
        ("/items?page=two", "does not match the pattern [0-9]+"),
        ("/items?page=1&page=x", "does not match the pattern [0-9]+"),
        ("/items?page=", "does not match the pattern [0-9]+"),
    ] {
        let envelope = refused(&mut h, TestRequest::get(path)).expect(path);
        assert_eq!(
            fields(&envelope),
            [("query:page".to_string(), want.to_string())],
            "{path}"
        );
    }
    let envelope = refused(&mut h, TestRequest::get("/items?page=1&q=RED")).unwrap();
    assert_eq!(field_names(&envelope), ["query:q"]);
}

#[test]
fn every_problem_is_listed_up_to_the_bound() {
    let properties: serde_json::Map<String, Value> = (0..30)
        .map(|i| (format!("p{i:02}"), json!({"type": "integer"})))
        .collect();
    let config = json!({
        "schema": {"type": "object", "properties": properties},
        "headers": {"x-a": "a"},
        "query": {"n": "[0-9]"},
    });
    let mut h = harness(&config.to_string());
    let body: serde_json::Map<String, Value> =
        (0..30).map(|i| (format!("p{i:02}"), json!("x"))).collect();
    let envelope = refused(&mut h, json_post(&Value::Object(body).to_string())).unwrap();
    let names = field_names(&envelope);
    assert_eq!(names.len(), MAX_FIELDS);
    assert_eq!(
        names[..2],
        ["header:x-a", "query:n"],
        "headers, query, then body"
    );
    assert!(names[2..].iter().all(|n| n.starts_with("/p")), "{names:?}");
    assert_eq!(
        envelope["error"],
        "invalid request: 32 problems, the first: header:x-a is required"
    );
}

#[test]
fn refs_inside_the_schema_and_its_draft() {
    let mut h = harness(
        r##"{"schema": {"$schema": "http://json-schema.org/draft-07/schema#",
                        "definitions": {"id": {"type": "string", "pattern": "^[a-z]+$"}},
                        "type": "object", "properties": {"id": {"$ref": "#/definitions/id"}}}}"##,
    );
    assert!(refused(&mut h, json_post(r#"{"id": "abc"}"#)).is_none());
    let envelope = refused(&mut h, json_post(r#"{"id": "ABC"}"#)).unwrap();
    assert_eq!(field_names(&envelope), ["/id"]);
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (config, want) in [
        (r#"{}"#, "nothing to check"),
        (r#"{"schema": {"type": "nope"}}"#, "schema"),
        (r#"{"schema": {"minLength": -1}}"#, "schema"),
        (
            r#"{"schema": {"$ref": "https://example.com/user.json"}}"#,
            "schema",
        ),
        (
            r#"{"schema": {"properties": {"a": {"pattern": "("}}}}"#,
            "schema",
        ),
        (
            r#"{"headers": {"a b": "x"}}"#,
            r#"headers: "a b" is not a valid header name"#,
        ),
        (
            r#"{"headers": {"X-A": "x", "x-a": "y"}}"#,
            "headers: x-a is given twice",
        ),
        (
            r#"{"headers": {"x-a": "("}}"#,
            r#"headers.x-a: invalid pattern "(""#,
        ),
        (
            r#"{"query": {"page": "[0-9"}}"#,
            r#"query.page: invalid pattern "[0-9""#,
        ),
        (
            r#"{"query": {"": "x"}}"#,
            "query: a parameter name is empty",
        ),
        (
            r#"{"query": {"a": {"patern": "x"}}}"#,
            "unknown field `patern`",
        ),
        (r#"{"query": {"a": 1}}"#, "a pattern string or a table"),
        (r#"{"content_types": []}"#, "content_types: empty"),
        (
            r#"{"content_types": ["json"]}"#,
            r#"content_types: "json" is not a media type"#,
        ),
        (r#"{"content_types": ["*/*"]}"#, "is not a media type"),
        (
            r#"{"schema": {}, "body": true}"#,
            "invalid config at `body`: unknown field `body`",
        ),
    ] {
        match Harness::<RequestValidator>::new(config) {
            Ok(_) => panic!("{config} was accepted"),
            Err(error) => assert!(error.contains(want), "{config}: {error:?} lacks {want:?}"),
        }
    }
}
