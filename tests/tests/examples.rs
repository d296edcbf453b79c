//! The seed examples (`examples/<seed>/`), each started from its own `wasmgate.toml`
//! with the plugins its `run.sh` installs and the services it starts, and the seed's
//! documented API replayed call by call against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wasmgate_e2e::{
    FakeKeystone, GatewayProcess, KEYSTONE_USER, TestGateway, client, send, wait_until_ok,
    wasmgate_bin,
};

/// One of the examples' services (`examples/services`: `msa-service`,
/// `ts-portal-service`) on a free loopback port; killed when dropped.
struct ExampleService {
    child: Child,
    address: String,
}

impl ExampleService {
    /// Starts `bin` with `args` and waits for its `NAME listening on ADDRESS` line.
    fn start(bin: &str, args: &[&str]) -> Self {
        let bin = wasmgate_bin().with_file_name(bin);
        let mut child = Command::new(&bin)
            .args(args)
            .env("HEARTBEAT_SECONDS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .split_once(" listening on ")
            .unwrap_or_else(|| panic!("{} said {line:?}", bin.display()))
            .1
            .to_string();
        Self { child, address }
    }

    /// One of the MSA example's services, registering itself with `gateway`.
    fn msa(name: &str, gateway: &GatewayProcess) -> Self {
        Self::start("msa-service", &[name, "127.0.0.1:0", &gateway.url("")])
    }

    /// `http://ADDRESS`.
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for ExampleService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let _services: Vec<ExampleService> = ["user-service", "order-service", "product-service"]
        .iter()
        .map(|name| ExampleService::msa(name, &gateway))
        .collect();

    // The services register themselves: GET /services lists all three, live.
    wait_until_ok(
        "the services to register",
        Duration::from_secs(15),
        || async {
            let (status, _, listed) = call(&gateway, Method::GET, "/services", None).await;
            assert_eq!(status, 200);
            let healthy = listed["data"]["services"]
                .as_array()
                .map(|all| all.iter().filter(|s| s["healthy"] == 1).count());
            if healthy == Some(3) {
                return Ok(());
            }
            Err(listed)
        },
    )
    .await;

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
        gateway.wait_for_json_lines(event, 1, |l| {
            l["event"] == event && request.is_none_or(|id| l["request_id"] == id)
        });
    }
}

