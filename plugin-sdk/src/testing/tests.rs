//! The harness's own tests: it configures and calls a plugin as the gateway does,
//! and refuses what the gateway refuses.

use super::*;
use crate::exchange::{EditError, Ex};
use crate::{Context, Reply, Request, kv};

struct Echo;

impl Plugin for Echo {
    type Config = serde_json::Value;
    fn new(config: serde_json::Value) -> Result<Self, String> {
        match config.get("fail") {
            Some(_) => Err("told to fail".into()),
            None => Ok(Echo),
        }
    }
}

#[test]
fn config_errors_come_back() {
    assert_eq!(
        Harness::<Echo>::new(r#"{"fail": 1}"#).err().unwrap(),
        "told to fail"
    );
    assert!(
        Harness::<Echo>::new("{not json")
            .err()
            .unwrap()
            .starts_with("invalid config")
    );
    assert!(Harness::<Echo>::new("").is_ok(), "empty config means {{}}");
}

#[test]
fn kv_expires_with_the_clock() {
    let harness = Harness::<Echo>::new("{}").unwrap();
    kv::set("k", b"v", Some(std::time::Duration::from_millis(100))).unwrap();
    assert_eq!(kv::get("k").unwrap().as_deref(), Some(&b"v"[..]));
    harness.advance_ms(100);
    assert_eq!(kv::get("k").unwrap(), None);
    assert_eq!(kv::incr("n", 5, None).unwrap(), 5);
    assert_eq!(kv::incr("n", -7, None).unwrap(), -2);
    kv::set("t", b"text", None).unwrap();
    assert_eq!(kv::incr("t", 1, None), Err(kv::Error::NotAnInteger));
    kv::set("max", i64::MAX.to_string().as_bytes(), None).unwrap();
    assert_eq!(kv::incr("max", 1, None), Err(kv::Error::Overflow));
    assert!(kv::delete("n").unwrap());
    assert!(!kv::delete("n").unwrap());
}

#[test]
fn durable_writes_are_counted() {
    let harness = Harness::<Echo>::new("{}").unwrap();
    kv::set("a", b"1", None).unwrap();
    kv::set_durable("b", b"2", None).unwrap();
    assert!(kv::insert_durable("c", b"3", None).unwrap());
    assert!(!kv::insert("c", b"4", None).unwrap(), "c is taken");
    assert!(kv::delete_durable("a").unwrap());
    assert_eq!(harness.durable_writes(), 3);
    assert_eq!(harness.kv_get("c").as_deref(), Some(&b"3"[..]));
}

/// Reports in `x-body-seen` the body it was given; with `{"bodies": true}` asks for
/// request bodies and replaces the body with `replaced`.
struct Peek {
    bodies: bool,
}

impl Plugin for Peek {
    type Config = serde_json::Value;
    fn new(config: serde_json::Value) -> Result<Self, String> {
        Ok(Peek {
            bodies: config.get("bodies").is_some(),
        })
    }
    fn settings(&self) -> Settings {
        Settings {
            request_body: self.bodies,
            ..Settings::default()
        }
    }
    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let seen = match request.body() {
            Some(body) => String::from_utf8_lossy(&body).into_owned(),
            None => "none".into(),
        };
        request.headers.set("x-body-seen", seen);
        if self.bodies {
            request.set_body("replaced");
        }
        Action::Continue
    }
}

#[test]
fn bodies_are_withheld_unless_asked_for() {
    let mut harness = Harness::<Peek>::new("{}").unwrap();
    let outcome = harness.on_request(TestRequest::post("/x?a=1").body("secret"));
    let request = outcome.request().unwrap();
    assert_eq!(request.headers.get("x-body-seen").as_deref(), Some("none"));
    assert_eq!(
        request.body.as_deref(),
        Some(&b"secret"[..]),
        "the body goes upstream untouched"
    );
    assert_eq!(request.query.as_deref(), Some("a=1"));

    let mut harness = Harness::<Peek>::new(r#"{"bodies": true}"#).unwrap();
    let outcome = harness.on_request(TestRequest::post("/x").body("secret"));
    let request = outcome.request().unwrap();
    assert_eq!(
        request.headers.get("x-body-seen").as_deref(),
        Some("secret")
    );
    assert_eq!(request.body.as_deref(), Some(&b"replaced"[..]));
}

#[test]
fn a_body_the_plugin_did_not_ask_for_cannot_be_set() {
    struct Sets;
    impl Plugin for Sets {
        type Config = crate::NoConfig;
        fn new(_: crate::NoConfig) -> Result<Self, String> {
            Ok(Sets)
        }
        fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
            request.set_body("x");
            Action::Continue
        }
    }
    let mut harness = Harness::<Sets>::new("{}").unwrap();
    let error = harness.try_on_request(TestRequest::post("/")).unwrap_err();
    assert!(error.contains("did not ask for"), "{error}");
}

