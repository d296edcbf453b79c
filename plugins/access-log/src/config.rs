//! The plugin's config as written on a route, the fields a line can hold, and the
//! checks `new` runs.

use serde::Deserialize;

/// The plugin's config; `{}` logs every field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `"fields": ["timestamp", "status", …]`: the fields of each line, in order.
    #[serde(default = "Field::all")]
    pub(crate) fields: Vec<Field>,
    /// `"consumer_var": "consumer"`: the variable `consumer` is read from.
    #[serde(default = "default_consumer_var")]
    pub(crate) consumer_var: String,
    /// `"user_var": "user_id"`: the variable `user` is read from.
    #[serde(default = "default_user_var")]
    pub(crate) user_var: String,
    /// `"message_prefix": "access "`: text before the JSON object.
    #[serde(default)]
    pub(crate) message_prefix: String,
}

fn default_consumer_var() -> String {
    "consumer".into()
}

fn default_user_var() -> String {
    "user_id".into()
}

impl Config {
    /// Refuses an empty or repeated field list, an empty variable name and a prefix
    /// that would break the line.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("fields: the list is empty; leave `fields` out to log every field".into());
        }
        for (i, field) in self.fields.iter().enumerate() {
            if self.fields[..i].contains(field) {
                return Err(format!("fields: `{}` is listed twice", field.name()));
            }
        }
        for (key, name) in [
            ("consumer_var", &self.consumer_var),
            ("user_var", &self.user_var),
        ] {
            if name.is_empty() {
                return Err(format!("{key}: a variable name cannot be empty"));
            }
        }
        if self.message_prefix.chars().any(char::is_control) {
            return Err(
                "message_prefix: control characters (e.g. a newline) are not allowed".into(),
            );
        }
        Ok(())
    }
}

/// One field of a line. Its name in `fields` and in the line is [`Field::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// When the line was written, RFC 3339 UTC with milliseconds.
    Timestamp,
    /// The request id (`X-Request-Id`).
    RequestId,
    /// The W3C trace id.
    TraceId,
    /// The method as received.
    Method,
    /// The normalised path as received, without the query.
    Path,
    /// The matched route's name.
    Route,
    /// The response status.
    Status,
    /// Milliseconds from receiving the request to this plugin's response phase.
    DurationMs,
    /// The variable named by `consumer_var`.
    Consumer,
    /// The variable named by `user_var`.
    User,
    /// The upstream service that answered.
    Service,
    /// The upstream endpoint that answered.
    Endpoint,
    /// The request's `Content-Length`.
    BytesIn,
    /// The response's `Content-Length`, else the length of its body when the plugin
    /// sees it.
    BytesOut,
    /// The client's address, `ip:port`.
    Client,
}

impl Field {
    /// Every field, in the default order.
    pub const ALL: [Field; 15] = [
        Self::Timestamp,
        Self::RequestId,
        Self::TraceId,
        Self::Method,
        Self::Path,
        Self::Route,
        Self::Status,
        Self::DurationMs,
        Self::Consumer,
        Self::User,
        Self::Service,
        Self::Endpoint,
        Self::BytesIn,
        Self::BytesOut,
        Self::Client,
    ];

    fn all() -> Vec<Field> {
        Self::ALL.to_vec()
    }

    /// The field's name, in the config and as the key in the line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::RequestId => "request_id",
            Self::TraceId => "trace_id",
            Self::Method => "method",
            Self::Path => "path",
            Self::Route => "route",
            Self::Status => "status",
            Self::DurationMs => "duration_ms",
            Self::Consumer => "consumer",
            Self::User => "user",
            Self::Service => "service",
            Self::Endpoint => "endpoint",
            Self::BytesIn => "bytes_in",
            Self::BytesOut => "bytes_out",
            Self::Client => "client",
        }
    }
}
