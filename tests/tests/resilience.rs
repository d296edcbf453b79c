//! Upstream resilience with the real binary against real upstreams that the tests
//! kill, slow down and make fail: no failed idempotent request when an endpoint dies
//! under load, POST not retried by default, the retry budget, 503 at once for a dead
//! service, outlier ejection and return, the circuit breaker's three phases, and the
//! balancing policies (consistent hashing, weights, least request).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, UpstreamBehaviour, UpstreamProcess, admin_json,
    assert_envelope, client, metric, wait_for,
};

/// The `host:port` of the endpoint that answered (the echo upstream's `Host`).
async fn answered_by(response: reqwest::Response) -> String {
    let echo: serde_json::Value = response.json().await.expect("echo JSON");
    echo["headers"]["host"][0]
        .as_str()
        .expect("host header")
        .to_string()
}

/// The statuses of `count` POSTs of a small body to `url`, sorted.
async fn post_statuses(client: &reqwest::Client, url: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let response = client.post(url).body("{}").send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses.sort_unstable();
    statuses
}

/// `/health`'s entry for `service`.
async fn service_health(gateway: &GatewayProcess, service: &str) -> serde_json::Value {
    admin_json(gateway, "/health").await["services"][service].clone()
}

/// The `/health` entry of the endpoint of `service` at `address`.
async fn endpoint_health(
    gateway: &GatewayProcess,
    service: &str,
    address: std::net::SocketAddr,
) -> serde_json::Value {
    let url = format!("http://{address}");
    service_health(gateway, service).await["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["url"] == url)
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {url} in /health"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_killed_under_load_fails_no_idempotent_request() {
    let mut upstreams: Vec<UpstreamProcess> = (0..3).map(|_| UpstreamProcess::start()).collect();
    let endpoints: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"http://{}\"", u.address))
        .collect();
    let gateway = TestGateway::new()
        .toml(&format!(
            "[health]\ninterval_ms = 200\ntimeout_ms = 200\n\n\
             [services.api]\nendpoints = [{}]\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\n\
             [routes.retry]\nattempts = 3\non = [\"connect\", \"reset\"]\nbackoff_ms = 5\n",
            endpoints.join(", ")
        ))
        .start();
    let url = gateway.url("/load");
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let by_endpoint = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop, sent, failed) =
                (url.clone(), stop.clone(), sent.clone(), failed.clone());
            let by_endpoint = by_endpoint.clone();
            tokio::spawn(async move {
                let client = client();
                // Bounded: at most 3 s of requests, and 20,000 of them.
                while !stop.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) < 20_000 {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => {
                            let host = answered_by(response).await;
                            *by_endpoint.lock().unwrap().entry(host).or_default() += 1;
                        }
                        Ok(response) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed: {}", response.status());
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed: {error}");
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let killed = upstreams[0].address;
    let sent_before_kill = sent.load(Ordering::Relaxed);
    upstreams[0].kill();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(
        total > sent_before_kill + 50,
        "requests went on after the kill ({sent_before_kill} before, {total} in all)"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no failed request of {total} while one endpoint of three died"
    );
    let by_endpoint = by_endpoint.lock().unwrap().clone();
    assert_eq!(
        by_endpoint.len(),
        3,
        "all three served before the kill: {by_endpoint:?}"
    );
    // Ejected or probed down, and said so.
    let entry = endpoint_health(&gateway, "api", killed).await;
    assert!(
        entry["status"] == "down" || entry["ejected"] == true,
        "the killed endpoint in /health: {entry}"
    );
    // Log lines arrive through a pipe some time after what caused them.
    wait_for(
        "a log line saying the endpoint went",
        Duration::from_secs(10),
        || {
            let log = gateway.log();
            (log.contains("upstream down") || log.contains("upstream ejected")).then_some(())
        },
    );
}

#[tokio::test]
async fn post_is_not_retried_by_default_and_get_is() {
    let alive = Upstream::start();
    let doomed = Upstream::start();
    let doomed_address = doomed.address;
    let gateway = TestGateway::new()
        .toml(&format!(
            // Probes after the first round only once a minute: the endpoint's death
            // is learnt from requests alone.
            "[health]\ninterval_ms = 60000\n\n\
             [services.api]\nendpoints = [\"http://{}\", \"http://{}\"]\n\n\
             [[routes]]\nname = \"streamed\"\nprefix = \"/streamed\"\nservice = \"api\"\n\
             [routes.retry]\nmethods = [\"POST\"]\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\n",
            doomed.address, alive.address
        ))
        .start();
    wait_for("the first probes", Duration::from_secs(5), || {
        (gateway.log().matches("upstream up").count() == 2).then_some(())
    });
    doomed.stop();
    let client = client();
    // Round-robin: of four POSTs, two go to the dead endpoint and are not retried.
    let statuses = post_statuses(&client, &gateway.url("/orders"), 4).await;
    assert_eq!(statuses, [200, 200, 502, 502]);
    assert_eq!(alive.hits(), 2, "each POST went to one endpoint only");
    let metrics = gateway.admin_url("/metrics");
    assert_eq!(
        metric(&metrics, "upstream_retries_total", &[]).await,
        None,
        "no retry yet"
    );
    // A route that allows retrying POST still cannot when the body streamed to the
    // failed try: it is gone.
    let statuses = post_statuses(&client, &gateway.url("/streamed"), 2).await;
    assert_eq!(statuses, [200, 502]);
    assert_eq!(alive.hits(), 3);
    // GET: those that meet the dead endpoint are tried again on the live one.
    for _ in 0..4 {
        let response = client.get(gateway.url("/items")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(answered_by(response).await, alive.address.to_string());
    }
    assert_eq!(
        alive.hits(),
        7,
        "every GET answered by the live endpoint, once"
    );
    let retries = metric(
        &metrics,
        "upstream_retries_total",
        &["service=\"api\"", "reason=\"connect\""],
    )
    .await
    .expect("GETs were retried");
    assert!(retries >= 1.0);
    let dead = format!("endpoint=\"http://{doomed_address}\"");
    assert_eq!(
        metric(&metrics, "upstream_errors_total", &[&dead]).await,
        Some(3.0 + retries),
        "three POSTs, and each retried GET, failed to connect"
    );
}

#[tokio::test]
async fn retries_never_exceed_the_budget() {
    let upstream = Upstream::start_with(UpstreamBehaviour {
        status: Some(503),
        ..UpstreamBehaviour::default()
    });
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.api]\nendpoints = [\"http://{}\"]\n\
             [services.api.outlier]\nconsecutive_failures = 0\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\n\
             [routes.retry]\nattempts = 3\non = [\"5xx\"]\nbackoff_ms = 0\n\
             budget_percent = 10\nbudget_min = 0\n",
            upstream.address
        ))
        .start();
    let client = client();
    for _ in 0..40 {
        let response = client.get(gateway.url("/x")).send().await.unwrap();
        assert_eq!(
            response.status(),
            503,
            "the upstream's own 503 passes through"
        );
    }
    let retries = metric(
        &gateway.admin_url("/metrics"),
        "upstream_retries_total",
        &["reason=\"5xx\""],
    )
    .await
    .expect("some retries") as usize;
    // 10% of 40 requests; without the budget there would be 80.
    assert!((1..=4).contains(&retries), "{retries} retries");
    assert_eq!(upstream.hits(), 40 + retries);
}

