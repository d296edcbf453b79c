//! The seed examples (`examples/<seed>/`), each started from its own `wasmgate.toml`
//! with the plugins its `run.sh` installs and the services it starts, and the seed's
//! documented API replayed call by call against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmgate_e2e::{
    FakeKeystone, GatewayProcess, KEYSTONE_USER, TestGateway, client, send, wasmgate_bin,
};

/// One of the MSA example's services (`msa-service NAME`), registering itself with
/// `gateway`; killed when dropped.
struct MsaService(Child);

impl MsaService {
    fn start(name: &str, gateway: &GatewayProcess) -> Self {
        let bin = wasmgate_bin().with_file_name("msa-service");
        let mut child = Command::new(&bin)
            .args([name, "127.0.0.1:0", &gateway.url("")])
            .env("HEARTBEAT_SECONDS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening on"), "{name} said {line:?}");
        Self(child)
    }
}

impl Drop for MsaService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `METHOD path` with an optional JSON body: status, `X-Request-Id`, body as JSON
/// (`Null` when it is not JSON).
async fn call(
    gateway: &GatewayProcess,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let answer = send(method, &gateway.url(path), body.as_ref()).await;
    (answer.status, answer.request_id.clone(), answer.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msa_gateway_replays_the_seeds_documented_api() {
    use reqwest::Method;
    let gateway = TestGateway::example("msa")
        .env("GATEWAY_PORT", "0")
        .env("ADMIN_PORT", "0")
        .env("LOG_LEVEL", "WARNING")
        .start();
    let _services: Vec<MsaService> = ["user-service", "order-service", "product-service"]
        .iter()
        .map(|name| MsaService::start(name, &gateway))
        .collect();

    // The services register themselves: GET /services lists all three, live.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, listed) = call(&gateway, Method::GET, "/services", None).await;
        assert_eq!(status, 200);
        let healthy = listed["data"]["services"]
            .as_array()
            .map(|all| all.iter().filter(|s| s["healthy"] == 1).count());
        if healthy == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the services did not register: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The gateway API: /, /health, /metrics, /services.
    let (status, id, root) = call(&gateway, Method::GET, "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(root["message"], "MSA Gateway");
    assert_eq!(root["request_id"], id.as_str());
    let (status, _, health) = call(&gateway, Method::GET, "/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy", "{health}");
    let metrics = client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");

    // The discovery API, as the seed's README calls it.
    let (status, _, discovered) = call(&gateway, Method::GET, "/discovery/services", None).await;
    assert_eq!(status, 200);
    assert_eq!(discovered["data"]["count"], 3, "{discovered}");
    let user_service = discovered["data"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "user-service")
        .expect("user-service registered")
        .clone();
    let user_id = user_service["id"].as_str().unwrap().to_string();
    assert_eq!(user_service["status"], "healthy");
    let (status, _, one) = call(
        &gateway,
        Method::GET,
        &format!("/discovery/services/{user_id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, &one["data"]["name"]),
        (200, &json!("user-service"))
    );
    let (status, _, beat) = call(
        &gateway,
        Method::POST,
        &format!("/discovery/heartbeat/{user_id}"),
        None,
    )
    .await;
    assert_eq!((status, &beat["data"]["status"]), (200, &json!("healthy")));
    let (status, _, extra) = call(
        &gateway,
        Method::POST,
        "/discovery/register",
        Some(json!({"name": "report-service", "host": "127.0.0.1", "port": 8004})),
    )
    .await;
    assert_eq!(status, 201, "{extra}");
    let extra_id = extra["data"]["id"].as_str().unwrap().to_string();
    let (status, _, _) = call(
        &gateway,
        Method::DELETE,
        &format!("/discovery/unregister/{extra_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, cleaned) = call(&gateway, Method::POST, "/discovery/cleanup", None).await;
    assert_eq!((status, &cleaned["data"]["count"]), (200, &json!(0)));

    // The proxy: each service's documented API through /api/{service}/{path}.
    let (status, _, users) = call(&gateway, Method::GET, "/api/user-service/users", None).await;
    assert_eq!((status, users.as_array().map(Vec::len)), (200, Some(2)));
    let (status, _, created) = call(
        &gateway,
        Method::POST,
        "/api/user-service/users",
        Some(json!({"name": "Park", "email": "park@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    let path = format!("/api/user-service/users/{}", created["id"]);
    let (status, _, updated) = call(
        &gateway,
        Method::PUT,
        &path,
        Some(json!({"email": "p@example.com"})),
    )
    .await;
    assert_eq!((status, &updated["email"]), (200, &json!("p@example.com")));
    assert_eq!(call(&gateway, Method::DELETE, &path, None).await.0, 200);
    assert_eq!(call(&gateway, Method::GET, &path, None).await.0, 404);
    let (status, _, orders) = call(
        &gateway,
        Method::GET,
        "/api/order-service/orders/user/1",
        None,
    )
    .await;
    assert_eq!((status, orders[0]["user_id"].clone()), (200, json!(1)));
    let (status, _, products) = call(
        &gateway,
        Method::GET,
        "/api/product-service/products/category/electronics",
        None,
    )
    .await;
    assert_eq!(
        (status, products[0]["name"].clone()),
        (200, json!("Laptop"))
    );

    // A service nobody registered: the envelope, 503.
    let (status, id, missing) =
        call(&gateway, Method::GET, "/api/payment-service/payments", None).await;
    assert_eq!(status, 503);
    assert_eq!(missing["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(missing["request_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aims_gateway_replays_the_seeds_documented_api() {
    use reqwest::Method;
    let keystone = FakeKeystone::start(Duration::ZERO);
    let gateway = TestGateway::example("aims")
        .env("SERVER_PORT", "0")
        .env("ADMIN_PORT", "0")
        .env("JWT_SECRET_KEY", "an AIMS example signing key of 32+ bytes")
        .env("OS_AUTH_URL", &format!("http://{}/v3", keystone.address))
        .env("KEYSTONE_ENDPOINT", &format!("http://{}", keystone.address))
        .env("LOG_LEVEL", "INFO")
        .env("JSON_LOGS", "true")
        .start();
    let http = client();

    let (status, id, root) = call(&gateway, Method::GET, "/", None).await;
    assert_eq!((status, &root["status"]), (200, &json!("running")));
    assert_eq!(root["request_id"], id.as_str());
    let (status, _, health) = call(&gateway, Method::GET, "/health", None).await;
    assert_eq!(status, 200, "{health}");

    // No public registration (as in the seed); the operator makes the user on the
    // admin listener.
    let user =
        json!({"username": "operator", "email": "op@example.com", "password": "correct-horse-9"});
    let (status, _, _) = call(&gateway, Method::POST, "/auth/register", Some(user.clone())).await;
    assert_eq!(status, 404);
    let made = http
        .post(gateway.admin_url("/auth/register"))
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    // POST /auth/login, GET /auth/me.
    let (status, _, login) = call(
        &gateway,
        Method::POST,
        "/auth/login",
        Some(json!({"username": "operator", "password": "correct-horse-9"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["data"]["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let me: Value = http
        .get(gateway.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["user"]["username"], "operator", "{me}");
    let (status, _, refused) = call(&gateway, Method::GET, "/auth/me", None).await;
    assert_eq!((status, &refused["code"]), (401, &json!("UNAUTHORIZED")));
    let (status, _, _) = call(
        &gateway,
        Method::POST,
        "/auth/login",
        Some(json!({"username": "operator", "password": "wrong-horse-9"})),
    )
    .await;
    assert_eq!(status, 401);

    // POST /openstack/connect with the seed's body (auth_url left out: OS_AUTH_URL).
    let (name, password, project) = KEYSTONE_USER;
    let body = json!({
        "username": name, "password": password, "project_name": project,
        "user_domain_name": "Default", "project_domain_name": "Default",
        "region_name": "RegionOne", "interface": "public",
    });
    let (status, id, connected) = call(
        &gateway,
        Method::POST,
        "/openstack/connect",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["data"]["connected"], true);
    assert_eq!(connected["data"]["project_id"], "p-91c2");
    assert!(connected["data"]["expires_at"].is_string());
    let mut wrong = body.clone();
    wrong["password"] = json!("nope");
    let (status, _, _) = call(&gateway, Method::POST, "/openstack/connect", Some(wrong)).await;
    assert_eq!(status, 401);

    // The seed's named events, as JSON log lines (JSON_LOGS=true); log lines reach
    // the test some time after the answers.
    for (event, request) in [
        ("login_attempt", None),
        ("login_success", None),
        ("login_failed", None),
        ("openstack_connect_attempt", Some(id.as_str())),
        ("openstack_connect_success", Some(id.as_str())),
        ("openstack_connect_failed", None),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gateway
            .json_log()
            .iter()
            .any(|l| l["event"] == event && request.is_none_or(|id| l["request_id"] == id))
        {
            assert!(Instant::now() < deadline, "no {event}:\n{}", gateway.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
