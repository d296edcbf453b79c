//! The harness's own tests.

use super::*;
use crate::kv;

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
    assert!(kv::incr("t", 1, None).is_err());
    assert!(kv::delete("n").unwrap());
    assert!(!kv::delete("n").unwrap());
}

#[test]
fn bodies_are_withheld_unless_asked_for() {
    let mut harness = Harness::<Echo>::new("{}").unwrap();
    let action = harness.on_request(TestRequest::post("/x?a=1").body("secret").build());
    let request = action.request().unwrap();
    assert_eq!(request.body, None);
    assert_eq!(request.query.as_deref(), Some("a=1"));
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
    let response = crate::http::send(OutboundRequest::new("svc", "GET", "/ping")).unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (201, &b"/ping"[..])
    );
    assert!(crate::http::send(OutboundRequest::new("other", "GET", "/")).is_err());
    assert_eq!(harness.http_calls().len(), 2);
    crate::log::warn("careful");
    assert_eq!(harness.logs(), [(Level::Warn, "careful".to_string())]);
}

struct Bad;

impl Plugin for Bad {
    type Config = serde_json::Value;
    fn new(_: serde_json::Value) -> Result<Self, String> {
        Ok(Bad)
    }
    fn on_request(&self, _: Request, _: &mut Context) -> Action {
        Action::Respond(Response::new(200).with_header("bad name", "x"))
    }
}

#[test]
#[should_panic(expected = "invalid header name")]
fn output_the_gateway_refuses_fails_the_test() {
    let mut harness = Harness::<Bad>::new("{}").unwrap();
    harness.on_request(TestRequest::get("/").build());
}

struct Status(u16);

impl Plugin for Status {
    type Config = u16;
    fn new(status: u16) -> Result<Self, String> {
        Ok(Status(status))
    }
    fn on_request(&self, _: Request, _: &mut Context) -> Action {
        Action::Respond(Response::new(self.0))
    }
    fn on_response(&self, mut response: Response, _: &mut Context) -> Response {
        response.status = self.0;
        response
    }
}

#[test]
#[should_panic(expected = "the gateway accepts 200..=599 here")]
fn a_plugins_own_response_needs_a_final_status() {
    Harness::<Status>::new("101")
        .unwrap()
        .on_request(TestRequest::get("/").build());
}

#[test]
#[should_panic(expected = "status 600")]
fn a_changed_response_needs_a_status_below_600() {
    Harness::<Status>::new("600")
        .unwrap()
        .on_response(Response::new(200));
}

#[test]
fn informational_statuses_may_pass_through_on_response() {
    let mut harness = Harness::<Status>::new("101").unwrap();
    assert_eq!(harness.on_response(Response::new(200)).status, 101);
}

struct Vars;

impl Plugin for Vars {
    type Config = crate::NoConfig;
    fn new(_: crate::NoConfig) -> Result<Self, String> {
        Ok(Vars)
    }
    fn on_request(&self, mut request: Request, ctx: &mut Context) -> Action {
        let id = format!("{}@{}", ctx.param("id").unwrap_or("-"), ctx.route);
        request.headers.set("x-seen", id.as_str());
        if let Some(prev) = ctx.var("consumer") {
            request.headers.set("x-consumer", prev);
        }
        ctx.set_var("stage", "request");
        Action::Continue(request)
    }
    fn on_response(&self, response: Response, ctx: &mut Context) -> Response {
        let stage = ctx.var("stage").unwrap_or("none").to_string();
        ctx.set_var("stage", "response");
        response.with_header("x-stage", stage)
    }
}

#[test]
fn the_context_is_the_tests_and_vars_carry_to_the_response() {
    let mut harness = Harness::<Vars>::new("{}").unwrap();
    harness.ctx.route = "users".into();
    harness.ctx.params.push(("id".into(), "42".into()));
    harness.ctx.vars.push(("consumer".into(), "alice".into()));
    let action = harness.on_request(TestRequest::method("patch", "/u/42").build());
    let request = action.request().unwrap();
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.headers.get("x-seen"), Some("42@users"));
    assert_eq!(request.headers.get("x-consumer"), Some("alice"));
    let response = harness.on_response(Response::new(200));
    assert_eq!(response.headers.get("x-stage"), Some("request"));
    assert_eq!(harness.ctx.var("stage"), Some("response"));
    assert_eq!(
        harness.vars_set(),
        [
            ("stage".to_string(), "request".to_string()),
            ("stage".to_string(), "response".to_string())
        ]
    );
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

