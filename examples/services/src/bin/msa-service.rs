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

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use example_services::{Shared, Store, address, crud, health, serve};
use serde_json::{Value, json};

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

/// `GET path/{value}`: the items whose `field` is `value`.
fn filter_route(path: &str, field: &'static str, store: Shared) -> axum::Router {
    axum::Router::new()
        .route(
            path,
            get(
                move |State(store): State<Shared>, Path(value): Path<String>| async move {
                    Json(Value::Array(store.lock().unwrap().filtered(field, &value)))
                },
            ),
        )
        .with_state(store)
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
    let address = address(args.next());
    let gateway = args
        .next()
        .or_else(|| std::env::var("GATEWAY_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let every = std::env::var("HEARTBEAT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs);

    let store = Store::with(items);
    let mut app = crud(&format!("/{collection}"), store.clone()).merge(health(&name));
    app = match collection {
        "orders" => app.merge(filter_route("/orders/user/{user_id}", "user_id", store)),
        "products" => app.merge(filter_route(
            "/products/category/{category}",
            "category",
            store,
        )),
        _ => app,
    };
    let service = name.clone();
    serve(&name, address, app, move |address| {
        tokio::spawn(stay_registered(gateway, service, address, every));
    })
    .await;
}
