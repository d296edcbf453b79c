use std::time::Duration;

use serde_json::{Value as Json, json};
use wasmgate_plugin_sdk::log::{Level, Value};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
use wasmgate_plugin_sdk::{Action, Failure, FailureKind, Method, Response, Settings, UpstreamCall};

use super::*;

fn harness(config: &str) -> Harness<AccessLog> {
    Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"))
}

/// A field's value as the gateway writes it in a JSON line (a non-finite number is
/// `null`).
fn json(value: &Value) -> Json {
    match value {
        Value::Text(text) => text.as_str().into(),
        Value::Int(n) => (*n).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Flag(b) => (*b).into(),
    }
}

/// Logs `entry` and returns the one line written: its message and its fields as a
/// JSON object (whose keys are not kept in order: tests of the order read
/// `log_lines`).
fn log_line(h: &mut Harness<AccessLog>, entry: &LogEntry) -> (String, Json) {
    let before = h.log_lines().len();
    h.on_log(entry);
    let lines = h.log_lines();
    assert_eq!(lines.len(), before + 1, "one line per entry: {lines:?}");
    let line = lines.last().unwrap();
    assert_eq!(line.level, Level::Info);
    let fields: serde_json::Map<String, Json> = line
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), json(value)))
        .collect();
    assert_eq!(fields.len(), line.fields.len(), "no field twice");
    (line.message.clone(), Json::Object(fields))
}

/// The fields of the line logged for `entry`.
fn fields(h: &mut Harness<AccessLog>, entry: &LogEntry) -> Json {
    log_line(h, entry).1
}

/// A `POST /users/42?full=1` on route `users` by `mobile-app` for `alice`, proxied to
/// `users` and answered 201 in 250 ms.
fn proxied() -> LogEntry {
    LogEntry {
        request_id: "req-1".into(),
        route: "users".into(),
        client_addr: "203.0.113.7:50412".into(),
        method: Method::Post,
        path: "/users/42".into(),
        query: Some("full=1".into()),
        status: 201,
        bytes_in: Some(17),
        bytes_out: 512,
        total: Duration::from_millis(250),
        upstream_time: Some(Duration::from_micros(12_345)),
        upstream: Some(UpstreamCall::new("users", "http://10.0.0.7:9001")),
        plugins: vec![("access-log".into(), Duration::from_micros(3))],
        vars: vec![
            ("consumer".into(), "mobile-app".into()),
            ("user_id".into(), "alice".into()),
        ],
        ..LogEntry::default()
    }
}

#[test]
fn logs_every_field_by_default_in_order() {
    let mut h = harness("{}");
    let (message, line) = log_line(&mut h, &proxied());
    assert_eq!(message, "access");
    assert_eq!(
        line,
        json!({
            "method": "POST", "path": "/users/42", "status": 201, "duration_ms": 250.0,
            "consumer": "mobile-app", "user": "alice", "service": "users",
            "endpoint": "http://10.0.0.7:9001", "bytes_in": 17, "bytes_out": 512,
            "client": "203.0.113.7:50412", "answered_by": null, "failure": null,
            "failure_kind": null, "failed_plugin": null, "upstream_ms": 12.345,
            "complete": true
        })
    );
    let names: Vec<String> = h.log_lines()[0]
        .fields
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let want: Vec<&str> = Field::ALL
        .into_iter()
        .filter(|field| !field.is_on_every_line())
        .map(Field::name)
        .collect();
    assert_eq!(names, want, "in the order of Field::ALL");
}

#[test]
fn only_the_log_phase_does_anything() {
    let mut h = harness("{}");
    assert_eq!(
        h.settings(),
        Settings {
            log: true,
            request_only: true,
            ..Settings::default()
        }
    );
    let outcome = h.on_request(TestRequest::post("/x?y=1").header("a", "b").body("c"));
    assert_eq!(outcome.action, Action::Continue);
    let sent = outcome.request().unwrap();
    assert_eq!(
        (
            sent.path.as_str(),
            sent.query.as_deref(),
            sent.headers.len()
        ),
        ("/x", Some("y=1"), 1)
    );
    let response = Response::text(200, "ok").with_header("x", "1");
    assert_eq!(h.on_response(response.clone()), response);
    assert!(h.logs().is_empty(), "nothing until the log phase");
    assert!(h.vars_set().is_empty());
}