/// `GET path` with `token`: the whole response.
async fn get_with(gateway: &GatewayProcess, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `METHOD path` with `token` and a JSON body: (status, body).
async fn send_with(
    gateway: &GatewayProcess,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let answer = wasmgate_e2e::send_with(
        method,
        &gateway.url(path),
        &[("authorization", &bearer)],
        Some(&body),
    )
    .await;
    (answer.status, answer.json())
}

/// A CORS preflight from `origin` for a `POST` to `path` with `headers`.
async fn preflight(
    gateway: &GatewayProcess,
    path: &str,
    origin: &str,
    headers: &str,
) -> reqwest::Response {
    client()
        .request(reqwest::Method::OPTIONS, gateway.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

/// Waits until `/health` shows every service of `names` with `status`.
async fn wait_for_health(gateway: &GatewayProcess, names: &[&str], status: &str) -> Value {
    wait_until_ok(
        &format!("services {names:?} to be {status}"),
        Duration::from_secs(15),
        || async {
            let (_, _, health) = call(gateway, reqwest::Method::GET, "/health", None).await;
            if names
                .iter()
                .all(|name| health["services"][name]["status"] == status)
            {
                return Ok(health);
            }
            Err(health)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_portal_gateway_replays_the_seeds_documented_api() {
    use reqwest::Method;
    const LIMIT: usize = 40;
    let names = [
        ("member-service", "MEMBER_SERVICE_URL"),
        ("customer-service", "CUSTOMER_SERVICE_URL"),
        ("calendar-service", "CALENDAR_SERVICE_URL"),
        ("notice-service", "NOTICE_SERVICE_URL"),
        ("honeybox", "HONEYBOX_SERVICE_URL"),
    ];
    let mut services: Vec<ExampleService> = names
        .iter()
        .map(|(name, _)| ExampleService::start("ts-portal-service", &[name, "127.0.0.1:0"]))
        .collect();
    let mut example = TestGateway::example("ts-portal")
        .env("PORT", "0")
        .env("ADMIN_PORT", "0")
        .env(
            "JWT_SECRET_KEY",
            "a TS Portal example signing key, 32+ bytes",
        )
        .env("HEALTH_CHECK_INTERVAL", "1")
        .env("RATE_LIMIT_REQUESTS", &LIMIT.to_string())
        .env("RATE_LIMIT_WINDOW", "3600")
        .env("LOG_LEVEL", "INFO")
        .env("JSON_LOGS", "true");
    for ((_, variable), service) in names.iter().zip(&services) {
        example = example.env(variable, &service.url());
    }
    let gateway = example.start();
    let http = client();

    // GET /, /health (every service, with its response time), /metrics.
    let (status, id, root) = call(&gateway, Method::GET, "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(root["name"], "TS Portal API Gateway");
    assert_eq!(root["request_id"], id.as_str());
    let all = ["member", "customer", "calendar", "notice", "honeybox"];
    let health = wait_for_health(&gateway, &all, "healthy").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert!(
        health["services"]["member"]["response_time"]
            .as_str()
            .is_some_and(|t| t.ends_with("ms")),
        "{health}"
    );

    // No token: 401 with the envelope and WWW-Authenticate, on every service route.
    for path in [
        "/api/members",
        "/api/customers",
        "/api/calendar/events",
        "/api/notices",
        "/api/feeds",
        "/api/auth/me",
    ] {
        let response = http.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "UNAUTHORIZED", "{path}: {body}");
    }

    // Accounts: made on the admin listener; the first is admin.
    let register = |username: &str| json!({"username": username, "email": format!("{username}@example.com"), "password": "change-me-now-1"});
    let mut ids = Vec::new();
    for username in ["seungdobae", "jisoo"] {
        let made = http
            .post(gateway.admin_url("/api/auth/register"))
            .json(&register(username))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
        let made: Value = made.json().await.unwrap();
        ids.push(made["data"]["user"]["id"].as_str().unwrap().to_string());
    }
    let (status, _, _) = call(
        &gateway,
        Method::POST,
        "/api/auth/register",
        Some(register("mallory")),
    )
    .await;
    assert_eq!(status, 401, "no public registration");

    // POST /api/auth/login, GET /api/auth/me.
    let login = |username: &str| {
        let gateway = &gateway;
        let username = username.to_string();
        async move {
            let (status, _, login) = call(
                gateway,
                Method::POST,
                "/api/auth/login",
                Some(json!({"username": username, "password": "change-me-now-1"})),
            )
            .await;
            assert_eq!(status, 200, "{login}");
            login["data"]["token"].as_str().unwrap().to_string()
        }
    };
    let admin = login("seungdobae").await;
    let user = login("jisoo").await;
    let me: Value = get_with(&gateway, "/api/auth/me", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["user"]["username"], "seungdobae", "{me}");
    assert_eq!(me["data"]["user"]["role"], "admin");

    // Members: CRUD, the caller reaching the service as X-User-ID and X-Username, and
    // every answer with X-Request-Id and the rate limit's headers.
    let listed = get_with(&gateway, "/api/members", &admin).await;
    assert_eq!(listed.status(), 200);
    for header in [
        "x-request-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        assert!(listed.headers().contains_key(header), "{header}");
    }
    assert_eq!(
        listed.headers()["x-ratelimit-limit"],
        LIMIT.to_string().as_str()
    );
    let members: Value = listed.json().await.unwrap();
    assert_eq!(members.as_array().map(Vec::len), Some(2));
    let (status, created) = send_with(
        &gateway,
        Method::POST,
        "/api/members",
        &admin,
        json!({"name": "Choi Yuna", "team": "TS"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["created_by"], ids[0].as_str());
    assert_eq!(created["created_by_name"], "seungdobae");
    let path = format!("/api/members/{}", created["id"]);
    let (status, updated) =
        send_with(&gateway, Method::PUT, &path, &admin, json!({"team": "CSG"})).await;
    assert_eq!((status, &updated["team"]), (200, &json!("CSG")));
    assert_eq!(get_with(&gateway, &path, &admin).await.status(), 200);
    let (status, _) = send_with(&gateway, Method::DELETE, &path, &admin, json!(null)).await;
    assert_eq!(status, 200);
    assert_eq!(get_with(&gateway, &path, &admin).await.status(), 404);

    // The other services' documented lists.
    for (path, len) in [
        ("/api/customers", 1),
        ("/api/calendar/events", 1),
        ("/api/notices", 1),
        ("/api/feeds", 3),
    ] {
        let listed: Value = get_with(&gateway, path, &user).await.json().await.unwrap();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(len),
            "{path}: {listed}"
        );
    }
    let latest = get_with(&gateway, "/api/feeds/latest", &user).await;
    assert_eq!(latest.status(), 200);
    assert_eq!(latest.headers()["x-cache"], "MISS");
    let again = get_with(&gateway, "/api/feeds/latest", &admin).await;
    assert_eq!(
        again.headers()["x-cache"],
        "HIT",
        "HoneyBox's feed is cached"
    );

    // Notices: everyone reads, only an admin writes.
    let notice = json!({"title": "Maintenance", "body": "Saturday"});
    let (status, refused) = send_with(
        &gateway,
        Method::POST,
        "/api/notices",
        &user,
        notice.clone(),
    )
    .await;
    assert_eq!((status, &refused["code"]), (403, &json!("FORBIDDEN")));
    let (status, _) = send_with(&gateway, Method::POST, "/api/notices", &admin, notice).await;
    assert_eq!(status, 201);

    // CORS for the Vue frontend: preflight and actual request.
    let answered = preflight(
        &gateway,
        "/api/members",
        "http://localhost:3000",
        "authorization, content-type",
    )
    .await;
    assert_eq!(answered.status(), 204);
    assert_eq!(
        answered.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let login_preflight = preflight(
        &gateway,
        "/api/auth/login",
        "http://localhost:5173",
        "content-type",
    )
    .await;
    assert_eq!(login_preflight.status(), 204, "the login page's preflight");
    let actual = http
        .get(gateway.url("/api/members"))
        .header("origin", "http://localhost:3000")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.headers()["access-control-allow-credentials"], "true");

    // Refresh and logout: a refreshed or logged-out token is refused.
    let (status, refreshed) = send_with(
        &gateway,
        Method::POST,
        "/api/auth/refresh",
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let fresh = refreshed["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        get_with(&gateway, "/api/members", &admin).await.status(),
        401
    );
    assert_eq!(
        get_with(&gateway, "/api/members", &fresh).await.status(),
        200
    );
    let (status, _) = send_with(
        &gateway,
        Method::POST,
        "/api/auth/logout",
        &fresh,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_with(&gateway, "/api/members", &fresh).await.status(),
        401
    );

    // A service that stops: /health says so, and its route answers 503.
    drop(services.remove(1));
    let health = wait_for_health(&gateway, &["customer"], "down").await;
    assert_eq!(health["status"], "degraded");
    let down = get_with(&gateway, "/api/customers", &user).await;
    assert_eq!(down.status(), 503);
    let down: Value = down.json().await.unwrap();
    assert_eq!(down["code"], "SERVICE_UNAVAILABLE");

    // The rate limit, per user: 429 RATE_LIMITED with Retry-After once it is spent.
    let mut passed = 0;
    let refused = loop {
        let response = get_with(&gateway, "/api/notices", &user).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 200);
        passed += 1;
        assert!(passed <= LIMIT, "more than {LIMIT} requests passed");
    };
    assert!(refused.headers().contains_key("retry-after"));
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert_eq!(
        get_with(&gateway, "/api/feeds", &admin).await.status(),
        401,
        "the admin's tokens are revoked"
    );

    // Metrics by the seed's names.
    let metrics = http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "http_requests_in_progress",
        "service_health_status",
        "rate_limit_exceeded_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }

    // The access log: one JSON line per request with the caller and the service.
    gateway.wait_for_json_lines("an access line", 1, |line| {
        line["message"] == "access"
            && line["user"] == ids[0].as_str()
            && line["service"] == "member"
            && line["status"] == 201
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paca_api_replays_the_seeds_documented_api() {
    use futures_util::{SinkExt, StreamExt};
    use reqwest::Method;
    use tokio_tungstenite::tungstenite::Message;
    const LIMIT: usize = 30;
    let backend = ExampleService::start("paca-service", &["127.0.0.1:0"]);
    let gateway = TestGateway::example("paca")
        .env("API_PORT", "0")
        .env("ADMIN_PORT", "0")
        .env("JWT_SECRET_KEY", "a PACA example signing key of 32+ bytes")
        .env("PACA_SERVICE_URL", &backend.url())
        .env("CORS_ORIGINS", r#"["http://localhost:3000"]"#)
        .env("RATE_LIMIT_REQUESTS", &LIMIT.to_string())
        .env("RATE_LIMIT_PERIOD", "3600")
        .start();
    let http = client();

    // GET /api/v1/health: public, the backend's own answer.
    let (status, _, health) = call(&gateway, Method::GET, "/api/v1/health", None).await;
    assert_eq!((status, &health["status"]), (200, &json!("healthy")));

    // A token: an account made on the admin listener, then login.
    let account =
        json!({"username": "paca", "email": "paca@example.com", "password": "change-me-now-1"});
    let made = http
        .post(gateway.admin_url("/api/v1/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let user_id = made.json::<Value>().await.unwrap()["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, login) = call(
        &gateway,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "paca", "password": "change-me-now-1"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["data"]["token"].as_str().unwrap().to_string();

    // POST /api/v1/cognitive/process with the seed's client body; no token: 401.
    let task = json!({"type": "reasoning", "input": "복잡한 논리 문제", "context": {"domain": "mathematics"}});
    let (status, _, refused) = call(
        &gateway,
        Method::POST,
        "/api/v1/cognitive/process",
        Some(task.clone()),
    )
    .await;
    assert_eq!((status, &refused["code"]), (401, &json!("UNAUTHORIZED")));
    let (status, accepted) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/cognitive/process",
        &token,
        task,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        accepted["user_id"],
        user_id.as_str(),
        "the caller reaches the backend"
    );
    let task_id = accepted["task_id"].as_str().unwrap().to_string();

    // Pydantic's job: a body that does not fit is refused before the backend.
    for bad in [
        json!({"input": "no type"}),
        json!({"type": "reasoning", "input": ""}),
        json!({"type": "reasoning", "input": "x", "extra": 1}),
    ] {
        let (status, body) = send_with(
            &gateway,
            Method::POST,
            "/api/v1/cognitive/process",
            &token,
            bad.clone(),
        )
        .await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("VALIDATION_ERROR")),
            "{bad}"
        );
    }

    // GET /api/v1/cognitive/status/{task_id}.
    let found: Value = get_with(
        &gateway,
        &format!("/api/v1/cognitive/status/{task_id}"),
        &token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(found["task_id"], task_id.as_str());
    assert_eq!(
        get_with(&gateway, "/api/v1/cognitive/status/task-404", &token)
            .await
            .status(),
        404
    );

    // POST /api/v1/reasoning/execute, a large answer gzipped for a client that takes it.
    let long = "전제 ".repeat(400);
    let response = http
        .post(gateway.url("/api/v1/reasoning/execute"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .json(&json!({"input": long}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");

    // CORS for the configured origin.
    let answered = preflight(
        &gateway,
        "/api/v1/cognitive/process",
        "http://localhost:3000",
        "authorization, content-type",
    )
    .await;
    assert_eq!(answered.status(), 204);
    assert_eq!(
        answered.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    // WebSocket /ws/realtime with ?token=…; without one the handshake is refused.
    let ws = |query: &str| {
        format!(
            "ws://{}/ws/realtime{query}",
            gateway.url("").trim_start_matches("http://")
        )
    };
    let refused = tokio_tungstenite::connect_async(ws("")).await;
    assert!(refused.is_err(), "a WebSocket without a token was let in");
    let (mut socket, _) = tokio_tungstenite::connect_async(ws(&format!("?token={token}")))
        .await
        .expect("the handshake with a token");
    socket.send(Message::Text("hello".into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an answer in time")
        .unwrap()
        .unwrap();
    let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply["echo"], "hello");
    assert_eq!(reply["user_id"], user_id.as_str());
    drop(socket);

    // The rate limit: RATE_LIMIT_REQUESTS per RATE_LIMIT_PERIOD, then 429.
    let mut passed = 0;
    loop {
        let response = get_with(
            &gateway,
            &format!("/api/v1/cognitive/status/{task_id}"),
            &token,
        )
        .await;
        if response.status() == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "RATE_LIMITED");
            break;
        }
        assert_eq!(response.status(), 200);
        passed += 1;
        assert!(passed <= LIMIT, "more than {LIMIT} requests passed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skyclust_api_replays_the_seeds_documented_api() {
    use futures_util::{SinkExt, StreamExt};
    use reqwest::Method;
    use tokio_tungstenite::tungstenite::Message;
    const ANONYMOUS: usize = 8;
    let backend = ExampleService::start("skyclust-service", &["127.0.0.1:0"]);
    let gateway = TestGateway::example("skyclust")
        .env("PORT", "0")
        .env("ADMIN_PORT", "0")
        .env(
            "JWT_SECRET_KEY",
            "a SkyClust example signing key, 32+ bytes",
        )
        .env("SKYCLUST_SERVICE_URL", &backend.url())
        .env("RATE_LIMIT_ANONYMOUS", &ANONYMOUS.to_string())
        .start();
    let http = client();

    // Registration and login (public): the first account is admin, later ones user.
    let account = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": "cloud-pass-42"});
    let (status, _, first) = call(
        &gateway,
        Method::POST,
        "/api/v1/auth/register",
        Some(account("admin")),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["success"], true);
    assert_eq!(first["data"]["user"]["role"], "admin");
    let admin_id = first["data"]["user"]["id"].as_str().unwrap().to_string();
    let admin = first["data"]["token"].as_str().unwrap().to_string();
    let (status, _, second) = call(
        &gateway,
        Method::POST,
        "/api/v1/auth/register",
        Some(account("dev")),
    )
    .await;
    assert_eq!(
        (status, &second["data"]["user"]["role"]),
        (201, &json!("user"))
    );
    let (status, _, taken) = call(
        &gateway,
        Method::POST,
        "/api/v1/auth/register",
        Some(account("dev")),
    )
    .await;
    assert_eq!((status, &taken["code"]), (409, &json!("CONFLICT")));
    let (status, _, login) = call(
        &gateway,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"email": "dev@example.com", "password": "cloud-pass-42"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["data"]["user"]["username"], "dev");
    let user = login["data"]["token"].as_str().unwrap().to_string();

    // Everything else needs a token or a key: the envelope, 401.
    let (status, _, refused) = call(&gateway, Method::GET, "/api/v1/workspaces", None).await;
    assert_eq!((status, &refused["code"]), (401, &json!("UNAUTHORIZED")));
    assert_eq!(refused["success"], false);

    // The WebSocket, authenticated by its first message, then told of a new VM.
    let ws_url = format!("ws://{}/ws", gateway.url("").trim_start_matches("http://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("the handshake");
    socket
        .send(Message::Text(
            json!({"type": "auth", "token": user}).to_string().into(),
        ))
        .await
        .unwrap();

    // Workspaces: made by the admin (owner from X-User-ID), paginated.
    let (status, workspace) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/workspaces",
        &admin,
        json!({"name": "prod", "description": "production"}),
    )
    .await;
    assert_eq!(status, 201, "{workspace}");
    assert_eq!(workspace["success"], true);
    assert_eq!(workspace["data"]["owner_id"], admin_id.as_str());
    let workspace_id = workspace["data"]["id"].as_str().unwrap().to_string();
    let listed = get_with(&gateway, "/api/v1/workspaces?limit=10&offset=0", &user).await;
    assert_eq!(
        listed.headers()["x-ratelimit-limit"],
        "1000",
        "a user's hourly limit"
    );
    let request_id = listed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["data"]["pagination"]["total"], 1, "{listed}");
    assert_eq!(listed["request_id"], request_id.as_str());

    // VMs: a user may make one; the WebSocket hears of it.
    let (status, vm) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/vms",
        &user,
        json!({"name": "web-1", "provider": "aws", "instance_type": "t3.micro", "region": "us-east-1", "workspace_id": workspace_id}),
    )
    .await;
    assert_eq!(
        (status, &vm["data"]["status"]),
        (201, &json!("pending")),
        "{vm}"
    );
    let vm_id = vm["data"]["id"].clone();
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let message = socket.next().await.expect("the socket is open").unwrap();
            let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
            if event["type"] == "vm_status_changed" {
                return event;
            }
        }
    })
    .await
    .expect("a vm_status_changed event");
    assert_eq!(event["data"]["vm_id"], vm_id);
    let filtered: Value = get_with(&gateway, "/api/v1/vms?provider=aws", &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["data"]["vms"].as_array().map(Vec::len), Some(1));

    // Credentials: their secrets are never shown back.
    let (status, credential) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/credentials",
        &user,
        json!({"name": "aws-main", "provider": "aws", "data": {"access_key": "AK", "secret_key": "SK", "region": "us-east-1"}}),
    )
    .await;
    assert_eq!(status, 201);
    assert!(credential["data"].get("data").is_none(), "{credential}");

    // Roles: audit logs and the system's health are an admin's (403 for a user).
    for path in [
        "/api/v1/audit-logs",
        "/api/v1/health/db",
        "/api/v1/health/redis",
    ] {
        let response = get_with(&gateway, path, &user).await;
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "FORBIDDEN");
        assert_eq!(
            get_with(&gateway, path, &admin).await.status(),
            200,
            "{path}"
        );
    }
    let audit: Value = get_with(&gateway, "/api/v1/audit-logs?action=create", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"]["pagination"]["total"], 3, "{audit}");

    // Cost analysis and notifications.
    let cost: Value = get_with(&gateway, "/api/v1/cost-analysis?period=30d", &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cost["data"]["currency"], "USD");
    let notes: Value = get_with(&gateway, "/api/v1/notifications?unread_only=true", &user)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        notes["data"]["notifications"].as_array().map(Vec::len),
        Some(1)
    );
    let (status, _) = send_with(
        &gateway,
        Method::PUT,
        "/api/v1/notifications/read-all",
        &user,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);

    // API keys: made by an admin only; a viewer's key reads at the API-key rate and
    // cannot write.
    let (status, _) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/api-keys",
        &user,
        json!({"consumer": "report-svc", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, made) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/api-keys",
        &admin,
        json!({"consumer": "report-svc", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["data"]["key"]
        .as_str()
        .or(made["key"].as_str())
        .expect("the key, shown once")
        .to_string();
    let read = http
        .get(gateway.url("/api/v1/workspaces"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-ratelimit-limit"], "10000");
    let write = http
        .post(gateway.url("/api/v1/workspaces"))
        .header("x-api-key", &key)
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);

    // Logout: the token is refused from then on.
    let (status, _) = send_with(
        &gateway,
        Method::POST,
        "/api/v1/auth/logout",
        &user,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_with(&gateway, "/api/v1/workspaces", &user)
            .await
            .status(),
        401
    );

    // Anonymous callers (registration, login, the WebSocket's handshake) share a
    // small hourly limit per address: 429 RATE_LIMITED once it is spent.
    let mut answered = 0;
    loop {
        let (status, _, body) = call(
            &gateway,
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"username": ""})),
        )
        .await;
        if status == 429 {
            assert_eq!(body["code"], "RATE_LIMITED");
            break;
        }
        assert_eq!(status, 400, "{body}");
        answered += 1;
        assert!(
            answered <= ANONYMOUS,
            "more than {ANONYMOUS} anonymous requests passed"
        );
    }
}
