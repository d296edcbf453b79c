//! The quickstart's demo upstream: answers every request with what it received, as
//! JSON (`method`, `path`, `query`, `headers`, `body`), so you can see what the
//! gateway and its plugins sent.
//!
//! Usage: `echo-upstream [ADDRESS]` (default `127.0.0.1:9001`).

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Map, Value, json};

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let mut seen = Map::new();
    for (name, value) in &headers {
        let values = seen
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.push(String::from_utf8_lossy(value.as_bytes()).into());
        }
    }
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": seen,
        "body": String::from_utf8_lossy(&body),
    }))
}

#[tokio::main]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("echo-upstream: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!("echo-upstream listening on http://{address}");
    let app = axum::Router::new().fallback(echo);
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("echo-upstream: {error}");
        std::process::exit(1);
    }
}
