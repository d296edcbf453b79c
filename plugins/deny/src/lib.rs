//! `deny`: answers with a configured status and the gateway's error envelope when a
//! request matches one of its rules. Rules are OR'ed; the conditions inside a rule are
//! AND'ed; a rule with no conditions matches everything.

use serde::Deserialize;
use wasmgate_plugin_sdk::{
    Action, Context, ErrorCode, Headers, Plugin, Request, Response, export_plugin,
};

/// A header condition: present, or equal to `value` (case-sensitive).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderRule {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

/// One rule: every condition given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// Match only these methods (case-insensitive).
    #[serde(default)]
    methods: Vec<String>,
    /// Match exactly this path.
    #[serde(default)]
    path: Option<String>,
    /// Match paths under this prefix, segment-wise (`/admin` matches `/admin/x`, not `/administrator`).
    #[serde(default)]
    path_prefix: Option<String>,
    /// Match a header.
    #[serde(default)]
    header: Option<HeaderRule>,
}

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    rules: Vec<Rule>,
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default)]
    code: Option<String>,
    #[serde(default = "default_message")]
    message: String,
}

fn default_status() -> u16 {
    403
}

fn default_message() -> String {
    "request denied".into()
}

impl Rule {
    fn matches(&self, request: &Request) -> bool {
        (self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&request.method)))
            && self.path.as_ref().is_none_or(|p| *p == request.path)
            && self.path_prefix.as_ref().is_none_or(|prefix| {
                let prefix = prefix.trim_end_matches('/');
                request
                    .path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            && self.header.as_ref().is_none_or(|h| match &h.value {
                Some(value) => request.headers.get_all(&h.name).any(|v| v == value),
                None => request.headers.contains(&h.name),
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

    fn new(config: Config) -> Result<Self, String> {
        if !(400..=599).contains(&config.status) {
            return Err(format!(
                "status {} must be between 400 and 599",
                config.status
            ));
        }
        for rule in &config.rules {
            if let Some(header) = &rule.header
                && !Headers::is_valid_name(&header.name)
            {
                return Err(format!("{:?} is not a valid header name", header.name));
            }
            for path in rule.path.iter().chain(&rule.path_prefix) {
                if !path.starts_with('/') {
                    return Err(format!("path {path:?} must start with '/'"));
                }
            }
        }
        let code = config.code.unwrap_or_else(|| {
            match config.status {
                400 => ErrorCode::ValidationError,
                401 => ErrorCode::Unauthorized,
                404 => ErrorCode::NotFound,
                429 => ErrorCode::RateLimited,
                _ => ErrorCode::Forbidden,
            }
            .as_str()
            .to_string()
        });
        Ok(Self {
            rules: config.rules,
            status: config.status,
            code,
            message: config.message,
        })
    }

    fn on_request(&self, request: Request, ctx: &mut Context) -> Action {
        if self.rules.iter().any(|rule| rule.matches(&request)) {
            Action::Respond(Response::error(self.status, &self.code, &self.message, ctx))
        } else {
            Action::Continue(request)
        }
    }
}

export_plugin!(Deny);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    fn denied(h: &mut Harness<Deny>, request: TestRequest) -> Option<serde_json::Value> {
        match h.on_request(request.build()) {
            Action::Respond(response) => {
                assert_eq!(
                    response.headers.get("content-type"),
                    Some("application/json")
                );
                Some(serde_json::from_slice(response.body.as_deref().unwrap()).unwrap())
            }
            Action::Continue(_) => None,
        }
    }

    #[test]
    fn rules_are_ored_and_conditions_anded() {
        let mut h = Harness::<Deny>::new(
            r#"{"rules": [{"methods": ["delete"], "path_prefix": "/admin"},
                          {"header": {"name": "X-Debug", "value": "1"}}],
                "status": 451, "code": "BLOCKED", "message": "no"}"#,
        )
        .unwrap();
        let envelope = denied(&mut h, TestRequest::delete("/admin/users")).expect("denied");
        assert_eq!(envelope["code"], "BLOCKED");
        assert_eq!(envelope["error"], "no");
        assert_eq!(envelope["success"], false);
        assert_eq!(envelope["request_id"], "test-request-1");
        assert!(denied(&mut h, TestRequest::get("/admin/users")).is_none());
        assert!(denied(&mut h, TestRequest::delete("/administrator")).is_none());
        assert!(denied(&mut h, TestRequest::get("/x").header("x-debug", "1")).is_some());
        assert!(denied(&mut h, TestRequest::get("/x").header("x-debug", "0")).is_none());
    }

    #[test]
    fn status_and_code_have_defaults() {
        let mut h = Harness::<Deny>::new(r#"{"rules": [{"path": "/x"}]}"#).unwrap();
        let action = h.on_request(TestRequest::get("/x").build());
        let response = action.response().unwrap();
        assert_eq!(response.status, 403);
        let envelope: serde_json::Value =
            serde_json::from_slice(response.body.as_deref().unwrap()).unwrap();
        assert_eq!(envelope["code"], "FORBIDDEN");
        assert_eq!(envelope["error"], "request denied");
        let mut h = Harness::<Deny>::new(r#"{"rules": [{}], "status": 401}"#).unwrap();
        let envelope = denied(&mut h, TestRequest::get("/any")).unwrap();
        assert_eq!(envelope["code"], "UNAUTHORIZED");
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, want) in [
            (r#"{"rules": [], "status": 200}"#, "between 400 and 599"),
            (r#"{"rules": [{"path": "x"}]}"#, "must start with '/'"),
            (
                r#"{"rules": [{"header": {"name": "a b"}}]}"#,
                "not a valid header name",
            ),
            (r#"{"rules": [{"paths": ["/x"]}]}"#, "unknown field `paths`"),
            (r#"{}"#, "missing field `rules`"),
        ] {
            let error = Harness::<Deny>::new(config).err().expect(config);
            assert!(error.contains(want), "{config}: {error}");
        }
    }
}
