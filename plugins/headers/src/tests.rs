use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

fn harness(config: &str) -> Harness<HeadersPlugin> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

fn request_headers(h: &mut Harness<HeadersPlugin>, request: TestRequest) -> Headers {
    match h.on_request(request.build()) {
        Action::Continue(request) => request.headers,
        Action::Respond(response) => panic!("headers never answers: {response:?}"),
    }
}

fn fields(headers: &Headers) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n, std::str::from_utf8(v).unwrap()))
        .collect()
}

#[test]
fn add_appends_and_keeps_existing_values() {
    let mut h = harness(r#"{"request": {"add": {"X-Tag": "b", "x-new": ["1", "2"]}}}"#);
    let headers = request_headers(&mut h, TestRequest::get("/").header("x-tag", "a"));
    assert_eq!(
        fields(&headers),
        [
            ("x-tag", "a"),
            ("x-tag", "b"),
            ("x-new", "1"),
            ("x-new", "2")
        ]
    );
}

#[test]
fn set_replaces_every_value() {
    let mut h = harness(r#"{"request": {"set": {"x-env": "prod", "x-absent": "yes"}}}"#);
    let request = TestRequest::get("/")
        .header("X-Env", "dev")
        .header("other", "o")
        .header("x-env", "test");
    let headers = request_headers(&mut h, request);
    assert_eq!(headers.get_all("x-env").collect::<Vec<_>>(), ["prod"]);
    assert_eq!(headers.get("x-absent"), Some("yes"));
    assert_eq!(headers.get("other"), Some("o"));
}

#[test]
fn remove_drops_every_value_whatever_the_case() {
    let mut h = harness(r#"{"request": {"remove": ["X-Internal", "x-missing"]}}"#);
    let request = TestRequest::get("/")
        .header("x-internal", "1")
        .header("keep", "k")
        .header("X-INTERNAL", "2");
    assert_eq!(fields(&request_headers(&mut h, request)), [("keep", "k")]);
}

#[test]
fn rename_keeps_values_and_positions() {
    let mut h = harness(r#"{"request": {"rename": {"X-Old": "X-New"}}}"#);
    let request = TestRequest::get("/")
        .header("x-old", "1")
        .header("mid", "m")
        .header("x-OLD", "2");
    assert_eq!(
        fields(&request_headers(&mut h, request)),
        [("x-new", "1"), ("mid", "m"), ("x-new", "2")]
    );
}

#[test]
fn operations_apply_in_order_remove_rename_set_add() {
    // remove runs before rename: x-a is gone before it could be renamed.
    // rename runs before set: the renamed x-c is then replaced by set.
    // set runs before add: add appends to the value set just put there.
    let mut h = harness(
        r#"{"request": {"add": {"x-c": "added"}, "set": {"x-c": "set"},
                        "rename": {"x-a": "x-b", "x-d": "x-c"}, "remove": ["x-a"]}}"#,
    );
    let request = TestRequest::get("/")
        .header("x-a", "a")
        .header("x-d", "d")
        .header("x-c", "c");
    assert_eq!(
        fields(&request_headers(&mut h, request)),
        [("x-c", "set"), ("x-c", "added")]
    );
}

#[test]
fn responses_are_edited_too_and_requests_left_alone() {
    let mut h = harness(
        r#"{"response": {"set": {"X-Powered-By": "wasmgate"}, "remove": ["server"],
                         "rename": {"x-upstream-id": "x-trace"}, "add": {"vary": "accept"}}}"#,
    );
    let request = TestRequest::get("/").header("server", "s");
    assert_eq!(fields(&request_headers(&mut h, request)), [("server", "s")]);
    let response = Response::new(200)
        .with_header("Server", "upstream/1.0")
        .with_header("x-powered-by", "php")
        .with_header("x-upstream-id", "7")
        .with_header("vary", "origin");
    let response = h.on_response(response);
    assert_eq!(
        fields(&response.headers),
        [
            ("x-trace", "7"),
            ("vary", "origin"),
            ("x-powered-by", "wasmgate"),
            ("vary", "accept")
        ]
    );
}

#[test]
fn an_empty_config_changes_nothing() {
    for config in ["{}", "", r#"{"request": {}, "response": {}}"#] {
        let mut h = harness(config);
        let request = TestRequest::post("/x").header("a", "1").build();
        assert_eq!(h.on_request(request.clone()), Action::Continue(request));
        // Without response edits the plugin is request-only: the host does not call
        // `on_response`, and the response passes whole.
        let response = Response::text(201, "hi").with_header("b", "2");
        assert_eq!(h.on_response(response.clone()), response);
        assert_eq!(
            h.settings(),
            wasmgate_plugin_sdk::Settings {
                request_only: true,
                ..Default::default()
            }
        );
    }
}

#[test]
fn response_edits_keep_the_response_phase() {
    let h = harness(r#"{"response": {"remove": ["server"]}}"#);
    assert!(!h.settings().request_only);
    let h = harness(r#"{"request": {"remove": ["cookie"]}}"#);
    assert!(h.settings().request_only);
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (config, want) in [
        (
            r#"{"request": {"set": {"bad name": "x"}}}"#,
            r#"request.set: "bad name" is not a valid header name"#,
        ),
        (
            r#"{"response": {"add": {"x": ["ok", "line\nbreak"]}}}"#,
            r#"response.add.x: "line\nbreak" is not a valid header value"#,
        ),
        (
            r#"{"request": {"rename": {"a": "b c"}}}"#,
            r#"request.rename: "b c" is not a valid header name"#,
        ),
        (
            r#"{"request": {"remove": [""]}}"#,
            r#"request.remove: "" is not a valid header name"#,
        ),
        (
            r#"{"request": {"set": {"X-A": "1", "x-a": "2"}}}"#,
            r#"request.set: "x-a" is given twice"#,
        ),
        (
            r#"{"request": {"rename": {"a": "b", "b": "c"}}}"#,
            "rename chains are refused",
        ),
        (
            r#"{"request": {"set": {"x": 1}}}"#,
            "invalid config at `request.set.x`: invalid type: integer `1`, \
             expected a header value (a string) or a list of them",
        ),
        (
            r#"{"response": {"remove": "x"}}"#,
            "invalid config at `response.remove`: invalid type: string \"x\", expected a sequence",
        ),
        (
            r#"{"requests": {}}"#,
            "invalid config at `requests`: unknown field `requests`",
        ),
        (
            r#"{"request": {"delete": ["x"]}}"#,
            "invalid config at `request.delete`: unknown field `delete`",
        ),
    ] {
        let error = Harness::<HeadersPlugin>::new(config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {config}"));
        assert!(
            error.contains(want),
            "{config}\n  got:  {error}\n  want: {want}"
        );
    }
}