#[test]
fn canned_http_and_logs() {
    let harness = Harness::<Echo>::new("{}").unwrap();
    harness.on_http("svc", |request| {
        Ok(OutboundResponse {
            status: 201,
            body: request.path_and_query.clone().into_bytes(),
            ..OutboundResponse::default()
        })
    });
    let response = crate::http::send(OutboundRequest::new("svc", Method::Get, "/ping")).unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (201, &b"/ping"[..])
    );
    assert_eq!(
        crate::http::send(OutboundRequest::new("other", Method::Get, "/")),
        Err(crate::http::Error::NotGranted("other".into()))
    );
    assert_eq!(harness.http_calls().len(), 2);
    crate::log::warn("careful");
    crate::log::event(
        Level::Info,
        "login",
        &[("user", "alice".into()), ("attempt", 3i64.into())],
    );
    assert_eq!(
        harness.logs(),
        [
            (Level::Warn, "careful".to_string()),
            (Level::Info, "login".to_string())
        ]
    );
    let lines = harness.log_lines();
    assert!(lines[0].fields.is_empty());
    assert_eq!(lines[1].field("user"), Some(&Value::Text("alice".into())));
    assert_eq!(lines[1].field("attempt"), Some(&Value::Int(3)));
    assert_eq!(lines[1].field("absent"), None);
}

struct Bad;

impl Plugin for Bad {
    type Config = serde_json::Value;
    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Bad)
    }
    fn on_request(&self, _: &mut Request, _: &mut Context) -> Action {
        Action::Respond(Response::new(200).with_header("bad name", "x"))
    }
}

#[test]
#[should_panic(expected = "PLUGIN_ERROR: \"bad name\" is not a valid header name")]
fn output_the_gateway_refuses_fails_the_test() {
    let mut harness = Harness::<Bad>::new("{}").unwrap();
    harness.on_request(TestRequest::get("/"));
}

#[test]
fn a_plugins_answer_is_checked_as_the_gateway_checks_it() {
    let mut harness = Harness::<Bad>::new("{}").unwrap();
    assert_eq!(
        harness.try_on_request(TestRequest::get("/")),
        Err(r#""bad name" is not a valid header name"#.to_string())
    );
    for (name, value, why) in [
        (
            "connection",
            "close",
            "header connection is the gateway's to set",
        ),
        (
            "x-ok",
            "a\nb",
            "the value of header x-ok is not a valid header value",
        ),
    ] {
        let answer = Response::new(200).with_header(name, value);
        assert_eq!(check_answer(&answer), Err(why.to_string()));
    }
    assert_eq!(check_answer(&Response::text(200, "fine")), Ok(()));
}

/// Answers (and, in the response phase, sets) the configured status.
struct Status(u16);

impl Plugin for Status {
    type Config = u16;
    fn new(status: u16) -> Result<Self, String> {
        Ok(Status(status))
    }
    fn on_request(&self, _: &mut Request, _: &mut Context) -> Action {
        Action::Respond(Response::new(self.0))
    }
    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        response.set_status(self.0);
    }
}

#[test]
#[should_panic(expected = "status 101 is out of range 200..=599 for a plugin's answer")]
fn a_plugins_own_response_needs_a_final_status() {
    Harness::<Status>::new("101")
        .unwrap()
        .on_request(TestRequest::get("/"));
}

#[test]
#[should_panic(expected = "status 600 is out of range 100..=599")]
fn a_changed_response_needs_a_status_below_600() {
    Harness::<Status>::new("600")
        .unwrap()
        .on_response(Response::new(200));
}

