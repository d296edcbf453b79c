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
    /// `"message_prefix": "access"`: the message of each line, before its fields on
    /// the console and the `message` of a JSON line: what to grep or filter for.
    /// Leading and trailing spaces are dropped.
    #[serde(default = "default_message_prefix")]
    pub(crate) message_prefix: String,
}

fn default_message_prefix() -> String {
    "access".into()
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
///
/// `timestamp`, `request_id`, `trace_id` and `route` are written by the gateway on
/// every plugin log line (and a plugin's own field of that name would be dropped), so
/// the plugin does not write them again: listing them changes nothing
/// ([`Field::is_on_every_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// When the line was written (after the response was sent), the gateway's
    /// timestamp of the line.
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
    /// The status the client got.
    Status,
    /// Milliseconds from receiving the request to the end of the response body.
    DurationMs,
    /// The variable named by `consumer_var`.
    Consumer,
    /// The variable named by `user_var`.
    User,
    /// The upstream service that answered.
    Service,
    /// The upstream endpoint that answered.
    Endpoint,
    /// Request body bytes read from the client; `null` when it sent none.
    BytesIn,
    /// Response body bytes sent to the client.
    BytesOut,
    /// The client's address, `ip:port`.
    Client,
    /// The plugin that answered the request itself.
    AnsweredBy,
    /// The error code the client got when the request failed (`PLUGIN_ERROR`,
    /// `BAD_GATEWAY`, `GATEWAY_TIMEOUT`…).
    Failure,
    /// What failed (`plugin_trap`, `plugin_timeout`, `upstream_unreachable`…).
    FailureKind,
    /// The plugin that failed, for plugin failures.
    FailedPlugin,
    /// Milliseconds from sending the request upstream to the upstream's response head.
    UpstreamMs,
    /// Whether the client got the whole response body.
    Complete,
}

impl Field {
    /// Every field, in the default order.
    pub const ALL: [Field; 21] = [
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
        Self::AnsweredBy,
        Self::Failure,
        Self::FailureKind,
        Self::FailedPlugin,
        Self::UpstreamMs,
        Self::Complete,
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
            Self::AnsweredBy => "answered_by",
            Self::Failure => "failure",
            Self::FailureKind => "failure_kind",
            Self::FailedPlugin => "failed_plugin",
            Self::UpstreamMs => "upstream_ms",
            Self::Complete => "complete",
        }
    }

    /// Whether the gateway writes this field on every plugin log line itself, so the
    /// plugin leaves it out.
    pub fn is_on_every_line(self) -> bool {
        matches!(
            self,
            Self::Timestamp | Self::RequestId | Self::TraceId | Self::Route
        )
    }
}
