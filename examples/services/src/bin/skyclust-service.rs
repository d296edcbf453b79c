//! The SkyClust example's backend, standing in for the seed's resource API behind the
//! gateway, in memory and in SkyClust's envelope (`{success, message, data,
//! request_id, timestamp}`, the request id being the gateway's `X-Request-Id`):
//! workspaces, VMs, credentials (their secrets are kept, never shown), cost analysis,
//! notifications, audit logs (one entry per change, with the caller the gateway sent
//! as `X-User-ID`), health checks, and the `/ws` WebSocket, which pushes
//! `vm_status_changed` and `audit_log_created` events as they happen. Authentication,
//! roles and rate limits are the gateway's.
//!
//! Usage: `skyclust-service ADDRESS`. Paths are under `/api/v1`, except `/ws`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use example_services::{address, serve};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// Everything the backend keeps, by collection name then id.
struct Backend {
    collections: Mutex<BTreeMap<&'static str, BTreeMap<String, Value>>>,
    events: broadcast::Sender<Value>,
}

type Shared = Arc<Backend>;
type Params = Query<BTreeMap<String, String>>;
type Answer = (StatusCode, Json<Value>);

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn request_id(headers: &HeaderMap) -> Value {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |id| json!(id))
}

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| json!(v))
}

fn ok(headers: &HeaderMap, status: StatusCode, message: Option<&str>, data: Value) -> Answer {
    let mut body = json!({"success": true, "data": data, "request_id": request_id(headers), "timestamp": now()});
    if let Some(message) = message {
        body["message"] = json!(message);
    }
    (status, Json(body))
}

fn fail(headers: &HeaderMap, status: StatusCode, code: &str, error: &str) -> Answer {
    (
        status,
        Json(
            json!({"success": false, "error": error, "code": code, "request_id": request_id(headers), "timestamp": now()}),
        ),
    )
}

/// Whether a query parameter's `text` names `value` (a string, boolean or number).
fn equals(value: &Value, text: &str) -> bool {
    match value {
        Value::String(string) => string == text,
        Value::Bool(boolean) => text.parse() == Ok(*boolean),
        Value::Number(number) => text.parse::<f64>().ok() == number.as_f64(),
        _ => false,
    }
}

/// What a listing shows of an item: credentials never show their `data`.
fn shown(collection: &str, item: &Value) -> Value {
    let mut item = item.clone();
    if collection == "credentials"
        && let Some(fields) = item.as_object_mut()
    {
        fields.remove("data");
    }
    item
}