/// Echoes what it sees of the context into headers, and times the request.
struct Facts;

impl Plugin for Facts {
    type Config = crate::NoConfig;
    fn new(_: crate::NoConfig) -> Result<Self, String> {
        Ok(Facts)
    }
    fn on_request(&self, mut request: Request, ctx: &mut Context) -> Action {
        let facts = format!(
            "{} {} {} {} upstream={:?}",
            ctx.trace_id, ctx.method, ctx.path, ctx.received_ns, ctx.upstream
        );
        request.headers.set("x-facts", facts);
        request.path = "/rewritten".into();
        Action::Continue(request)
    }
    fn on_response(&self, response: Response, ctx: &mut Context) -> Response {
        let upstream = match &ctx.upstream {
            Some(call) => format!("{} {}", call.service, call.endpoint),
            None => "none".into(),
        };
        response
            .with_header("x-elapsed-ms", ctx.elapsed().as_millis().to_string())
            .with_header("x-upstream", upstream)
            .with_header("x-path", ctx.path.as_str())
    }
}

#[test]
fn the_context_has_the_requests_facts_as_the_gateway_gives_them() {
    let mut harness = Harness::<Facts>::new("{}").unwrap();
    let start_ns = DEFAULT_TIME_MS * 1_000_000;
    harness.advance_ms(5);
    let action = harness.on_request(TestRequest::post("/orders?x=1").build());
    assert_eq!(
        action.request().unwrap().headers.get("x-facts").unwrap(),
        format!(
            "{DEFAULT_TRACE_ID} POST /orders {} upstream=None",
            start_ns + 5_000_000
        ),
        "method and path from the request, received now, no upstream in the request phase"
    );
    harness.advance_ms(250);
    let response = harness.on_response(Response::new(200));
    assert_eq!(response.headers.get("x-elapsed-ms"), Some("250"));
    assert_eq!(
        response.headers.get("x-upstream"),
        Some("test http://127.0.0.1:9000")
    );
    assert_eq!(
        response.headers.get("x-path"),
        Some("/orders"),
        "the path as received, not as rewritten"
    );

    // The next request gets its own facts; a plugin's own answer has no upstream.
    harness.on_request(TestRequest::get("/other").build());
    assert_eq!(
        (harness.ctx.method.as_str(), harness.ctx.path.as_str()),
        ("GET", "/other")
    );
    harness.ctx.upstream = None;
    let response = harness.on_response(Response::new(403));
    assert_eq!(response.headers.get("x-upstream"), Some("none"));
    assert_eq!(response.headers.get("x-elapsed-ms"), Some("0"));
}

#[test]
fn context_facts_the_test_sets_are_kept() {
    let mut harness = Harness::<Facts>::new("{}").unwrap();
    harness.ctx.trace_id = "0af7651916cd43dd8448eb211c80319c".into();
    harness.ctx.path = "/as/received".into();
    harness.ctx.received_ns = 1_000;
    harness.ctx.upstream = Some(UpstreamCall::new("users", "http://10.0.0.1:80"));
    let action = harness.on_request(TestRequest::get("/after/rewrite").build());
    assert_eq!(
        action.request().unwrap().headers.get("x-facts"),
        Some("0af7651916cd43dd8448eb211c80319c GET /as/received 1000 upstream=None")
    );
    let response = harness.on_response(Response::new(200));
    assert_eq!(
        response.headers.get("x-upstream"),
        Some("users http://10.0.0.1:80")
    );
    assert_eq!(response.headers.get("x-path"), Some("/as/received"));
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
    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        let result = crate::metrics::counter_add("hits_total", &[("route", &ctx.route)], 1);
        match result {
            Ok(()) => Action::Continue(request),
            Err(error) => Action::Respond(Response::text(500, error)),
        }
    }
}

#[test]
fn metrics_are_captured_by_series() {
    let mut harness = Harness::<Meter>::new("[]").unwrap();
    harness.on_request(TestRequest::get("/").build());
    harness.on_request(TestRequest::get("/").build());
    harness.ctx.route = "other".into();
    harness.on_request(TestRequest::get("/").build());
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
