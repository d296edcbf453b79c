//! `cache`: a shared response cache for `GET` and `HEAD`, kept in the plugin's `kv`
//! namespace, and, on a route configured with `manage`, the API that purges it.
//!
//! ```json
//! {"default_ttl_seconds": 60, "statuses": [200, 301, 404],
//!  "max_entry_bytes": 1048576, "max_total_bytes": 67108864}
//! {"manage": {"base": "/admin/cache"}}
//! ```
//!
//! A fresh stored response is served from `on_request` (the upstream is not called)
//! with `X-Cache: HIT` and its `Age`; other answers carry `X-Cache: MISS` (looked up,
//! not found: the response may be stored) or `BYPASS` (not looked up: another
//! method, `Authorization`, a request `no-store` / `no-cache`, a key the cache cannot
//! hold, or a store error). Freshness and storability follow RFC 9111's rules for a
//! shared cache (see [`policy`]): `no-store`, `private` and `no-cache` responses,
//! `Vary: *`, `Set-Cookie` and responses to requests with `Authorization` are not
//! stored (the last two unless configured), nor the gateway's or a plugin's own
//! answers, nor statuses outside `statuses`. Keys are described in [`key`], the
//! entries, the size caps and eviction in [`store`], the purge API in [`manage`].
//!
//! The request's headers are gone in the response phase, so `on_request` passes what
//! `on_response` needs in chain variables: `cache_status`, `cache_key` (the primary
//! key) and `cache_vary` (a digest of each request header's value, never the value).
//! Put the plugin after authentication and authorisation plugins: a hit answers
//! before any later plugin runs.

pub mod key;
mod manage;
pub mod policy;
pub mod store;

use std::time::Duration;

use serde::Deserialize;
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Reply, Request, Response, Settings, clock, export_plugin,
    metrics,
};

pub use manage::{ManageConfig, PURGE_LIMIT};
use policy::{Directives, Freshness};
use store::{Caps, Entry, Skipped};

/// The header that says what the cache did.
pub const X_CACHE: &str = "x-cache";
/// The chain variable with what the cache did: `HIT`, `MISS` or `BYPASS`.
pub const STATUS_VAR: &str = "cache_status";
/// The chain variable with the primary key of a response that may be stored.
pub const KEY_VAR: &str = "cache_key";
/// The chain variable with `name=digest` lines of the request's headers.
pub const VARY_VAR: &str = "cache_vary";
/// The most bytes [`VARY_VAR`] may hold (the gateway caps a variable at 8 KiB); a
/// request with more headers than fit is stored only when the response varies on
/// nothing.
const MAX_VARY_VAR: usize = 6 * 1024;

/// Response headers never stored: set per answer by the gateway or this plugin
/// (`content-length` is the served body's own).
const NOT_STORED: [&str; 4] = ["x-request-id", "age", "x-cache", "content-length"];

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seconds a response stays fresh when it says nothing (no `s-maxage`, `max-age`
    /// or `Expires`); 0 stores only responses that give a lifetime.
    #[serde(default = "default_ttl")]
    pub default_ttl_seconds: u64,
    /// The longest any response is kept, whatever it says.
    #[serde(default = "max_ttl")]
    pub max_ttl_seconds: u64,
    /// The statuses stored (200 to 599, not 206 or 304).
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    /// The largest entry stored: key, headers, body and bookkeeping, in bytes.
    #[serde(default = "max_entry")]
    pub max_entry_bytes: u64,
    /// The cap on all entries together (of every route using this namespace); older
    /// entries are evicted to make room.
    #[serde(default = "max_total")]
    pub max_total_bytes: u64,
    /// Store and serve responses to requests with `Authorization`. Dangerous: one
    /// user's answer may be served to another (unless the upstream sends `private`,
    /// or `Vary: Authorization`).
    #[serde(default)]
    pub cache_authorized: bool,
    /// Store responses with `Set-Cookie`, and serve the cookie to everyone who gets
    /// the entry. Dangerous: a session cookie becomes everyone's.
    #[serde(default)]
    pub cache_set_cookie: bool,
    /// Answer this route as the purge API at `base` instead of caching (the other
    /// fields are then unused).
    #[serde(default)]
    pub manage: Option<ManageConfig>,
}

fn default_ttl() -> u64 {
    60
}
fn max_ttl() -> u64 {
    86_400
}
fn default_statuses() -> Vec<u16> {
    vec![200, 301, 404]
}
fn max_entry() -> u64 {
    1 << 20
}
fn max_total() -> u64 {
    64 << 20
}

/// What one route does with this plugin.
pub enum Cache {
    /// Caches the route's responses.
    Serve(Rules),
    /// Answers the purge API.
    Manage(manage::Manager),
}

/// The checked config of a caching route.
#[derive(Debug)]
pub struct Rules {
    default_ttl: u64,
    max_ttl: u64,
    statuses: Vec<u16>,
    caps: Caps,
    cache_authorized: bool,
    cache_set_cookie: bool,
}

