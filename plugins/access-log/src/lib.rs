//! `access-log`: writes one JSON object per request into the gateway's log, at info
//! level, through the `log` import: when the request came, who sent it, where it went,
//! what came back and how long it took.
//!
//! ```json
//! {"timestamp":"2026-01-01T00:00:00.250Z","request_id":"…","trace_id":"…","method":"GET",
//!  "path":"/users/42","route":"users","status":200,"duration_ms":250.0,"consumer":"alice",
//!  "user":null,"service":"users","endpoint":"http://127.0.0.1:9001","bytes_in":null,
//!  "bytes_out":512,"client":"127.0.0.1:50412"}
//! ```
//!
//! The line is written in `on_response`. The plugin keeps nothing between calls (the
//! two phases of a request may run on different instances): what only the request
//! phase sees, the request's `Content-Length`, travels to the response phase in the
//! chain variable [`BYTES_IN_VAR`].

mod config;

use wasmgate_plugin_sdk::{Action, Context, Plugin, Request, Response, clock, export_plugin, log};

pub use config::{Config, Field};

/// The chain variable that carries the request's `Content-Length` from `on_request`
/// to `on_response`.
pub const BYTES_IN_VAR: &str = "access_log.bytes_in";

/// The access logger of one route.
pub struct AccessLog {
    fields: Vec<Field>,
    consumer_var: String,
    user_var: String,
    message_prefix: String,
}

impl Plugin for AccessLog {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            fields: config.fields,
            consumer_var: config.consumer_var,
            user_var: config.user_var,
            message_prefix: config.message_prefix,
        })
    }

    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        if self.fields.contains(&Field::BytesIn)
            && let Some(length) = content_length(&request.headers)
        {
            ctx.set_var(BYTES_IN_VAR, &length.to_string());
        }
        Action::Continue(request)
    }

    fn on_response(&self, response: Response, ctx: &mut Context) -> Response {
        log::info(&self.line(&response, ctx));
        response
    }
}

impl AccessLog {
    /// The log message: the prefix and one JSON object with the configured fields in
    /// order (built by hand, as `serde_json` maps do not keep order).
    fn line(&self, response: &Response, ctx: &Context) -> String {
        let mut line = String::with_capacity(384);
        line.push_str(&self.message_prefix);
        line.push('{');
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push('"');
            line.push_str(field.name());
            line.push_str("\":");
            line.push_str(&self.value(*field, response, ctx).to_string());
        }
        line.push('}');
        line
    }

    /// One field's value; `null` when the request has none.
    fn value(&self, field: Field, response: &Response, ctx: &Context) -> serde_json::Value {
        use serde_json::Value;
        let text = |s: Option<&str>| s.map_or(Value::Null, Value::from);
        let upstream = ctx.upstream.as_ref();
        match field {
            Field::Timestamp => clock::rfc3339_utc(clock::now_unix_ms()).into(),
            Field::RequestId => ctx.request_id.as_str().into(),
            Field::TraceId => ctx.trace_id.as_str().into(),
            Field::Method => ctx.method.as_str().into(),
            Field::Path => ctx.path.as_str().into(),
            Field::Route => ctx.route.as_str().into(),
            Field::Status => response.status.into(),
            Field::DurationMs => {
                // Microsecond precision, in milliseconds.
                let micros = u64::try_from(ctx.elapsed().as_micros()).unwrap_or(u64::MAX);
                (micros as f64 / 1000.0).into()
            }
            Field::Consumer => text(ctx.var(&self.consumer_var)),
            Field::User => text(ctx.var(&self.user_var)),
            Field::Service => text(upstream.map(|u| u.service.as_str())),
            Field::Endpoint => text(upstream.map(|u| u.endpoint.as_str())),
            Field::BytesIn => ctx
                .var(BYTES_IN_VAR)
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(Value::Null, Value::from),
            Field::BytesOut => content_length(&response.headers)
                .or_else(|| response.body.as_ref().map(|body| body.len() as u64))
                .map_or(Value::Null, Value::from),
            Field::Client => ctx.client_addr.as_str().into(),
        }
    }
}

/// A valid `Content-Length`, if the message has one.
fn content_length(headers: &wasmgate_plugin_sdk::Headers) -> Option<u64> {
    let value = headers.get("content-length")?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

export_plugin!(AccessLog);

#[cfg(test)]
mod tests;
