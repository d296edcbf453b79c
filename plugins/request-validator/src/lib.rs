//! `request-validator`: refuses requests that do not fit the route's contract before
//! they reach the upstream: required headers and query parameters whose values must
//! match patterns, the body's content type, and a JSON body validated against a JSON
//! Schema given in the config.
//!
//! ```json
//! {"schema": {"type": "object", "required": ["user"],
//!             "properties": {"user": {"type": "object", "required": ["email"],
//!                                     "properties": {"email": {"type": "string", "format": "email"}}}}},
//!  "headers": {"x-api-version": "v[12]"},
//!  "query": {"dry_run": {"pattern": "true|false", "required": false}}}
//! ```
//!
//! A request that fails gets 400 `VALIDATION_ERROR` with every problem found (at most
//! [`MAX_FIELDS`]) in `data.fields`, each `{"field", "message"}`; `field` is a JSON
//! pointer into the body (`/user/email`), `body` for the body as a whole,
//! `header:NAME` or `query:NAME`:
//!
//! ```json
//! {"success":false,"error":"invalid request: 2 problems, the first: header:x-api-version is required",
//!  "code":"VALIDATION_ERROR",
//!  "data":{"fields":[{"field":"header:x-api-version","message":"is required"},
//!                    {"field":"/user/email","message":"\"email\" is a required property"}]},
//!  "request_id":"…","timestamp":"…"}
//! ```
//!
//! A request that passes goes on unchanged. Everything, the schema included, is
//! compiled and checked once when the route is loaded.

mod body;
mod params;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use wasmgate_plugin_sdk::{
    Action, Context, ErrorCode, Plugin, Request, Response, Settings, export_plugin, log,
};

use body::{ContentTypes, Schema, body_field};
use params::{Param, ParamRule, Place, query_values};

/// The most problems listed in `data.fields`; the message gives the total.
pub const MAX_FIELDS: usize = 20;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A JSON Schema the body must satisfy (parsed as JSON). Its draft comes from
    /// `$schema` (default 2020-12); `format` is asserted; `$ref`s must point inside it.
    #[serde(default)]
    schema: Option<serde_json::Value>,
    /// Whether a request must have a (non-empty) body. Default: `true` with a
    /// `schema`, else `false`.
    #[serde(default)]
    body_required: Option<bool>,
    /// The media types a body may have (`type/subtype` or `type/*`; parameters such
    /// as `charset` are ignored). Checked only when there is a body. Default:
    /// `["application/json"]` with a `schema`, else any.
    #[serde(default)]
    content_types: Option<Vec<String>>,
    /// Headers: name (any case) → pattern, or `{pattern, required}`.
    #[serde(default)]
    headers: BTreeMap<String, ParamRule>,
    /// Query parameters: name → pattern, or `{pattern, required}`.
    #[serde(default)]
    query: BTreeMap<String, ParamRule>,
}

/// The problems found in one request: the first [`MAX_FIELDS`] kept, all counted.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    fields: Vec<serde_json::Value>,
    first: Option<String>,
    total: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, field: String, message: String) {
        self.total += 1;
        if self.first.is_none() {
            self.first = Some(format!("{field} {message}"));
        }
        if self.fields.len() < MAX_FIELDS {
            self.fields
                .push(json!({"field": field, "message": message}));
        }
    }

    /// The 400 answer, or `None` when there is no problem.
    fn into_response(self, ctx: &Context) -> Option<Response> {
        let first = self.first?;
        let message = match self.total {
            1 => format!("invalid request: {first}"),
            n => format!("invalid request: {n} problems, the first: {first}"),
        };
        Some(Response::error_with_data(
            ErrorCode::ValidationError,
            &message,
            &json!({ "fields": self.fields }),
            ctx,
        ))
    }
}

/// Validates requests.
#[derive(Debug)]
pub struct RequestValidator {
    headers: Vec<Param>,
    query: Vec<Param>,
    content_types: Option<ContentTypes>,
    body_required: bool,
    schema: Option<Schema>,
}

impl Plugin for RequestValidator {
    type Config = Config;

    fn settings(&self) -> Settings {
        Settings {
            request_body: self.needs_body(),
            ..Settings::REQUEST_ONLY
        }
    }

    fn new(config: Config) -> Result<Self, String> {
        let schema = config.schema.as_ref().map(Schema::compile).transpose()?;
        let content_types = match config.content_types {
            Some(types) => Some(ContentTypes::new(types)?),
            None if schema.is_some() => Some(ContentTypes::new(vec!["application/json".into()])?),
            None => None,
        };
        let validator = Self {
            headers: Param::compile(config.headers, Place::Header, "headers")?,
            query: Param::compile(config.query, Place::Query, "query")?,
            content_types,
            body_required: config.body_required.unwrap_or(schema.is_some()),
            schema,
        };
        if !validator.needs_body() && validator.headers.is_empty() && validator.query.is_empty() {
            return Err(
                "nothing to check: give a schema, body_required, content_types, headers or query"
                    .into(),
            );
        }
        Ok(validator)
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let mut problems = Problems::default();
        if !self.headers.is_empty() {
            for param in &self.headers {
                let values = request.headers.get_all(&param.name);
                if let Some(message) = param.check(&values) {
                    problems.push(param.field(), message);
                }
            }
        }
        if !self.query.is_empty() {
            let query = request.query().unwrap_or_default();
            for param in &self.query {
                if let Some(message) = param.check(&query_values(&query, &param.name)) {
                    problems.push(param.field(), message);
                }
            }
        }
        if self.needs_body() {
            self.check_body(request, &mut problems);
        }
        match problems.into_response(ctx) {
            Some(response) => {
                log::debug(&format!(
                    "refused {} {}: invalid request",
                    request.method(),
                    request.path()
                ));
                Action::Respond(response)
            }
            None => Action::Continue,
        }
    }
}

impl RequestValidator {
    /// Whether any rule reads the body (then the gateway buffers it for the plugin).
    fn needs_body(&self) -> bool {
        self.schema.is_some() || self.body_required || self.content_types.is_some()
    }

    fn check_body(&self, request: &Request, problems: &mut Problems) {
        let body = request.body().unwrap_or_default();
        if body.is_empty() {
            if self.body_required {
                let what = if self.schema.is_some() {
                    "a JSON body"
                } else {
                    "a body"
                };
                problems.push("body".into(), format!("{what} is required"));
            }
            return;
        }
        if let Some(types) = &self.content_types
            && let Some(message) = types.check(&request.headers.get_all("content-type"))
        {
            // A body that is not declared as JSON is not read as JSON either: the
            // upstream would read it by its declared type.
            problems.push("header:content-type".into(), message);
            return;
        }
        let Some(schema) = &self.schema else {
            return;
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(value) => schema.check(&value, problems),
            Err(e) => problems.push(body_field(String::new()), format!("is not valid JSON: {e}")),
        }
    }
}

export_plugin!(RequestValidator);

#[cfg(test)]
mod tests;
