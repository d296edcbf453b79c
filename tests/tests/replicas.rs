//! Two real gateway processes on one real Redis (`[state] backend = "redis"`): a rate
//! limit of N holds across both, an API key created through one works on the other,
//! a user registered through one logs in through the other and a token revoked
//! through one is refused by the other; a service instance registered through one
//! receives traffic through the other;
//! and a Redis stopped under a bounded load: requests get their documented answers
//! within the store's timeout, `/health` says the state store is down, and once Redis
//! is back the gateway serves normally without a restart.

use std::time::{Duration, Instant};

use serde_json::json;
use wasmgate_e2e::{
    GatewayProcess, RedisServer, TestGateway, Upstream, admin_json, client, redis_state_toml,
    register_instance, registry_toml, shared_redis, wait_until, wait_until_ok,
};

/// A key prefix no other test uses.
fn fresh_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("e2e-{test}-{nanos}:")
}

/// A gateway on `redis_url` under `prefix`, with a rate-limited route (`limit`
/// requests per hour per client address, failing `on_store_error`) and API keys
/// (managed on the admin listener, required on `/keyed`).
fn replica(
    upstream: &Upstream,
    redis_url: &str,
    prefix: &str,
    limit: u32,
    on_store_error: &str,
) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("rate-limit", "rate-limit")
        .plugin("api-key-auth", "api-key-auth")
        .toml(&redis_state_toml(redis_url, prefix))
        .toml(&format!(
            r#"
[health]
interval_ms = 200

[[routes]]
name = "limited"
prefix = "/limited"
service = "echo"
[[routes.plugins]]
name = "rate-limit"
config = {{ limit = {{ requests = {limit}, per = "1h" }}, on_store_error = "{on_store_error}" }}

[[routes]]
name = "keyed"
prefix = "/keyed"
service = "echo"
[[routes.plugins]]
name = "api-key-auth"

[[routes]]
name = "api-keys"
listener = "admin"
prefix = "/admin/api-keys"
[[routes.plugins]]
name = "api-key-auth"
config = {{ manage = {{ base = "/admin/api-keys" }} }}
"#
        ))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_and_api_keys_hold_across_two_gateways_on_one_redis() {
    let (url, _server) = shared_redis();
    let upstream = Upstream::start();
    let prefix = fresh_prefix("replicas");
    let one = replica(&upstream, &url, &prefix, 10, "closed");
    let two = replica(&upstream, &url, &prefix, 10, "closed");
    let http = client();

    // 30 requests from one client address, alternating between the replicas: 10
    // pass in all, not 10 on each.
    let mut passed = 0;
    for i in 0..30 {
        let gateway = if i % 2 == 0 { &one } else { &two };
        let response = http.get(gateway.url("/limited/x")).send().await.unwrap();
        match response.status().as_u16() {
            200 => passed += 1,
            429 => {}
            other => panic!("request {i}: status {other}"),
        }
    }
    assert_eq!(passed, 10);
    assert_eq!(admin_json(&one, "/admin/state").await["backend"], "redis");

    // An API key created through one replica is accepted by the other.
    let created: serde_json::Value = http
        .post(one.admin_url("/admin/api-keys"))
        .json(&json!({"consumer": "billing", "role": "service"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["data"]["key"].as_str().expect("a key").to_string();
    let response = http
        .get(two.url("/keyed/invoices"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let refused = http.get(two.url("/keyed/invoices")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
}

/// `GET /health`'s state store status.
async fn state_status(gateway: &GatewayProcess) -> String {
    let health: serde_json::Value = client()
        .get(gateway.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["state"]["status"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_gets_the_documented_answers_and_the_gateway_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start();
    let prefix = fresh_prefix("outage");
    let gateway = replica(&upstream, &redis.url(), &prefix, 1_000_000, "closed");
    let http = client();
    let response = http.get(gateway.url("/limited/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Redis goes away under load: each request is answered (503 from the rate limit,
    // which fails closed) within the store's timeout, none hangs.
    redis.stop();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), gateway.url("/limited/x"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let started = Instant::now();
                    let response = http.get(&url).send().await.expect("answered");
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "a request took {:?}",
                        started.elapsed()
                    );
                    statuses.push(response.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    for task in load {
        let statuses = task.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 503),
            "with Redis down: {statuses:?}; log:\n{}",
            gateway.log()
        );
    }
    let refused = http.get(gateway.url("/limited/x")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    let envelope: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(envelope["code"], "SERVICE_UNAVAILABLE", "{envelope}");
    wait_until(
        "/health to say the store is down",
        Duration::from_secs(10),
        || async { (state_status(&gateway).await == "down").then_some(()) },
    )
    .await;

    // Redis comes back (empty): the gateway reconnects by itself.
    redis.resume();
    wait_until_ok(
        "a 200 after Redis came back",
        Duration::from_secs(15),
        || async {
            let response = http.get(gateway.url("/limited/x")).send().await.unwrap();
            if response.status() == 200 {
                return Ok(());
            }
            Err(format!(
                "still {}; log:\n{}",
                response.status(),
                gateway.log()
            ))
        },
    )
    .await;
    wait_until(
        "/health to say the store is up",
        Duration::from_secs(10),
        || async { (state_status(&gateway).await == "healthy").then_some(()) },
    )
    .await;
    assert!(gateway.log().contains("state store down"));
}

const SECRET: &str = "the replicas e2e signing secret, at least 32 bytes";

/// A gateway on `redis_url` under `prefix` with the identity stack: `identity` issues
/// tokens and writes revocations, `jwt-auth` checks both, through the `auth`
/// namespace they share.
fn identity_replica(upstream: &Upstream, redis_url: &str, prefix: &str) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .plugin("identity", "identity")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(&redis_state_toml(redis_url, prefix))
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
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], audience = "api" }
"#,
        )
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registered_through_one_gateway_logs_in_and_is_revoked_through_the_other() {
    let (url, _server) = shared_redis();
    let upstream = Upstream::start();
    let prefix = fresh_prefix("identity");
    let one = identity_replica(&upstream, &url, &prefix);
    let two = identity_replica(&upstream, &url, &prefix);
    let http = client();

    let registered = http
        .post(one.url("/auth/register"))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "correct-horse-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    // The same name is taken on the other replica too.
    let again = http
        .post(two.url("/auth/register"))
        .json(&json!({"username": "alice", "email": "other@example.com", "password": "correct-horse-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    let login: serde_json::Value = http
        .post(two.url("/auth/login"))
        .json(&json!({"username": "alice", "password": "correct-horse-7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["token"]
        .as_str()
        .expect("a token")
        .to_string();
    for gateway in [&one, &two] {
        let response = http
            .get(gateway.url("/api/items"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // Logged out (the token revoked) through one: refused by the other.
    let logout = http
        .post(one.url("/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let refused = http
        .get(two.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// A gateway on `redis_url` under `prefix` with the service registry
/// (`/discovery`, `/services`, `/api/{service}/…`), loopback instances allowed.
fn registry_replica(redis_url: &str, prefix: &str) -> GatewayProcess {
    TestGateway::new()
        .plugin("registry", "registry")
        .toml(&redis_state_toml(redis_url, prefix))
        .toml(&registry_toml("\"http://127.0.0.1:*\"", 30, 200))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_registered_through_one_gateway_receives_traffic_from_the_other() {
    let (url, _server) = shared_redis();
    let prefix = fresh_prefix("registry");
    let one = registry_replica(&url, &prefix);
    let two = registry_replica(&url, &prefix);
    let (a, b) = (Upstream::start(), Upstream::start());
    let http = client();

    register_instance(&one, "orders", "orders-a", a.address).await;
    register_instance(&one, "orders", "orders-b", b.address).await;
    // The other replica knows both at once (its plugin instances have read nothing
    // yet) and takes turns with the same counter: 3 requests there, 3 through one.
    for gateway in [&two, &one, &two, &one, &two, &one] {
        let response = http
            .get(gateway.url("/api/orders/o/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!((a.hits(), b.hits()), (3, 3));
    assert_eq!(a.paths()[0], "/o/1");

    // Unregistered through the other: neither replica sends it traffic once their
    // lists are read again.
    let response = http
        .delete(two.url("/discovery/unregister/orders-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_then = a.hits();
    for gateway in [&one, &two, &one, &two] {
        let response = http
            .get(gateway.url("/api/orders/o/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(a.hits(), a_then);
    let listed: serde_json::Value = http
        .get(one.url("/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"]["services"],
        json!([{"name": "orders", "instances": 1, "healthy": 1, "endpoints": [format!("http://{}", b.address)]}])
    );
}
