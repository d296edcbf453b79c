use wasmgate_plugin_sdk::log::Level;
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

fn harness(config: &str) -> Harness<Deny> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// The envelope if the request was denied, after checking the response's shape.
fn denied(h: &mut Harness<Deny>, request: TestRequest) -> Option<serde_json::Value> {
    match h.on_request(request).action {
        Action::Respond(response) => {
            assert_eq!(
                response.headers.get("content-type").as_deref(),
                Some("application/json")
            );
            let envelope: serde_json::Value =
                serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
            assert_eq!(envelope["success"], false);
            assert_eq!(envelope["request_id"], h.ctx.request_id.as_str());
            assert!(envelope["timestamp"].as_str().unwrap().ends_with('Z'));
            assert_eq!(envelope["status"], serde_json::Value::Null);
            Some(serde_json::json!({"status": response.status, "envelope": envelope}))
        }
        Action::Continue => None,
        Action::ContinueTo(target) => panic!("deny never chooses a target: {target:?}"),
    }
}

#[test]
fn rules_are_ored_and_conditions_anded() {
    let mut h = harness(
        r#"{"rules": [{"methods": ["delete"], "path_prefix": "/admin/"},
                      {"header": {"name": "X-Debug", "value": "1"}}],
            "status": 451, "code": "BLOCKED", "message": "no"}"#,
    );
    let answer = denied(&mut h, TestRequest::delete("/admin/users")).expect("denied");
    assert_eq!(answer["status"], 451);
    assert_eq!(answer["envelope"]["code"], "BLOCKED");
    assert_eq!(answer["envelope"]["error"], "no");
    assert!(denied(&mut h, TestRequest::delete("/admin")).is_some());
    assert!(
        denied(&mut h, TestRequest::get("/admin/users")).is_none(),
        "method"
    );
    assert!(
        denied(&mut h, TestRequest::delete("/administrator")).is_none(),
        "segment-wise prefix"
    );
    assert!(denied(&mut h, TestRequest::get("/x").header("x-debug", "1")).is_some());
    assert!(denied(&mut h, TestRequest::get("/x").header("x-debug", "0")).is_none());
    assert!(
        denied(
            &mut h,
            TestRequest::get("/x")
                .header("x-debug", "0")
                .header("X-DEBUG", "1")
        )
        .is_some(),
        "any of the header's values"
    );
}

