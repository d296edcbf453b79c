//! `respond`: answers requests itself with a static response from its config: a
//! status, headers and a JSON or text body, with the request id, method and path
//! available as placeholders. For info pages on `GET /`, maintenance mode and
//! redirects; with `methods` / `paths` conditions it answers only those requests and
//! passes every other one on.
//!
//! ```json
//! {"methods": ["GET"], "paths": ["/"],
//!  "json": {"name": "shop-api", "version": "1.4.0", "status": "running",
//!           "request_id": "{request_id}"}}
//! ```
//!
//! ```json
//! {"status": 503, "headers": {"retry-after": "600"},
//!  "json": {"success": false, "error": "down for maintenance", "request_id": "{request_id}"}}
//! ```
//!
//! ```json
//! {"redirect": "https://example.com/docs", "status": 301}
//! ```
//!
//! Placeholders (`{request_id}`, `{method}`, `{path}`) are filled in per request in
//! the body and header values; inside a JSON body a value is escaped as a JSON string,
//! so a path cannot add JSON of its own. Any other text in braces stays as written.
//! Everything is checked when the route is loaded.

mod template;

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Request, Response, Settings, export_plugin, paths,
};

use template::{Escape, Placeholder, Template, Values};

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The answer's status, 200 to 599. Default 200, or 302 with `redirect`.
    #[serde(default)]
    status: Option<u16>,
    /// Response headers, name → value (placeholders allowed in values). A
    /// `content-type` here replaces the body's own.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// A JSON body (any JSON value), sent as `application/json`.
    #[serde(default)]
    json: Option<serde_json::Value>,
    /// A text body, sent as `text/plain; charset=utf-8`.
    #[serde(default)]
    text: Option<String>,
    /// Shorthand for a redirect: the `location` header; the status defaults to 302
    /// and must be 301, 302, 303, 307 or 308.
    #[serde(default)]
    redirect: Option<String>,
    /// Answer only requests with one of these methods (case-insensitive); others
    /// pass on. Default: every method.
    #[serde(default)]
    methods: Vec<String>,
    /// Answer only requests for exactly one of these paths (letters in any case, one
    /// trailing slash ignored); others pass on. Default: every path.
    #[serde(default)]
    paths: Vec<String>,
}

/// The statuses that redirect, and so need a `location`.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// The body of the answer.
#[derive(Debug)]
enum Body {
    None,
    /// Serialised JSON; placeholders can only sit inside its strings.
    Json(Template),
    Text(Template),
}

/// Answers with a configured response.
pub struct Respond {
    status: u16,
    /// (lower-case name, value), in name order.
    headers: Vec<(String, Template)>,
    body: Body,
    /// Upper-case methods; empty for every method.
    methods: Vec<String>,
    /// Empty for every path.
    paths: Vec<String>,
    /// Whether a template holds `{path}` (each value is a call to the gateway, made
    /// only when needed).
    uses_path: bool,
    /// Whether a template holds `{request_id}`.
    uses_request_id: bool,
    /// Whether a template holds `{method}`.
    uses_method: bool,
}

impl Respond {
    /// Every template of the answer.
    fn templates(&self) -> impl Iterator<Item = &Template> {
        let body = match &self.body {
            Body::Json(template) | Body::Text(template) => Some(template),
            Body::None => None,
        };
        self.headers.iter().map(|(_, value)| value).chain(body)
    }
}

