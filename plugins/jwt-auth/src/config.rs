//! The route's config as written, and its checks. Every field is optional except
//! that at least one key source (`keys` or `jwks`) is required.

use serde::Deserialize;
use wasmgate_plugin_sdk::identity::IdentityHeaders;

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys tokens may be signed with.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// A JWKS document fetched from a granted service and cached.
    #[serde(default)]
    pub jwks: Option<JwksConfig>,
    /// Accepted `iss` values; when set, a token must carry one of them.
    #[serde(default, deserialize_with = "one_or_many")]
    pub issuer: Vec<String>,
    /// Accepted audiences; when set, the token's `aud` must name one of them.
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Refuse tokens without `exp`.
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Paths (as received) that need no token: exact, or a prefix ending in `*`.
    #[serde(default)]
    pub skip_paths: Vec<String>,
    /// Let requests without any `Authorization` header through unauthenticated (a
    /// present but bad token is still refused); for routes where a later plugin or
    /// the upstream decides.
    #[serde(default)]
    pub optional: bool,
    /// A query parameter (e.g. `"token"`) that may carry the token when the request
    /// has no `Authorization` header: browsers cannot set headers on a WebSocket.
    /// Off by default (tokens in URLs end up in logs and browser history).
    #[serde(default)]
    pub query_token: Option<String>,
    /// On a WebSocket handshake without a token (route with `[routes.websocket]`):
    /// take it from the first message, `{"type": "auth", "token": "…"}` (SkyClust's
    /// protocol), before anything reaches the upstream; a missing or bad one closes
    /// the WebSocket with 1008.
    #[serde(default)]
    pub first_message: bool,
    /// The `kv` key prefix of revoked token ids (`jti`); `""` turns the check off.
    #[serde(default = "default_revoked_prefix")]
    pub revoked_prefix: String,
    /// Which claims fill the identity.
    #[serde(default)]
    pub claims: ClaimNames,
    /// More claims to copy into chain variables: claim name → variable name.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// The identity headers sent upstream.
    #[serde(default)]
    pub headers: IdentityHeaders,
    /// The longest token accepted, in bytes.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
}

/// One key in `keys`: exactly one of `secret`, `pem`, `pem_text` and `jwk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id tokens name in their `kid` header.
    #[serde(default)]
    pub kid: Option<String>,
    /// The algorithm, e.g. `HS256`, `RS256`, `ES256`, `EdDSA`. Required except for a
    /// `jwk` that names its own `alg`.
    #[serde(default)]
    pub alg: Option<String>,
    /// The name of a granted secret holding an HMAC key (HS*).
    #[serde(default)]
    pub secret: Option<String>,
    /// The HMAC secret is base64 (standard or URL-safe) rather than raw bytes.
    #[serde(default)]
    pub secret_base64: bool,
    /// The name of a granted secret holding a PEM public key (RS*, PS*, ES*, EdDSA).
    #[serde(default)]
    pub pem: Option<String>,
    /// A PEM public key written into the config (public keys are not secret).
    #[serde(default)]
    pub pem_text: Option<String>,
    /// A JSON Web Key (RFC 7517), public or `oct`.
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
}

/// `jwks`: where to fetch a JSON Web Key Set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// The service, granted to this plugin with `http = ["NAME"]`.
    pub service: String,
    /// The path on it, e.g. `/.well-known/jwks.json`.
    pub path: String,
    /// How long a fetched set is kept (shared by every instance through `kv`).
    #[serde(default = "default_cache_seconds")]
    pub cache_seconds: u64,
}

/// Which claims hold the identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    /// The user's id. Default `sub`.
    pub user_id: String,
    /// The user's name. Default `username`.
    pub username: String,
    /// The role: a string, or a list of strings. Default `role`.
    pub role: String,
    /// The permissions: a list of strings, or one string separated by spaces or
    /// commas (as OAuth's `scope`). Default `permissions`.
    pub permissions: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user_id: "sub".into(),
            username: "username".into(),
            role: "role".into(),
            permissions: "permissions".into(),
        }
    }
}

fn default_leeway() -> u64 {
    30
}

fn yes() -> bool {
    true
}

fn default_revoked_prefix() -> String {
    "revoked:".into()
}

fn default_max_token_bytes() -> usize {
    8192
}

fn default_cache_seconds() -> u64 {
    300
}

/// `"a"` or `["a", "b"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl Config {
    /// Checks what the types cannot say.
    pub fn check(&mut self) -> Result<(), String> {
        if self.keys.is_empty() && self.jwks.is_none() {
            return Err(
                "needs `keys`, `jwks` or both: tokens cannot be checked without keys".into(),
            );
        }
        if let Some(name) = &self.query_token
            && (name.is_empty() || name.contains(['&', '=', '#', ' ']))
        {
            return Err(format!(
                "query_token: {name:?} is not a query parameter name"
            ));
        }
        if let Some(jwks) = &self.jwks {
            if !jwks.path.starts_with('/') {
                return Err(format!("jwks.path: {:?} must start with '/'", jwks.path));
            }
            if jwks.cache_seconds == 0 {
                return Err("jwks.cache_seconds must be at least 1".into());
            }
        }
        for (i, path) in self.skip_paths.iter().enumerate() {
            if !path.starts_with('/') {
                return Err(format!("skip_paths[{i}]: {path:?} must start with '/'"));
            }
        }
        if !(16..=65_536).contains(&self.max_token_bytes) {
            return Err("max_token_bytes must be between 16 and 65536".into());
        }
        self.headers.check()
    }
}
