//! One Keystone v3 password authentication with a project scope
//! (`POST /v3/auth/tokens`), and what its answer means for the client.

use serde::Deserialize;
use serde_json::{Value, json};
use wasmgate_plugin_sdk::http::{self, OutboundRequest};
use wasmgate_plugin_sdk::{Context, ErrorCode, Headers, Method, Response};

/// The credentials and the project to scope the token to.
pub struct Scope<'a> {
    /// The user's name.
    pub username: &'a str,
    /// The user's password.
    pub password: &'a str,
    /// The user's domain.
    pub user_domain_name: &'a str,
    /// The project's name.
    pub project_name: &'a str,
    /// The project's domain.
    pub project_domain_name: &'a str,
}

/// What a token tells about the connection.
#[derive(Debug)]
pub struct Token {
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
    /// The project's id.
    pub project_id: String,
    /// The project's name.
    pub project_name: String,
    /// When the token expires (Keystone's text).
    pub expires_at: String,
    /// When it was issued.
    pub issued_at: Option<String>,
    /// The user's role names in the project.
    pub roles: Vec<String>,
    catalog: Vec<CatalogEntry>,
}

/// Why the connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Keystone refused the credentials (401).
    BadCredentials,
    /// Keystone refused the user the project (403).
    Forbidden,
    /// Keystone answered something else, or nonsense; its status and why.
    BadAnswer(u16, String),
    /// Keystone could not be reached; why.
    Unreachable(String),
    /// Keystone did not answer in time.
    Timeout,
}

impl Failure {
    /// For the log.
    pub fn reason(&self) -> String {
        match self {
            Self::BadCredentials => "invalid credentials".into(),
            Self::Forbidden => "not allowed to use the project".into(),
            Self::BadAnswer(status, why) => format!("keystone answered {status}: {why}"),
            Self::Unreachable(why) => format!("keystone unreachable: {why}"),
            Self::Timeout => "keystone did not answer in time".into(),
        }
    }

    /// Keystone's status, 0 when it did not answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadCredentials => 401,
            Self::Forbidden => 403,
            Self::BadAnswer(status, _) => *status,
            Self::Unreachable(_) | Self::Timeout => 0,
        }
    }

    /// The client's answer.
    pub fn response(&self, ctx: &Context) -> Response {
        let (code, message) = match self {
            Self::BadCredentials => (
                ErrorCode::Unauthorized,
                "invalid OpenStack credentials (user, password, project or domain)",
            ),
            Self::Forbidden => (
                ErrorCode::Forbidden,
                "the OpenStack user may not use this project",
            ),
            Self::BadAnswer(..) => (
                ErrorCode::BadGateway,
                "OpenStack Keystone gave an unexpected answer",
            ),
            Self::Unreachable(_) => (ErrorCode::BadGateway, "OpenStack Keystone is unreachable"),
            Self::Timeout => (
                ErrorCode::GatewayTimeout,
                "OpenStack Keystone did not answer in time",
            ),
        };
        Response::from_code(code, message, ctx)
    }
}

/// The path of the token API under `auth_url` (`https://host:5000/v3` →
/// `/v3/auth/tokens`; `/v3` is added when the URL has no version).
pub fn tokens_path(auth_url: &str) -> Result<String, String> {
    let rest = auth_url
        .strip_prefix("https://")
        .or_else(|| auth_url.strip_prefix("http://"))
        .ok_or("an auth URL starts with https:// or http://")?;
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    if path.contains(['?', '#']) {
        return Err("an auth URL has no query or fragment".into());
    }
    let path = path.trim_end_matches('/');
    Ok(if path.ends_with("/v3") {
        format!("{path}/auth/tokens")
    } else {
        format!("{path}/v3/auth/tokens")
    })
}

/// Asks the Keystone at `auth_url`, through `service`, for a token scoped to the
/// project.
pub fn authenticate(service: &str, auth_url: &str, scope: &Scope) -> Result<Token, Failure> {
    let path = tokens_path(auth_url).map_err(|why| Failure::BadAnswer(0, why))?;
    let body = json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": scope.username,
                        "domain": {"name": scope.user_domain_name},
                        "password": scope.password,
                    }
                }
            },
            "scope": {
                "project": {
                    "name": scope.project_name,
                    "domain": {"name": scope.project_domain_name},
                }
            }
        }
    });
    let mut request = OutboundRequest::new(service, Method::Post, &path);
    request.headers = Headers::new();
    request.headers.set("content-type", "application/json");
    request.headers.set("accept", "application/json");
    request.body = serde_json::to_vec(&body).expect("a JSON value serializes");
    let response = http::send(request).map_err(|e| match e {
        http::Error::Timeout => Failure::Timeout,
        other => Failure::Unreachable(other.to_string()),
    })?;
    match response.status {
        200 | 201 => {}
        401 | 404 => return Err(Failure::BadCredentials),
        403 => return Err(Failure::Forbidden),
        status => {
            return Err(Failure::BadAnswer(status, keystone_message(&response.body)));
        }
    }
    if response.headers.get("x-subject-token").is_none() {
        return Err(Failure::BadAnswer(
            response.status,
            "no X-Subject-Token header".into(),
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(&response.body)
        .map_err(|e| Failure::BadAnswer(response.status, format!("not a token response: {e}")))?;
    let token = answer.token;
    let project = token.project.ok_or_else(|| {
        Failure::BadAnswer(
            response.status,
            "the token is not scoped to a project".into(),
        )
    })?;
    Ok(Token {
        user_id: token.user.id,
        user_name: token.user.name,
        project_id: project.id,
        project_name: project.name,
        expires_at: token.expires_at,
        issued_at: token.issued_at,
        roles: token.roles.into_iter().map(|r| r.name).collect(),
        catalog: token.catalog,
    })
}

/// Keystone's own error message, if its body is its error document.
fn keystone_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| "no error message".into())
        .chars()
        .take(200)
        .collect()
}

impl Token {
    /// The catalog's endpoints for `interface` (in `region`, when given):
    /// `{service_type, service_name, region, url}` each.
    pub fn endpoints(&self, region: Option<&str>, interface: &str) -> Vec<Value> {
        self.catalog
            .iter()
            .flat_map(|entry| {
                entry
                    .endpoints
                    .iter()
                    .filter(|e| e.interface == interface)
                    .filter(|e| region.is_none_or(|r| e.region.as_deref() == Some(r)))
                    .map(|e| {
                        json!({
                            "service_type": entry.kind,
                            "service_name": entry.name,
                            "region": e.region,
                            "url": e.url,
                        })
                    })
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: TokenBody,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    user: Named,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
struct Named {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Deserialize)]
struct CatalogEndpoint {
    #[serde(default)]
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    url: String,
}
