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
    /// Limits on failed logins, per account and per client:
    /// `login_limits = { account_failures = 5, client_failures = 20,
    /// window_seconds = 900, lock_seconds = 900 }`.
    #[serde(default)]
    pub login_limits: LoginLimitsConfig,
}

/// How many failed logins are allowed before further logins are refused with 429
/// for a while. Every field is optional; the defaults are below.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimitsConfig {
    /// `account_failures = 5`: failed logins naming one account (its username or
    /// email address, in any spelling that is the same name) within `window_seconds`
    /// before that account is locked for `lock_seconds`. `0` turns the limit off.
    pub account_failures: u32,
    /// `client_failures = 20`: failed logins from one client address (an IPv4
    /// address, an IPv6 /64), whatever account they name, within `window_seconds`
    /// before that client is locked for `lock_seconds`. `0` turns the limit off.
    pub client_failures: u32,
    /// `window_seconds = 900`: the window the failures are counted in, from the first
    /// failure; 1 to 604800 (a week).
    pub window_seconds: u64,
    /// `lock_seconds = 900`: how long a locked account or client is refused (429 with
    /// `Retry-After`), even with the right password; 1 to 604800 (a week).
    pub lock_seconds: u64,
}

/// The longest window or lock accepted: a week.
pub const MAX_LIMIT_SECONDS: u64 = 7 * 24 * 3600;

impl Default for LoginLimitsConfig {
    fn default() -> Self {
        Self {
            account_failures: 5,
            client_failures: 20,
            window_seconds: 900,
            lock_seconds: 900,
        }
    }
}

impl LoginLimitsConfig {
    /// Refuses durations that cannot be meant (0, or longer than a week).
    pub fn check(&self) -> Result<(), String> {
        for (field, seconds) in [
            ("window_seconds", self.window_seconds),
            ("lock_seconds", self.lock_seconds),
        ] {
            if !(1..=MAX_LIMIT_SECONDS).contains(&seconds) {
                return Err(format!(
                    "login_limits.{field} must be between 1 and {MAX_LIMIT_SECONDS} (a week); got {seconds}"
                ));
            }
        }
        Ok(())
    }
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
