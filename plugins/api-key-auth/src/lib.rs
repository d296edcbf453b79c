//! `api-key-auth`: authenticates requests by an API key in `X-API-Key` (SkyClust's
//! service-to-service method), and, on a route configured with `manage`, answers as
//! the API that creates, lists and revokes keys.
//!
//! ```json
//! {"header": "x-api-key", "optional": true}
//! {"manage": {"base": "/admin/api-keys"}}
//! ```
//!
//! Each key belongs to a consumer and carries a role, permissions and a tier; the
//! caller is recorded like `jwt-auth` records it (`wasmgate_plugin_sdk::identity`,
//! method `api-key`, plus the `tier` variable) and sent upstream in `X-User-*`
//! headers, after removing any the client sent. Keys are stored hashed (see
//! [`keys`]). With `optional`, a request without the header passes on
//! unauthenticated, so that a `jwt-auth` after it can take a bearer token instead:
//! either one authenticates the request.

mod keys;
mod manage;

use serde::Deserialize;
use wasmgate_plugin_sdk::identity::{Identity, IdentityHeaders};
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{
    Action, Context, Headers, Plugin, Request, Response, Settings, clock, export_plugin,
};

/// Identity method recorded for requests this plugin authenticates.
pub const METHOD: &str = "api-key";
/// The chain variable with the key's id.
pub use wasmgate_plugin_sdk::identity::API_KEY_ID_VAR as KEY_ID_VAR;
/// The chain variable with the key's tier.
pub use wasmgate_plugin_sdk::identity::TIER_VAR;

/// The plugin's config for one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The header the key comes in.
    #[serde(default = "default_header")]
    pub header: String,
    /// Let requests without the header through unauthenticated.
    #[serde(default)]
    pub optional: bool,
    /// The identity headers sent upstream.
    #[serde(default)]
    pub headers: IdentityHeaders,
    /// Answer this route as the key-management API instead of authenticating.
    #[serde(default)]
    pub manage: Option<manage::ManageConfig>,
}

fn default_header() -> String {
    "x-api-key".into()
}

/// What one route does with this plugin.
pub enum ApiKeyAuth {
    /// Checks keys.
    Check {
        /// The header, lower-case.
        header: String,
        /// No header passes on.
        optional: bool,
        /// Identity header names.
        headers: IdentityHeaders,
    },
    /// Manages keys.
    Manage(manage::Manager),
}

impl Plugin for ApiKeyAuth {
    type Config = Config;

    fn new(mut config: Config) -> Result<Self, String> {
        if let Some(manage) = config.manage {
            return manage::Manager::new(manage).map(Self::Manage);
        }
        config.header.make_ascii_lowercase();
        if !Headers::is_valid_name(&config.header) {
            return Err(format!(
                "header: {:?} is not a valid header name",
                config.header
            ));
        }
        config.headers.check()?;
        Ok(Self::Check {
            header: config.header,
            optional: config.optional,
            headers: config.headers,
        })
    }

    fn settings(&self) -> Settings {
        Settings {
            request_body: matches!(self, Self::Manage(_)),
            ..Settings::REQUEST_ONLY
        }
    }

    fn on_request(&self, request: &mut Request, ctx: &mut Context) -> Action {
        let (header, optional, headers) = match self {
            Self::Manage(manager) => return Action::Respond(manager.answer(request, ctx)),
            Self::Check {
                header,
                optional,
                headers,
            } => (header, *optional, headers),
        };
        if Identity::of(ctx).is_some() {
            return Action::Continue;
        }
        headers.strip(&mut request.headers);
        // As bytes: a value that is not UTF-8 is still a key header that is there, so
        // `optional` must not read it as absent, and it counts towards "several".
        let presented = request.headers.get_all_bytes(header);
        request.headers.remove(header);
        let key = match presented.as_slice() {
            [] if optional => return Action::Continue,
            [] => return refuse("missing API key", "no key", ctx),
            [_, _, ..] => return refuse("invalid API key", "several key headers", ctx),
            [key] => match std::str::from_utf8(key) {
                Ok(key) => key.trim(),
                Err(_) => return refuse("invalid API key", "the key header is not UTF-8", ctx),
            },
        };
        match check(key) {
            Ok(Ok((record, identity))) => {
                // Nothing is recorded or sent until every check has passed: a refused
                // request carries no half of an identity to later phases or the log.
                if let Err(why) = identity.check() {
                    return refuse(BAD_IDENTITY, &format!("key {}: {why}", record.id), ctx);
                }
                if headers.inject(&identity, &mut request.headers).is_err() {
                    return refuse(
                        "invalid API key",
                        "the key's data cannot be sent in headers",
                        ctx,
                    );
                }
                if let Err(why) = identity.record(ctx) {
                    return refuse(BAD_IDENTITY, &format!("key {}: {why}", record.id), ctx);
                }
                ctx.set_var(KEY_ID_VAR, &record.id);
                if let Some(tier) = &record.tier {
                    ctx.set_var(TIER_VAR, tier);
                }
                Action::Continue
            }
            Ok(Err(reason)) => refuse("invalid API key", &reason, ctx),
            Err(why) => {
                log::event(
                    Level::Error,
                    "cannot check API keys",
                    &[("reason", why.into())],
                );
                Action::Respond(Response::service_unavailable(
                    "authentication is unavailable, try again later",
                    ctx,
                ))
            }
        }
    }
}

/// What the client reads when a key's role or permissions cannot be recorded.
const BAD_IDENTITY: &str =
    "invalid API key: its roles and permissions may not hold ',', whitespace or control characters";

/// 401 to the client, the reason to the log.
fn refuse(message: &str, reason: &str, ctx: &Context) -> Action {
    log::event(
        Level::Warn,
        "api key refused",
        &[
            ("method", ctx.method().as_str().into()),
            ("path", ctx.path().into()),
            ("reason", reason.into()),
        ],
    );
    Action::Respond(Response::unauthorized(message, ctx))
}

/// The key's record and identity, or why it is refused (`Err` outside: the store
/// failed).
fn check(key: &str) -> Result<Result<(keys::Record, Identity), String>, String> {
    let Some(id) = keys::id_of(key) else {
        return Ok(Err("not a wasmgate API key".into()));
    };
    let Some(record) = keys::load(id)? else {
        return Ok(Err(format!("unknown key {id}")));
    };
    if !keys::same(&keys::hash(key), &record.hash) {
        return Ok(Err(format!("wrong secret for key {id}")));
    }
    if record.revoked_at.is_some() {
        return Ok(Err(format!("key {id} was revoked")));
    }
    if record
        .expires_at_ms
        .is_some_and(|at| clock::now_unix_ms() >= at)
    {
        return Ok(Err(format!("key {id} expired")));
    }
    if keys::consumer_revoked(&record.consumer)? {
        return Ok(Err(format!(
            "key {id}: consumer {:?} was revoked",
            record.consumer
        )));
    }
    let identity = Identity {
        method: METHOD.into(),
        user_id: Some(record.consumer.clone()),
        username: None,
        roles: record.role.iter().cloned().collect(),
        permissions: record.permissions.clone(),
        consumer: Some(record.consumer.clone()),
    };
    Ok(Ok((record, identity)))
}

export_plugin!(ApiKeyAuth);

#[cfg(test)]
mod tests;