#[test]
fn a_plugin_failure_names_the_plugin_and_what_failed() {
    let mut h = harness("{}");
    let entry = LogEntry {
        status: 500,
        failure: Some(Failure {
            kind: FailureKind::PluginTimeout,
            code: "PLUGIN_ERROR".into(),
            plugin: Some("jwt-auth".into()),
        }),
        bytes_out: 140,
        upstream_time: None,
        upstream: None,
        ..proxied()
    };
    let line = fields(&mut h, &entry);
    assert_eq!(line["status"], 500);
    assert_eq!(line["failure"], "PLUGIN_ERROR");
    assert_eq!(line["failure_kind"], "plugin_timeout");
    assert_eq!(line["failed_plugin"], "jwt-auth");
    assert_eq!(line["answered_by"], Json::Null);
    assert_eq!(
        (&line["service"], &line["endpoint"], &line["upstream_ms"]),
        (&Json::Null, &Json::Null, &Json::Null),
        "the request never went upstream"
    );
    assert_eq!(line["bytes_out"], 140, "the envelope the client got");
}

#[test]
fn a_plugin_answer_names_the_plugin_and_counts_its_bytes() {
    let mut h =
        harness(r#"{"fields": ["status", "answered_by", "service", "bytes_out", "failure"]}"#);
    let entry = LogEntry {
        status: 403,
        answered_by: Some("deny".into()),
        bytes_out: 118,
        upstream_time: None,
        upstream: None,
        ..proxied()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"status": 403, "answered_by": "deny", "service": null, "bytes_out": 118,
               "failure": null})
    );
}

#[test]
fn the_gateways_502_and_504_are_logged_with_their_cause() {
    let mut h = harness(
        r#"{"fields": ["status", "failure", "failure_kind", "failed_plugin", "service",
                       "upstream_ms", "complete"]}"#,
    );
    let unreachable = LogEntry {
        status: 502,
        failure: Some(Failure {
            kind: FailureKind::UpstreamUnreachable,
            code: "BAD_GATEWAY".into(),
            plugin: None,
        }),
        upstream_time: None,
        upstream: None,
        ..proxied()
    };
    assert_eq!(
        fields(&mut h, &unreachable),
        json!({"status": 502, "failure": "BAD_GATEWAY", "failure_kind": "upstream_unreachable",
               "failed_plugin": null, "service": null, "upstream_ms": null, "complete": true})
    );
    let timeout = LogEntry {
        status: 504,
        failure: Some(Failure {
            kind: FailureKind::UpstreamTimeout,
            code: "GATEWAY_TIMEOUT".into(),
            plugin: None,
        }),
        ..unreachable
    };
    let line = fields(&mut h, &timeout);
    assert_eq!(
        (&line["status"], &line["failure"], &line["failure_kind"]),
        (
            &json!(504),
            &json!("GATEWAY_TIMEOUT"),
            &json!("upstream_timeout")
        )
    );
}

#[test]
fn a_response_cut_short_is_not_complete() {
    let mut h = harness(r#"{"fields": ["status", "bytes_out", "complete"]}"#);
    let entry = LogEntry {
        bytes_out: 4096,
        complete: false,
        ..proxied()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"status": 201, "bytes_out": 4096, "complete": false})
    );
}