impl Backend {
    fn list(
        &self,
        collection: &'static str,
        params: &BTreeMap<String, String>,
        filters: &[&str],
        default_limit: usize,
    ) -> Value {
        let all = self.collections.lock().unwrap();
        let mut items: Vec<Value> = all
            .get(collection)
            .into_iter()
            .flat_map(|items| items.values())
            .filter(|item| {
                filters.iter().all(|field| {
                    params
                        .get(*field)
                        .is_none_or(|want| equals(&item[*field], want))
                })
            })
            .map(|item| shown(collection, item))
            .collect();
        if let Some((field, direction)) = params.get("sort").and_then(|s| s.split_once(':')) {
            items.sort_by(|a, b| a[field].to_string().cmp(&b[field].to_string()));
            if direction == "desc" {
                items.reverse();
            }
        }
        let total = items.len();
        let limit = params
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(default_limit)
            .clamp(1, 100);
        let offset = params
            .get("offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
        json!({
            collection: page,
            "pagination": {"limit": limit, "offset": offset, "total": total, "has_next": offset + limit < total, "has_prev": offset > 0},
        })
    }

    fn insert(&self, collection: &'static str, mut item: Value) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        item["id"] = json!(id);
        item["created_at"] = json!(now());
        self.collections
            .lock()
            .unwrap()
            .entry(collection)
            .or_default()
            .insert(id, item.clone());
        item
    }

    /// Records a change in the audit log and tells the WebSocket clients.
    fn audit(&self, headers: &HeaderMap, action: &str, resource: &str, resource_id: &Value) {
        let entry = self.insert(
            "audit_logs",
            json!({
                "user_id": header(headers, "x-user-id"),
                "action": action,
                "resource": resource,
                "resource_id": resource_id,
                "success": true,
                "ip_address": header(headers, "x-forwarded-for"),
                "user_agent": header(headers, "user-agent"),
            }),
        );
        let _ = self
            .events
            .send(json!({"type": "audit_log_created", "data": entry}));
    }
}

/// The JSON object of a request body with only `fields`, or the envelope's 400.
fn fields(
    headers: &HeaderMap,
    body: &Value,
    required: &[&str],
    optional: &[&str],
) -> Result<Map<String, Value>, Answer> {
    let mut out = Map::new();
    for field in required {
        match body.get(*field) {
            Some(value) if !value.is_null() => out.insert(field.to_string(), value.clone()),
            _ => {
                return Err(fail(
                    headers,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!("{field} is required"),
                ));
            }
        };
    }
    for field in optional {
        if let Some(value) = body.get(*field) {
            out.insert(field.to_string(), value.clone());
        }
    }
    Ok(out)
}

/// One collection's create, get, update and delete.
fn resource(
    collection: &'static str,
    resource: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    default_limit: usize,
) -> Router<Shared> {
    let base = format!("/api/v1/{}", collection.replace('_', "-"));
    let filters: &'static [&'static str] = match collection {
        "vms" => &["workspace_id", "provider", "status"],
        "credentials" => &["provider"],
        _ => &[],
    };
    Router::new()
        .route(
            &base,
            get(move |State(backend): State<Shared>, headers: HeaderMap, Query(params): Params| async move {
                ok(&headers, StatusCode::OK, None, backend.list(collection, &params, filters, default_limit))
            })
            .post(move |State(backend): State<Shared>, headers: HeaderMap, Json(body): Json<Value>| async move {
                let mut item = match fields(&headers, &body, required, optional) {
                    Ok(item) => Value::Object(item),
                    Err(refused) => return refused,
                };
                item["owner_id"] = header(&headers, "x-user-id");
                item["is_active"] = json!(true);
                if collection == "vms" {
                    item["status"] = json!("pending");
                }
                let item = backend.insert(collection, item);
                backend.audit(&headers, "create", resource, &item["id"]);
                if collection == "vms" {
                    let _ = backend.events.send(json!({"type": "vm_status_changed", "data": {"vm_id": item["id"], "status": "pending", "timestamp": now()}}));
                }
                ok(&headers, StatusCode::CREATED, Some(&format!("{resource} created")), shown(collection, &item))
            }),
        )
        .route(
            &format!("{base}/{{id}}"),
            get(move |State(backend): State<Shared>, headers: HeaderMap, Path(id): Path<String>| async move {
                match backend.collections.lock().unwrap().get(collection).and_then(|c| c.get(&id)) {
                    Some(item) => ok(&headers, StatusCode::OK, None, shown(collection, item)),
                    None => fail(&headers, StatusCode::NOT_FOUND, "NOT_FOUND", &format!("{resource} not found")),
                }
            })
            .put(move |State(backend): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Json(body): Json<Value>| async move {
                let change = match fields(&headers, &body, &[], optional.iter().chain(required).copied().collect::<Vec<_>>().as_slice()) {
                    Ok(change) => change,
                    Err(refused) => return refused,
                };
                let updated = {
                    let mut all = backend.collections.lock().unwrap();
                    let Some(item) = all.get_mut(collection).and_then(|c| c.get_mut(&id)) else {
                        return fail(&headers, StatusCode::NOT_FOUND, "NOT_FOUND", &format!("{resource} not found"));
                    };
                    for (field, value) in change {
                        item[field.as_str()] = value;
                    }
                    item["updated_at"] = json!(now());
                    item.clone()
                };
                backend.audit(&headers, "update", resource, &json!(id));
                ok(&headers, StatusCode::OK, Some(&format!("{resource} updated")), shown(collection, &updated))
            })
            .delete(move |State(backend): State<Shared>, headers: HeaderMap, Path(id): Path<String>| async move {
                let removed = backend.collections.lock().unwrap().get_mut(collection).and_then(|c| c.remove(&id));
                if removed.is_none() {
                    return fail(&headers, StatusCode::NOT_FOUND, "NOT_FOUND", &format!("{resource} not found"));
                }
                backend.audit(&headers, "delete", resource, &json!(id));
                ok(&headers, StatusCode::OK, Some(&format!("{resource} deleted")), Value::Null)
            }),
        )
}

async fn notifications_read(
    State(backend): State<Shared>,
    headers: HeaderMap,
    id: Option<Path<String>>,
) -> Answer {
    let mut all = backend.collections.lock().unwrap();
    let notes = all.entry("notifications").or_default();
    match id {
        Some(Path(id)) => match notes.get_mut(&id) {
            Some(note) => note["is_read"] = json!(true),
            None => {
                return fail(
                    &headers,
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "notification not found",
                );
            }
        },
        None => notes
            .values_mut()
            .for_each(|note| note["is_read"] = json!(true)),
    }
    ok(
        &headers,
        StatusCode::OK,
        Some("notifications marked read"),
        Value::Null,
    )
}

