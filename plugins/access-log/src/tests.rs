use wasmgate_plugin_sdk::log::Level;
use wasmgate_plugin_sdk::testing::{DEFAULT_TIME_MS, DEFAULT_TRACE_ID, Harness, TestRequest};
use wasmgate_plugin_sdk::{Action, UpstreamCall};

use super::*;

fn harness(config: &str) -> Harness<AccessLog> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// Runs one request through both phases, `ms` apart, and returns the line logged.
fn log_line(
    h: &mut Harness<AccessLog>,
    request: TestRequest,
    ms: u64,
    response: Response,
) -> String {
    let Action::Continue(_) = h.on_request(request.build()) else {
        panic!("access-log never answers");
    };
    assert!(
        h.logs().is_empty(),
        "nothing is logged in the request phase"
    );
    h.advance_ms(ms);
    let returned = h.on_response(response.clone());
    assert_eq!(returned, response, "the response passes unchanged");
    let logs = h.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].0, Level::Info);
    logs[0].1.clone()
}

#[test]
fn logs_every_field_by_default_in_order() {
    let mut h = harness("{}");
    h.ctx.route = "users".into();
    h.ctx.vars.push(("consumer".into(), "mobile-app".into()));
    h.ctx.vars.push(("user_id".into(), "alice".into()));
    let line = log_line(
        &mut h,
        TestRequest::post("/users/42?full=1")
            .header("content-length", "17")
            .body("{\"name\":\"alice\"}"),
        250,
        Response::new(201).with_header("content-length", "512"),
    );
    assert_eq!(
        line,
        format!(
            concat!(
                r#"{{"timestamp":"2026-01-01T00:00:00.250Z","request_id":"test-request-1","#,
                r#""trace_id":"{}","method":"POST","path":"/users/42","route":"users","#,
                r#""status":201,"duration_ms":250.0,"consumer":"mobile-app","user":"alice","#,
                r#""service":"test","endpoint":"http://127.0.0.1:9000","bytes_in":17,"#,
                r#""bytes_out":512,"client":"127.0.0.1:40000"}}"#
            ),
            DEFAULT_TRACE_ID
        )
    );
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed.as_object().unwrap().len(), Field::ALL.len());
}