#[test]
fn fields_choose_and_order_the_line() {
    let mut h = harness(r#"{"fields": ["status", "method", "path", "duration_ms"]}"#);
    let entry = LogEntry {
        method: Method::Get,
        path: "/a/b".into(),
        status: 404,
        total: Duration::from_millis(12),
        ..LogEntry::default()
    };
    let line = fields(&mut h, &entry);
    assert_eq!(
        line,
        json!({"status": 404, "method": "GET", "path": "/a/b", "duration_ms": 12.0})
    );
    let names: Vec<String> = h.log_lines()[0]
        .fields
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(names, ["status", "method", "path", "duration_ms"]);
}

#[test]
fn the_gateways_own_keys_are_not_written_twice() {
    let mut h =
        harness(r#"{"fields": ["timestamp", "request_id", "status", "trace_id", "route"]}"#);
    assert_eq!(fields(&mut h, &proxied()), json!({"status": 201}));
    for field in Field::ALL {
        let on_every_line =
            ["timestamp", "request_id", "trace_id", "route"].contains(&field.name());
        assert_eq!(field.is_on_every_line(), on_every_line, "{field:?}");
    }
}

#[test]
fn message_prefix_is_the_lines_message() {
    let mut h = harness(r#"{"fields": ["status"], "message_prefix": " api-access "}"#);
    let (message, line) = log_line(&mut h, &LogEntry::default());
    assert_eq!(
        (message.as_str(), line),
        ("api-access", json!({"status": 200}))
    );
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
    assert!(error.contains("`upstream_ms`, `complete`"), "{error}");
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
        let written: &[Field] = if field.is_on_every_line() {
            &[]
        } else {
            &[field]
        };
        assert_eq!(harness(&config).plugin().fields, written);
    }
}

#[test]
fn consumer_and_user_come_from_configurable_vars() {
    let config =
        r#"{"fields": ["consumer", "user"], "consumer_var": "client_id", "user_var": "sub"}"#;
    let mut h = harness(config);
    let entry = LogEntry {
        vars: vec![
            ("consumer".into(), "ignored".into()),
            ("client_id".into(), "partner \"x\"".into()),
        ],
        ..LogEntry::default()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"consumer": "partner \"x\"", "user": null})
    );

    // The vars at the end of the request: set by any plugin of the chain.
    let mut h = harness(r#"{"fields": ["consumer", "user"]}"#);
    let entry = LogEntry {
        vars: vec![("user_id".into(), "bob".into())],
        ..LogEntry::default()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"consumer": null, "user": "bob"})
    );
}

#[test]
fn durations_are_milliseconds_to_the_microsecond() {
    let mut h = harness(r#"{"fields": ["duration_ms", "upstream_ms"]}"#);
    let entry = LogEntry {
        total: Duration::from_nanos(1_500_123),
        upstream_time: Some(Duration::from_nanos(999)),
        ..LogEntry::default()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"duration_ms": 1.5, "upstream_ms": 0.0})
    );
    let entry = LogEntry {
        total: Duration::from_secs(61) + Duration::from_micros(234),
        upstream_time: None,
        ..LogEntry::default()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"duration_ms": 61_000.234, "upstream_ms": null})
    );
}

#[test]
fn bytes_in_is_null_without_a_body_and_bytes_out_always_a_number() {
    let mut h = harness(r#"{"fields": ["bytes_in", "bytes_out"]}"#);
    let entry = LogEntry {
        bytes_in: Some(2048),
        bytes_out: 0,
        ..LogEntry::default()
    };
    assert_eq!(
        fields(&mut h, &entry),
        json!({"bytes_in": 2048, "bytes_out": 0})
    );
    assert_eq!(
        fields(&mut h, &LogEntry::default()),
        json!({"bytes_in": null, "bytes_out": 0})
    );
}

#[test]
fn each_request_gets_its_own_line() {
    let mut h = harness(r#"{"fields": ["method", "path", "status"]}"#);
    for path in ["/one", "/two"] {
        let entry = LogEntry {
            method: Method::Delete,
            path: path.into(),
            status: 204,
            ..LogEntry::default()
        };
        h.on_log(&entry);
    }
    let lines: Vec<Json> = h
        .log_lines()
        .iter()
        .map(|line| {
            line.fields
                .iter()
                .map(|(name, value)| (name.clone(), json(value)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    assert_eq!(
        lines,
        [
            json!({"method": "DELETE", "path": "/one", "status": 204}),
            json!({"method": "DELETE", "path": "/two", "status": 204}),
        ]
    );
}
