//! `headers`: adds, sets, removes and renames request and response headers, from the
//! route's config. Per direction, operations apply in this order: `remove`,
//! `rename`, `set`, `add`.

use serde::Deserialize;
use serde_json::Map;
use wasmgate_plugin_sdk::{Action, Context, Headers, Plugin, Request, Response, export_plugin};

/// The changes for one direction, as written in the config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditsConfig {
    /// `add = { "x-a" = "1" }`: append a value, keeping existing ones.
    #[serde(default)]
    add: Map<String, serde_json::Value>,
    /// `set = { "x-b" = "2" }`: replace every value.
    #[serde(default)]
    set: Map<String, serde_json::Value>,
    /// `remove = ["x-c"]`: drop the header.
    #[serde(default)]
    remove: Vec<String>,
    /// `rename = { "x-old" = "x-new" }`: rename, keeping values.
    #[serde(default)]
    rename: Map<String, serde_json::Value>,
}

/// The plugin's config: `{ request = { … }, response = { … } }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    request: EditsConfig,
    #[serde(default)]
    response: EditsConfig,
}

/// Checked changes for one direction.
#[derive(Debug, Default)]
struct Edits {
    add: Vec<(String, String)>,
    set: Vec<(String, String)>,
    remove: Vec<String>,
    rename: Vec<(String, String)>,
}

impl Edits {
    fn from_config(config: EditsConfig, side: &str) -> Result<Self, String> {
        let name = |name: &str, op: &str| -> Result<String, String> {
            if Headers::is_valid_name(name) {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(format!("{side}.{op}: {name:?} is not a valid header name"))
            }
        };
        let pairs = |map: Map<String, serde_json::Value>, op: &str, values_are_names: bool| {
            map.into_iter()
                .map(|(key, value)| {
                    let key = name(&key, op)?;
                    let serde_json::Value::String(value) = value else {
                        return Err(format!("{side}.{op}.{key}: the value must be a string"));
                    };
                    if values_are_names {
                        Ok((key, name(&value, op)?))
                    } else if Headers::is_valid_value(value.as_bytes()) {
                        Ok((key, value))
                    } else {
                        Err(format!(
                            "{side}.{op}.{key}: {value:?} is not a valid header value"
                        ))
                    }
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Self {
            add: pairs(config.add, "add", false)?,
            set: pairs(config.set, "set", false)?,
            rename: pairs(config.rename, "rename", true)?,
            remove: config
                .remove
                .iter()
                .map(|n| name(n, "remove"))
                .collect::<Result<_, _>>()?,
        })
    }

    fn apply(&self, headers: &mut Headers) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (from, to) in &self.rename {
            headers.rename(from, to);
        }
        for (name, value) in &self.set {
            headers.set(name, value.as_bytes());
        }
        for (name, value) in &self.add {
            headers.append(name, value.as_bytes());
        }
    }
}

/// Header edits for one route.
pub struct HeadersPlugin {
    request: Edits,
    response: Edits,
}

impl Plugin for HeadersPlugin {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            request: Edits::from_config(config.request, "request")?,
            response: Edits::from_config(config.response, "response")?,
        })
    }

    fn on_request(&self, mut request: Request, _ctx: &mut Context) -> Action {
        self.request.apply(&mut request.headers);
        Action::Continue(request)
    }

    fn on_response(&self, mut response: Response, _ctx: &mut Context) -> Response {
        self.response.apply(&mut response.headers);
        response
    }
}

export_plugin!(HeadersPlugin);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    fn harness(config: &str) -> Harness<HeadersPlugin> {
        Harness::new(config).expect("config accepted")
    }

    #[test]
    fn edits_requests_in_order_remove_rename_set_add() {
        let mut h = harness(
            r#"{"request": {"remove": ["X-Secret"], "rename": {"x-old": "x-new"},
                "set": {"x-set": "s"}, "add": {"x-add": "2"}}}"#,
        );
        let request = TestRequest::get("/")
            .header("x-secret", "1")
            .header("X-Old", "o")
            .header("x-set", "before")
            .header("x-set", "before2")
            .header("x-add", "1")
            .build();
        let action = h.on_request(request);
        let headers = &action.request().unwrap().headers;
        assert!(!headers.contains("x-secret"));
        assert_eq!(headers.get("x-new"), Some("o"));
        assert!(!headers.contains("x-old"));
        assert_eq!(headers.get_all("x-set").collect::<Vec<_>>(), ["s"]);
        assert_eq!(headers.get_all("x-add").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn edits_responses() {
        let mut h =
            harness(r#"{"response": {"set": {"X-Powered-By": "wasmgate"}, "remove": ["server"]}}"#);
        let response = Response::new(200)
            .with_header("server", "upstream/1.0")
            .with_header("x-powered-by", "php");
        let response = h.on_response(response);
        assert_eq!(response.headers.get("x-powered-by"), Some("wasmgate"));
        assert!(!response.headers.contains("server"));
    }

    #[test]
    fn an_empty_config_changes_nothing() {
        let mut h = harness("{}");
        let request = TestRequest::get("/").header("a", "1").build();
        assert_eq!(h.on_request(request.clone()), Action::Continue(request));
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        for (config, want) in [
            (
                r#"{"request": {"set": {"bad name": "x"}}}"#,
                "request.set: \"bad name\" is not a valid header name",
            ),
            (
                r#"{"response": {"add": {"x": "line\nbreak"}}}"#,
                "not a valid header value",
            ),
            (
                r#"{"request": {"rename": {"a": "b c"}}}"#,
                "not a valid header name",
            ),
            (r#"{"request": {"set": {"x": 1}}}"#, "must be a string"),
            (r#"{"requests": {}}"#, "unknown field `requests`"),
            (
                r#"{"request": {"delete": ["x"]}}"#,
                "unknown field `delete`",
            ),
        ] {
            let error = Harness::<HeadersPlugin>::new(config).err().expect(config);
            assert!(error.contains(want), "{config}: {error}");
        }
    }
}
