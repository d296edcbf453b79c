//! `rate-limit` with the real binary: tiers chosen by a real JWT and a real API key,
//! exactly the limit passing under concurrency, a window that slides so a request
//! passes again at the `X-RateLimit-Reset` it was told, the 429 envelope and metric,
//! and expired counters reclaimed from the state store by the sweep.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use wasmgate_e2e::{
    TestGateway, Upstream, admin_json, assert_envelope, client, metric, wait_until_ok,
};

const SECRET: &str = "an HMAC secret for the rate-limit tests, 48 bytes!";

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "role": "user", "aud": "api", "exp": unix_s() + 600});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn number(response: &reqwest::Response, name: &str) -> u64 {
    response.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn tiers_chosen_by_a_real_jwt_and_a_real_api_key_give_their_limits_and_headers() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("api-key-auth", "api-key-auth")
        .plugin("jwt-auth", "jwt-auth")
        .plugin("rate-limit", "rate-limit")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(
            r#"
[plugins.jwt-auth]
secrets = { jwt = { env = "E2E_JWT_SECRET" } }

[[routes]]
name = "api"
prefix = "/api"
service = "echo"
[[routes.plugins]]
name = "api-key-auth"
config = { optional = true }
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }], audience = "api", optional = true }
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = 2, per = "1h" }, tiers = { user = { requests = 3, per = "1h" }, api_key = { requests = 4, per = "1h" }, pro = { requests = 5, per = "1h" } } }