#[test]
fn statuses_200_to_599_answer_and_100_to_599_pass_on_response() {
    for (status, answers) in [(199, false), (200, true), (599, true), (600, false)] {
        let mut harness = Harness::<Status>::new(&status.to_string()).unwrap();
        let outcome = harness.try_on_request(TestRequest::get("/"));
        assert_eq!(outcome.is_ok(), answers, "{status}: {outcome:?}");
    }
    for (status, passes) in [
        (99, false),
        (100, true),
        (101, true),
        (599, true),
        (600, false),
    ] {
        let mut harness = Harness::<Status>::new(&status.to_string()).unwrap();
        let response = harness.try_on_response(Response::new(200));
        assert_eq!(response.is_ok(), passes, "{status}: {response:?}");
        if passes {
            assert_eq!(response.unwrap().status, status);
        }
    }
}

struct Vars;

impl Plugin for Vars {
    type Config = crate::NoConfig;
    fn new(_: crate::NoConfig) -> Result<Self, String> {
        Ok(Vars)
    }
    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let id = format!(
            "{}@{}",
            ctx.param("id").as_deref().unwrap_or("-"),
            ctx.route()
        );
        request.headers.set("x-seen", id);
        if let Some(prev) = ctx.var("consumer") {
            request.headers.set("x-consumer", prev);
        }
        ctx.set_var("stage", "request");
        ctx.set_var("list", "a,b; c");
        Action::Continue
    }
    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        let stage = ctx.var("stage").unwrap_or_else(|| "none".into());
        ctx.set_var("stage", "response");
        response.headers.append("x-stage", stage);
    }
}

#[test]
fn the_context_is_the_tests_and_vars_carry_to_the_response() {
    let mut harness = Harness::<Vars>::new("{}").unwrap();
    harness.ctx.route = "users".into();
    harness.ctx.params.push(("id".into(), "42".into()));
    harness.ctx.vars.push(("consumer".into(), "alice".into()));
    let outcome = harness.on_request(TestRequest::method("patch", "/u/42"));
    let request = outcome.request().unwrap();
    assert_eq!(request.method, Method::Patch);
    assert_eq!(request.headers.get("x-seen").as_deref(), Some("42@users"));
    assert_eq!(request.headers.get("x-consumer").as_deref(), Some("alice"));
    assert_eq!(harness.ctx.var("list"), Some("a,b; c"), "values stay whole");
    let response = harness.on_response(Response::new(200));
    assert_eq!(response.headers.get("x-stage").as_deref(), Some("request"));
    assert_eq!(harness.ctx.var("stage"), Some("response"));
    assert_eq!(
        harness.vars_set(),
        [
            ("stage".to_string(), "request".to_string()),
            ("list".to_string(), "a,b; c".to_string()),
            ("stage".to_string(), "response".to_string())
        ]
    );
}

#[test]
fn variables_over_the_gateways_limits_fail_the_request() {
    struct Many(usize, usize);
    impl Plugin for Many {
        type Config = (usize, usize);
        fn new((count, size): (usize, usize)) -> Result<Self, String> {
            Ok(Many(count, size))
        }
        fn on_request(&self, _: &mut Request, ctx: &mut Context) -> Action {
            for i in 0..self.0 {
                ctx.set_var(&format!("v{i}"), &"x".repeat(self.1));
            }
            Action::Continue
        }
    }
    assert!(
        Harness::<Many>::new("[64, 1]")
            .unwrap()
            .try_on_request(TestRequest::get("/"))
            .is_ok()
    );
    let error = Harness::<Many>::new("[65, 1]")
        .unwrap()
        .try_on_request(TestRequest::get("/"))
        .unwrap_err();
    assert_eq!(
        error,
        "over the limit: a request carries at most 64 variables"
    );
    let error = Harness::<Many>::new("[1, 8192]")
        .unwrap()
        .try_on_request(TestRequest::get("/"))
        .unwrap_err();
    assert!(error.contains("over 8192 bytes"), "{error}");
}