#[tokio::test]
async fn a_dead_service_gets_503_at_once_instead_of_a_timeout_per_request() {
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway = TestGateway::new()
        .toml(&format!(
            "[health]\ninterval_ms = 200\ntimeout_ms = 300\n\n\
             [services.api]\nendpoints = [\"http://{}\"]\nhealth_path = \"/health\"\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\ntimeout_ms = 10000\n",
            silent.local_addr().unwrap()
        ))
        .start();
    wait_for("the probe to find it down", Duration::from_secs(10), || {
        gateway.log().contains("upstream down").then_some(())
    });
    assert_eq!(service_health(&gateway, "api").await["status"], "down");
    let client = client();
    for _ in 0..5 {
        let started = Instant::now();
        let response = client.get(gateway.url("/x")).send().await.unwrap();
        let took = started.elapsed();
        let status = response.status().as_u16();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.bytes().await.unwrap();
        let envelope = assert_envelope(status, Some(&id), &body, 503, "SERVICE_UNAVAILABLE");
        assert!(
            envelope["error"]
                .as_str()
                .unwrap()
                .contains("no endpoint is up"),
            "{envelope}"
        );
        assert!(
            took < Duration::from_secs(2),
            "answered in {took:?}, not after the timeout"
        );
    }
    drop(silent);
}

