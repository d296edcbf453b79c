//! The discovery API and the service listing, answered by the plugin (SkyClust's
//! success envelope, the gateway's error envelope):
//!
//! | request | answer |
//! |---|---|
//! | `POST BASE/register` `{name (or service_name), host, port, id?, health_check_url?, version?, metadata?, …}` | 201 and the instance; its `id` is `NAME-HOST-PORT` unless given; registering an id again replaces it |
//! | `DELETE BASE/unregister/{id}` | the removed instance; 404 for an unknown id |
//! | `GET BASE/services` | `{services: [instance…], count}`, each with `status` `healthy` or `unhealthy` and `last_heartbeat` |
//! | `GET BASE/services/{id}` | the instance; 404 for an unknown id |
//! | `POST BASE/heartbeat/{id}` | the instance, live again; 404 for an unknown id (register again) |
//! | `POST BASE/cleanup` | `{removed: [id…], count}`: every instance that is not live is dropped |
//! | `GET SERVICES` | `{services: [{name, instances, healthy, endpoints}], count}` |
//!
//! Fields the registration does not name are kept in `metadata`.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use wasmgate_plugin_sdk::log::{self, Level};
use wasmgate_plugin_sdk::{Context, ErrorCode, Method, Response, clock, kv};

use crate::Timings;
use crate::store::{self, Instance};

