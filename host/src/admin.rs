//! The admin API, on its own listener (loopback by default): what is loaded and
//! serving, and a way to reload.
//!
//! - `GET /admin/plugins`: every plugin in the plugin directory (name, content hash,
//!   WIT version, loaded at, compile ms, cache use, calls, errors, the routes that use
//!   it) and the latest rejection about each, including files that never loaded, plus
//!   the latest rejection of any kind (a config error is about no one plugin).
//! - `GET /admin/routes`: the routes being served, with their plugin chains.
//! - `GET /admin/services`: each upstream service's balancing, outlier and breaker
//!   settings, its breaker's phase, and each endpoint's weight, probe verdict,
//!   ejection, failures in a row, requests in flight and breaker phase.
//! - `GET /admin/snapshot`: the serving generation, when it was loaded, reload counts
//!   and the latest rejection.
//! - `POST /admin/reload`: reload now; answers with the outcome (422 with the reason
//!   when rejected).
//! - `GET /admin/state`: the state store behind `kv`: backend, size on disk, and each
//!   namespace's live entries and bytes as the latest sweep counted them;
//!   `POST /admin/state/sweep` sweeps now (removes expired entries) and answers with
//!   what it found.
//!
//! - `GET /admin/openapi.json`: this API described in OpenAPI 3.1 (`admin/openapi.rs`).
//! - `GET /`: the dashboard (`admin/dashboard.rs`), drawn from the endpoints above.
//! - `GET /metrics`, `/health`, `/health/live`, `/health/ready`: as on the gateway
//!   listener (see `status`), always here whatever paths the gateway listener uses.
//!
//! - Anything else goes to the routes configured with `listener = "admin"`, if any:
//!   operator-only endpoints made by plugins (an API-key manager, say).
//!
//! Every response carries `X-Request-Id`; errors are the gateway's JSON envelope.
//! Unless `allow_remote` is set, a request addressed (`Host`) to anything but
//! `localhost` or a loopback address is refused: a page whose name was rebound to
//! 127.0.0.1 (DNS rebinding) is same-origin to itself and would otherwise read and
//! drive the API from the operator's browser.

mod dashboard;
mod openapi;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::config::Listener;
use crate::error::{ErrorCode, Reject};
use crate::plugin::monotonic_ns;
use crate::reload::{Outcome, Rejection, Reloader, Trigger, rfc3339};
use crate::request_id;
use crate::server::Routed;
use crate::status::{self, Builtin};
use crate::upstream::full_body;

/// The admin API's routes.
pub fn router(reloader: Arc<Reloader>) -> Router {
    // `[admin]` is read at start only, so this holds for the listener's life.
    let loopback_only = !reloader
        .shared()
        .snapshot
        .load()
        .config
        .config
        .admin
        .allow_remote;
    Router::new()
        .route(
            "/admin/openapi.json",
            get(|| async { Json(openapi::document(env!("CARGO_PKG_VERSION"))) }),
        )
        .route("/admin/plugins", get(plugins))
        .route("/admin/routes", get(routes))
        .route("/admin/services", get(services))
        .route("/admin/snapshot", get(snapshot))
        .route("/admin/reload", post(reload))
        .route("/admin/state", get(state))
        .route("/admin/state/sweep", post(sweep))
        .route("/metrics", get(builtin_metrics))
        .route("/health", get(builtin_health))
        .route("/health/live", get(builtin_live))
        .route("/health/ready", get(builtin_ready))
        .merge(dashboard::routes())
        .fallback(plugin_routes)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(reloader)
        .layer(axum::middleware::from_fn(move |request, next| {
            with_request_id(request, next, loopback_only)
        }))
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    reloader: Arc<Reloader>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let service = router(reloader).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%error, "admin API stopped");
    }
}

/// The request id of the current admin request.
#[derive(Clone)]
struct RequestId(String);