#[test]
fn the_clock_is_fixed_until_moved() {
    let harness = Harness::<Vars>::new("{}").unwrap();
    assert_eq!(crate::clock::now_unix_ms(), DEFAULT_TIME_MS);
    let before = crate::clock::monotonic_ns();
    harness.advance_ms(1500);
    assert_eq!(crate::clock::now_unix_ms(), DEFAULT_TIME_MS + 1500);
    assert_eq!(crate::clock::monotonic_ns() - before, 1_500_000_000);
    harness.set_time_ms(0);
    assert_eq!(crate::clock::now_unix_ms(), 0);
}

#[test]
fn kv_ttl_on_incr_applies_only_at_creation() {
    let harness = Harness::<Vars>::new("{}").unwrap();
    let ttl = Some(std::time::Duration::from_secs(10));
    assert_eq!(kv::incr("w", 1, ttl).unwrap(), 1);
    harness.advance_ms(6_000);
    assert_eq!(kv::incr("w", 1, ttl).unwrap(), 2, "no new expiry");
    harness.advance_ms(4_000);
    assert_eq!(kv::get("w").unwrap(), None, "expired 10 s after creation");
    assert_eq!(kv::incr("w", 1, ttl).unwrap(), 1);
    harness.kv_set("seed", b"x", None);
    assert_eq!(kv::get("seed").unwrap().as_deref(), Some(&b"x"[..]));
}

/// Echoes what it sees of the context into headers, rewrites the path, and times the
/// request.
struct Facts;

impl Plugin for Facts {
    type Config = crate::NoConfig;
    fn new(_: crate::NoConfig) -> Result<Self, String> {
        Ok(Facts)
    }
    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let facts = format!(
            "{} {} {} {} {} upstream={:?}",
            ctx.trace_id(),
            ctx.client_addr(),
            ctx.method(),
            ctx.path(),
            ctx.received_ns(),
            ctx.upstream()
        );
        request.headers.set("x-facts", facts);
        request.set_method(Method::Put);
        request.set_path("/rewritten");
        Action::Continue
    }
    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        let upstream = match ctx.upstream() {
            Some(call) => format!("{} {}", call.service, call.endpoint),
            None => "none".into(),
        };
        let elapsed = ctx.elapsed().as_millis().to_string();
        response.headers.set("x-elapsed-ms", elapsed);
        response.headers.set("x-upstream", upstream);
        response
            .headers
            .set("x-received", format!("{} {}", ctx.method(), ctx.path()));
    }
}

#[test]
fn the_context_has_the_requests_facts_as_the_gateway_gives_them() {
    let mut harness = Harness::<Facts>::new("{}").unwrap();
    let start_ns = DEFAULT_TIME_MS * 1_000_000;
    harness.advance_ms(5);
    let outcome = harness.on_request(TestRequest::post("/orders?x=1"));
    let request = outcome.request().unwrap();
    assert_eq!(
        request.headers.get("x-facts").unwrap(),
        format!(
            "{DEFAULT_TRACE_ID} 127.0.0.1:40000 POST /orders {} upstream=None",
            start_ns + 5_000_000
        ),
        "method and path from the request, received now, no upstream in the request phase"
    );
    assert_eq!(
        (&request.method, request.path.as_str()),
        (&Method::Put, "/rewritten")
    );
    assert_eq!(request.query.as_deref(), Some("x=1"));
    harness.advance_ms(250);
    let response = harness.on_response(Response::new(200));
    assert_eq!(response.headers.get("x-elapsed-ms").as_deref(), Some("250"));
    assert_eq!(
        response.headers.get("x-upstream").as_deref(),
        Some("test http://127.0.0.1:9000")
    );
    assert_eq!(
        response.headers.get("x-received").as_deref(),
        Some("POST /orders"),
        "the method and path as received, not as rewritten"
    );

    // The next request gets its own facts; a plugin's own answer has no upstream.
    let outcome = harness.on_request(TestRequest::get("/other"));
    let facts = outcome.request().unwrap().headers.get("x-facts").unwrap();
    assert!(facts.contains(" GET /other "), "{facts}");
    harness.ctx.upstream = None;
    let response = harness.on_response(Response::new(403));
    assert_eq!(response.headers.get("x-upstream").as_deref(), Some("none"));
    assert_eq!(response.headers.get("x-elapsed-ms").as_deref(), Some("0"));
    assert_eq!(
        response.headers.get("x-received").as_deref(),
        Some("GET /other")
    );
}