/// A registration's body.
#[derive(Debug, Deserialize)]
struct Registration {
    #[serde(alias = "service_name")]
    name: String,
    host: String,
    port: u16,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    health_check_url: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// The longest DNS name.
const MAX_HOST_BYTES: usize = 253;

/// Answers one request to the discovery API under `base`.
pub fn discovery(
    base: &str,
    timings: Timings,
    method: &Method,
    body: &[u8],
    ctx: &Context,
) -> Response {
    let path = ctx.path();
    let Some(rest) = path
        .strip_prefix(base)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    else {
        return Response::not_found("not under the discovery API's path", ctx);
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let now = clock::now_unix_ms();
    let result = match (method.as_str(), segments.as_slice()) {
        ("POST", ["register"]) => register(body, timings, now, ctx),
        ("DELETE", ["unregister", id]) => {
            store::unregister(id, timings.forget_after, now).map(|gone| match gone {
                Some(instance) => {
                    log::event(
                        Level::Info,
                        "service unregistered",
                        &[
                            ("service_id", instance.id.as_str().into()),
                            ("service", instance.name.as_str().into()),
                        ],
                    );
                    Response::success(
                        200,
                        "service unregistered",
                        &instance.listed(timings.heartbeat_ttl, now),
                        ctx,
                    )
                }
                None => unknown(id, ctx),
            })
        }
        ("GET", ["services"]) => store::all(timings.forget_after, now).map(|all| {
            let listed: Vec<Value> = all
                .iter()
                .map(|i| i.listed(timings.heartbeat_ttl, now))
                .collect();
            Response::success(
                200,
                "registered services",
                &json!({"services": listed, "count": listed.len()}),
                ctx,
            )
        }),
        ("GET", ["services", id]) => {
            store::load(id, timings.forget_after, now).map(|found| match found {
                Some(instance) => Response::success(
                    200,
                    "service",
                    &instance.listed(timings.heartbeat_ttl, now),
                    ctx,
                ),
                None => unknown(id, ctx),
            })
        }
        ("POST", ["heartbeat", id]) => {
            store::heartbeat(id, now, timings.forget_after).map(|found| match found {
                Some(instance) => Response::success(
                    200,
                    "heartbeat recorded",
                    &instance.listed(timings.heartbeat_ttl, now),
                    ctx,
                ),
                None => unknown(id, ctx),
            })
        }
        ("POST", ["cleanup"]) => cleanup(timings, now, ctx),
        (_, ["register" | "cleanup"]) => Ok(not_allowed(method, "POST", ctx)),
        (_, ["unregister", _]) => Ok(not_allowed(method, "DELETE", ctx)),
        (_, ["heartbeat", _]) => Ok(not_allowed(method, "POST", ctx)),
        (_, ["services"] | ["services", _]) => Ok(not_allowed(method, "GET", ctx)),
        _ => Ok(Response::not_found("no such discovery API resource", ctx)),
    };
    result.unwrap_or_else(|why| store_failed(&why, ctx))
}

/// Answers `GET` on the service listing.
pub fn services(path: &str, timings: Timings, method: &Method, ctx: &Context) -> Response {
    if ctx.path() != path {
        return Response::not_found("no such resource", ctx);
    }
    if *method != Method::Get {
        return not_allowed(method, "GET", ctx);
    }
    let now = clock::now_unix_ms();
    match store::all(timings.forget_after, now) {
        Ok(all) => {
            let mut by_name: Vec<(String, Vec<&Instance>)> = Vec::new();
            for instance in &all {
                match by_name.last_mut() {
                    Some((name, instances)) if *name == instance.name => instances.push(instance),
                    _ => by_name.push((instance.name.clone(), vec![instance])),
                }
            }
            let services: Vec<Value> = by_name
                .iter()
                .map(|(name, instances)| {
                    let live: Vec<&str> = instances
                        .iter()
                        .filter(|i| i.is_live(timings.heartbeat_ttl, now))
                        .map(|i| i.url.as_str())
                        .collect();
                    json!({
                        "name": name,
                        "instances": instances.len(),
                        "healthy": live.len(),
                        "endpoints": live,
                    })
                })
                .collect();
            Response::success(
                200,
                "services",
                &json!({"services": services, "count": services.len()}),
                ctx,
            )
        }
        Err(why) => store_failed(&why, ctx),
    }
}

fn register(body: &[u8], timings: Timings, now: u64, ctx: &Context) -> Result<Response, kv::Error> {
    let form: Registration = match serde_json::from_slice(body) {
        Ok(form) => form,
        Err(e) => {
            return Ok(Response::bad_request(
                &format!("invalid registration: {e}"),
                ctx,
            ));
        }
    };
    let mut fields = Map::new();
    if !store::is_name(&form.name) {
        fields.insert(
            "name".into(),
            "1 to 128 letters, digits, '.', '_', '-' or ':'".into(),
        );
    }
    let url = endpoint_url(&form.host, form.port);
    if url.is_none() {
        fields.insert(
            "host".into(),
            "an IP address or a DNS name, and a port from 1 to 65535".into(),
        );
    }
    let id = form.id.clone().unwrap_or_else(|| {
        let id: String = format!("{}-{}-{}", form.name, form.host, form.port)
            .chars()
            .map(|c| {
                if store::is_name(&c.to_string()) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        id
    });
    if !store::is_name(&id) {
        fields.insert(
            "id".into(),
            "1 to 128 letters, digits, '.', '_', '-' or ':'".into(),
        );
    }
    let (Some(url), true) = (url, fields.is_empty()) else {
        return Ok(Response::error_with_data(
            ErrorCode::ValidationError,
            "invalid registration",
            &json!({ "fields": fields }),
            ctx,
        ));
    };
    let mut metadata = form.metadata;
    metadata.extend(form.other);
    let instance = Instance {
        id,
        name: form.name,
        host: form.host,
        port: form.port,
        url,
        health_check_url: form.health_check_url,
        version: form.version,
        metadata,
        registered_at: clock::rfc3339_utc(now),
        last_heartbeat_ms: now,
    };
    if !store::register(&instance, timings.forget_after, now)? {
        return Ok(Response::conflict(
            &format!(
                "service {:?} has {} instances, the most it may have",
                instance.name,
                store::MAX_INSTANCES
            ),
            ctx,
        ));
    }
    log::event(
        Level::Info,
        "service registered",
        &[
            ("service_id", instance.id.as_str().into()),
            ("service", instance.name.as_str().into()),
            ("endpoint", instance.url.as_str().into()),
        ],
    );
    Ok(Response::success(
        201,
        "service registered",
        &instance.listed(timings.heartbeat_ttl, now),
        ctx,
    ))
}

fn cleanup(timings: Timings, now: u64, ctx: &Context) -> Result<Response, kv::Error> {
    let removed = store::remove_silent(timings.heartbeat_ttl, timings.forget_after, now)?;
    log::event(
        Level::Info,
        "inactive services removed",
        &[("count", (removed.len() as i64).into())],
    );
    Ok(Response::success(
        200,
        "inactive services removed",
        &json!({"count": removed.len(), "removed": removed}),
        ctx,
    ))
}

/// `http://HOST:PORT` for a registration's host (an IP address, `[v6]` or a DNS name)
/// and port, or `None` when either cannot be one.
fn endpoint_url(host: &str, port: u16) -> Option<String> {
    if port == 0 {
        return None;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Some(format!("http://{ip}:{port}")),
        Ok(IpAddr::V6(ip)) => Some(format!("http://[{ip}]:{port}")),
        Err(_) if is_dns_name(host) => Some(format!("http://{}:{port}", host.to_ascii_lowercase())),
        Err(_) => None,
    }
}

/// Letters, digits and `-` in dot-separated labels of 1 to 63 bytes.
fn is_dns_name(host: &str) -> bool {
    host.len() <= MAX_HOST_BYTES
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn unknown(id: &str, ctx: &Context) -> Response {
    Response::not_found(&format!("no service instance {id:?}"), ctx)
}

fn not_allowed(method: &Method, allow: &str, ctx: &Context) -> Response {
    Response::error(
        405,
        "METHOD_NOT_ALLOWED",
        &format!("{method} is not allowed here"),
        ctx,
    )
    .with_header("allow", allow)
}

fn store_failed(why: &kv::Error, ctx: &Context) -> Response {
    log::event(
        Level::Error,
        "service registry unavailable",
        &[("reason", why.to_string().into())],
    );
    Response::service_unavailable("the service registry is unavailable, try again later", ctx)
}
