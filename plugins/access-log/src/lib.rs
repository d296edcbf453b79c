//! `access-log`: one line per request in the gateway's log, at info level, written in
//! the log phase from the gateway's [`LogEntry`]: who sent the request, where it went,
//! what came back, how long it took and, when it failed, what failed.
//!
//! The line is a [`log::event`] whose message is `message_prefix` (default `access`)
//! and whose fields are the configured [`Field`]s, typed (numbers, booleans, text,
//! `null`). With `LOG_FORMAT=json` each one is a field of the gateway's JSON line, next
//! to the gateway's own `timestamp`, `plugin`, `route`, `request_id` and `trace_id`; on
//! the console they follow the message as `name=value`:
//!
//! ```text
//! access method=POST path=/users/42 status=201 duration_ms=250.0 consumer=mobile-app …
//! ```
//!
//! Fields rather than a JSON object in the message: a log pipeline indexes and filters
//! them as they come (`status >= 500`, `failure_kind = "plugin_timeout"`) without
//! parsing the message a second time, and the line is not written twice.
//!
//! The plugin does nothing in the request and response phases
//! ([`Settings::request_only`], and `on_request` passes): the gateway calls `on_log`
//! after the client has its answer, for every request on the route, so the line also
//! covers requests that a plugin answered or failed and the gateway's own 502 and 504,
//! whatever the plugin's place in the chain.

mod config;

use wasmgate_plugin_sdk::log::{self, Level, Value};
use wasmgate_plugin_sdk::{LogEntry, Plugin, Settings, export_plugin};

pub use config::{Config, Field};

/// A field with no value. The `log` import writes a non-finite number as `null`, so a
/// line of a route always has the same keys.
const NULL: Value = Value::Float(f64::NAN);

/// The access logger of one route.
pub struct AccessLog {
    /// The fields this plugin writes, in order (those the gateway writes on every
    /// line itself left out).
    fields: Vec<Field>,
    consumer_var: String,
    user_var: String,
    message: String,
}

impl Plugin for AccessLog {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            fields: config
                .fields
                .into_iter()
                .filter(|field| !field.is_on_every_line())
                .collect(),
            consumer_var: config.consumer_var,
            user_var: config.user_var,
            message: config.message_prefix.trim().to_string(),
        })
    }

    /// Only the log phase: nothing to do while the request is served.
    fn settings(&self) -> Settings {
        Settings {
            log: true,
            request_only: true,
            ..Settings::default()
        }
    }

    fn on_log(&self, entry: &LogEntry) {
        let fields: Vec<(&str, Value)> = self
            .fields
            .iter()
            .map(|&field| (field.name(), self.value(field, entry)))
            .collect();
        log::event(Level::Info, &self.message, &fields);
    }
}

impl AccessLog {
    /// One field's value; [`NULL`] when the request has none.
    fn value(&self, field: Field, entry: &LogEntry) -> Value {
        let text = |s: Option<&str>| s.map_or(NULL, Value::from);
        let upstream = entry.upstream.as_ref();
        let failure = entry.failure.as_ref();
        match field {
            Field::Method => entry.method.as_str().into(),
            Field::Path => entry.path.as_str().into(),
            Field::Status => entry.status.into(),
            Field::DurationMs => millis(entry.total),
            Field::Consumer => text(entry.var(&self.consumer_var)),
            Field::User => text(entry.var(&self.user_var)),
            Field::Service => text(upstream.map(|u| u.service.as_str())),
            Field::Endpoint => text(upstream.map(|u| u.endpoint.as_str())),
            Field::BytesIn => entry.bytes_in.map_or(NULL, Value::from),
            Field::BytesOut => entry.bytes_out.into(),
            Field::Client => entry.client_addr.as_str().into(),
            Field::AnsweredBy => text(entry.answered_by.as_deref()),
            Field::Failure => text(failure.map(|f| f.code.as_str())),
            Field::FailureKind => text(failure.map(|f| f.kind.as_str())),
            Field::FailedPlugin => text(failure.and_then(|f| f.plugin.as_deref())),
            Field::UpstreamMs => entry.upstream_time.map_or(NULL, millis),
            Field::Complete => entry.complete.into(),
            // On every line of the gateway's already; left out in `new`.
            Field::Timestamp | Field::RequestId | Field::TraceId | Field::Route => NULL,
        }
    }
}

/// `duration` in milliseconds, to the microsecond.
fn millis(duration: std::time::Duration) -> Value {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    Value::Float(micros as f64 / 1000.0)
}

export_plugin!(AccessLog);

#[cfg(test)]
mod tests;
