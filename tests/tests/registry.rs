//! The `registry` plugin behind a real gateway, with instances that are real upstream
//! processes: they register, heartbeat and expire (one is killed and falls silent);
//! traffic follows the registrations within one heartbeat TTL, round-robin over the
//! live instances; a registered address outside the plugin's allowlist is never
//! called.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use wasmgate_e2e::{
    Answer, GatewayProcess, TestGateway, Upstream, UpstreamProcess, client, register_instance,
    registry_toml, send,
};

/// Live for this long after a heartbeat.
const TTL: Duration = Duration::from_secs(2);

fn gateway(allowed: &[SocketAddr]) -> GatewayProcess {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("\"http://{a}\"")).collect();
    TestGateway::new()
        .plugin("registry", "registry")
        .toml(&registry_toml(&allowed.join(", "), TTL.as_secs(), 200))
        .start()
}

async fn get(gateway: &GatewayProcess, path: &str) -> Answer {
    send(Method::GET, &gateway.url(path), None).await
}

/// Which instance served `GET path` (the echo's `Host`, which the gateway sets to
/// the instance's address) with which path; `None` for an answer of the gateway's own
/// (503 with none live, 502 from a dead instance).
async fn served_by(gateway: &GatewayProcess, path: &str) -> Option<(String, String)> {
    let answer = get(gateway, path).await;
    match answer.status {
        200 => {
            let echo = answer.json();
            Some((
                echo["headers"]["host"][0].as_str().unwrap().to_string(),
                echo["path"].as_str().unwrap().to_string(),
            ))
        }
        502 | 503 => None,
        other => panic!("{other}: {}", String::from_utf8_lossy(&answer.body)),
    }
}

async fn post(gateway: &GatewayProcess, path: &str) -> (u16, Value) {
    let answer = send(Method::POST, &gateway.url(path), None).await;
    (answer.status, answer.json())
}

/// Sends `GET /api/users/x` until `done` holds for what served it, within `limit`.
async fn until(
    gateway: &GatewayProcess,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(Option<&str>) -> bool,
) {
    let started = Instant::now();
    loop {
        let served = served_by(gateway, "/api/users/x").await;
        if done(served.as_ref().map(|(host, _)| host.as_str())) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}; log:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends requests until 10 in a row were served by `instance` (`None`: answered by the
/// gateway itself, none being live), within `limit`.
async fn until_steady(gateway: &GatewayProcess, limit: Duration, instance: Option<&str>) {
    let mut steady = 0;
    until(gateway, limit, &format!("only {instance:?} serves"), |by| {
        steady = if by == instance { steady + 1 } else { 0 };
        steady >= 10
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_heartbeat_and_expire_and_traffic_follows_them() {
    let (a, mut b) = (UpstreamProcess::start(), UpstreamProcess::start());
    let (a_host, b_host) = (a.address.to_string(), b.address.to_string());
    let gateway = gateway(&[a.address, b.address]);

    // Nothing registered: the documented 503.
    get(&gateway, "/api/users/profile/7")
        .await
        .assert_envelope(503, "SERVICE_UNAVAILABLE");

    // A registration takes traffic within one heartbeat TTL, with the rest of the
    // path.
    register_instance(&gateway, "users", "users-a", a.address).await;
    until(&gateway, TTL, "a serves", |by| by == Some(a_host.as_str())).await;
    let served = served_by(&gateway, "/api/users/profile/7").await;
    assert_eq!(served, Some((a_host.clone(), "/profile/7".to_string())));

    register_instance(&gateway, "users", "users-b", b.address).await;
    until(&gateway, TTL, "b serves", |by| by == Some(b_host.as_str())).await;
    // Every plugin instance has read the list with both by now: they take turns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut turns = Vec::new();
    for _ in 0..10 {
        turns.push(served_by(&gateway, "/api/users/x").await.expect("served").0);
    }
    for pair in turns.windows(2) {
        assert_ne!(pair[0], pair[1], "strict turns: {turns:?}");
    }

    // a keeps sending heartbeats; b dies and so falls silent: b gets no more traffic
    // once its TTL (and the list's refresh) has passed.
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
    b.kill();
    until_steady(&gateway, 3 * TTL, Some(&a_host)).await;
    for _ in 0..10 {
        assert_eq!(
            served_by(&gateway, "/api/users/x").await.map(|s| s.0),
            Some(a_host.clone()),
            "only the live instance serves"
        );
    }

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

    // a unregisters: 503 once the list is read again.
    heartbeats.abort();
    let response = client()
        .delete(gateway.url("/discovery/unregister/users-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    until_steady(&gateway, TTL, None).await;
    get(&gateway, "/api/users/x")
        .await
        .assert_envelope(503, "SERVICE_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_address_outside_the_allowlist_is_never_called() {
    let (allowed, outside) = (Upstream::start(), Upstream::start());
    let gateway = gateway(&[allowed.address]);
    register_instance(&gateway, "evil", "evil-1", outside.address).await;
    register_instance(&gateway, "evil", "evil-2", "127.0.0.3:9".parse().unwrap()).await;
    register_instance(&gateway, "good", "good-1", allowed.address).await;
    for _ in 0..4 {
        get(&gateway, "/api/evil/x")
            .await
            .assert_envelope(500, "PLUGIN_ERROR");
    }
    assert_eq!(outside.hits(), 0, "an address outside the grant was called");
    assert_eq!(get(&gateway, "/api/good/x").await.status, 200);
    assert_eq!(allowed.hits(), 1);
}