#[test]
fn context_facts_the_test_sets_are_kept() {
    let mut harness = Harness::<Facts>::new("{}").unwrap();
    harness.ctx.trace_id = "0af7651916cd43dd8448eb211c80319c".into();
    harness.ctx.client_addr = "[::1]:5000".into();
    harness.ctx.path = Some("/as/received".into());
    harness.ctx.received_ns = Some(1_000);
    harness.ctx.upstream = Some(UpstreamCall::new("users", "http://10.0.0.1:80"));
    let outcome = harness.on_request(TestRequest::get("/after/rewrite"));
    assert_eq!(
        outcome.request().unwrap().headers.get("x-facts").as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c [::1]:5000 GET /as/received 1000 upstream=None")
    );
    let response = harness.on_response(Response::new(200));
    assert_eq!(
        response.headers.get("x-upstream").as_deref(),
        Some("users http://10.0.0.1:80")
    );
    assert_eq!(
        response.headers.get("x-received").as_deref(),
        Some("GET /as/received")
    );
}

/// Makes the header edit its config names, with `set` or (with `"try": true`)
/// `try_set`, reporting the refusal in `x-refused`.
struct SetHeader {
    name: String,
    value: String,
    try_: bool,
}

#[derive(serde::Deserialize)]
struct SetHeaderConfig {
    name: String,
    value: String,
    #[serde(default, rename = "try")]
    try_: bool,
}

impl Plugin for SetHeader {
    type Config = SetHeaderConfig;
    fn new(c: SetHeaderConfig) -> Result<Self, String> {
        Ok(SetHeader {
            name: c.name,
            value: c.value,
            try_: c.try_,
        })
    }
    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if self.try_ {
            if let Err(error) = request.headers.try_set(&self.name, &self.value) {
                request.headers.set("x-refused", error.to_string());
            }
        } else {
            request.headers.set(&self.name, &self.value);
        }
        Action::Continue
    }
}

fn set_header(name: &str, value: &str, try_: bool) -> Result<Outcome, String> {
    let config = serde_json::json!({"name": name, "value": value, "try": try_}).to_string();
    Harness::<SetHeader>::new(&config)
        .unwrap()
        .try_on_request(TestRequest::get("/"))
}

