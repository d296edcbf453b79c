use std::collections::BTreeMap;

use wasmgate_plugin_sdk::Response;
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

fn harness(config: &str) -> Harness<HeadersPlugin> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// The request's headers as the plugin left them.
fn request_headers(h: &mut Harness<HeadersPlugin>, request: TestRequest) -> Headers<'static> {
    let outcome = h.on_request(request);
    assert_eq!(outcome.action, Action::Continue, "headers never answers");
    outcome.sent.headers
}

/// Each header's values, in order. The order of different headers is not kept (the
/// gateway keeps a header map, as HTTP gives it no meaning); the order of one
/// header's values is.
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

/// `fields` written out: `[("a", ["1", "2"])]`.
fn want(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(name, values)| {
            (
                name.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn add_appends_and_keeps_existing_values() {
    let mut h = harness(r#"{"request": {"add": {"X-Tag": "b", "x-new": ["1", "2"]}}}"#);
    let headers = request_headers(&mut h, TestRequest::get("/").header("x-tag", "a"));
    assert_eq!(
        fields(&headers),
        want(&[("x-tag", &["a", "b"]), ("x-new", &["1", "2"])])
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
    assert_eq!(
        fields(&headers),
        want(&[
            ("x-env", &["prod"]),
            ("x-absent", &["yes"]),
            ("other", &["o"])
        ])
    );
}

#[test]
fn set_with_a_list_sets_several_and_an_empty_list_removes() {
    let mut h = harness(r#"{"request": {"set": {"x-many": ["1", "2"], "x-gone": []}}}"#);
    let request = TestRequest::get("/")
        .header("x-many", "0")
        .header("x-gone", "g")
        .header("x-gone", "h");
    let headers = request_headers(&mut h, request);
    assert_eq!(fields(&headers), want(&[("x-many", &["1", "2"])]));
}

#[test]
fn remove_drops_every_value_whatever_the_case() {
    let mut h = harness(r#"{"request": {"remove": ["X-Internal", "x-missing"]}}"#);
    let request = TestRequest::get("/")
        .header("x-internal", "1")
        .header("keep", "k")
        .header("X-INTERNAL", "2");
    assert_eq!(
        fields(&request_headers(&mut h, request)),
        want(&[("keep", &["k"])])
    );
}

#[test]
fn rename_keeps_the_values_in_order() {
    let mut h = harness(r#"{"request": {"rename": {"X-Old": "X-New"}}}"#);
    let request = TestRequest::get("/")
        .header("x-old", "1")
        .header("mid", "m")
        .header("x-OLD", "2");
    assert_eq!(
        fields(&request_headers(&mut h, request)),
        want(&[("x-new", &["1", "2"]), ("mid", &["m"])])
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
        want(&[("x-c", &["set", "added"])])
    );
}

#[test]
fn responses_are_edited_too_and_requests_left_alone() {
    let mut h = harness(
        r#"{"response": {"set": {"X-Powered-By": "wasmgate"}, "remove": ["server"],
                         "rename": {"x-upstream-id": "x-trace"}, "add": {"vary": "accept"}}}"#,
    );
    let request = TestRequest::get("/").header("server", "s");
    assert_eq!(
        fields(&request_headers(&mut h, request)),
        want(&[("server", &["s"])])
    );
    let response = Response::new(200)
        .with_header("Server", "upstream/1.0")
        .with_header("x-powered-by", "php")
        .with_header("x-upstream-id", "7")
        .with_header("vary", "origin");
    let response = h.on_response(response);
    assert_eq!(
        fields(&response.headers),
        want(&[
            ("x-trace", &["7"]),
            ("vary", &["origin", "accept"]),
            ("x-powered-by", &["wasmgate"])
        ])
    );
}

#[test]
fn an_empty_config_changes_nothing() {
    for config in ["{}", "", r#"{"request": {}, "response": {}}"#] {
        let mut h = harness(config);
        let outcome = h.on_request(TestRequest::post("/x?q=1").header("a", "1").body("b"));
        assert_eq!(outcome.action, Action::Continue);
        let sent = outcome.request().unwrap();
        assert_eq!(fields(&sent.headers), want(&[("a", &["1"])]));
        assert_eq!(
            (
                sent.path.as_str(),
                sent.query.as_deref(),
                sent.body.as_deref()
            ),
            ("/x", Some("q=1"), Some(&b"b"[..]))
        );
        // Without response edits the plugin is request-only: the host does not call
        // `on_response`, and the response passes whole.
        let response = Response::text(201, "hi").with_header("b", "2");
        assert_eq!(h.on_response(response.clone()), response);
        assert_eq!(h.settings(), Settings::REQUEST_ONLY);
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
            r#"{"request": {"set": {"Connection": "close"}}}"#,
            r#"request.set: "connection" is a hop-by-hop header, which only the gateway sets"#,
        ),
        (
            r#"{"response": {"add": {"transfer-encoding": "chunked"}}}"#,
            r#"response.add: "transfer-encoding" is a hop-by-hop header"#,
        ),
        (
            r#"{"request": {"rename": {"x-up": "Upgrade"}}}"#,
            r#"request.rename: "upgrade" is a hop-by-hop header"#,
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
