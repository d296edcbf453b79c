//! `rate-limit`: limits how often a client, user, consumer, API key or header value
//! may call a route, with limits chosen by who is calling (tiers), counted in `kv`.
//!
//! ```json
//! {"limit": {"requests": 100, "per": "1h"},
//!  "tiers": {"user": {"requests": 1000, "per": "1h"},
//!            "api_key": {"requests": 10000, "per": "1h"}},
//!  "key": ["consumer"]}
//! ```
//!
//! Put it after the auth plugins of the chain: it reads the identity they record
//! (`plugin_sdk::identity`). Its tier is the API key's `tier` variable when `tiers`
//! names it, else `api_key` (authenticated by an API key), `user` (authenticated
//! otherwise) or `anonymous`, each used when `tiers` has it; `limit` covers the rest.
//!
//! A request over the limit gets 429 `RATE_LIMITED` with `Retry-After` and is counted
//! in `rate_limit_exceeded_total{route, tier}`. Every answer carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix
//! seconds; for a refused request, when the next one can pass) unless `headers` is
//! off. When the state store fails, `on_store_error` decides: `closed` (the default)
//! answers 503 `SERVICE_UNAVAILABLE`, `open` lets the request pass.

mod limiter;

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmgate_plugin_sdk::identity::{
    API_KEY_ID_VAR, CONSUMER_VAR, METHOD_VAR, TIER_VAR, USER_ID_VAR, client_subject,
};
use wasmgate_plugin_sdk::log::{self, Level, Value};
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Reply, Request, Response, Settings, clock, export_plugin,
    metrics,
};