impl Rules {
    fn new(config: Config) -> Result<Self, String> {
        if let Some(bad) = config
            .statuses
            .iter()
            .find(|s| !(200..=599).contains(*s) || **s == 206 || **s == 304)
        {
            return Err(format!(
                "statuses: {bad} cannot be cached (200 to 599, not 206 or 304)"
            ));
        }
        if config.max_ttl_seconds == 0 {
            return Err("max_ttl_seconds: must be at least 1".into());
        }
        if config.default_ttl_seconds > config.max_ttl_seconds {
            return Err(format!(
                "default_ttl_seconds: {} is over max_ttl_seconds ({})",
                config.default_ttl_seconds, config.max_ttl_seconds
            ));
        }
        if config.max_entry_bytes == 0 || config.max_entry_bytes > config.max_total_bytes {
            return Err(format!(
                "max_entry_bytes: {} must be at least 1 and at most max_total_bytes ({})",
                config.max_entry_bytes, config.max_total_bytes
            ));
        }
        if config.max_total_bytes > i64::MAX as u64 / 2 {
            return Err("max_total_bytes: too large".into());
        }
        Ok(Self {
            default_ttl: config.default_ttl_seconds,
            max_ttl: config.max_ttl_seconds,
            statuses: config.statuses,
            caps: Caps {
                max_entry_bytes: config.max_entry_bytes,
                max_total_bytes: config.max_total_bytes,
            },
            cache_authorized: config.cache_authorized,
            cache_set_cookie: config.cache_set_cookie,
        })
    }
}

impl Plugin for Cache {
    type Config = Config;

    fn new(mut config: Config) -> Result<Self, String> {
        if let Some(manage) = config.manage.take() {
            return manage::Manager::new(manage).map(Self::Manage);
        }
        Rules::new(config).map(Self::Serve)
    }