[[routes]]
name = "api-keys"
listener = "admin"
prefix = "/admin/api-keys"
[[routes.plugins]]
name = "api-key-auth"
config = { manage = { base = "/admin/api-keys" } }
"#,
        )
        .start();
    let http = client();
    let mut keys = Vec::new();
    for (consumer, tier) in [("svc-basic", None), ("svc-pro", Some("pro"))] {
        let mut body = json!({"consumer": consumer, "role": "service"});
        if let Some(tier) = tier {
            body["tier"] = json!(tier);
        }
        let created: serde_json::Value = http
            .post(gateway.admin_url("/admin/api-keys"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys.push(created["data"]["key"].as_str().unwrap().to_string());
    }
    let bearer = format!("Bearer {}", token("alice"));
    // (tier, the credential header if any, the tier's limit)
    let cases = [
        ("anonymous", None, 2),
        ("user", Some(("authorization", bearer.as_str())), 3),
        ("api_key", Some(("x-api-key", keys[0].as_str())), 4),
        ("pro", Some(("x-api-key", keys[1].as_str())), 5),
    ];
    let auth = |credential: Option<(&str, &str)>, request: reqwest::RequestBuilder| match credential
    {
        Some((name, value)) => request.header(name, value),
        None => request,
    };
    for (tier, credential, limit) in cases {
        let started = unix_s();
        for remaining in (0..limit).rev() {
            let response = auth(credential, http.get(gateway.url("/api/items")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{tier}");
            assert_eq!(number(&response, "x-ratelimit-limit"), limit, "{tier}");
            assert_eq!(
                number(&response, "x-ratelimit-remaining"),
                remaining,
                "{tier}"
            );
            let reset = number(&response, "x-ratelimit-reset");
            assert!(
                reset > started && reset <= started + 3601,
                "{tier}: {reset}"
            );
        }
        let refused = auth(credential, http.get(gateway.url("/api/items")))
            .header("x-request-id", format!("rl-{tier}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429, "{tier}");
        assert_eq!(number(&refused, "x-ratelimit-remaining"), 0);
        let retry_after = number(&refused, "retry-after");
        // The sliding estimate may hold the next request into the next window.
        assert!((1..=7200).contains(&retry_after), "{tier}: {retry_after}");
        let id = refused.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id, format!("rl-{tier}"));
        assert_envelope(
            429,
            Some(&id),
            &refused.bytes().await.unwrap(),
            429,
            "RATE_LIMITED",
        );
    }
    assert_eq!(
        upstream.hits(),
        2 + 3 + 4 + 5,
        "no refused request went upstream"
    );
    for (tier, _, _) in cases {
        let refused = metric(
            &gateway.admin_url("/metrics"),
            "rate_limit_exceeded_total",
            &[
                &format!("tier=\"{tier}\""),
                "route=\"api\"",
                "plugin=\"rate-limit\"",
            ],
        )
        .await;
        assert_eq!(refused, Some(1.0), "{tier}");
    }
}

/// Sends 200 requests over 50 connections at once to a route limited to 50 by
/// `limit` (a TOML inline table of the plugin's config) and checks that exactly 50
/// pass and reach the upstream.
async fn exactly_50_of_200_pass(config: &str) {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("rate-limit", "rate-limit")
        .toml(&format!(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"
[[routes.plugins]]
name = "rate-limit"
config = {config}
"#
        ))
        .start();
    // 50 connections, 4 requests each, all at once.
    let url = Arc::new(gateway.url("/x"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut statuses = Vec::new();
                for _ in 0..4 {
                    statuses.push(
                        http.get(url.as_str())
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16(),
                    );
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((passed, refused), (50, 150), "{config}: {statuses:?}");
    assert_eq!(upstream.hits(), 50, "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_limit_of_50_exactly_50_of_200_concurrent_requests_pass() {
    exactly_50_of_200_pass(r#"{ limit = { requests = 50, per = "1h" }, key = ["route"] }"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_bucket_of_50_passes_exactly_50_of_200_concurrent_requests() {
    // Through the gateway's compare-and-swap: one token per hour after the burst.
    exactly_50_of_200_pass(
        r#"{ algorithm = "token_bucket", limit = { requests = 1, per = "1h", burst = 50 }, key = ["route"] }"#,
    )
    .await;
}

#[tokio::test]
async fn the_window_slides_and_a_request_passes_again_at_its_reset() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("rate-limit", "rate-limit")
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = 3, per = "2s" }, key = ["client"] }
"#,
        )
        .start();
    let http = client();
    // Start early in a window, so the three pass within it.
    let ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    while ms() % 2000 > 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(
            http.get(gateway.url("/")).send().await.unwrap().status(),
            200
        );
    }
    let refused = http.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let reset_ms = number(&refused, "x-ratelimit-reset") * 1000;
    assert!(reset_ms > ms(), "the reset is ahead");
    assert!(reset_ms <= ms() + 4000, "within two windows: {reset_ms}");
    // Not before (with a margin for the clocks' rounding)…
    if reset_ms > ms() + 400 {
        tokio::time::sleep(Duration::from_millis(reset_ms - ms() - 400)).await;
        assert_eq!(
            http.get(gateway.url("/")).send().await.unwrap().status(),
            429
        );
    }
    // …but at the reset.
    tokio::time::sleep(Duration::from_millis(reset_ms.saturating_sub(ms()))).await;
    let passed = http.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(passed.status(), 200, "at the reset it was told");
    assert_eq!(upstream.hits(), 4);
}

#[tokio::test]
async fn expired_counters_are_reclaimed_by_the_sweep_and_the_store_size_is_shown() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("rate-limit", "rate-limit")
        .toml(
            r#"
[state]
sweep_interval_ms = 0

[[routes]]
name = "api"
prefix = "/"
service = "echo"
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = 5, per = "1s" }, algorithm = "fixed_window", key = [{ header = "x-client" }] }
"#,
        )
        .start();
    let http = client();
    for i in 0..120 {
        let response = http
            .get(gateway.url("/"))
            .header("x-client", format!("client-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let swept: serde_json::Value = http
        .post(gateway.admin_url("/admin/state/sweep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = swept["namespaces"]["rate-limit"]["entries"]
        .as_u64()
        .unwrap();
    assert!(entries >= 120, "one counter per client: {swept}");
    assert!(swept["namespaces"]["rate-limit"]["bytes"].as_u64().unwrap() > 120 * 10);
    let state = admin_json(&gateway, "/admin/state").await;
    assert_eq!(state["backend"], "sled");
    assert_eq!(state["sweep_interval_ms"], 0);
    assert!(state["size_on_disk_bytes"].as_u64().unwrap() > 0, "{state}");
    assert_eq!(
        state["last_sweep"]["namespaces"]["rate-limit"]["entries"],
        entries
    );
    // A fixed window's counter lives to its window's end plus a second's grace.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let swept: serde_json::Value = http
        .post(gateway.admin_url("/admin/state/sweep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(swept["namespaces"]["rate-limit"]["entries"], 0, "{swept}");
    assert!(swept["removed"].as_u64().unwrap() >= 120, "{swept}");
    let metrics = gateway.admin_url("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "wasmgate_state_entries",
            &["namespace=\"rate-limit\""]
        )
        .await,
        Some(0.0)
    );
    assert!(
        metric(&metrics, "wasmgate_state_expired_removed_total", &[])
            .await
            .unwrap()
            >= 120.0
    );
}

#[tokio::test]
async fn the_background_sweep_runs_by_itself() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("rate-limit", "rate-limit")
        .toml(
            r#"
[state]
sweep_interval_ms = 200

[[routes]]
name = "api"
prefix = "/"
service = "echo"
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = 5, per = "500ms" }, algorithm = "fixed_window", key = [{ header = "x-client" }] }
"#,
        )
        .start();
    let http = client();
    for i in 0..20 {
        http.get(gateway.url("/"))
            .header("x-client", format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let metrics = gateway.admin_url("/metrics");
    wait_until_ok("the sweep", Duration::from_secs(10), || async {
        let removed = metric(&metrics, "wasmgate_state_expired_removed_total", &[])
            .await
            .unwrap_or(0.0);
        if removed >= 20.0 {
            return Ok(());
        }
        Err(format!("the sweep removed {removed}"))
    })
    .await;
    let state = admin_json(&gateway, "/admin/state").await;
    assert_eq!(
        state["last_sweep"]["namespaces"]["rate-limit"]["entries"], 0,
        "{state}"
    );
}