#[test]
fn a_header_edit_the_gateway_refuses_fails_the_request() {
    for (name, value, why) in [
        (
            "connection",
            "close",
            "header connection is the gateway's to set",
        ),
        (
            "Transfer-Encoding",
            "chunked",
            "header transfer-encoding is the gateway's to set",
        ),
        ("bad name", "x", r#""bad name" is not a valid header name"#),
        ("", "x", r#""" is not a valid header name"#),
        (
            "x-ok",
            "line\nbreak",
            "the value of header x-ok is not a valid header value",
        ),
        (
            "x-ok",
            "nul\0",
            "the value of header x-ok is not a valid header value",
        ),
    ] {
        assert_eq!(
            set_header(name, value, false),
            Err(why.to_string()),
            "{name}: {value:?}"
        );
        // With `try_set` the plugin gets the error and the request goes on.
        let outcome = set_header(name, value, true).unwrap();
        let request = outcome.request().unwrap();
        assert_eq!(request.headers.get("x-refused").as_deref(), Some(why));
        assert_eq!(request.headers.len(), 1, "nothing else was set");
    }
    let outcome = set_header("X-Fine", "tab\tok", false).unwrap();
    assert_eq!(
        outcome.request().unwrap().headers.get("x-fine").as_deref(),
        Some("tab\tok")
    );
}

/// Sets the path its config names.
struct SetPath(String);

impl Plugin for SetPath {
    type Config = String;
    fn new(path: String) -> Result<Self, String> {
        Ok(SetPath(path))
    }
    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        request.set_path(&self.0);
        Action::Continue
    }
}

fn set_path(path: &str) -> Result<String, String> {
    let config = serde_json::Value::from(path).to_string();
    Harness::<SetPath>::new(&config)
        .unwrap()
        .try_on_request(TestRequest::get("/start"))
        .map(|outcome| outcome.sent.path)
}

#[test]
fn a_path_must_be_what_the_gateways_normaliser_makes_of_it() {
    for path in ["/", "/a/b", "/a/b/", "/a%20b", "/caf%C3%A9", "/~user"] {
        assert_eq!(set_path(path), Ok(path.to_string()));
    }
    for (path, why) in [
        (
            "/a;b=c",
            "';' in the path is not allowed (servers that strip ;parameters would read another path)",
        ),
        ("/a//b", r#""/a//b" is not normalised (it would be "/a/b")"#),
        (
            "/a/../b",
            r#""/a/../b" is not normalised (it would be "/b")"#,
        ),
        (
            "/a/./b",
            r#""/a/./b" is not normalised (it would be "/a/b")"#,
        ),
        ("/a%7e", r#""/a%7e" is not normalised (it would be "/a~")"#),
        ("/a%7E", r#""/a%7E" is not normalised (it would be "/a~")"#),
        (
            "/a%3a",
            r#""/a%3a" is not normalised (it would be "/a%3A")"#,
        ),
        ("/a%2f", "encoded '/' or '\\' in the path is not allowed"),
        ("/a%2Fb", "encoded '/' or '\\' in the path is not allowed"),
        ("/a%5cb", "encoded '/' or '\\' in the path is not allowed"),
        ("/a%00", "encoded NUL in the path is not allowed"),
        ("/a\\b", "'\\' in the path is not allowed"),
        ("/a%zz", "the path holds a malformed %-escape"),
        (
            "relative",
            "the request target must be a path starting with '/'",
        ),
        ("", "the request target must be a path starting with '/'"),
    ] {
        let error = set_path(path).unwrap_err();
        assert!(error.starts_with("invalid path: "), "{path}: {error}");
        assert!(
            error.ends_with(why),
            "{path}\n  got:  {error}\n  want: {why}"
        );
    }
    let error = set_path("/../up").unwrap_err();
    assert!(error.starts_with("invalid path: "), "{error}");
}

#[test]
fn the_query_and_method_are_checked_too() {
    /// Sets the query and method that the test puts in the vars `query` and `method`.
    struct Edit;
    impl Plugin for Edit {
        type Config = crate::NoConfig;
        fn new(_: crate::NoConfig) -> Result<Self, String> {
            Ok(Edit)
        }
        fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
            let query = ctx.var("query");
            request.set_query(query.as_deref());
            request.set_method(Method::parse(&ctx.var("method").unwrap_or_default()));
            Action::Continue
        }
    }
    let run = |query: Option<&str>, method: &str| {
        let mut harness = Harness::<Edit>::new("{}").unwrap();
        if let Some(query) = query {
            harness.ctx.vars.push(("query".into(), query.into()));
        }
        harness.ctx.vars.push(("method".into(), method.into()));
        harness
            .try_on_request(TestRequest::get("/?old=1"))
            .map(|outcome| (outcome.sent.query, outcome.sent.method))
    };
    assert_eq!(
        run(Some("a=%2F&b"), "get"),
        Ok((Some("a=%2F&b".into()), Method::Get))
    );
    assert_eq!(
        run(None, "PROPFIND"),
        Ok((None, Method::Other("PROPFIND".into())))
    );
    assert!(
        run(Some("a b"), "GET")
            .unwrap_err()
            .starts_with("invalid query: ")
    );
    assert!(
        run(Some("a=<b>"), "GET")
            .unwrap_err()
            .starts_with("invalid query: ")
    );
    assert_eq!(
        run(None, "GET POST"),
        Err(r#""GET POST" is not a valid method"#.into())
    );
}

/// Reaches for the message of the other phase, which a plugin cannot do through the
/// SDK's types: the gateway's exchange still refuses it.
struct OtherPhase;

impl Plugin for OtherPhase {
    type Config = crate::NoConfig;
    fn new(_: crate::NoConfig) -> Result<Self, String> {
        Ok(OtherPhase)
    }
    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let mut reply = Reply::new(Ex::native());
        assert_eq!(reply.status(), 0, "no status in the request phase");
        assert!(reply.headers.is_empty() && reply.headers.get("x").is_none());
        assert_eq!(
            reply.headers.try_set("x-late", "1"),
            Err(EditError::Unavailable("the response, in on_request".into()))
        );
        request.headers.set("x-tried", "1");
        reply.headers.set("x-late", "1");
        Action::Continue
    }
    fn on_response(&self, response: &mut Reply, _: &mut Context) {
        let mut request = Request::new(Ex::native());
        assert_eq!(request.path(), "/", "the request can still be read");
        assert!(request.try_set_path("/elsewhere").is_err());
        response.headers.set("x-tried", "1");
        request.headers.set("x-late", "1");
    }
}

#[test]
fn a_response_edit_in_on_request_and_a_request_edit_in_on_response_are_refused() {
    let mut harness = Harness::<OtherPhase>::new("{}").unwrap();
    assert_eq!(
        harness.try_on_request(TestRequest::get("/")),
        Err("not available: the response, in on_request".into())
    );
    assert_eq!(
        harness.try_on_response(Response::new(200)),
        Err("not available: the request, in on_response (it has gone upstream)".into())
    );
}

/// Logs what `on_log` is given, when its config asks for the log phase.
struct Logs(bool);

impl Plugin for Logs {
    type Config = bool;
    fn new(log: bool) -> Result<Self, String> {
        Ok(Logs(log))
    }
    fn settings(&self) -> Settings {
        Settings {
            log: self.0,
            request_only: true,
            ..Settings::default()
        }
    }
    fn on_log(&self, entry: &LogEntry) {
        crate::log::event(
            Level::Info,
            "done",
            &[
                ("status", entry.status.into()),
                ("consumer", entry.var("consumer").unwrap_or("-").into()),
            ],
        );
    }
}

#[test]
fn on_log_runs_when_the_settings_ask_for_it() {
    let mut harness = Harness::<Logs>::new("true").unwrap();
    let entry = LogEntry {
        status: 502,
        vars: vec![("consumer".into(), "alice".into())],
        ..LogEntry::default()
    };
    harness.on_log(&entry);
    let lines = harness.log_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].field("status"), Some(&Value::Int(502)));
    assert_eq!(
        lines[0].field("consumer"),
        Some(&Value::Text("alice".into()))
    );
    // Request-only: the response passes without a call.
    assert_eq!(harness.on_response(Response::new(204)), Response::new(204));
}

#[test]
#[should_panic(
    expected = "the gateway calls on_log only for plugins whose settings() set `log: true`"
)]
fn on_log_panics_unless_the_settings_ask_for_it() {
    Harness::<Logs>::new("false")
        .unwrap()
        .on_log(&LogEntry::default());
}