#[test]
fn exact_paths_and_header_presence() {
    let mut h = harness(r#"{"rules": [{"path": "/health", "header": {"name": "x-probe"}}]}"#);
    assert!(denied(&mut h, TestRequest::get("/health").header("x-probe", "")).is_some());
    assert!(denied(&mut h, TestRequest::get("/health")).is_none());
    assert!(denied(&mut h, TestRequest::get("/health/x").header("x-probe", "1")).is_none());
    assert!(
        denied(
            &mut h,
            TestRequest::get("/health?x=1").header("x-probe", "1")
        )
        .is_some()
    );
}

#[test]
fn passes_the_rest_through_unchanged() {
    let mut h = harness(r#"{"rules": [{"path_prefix": "/admin"}]}"#);
    let outcome = h.on_request(TestRequest::post("/api?q=1").header("a", "b").body("x"));
    assert_eq!(outcome.action, Action::Continue);
    let sent = outcome.request().unwrap();
    assert_eq!(
        (&sent.method, sent.path.as_str(), sent.query.as_deref()),
        (&Method::Post, "/api", Some("q=1"))
    );
    assert_eq!(sent.headers.entries(), [("a".to_string(), b"b".to_vec())]);
    assert_eq!(sent.body.as_deref(), Some(&b"x"[..]));
    assert!(h.logs().is_empty());
    assert_eq!(h.settings(), Settings::REQUEST_ONLY);
}

#[test]
fn defaults_and_the_code_for_the_status() {
    let mut h = harness(r#"{"rules": [{"path": "/x"}]}"#);
    let answer = denied(&mut h, TestRequest::get("/x")).unwrap();
    assert_eq!(answer["status"], 403);
    assert_eq!(answer["envelope"]["code"], "FORBIDDEN");
    assert_eq!(answer["envelope"]["error"], "request denied");
    assert_eq!(
        h.logs(),
        [(Level::Debug, "denied GET /x by rule 0".to_string())]
    );
    for (status, code) in [
        (401, "UNAUTHORIZED"),
        (429, "RATE_LIMITED"),
        (418, "FORBIDDEN"),
    ] {
        let mut h = harness(&format!(r#"{{"rules": [{{}}], "status": {status}}}"#));
        let answer = denied(&mut h, TestRequest::get("/any")).unwrap();
        assert_eq!(answer["status"], status);
        assert_eq!(answer["envelope"]["code"], code);
    }
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    for (config, want) in [
        (
            r#"{"rules": [{}], "status": 200}"#,
            "status: 200 must be between 400 and 599",
        ),
        (r#"{"rules": []}"#, "rules: empty"),
        (
            r#"{"rules": [{}, {"path": "x"}]}"#,
            r#"rules[1].path: "x" must start with '/'"#,
        ),
        (
            r#"{"rules": [{"path_prefix": "admin"}]}"#,
            "rules[0].path_prefix",
        ),
        (
            r#"{"rules": [{"header": {"name": "a b"}}]}"#,
            r#"rules[0].header.name: "a b" is not a valid header name"#,
        ),
        (
            r#"{"rules": [{"methods": ["GET POST"]}]}"#,
            "is not a method",
        ),
        (
            r#"{"rules": [{}], "code": "forbidden"}"#,
            "code: \"forbidden\"",
        ),
        (
            r#"{"rules": [{"paths": ["/x"]}]}"#,
            "invalid config at `rules[0].paths`: unknown field `paths`",
        ),
        (
            r#"{"rules": [{"header": {"name": "x", "value": 1}}]}"#,
            "invalid config at `rules[0].header.value`: invalid type: integer `1`",
        ),
        (r#"{"rules": [{}], "status": "403"}"#, "at `status`"),
        (r#"{}"#, "missing field `rules`"),
    ] {
        let error = Harness::<Deny>::new(config)
            .err()
            .unwrap_or_else(|| panic!("accepted: {config}"));
        assert!(
            error.contains(want),
            "{config}\n  got:  {error}\n  want: {want}"
        );
    }
}

#[test]
fn methods_match_whatever_their_case_and_other_methods_too() {
    let mut h = harness(r#"{"rules": [{"methods": ["propfind", "Patch"]}]}"#);
    assert!(denied(&mut h, TestRequest::method("PROPFIND", "/dav")).is_some());
    assert!(denied(&mut h, TestRequest::method("patch", "/x")).is_some());
    assert!(denied(&mut h, TestRequest::method("propfind", "/dav")).is_some());
    assert!(denied(&mut h, TestRequest::method("MKCOL", "/dav")).is_none());
    assert!(denied(&mut h, TestRequest::get("/x")).is_none());
}

#[test]
fn path_rules_hold_for_every_letter_case() {
    // A case-insensitive upstream serves `/ADMIN/x` as `/admin/x`: the rule covers it.
    let mut h = harness(r#"{"rules": [{"path_prefix": "/admin"}, {"path": "/internal/metrics"}]}"#);
    for path in [
        "/admin",
        "/ADMIN/x",
        "/Admin/users",
        "/internal/metrics",
        "/Internal/METRICS",
    ] {
        assert!(denied(&mut h, TestRequest::get(path)).is_some(), "{path}");
    }
    for path in ["/administrator", "/internal/metrics/more", "/api/admin"] {
        assert!(denied(&mut h, TestRequest::get(path)).is_none(), "{path}");
    }
}
