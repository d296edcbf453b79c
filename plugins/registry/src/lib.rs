//! `registry`: MSA Gateway's service registry as a plugin. Instances of a service
//! register themselves over HTTP, send heartbeats, and receive the traffic of
//! `/api/{service}/{path}`, round-robin over the live ones; none is configured in the
//! gateway's file. Three parts, each on its own route (one config key each):
//!
//! | config | requests | answers |
//! |---|---|---|
//! | `discovery = "/discovery"` | `POST …/register`, `DELETE …/unregister/{id}`, `GET …/services`, `GET …/services/{id}`, `POST …/heartbeat/{id}`, `POST …/cleanup` | the discovery API (`api.rs`) |
//! | `services = "/services"` | `GET` | each service with its instances, live or not |
//! | `proxy = "/api"` | `/api/{service}/{path}` | sent to `/{path}` on a live instance of `service`, or 503 `SERVICE_UNAVAILABLE` |
//!
//! An instance is live for `heartbeat_ttl_seconds` after its registration or latest
//! heartbeat; one silent for `forget_after_seconds` is dropped from the store (and
//! `POST …/cleanup` drops every one that is not live at once). Records are in `kv`
//! (`store.rs`), so every route and every gateway replica on one Redis shares them.
//! Where a proxied request may go is the operator's decision, not the registrant's:
//! the gateway refuses (500 `PLUGIN_ERROR`, nothing sent) an instance outside the
//! plugin's `upstreams` allowlist.

mod api;
mod store;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, Plugin, Request, Response, Settings, Target, clock, export_plugin,
};

pub use store::Instance;

/// The plugin's config for one route: exactly one of `discovery`, `services` and
/// `proxy`, and the timings (the same on every route of one registry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Answer the discovery API under this path, e.g. `/discovery`.
    #[serde(default)]
    pub discovery: Option<String>,
    /// Answer `GET` on this path with the services and their instances, e.g.
    /// `/services`.
    #[serde(default)]
    pub services: Option<String>,
    /// Proxy `PROXY/{service}/{path}` to the service's live instances, e.g. `/api`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// How long an instance stays live after a heartbeat.
    #[serde(default = "default_heartbeat_ttl")]
    pub heartbeat_ttl_seconds: u64,
    /// How long the record of a silent instance is kept (listed as `unhealthy`).
    #[serde(default = "default_forget_after")]
    pub forget_after_seconds: u64,
    /// How long one plugin instance reuses a service's list of live instances
    /// before reading it again (0: every request reads it).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
}

fn default_heartbeat_ttl() -> u64 {
    30
}

fn default_forget_after() -> u64 {
    3600
}

fn default_refresh_ms() -> u64 {
    1000
}

/// The registry's timings.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Live this long after a heartbeat.
    pub heartbeat_ttl: Duration,
    /// Kept this long after a heartbeat.
    pub forget_after: Duration,
    /// A list of live instances is reused this long.
    pub refresh_ms: u64,
}

/// What one route does.
pub enum Part {
    /// The discovery API under this base path.
    Discovery(String),
    /// The service listing at this path.
    Services(String),
    /// The proxy under this base path.
    Proxy(String),
}

/// The registry on one route.
pub struct Registry {
    part: Part,
    timings: Timings,
    /// The live instances of each service this plugin instance routed to lately, and
    /// when they were read.
    live: RefCell<BTreeMap<String, (u64, Vec<Instance>)>>,
    /// Turns taken while the store could not count them.
    turns: Cell<u64>,
}

/// The most services whose live instances one plugin instance remembers.
const MAX_CACHED_SERVICES: usize = 256;

fn base(field: &str, path: String) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("{field}: {path:?} must start with '/'"));
    }
    Ok(path.trim_end_matches('/').to_string())
}

