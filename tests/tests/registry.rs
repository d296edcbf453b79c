//! The `registry` plugin with real upstream processes behind a real gateway: instances
//! register, heartbeat and expire; traffic follows the registrations within one
//! heartbeat TTL, round-robin over the live instances; a registered address outside
//! the plugin's allowlist is never called.

use std::time::{Duration, Instant};

use serde_json::Value;
use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, assert_envelope, client, register_instance,
    registry_toml,
};

/// Live for this long after a heartbeat.
const TTL: Duration = Duration::from_secs(2);

fn gateway(upstreams: &[&Upstream]) -> GatewayProcess {
    let allowed: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"http://{}\"", u.address))
        .collect();
    TestGateway::new()
        .plugin("registry", "registry")
        .toml(&registry_toml(&allowed.join(", "), TTL.as_secs(), 200))
        .start()
}

/// Status, request id and body of `GET path`.
async fn get(gateway: &GatewayProcess, path: &str) -> (u16, String, Vec<u8>) {
    let response = client().get(gateway.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, id, response.bytes().await.unwrap().to_vec())
}

async fn post(gateway: &GatewayProcess, path: &str) -> (u16, Value) {
    let response = client().post(gateway.url(path)).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Sends `GET path` until `done` holds after a request (each answered 200 or 503),
/// within `limit`; how long it took.
async fn until(
    gateway: &GatewayProcess,
    path: &str,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, body) = get(gateway, path).await;
        assert!(
            status == 200 || status == 503,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        if done() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}; log:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `GET path` until 10 requests in a row have not reached `upstream`, within
/// `limit`.
async fn until_silent(
    gateway: &GatewayProcess,
    path: &str,
    limit: Duration,
    name: &str,
    upstream: &Upstream,
) {
    let mut last = upstream.hits();
    let mut quiet = 0;
    until(
        gateway,
        path,
        limit,
        &format!("{name} stops serving"),
        || {
            quiet = if upstream.hits() == last {
                quiet + 1
            } else {
                0
            };
            last = upstream.hits();
            quiet >= 10
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_heartbeat_and_expire_and_traffic_follows_them() {
    let (a, b) = (Upstream::start(), Upstream::start());
    let gateway = gateway(&[&a, &b]);

    // Nothing registered: the documented 503.
    let (status, id, body) = get(&gateway, "/api/users/profile/7").await;
    assert_envelope(status, Some(&id), &body, 503, "SERVICE_UNAVAILABLE");

    // A registration takes traffic within one heartbeat TTL, with the rest of the
    // path.
    register_instance(&gateway, "users", "users-a", a.address).await;
    until(
        &gateway,
        "/api/users/profile/7?x=1",
        TTL,
        "a serves",
        || a.hits() > 0,
    )
    .await;
    assert_eq!(a.paths().last().map(String::as_str), Some("/profile/7"));

    register_instance(&gateway, "users", "users-b", b.address).await;
    until(&gateway, "/api/users/x", TTL, "b serves", || b.hits() > 0).await;
    // Every plugin instance has read the list with both by now: they take turns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a0, b0) = (a.hits(), b.hits());
    for _ in 0..10 {
        assert_eq!(get(&gateway, "/api/users/x").await.0, 200);
    }
    assert_eq!((a.hits() - a0, b.hits() - b0), (5, 5), "strict turns");

    // a keeps sending heartbeats, b falls silent: b stops receiving traffic within
    // its TTL (and the list's refresh).
    let heartbeats = {
        let url = gateway.url("/discovery/heartbeat/users-a");
        tokio::spawn(async move {
            let http = client();
            loop {
                let response = http.post(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    until_silent(&gateway, "/api/users/x", 3 * TTL, "b", &b).await;
    let b_then = b.hits();
    for _ in 0..10 {
        assert_eq!(get(&gateway, "/api/users/x").await.0, 200);
    }
    assert_eq!(b.hits(), b_then, "a silent instance got traffic");

    // The API shows b unhealthy and a healthy; cleanup drops b only.
    let listed: Value = client()
        .get(gateway.url("/discovery/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status_of = |id: &str| {
        listed["data"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status_of("users-a"), Some("healthy".into()), "{listed}");
    assert_eq!(status_of("users-b"), Some("unhealthy".into()), "{listed}");
    let (status, cleaned) = post(&gateway, "/discovery/cleanup").await;
    assert_eq!(status, 200);
    assert_eq!(cleaned["data"]["removed"], serde_json::json!(["users-b"]));
    let (status, _) = post(&gateway, "/discovery/heartbeat/users-b").await;
    assert_eq!(status, 404, "b must register again");

    // a unregisters: 503 again once the list is read again.
    heartbeats.abort();
    let response = client()
        .delete(gateway.url("/discovery/unregister/users-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    until_silent(&gateway, "/api/users/x", TTL, "a", &a).await;
    let a_then = a.hits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, id, body) = get(&gateway, "/api/users/x").await;
    assert_envelope(status, Some(&id), &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(a.hits(), a_then);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_address_outside_the_allowlist_is_never_called() {
    let (allowed, outside) = (Upstream::start(), Upstream::start());
    let gateway = gateway(&[&allowed]);
    register_instance(&gateway, "evil", "evil-1", outside.address).await;
    register_instance(&gateway, "evil", "evil-2", "127.0.0.3:9".parse().unwrap()).await;
    register_instance(&gateway, "good", "good-1", allowed.address).await;
    for _ in 0..4 {
        let (status, id, body) = get(&gateway, "/api/evil/x").await;
        assert_envelope(status, Some(&id), &body, 500, "PLUGIN_ERROR");
    }
    assert_eq!(outside.hits(), 0, "an address outside the grant was called");
    let (status, _, _) = get(&gateway, "/api/good/x").await;
    assert_eq!(status, 200);
    assert_eq!(allowed.hits(), 1);
}