/// Checks the headers of the config: valid names and values, none the gateway sets,
/// none twice.
fn check_headers(headers: BTreeMap<String, String>) -> Result<Vec<(String, Template)>, String> {
    let mut checked: Vec<(String, Template)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if !Headers::is_valid_name(&name) {
            return Err(format!("headers: {name:?} is not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if Headers::is_reserved(&lower) || lower == "content-length" {
            return Err(format!(
                "headers: {lower} is the gateway's to set, from the body and the connection"
            ));
        }
        if checked.iter().any(|(n, _)| *n == lower) {
            return Err(format!(
                "headers: {lower} is given twice (names ignore case)"
            ));
        }
        let template = Template::parse(&value);
        // The placeholders' values are valid header text (an id of visible ASCII, a
        // token, a normalised path), so checking the literal text is enough.
        if !Headers::is_valid_value(template.literal_text().as_bytes()) {
            return Err(format!(
                "headers.{lower}: the value holds a control character"
            ));
        }
        checked.push((lower, template));
    }
    Ok(checked)
}

impl Plugin for Respond {
    type Config = Config;

    fn settings(&self) -> Settings {
        Settings::REQUEST_ONLY
    }

    fn new(config: Config) -> Result<Self, String> {
        let status = config
            .status
            .unwrap_or(if config.redirect.is_some() { 302 } else { 200 });
        if !(200..=599).contains(&status) {
            return Err(format!("status: {status} must be between 200 and 599"));
        }
        let mut headers = check_headers(config.headers)?;
        if let Some(location) = config.redirect {
            if !REDIRECTS.contains(&status) {
                return Err(format!(
                    "status: {status} does not redirect; with `redirect` use 301, 302, 303, 307 or 308"
                ));
            }
            if headers.iter().any(|(name, _)| name == "location") {
                return Err(
                    "redirect: the location is given twice, in `redirect` and in `headers`".into(),
                );
            }
            if location.is_empty() || !Headers::is_valid_value(location.as_bytes()) {
                return Err(format!(
                    "redirect: {location:?} is not a valid location (empty or a control character)"
                ));
            }
            headers.push(("location".into(), Template::parse(&location)));
        }
        if REDIRECTS.contains(&status) && !headers.iter().any(|(name, _)| name == "location") {
            return Err(format!(
                "status: {status} is a redirect without a location; set `redirect` (or a `location` header)"
            ));
        }
        let body = match (config.json, config.text) {
            (Some(_), Some(_)) => {
                return Err("json and text: give one body, not both".into());
            }
            (Some(json), None) => Body::Json(Template::parse(
                &serde_json::to_string(&json).map_err(|e| format!("json: {e}"))?,
            )),
            (None, Some(text)) => Body::Text(Template::parse(&text)),
            (None, None) => Body::None,
        };
        if matches!(status, 204 | 304) && !matches!(body, Body::None) {
            return Err(format!("status: a {status} response has no body"));
        }
        let default_type = match body {
            Body::Json(_) => Some("application/json"),
            Body::Text(_) => Some("text/plain; charset=utf-8"),
            Body::None => None,
        };
        if let Some(content_type) = default_type
            && !headers.iter().any(|(name, _)| name == "content-type")
        {
            headers.push(("content-type".into(), Template::parse(content_type)));
        }
        let mut methods = config.methods;
        for method in &mut methods {
            if !Headers::is_valid_name(method) {
                return Err(format!("methods: {method:?} is not a method"));
            }
            method.make_ascii_uppercase();
        }
        if let Some(path) = config.paths.iter().find(|path| !path.starts_with('/')) {
            return Err(format!("paths: {path:?} must start with '/'"));
        }
        let mut respond = Self {
            status,
            headers,
            body,
            methods,
            paths: config.paths,
            uses_path: false,
            uses_request_id: false,
            uses_method: false,
        };
        let (uses_path, uses_request_id, uses_method) = {
            let uses = |placeholder| respond.templates().any(|t| t.uses(placeholder));
            (
                uses(Placeholder::Path),
                uses(Placeholder::RequestId),
                uses(Placeholder::Method),
            )
        };
        respond.uses_path = uses_path;
        respond.uses_request_id = uses_request_id;
        respond.uses_method = uses_method;
        Ok(respond)
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let mut values = Values::default();
        if !self.methods.is_empty() || self.uses_method {
            let method = request.method();
            if !self.methods.is_empty()
                && !self
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(method.as_str()))
            {
                return Action::Continue;
            }
            values.method = method.as_str().to_string();
        }
        if !self.paths.is_empty() || self.uses_path {
            let path = request.path();
            if !self.paths.is_empty() && !self.paths.iter().any(|p| paths::is_same(&path, p)) {
                return Action::Continue;
            }
            values.path = path;
        }
        if self.uses_request_id {
            values.request_id = ctx.request_id();
        }
        let mut response = Response::new(self.status);
        for (name, value) in &self.headers {
            response
                .headers
                .append(name, value.render(&values, Escape::None));
        }
        response.body = match &self.body {
            Body::None => None,
            Body::Json(template) => Some(template.render(&values, Escape::JsonString)),
            Body::Text(template) => Some(template.render(&values, Escape::None)),
        }
        .map(String::into_bytes);
        Action::Respond(response)
    }
}

export_plugin!(Respond);

#[cfg(test)]
mod tests;