    fn settings(&self) -> Settings {
        match self {
            Self::Manage(_) => Settings::REQUEST_ONLY,
            Self::Serve(_) => Settings {
                response_body: true,
                ..Settings::default()
            },
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let rules = match self {
            Self::Manage(manager) => return Action::Respond(manager.answer(request, ctx)),
            Self::Serve(rules) => rules,
        };
        let method = request.method();
        let head = method == "HEAD";
        if !(head || method == "GET") {
            return pass(ctx, "BYPASS");
        }
        let directives = Directives::of_request(
            &request.headers.get_all("cache-control"),
            &request.headers.get_all("pragma"),
        );
        if directives.no_store
            || (!rules.cache_authorized && request.headers.contains("authorization"))
        {
            return pass(ctx, "BYPASS");
        }
        let host = request.headers.get_bytes("host");
        let Some(primary) = key::primary(&ctx.path(), host.as_deref(), request.query().as_deref())
        else {
            return pass(ctx, "BYPASS");
        };
        let mut status = "BYPASS";
        if !directives.no_cache {
            match lookup(&primary, &request.headers) {
                Ok(Some(entry)) => {
                    let now = clock::now_unix_ms();
                    let age = now.saturating_sub(entry.born_ms) / 1000;
                    if directives.max_age.is_none_or(|max| age <= max) {
                        count("HIT");
                        ctx.set_var(STATUS_VAR, "HIT");
                        return Action::Respond(hit(entry, age));
                    }
                    status = "MISS";
                }
                Ok(None) => status = "MISS",
                Err(e) => {
                    warn("cache lookup failed", &primary, &e);
                    return pass(ctx, "BYPASS");
                }
            }
        }
        // HEAD responses are never stored: they have no body to answer a GET with.
        if !head {
            ctx.set_var(KEY_VAR, &primary);
            let digests = header_digests(&request.headers);
            if digests.len() <= MAX_VARY_VAR {
                ctx.set_var(VARY_VAR, &digests);
            }
        }
        pass(ctx, status)
    }

    fn on_response(&self, response: &mut Reply, ctx: &mut Context) {
        let Self::Serve(rules) = self else { return };
        let status = ctx.var(STATUS_VAR).unwrap_or_else(|| "BYPASS".into());
        response.headers.set(X_CACHE, &status);
        let Some(primary) = ctx.var(KEY_VAR) else {
            return;
        };
        if let Err(why) = store_response(rules, &primary, response, ctx) {
            log::event(
                Level::Debug,
                "response not cached",
                &[("key", primary.into()), ("reason", why.into())],
            );
        }
    }
}

/// Records what the cache did and lets the request go on.
fn pass(ctx: &mut Context, status: &'static str) -> Action {
    count(status);
    ctx.set_var(STATUS_VAR, status);
    Action::Continue
}

/// Counts what the cache did in `cache_requests_total{result="hit|miss|bypass"}`.
fn count(status: &str) {
    let result = status.to_ascii_lowercase();
    let _ = metrics::counter_add("cache_requests_total", &[("result", &result)], 1);
}

fn warn(message: &str, primary: &str, error: &impl std::fmt::Display) {
    log::event(
        Level::Warn,
        message,
        &[
            ("key", primary.into()),
            ("reason", error.to_string().into()),
        ],
    );
}

/// The fresh entry for this request's variant, if any.
fn lookup(
    primary: &str,
    headers: &Headers,
) -> Result<Option<Entry>, wasmgate_plugin_sdk::kv::Error> {
    let Some(names) = store::vary_spec(primary)? else {
        return Ok(None);
    };
    let digests: Vec<Option<String>> = names
        .iter()
        .map(|name| {
            let values = headers.get_all_bytes(name);
            (!values.is_empty()).then(|| key::value_digest(&values))
        })
        .collect();
    let variant = key::variant(&names, |name| {
        let i = names.iter().position(|n| n == name)?;
        digests[i].as_deref()
    });
    store::load(&key::entry(primary, &variant), clock::now_unix_ms())
}

/// The answer for a hit. For `HEAD` the gateway sends no body, and the
/// `Content-Length` of the stored body.
fn hit(entry: Entry, age: u64) -> Response {
    let mut response = Response::new(entry.status);
    for (name, value) in &entry.headers {
        response.headers.append(name, value);
    }
    response.headers.set("age", age.to_string());
    response.headers.set(X_CACHE, "HIT");
    response.body = Some(entry.body);
    response
}

/// `name=digest` per line, for every request header: what `Vary` may name.
fn header_digests(headers: &Headers) -> String {
    let mut names: Vec<String> = headers.entries().into_iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in names {
        out.push_str(&name);
        out.push('=');
        out.push_str(&key::value_digest(&headers.get_all_bytes(&name)));
        out.push('\n');
    }
    out
}

/// Stores the response if the rules allow it; why not otherwise.
fn store_response(
    rules: &Rules,
    primary: &str,
    response: &Reply,
    ctx: &Context,
) -> Result<(), String> {
    if ctx.upstream().is_none() {
        return Err("not the upstream's answer".into());
    }
    let status = response.status();
    if !rules.statuses.contains(&status) {
        return Err(format!("status {status} is not cached"));
    }
    let directives = Directives::parse(&response.headers.get_all("cache-control"));
    if directives.no_store || directives.private || directives.no_cache {
        return Err("Cache-Control forbids it".into());
    }
    if !rules.cache_set_cookie && response.headers.contains("set-cookie") {
        return Err("Set-Cookie".into());
    }
    let Some(names) = policy::vary_names(&response.headers.get_all("vary")) else {
        return Err("Vary: *".into());
    };
    let digests = ctx.var(VARY_VAR).unwrap_or_default();
    if !names.is_empty() && digests.is_empty() {
        return Err("too many request headers to honour Vary".into());
    }
    let variant = key::variant(&names, |name| {
        digests.lines().find_map(|line| {
            let (n, d) = line.split_once('=')?;
            (n == name).then_some(d)
        })
    });
    let now = clock::now_unix_ms();
    let [expires, date, age] = [
        response.headers.get("expires"),
        response.headers.get("date"),
        response.headers.get("age"),
    ];
    let freshness = Freshness {
        expires: expires.as_deref(),
        date: date.as_deref(),
        age: age.as_deref(),
    };
    let ttl = policy::fresh_for(
        &directives,
        freshness,
        now,
        rules.default_ttl,
        rules.max_ttl,
    );
    if ttl == 0 {
        return Err("already stale".into());
    }
    let Some(body) = response.body() else {
        return Err("no body (response bodies are not buffered)".into());
    };
    let arrived_age = freshness
        .age
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let entry = Entry {
        status,
        born_ms: now.saturating_sub(arrived_age.saturating_mul(1000)),
        expires_ms: now.saturating_add(ttl * 1000),
        headers: response
            .headers
            .entries()
            .into_iter()
            .filter(|(name, _)| {
                !NOT_STORED.contains(&name.as_str())
                    && (rules.cache_set_cookie || name != "set-cookie")
            })
            .collect(),
        body,
    };
    match store::put(
        primary,
        &names,
        &variant,
        &entry,
        Duration::from_secs(ttl),
        rules.caps,
    ) {
        Ok(Ok(_evicted)) => Ok(()),
        Ok(Err(Skipped::TooLarge(size))) => Err(format!(
            "{size} bytes is over max_entry_bytes ({})",
            rules.caps.max_entry_bytes
        )),
        Ok(Err(Skipped::Full)) => Err("no room under max_total_bytes".into()),
        Err(e) => {
            warn("cache store failed", primary, &e);
            Err(e.to_string())
        }
    }
}

export_plugin!(Cache);

#[cfg(test)]
mod tests;
