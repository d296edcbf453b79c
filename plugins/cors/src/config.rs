//! The plugin's config as written on a route, its defaults, and its checks: every
//! mistake is refused when the route is loaded, with a message that names the field,
//! so nothing is refused or guessed at request time.

use serde::Deserialize;
use wasmgate_plugin_sdk::Headers;

use crate::origin::OriginRule;

/// The plugin's config.
///
/// ```json
/// {"origins": ["https://app.example.com", "https://*.example.com"],
///  "methods": ["GET", "POST"], "headers": ["content-type", "authorization"],
///  "expose": ["x-request-id"], "credentials": true, "max_age": 600}
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The origins allowed to read responses: exact origins
    /// (`"https://app.example.com"`, `"http://localhost:3000"`), subdomain patterns
    /// (`"https://*.example.com"`), `"null"` for opaque origins, or `"*"` for every
    /// origin (not with `credentials`). At least one.
    origins: Vec<String>,
    /// The methods allowed besides GET, HEAD and POST (always allowed, as the Fetch
    /// standard has it), any case; `"*"` for every method (not with `credentials`).
    /// Default: GET, HEAD, POST, PUT, PATCH, DELETE.
    #[serde(default = "default_methods")]
    methods: Vec<String>,
    /// The request headers allowed, any case; `"*"` for every header but
    /// `authorization`, which must be listed by name (not with `credentials`).
    /// Default: accept, accept-language, content-language, content-type.
    #[serde(default = "default_headers")]
    headers: Vec<String>,
    /// The response headers scripts may read besides the CORS-safelisted ones
    /// (`Access-Control-Expose-Headers`); `"*"` for all (not with `credentials`).
    /// Default: none.
    #[serde(default)]
    expose: Vec<String>,
    /// Allow cookies and HTTP authentication (`Access-Control-Allow-Credentials:
    /// true`). Default false.
    #[serde(default)]
    credentials: bool,
    /// How long, in seconds, a browser may cache a preflight's answer
    /// (`Access-Control-Max-Age`), 0 to 86400. Default 600.
    #[serde(default = "default_max_age")]
    max_age: u32,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn default_headers() -> Vec<String> {
    [
        "accept",
        "accept-language",
        "content-language",
        "content-type",
    ]
    .map(String::from)
    .to_vec()
}

fn default_max_age() -> u32 {
    600
}

/// The most a browser keeps a preflight (Firefox's cap; Chromium's is 7200).
const MAX_AGE_CAP: u32 = 86_400;

/// Which origins are allowed.
#[derive(Debug)]
pub(crate) enum Origins {
    /// `"*"`: every origin, and `null` too only if listed.
    Any { null: bool },
    /// The listed origins and patterns.
    Listed(Vec<OriginRule>),
}

/// A list of names that may hold `"*"`.
#[derive(Debug)]
pub(crate) struct Names {
    /// `"*"` was listed.
    pub(crate) any: bool,
    /// The names listed (upper-case methods, lower-case headers), `"*"` left out.
    pub(crate) names: Vec<String>,
}

/// The checked config.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) origins: Origins,
    pub(crate) methods: Names,
    pub(crate) headers: Names,
    pub(crate) expose: Names,
    pub(crate) credentials: bool,
    pub(crate) max_age: u32,
}

impl Config {
    /// Checks every field; the error names the field (and the entry) at fault.
    pub(crate) fn check(self) -> Result<Checked, String> {
        let credentials = self.credentials;
        let origins = origins(self.origins, credentials)?;
        let methods = names("methods", self.methods, credentials, |m| {
            m.to_ascii_uppercase()
        })?;
        let headers = names("headers", self.headers, credentials, |h| {
            h.to_ascii_lowercase()
        })?;
        let expose = names("expose", self.expose, credentials, |h| {
            h.to_ascii_lowercase()
        })?;
        if self.max_age > MAX_AGE_CAP {
            return Err(format!(
                "max_age: {} is over {MAX_AGE_CAP} seconds (a day), which browsers cap it to",
                self.max_age
            ));
        }
        Ok(Checked {
            origins,
            methods,
            headers,
            expose,
            credentials,
            max_age: self.max_age,
        })
    }
}

fn origins(entries: Vec<String>, credentials: bool) -> Result<Origins, String> {
    if entries.is_empty() {
        return Err(
            "origins: empty, so no origin would be allowed; list origins such as \
                    \"https://app.example.com\" or \"https://*.example.com\""
                .into(),
        );
    }
    let null = entries.iter().any(|e| e == "null");
    if entries.iter().any(|e| e == "*") {
        if credentials {
            return Err(
                "origins: \"*\" cannot go with credentials = true: browsers refuse \
                        credentials with every origin; list the origins instead"
                    .into(),
            );
        }
        if let Some(other) = entries.iter().find(|e| *e != "*" && *e != "null") {
            return Err(format!(
                "origins: \"*\" already allows {other:?}; list either \"*\" (and \"null\" \
                 if opaque origins are allowed too) or the origins"
            ));
        }
        return Ok(Origins::Any { null });
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            OriginRule::parse(entry).map_err(|e| format!("origins[{index}]: {e}"))
        })
        .collect::<Result<_, _>>()
        .map(Origins::Listed)
}

/// Checks a list of methods or header names: tokens, or `"*"` without credentials.
fn names(
    field: &str,
    entries: Vec<String>,
    credentials: bool,
    case: impl Fn(&str) -> String,
) -> Result<Names, String> {
    let mut checked = Names {
        any: false,
        names: Vec::new(),
    };
    for (index, entry) in entries.iter().enumerate() {
        if entry == "*" {
            if credentials {
                return Err(format!(
                    "{field}[{index}]: \"*\" cannot go with credentials = true (browsers \
                     read it as a name then); list the {field} instead"
                ));
            }
            checked.any = true;
        } else if !Headers::is_valid_name(entry) {
            return Err(format!("{field}[{index}]: {entry:?} is not a valid name"));
        } else {
            let name = case(entry);
            if !checked.names.contains(&name) {
                checked.names.push(name);
            }
        }
    }
    Ok(checked)
}
