//! The route's config as written, with its defaults.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The signing algorithm: `HS256`/`HS384`/`HS512` with `secret`, or an asymmetric
    /// one (`RS256`, `PS256`, `ES256`, `EdDSA` …) with `private_key`.
    #[serde(default = "default_alg")]
    pub alg: String,
    /// The name of a granted secret holding the HMAC key (at least 32 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// The name of a granted secret holding a PEM private key.
    #[serde(default)]
    pub private_key: Option<String>,
    /// The `kid` header of issued tokens.
    #[serde(default)]
    pub kid: Option<String>,
    /// The `iss` claim of issued tokens.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The `aud` claim of issued tokens, if any.
    #[serde(default)]
    pub audience: Option<String>,
    /// How long an issued token is valid.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_seconds: u64,
    /// The role of the first user ever registered.
    #[serde(default = "default_first_role")]
    pub first_user_role: String,
    /// The role of everyone after.
    #[serde(default = "default_role")]
    pub default_role: String,
    /// Permissions written into tokens, by role (optional: `rbac` can map roles itself).
    #[serde(default)]
    pub role_permissions: BTreeMap<String, Vec<String>>,
    /// The shortest password accepted, in characters.
    #[serde(default = "default_min_password")]
    pub min_password_length: usize,
    /// Argon2id cost.
    #[serde(default)]
    pub argon2: Argon2Config,
    /// The `kv` key prefix of revoked token ids; must match `jwt-auth`'s.
    #[serde(default = "default_revoked_prefix")]
    pub revoked_prefix: String,
}

/// Argon2id parameters; the defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

fn default_alg() -> String {
    "HS256".into()
}

fn default_issuer() -> String {
    "wasmgate".into()
}

fn default_token_ttl() -> u64 {
    3600
}

fn default_first_role() -> String {
    "admin".into()
}

fn default_role() -> String {
    "user".into()
}

fn default_min_password() -> usize {
    8
}

fn default_revoked_prefix() -> String {
    "revoked:".into()
}