#[tokio::test]
async fn a_failing_endpoint_is_ejected_for_a_growing_back_off_and_returns() {
    let failing = Upstream::start_with(UpstreamBehaviour {
        status: Some(500),
        ..UpstreamBehaviour::default()
    });
    let good = Upstream::start();
    let gateway = TestGateway::new()
        .toml(&format!(
            "[health]\ninterval_ms = 60000\n\n\
             [services.api]\nendpoints = [\"http://{}\", \"http://{}\"]\n\
             [services.api.outlier]\nconsecutive_failures = 3\nbase_ejection_ms = 3000\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\n",
            failing.address, good.address
        ))
        .start();
    wait_for("the first probes", Duration::from_secs(5), || {
        (gateway.log().matches("upstream up").count() == 2).then_some(())
    });
    let client = client();
    let get = || async { client.get(gateway.url("/x")).send().await.unwrap().status() };
    // Alternating: the third 500 ejects it.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get().await.as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 500).count(), 3);
    assert_eq!(failing.hits(), 3);
    let entry = endpoint_health(&gateway, "api", failing.address).await;
    assert_eq!(entry["ejected"], true, "{entry}");
    assert!(
        entry["ejected_for_ms"].as_u64().unwrap() <= 3_000,
        "{entry}"
    );
    gateway.wait_for_log("upstream ejected");
    // Ejected: everything goes to the good one.
    for _ in 0..10 {
        assert_eq!(get().await, 200);
    }
    assert_eq!(failing.hits(), 3);
    // The back-off ends; it is tried again, fails three times more, and is ejected
    // for twice as long.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    for _ in 0..6 {
        get().await;
    }
    gateway.wait_for_log("upstream back from ejection");
    assert_eq!(failing.hits(), 6);
    let entry = endpoint_health(&gateway, "api", failing.address).await;
    assert_eq!(entry["ejected"], true, "{entry}");
    assert!(
        entry["ejected_for_ms"].as_u64().unwrap() > 3_000,
        "doubled: {entry}"
    );
    let metrics = gateway.admin_url("/metrics");
    let failing_url = format!("endpoint=\"http://{}\"", failing.address);
    assert_eq!(
        metric(&metrics, "upstream_ejections_total", &[&failing_url]).await,
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "upstream_ejected", &[&failing_url]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn the_breaker_opens_half_opens_and_closes() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.api]\nendpoints = [\"http://{}\"]\n\
             [services.api.outlier]\nconsecutive_failures = 0\n\
             [services.api.breaker]\nfailure_ratio = 0.5\nmin_requests = 4\n\
             window_ms = 10000\nopen_ms = 1500\nhalf_open_requests = 2\n\n\
             [[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"api\"\n",
            upstream.address
        ))
        .start();
    let client = client();
    let get = |query: &'static str| {
        let request = client.get(gateway.url(&format!("/x{query}")));
        async move { request.send().await.unwrap() }
    };
    let metrics = gateway.admin_url("/metrics");
    let circuit = || metric(&metrics, "upstream_circuit_state", &["service=\"api\""]);
    for _ in 0..4 {
        assert_eq!(get("?status=500").await.status(), 500);
    }
    // Open: refused at once, without reaching the upstream.
    let response = get("").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let envelope = assert_envelope(status, Some(&id), &body, 503, "SERVICE_UNAVAILABLE");
    assert!(
        envelope["error"]
            .as_str()
            .unwrap()
            .contains("circuit breaker is open")
    );
    assert_eq!(upstream.hits(), 4);
    assert_eq!(service_health(&gateway, "api").await["circuit"], "open");
    let admin = admin_json(&gateway, "/admin/services").await;
    assert_eq!(admin["services"]["api"]["circuit"], "open", "{admin}");
    assert_eq!(
        admin["services"]["api"]["endpoints"][0]["circuit"], "open",
        "{admin}"
    );
    assert_eq!(
        admin["services"]["api"]["breaker"]["min_requests"], 4,
        "{admin}"
    );
    assert_eq!(circuit().await, Some(2.0));
    gateway.wait_for_log("circuit breaker opened");
    // Half-open after open_ms: a failed probe opens it again.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        service_health(&gateway, "api").await["circuit"],
        "half_open"
    );
    assert_eq!(get("?status=500").await.status(), 500);
    assert_eq!(get("").await.status(), 503);
    assert_eq!(upstream.hits(), 5);
    // Half-open again: two good probes close it.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(get("").await.status(), 200);
    assert_eq!(circuit().await, Some(1.0), "half-open while probing");
    assert_eq!(get("").await.status(), 200);
    assert_eq!(service_health(&gateway, "api").await["circuit"], "closed");
    assert_eq!(circuit().await, Some(0.0));
    for _ in 0..5 {
        assert_eq!(get("").await.status(), 200);
    }
    assert_eq!(upstream.hits(), 12);
}