/// Picks the request id, hands it to the handler, and puts it on the response;
/// refuses what a browser sends on behalf of another site (see [`cross_site`] and, on
/// a `loopback_only` listener, [`addressed_elsewhere`]).
async fn with_request_id(mut request: Request, next: Next, loopback_only: bool) -> Response {
    let id = request_id::from_headers(request.headers());
    request.extensions_mut().insert(RequestId(id.clone()));
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = if loopback_only && addressed_elsewhere(request.headers()) {
        reject(
            &request,
            ErrorCode::Forbidden,
            "the admin API answers only requests addressed to localhost or a loopback \
             address (set [admin] allow_remote = true to serve other names)"
                .into(),
        )
    } else if !reads && cross_site(request.headers()) {
        reject(
            &request,
            ErrorCode::Forbidden,
            "the admin API refuses requests from other sites' pages".into(),
        )
    } else {
        next.run(request).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    response
}

/// Whether a browser says the request comes from a page of another site (or of
/// another port on this host). The admin API has no authentication, so such a page,
/// open in the operator's browser, must not change anything: a form can `POST` to it
/// without asking first (reads are safe: the browser does not let that page see the
/// answer). The dashboard's own requests are same-origin; tools (curl, scripts) send
/// neither `Sec-Fetch-Site` nor `Origin` and pass.
fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header::{HOST, ORIGIN};
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    origin_host.is_none() || origin_host != headers.get(HOST).and_then(|h| h.to_str().ok())
}

/// Whether the request names a host (`Host`) other than `localhost` (or a name under
/// it) or a loopback address. No `Host` (HTTP/1.0 tools) is not a browser's request.
fn addressed_elsewhere(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers.get(axum::http::header::HOST) else {
        return false;
    };
    let Some(authority) = host
        .to_str()
        .ok()
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
    else {
        return true;
    };
    let name = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let local_name = name == "localhost" || name.ends_with(".localhost");
    !(local_name
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

fn reject(request: &Request, code: ErrorCode, message: String) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    Reject::new(code, message).into_response::<axum::body::Body>(&id)
}

/// Requests for no admin endpoint go to the `listener = "admin"` routes, if the config
/// has any: operator-only endpoints made by plugins. Their bodies are buffered (up to
/// `[limits] max_body_bytes`); the rest is as on the gateway listener.
async fn plugin_routes(
    State(reloader): State<Arc<Reloader>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let received_ns = monotonic_ns();
    let started = std::time::Instant::now();
    let shared = reloader.shared().clone();
    let snapshot = shared.snapshot.load_full();
    if snapshot.admin_table.is_empty() {
        return not_found(request).await;
    }
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let limit = snapshot.limits.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!("the request body is over the limit of {limit} bytes");
            return Reject::new(ErrorCode::PayloadTooLarge, message)
                .into_response::<axum::body::Body>(&id);
        }
    };
    let request = http::Request::from_parts(parts, full_body(bytes));
    let routed = Routed {
        listener: Listener::Admin,
        client,
        secure: false,
        client_cert: None,
        request_id: &id,
        received_ns,
        started,
        body_fault: None,
    };
    routed
        .serve(&shared, snapshot, request, Ok(()))
        .await
        .map(axum::body::Body::new)
}

async fn not_found(request: Request) -> Response {
    let message = format!(
        "no admin endpoint at {}; there are /admin/plugins, /admin/routes, /admin/snapshot and /admin/reload",
        request.uri().path()
    );
    reject(&request, ErrorCode::NotFound, message)
}

async fn method_not_allowed(request: Request) -> Response {
    let message = format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    );
    reject(&request, ErrorCode::MethodNotAllowed, message)
}

#[derive(Serialize)]
struct PluginView {
    name: String,
    /// `loaded`, or `rejected` for a file that is not loaded because it was refused.
    status: &'static str,
    hash: Option<String>,
    wit_version: Option<String>,
    #[serde(serialize_with = "optional_rfc3339")]
    loaded_at: Option<std::time::SystemTime>,
    compile_ms: Option<f64>,
    cache: Option<&'static str>,
    calls: u64,
    errors: u64,
    routes: Vec<String>,
    last_rejection: Option<Rejection>,
}

