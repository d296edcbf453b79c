//! The key-management API, answered on a route configured with `manage`:
//!
//! | request | answer |
//! |---|---|
//! | `POST BASE` `{consumer, role?, permissions?, tier?, name?, expires_in_seconds?}` | 201 with the new key: the only time it is shown |
//! | `GET BASE` | every key: id, prefix, consumer, role, permissions, tier, dates; never a secret or a hash |
//! | `GET BASE/ID` | one key, the same way |
//! | `DELETE BASE/ID` | revokes the key |
//! | `DELETE BASE/consumers/NAME` | revokes the consumer: all their keys, now and later |
//!
//! Serve it on the admin listener (`listener = "admin"`), or, on the public one,
//! behind `jwt-auth` and `rbac` (admin only).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wasmgate_plugin_sdk::identity::Identity;
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{Context, Request, Response, clock};

use crate::keys::{self, KEY_PREFIX, Record};

/// `manage`: where the API lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManageConfig {
    /// The path of the key collection as received, e.g. `/admin/api-keys`.
    pub base: String,
}

/// The key-management API of one route.
#[derive(Debug)]
pub struct Manager {
    base: String,
}

/// What clients see of a key.
#[derive(Debug, Serialize)]
struct Listed<'r> {
    id: &'r str,
    prefix: String,
    consumer: &'r str,
    role: &'r Option<String>,
    permissions: &'r [String],
    tier: &'r Option<String>,
    name: &'r Option<String>,
    created_at: &'r str,
    expires_at: Option<String>,
    revoked_at: &'r Option<String>,
}

fn listed(record: &Record) -> Listed<'_> {
    Listed {
        id: &record.id,
        prefix: format!("{KEY_PREFIX}{}", record.id),
        consumer: &record.consumer,
        role: &record.role,
        permissions: &record.permissions,
        tier: &record.tier,
        name: &record.name,
        created_at: &record.created_at,
        expires_at: record.expires_at_ms.map(clock::rfc3339_utc),
        revoked_at: &record.revoked_at,
    }
}

/// The body of a create request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    consumer: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

impl Manager {
    /// Checks the config.
    pub fn new(config: ManageConfig) -> Result<Self, String> {
        if !config.base.starts_with('/') {
            return Err(format!(
                "manage.base: {:?} must start with '/'",
                config.base
            ));
        }
        Ok(Self {
            base: config.base.trim_end_matches('/').to_string(),
        })
    }

    /// Answers one management request.
    pub fn answer(&self, request: &Request, ctx: &Context) -> Response {
        let path = ctx.path();
        let Some(rest) = path.strip_prefix(&self.base) else {
            return Response::not_found("not under the key API's base", ctx);
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = request.method();
        let result = match (method.as_str(), segments.as_slice()) {
            ("POST", []) => self.create(&request.body().unwrap_or_default(), ctx),
            ("GET", []) => keys::all().map(|records| {
                let listed: Vec<Listed<'_>> = records.iter().map(listed).collect();
                Response::success(200, "api keys", &json!({ "keys": listed }), ctx)
            }),
            ("GET", [id]) => keys::load(id).map(|record| match record {
                Some(record) => {
                    Response::success(200, "api key", &json!({"key": listed(&record)}), ctx)
                }
                None => Response::not_found("no such key", ctx),
            }),
            ("DELETE", [id]) => self.revoke(id, ctx),
            ("DELETE", ["consumers", consumer]) => self.revoke_consumer(consumer, ctx),
            (_, [] | [_] | ["consumers", _]) => Ok(Response::error(
                405,
                "METHOD_NOT_ALLOWED",
                &format!("{method} is not allowed here"),
                ctx,
            )),
            _ => Ok(Response::not_found("no such key API resource", ctx)),
        };
        result.unwrap_or_else(|why| {
            log::event(Level::Error, "key API failed", &[("reason", why.into())]);
            Response::internal_error("the key store failed", ctx)
        })
    }

    fn create(&self, body: &[u8], ctx: &Context) -> Result<Response, String> {
        let form: Create = match serde_json::from_slice(body) {
            Ok(form) => form,
            Err(e) => {
                return Ok(Response::bad_request(
                    &format!("invalid key request: {e}"),
                    ctx,
                ));
            }
        };
        if !keys::is_consumer_name(&form.consumer) {
            return Ok(Response::error_with_data(
                wasmgate_plugin_sdk::ErrorCode::ValidationError,
                "invalid key request: consumer",
                &json!({"fields": {"consumer": "1 to 64 letters, digits, '.', '_', '-' or '@'"}}),
                ctx,
            ));
        }
        // A key is checked as it will be used: its role and permissions become one
        // comma-joined list each, so none may hold a separator.
        let roles = Identity {
            roles: form.role.iter().cloned().collect(),
            ..Identity::default()
        };
        let permissions = Identity {
            permissions: form.permissions.clone(),
            ..Identity::default()
        };
        for (field, identity) in [("role", roles), ("permissions", permissions)] {
            if let Err(why) = identity.check() {
                return Ok(Response::error_with_data(
                    wasmgate_plugin_sdk::ErrorCode::ValidationError,
                    &format!("invalid key request: {field}"),
                    &json!({ "fields": { field: why } }),
                    ctx,
                ));
            }
        }
        let now = clock::now_unix_ms();
        for _ in 0..3 {
            let (key, id) = keys::generate()?;
            let record = Record {
                id: id.clone(),
                hash: keys::hash(&key),
                consumer: form.consumer.clone(),
                role: form.role.clone(),
                permissions: form.permissions.clone(),
                tier: form.tier.clone(),
                name: form.name.clone(),
                created_at: clock::rfc3339_utc(now),
                expires_at_ms: form
                    .expires_in_seconds
                    .map(|s| now.saturating_add(s.saturating_mul(1000))),
                revoked_at: None,
            };
            if keys::store(&record, true)? {
                log::event(
                    Level::Info,
                    "api key created",
                    &[
                        ("key_id", id.as_str().into()),
                        ("consumer", record.consumer.as_str().into()),
                    ],
                );
                let mut data = serde_json::to_value(listed(&record)).map_err(|e| e.to_string())?;
                data["key"] = Value::from(key);
                return Ok(Response::success(
                    201,
                    "api key created; it is shown only once",
                    &data,
                    ctx,
                ));
            }
        }
        Err("three new key ids in a row were taken".into())
    }

    fn revoke(&self, id: &str, ctx: &Context) -> Result<Response, String> {
        let Some(mut record) = keys::load(id)? else {
            return Ok(Response::not_found("no such key", ctx));
        };
        if record.revoked_at.is_none() {
            record.revoked_at = Some(clock::rfc3339_utc(clock::now_unix_ms()));
            keys::store(&record, false)?;
            log::event(
                Level::Info,
                "api key revoked",
                &[
                    ("key_id", id.into()),
                    ("consumer", record.consumer.as_str().into()),
                ],
            );
        }
        Ok(Response::success(
            200,
            "api key revoked",
            &json!({"key": listed(&record)}),
            ctx,
        ))
    }

    fn revoke_consumer(&self, consumer: &str, ctx: &Context) -> Result<Response, String> {
        if !keys::is_consumer_name(consumer) {
            return Ok(Response::bad_request("not a consumer name", ctx));
        }
        keys::revoke_consumer(consumer, &clock::rfc3339_utc(clock::now_unix_ms()))?;
        log::event(
            Level::Info,
            "consumer revoked",
            &[("consumer", consumer.into())],
        );
        Ok(Response::success(
            200,
            "consumer revoked",
            &json!({"consumer": consumer}),
            ctx,
        ))
    }
}
