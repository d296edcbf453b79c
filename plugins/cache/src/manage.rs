//! The purge API, answered on a route configured with `manage` (serve it on the admin
//! listener, `listener = "admin"`; it has no authentication of its own):
//!
//! | request | answer |
//! |---|---|
//! | `DELETE BASE?prefix=/api/products` | deletes the entries of `/api/products` and below (segment-wise, any host, query and variant): `{"purged": N, "more": false}` |
//! | `DELETE BASE` | deletes everything, the size ledger included |
//! | `GET BASE` | `{"stored_bytes": N}`: what the ledger counts against `max_total_bytes` |
//!
//! One request deletes at most [`PURGE_LIMIT`] keys, so that it fits in the plugin's
//! deadline: `"more": true` says to send it again.

use serde::Deserialize;
use serde_json::json;
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{Context, Request, Response};

use crate::store;

/// The most keys (entries and vary specs) one purge request deletes.
pub const PURGE_LIMIT: usize = 5000;

/// `manage`: where the API lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManageConfig {
    /// The path of the API as received, e.g. `/admin/cache`.
    pub base: String,
}

/// The purge API of one route.
#[derive(Debug)]
pub struct Manager {
    base: String,
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

    /// Answers one request to the API.
    pub fn answer(&self, request: &Request, ctx: &Context) -> Response {
        let path = ctx.path();
        if path.trim_end_matches('/') != self.base {
            return Response::not_found("no such cache API resource", ctx);
        }
        let method = request.method();
        let prefix = request
            .query()
            .and_then(|q| wasmgate_plugin_sdk::query::param(&q, "prefix"));
        let result = match method.as_str() {
            "DELETE" => match prefix.as_deref() {
                None => store::purge_all(PURGE_LIMIT),
                Some(prefix) => match prefixes(prefix) {
                    Some(prefixes) => store::purge(&prefixes, PURGE_LIMIT),
                    None => {
                        return Response::bad_request(
                            "prefix: a path starting with '/', without spaces or control characters",
                            ctx,
                        );
                    }
                },
            }
            .map(|(purged, more)| {
                log::event(
                    Level::Info,
                    "cache purged",
                    &[
                        ("prefix", prefix.as_deref().unwrap_or("").into()),
                        ("purged", (purged as i64).into()),
                    ],
                );
                Response::json(200, &json!({"purged": purged, "more": more}))
            }),
            "GET" => store::stored_bytes()
                .map(|bytes| Response::json(200, &json!({ "stored_bytes": bytes }))),
            _ => Ok(Response::error(
                405,
                "METHOD_NOT_ALLOWED",
                &format!("{method} is not allowed here"),
                ctx,
            )
            .with_header("allow", "GET, DELETE")),
        };
        result.unwrap_or_else(|e| {
            log::event(
                Level::Error,
                "cache API failed",
                &[("reason", e.to_string().into())],
            );
            Response::internal_error("the cache store failed", ctx)
        })
    }
}

/// The key prefixes of path prefix `prefix`, segment-wise: the path itself (its keys
/// go on with a space) and what lies below it.
fn prefixes(prefix: &str) -> Option<Vec<String>> {
    if !prefix.starts_with('/') || prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    if prefix.ends_with('/') {
        return Some(vec![prefix.to_string()]);
    }
    Some(vec![format!("{prefix} "), format!("{prefix}/")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_segment_wise() {
        assert_eq!(
            prefixes("/api").unwrap(),
            vec!["/api ".to_string(), "/api/".to_string()]
        );
        assert_eq!(prefixes("/").unwrap(), vec!["/".to_string()]);
        assert_eq!(prefixes("api"), None);
        assert_eq!(prefixes("/a b"), None);
    }
}