async fn plugins(State(reloader): State<Arc<Reloader>>) -> Json<serde_json::Value> {
    let snapshot = reloader.shared().snapshot.load_full();
    let status = reloader.status();
    let mut rejections = status.plugin_rejections;
    let mut users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for route in &snapshot.routes {
        for plugin in &route.chain {
            let list = users.entry(plugin.pool.plugin()).or_default();
            if list.last().map(String::as_str) != Some(&route.name) {
                list.push(route.name.to_string());
            }
        }
    }
    let mut views: Vec<PluginView> = snapshot
        .plugins
        .iter()
        .map(|(name, plugin)| PluginView {
            name: name.clone(),
            status: "loaded",
            hash: Some(plugin.hash.to_string()),
            wit_version: Some(plugin.wit_version.clone()),
            loaded_at: Some(plugin.loaded_at),
            compile_ms: Some((plugin.compile_ms * 10.0).round() / 10.0),
            cache: Some(plugin.cache.as_str()),
            calls: plugin.stats.calls(),
            errors: plugin.stats.errors(),
            routes: users.remove(name.as_str()).unwrap_or_default(),
            last_rejection: rejections.remove(name),
        })
        .collect();
    views.extend(rejections.into_iter().map(|(name, rejection)| PluginView {
        name,
        status: "rejected",
        hash: None,
        wit_version: None,
        loaded_at: None,
        compile_ms: None,
        cache: None,
        calls: 0,
        errors: 0,
        routes: Vec::new(),
        last_rejection: Some(rejection),
    }));
    views.sort_by(|a, b| a.name.cmp(&b.name));
    Json(json!({
        "generation": snapshot.generation,
        "plugins": views,
        "last_rejection": status.last_rejection,
    }))
}