pub use limiter::{Algorithm, Decision, Limit};

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sliding_window` (default), `fixed_window` or `token_bucket`.
    #[serde(default)]
    algorithm: Algorithm,
    /// The limit for every tier `tiers` does not name.
    limit: LimitConfig,
    /// Limits by tier: `anonymous`, `user`, `api_key`, or a tier an API key carries.
    #[serde(default)]
    tiers: BTreeMap<String, LimitConfig>,
    /// What is counted: a list of `client`, `consumer`, `user`, `api_key`, `route`
    /// and `{"header": NAME}`, combined. A part the request lacks counts as the
    /// client's address. Default `["consumer"]`.
    #[serde(default = "default_key")]
    key: Vec<KeyPart>,
    /// The counters' name: routes with the same `bucket` share counters; by default
    /// each route counts on its own.
    #[serde(default)]
    bucket: Option<String>,
    /// Send the `X-RateLimit-*` headers on every answer. Default on.
    #[serde(default = "default_true")]
    headers: bool,
    /// `closed` (default): answer 503 when the state store fails; `open`: let the
    /// request pass uncounted.
    #[serde(default)]
    on_store_error: FailMode,
    /// The envelope's message for a refused request. Default "too many requests".
    #[serde(default = "default_message")]
    message: String,
}

/// One limit as written: `requests` per `per`, and the token bucket's `burst`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitConfig {
    requests: u64,
    /// `"500ms"`, `"30s"`, `"1m"`, `"1h"`, `"1d"`.
    per: String,
    /// Token bucket only: requests that may come at once. Default `requests`.
    #[serde(default)]
    burst: Option<u64>,
}

/// One part of what is counted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyPart {
    /// The client's IP address (an IPv6 address as its /64).
    Client,
    /// The consumer an auth plugin recorded (the API key's owner, or the user).
    Consumer,
    /// The user id an auth plugin recorded.
    User,
    /// The id of the API key that authenticated the request.
    ApiKey,
    /// The route's name.
    Route,
    /// The values of a request header.
    Header(String),
}

/// What happens when the state store fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Answer 503: no request passes uncounted.
    #[default]
    Closed,
    /// Let requests pass uncounted.
    Open,
}

fn default_key() -> Vec<KeyPart> {
    vec![KeyPart::Consumer]
}

fn default_true() -> bool {
    true
}

fn default_message() -> String {
    "too many requests".into()
}

/// The longest header value counted as it is; longer ones are cut to this.
const MAX_KEY_VALUE: usize = 256;

/// The variable carrying a passed request's figures to the response phase:
/// `LIMIT REMAINING RESET`.
pub const STATE_VAR: &str = "rate_limit";

/// Parses `"500ms"`, `"30s"`, `"1m"`, `"1h"`, `"1d"` into milliseconds.
fn parse_per(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"30s\", \"1m\" or \"1h\""))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be ms, s, m, h or d (\"30s\", \"1h\")"
            ));
        }
    };
    match number.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!("{text:?} must be above zero and at most years")),
    }
}

impl LimitConfig {
    fn check(&self, field: &str, algorithm: Algorithm) -> Result<Limit, String> {
        if self.requests == 0 {
            return Err(format!("{field}.requests must be at least 1"));
        }
        let per_ms = parse_per(&self.per).map_err(|e| format!("{field}.per: {e}"))?;
        let burst = match (algorithm, self.burst) {
            (Algorithm::TokenBucket, Some(0)) => {
                return Err(format!("{field}.burst must be at least 1"));
            }
            (Algorithm::TokenBucket, burst) => burst.unwrap_or(self.requests),
            (_, Some(_)) => {
                return Err(format!(
                    "{field}.burst applies to algorithm = \"token_bucket\" only"
                ));
            }
            (_, None) => self.requests,
        };
        Ok(Limit {
            requests: self.requests,
            per_ms,
            burst,
        })
    }
}

/// The plugin, configured for one route.
#[derive(Debug)]
pub struct RateLimit {
    algorithm: Algorithm,
    default: Limit,
    tiers: BTreeMap<String, Limit>,
    key: Vec<KeyPart>,
    bucket: Option<String>,
    headers: bool,
    on_store_error: FailMode,
    message: String,
}

/// The tier of a request with no identity, or whose auth is neither of the others.
const ANONYMOUS: &str = "anonymous";

impl Plugin for RateLimit {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let default = config.limit.check("limit", config.algorithm)?;
        let mut tiers = BTreeMap::new();
        for (name, limit) in &config.tiers {
            if name.is_empty() {
                return Err("tiers: a tier name may not be empty".into());
            }
            let checked = limit.check(&format!("tiers.{name}"), config.algorithm)?;
            tiers.insert(name.clone(), checked);
        }
        if config.key.is_empty() {
            return Err("key: name at least one part (client, consumer, user, …)".into());
        }
        for part in &config.key {
            if let KeyPart::Header(name) = part
                && !Headers::is_valid_name(name)
            {
                return Err(format!("key: {name:?} is not a valid header name"));
            }
        }
        if let Some(bucket) = &config.bucket
            && (bucket.is_empty() || !bucket.bytes().all(|b| b.is_ascii_graphic() && b != b'|'))
        {
            return Err(format!(
                "bucket: {bucket:?} must be visible ASCII characters other than '|'"
            ));
        }
        Ok(Self {
            algorithm: config.algorithm,
            default,
            tiers,
            key: config.key,
            bucket: config.bucket,
            headers: config.headers,
            on_store_error: config.on_store_error,
            message: config.message,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            // The response phase only adds the headers.
            request_only: !self.headers,
            ..Settings::default()
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        // One host call for every variable the tier and key need.
        let vars = ctx.vars();
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let (tier, limit) = self.tier(var(METHOD_VAR), var(TIER_VAR));
        let route = ctx.route();
        let key = self.counter_key(request, ctx, &var, &route, limit);
        let now = clock::now_unix_ms();
        let decision = match limiter::check(self.algorithm, limit, &key, now) {
            Ok(decision) => decision,
            Err(error) => return self.store_failed(&error.to_string(), ctx),
        };
        let figures = Figures::of(&decision);
        if decision.allowed {
            if self.headers {
                ctx.set_var(STATE_VAR, &figures.to_var());
            }
            return Action::Continue;
        }
        let _ = metrics::counter_add(
            "rate_limit_exceeded_total",
            &[("route", &route), ("tier", tier)],
            1,
        );
        log::event(
            Level::Debug,
            "rate limit exceeded",
            &[
                ("tier", Value::from(tier)),
                ("limit", Value::from(decision.limit as i64)),
                (
                    "retry_after_ms",
                    Value::from(decision.retry_after_ms as i64),
                ),
            ],
        );
        let retry_after = decision.retry_after_ms.div_ceil(1000).max(1);
        let mut response = Response::rate_limited(&self.message, ctx)
            .with_header("retry-after", retry_after.to_string());
        if self.headers {
            figures.write(&mut response.headers);
        }
        Action::Respond(response)
    }

    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        if let Some(figures) = ctx.var(STATE_VAR).and_then(|v| Figures::from_var(&v)) {
            figures.write(&mut response.headers);
        }
    }
}

impl RateLimit {
    /// The tier and its limit: the carried tier if configured, else the kind of
    /// caller's if configured, else the default limit under the kind's name.
    fn tier<'a>(&'a self, method: Option<&str>, carried: Option<&str>) -> (&'a str, Limit) {
        let kind = match method {
            None => ANONYMOUS,
            Some("api-key") => "api_key",
            Some(_) => "user",
        };
        carried
            .and_then(|t| self.tiers.get_key_value(t))
            .or_else(|| self.tiers.get_key_value(kind))
            .map_or((kind, self.default), |(name, limit)| {
                (name.as_str(), *limit)
            })
    }

    /// The counter's key: bucket, algorithm, window, then each part as `tag=value`,
    /// escaped so that no value can pose as another part.
    fn counter_key<'v>(
        &self,
        request: &Request,
        ctx: &Context,
        var: &impl Fn(&str) -> Option<&'v str>,
        route: &str,
        limit: Limit,
    ) -> String {
        let mut key = match &self.bucket {
            Some(bucket) => format!("b:{bucket}"),
            None => format!("r:{}", escape(route.as_bytes())),
        };
        key.push_str(&format!("|{}|{}", self.algorithm.name(), limit.per_ms));
        let mut client = None;
        let mut client_part = || {
            client
                .get_or_insert_with(|| escape(client_subject(&ctx.client_addr()).as_bytes()))
                .clone()
        };
        for part in &self.key {
            let value = match part {
                KeyPart::Client => None,
                KeyPart::Consumer => var(CONSUMER_VAR).map(|v| ("consumer", escape(v.as_bytes()))),
                KeyPart::User => var(USER_ID_VAR).map(|v| ("user", escape(v.as_bytes()))),
                KeyPart::ApiKey => var(API_KEY_ID_VAR).map(|v| ("api_key", escape(v.as_bytes()))),
                KeyPart::Route => Some(("route", escape(route.as_bytes()))),
                KeyPart::Header(name) => {
                    let values = request.headers.get_all_bytes(name);
                    (!values.is_empty()).then(|| ("header", escape(&values.join(&b","[..]))))
                }
            };
            let (tag, value) = value.unwrap_or_else(|| ("client", client_part()));
            key.push_str(&format!("|{tag}={value}"));
        }
        key
    }

    /// The state store failed: pass or refuse, as configured.
    fn store_failed(&self, error: &str, ctx: &Context) -> Action {
        log::event(
            Level::Warn,
            "rate limit state unavailable",
            &[
                ("error", Value::from(error)),
                ("passed", Value::from(self.on_store_error == FailMode::Open)),
            ],
        );
        match self.on_store_error {
            FailMode::Open => Action::Continue,
            FailMode::Closed => Action::Respond(
                Response::service_unavailable("rate limit state unavailable", ctx)
                    .with_header("retry-after", "1"),
            ),
        }
    }
}

/// Percent-escapes what could be read as a separator (`|`, `=`, `%`) or is not
/// visible ASCII, after cutting the value to [`MAX_KEY_VALUE`] bytes.
fn escape(value: &[u8]) -> String {
    let value = &value[..value.len().min(MAX_KEY_VALUE)];
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_graphic() && !matches!(b, b'|' | b'=' | b'%') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The figures the headers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    limit: u64,
    remaining: u64,
    /// Unix seconds, rounded up.
    reset: u64,
}

impl Figures {
    fn of(decision: &Decision) -> Self {
        Self {
            limit: decision.limit,
            remaining: decision.remaining,
            reset: decision.reset_ms.div_ceil(1000),
        }
    }

    fn to_var(self) -> String {
        format!("{} {} {}", self.limit, self.remaining, self.reset)
    }

    fn from_var(text: &str) -> Option<Self> {
        let mut numbers = text.split(' ').map(|n| n.parse::<u64>().ok());
        Some(Self {
            limit: numbers.next()??,
            remaining: numbers.next()??,
            reset: numbers.next()??,
        })
    }

    fn write(self, headers: &mut Headers) {
        headers.set("x-ratelimit-limit", self.limit.to_string());
        headers.set("x-ratelimit-remaining", self.remaining.to_string());
        headers.set("x-ratelimit-reset", self.reset.to_string());
    }
}

export_plugin!(RateLimit);

#[cfg(test)]
mod tests;