impl Plugin for Registry {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let part = match (config.discovery, config.services, config.proxy) {
            (Some(path), None, None) => Part::Discovery(base("discovery", path)?),
            (None, Some(path), None) => Part::Services(base("services", path)?),
            (None, None, Some(path)) => Part::Proxy(base("proxy", path)?),
            _ => {
                return Err(
                    "give exactly one of `discovery`, `services` and `proxy` (one route each)"
                        .into(),
                );
            }
        };
        if config.heartbeat_ttl_seconds == 0 {
            return Err("heartbeat_ttl_seconds must be at least 1".into());
        }
        if config.forget_after_seconds < config.heartbeat_ttl_seconds {
            return Err(format!(
                "forget_after_seconds ({}) must be at least heartbeat_ttl_seconds ({})",
                config.forget_after_seconds, config.heartbeat_ttl_seconds
            ));
        }
        Ok(Self {
            part,
            timings: Timings {
                heartbeat_ttl: Duration::from_secs(config.heartbeat_ttl_seconds),
                forget_after: Duration::from_secs(config.forget_after_seconds),
                refresh_ms: config.refresh_ms,
            },
            live: RefCell::default(),
            turns: Cell::default(),
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: matches!(self.part, Part::Discovery(_)),
            ..Settings::REQUEST_ONLY
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        match &self.part {
            Part::Discovery(base) => Action::Respond(api::discovery(
                base,
                self.timings,
                &request.method(),
                &request.body().unwrap_or_default(),
                ctx,
            )),
            Part::Services(path) => {
                Action::Respond(api::services(path, self.timings, &request.method(), ctx))
            }
            Part::Proxy(base) => self.proxy(base, request, ctx),
        }
    }
}

impl Registry {
    /// Sends `BASE/{service}/{path}` to `/{path}` on a live instance of `service`.
    fn proxy(&self, base: &str, request: &mut Request, ctx: &Context) -> Action {
        let path = ctx.path();
        let Some(rest) = path
            .strip_prefix(base)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        else {
            return Action::Respond(Response::not_found("not under the proxy's path", ctx));
        };
        let rest = &rest[rest.len().min(1)..];
        let (service, upstream_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if service.is_empty() {
            return Action::Respond(Response::not_found(
                &format!("name a service: {base}/{{service}}/{{path}}"),
                ctx,
            ));
        }
        if !store::is_name(service) {
            return Action::Respond(Response::service_unavailable(
                "no live instance of that service",
                ctx,
            ));
        }
        let live = match self.live_instances(service) {
            Ok(live) => live,
            Err(why) => {
                log::event(
                    Level::Error,
                    "service registry unavailable",
                    &[("service", service.into()), ("reason", why.into())],
                );
                return Action::Respond(Response::service_unavailable(
                    "the service registry is unavailable, try again later",
                    ctx,
                ));
            }
        };
        if live.is_empty() {
            log::event(
                Level::Warn,
                "no live instance",
                &[("service", service.into())],
            );
            return Action::Respond(Response::service_unavailable(
                &format!("no live instance of service {service:?}"),
                ctx,
            ));
        }
        // A store that cannot count still routes, taking this plugin instance's turns.
        let turn = store::next_turn(service, self.timings.forget_after).unwrap_or_else(|_| {
            self.turns.set(self.turns.get().wrapping_add(1));
            self.turns.get()
        });
        let chosen = &live[(turn % live.len() as u64) as usize];
        if let Err(why) = request.try_set_path(upstream_path) {
            return Action::Respond(Response::bad_request(
                &format!("cannot forward this path: {why}"),
                ctx,
            ));
        }
        Action::ContinueTo(Target::Endpoint(chosen.url.clone()))
    }

    /// The live instances of `service`, read again once the cached list is older than
    /// `refresh_ms`. A store failure with a cached list keeps using it.
    fn live_instances(&self, service: &str) -> Result<Vec<Instance>, String> {
        let now = clock::now_unix_ms();
        let cached = self.live.borrow().get(service).cloned();
        if let Some((read_at, live)) = &cached
            && now.saturating_sub(*read_at) < self.timings.refresh_ms
        {
            return Ok(self.still_live(live.clone(), now));
        }
        let live = match store::instances(service, self.timings.forget_after, now) {
            Ok(all) => self.still_live(all, now),
            Err(why) => {
                return match cached {
                    Some((_, live)) => Ok(self.still_live(live, now)),
                    None => Err(why.to_string()),
                };
            }
        };
        let mut cache = self.live.borrow_mut();
        if cache.len() >= MAX_CACHED_SERVICES {
            cache.clear();
        }
        cache.insert(service.to_string(), (now, live.clone()));
        Ok(live)
    }

    fn still_live(&self, mut instances: Vec<Instance>, now: u64) -> Vec<Instance> {
        instances.retain(|i| i.is_live(self.timings.heartbeat_ttl, now));
        instances
    }
}

export_plugin!(Registry);

#[cfg(test)]
mod tests;
