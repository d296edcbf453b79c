//! Test guest for the log phase and structured log fields: asks for `on_log` and
//! writes `guest_log` with the entry's `status`, `failure` (its code), `failure_kind`,
//! `answered_by`, `service` and `bytes_out` (`""` for what the entry lacks); the
//! gateway tags the line with the entry's request id and route itself. A request with `x-fields: 1` also makes it write `guest_fields`
//! in `on_request`, with one field of each type.

use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, LogEntry, NoConfig, Plugin, Request, Settings, export_plugin,
};

struct Logger;

impl Plugin for Logger {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Logger)
    }

    fn settings(&self) -> Settings {
        Settings {
            log: true,
            request_only: true,
            ..Settings::default()
        }
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        if request.headers.get("x-fields").as_deref() == Some("1") {
            log::event(
                Level::Info,
                "guest_fields",
                &[
                    ("user", "alice".into()),
                    ("attempt", 3i64.into()),
                    ("ok", true.into()),
                    ("ratio", 0.5.into()),
                ],
            );
        }
        Action::Continue
    }

    fn on_log(&self, entry: &LogEntry) {
        let failure = entry.failure.as_ref();
        log::event(
            Level::Info,
            "guest_log",
            &[
                ("status", entry.status.into()),
                ("failure", failure.map_or("", |f| f.code.as_str()).into()),
                (
                    "failure_kind",
                    failure.map_or("", |f| f.kind.as_str()).into(),
                ),
                (
                    "answered_by",
                    entry.answered_by.as_deref().unwrap_or("").into(),
                ),
                (
                    "service",
                    entry
                        .upstream
                        .as_ref()
                        .map_or("", |u| u.service.as_str())
                        .into(),
                ),
                ("bytes_out", entry.bytes_out.into()),
            ],
        );
    }
}

export_plugin!(Logger);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::log::Value;
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};
    use wasmgate_plugin_sdk::{Failure, FailureKind, UpstreamCall};

    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// The fields of the one line `on_log` writes for `entry`.
    fn logged(entry: &LogEntry) -> Vec<(String, Value)> {
        let mut harness = Harness::<Logger>::new("{}").unwrap();
        harness.on_log(entry);
        let lines = harness.log_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].level, lines[0].message.as_str()),
            (Level::Info, "guest_log")
        );
        lines[0].fields.clone()
    }

    fn fields(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn logs_a_proxied_request() {
        let entry = LogEntry {
            request_id: "req-1".into(),
            route: "logged".into(),
            status: 200,
            bytes_out: 42,
            upstream: Some(UpstreamCall::new("echo", "http://127.0.0.1:9000")),
            ..LogEntry::default()
        };
        assert_eq!(
            logged(&entry),
            fields(&[
                ("status", Value::Int(200)),
                ("failure", text("")),
                ("failure_kind", text("")),
                ("answered_by", text("")),
                ("service", text("echo")),
                ("bytes_out", Value::Int(42)),
            ])
        );
    }

    #[test]
    fn logs_a_failure_and_an_answer() {
        let failed = LogEntry {
            status: 500,
            failure: Some(Failure {
                kind: FailureKind::PluginTrap,
                code: "PLUGIN_ERROR".into(),
                plugin: Some("panic".into()),
            }),
            upstream: None,
            ..LogEntry::default()
        };
        let line = logged(&failed);
        assert_eq!(line[0], ("status".into(), Value::Int(500)));
        assert_eq!(line[1], ("failure".into(), text("PLUGIN_ERROR")));
        assert_eq!(line[2], ("failure_kind".into(), text("plugin_trap")));
        assert_eq!(line[4], ("service".into(), text("")));

        let answered = LogEntry {
            status: 403,
            answered_by: Some("deny".into()),
            upstream: None,
            bytes_out: 99,
            ..LogEntry::default()
        };
        let line = logged(&answered);
        assert_eq!(line[3], ("answered_by".into(), text("deny")));
        assert_eq!(line[5], ("bytes_out".into(), Value::Int(99)));
    }

    #[test]
    fn x_fields_writes_one_field_of_each_type() {
        let mut harness = Harness::<Logger>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::get("/").header("x-fields", "1"));
        assert!(outcome.continues());
        let lines = harness.log_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "guest_fields");
        assert_eq!(
            lines[0].fields,
            fields(&[
                ("user", text("alice")),
                ("attempt", Value::Int(3)),
                ("ok", Value::Flag(true)),
                ("ratio", Value::Float(0.5)),
            ])
        );
        harness.on_request(TestRequest::get("/").header("x-fields", "0"));
        harness.on_request(TestRequest::get("/"));
        assert_eq!(harness.log_lines().len(), 1, "only with the trigger");
    }
}
