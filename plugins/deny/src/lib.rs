//! `deny`: answers with a configured status and the gateway's error envelope when a
//! request matches one of its rules, and passes every other request on.
//!
//! ```json
//! {"rules": [{"methods": ["DELETE"], "path_prefix": "/admin"},
//!            {"header": {"name": "x-debug", "value": "1"}}],
//!  "status": 403, "code": "FORBIDDEN", "message": "blocked by policy"}
//! ```
//!
//! Rules are OR'ed: the first rule that matches denies. The conditions inside a rule
//! are AND'ed, and a condition left out always holds, so `{}` matches every request.

use serde::Deserialize;
use wasmgate_plugin_sdk::{
    Action, Context, ErrorCode, Headers, Method, Plugin, Request, Response, Settings,
    export_plugin, log, paths,
};

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// When to deny: any one rule matching is enough. At least one rule.
    rules: Vec<Rule>,
    /// The status of the answer, 400 to 599. Default 403.
    #[serde(default = "default_status")]
    status: u16,
    /// The envelope's `code`, upper-case letters, digits and `_`. Default: the usual
    /// code for `status` (403 `FORBIDDEN`, 401 `UNAUTHORIZED`, 429 `RATE_LIMITED`, …),
    /// else `FORBIDDEN`.
    #[serde(default)]
    code: Option<String>,
    /// The envelope's `error` message for the client. Default "request denied".
    #[serde(default = "default_message")]
    message: String,
}

/// One rule: every condition it gives must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// The request's method is one of these (case-insensitive).
    #[serde(default)]
    methods: Vec<String>,
    /// The request's path is exactly this.
    #[serde(default)]
    path: Option<String>,
    /// The request's path is this or below it, segment-wise: `/admin` matches
    /// `/admin` and `/admin/users`, not `/administrator`.
    #[serde(default)]
    path_prefix: Option<String>,
    /// The request has this header, or has it with this exact value.
    #[serde(default)]
    header: Option<HeaderCondition>,
}

/// A header condition: `name` (case-insensitive) is present, or, with `value`, one of
/// its values equals `value` exactly (case-sensitive).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderCondition {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

fn default_status() -> u16 {
    403
}

fn default_message() -> String {
    "request denied".into()
}

impl Rule {
    /// Checks the rule's conditions and normalises methods to upper case.
    fn check(mut self, index: usize) -> Result<Self, String> {
        for method in &mut self.methods {
            if !Headers::is_valid_name(method) {
                return Err(format!(
                    "rules[{index}].methods: {method:?} is not a method"
                ));
            }
            method.make_ascii_uppercase();
        }
        for (field, path) in [("path", &self.path), ("path_prefix", &self.path_prefix)] {
            if let Some(path) = path
                && !path.starts_with('/')
            {
                return Err(format!(
                    "rules[{index}].{field}: {path:?} must start with '/'"
                ));
            }
        }
        if let Some(header) = &self.header
            && !Headers::is_valid_name(&header.name)
        {
            return Err(format!(
                "rules[{index}].header.name: {:?} is not a valid header name",
                header.name
            ));
        }
        Ok(self)
    }

    /// Whether the request matches. The header, the one condition that costs a call
    /// to the gateway, is read last and only when the others hold.
    fn matches(&self, method: &Method, path: &str, headers: &Headers) -> bool {
        (self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method.as_str())))
            && self.path.as_ref().is_none_or(|p| paths::is_same(path, p))
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|prefix| paths::is_under(path, prefix))
            && self
                .header
                .as_ref()
                .is_none_or(|header| match &header.value {
                    Some(value) => headers
                        .get_all_bytes(&header.name)
                        .iter()
                        .any(|v| v == value.as_bytes()),
                    None => headers.contains(&header.name),
                })
    }
}

/// Refuses matching requests.
pub struct Deny {
    rules: Vec<Rule>,
    status: u16,
    code: String,
    message: String,
}

impl Plugin for Deny {
    type Config = Config;

    fn settings(&self) -> Settings {
        Settings::REQUEST_ONLY
    }

    fn new(config: Config) -> Result<Self, String> {
        if !(400..=599).contains(&config.status) {
            return Err(format!(
                "status: {} must be between 400 and 599",
                config.status
            ));
        }
        if config.rules.is_empty() {
            return Err(
                "rules: empty, so nothing would be denied; `[{}]` denies every request".into(),
            );
        }
        let code = match config.code {
            Some(code) => code,
            None => ErrorCode::for_status(config.status)
                .unwrap_or(ErrorCode::Forbidden)
                .as_str()
                .to_string(),
        };
        if code.is_empty()
            || !code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "code: {code:?} must be upper-case letters, digits and '_', e.g. FORBIDDEN"
            ));
        }
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| rule.check(index))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            status: config.status,
            code,
            message: config.message,
        })
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let (method, path) = (request.method(), request.path());
        let matched = self
            .rules
            .iter()
            .position(|rule| rule.matches(&method, &path, &request.headers));
        match matched {
            Some(index) => {
                log::debug(&format!("denied {method} {path} by rule {index}"));
                Action::Respond(Response::error(self.status, &self.code, &self.message, ctx))
            }
            None => Action::Continue,
        }
    }
}

export_plugin!(Deny);

#[cfg(test)]
mod tests;
