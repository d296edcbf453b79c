//! The `respond` plugin on real traffic: an info page on `GET /` of a catch-all route
//! while every other request reaches the upstream, a redirect, maintenance mode, and
//! a config the gateway refuses.

use wasmgate_e2e::{TestGateway, Upstream, client};

#[tokio::test]
async fn answers_get_root_on_a_catch_all_route_and_passes_the_rest_on() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("respond", "respond")
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "respond"
config = { methods = ["GET"], paths = ["/"], json = { name = "shop-api", version = "1.4.0", status = "running" } }
"#,
        )
        .start();
    let http = client();
    let response = http.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    let info: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({"name": "shop-api", "version": "1.4.0", "status": "running"})
    );
    assert_eq!(upstream.hits(), 0, "the plugin answered GET /");

    let response = http.get(gateway.url("/users?page=2")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-upstream"], "echo");
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/users");
    assert_eq!(echo["query"], "page=2");

    let response = http.post(gateway.url("/")).body("hi").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "hi");
    assert_eq!(upstream.paths(), ["/users", "/"]);
}

#[tokio::test]
async fn redirects_keep_the_path_without_calling_an_upstream() {
    let gateway = TestGateway::new()
        .plugin("respond", "respond")
        .toml(
            r#"
[[routes]]
name = "old-docs"
prefix = "/docs"

[[routes.plugins]]
name = "respond"
config = { redirect = "https://docs.example.com{path}", status = 301 }
"#,
        )
        .start();
    let response = client()
        .get(gateway.url("/docs/intro?lang=en"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://docs.example.com/docs/intro"
    );
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn maintenance_mode_answers_503_with_retry_after_and_the_request_id() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("respond", "respond")
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "respond"
config = { status = 503, headers = { "retry-after" = "600" }, json = { success = false, error = "down for maintenance", path = "{path}", request_id = "{request_id}" } }
"#,
        )
        .start();
    let http = client();
    for (request, id) in [
        (http.get(gateway.url("/orders")), Some("maint-1")),
        (http.post(gateway.url("/a%22b")).body("{}"), None),
    ] {
        let request = match id {
            Some(id) => request.header("x-request-id", id),
            None => request,
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "600");
        let header_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        if let Some(id) = id {
            assert_eq!(header_id, id);
        }
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["request_id"], header_id.as_str());
        assert_eq!(body["error"], "down for maintenance");
        assert!(
            body["path"] == "/orders" || body["path"] == "/a%22b",
            "{body}"
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[test]
fn a_redirect_without_a_location_is_refused_at_load() {
    let (status, output) = TestGateway::new()
        .plugin("respond", "respond")
        .toml(
            r#"
[[routes]]
name = "r"
prefix = "/"

[[routes.plugins]]
name = "respond"
config = { status = 301 }
"#,
        )
        .check();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("status: 301 is a redirect without a location"),
        "{output}"
    );
}
