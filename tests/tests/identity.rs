//! The identity stack with the real binary and the real plugins, as SkyClust runs
//! it: `identity` issues tokens, `jwt-auth` checks them (and the revocations
//! `identity` writes, through the `kv` namespace the operator grants both),
//! `api-key-auth` lets services in with keys managed by an admin, and `rbac` decides
//! per role and method. Users, keys and revocations survive a restart.

use std::path::Path;

use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, assert_envelope, client, wait_until};

const SECRET: &str = "the identity e2e signing secret, at least 32 bytes";

fn gateway(upstream: &Upstream, data: &Path) -> GatewayProcess {
    TestGateway::new()
        .data_dir(data)
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .plugin("identity", "identity")
        .plugin("api-key-auth", "api-key-auth")
        .plugin("rbac", "rbac")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(
            r#"
[plugins.jwt-auth]
secrets = { jwt = { env = "E2E_JWT_SECRET" } }
kv_namespace = "auth"

[plugins.identity]
secrets = { jwt = { env = "E2E_JWT_SECRET" } }
kv_namespace = "auth"
timeout_ms = 5000

[[routes]]
name = "auth"
prefix = "/auth"
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], audience = "api", skip_paths = ["/auth/register", "/auth/login"] }
[[routes.plugins]]
name = "identity"
config = { secret = "jwt", audience = "api", argon2 = { memory_kib = 1024, iterations = 1 } }

[[routes]]
name = "api"
prefix = "/api"
service = "echo"
[[routes.plugins]]
name = "api-key-auth"
config = { optional = true }
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], audience = "api" }
[[routes.plugins]]
name = "rbac"
config = { roles = { admin = ["*"], user = ["item:read"] }, rules = [{ methods = ["GET"], permissions = ["item:read"] }, { methods = ["DELETE"], roles = ["admin"] }] }

[[routes]]
name = "api-keys-admin"
listener = "admin"
prefix = "/admin/api-keys"
[[routes.plugins]]
name = "api-key-auth"
config = { manage = { base = "/admin/api-keys" } }

[[routes]]
name = "api-keys"
prefix = "/manage/api-keys"
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], audience = "api" }
[[routes.plugins]]
name = "rbac"
config = { rules = [{ roles = ["admin"] }] }
[[routes.plugins]]
name = "api-key-auth"
config = { manage = { base = "/manage/api-keys" } }
"#,
        )
        .start()
}

/// (status, X-Request-Id, body as JSON) of one request.
async fn call(
    http: &Client,
    gateway: &GatewayProcess,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut request = http.request(method, gateway.url(path));
    request = match auth {
        Auth::None => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Key(key) => request.header("x-api-key", key),
    };
    send(request, body).await
}

/// (status, X-Request-Id, body as JSON) of one request to the admin listener.
/// The status of a request without a body.
async fn status_of(
    http: &Client,
    gateway: &GatewayProcess,
    method: Method,
    path: &str,
    auth: Auth<'_>,
) -> u16 {
    call(http, gateway, method, path, auth, None).await.0
}

async fn admin_call(
    http: &Client,
    gateway: &GatewayProcess,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    send(http.request(method, gateway.admin_url(path)), body).await
}

/// Sends `request` with `body` as JSON, if any: (status, X-Request-Id, body as JSON).
async fn send(mut request: RequestBuilder, body: Option<Value>) -> (u16, String, Value) {
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, id, body)
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Key(&'a str),
}

/// Registers the first user (an admin) and returns their token.
async fn first_admin(http: &Client, gw: &GatewayProcess) -> String {
    let form =
        json!({"username": "root", "email": "root@example.com", "password": "correct-horse-7"});
    let (status, _, body) = call(
        http,
        gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(form),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["user"]["role"], "admin");
    token(&body)
}