#[tokio::test]
async fn balancing_policies_hash_weigh_and_count() {
    let upstreams: Vec<Upstream> = (0..3).map(|_| Upstream::start()).collect();
    let list = |weights: [u32; 3]| {
        upstreams
            .iter()
            .zip(weights)
            .map(|(u, w)| format!("{{ url = \"http://{}\", weight = {w} }}", u.address))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let gateway = TestGateway::new()
        .toml(&format!(
            "[services.sticky]\nendpoints = [{}]\nbalance = \"consistent_hash\"\nhash_on = \"header:X-User\"\n\n\
             [services.weighted]\nendpoints = [{}]\nbalance = \"weighted\"\n\n\
             [services.least]\nendpoints = [{}]\nbalance = \"least_request\"\n\n\
             [[routes]]\nname = \"sticky\"\nprefix = \"/sticky\"\nservice = \"sticky\"\n\n\
             [[routes]]\nname = \"weighted\"\nprefix = \"/weighted\"\nservice = \"weighted\"\n\n\
             [[routes]]\nname = \"least\"\nprefix = \"/least\"\nservice = \"least\"\n",
            list([1, 1, 1]),
            list([3, 1, 1]),
            list([1, 1, 1]),
        ))
        .start();
    let client = client();
    // Consistent hashing: each user stays on one endpoint; users spread out.
    let mut homes: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..4 {
        for user in 0..12 {
            let response = client
                .get(gateway.url("/sticky"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            let host = answered_by(response).await;
            let home = homes.entry(format!("user-{user}")).or_insert(host.clone());
            assert_eq!(*home, host, "user-{user} moved in round {round}");
        }
    }
    let used: std::collections::BTreeSet<&String> = homes.values().collect();
    assert!(used.len() >= 2, "12 users on one endpoint: {homes:?}");
    // Weights 3:1:1, in turn: exactly 30, 10 and 10 of 50.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..50 {
        let response = client.get(gateway.url("/weighted")).send().await.unwrap();
        *counts.entry(answered_by(response).await).or_default() += 1;
    }
    let mut shares: Vec<usize> = upstreams
        .iter()
        .map(|u| counts.get(&u.address.to_string()).copied().unwrap_or(0))
        .collect();
    assert_eq!(shares, [30, 10, 10]);
    // Least request: with one slow request in flight on some endpoint, the quick
    // ones go elsewhere.
    let slow = tokio::spawn({
        let request = client.get(gateway.url("/least?delay_ms=1500"));
        async move { answered_by(request.send().await.unwrap()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy: Vec<usize> = upstreams.iter().map(Upstream::hits).collect();
    let mut quick = Vec::new();
    for _ in 0..20 {
        let response = client.get(gateway.url("/least")).send().await.unwrap();
        quick.push(answered_by(response).await);
    }
    let slow_host = slow.await.unwrap();
    assert!(
        !quick.contains(&slow_host),
        "a quick request went to the busy endpoint {slow_host}: {quick:?} (hits before: {busy:?})"
    );
    shares = upstreams
        .iter()
        .map(|u| {
            quick
                .iter()
                .filter(|h| **h == u.address.to_string())
                .count()
        })
        .collect();
    assert_eq!(shares.iter().sum::<usize>(), 20);
}

#[test]
fn bad_resilience_settings_are_config_errors_with_their_line() {
    let cases = [
        (
            "[services.a]\nendpoints = [{ url = \"http://127.0.0.1:1\", weight = 0 }]\n",
            "weight must be 1 to 1000",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\nbalance = \"consistent_hash\"\nhash_on = \"ip\"\n",
            "expected \"client\", \"header:NAME\" or \"cookie:NAME\"",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\nhash_on = \"client\"\n",
            "hash_on needs balance = \"consistent_hash\"",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\nbalance = \"random\"\n",
            "unknown variant `random`",
        ),
        (
            "[services.a]\nendpoints = [{ url = \"http://127.0.0.1:1\", wieght = 2 }]\n",
            "an endpoint: \"http://host:port\" or { url = \"http://host:port\", weight = N }",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\n[services.a.breaker]\nfailure_ratio = 1.5\n",
            "failure_ratio must be above 0 and at most 1",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"a\"\n[routes.retry]\non = [\"connect\", \"4xx\"]\n",
            "on: \"4xx\" is not one of",
        ),
        (
            "[services.a]\nendpoints = [\"http://127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"a\"\ntimeout_ms = 1000\n[routes.retry]\nper_try_timeout_ms = 2000\n",
            "per_try_timeout_ms must not exceed the route's timeout_ms (1000)",
        ),
    ];
    for (toml, message) in cases {
        let (status, output) = TestGateway::new().toml(toml).check();
        assert!(!status.success(), "accepted:\n{toml}");
        assert!(output.contains(message), "{message:?} not in: {output}");
        assert!(
            output.contains("wasmgate.toml:"),
            "no file:line in: {output}"
        );
    }
}