async fn routes(State(reloader): State<Arc<Reloader>>) -> Json<serde_json::Value> {
    let snapshot = reloader.shared().snapshot.load_full();
    let routes: Vec<serde_json::Value> = snapshot
        .config
        .config
        .routes
        .iter()
        .zip(&snapshot.routes)
        .map(|(config, route)| {
            json!({
                "name": &*route.name,
                "listener": route.listener,
                "host": config.host.as_ref().map(|h| h.get_ref()),
                "methods": config.methods.as_ref().map(|m| m.get_ref()),
                "path": config.path.as_ref().map(|p| p.get_ref()),
                "prefix": config.prefix.as_ref().map(|p| p.get_ref()),
                "strip_prefix": route.strip_prefix,
                "service": config.service.as_ref().map(|s| s.get_ref()),
                "services": config.services.as_ref().map(|split| split.get_ref().iter().map(|w| json!({
                    "name": w.name.get_ref(),
                    "weight": w.weight,
                })).collect::<Vec<_>>()),
                "headers": config.headers.iter().map(|c| condition_json(c.get_ref())).collect::<Vec<_>>(),
                "query": config.query.iter().map(|c| condition_json(c.get_ref())).collect::<Vec<_>>(),
                "timeout_ms": route.timeout.as_millis() as u64,
                "max_body_bytes": route.max_body_bytes,
                "plugins": route.chain.iter().map(|p| json!({
                    "name": &**p.pool.plugin(),
                    "hash": &**p.pool.hash(),
                    "on_error": p.on_error,
                    "request_body": p.request_body,
                    "response_body": p.response_body,
                    "request_only": p.request_only,
                    "global": p.global,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "generation": snapshot.generation, "routes": routes }))
}

/// A route's header or query condition as the config has it.
fn condition_json(condition: &crate::config::MatchCondition) -> serde_json::Value {
    json!({
        "name": condition.name,
        "value": condition.value,
        "regex": condition.regex,
    })
}

async fn services(State(reloader): State<Arc<Reloader>>) -> Json<serde_json::Value> {
    let snapshot = reloader.shared().snapshot.load_full();
    let services: serde_json::Map<String, serde_json::Value> = snapshot
        .services
        .iter()
        .map(|(name, service)| {
            let status = serde_json::to_value(service.status()).expect("plain data");
            (name.clone(), status)
        })
        .collect();
    Json(json!({ "generation": snapshot.generation, "services": services }))
}

async fn snapshot(State(reloader): State<Arc<Reloader>>) -> Json<serde_json::Value> {
    let snapshot = reloader.shared().snapshot.load_full();
    let status = reloader.status();
    Json(json!({
        "generation": snapshot.generation,
        "loaded_at": humantime::format_rfc3339_millis(snapshot.loaded_at).to_string(),
        "fingerprint": snapshot.fingerprint,
        "config_file": reloader.config_file().display().to_string(),
        "routes": snapshot.routes.len(),
        "plugins": snapshot.plugins.len(),
        "reloads": {
            "applied": status.applied,
            "rejected": status.rejected,
            "last_rejection": status.last_rejection,
            "recent": status.recent,
        },
    }))
}

async fn state(State(reloader): State<Arc<Reloader>>) -> Response {
    let store = reloader.state();
    let mut body = json!({
        "backend": store.backend_name(),
        "sweep_interval_ms": reloader.shared().snapshot.load().config.config.state.sweep_interval_ms,
        "last_sweep": store.last_sweep(),
    });
    if let (Some(body), serde_json::Value::Object(more)) = (body.as_object_mut(), store.describe())
    {
        body.extend(more);
    }
    Json(body).into_response()
}

async fn sweep(State(reloader): State<Arc<Reloader>>, request: Request) -> Response {
    match reloader.state().sweep().await {
        Ok(sweep) => {
            reloader.shared().metrics.record_sweep(&sweep);
            Json(sweep).into_response()
        }
        Err(error) => reject(&request, ErrorCode::InternalError, error.to_string()),
    }
}

async fn reload(State(reloader): State<Arc<Reloader>>, request: Request) -> Response {
    match reloader.reload(Trigger::Admin).await {
        Ok(Outcome::Applied { generation }) => {
            Json(json!({ "result": "applied", "generation": generation })).into_response()
        }
        Ok(Outcome::Unchanged { generation }) => {
            Json(json!({ "result": "unchanged", "generation": generation })).into_response()
        }
        Err(rejection) => reject(
            &request,
            ErrorCode::ReloadRejected,
            format!("reload rejected: {}", rejection.reason),
        ),
    }
}

async fn builtin_metrics(State(reloader): State<Arc<Reloader>>) -> Response {
    builtin(&reloader, Builtin::Metrics)
}

async fn builtin_health(State(reloader): State<Arc<Reloader>>) -> Response {
    builtin(&reloader, Builtin::Health)
}

async fn builtin_live(State(reloader): State<Arc<Reloader>>) -> Response {
    builtin(&reloader, Builtin::Live)
}

async fn builtin_ready(State(reloader): State<Arc<Reloader>>) -> Response {
    builtin(&reloader, Builtin::Ready)
}

fn builtin(reloader: &Reloader, endpoint: Builtin) -> Response {
    status::answer(reloader.shared(), endpoint).map(axum::body::Body::from)
}

fn optional_rfc3339<S: serde::Serializer>(
    at: &Option<std::time::SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_addressed_here() {
        let elsewhere = |host: Option<&str>| {
            let mut headers = axum::http::HeaderMap::new();
            if let Some(host) = host {
                headers.insert(axum::http::header::HOST, host.parse().unwrap());
            }
            addressed_elsewhere(&headers)
        };
        for here in [
            None,
            Some("127.0.0.1:9901"),
            Some("127.8.9.10"),
            Some("[::1]:9901"),
            Some("localhost:9901"),
            Some("LocalHost"),
            Some("admin.localhost:9901"),
        ] {
            assert!(!elsewhere(here), "{here:?}");
        }
        for there in [
            Some("evil.example:9901"),
            Some("localhost.evil.example"),
            Some("10.0.0.1:9901"),
            Some("[::2]:9901"),
            Some("0.0.0.0:9901"),
            Some("not a host"),
        ] {
            assert!(elsewhere(there), "{there:?}");
        }
    }
}