#[test]
fn fields_choose_and_order_the_line() {
    let mut h = harness(r#"{"fields": ["status", "method", "path", "duration_ms"]}"#);
    let line = log_line(&mut h, TestRequest::get("/a/b"), 12, Response::new(404));
    assert_eq!(
        line,
        r#"{"status":404,"method":"GET","path":"/a/b","duration_ms":12.0}"#
    );
}

#[test]
fn message_prefix_goes_before_the_object() {
    let mut h = harness(r#"{"fields": ["status"], "message_prefix": "access "}"#);
    let line = log_line(&mut h, TestRequest::get("/"), 0, Response::new(200));
    assert_eq!(line, r#"access {"status":200}"#);
}

#[test]
fn bad_config_is_refused_with_the_reason() {
    let refused = |config: &str| Harness::<AccessLog>::new(config).err().unwrap();
    let error = refused(r#"{"fields": ["status", "latency"]}"#);
    assert!(
        error.starts_with(
            "invalid config at `fields[1]`: unknown variant `latency`, expected one of `timestamp`, `request_id`"
        ),
        "{error}"
    );
    assert!(error.contains("`bytes_out`, `client`"), "{error}");
    assert_eq!(
        refused(r#"{"fields": []}"#),
        "fields: the list is empty; leave `fields` out to log every field"
    );
    assert_eq!(
        refused(r#"{"fields": ["status", "route", "status"]}"#),
        "fields: `status` is listed twice"
    );
    assert_eq!(
        refused(r#"{"user_var": ""}"#),
        "user_var: a variable name cannot be empty"
    );
    assert!(refused(r#"{"message_prefix": "a\nb"}"#).starts_with("message_prefix: control"));
    let error = refused(r#"{"feilds": ["status"]}"#);
    assert!(error.contains("unknown field `feilds`"), "{error}");
}

#[test]
fn every_field_name_is_accepted_in_the_config() {
    for field in Field::ALL {
        let config = format!(r#"{{"fields": ["{}"]}}"#, field.name());
        assert_eq!(harness(&config).plugin().fields, [field]);
    }
}

#[test]
fn consumer_and_user_come_from_configurable_vars() {
    let config =
        r#"{"fields": ["consumer", "user"], "consumer_var": "client_id", "user_var": "sub"}"#;
    let mut h = harness(config);
    h.ctx.vars.push(("consumer".into(), "ignored".into()));
    h.ctx
        .vars
        .push(("client_id".into(), "partner \"x\"".into()));
    let line = log_line(&mut h, TestRequest::get("/"), 0, Response::new(200));
    assert_eq!(line, r#"{"consumer":"partner \"x\"","user":null}"#);

    // A var set by a plugin later in the chain is there by the response phase.
    let mut h = harness(r#"{"fields": ["consumer", "user"]}"#);
    h.on_request(TestRequest::get("/").build());
    h.ctx.vars.push(("user_id".into(), "bob".into()));
    h.on_response(Response::new(200));
    assert_eq!(h.logs()[0].1, r#"{"consumer":null,"user":"bob"}"#);
}

#[test]
fn duration_runs_from_receipt_on_the_monotonic_clock() {
    let mut h = harness(r#"{"fields": ["timestamp", "duration_ms"]}"#);
    h.set_time_ms(DEFAULT_TIME_MS + 60_000);
    h.on_request(TestRequest::get("/").build());
    h.advance_ms(1_234);
    h.on_response(Response::new(200));
    assert_eq!(
        h.logs()[0].1,
        r#"{"timestamp":"2026-01-01T00:01:01.234Z","duration_ms":1234.0}"#
    );

    // Sub-millisecond precision: received 1.5 ms before the clock's now.
    let mut h = harness(r#"{"fields": ["duration_ms"]}"#);
    h.ctx.received_ns = wasmgate_plugin_sdk::clock::monotonic_ns() - 1_500_123;
    h.on_request(TestRequest::get("/").build());
    h.on_response(Response::new(200));
    assert_eq!(h.logs()[0].1, r#"{"duration_ms":1.5}"#);
}

#[test]
fn bytes_in_travels_in_a_var_and_bytes_out_is_the_response_length() {
    let mut h = harness(r#"{"fields": ["bytes_in", "bytes_out"]}"#);
    let line = log_line(
        &mut h,
        TestRequest::put("/x").header("content-length", "2048"),
        0,
        Response::new(200).with_header("content-length", "0"),
    );
    assert_eq!(line, r#"{"bytes_in":2048,"bytes_out":0}"#);
    assert_eq!(
        h.vars_set(),
        [(BYTES_IN_VAR.to_string(), "2048".to_string())]
    );

    // No (or no valid) Content-Length: unknown.
    let mut h = harness(r#"{"fields": ["bytes_in", "bytes_out"]}"#);
    let line = log_line(
        &mut h,
        TestRequest::get("/x").header("content-length", "12abc"),
        0,
        Response::new(200),
    );
    assert_eq!(line, r#"{"bytes_in":null,"bytes_out":null}"#);
    assert!(h.vars_set().is_empty());

    // The var is not set when bytes_in is not logged.
    let mut h = harness(r#"{"fields": ["status"]}"#);
    h.on_request(TestRequest::post("/").header("content-length", "5").build());
    assert!(h.vars_set().is_empty());
}

#[test]
fn bytes_out_falls_back_to_a_body_the_plugin_sees() {
    let plugin = harness(r#"{"fields": ["bytes_out"]}"#);
    let mut response = Response::new(200);
    response.body = Some(b"hello".to_vec());
    let ctx = Context::default();
    assert_eq!(plugin.plugin().line(&response, &ctx), r#"{"bytes_out":5}"#);
}

#[test]
fn no_upstream_logs_null_service_and_endpoint() {
    let mut h = harness(r#"{"fields": ["status", "service", "endpoint"]}"#);
    h.ctx.upstream = None;
    let line = log_line(&mut h, TestRequest::get("/"), 0, Response::new(403));
    assert_eq!(line, r#"{"status":403,"service":null,"endpoint":null}"#);

    let mut h = harness(r#"{"fields": ["service", "endpoint"]}"#);
    h.ctx.upstream = Some(UpstreamCall::new("users", "http://10.0.0.7:9001"));
    let line = log_line(&mut h, TestRequest::get("/"), 0, Response::new(200));
    assert_eq!(
        line,
        r#"{"service":"users","endpoint":"http://10.0.0.7:9001"}"#
    );
}

#[test]
fn each_request_gets_its_own_line() {
    let mut h = harness(r#"{"fields": ["request_id", "method", "path", "status"]}"#);
    for (i, path) in ["/one", "/two"].into_iter().enumerate() {
        h.ctx.request_id = format!("req-{i}");
        h.ctx.vars.clear();
        h.on_request(TestRequest::delete(path).build());
        h.on_response(Response::new(204));
    }
    let lines: Vec<String> = h.logs().into_iter().map(|(_, line)| line).collect();
    assert_eq!(
        lines,
        [
            r#"{"request_id":"req-0","method":"DELETE","path":"/one","status":204}"#,
            r#"{"request_id":"req-1","method":"DELETE","path":"/two","status":204}"#,
        ]
    );
}
