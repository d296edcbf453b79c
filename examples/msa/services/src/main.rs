//! The MSA example's services, standing in for the seed's user, order and product
//! services: in-memory CRUD on one collection each, and `GET /health`. On start each
//! registers itself with the gateway's service registry (`POST /discovery/register`)
//! and then sends a heartbeat every few seconds, registering again if the registry
//! forgot it, so the gateway routes `/api/{name}/…` to it.
//!
//! Usage: `msa-service NAME ADDRESS [GATEWAY_URL]`, NAME one of `user-service`,
//! `order-service`, `product-service`; GATEWAY_URL defaults to
//! `http://127.0.0.1:8000`, the heartbeat interval to `HEARTBEAT_SECONDS=5`.
//!
//! | service | paths |
//! |---|---|
//! | `user-service` | `/users`, `/users/{id}` |
//! | `order-service` | `/orders`, `/orders/{id}`, `/orders/user/{user_id}` |
//! | `product-service` | `/products`, `/products/{id}`, `/products/category/{category}` |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

/// One collection, by id.
#[derive(Default)]
struct Store {
    items: BTreeMap<u64, Value>,
    next: u64,
}

type Shared = Arc<Mutex<Store>>;

/// The seed data of each service's collection.
fn seed(name: &str) -> Option<(&'static str, Vec<Value>)> {
    Some(match name {
        "user-service" => (
            "users",
            vec![
                json!({"name": "Kim Minsu", "email": "minsu@example.com"}),
                json!({"name": "Lee Jiyoung", "email": "jiyoung@example.com"}),
            ],
        ),
        "order-service" => (
            "orders",
            vec![
                json!({"user_id": 1, "product_id": 1, "quantity": 2, "status": "pending"}),
                json!({"user_id": 2, "product_id": 2, "quantity": 1, "status": "shipped"}),
            ],
        ),
        "product-service" => (
            "products",
            vec![
                json!({"name": "Laptop", "category": "electronics", "price": 1200000}),
                json!({"name": "Desk", "category": "furniture", "price": 250000}),
            ],
        ),
        _ => return None,
    })
}

fn insert(store: &mut Store, mut item: Value) -> Value {
    store.next += 1;
    item["id"] = json!(store.next);
    store.items.insert(store.next, item.clone());
    item
}

fn not_found(what: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": format!("{what} not found")})),
    )
}

async fn list(State(store): State<Shared>) -> Json<Value> {
    Json(Value::Array(
        store.lock().unwrap().items.values().cloned().collect(),
    ))
}

async fn one(State(store): State<Shared>, Path(id): Path<u64>) -> (StatusCode, Json<Value>) {
    match store.lock().unwrap().items.get(&id) {
        Some(item) => (StatusCode::OK, Json(item.clone())),
        None => not_found("item"),
    }
}

async fn create(State(store): State<Shared>, Json(item): Json<Value>) -> (StatusCode, Json<Value>) {
    if !item.is_object() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": "a JSON object is expected"})),
        );
    }
    (
        StatusCode::CREATED,
        Json(insert(&mut store.lock().unwrap(), item)),
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
        if field != "id" {
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

/// The items whose `field` is `value` (as text).
fn filtered(store: &Shared, field: &str, value: &str) -> Json<Value> {
    Json(Value::Array(
        store
            .lock()
            .unwrap()
            .items
            .values()
            .filter(|item| match &item[field] {
                Value::String(text) => text == value,
                Value::Number(number) => number.as_u64().is_some_and(|n| value.parse() == Ok(n)),
                _ => false,
            })
            .cloned()
            .collect(),
    ))
}

/// Registers with the gateway until it answers, then sends heartbeats; registers
/// again whenever the registry no longer knows this instance.
async fn stay_registered(gateway: String, name: String, address: SocketAddr, every: Duration) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let id = format!("{name}-{}", address.port());
    let registration = json!({
        "name": name,
        "id": id,
        "host": address.ip().to_string(),
        "port": address.port(),
        "health_check_url": format!("http://{address}/health"),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let mut registered = false;
    loop {
        if registered {
            let beat = http
                .post(format!("{gateway}/discovery/heartbeat/{id}"))
                .send()
                .await;
            registered = matches!(beat, Ok(r) if r.status().is_success());
        }
        if !registered {
            let answer = http
                .post(format!("{gateway}/discovery/register"))
                .json(&registration)
                .send()
                .await;
            registered = matches!(&answer, Ok(r) if r.status() == StatusCode::CREATED);
            match answer {
                Ok(r) if registered => eprintln!("{name}: registered as {id} ({})", r.status()),
                Ok(r) => eprintln!("{name}: registration refused: {}", r.status()),
                Err(e) => eprintln!("{name}: gateway not reachable yet: {e}"),
            }
        }
        tokio::time::sleep(if registered {
            every
        } else {
            Duration::from_secs(1)
        })
        .await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: msa-service user-service|order-service|product-service ADDRESS [GATEWAY_URL]";
    let name = args.next().expect(usage);
    let (collection, items) = seed(&name).expect(usage);
    let address: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("ADDRESS is host:port");
    let gateway = args
        .next()
        .or_else(|| std::env::var("GATEWAY_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let every = std::env::var("HEARTBEAT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs);

    let store: Shared = Arc::default();
    for item in items {
        insert(&mut store.lock().unwrap(), item);
    }
    let base = format!("/{collection}");
    let mut app = Router::new().route(&base, get(list).post(create)).route(
        &format!("{base}/{{id}}"),
        get(one).put(update).delete(remove),
    );
    app = match collection {
        "orders" => app.route(
            "/orders/user/{user_id}",
            get(
                |State(store): State<Shared>, Path(user): Path<String>| async move {
                    filtered(&store, "user_id", &user)
                },
            ),
        ),
        "products" => app.route(
            "/products/category/{category}",
            get(
                |State(store): State<Shared>, Path(category): Path<String>| async move {
                    filtered(&store, "category", &category)
                },
            ),
        ),
        _ => app,
    };
    let service = name.clone();
    let app = app
        .route(
            "/health",
            get(move || async move { Json(json!({"status": "healthy", "service": service})) }),
        )
        .with_state(store);

    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("bind the service's address");
    let address = listener.local_addr().expect("the bound address");
    println!("{name} listening on {address}");
    tokio::spawn(stay_registered(gateway, name, address, every));
    axum::serve(listener, app).await.expect("serve");
}
