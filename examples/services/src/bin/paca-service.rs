//! The PACA example's backend, standing in for the seed's cognitive API behind the
//! gateway: it takes cognitive and reasoning tasks (answered at once, in memory),
//! tells a task's status, and keeps a real-time WebSocket that answers each message.
//! Whoever the gateway let through is in `X-User-ID`; tasks record it as `user_id`.
//!
//! Usage: `paca-service ADDRESS`.
//!
//! | path | answer |
//! |---|---|
//! | `GET /api/v1/health` | `{"status": "healthy", "service": "paca-api"}` |
//! | `POST /api/v1/cognitive/process` `{type, input, context?}` | 202 `{task_id, status: "completed", type, user_id, result}` |
//! | `GET /api/v1/cognitive/status/{task_id}` | the task; 404 for an unknown id |
//! | `POST /api/v1/reasoning/execute` `{input, …}` | `{status: "completed", conclusion, steps, user_id}` |
//! | `GET /ws/realtime` (WebSocket) | each text message `M` answered `{"type": "response", "echo": M, "user_id"}` |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use example_services::{address, serve};
use serde_json::{Value, json};

/// Tasks by id.
type Tasks = Arc<Mutex<BTreeMap<String, Value>>>;

/// The caller the gateway vouched for, if any.
fn caller(headers: &HeaderMap) -> Value {
    headers
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |id| json!(id))
}

async fn process(
    State(tasks): State<Tasks>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut tasks = tasks.lock().unwrap();
    let task_id = format!("task-{}", tasks.len() + 1);
    let input = request["input"].as_str().unwrap_or_default();
    let task = json!({
        "task_id": task_id,
        "status": "completed",
        "type": request["type"],
        "user_id": caller(&headers),
        "result": {"summary": format!("processed {} characters", input.chars().count()), "context": request["context"]},
    });
    tasks.insert(task_id, task.clone());
    (StatusCode::ACCEPTED, Json(task))
}

async fn status(State(tasks): State<Tasks>, Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    match tasks.lock().unwrap().get(&id) {
        Some(task) => (StatusCode::OK, Json(task.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": format!("task {id} not found")})),
        ),
    }
}

async fn reason(headers: HeaderMap, Json(request): Json<Value>) -> Json<Value> {
    Json(json!({
        "status": "completed",
        "conclusion": format!("considered: {}", request["input"].as_str().unwrap_or_default()),
        "steps": ["parse", "infer", "conclude"],
        "user_id": caller(&headers),
    }))
}

async fn realtime(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let user = caller(&headers);
    upgrade.on_upgrade(move |socket| answer_each(socket, user))
}

async fn answer_each(mut socket: WebSocket, user: Value) {
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else {
            continue;
        };
        let reply = json!({"type": "response", "echo": text.as_str(), "user_id": user});
        if socket
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let address = address(std::env::args().nth(1));
    let app = Router::new()
        .route(
            "/api/v1/health",
            get(|| async { Json(json!({"status": "healthy", "service": "paca-api"})) }),
        )
        .route("/api/v1/cognitive/process", post(process))
        .route("/api/v1/cognitive/status/{task_id}", get(status))
        .route("/api/v1/reasoning/execute", post(reason))
        .route("/ws/realtime", get(realtime))
        .with_state(Tasks::default());
    serve("paca-service", address, app, |_| {}).await;
}