/// Records what its config says, and reports the gateway's answer in a header.
struct Meter;

impl Plugin for Meter {
    type Config = Vec<(String, Vec<(String, String)>, String, f64)>;
    fn new(calls: Self::Config) -> Result<Self, String> {
        for (name, labels, kind, value) in &calls {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let result = match kind.as_str() {
                "counter" => crate::metrics::counter_add(name, &labels, *value as u64),
                "gauge" => crate::metrics::gauge_set(name, &labels, *value),
                _ => crate::metrics::histogram_observe(name, &labels, *value),
            };
            if let Err(error) = result {
                crate::log::warn(&error);
            }
        }
        Ok(Meter)
    }
    fn on_request(&self, _: &mut Request, ctx: &mut Context) -> Action {
        let result = crate::metrics::counter_add("hits_total", &[("route", &ctx.route())], 1);
        match result {
            Ok(()) => Action::Continue,
            Err(error) => Action::Respond(Response::text(500, error)),
        }
    }
}

#[test]
fn metrics_are_captured_by_series() {
    let mut harness = Harness::<Meter>::new("[]").unwrap();
    harness.on_request(TestRequest::get("/"));
    harness.on_request(TestRequest::get("/"));
    harness.ctx.route = "other".into();
    harness.on_request(TestRequest::get("/"));
    assert_eq!(harness.counter("hits_total", &[("route", "test")]), 2);
    assert_eq!(harness.counter("hits_total", &[("route", "other")]), 1);
    assert_eq!(harness.counter("hits_total", &[]), 0, "another series");

    crate::metrics::gauge_set("queue_depth", &[("a", "1"), ("b", "2")], 3.0).unwrap();
    crate::metrics::gauge_set("queue_depth", &[("b", "2"), ("a", "1")], 4.5).unwrap();
    assert_eq!(
        harness.gauge("queue_depth", &[("a", "1"), ("b", "2")]),
        Some(4.5),
        "labels in any order are one series"
    );
    assert_eq!(harness.gauge("queue_depth", &[]), None);
    crate::metrics::histogram_observe("lookup_seconds", &[], 0.25).unwrap();
    crate::metrics::histogram_observe("lookup_seconds", &[], 0.5).unwrap();
    assert_eq!(harness.histogram("lookup_seconds", &[]), [0.25, 0.5]);

    let calls = harness.metric_calls();
    assert_eq!(calls.len(), 7);
    assert_eq!(
        calls[0],
        MetricCall {
            name: "hits_total".into(),
            labels: vec![("route".into(), "test".into())],
            value: MetricValue::Counter(1),
        }
    );
    assert!(harness.refused_metrics().is_empty());
}