fn token(body: &Value) -> String {
    body["data"]["token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn register_login_me_protected_logout_and_api_keys_survive_a_restart() {
    let upstream = Upstream::start();
    let data = tempfile::tempdir().unwrap();
    let mut gw = gateway(&upstream, data.path());
    let http = client();
    let register = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": "correct-horse-7"});

    // register: the first user is admin, the next a user; a duplicate is a 409.
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(register("alice")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["user"]["role"], "admin");
    let alice = token(&body);
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(register("bob")),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["data"]["user"]["role"], "user");
    let bob_id = body["data"]["user"]["id"].as_str().unwrap().to_string();
    let (status, id, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(register("bob")),
    )
    .await;
    assert_envelope(
        status,
        Some(&id),
        body.to_string().as_bytes(),
        409,
        "CONFLICT",
    );
    let (status, id, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(json!({"username": "carol", "email": "nope", "password": "short"})),
    )
    .await;
    let envelope = assert_envelope(
        status,
        Some(&id),
        body.to_string().as_bytes(),
        400,
        "VALIDATION_ERROR",
    );
    assert!(
        envelope["data"]["fields"]["email"].is_string()
            && envelope["data"]["fields"]["password"].is_string()
    );

    // login, me.
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/login",
        Auth::None,
        Some(json!({"email": "bob@example.com", "password": "correct-horse-7"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bob = token(&body);
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/login",
        Auth::None,
        Some(json!({"username": "bob", "password": "wrong-horse-7"})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _, body) = call(
        &http,
        &gw,
        Method::GET,
        "/auth/me",
        Auth::Bearer(&bob),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["username"], "bob");
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/auth/me", Auth::None).await,
        401
    );

    // A protected upstream route sees who called, never what the client claimed.
    let response = http
        .get(gw.url("/api/items"))
        .bearer_auth(&bob)
        .header("x-user-id", "alice")
        .header("x-user-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-id"], json!([bob_id]));
    assert_eq!(echo["headers"]["x-username"], json!(["bob"]));
    assert_eq!(echo["headers"]["x-user-role"], json!(["user"]));
    // rbac: bob (user) may read but not delete; alice (admin) may.
    assert_eq!(
        status_of(
            &http,
            &gw,
            Method::DELETE,
            "/api/items/1",
            Auth::Bearer(&bob)
        )
        .await,
        403
    );
    assert_eq!(
        status_of(
            &http,
            &gw,
            Method::DELETE,
            "/api/items/1",
            Auth::Bearer(&alice)
        )
        .await,
        200
    );

    // logout: the same token is refused everywhere after.
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/logout",
        Auth::Bearer(&bob),
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("logged out"))
    );
    for (method, path) in [(Method::GET, "/api/items"), (Method::GET, "/auth/me")] {
        let (status, id, body) = call(&http, &gw, method, path, Auth::Bearer(&bob), None).await;
        assert_envelope(
            status,
            Some(&id),
            body.to_string().as_bytes(),
            401,
            "UNAUTHORIZED",
        );
    }
    gw.wait_for_log("revoked (jti)");

    // API keys: only an admin manages them; the key is shown once, listed by prefix.
    let form = json!({"consumer": "report-svc", "role": "user", "tier": "pro"});
    assert_eq!(
        call(
            &http,
            &gw,
            Method::POST,
            "/manage/api-keys",
            Auth::Bearer(&bob),
            Some(form.clone())
        )
        .await
        .0,
        401
    );
    let (_, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/login",
        Auth::None,
        Some(json!({"username": "bob", "password": "correct-horse-7"})),
    )
    .await;
    let bob_again = token(&body);
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/manage/api-keys",
        Auth::Bearer(&bob_again),
        Some(form.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("requires role admin"))
    );
    // On the admin listener (loopback), the operator manages keys with no token.
    let (status, _, body) = admin_call(
        &http,
        &gw,
        Method::POST,
        "/admin/api-keys",
        Some(form.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["key"].as_str().unwrap().to_string();
    let key_id = body["data"]["id"].as_str().unwrap().to_string();
    let (_, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/manage/api-keys",
        Auth::Bearer(&alice),
        Some(form),
    )
    .await;
    let kept_key = body["data"]["key"].as_str().unwrap().to_string();
    let (status, _, listing) = admin_call(&http, &gw, Method::GET, "/admin/api-keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(listing["data"]["keys"].as_array().unwrap().len(), 2);
    assert!(
        !listing
            .to_string()
            .contains(key.splitn(3, '_').nth(2).unwrap())
    );

    let response = http
        .get(gw.url("/api/items"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-user-id"], json!(["report-svc"]));
    assert!(
        echo["headers"].get("x-api-key").is_none(),
        "the key stays at the gateway"
    );
    // A key's role is checked like a user's.
    assert_eq!(
        status_of(&http, &gw, Method::DELETE, "/api/items/1", Auth::Key(&key)).await,
        403
    );

    let (status, _, _) = admin_call(
        &http,
        &gw,
        Method::DELETE,
        &format!("/admin/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The management route is not on the gateway listener, and the admin API's own
    // endpoints still answer on the admin one.
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/admin/api-keys", Auth::None).await,
        404
    );
    assert_eq!(
        admin_call(&http, &gw, Method::GET, "/admin/snapshot", None)
            .await
            .0,
        200
    );
    let (_, _, routes) = admin_call(&http, &gw, Method::GET, "/admin/routes", None).await;
    assert!(
        routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["listener"] == "admin")
    );
    let (status, id, body) =
        call(&http, &gw, Method::GET, "/api/items", Auth::Key(&key), None).await;
    assert_envelope(
        status,
        Some(&id),
        body.to_string().as_bytes(),
        401,
        "UNAUTHORIZED",
    );

    // Restart on the same data directory.
    gw.terminate();
    let gw = gateway(&upstream, data.path());
    let (status, _, body) = call(
        &http,
        &gw,
        Method::POST,
        "/auth/login",
        Auth::None,
        Some(json!({"email": "alice@example.com", "password": "correct-horse-7"})),
    )
    .await;
    assert_eq!(status, 200, "users survive: {body}");
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/auth/me", Auth::Bearer(&alice)).await,
        200
    );
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/auth/me", Auth::Bearer(&bob)).await,
        401,
        "revocations survive"
    );
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/api/items", Auth::Key(&key)).await,
        401,
        "revoked keys stay revoked"
    );
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/api/items", Auth::Key(&kept_key)).await,
        200,
        "keys survive"
    );
    assert_eq!(
        call(
            &http,
            &gw,
            Method::POST,
            "/auth/register",
            Auth::None,
            Some(register("alice"))
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn bad_api_keys_each_get_a_401_envelope() {
    let upstream = Upstream::start();
    let data = tempfile::tempdir().unwrap();
    let mut gw = gateway(&upstream, data.path());
    let http = client();
    let admin = first_admin(&http, &gw).await;
    let make = async |form: Value| {
        let (status, _, body) = call(
            &http,
            &gw,
            Method::POST,
            "/manage/api-keys",
            Auth::Bearer(&admin),
            Some(form),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        (
            body["data"]["key"].as_str().unwrap().to_string(),
            body["data"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (good, good_id) = make(json!({"consumer": "svc", "role": "user"})).await;
    let (revoked, revoked_id) = make(json!({"consumer": "svc", "role": "user"})).await;
    let (short_lived, _) =
        make(json!({"consumer": "svc", "role": "user", "expires_in_seconds": 1})).await;
    let (of_gone_consumer, _) = make(json!({"consumer": "gone", "role": "user"})).await;
    call(
        &http,
        &gw,
        Method::DELETE,
        &format!("/manage/api-keys/{revoked_id}"),
        Auth::Bearer(&admin),
        None,
    )
    .await;
    call(
        &http,
        &gw,
        Method::DELETE,
        "/manage/api-keys/consumers/gone",
        Auth::Bearer(&admin),
        None,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let secret = good.splitn(3, '_').nth(2).unwrap();
    let cases = [
        ("revoked key", revoked.clone()),
        ("key of a revoked consumer", of_gone_consumer.clone()),
        ("expired key", short_lived.clone()),
        ("unknown id", format!("wgk_0123456789ab_{secret}")),
        (
            "wrong secret",
            format!("wgk_{good_id}_{}", secret.chars().rev().collect::<String>()),
        ),
        ("truncated", good[..good.len() - 3].to_string()),
        ("another gateway's key", "sk_live_51Habc".to_string()),
        ("empty", String::new()),
    ];
    for (name, key) in &cases {
        let (status, id, body) =
            call(&http, &gw, Method::GET, "/api/x", Auth::Key(key), None).await;
        let envelope = assert_envelope(
            status,
            Some(&id),
            body.to_string().as_bytes(),
            401,
            "UNAUTHORIZED",
        );
        assert!(!envelope.to_string().contains(secret), "{name}");
    }
    assert_eq!(
        status_of(&http, &gw, Method::GET, "/api/x", Auth::Key(&good)).await,
        200
    );
    assert!(gw.is_running());
    assert!(
        !gw.settled_log().contains(secret),
        "the log holds a key's secret"
    );
    gw.terminate();
}

#[tokio::test]
async fn a_revoked_consumer_is_refused_with_any_of_its_keys() {
    let upstream = Upstream::start();
    let data = tempfile::tempdir().unwrap();
    let gw = gateway(&upstream, data.path());
    let http = client();
    let admin = first_admin(&http, &gw).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (status, _, body) = call(
            &http,
            &gw,
            Method::POST,
            "/manage/api-keys",
            Auth::Bearer(&admin),
            Some(json!({"consumer": "partner", "role": "user"})),
        )
        .await;
        assert_eq!(status, 201);
        keys.push(body["data"]["key"].as_str().unwrap().to_string());
    }
    for key in &keys {
        assert_eq!(
            status_of(&http, &gw, Method::GET, "/api/x", Auth::Key(key)).await,
            200
        );
    }
    let (status, _, _) = call(
        &http,
        &gw,
        Method::DELETE,
        "/manage/api-keys/consumers/partner",
        Auth::Bearer(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for key in &keys {
        let (status, id, body) =
            call(&http, &gw, Method::GET, "/api/x", Auth::Key(key), None).await;
        assert_envelope(
            status,
            Some(&id),
            body.to_string().as_bytes(),
            401,
            "UNAUTHORIZED",
        );
    }
    gw.wait_for_log(r#"consumer \"partner\" was revoked"#);
}

/// Issue 12: a registration the client saw acknowledged (201) is kept, even when the
/// gateway is killed with SIGKILL right after the last one, before any periodic flush.
#[tokio::test]
async fn acknowledged_registrations_survive_sigkill() {
    let upstream = Upstream::start();
    let data = tempfile::tempdir().unwrap();
    let http = client();
    let names: Vec<String> = (0..30).map(|i| format!("durable{i}")).collect();
    {
        let mut gw = gateway(&upstream, data.path());
        for name in &names {
            let (status, _, body) = call(
                &http,
                &gw,
                Method::POST,
                "/auth/register",
                Auth::None,
                Some(json!({"username": name, "email": format!("{name}@example.com"), "password": "correct-horse-7"})),
            )
            .await;
            assert_eq!(status, 201, "{body}");
        }
        gw.signal("KILL");
        wasmgate_e2e::wait_for(
            "the gateway to die",
            std::time::Duration::from_secs(10),
            || (!gw.is_running()).then_some(()),
        );
    }
    let gw = gateway(&upstream, data.path());
    for name in &names {
        let (status, _, body) = call(
            &http,
            &gw,
            Method::POST,
            "/auth/login",
            Auth::None,
            Some(json!({"username": name, "password": "correct-horse-7"})),
        )
        .await;
        assert_eq!(status, 200, "{name} was acknowledged but is gone: {body}");
    }
}

/// A gateway with `identity` alone on `/auth`, its logins limited by `limits` (an
/// inline TOML table) and hashing at `argon2`'s cost.
fn identity_gateway(limits: &str, argon2: &str) -> GatewayProcess {
    TestGateway::new()
        .plugin("identity", "identity")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(&format!(
            r#"
[plugins.identity]
secrets = {{ jwt = {{ env = "E2E_JWT_SECRET" }} }}
timeout_ms = 5000

[[routes]]
name = "auth"
prefix = "/auth"
[[routes.plugins]]
name = "identity"
config = {{ secret = "jwt", argon2 = {argon2}, login_limits = {limits} }}
"#
        ))
        .start()
}

const CHEAP_ARGON2: &str = "{ memory_kib = 1024, iterations = 1 }";

/// A client whose connections come from `ip` (any of 127.0.0.0/8 reaches the
/// gateway's loopback listener), to play several clients.
fn client_from(ip: &str) -> Client {
    Client::builder()
        .no_proxy()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One login answer: status, `X-Request-Id`, `Retry-After`, body.
struct Answer {
    status: u16,
    request_id: String,
    retry_after: Option<u64>,
    body: Value,
}

impl Answer {
    /// The body without what differs on every request (`request_id`, `timestamp`).
    fn shape(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(fields) = body.as_object_mut() {
            fields.remove("request_id");
            fields.remove("timestamp");
        }
        body
    }

    /// Checks a 429 `RATE_LIMITED` envelope with a `Retry-After` of at most `lock`
    /// seconds; returns the `Retry-After`.
    fn assert_limited(&self, lock: u64) -> u64 {
        assert_envelope(
            self.status,
            Some(&self.request_id),
            self.body.to_string().as_bytes(),
            429,
            "RATE_LIMITED",
        );
        let seconds = self.retry_after.expect("a Retry-After header");
        assert!((1..=lock).contains(&seconds), "Retry-After: {seconds}");
        seconds
    }
}

async fn login_as(http: &Client, gw: &GatewayProcess, name: &str, password: &str) -> Answer {
    let field = if name.contains('@') {
        "email"
    } else {
        "username"
    };
    let response = http
        .post(gw.url("/auth/login"))
        .json(&json!({field: name, "password": password}))
        .send()
        .await
        .expect("request sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let request_id = header("x-request-id").expect("X-Request-Id");
    let retry_after = header("retry-after").map(|v| v.parse().expect("Retry-After in seconds"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        request_id,
        retry_after,
        body,
    }
}

async fn register_as(
    http: &Client,
    gw: &GatewayProcess,
    username: &str,
    email: &str,
) -> (u16, String, Value) {
    let form = json!({"username": username, "email": email, "password": "correct-horse-7"});
    call(
        http,
        gw,
        Method::POST,
        "/auth/register",
        Auth::None,
        Some(form),
    )
    .await
}

const RIGHT: &str = "correct-horse-7";
const WRONG: &str = "wrong-horse-7";

/// Issue 13 item 5: failed logins lock the account (known or not) with a 429 and a
/// `Retry-After`, even for the right password and from another client; the lock
/// ends; a success forgets the failures.
#[tokio::test]
async fn failed_logins_lock_the_account_whether_it_exists_or_not() {
    let gw = identity_gateway(
        "{ account_failures = 3, client_failures = 100, window_seconds = 60, lock_seconds = 2 }",
        CHEAP_ARGON2,
    );
    let http = client();
    assert_eq!(
        register_as(&http, &gw, "alice", "alice@example.com")
            .await
            .0,
        201
    );

    let mut failures = Vec::new();
    for _ in 0..3 {
        failures.push(login_as(&http, &gw, "alice", WRONG).await);
    }
    let locked = login_as(&http, &gw, "alice", WRONG).await;
    locked.assert_limited(2);
    // The right password, from another client too: still locked.
    login_as(&http, &gw, "alice", RIGHT).await.assert_limited(2);
    login_as(&client_from("127.0.0.2"), &gw, "ALICE", RIGHT)
        .await
        .assert_limited(2);

    // A name nobody has gets exactly the same answers.
    let mut unknown = Vec::new();
    for _ in 0..3 {
        unknown.push(login_as(&http, &gw, "nobody", WRONG).await);
    }
    let unknown_locked = login_as(&http, &gw, "nobody", RIGHT).await;
    unknown_locked.assert_limited(2);
    for (known, unknown) in failures.iter().zip(&unknown) {
        assert_envelope(
            known.status,
            Some(&known.request_id),
            known.body.to_string().as_bytes(),
            401,
            "UNAUTHORIZED",
        );
        assert_eq!(
            (known.status, known.shape()),
            (unknown.status, unknown.shape())
        );
        assert_eq!(known.retry_after, None);
    }
    assert_eq!(locked.shape(), unknown_locked.shape());

    // The lock ends by itself (2 s), and the right password works again.
    wait_until(
        "the lock to end",
        std::time::Duration::from_secs(10),
        || async {
            let answer = login_as(&http, &gw, "alice", RIGHT).await;
            if answer.status == 200 {
                return Some(());
            }
            answer.assert_limited(2);
            None
        },
    )
    .await;
    // A success forgets the failures before it: 2 + 2 failures lock nothing.
    for _ in 0..2 {
        assert_eq!(login_as(&http, &gw, "alice", WRONG).await.status, 401);
    }
    assert_eq!(login_as(&http, &gw, "alice", RIGHT).await.status, 200);
    for _ in 0..2 {
        assert_eq!(login_as(&http, &gw, "alice", WRONG).await.status, 401);
    }
    assert_eq!(login_as(&http, &gw, "alice", RIGHT).await.status, 200);
}

/// Issue 13 item 5: one client failing on many accounts is locked, whatever the
/// accounts; other clients are not.
#[tokio::test]
async fn the_client_limit_spans_accounts() {
    let gw = identity_gateway(
        "{ account_failures = 10, client_failures = 3, lock_seconds = 60 }",
        CHEAP_ARGON2,
    );
    let http = client();
    assert_eq!(
        register_as(&http, &gw, "alice", "alice@example.com")
            .await
            .0,
        201
    );
    assert_eq!(
        register_as(&http, &gw, "bob", "bob@example.com").await.0,
        201
    );
    let guesser = client_from("127.0.0.3");
    for name in ["alice", "nobody", "carol@example.com"] {
        assert_eq!(login_as(&guesser, &gw, name, WRONG).await.status, 401);
    }
    let locked = login_as(&guesser, &gw, "bob", RIGHT).await;
    locked.assert_limited(60);
    assert_eq!(
        locked.body["error"],
        "too many failed logins; try again later"
    );
    // Other clients, and the accounts themselves, are untouched.
    assert_eq!(login_as(&http, &gw, "bob", RIGHT).await.status, 200);
    assert_eq!(login_as(&http, &gw, "alice", RIGHT).await.status, 200);
    gw.wait_for_log("login refused");
}

/// Issue 13 item 5: a name nobody has costs the same password hash as a wrong
/// password (a verification against a decoy hash of the same cost), so the time of
/// the answer does not tell who exists. Measured loosely: medians, interleaved.
#[tokio::test]
async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
    let gw = identity_gateway(
        "{ account_failures = 0, client_failures = 0 }",
        "{ memory_kib = 8192, iterations = 1 }",
    );
    let http = client();
    assert_eq!(
        register_as(&http, &gw, "alice", "alice@example.com")
            .await
            .0,
        201
    );
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7 {
        for (name, times) in [
            ("alice", &mut known),
            (&*format!("nobody{i}"), &mut unknown),
        ] {
            let start = std::time::Instant::now();
            assert_eq!(login_as(&http, &gw, name, WRONG).await.status, 401);
            times.push(start.elapsed());
        }
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[3].as_secs_f64(), unknown[3].as_secs_f64());
    assert!(
        unknown > known * 0.5 && unknown < known * 2.0,
        "median: wrong password {known:.4} s, unknown user {unknown:.4} s"
    );
}

/// Issue 13 item 5: limits that cannot be meant stop the gateway with the reason.
#[test]
fn login_limits_that_cannot_be_meant_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("jwt.key");
    std::fs::write(&key, SECRET).unwrap();
    let (status, output) = TestGateway::new()
        .plugin("identity", "identity")
        .toml(&format!(
            r#"
[plugins.identity]
secrets = {{ jwt = {{ file = {:?} }} }}

[[routes]]
name = "auth"
prefix = "/auth"
[[routes.plugins]]
name = "identity"
config = {{ secret = "jwt", login_limits = {{ window_seconds = 0 }} }}
"#,
            key.display().to_string()
        ))
        .check();
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("login_limits.window_seconds must be between 1 and 604800"),
        "{output}"
    );
}

/// Issue 13 item 8: a username in another spelling (KELVIN SIGN, full-width letters)
/// is the same name: registering it again is a conflict, and logging in with it
/// reaches the account.
#[tokio::test]
async fn a_kelvin_sign_is_the_same_username() {
    let gw = identity_gateway("{}", CHEAP_ARGON2);
    let http = client();
    let (status, _, body) = register_as(&http, &gw, "kelvin", "kelvin@example.com").await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["user"]["id"].clone();
    for spelling in ["\u{212A}elvin", "ＫＥＬＶＩＮ"] {
        let (status, request_id, body) =
            register_as(&http, &gw, spelling, "someone-else@example.com").await;
        let envelope = assert_envelope(
            status,
            Some(&request_id),
            body.to_string().as_bytes(),
            409,
            "CONFLICT",
        );
        assert_eq!(envelope["error"], "username already taken", "{spelling}");
    }
    for spelling in ["\u{212A}ELVIN", "ＫＥＬＶＩＮ", "\u{212A}elvin@EXAMPLE.com"] {
        let answer = login_as(&http, &gw, spelling, RIGHT).await;
        assert_eq!(answer.status, 200, "{spelling}: {}", answer.body);
        assert_eq!(answer.body["data"]["user"]["id"], id);
        assert_eq!(answer.body["data"]["user"]["username"], "kelvin");
    }
    // Invisible and control characters are refused by name.
    let (status, request_id, body) =
        register_as(&http, &gw, "kel\u{200B}vin", "zw@example.com").await;
    let envelope = assert_envelope(
        status,
        Some(&request_id),
        body.to_string().as_bytes(),
        400,
        "VALIDATION_ERROR",
    );
    assert!(
        envelope["data"]["fields"]["username"]
            .as_str()
            .is_some_and(|m| m.contains("U+200B")),
        "{envelope}"
    );
}
