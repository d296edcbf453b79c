//! The example services on their own (no gateway to register with): each serves its
//! collection's CRUD and `/health` as the seed's services did.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// A running `msa-service NAME`; killed when dropped.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start(name: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_msa-service"))
            // Nothing listens on port 9 of loopback: registration keeps failing,
            // quietly, and the service serves all the same.
            .args([name, "127.0.0.1:0", "http://127.0.0.1:9"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start msa-service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_else(|| panic!("said {line:?}"))
            .to_string();
        Self {
            child,
            url: format!("http://{address}"),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn users_are_created_read_updated_and_deleted() {
    use reqwest::Method;
    let users = Service::start("user-service");
    let base = format!("{}/users", users.url);
    let (status, all) = call(Method::GET, &base, None).await;
    assert_eq!((status, all.as_array().map(Vec::len)), (200, Some(2)));
    let (status, created) = call(
        Method::POST,
        &base,
        Some(json!({"name": "Park", "email": "park@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["id"], 3);
    let one = format!("{base}/3");
    let (_, updated) = call(Method::PUT, &one, Some(json!({"email": "p@example.com"}))).await;
    assert_eq!(
        updated,
        json!({"id": 3, "name": "Park", "email": "p@example.com"})
    );
    assert_eq!(call(Method::DELETE, &one, None).await.0, 200);
    assert_eq!(call(Method::GET, &one, None).await.0, 404);
    let (status, health) = call(Method::GET, &format!("{}/health", users.url), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        health,
        json!({"status": "healthy", "service": "user-service"})
    );
}

#[tokio::test]
async fn orders_by_user_and_products_by_category() {
    use reqwest::Method;
    let (orders, products) = (
        Service::start("order-service"),
        Service::start("product-service"),
    );
    let (_, mine) = call(Method::GET, &format!("{}/orders/user/1", orders.url), None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["user_id"], 1);
    let (_, electronics) = call(
        Method::GET,
        &format!("{}/products/category/electronics", products.url),
        None,
    )
    .await;
    assert_eq!(electronics.as_array().unwrap().len(), 1);
    assert_eq!(electronics[0]["name"], "Laptop");
}