#[test]
fn metric_calls_the_gateway_refuses_are_refused_with_its_reason() {
    let config = r#"[
        ["http_requests_total", [], "counter", 1],
        ["Bad-Name", [], "counter", 1],
        ["ok_total", [["plugin", "x"]], "counter", 1],
        ["ok_total", [["a", "1"], ["b", "1"], ["c", "1"], ["d", "1"], ["e", "1"]], "counter", 1],
        ["ok_total", [["a", "1"], ["a", "2"]], "counter", 1],
        ["depth", [], "gauge", 1.5],
        ["depth", [], "counter", 1]
    ]"#;
    let harness = Harness::<Meter>::new(config).unwrap();
    let reasons: Vec<String> = harness
        .refused_metrics()
        .into_iter()
        .map(|(_, reason)| reason)
        .collect();
    assert_eq!(
        reasons,
        [
            r#"metric name "http_requests_total" starts with "http_", which the gateway keeps for its own metrics"#,
            r#"metric name "Bad-Name" must be [a-z_][a-z0-9_]* and at most 64 bytes"#,
            r#"label name "plugin" must be [a-z_][a-z0-9_]* and not "plugin""#,
            "5 labels given; at most 4 are allowed",
            r#"label "a" is given twice"#,
            r#"metric "depth" is a gauge; it cannot be used as a counter"#,
        ]
    );
    let logged: Vec<String> = harness.logs().into_iter().map(|(_, line)| line).collect();
    assert_eq!(logged, reasons, "the plugin got the same errors");
    assert_eq!(harness.gauge("depth", &[]), Some(1.5));
    assert_eq!(harness.metric_calls().len(), 1);
}

#[test]
fn metric_limits_on_sizes_values_and_series() {
    let _harness = Harness::<Meter>::new("[]").unwrap();
    let long = "n".repeat(65);
    assert!(
        crate::metrics::counter_add(&long, &[], 1)
            .unwrap_err()
            .contains("64 bytes")
    );
    crate::metrics::counter_add(&long[..64], &[], 1).unwrap();
    let value = "v".repeat(129);
    assert_eq!(
        crate::metrics::counter_add("c_total", &[("k", &value)], 1).unwrap_err(),
        r#"the value of label "k" is over 128 bytes"#
    );
    crate::metrics::counter_add("c_total", &[("k", &value[..128])], 1).unwrap();
    assert_eq!(
        crate::metrics::histogram_observe("h_seconds", &[], f64::NAN).unwrap_err(),
        r#"metric "h_seconds": the value NaN is not finite"#
    );
    assert!(crate::metrics::gauge_set("g", &[], f64::INFINITY).is_err());
    for i in 0..100 {
        crate::metrics::counter_add("many_total", &[("i", &i.to_string())], 1).unwrap();
    }
    assert_eq!(
        crate::metrics::counter_add("many_total", &[("i", "new")], 1).unwrap_err(),
        r#"metric "many_total" already has 100 label combinations for this plugin"#
    );
    crate::metrics::counter_add("many_total", &[("i", "7")], 1).unwrap();
    crate::metrics::counter_add("_under_score9", &[("_x1", "")], 0).unwrap();
    assert!(crate::metrics::counter_add("9lives", &[], 1).is_err());
    assert!(crate::metrics::counter_add("x_total", &[("Upper", "1")], 1).is_err());
}