async fn cost(headers: HeaderMap, Query(params): Params) -> Answer {
    let period = params
        .get("period")
        .cloned()
        .unwrap_or_else(|| "30d".into());
    ok(
        &headers,
        StatusCode::OK,
        None,
        json!({
            "total_cost": 1250.50, "currency": "USD", "period": period,
            "breakdown": [{"provider": "aws", "cost": 800.25, "percentage": 64.0}, {"provider": "gcp", "cost": 450.25, "percentage": 36.0}],
            "trend": [{"date": "2024-01-01", "cost": 45.50}],
        }),
    )
}

async fn cost_breakdown(headers: HeaderMap, Query(params): Params) -> Answer {
    let provider = params
        .get("provider")
        .cloned()
        .unwrap_or_else(|| "aws".into());
    ok(
        &headers,
        StatusCode::OK,
        None,
        json!({
            "provider": provider, "total_cost": 800.25,
            "services": [{"service": "EC2", "cost": 600.00, "percentage": 75.0}, {"service": "S3", "cost": 200.25, "percentage": 25.0}],
        }),
    )
}

async fn events(upgrade: WebSocketUpgrade, State(backend): State<Shared>) -> Response {
    let events = backend.events.subscribe();
    upgrade.on_upgrade(move |socket| push(socket, events))
}

/// Sends each event to the client until either side goes.
async fn push(mut socket: WebSocket, mut events: broadcast::Receiver<Value>) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if socket.send(Message::Text(event.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = socket.recv() => if !matches!(message, Some(Ok(_))) {
                return;
            },
        }
    }
}

#[tokio::main]
async fn main() {
    let address = address(std::env::args().nth(1));
    let backend = Arc::new(Backend {
        collections: Mutex::default(),
        events: broadcast::channel(64).0,
    });
    backend.insert("notifications", json!({"title": "Welcome", "message": "Your workspace is ready", "type": "info", "priority": "medium", "is_read": false}));
    let started = SystemTime::now();
    let health = move |headers: HeaderMap| async move {
        let uptime = started.elapsed().unwrap_or_default().as_secs();
        ok(
            &headers,
            StatusCode::OK,
            None,
            json!({"status": "healthy", "timestamp": now(), "uptime": format!("{}h{}m{}s", uptime / 3600, uptime / 60 % 60, uptime % 60), "version": env!("CARGO_PKG_VERSION"), "environment": "example"}),
        )
    };
    let app = Router::new()
        .merge(resource("workspaces", "workspace", &["name"], &["description"], 10))
        .merge(resource("vms", "vm", &["name", "provider", "instance_type", "region", "workspace_id"], &["image_id", "key_pair"], 20))
        .merge(resource("credentials", "credential", &["name", "provider", "data"], &[], 20))
        .route(
            "/api/v1/audit-logs",
            get(
                |State(backend): State<Shared>, headers: HeaderMap, Query(params): Params| async move {
                    let filters = &["user_id", "action", "resource"];
                    ok(&headers, StatusCode::OK, None, backend.list("audit_logs", &params, filters, 50))
                },
            ),
        )
        .route(
            "/api/v1/notifications",
            get(|State(backend): State<Shared>, headers: HeaderMap, Query(mut params): Params| async move {
                if params.remove("unread_only").as_deref() == Some("true") {
                    params.insert("is_read".into(), "false".into());
                }
                let listed =
                    backend.list("notifications", &params, &["type", "priority", "is_read"], 20);
                ok(&headers, StatusCode::OK, None, listed)
            }),
        )
        .route("/api/v1/notifications/read-all", put(|state: State<Shared>, headers: HeaderMap| notifications_read(state, headers, None)))
        .route("/api/v1/notifications/{id}/read", put(|state: State<Shared>, headers: HeaderMap, id: Path<String>| notifications_read(state, headers, Some(id))))
        .route("/api/v1/cost-analysis", get(cost))
        .route("/api/v1/cost-analysis/breakdown", get(cost_breakdown))
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/db", get(|headers: HeaderMap| async move {
            ok(&headers, StatusCode::OK, None, json!({"status": "healthy", "connection_count": 1, "max_connections": 100, "response_time": "0ms"}))
        }))
        .route("/api/v1/health/redis", get(|headers: HeaderMap| async move {
            ok(&headers, StatusCode::OK, None, json!({"status": "healthy", "connected_clients": 1, "used_memory": "0MB", "response_time": "0ms"}))
        }))
        .route("/ws", get(events))
        .with_state(backend);
    serve("skyclust-service", address, app, |_| {}).await;
}
