//! What the seed examples' upstream services share: an in-memory CRUD collection
//! (`GET` and `POST` on its path, `GET`, `PUT` and `DELETE` on `{id}` under it), a
//! `GET /health`, and serving on an address given on the command line. The binaries
//! (`msa-service`, `ts-portal-service`, `paca-service`, `skyclust-service`) choose what each
//! service does.
//!
//! A created item records who made it when the gateway says so: the `X-User-ID` and
//! `X-Username` headers its auth plugins send upstream become `created_by` and
//! `created_by_name`, as the seeds' services read the caller from those headers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

/// One collection, by id.
#[derive(Default)]
pub struct Store {
    items: BTreeMap<u64, Value>,
    next: u64,
}

/// A collection shared by its handlers.
pub type Shared = Arc<Mutex<Store>>;

impl Store {
    /// A collection holding `items`, numbered from 1.
    pub fn with(items: Vec<Value>) -> Shared {
        let store: Shared = Arc::default();
        for item in items {
            store.lock().unwrap().insert(item);
        }
        store
    }

    fn insert(&mut self, mut item: Value) -> Value {
        self.next += 1;
        item["id"] = json!(self.next);
        self.items.insert(self.next, item.clone());
        item
    }

    /// The items whose `field` is `value` (as text), in id order.
    pub fn filtered(&self, field: &str, value: &str) -> Vec<Value> {
        self.items
            .values()
            .filter(|item| match &item[field] {
                Value::String(text) => text == value,
                Value::Number(number) => number.as_u64().is_some_and(|n| value.parse() == Ok(n)),
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// Every item, in id order.
    pub fn all(&self) -> Vec<Value> {
        self.items.values().cloned().collect()
    }
}

fn not_found(what: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": format!("{what} not found")})),
    )
}

async fn list(State(store): State<Shared>) -> Json<Value> {
    Json(Value::Array(store.lock().unwrap().all()))
}

async fn one(State(store): State<Shared>, Path(id): Path<u64>) -> (StatusCode, Json<Value>) {
    match store.lock().unwrap().items.get(&id) {
        Some(item) => (StatusCode::OK, Json(item.clone())),
        None => not_found("item"),
    }
}

async fn create(
    State(store): State<Shared>,
    headers: HeaderMap,
    Json(mut item): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !item.is_object() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": "a JSON object is expected"})),
        );
    }
    for (header, field) in [
        ("x-user-id", "created_by"),
        ("x-username", "created_by_name"),
    ] {
        if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
            item[field] = json!(value);
        }
    }
    (
        StatusCode::CREATED,
        Json(store.lock().unwrap().insert(item)),
    )
}

async fn update(
    State(store): State<Shared>,
    Path(id): Path<u64>,
    Json(change): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut store = store.lock().unwrap();
    let (Some(item), Some(change)) = (store.items.get_mut(&id), change.as_object()) else {
        return not_found("item");
    };
    for (field, value) in change {
        if !matches!(field.as_str(), "id" | "created_by" | "created_by_name") {
            item[field] = value.clone();
        }
    }
    (StatusCode::OK, Json(item.clone()))
}

async fn remove(State(store): State<Shared>, Path(id): Path<u64>) -> (StatusCode, Json<Value>) {
    match store.lock().unwrap().items.remove(&id) {
        Some(_) => (
            StatusCode::OK,
            Json(json!({"message": "deleted", "id": id})),
        ),
        None => not_found("item"),
    }
}

/// CRUD on `store` at `base` (`/users`) and `base/{id}`.
pub fn crud(base: &str, store: Shared) -> Router {
    Router::new()
        .route(base, get(list).post(create))
        .route(
            &format!("{base}/{{id}}"),
            get(one).put(update).delete(remove),
        )
        .with_state(store)
}

/// `GET /health`: `{"status": "healthy", "service": NAME}`.
pub fn health(service: &str) -> Router {
    let service = service.to_string();
    Router::new().route(
        "/health",
        get(move || async move { Json(json!({"status": "healthy", "service": service})) }),
    )
}

/// Binds `address`, prints `NAME listening on ADDRESS` (what the examples' scripts and
/// tests wait for), runs `started` with the bound address, and serves `app`.
pub async fn serve(name: &str, address: SocketAddr, app: Router, started: impl FnOnce(SocketAddr)) {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("bind the service's address");
    let address = listener.local_addr().expect("the bound address");
    println!("{name} listening on {address}");
    started(address);
    axum::serve(listener, app).await.expect("serve");
}

/// The command line's ADDRESS (`host:port`), `127.0.0.1:0` when absent.
pub fn address(arg: Option<String>) -> SocketAddr {
    arg.unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("ADDRESS is host:port")
}
