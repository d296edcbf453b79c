//! Observability with the real binary: `/metrics` after a known mix of requests
//! (parsed by a Prometheus text-format parser), `/health` following an upstream that
//! stops and comes back, JSON logs in a size-rotated file carrying the client's
//! request id, and `traceparent` reaching the upstream.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, UpstreamBehaviour, admin_json, client, send_with,
};

/// Parses `/metrics` with `prometheus-parse`.
async fn scrape(url: &str) -> prometheus_parse::Scrape {
    let response = client().get(url).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.contains("text"), "{content_type}");
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the metrics parse")
}

/// The samples `name{labels}` (labels not given may be anything).
fn samples<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one sample `name{labels}`: exactly one sample must match, so a
/// missing series fails the test instead of reading as 0.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching = samples(scrape, name, labels);
    assert!(
        matching.len() == 1,
        "{name}{labels:?} matches {} samples, not one",
        matching.len()
    );
    match matching.first().map(|s| &s.value) {
        None => unreachable!("one sample matched"),
        Some(
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v),
        ) => *v,
        Some(other) => panic!("{name} is not a single number: {other:?}"),
    }
}

async fn send(gateway: &GatewayProcess, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = client().request(method.parse().unwrap(), gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

#[tokio::test]
async fn metrics_count_a_known_mix_of_requests_exactly() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("metered", "metered")
        .plugin("deny", "deny")
        .plugin("panic", "panic")
        .toml(
            r#"
[[routes]]
name = "echo"
prefix = "/echo"
service = "echo"
[[routes.plugins]]
name = "metered"

[[routes]]
name = "denied"
path = "/denied"
service = "echo"
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/denied" }], status = 403 }

[[routes]]
name = "fragile"
path = "/fragile"
service = "echo"
[[routes.plugins]]
name = "panic"
"#,
        )
        .start();

    for _ in 0..3 {
        assert_eq!(send(&gateway, "GET", "/echo/a", &[]).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(&gateway, "POST", "/echo/b", &[]).await, 200);
    }
    // A method outside the standard set is labelled OTHER (no label per client whim).
    assert_eq!(send(&gateway, "PURGE", "/echo/c", &[]).await, 200);
    assert_eq!(send(&gateway, "GET", "/denied", &[]).await, 403);
    assert_eq!(send(&gateway, "GET", "/nowhere", &[]).await, 404);
    assert_eq!(send(&gateway, "DELETE", "/nowhere", &[]).await, 404);
    assert_eq!(
        send(&gateway, "GET", "/fragile", &[("x-panic", "1")]).await,
        500
    );
    assert_eq!(send(&gateway, "GET", "/fragile", &[]).await, 200);
    // A plugin using a reserved metric name is refused, and told why.
    let echo: Value = client()
        .get(gateway.url("/echo/bad"))
        .header("x-bad-metric", "1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refusal = echo["headers"]["x-metric-error"][0]
        .as_str()
        .unwrap_or_default();
    assert!(refusal.contains("http_"), "{echo}");

    // Scraped twice: were scrapes counted, the second would see the first.
    let _ = scrape(&gateway.url("/metrics")).await;
    let m = scrape(&gateway.url("/metrics")).await;
    let requests = |route, method, status| {
        value(
            &m,
            "http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("echo", "GET", "200"), 4.0);
    assert_eq!(requests("echo", "POST", "200"), 2.0);
    assert_eq!(requests("echo", "OTHER", "200"), 1.0);
    assert!(samples(&m, "http_requests_total", &[("method", "PURGE")]).is_empty());
    assert_eq!(requests("denied", "GET", "403"), 1.0);
    assert_eq!(requests("unmatched", "GET", "404"), 1.0);
    assert_eq!(requests("unmatched", "DELETE", "404"), 1.0);
    assert_eq!(requests("fragile", "GET", "500"), 1.0);
    assert_eq!(requests("fragile", "GET", "200"), 1.0);
    let total: f64 = m
        .samples
        .iter()
        .filter(|s| s.metric == "http_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 12.0, "scrapes of /metrics are not counted");
    assert_eq!(
        value(
            &m,
            "http_request_duration_seconds_count",
            &[("route", "echo"), ("method", "GET")]
        ),
        4.0
    );
    assert_eq!(value(&m, "http_requests_in_progress", &[]), 0.0);

    assert_eq!(
        value(
            &m,
            "plugin_errors_total",
            &[("plugin", "panic"), ("kind", "trap")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "plugin_call_duration_seconds_count",
            &[("plugin", "metered"), ("phase", "request")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &m,
            "guest_requests_total",
            &[("plugin", "metered"), ("route", "echo")]
        ),
        7.0
    );
    assert_eq!(
        value(&m, "guest_value_seconds_count", &[("plugin", "metered")]),
        7.0
    );
    let endpoint = format!("http://{}", upstream.address);
    assert_eq!(
        value(
            &m,
            "upstream_request_duration_seconds_count",
            &[("service", "echo"), ("endpoint", &endpoint)]
        ),
        // 7 on /echo and the good /fragile; deny and the panic answered themselves.
        8.0
    );
    assert_eq!(value(&m, "wasmgate_config_generation", &[]), 1.0);

    // The admin listener serves the same metrics.
    let admin = scrape(&gateway.admin_url("/metrics")).await;
    assert_eq!(
        value(
            &admin,
            "http_requests_total",
            &[("route", "denied"), ("method", "GET"), ("status", "403")]
        ),
        1.0
    );
}

#[tokio::test]
async fn health_turns_degraded_when_an_upstream_stops_and_healthy_when_it_returns() {
    let steady = Upstream::start();
    let flaky = Upstream::start();
    let flaky_address = flaky.address;
    let gateway = TestGateway::new()
        .toml(&format!(
            "[health]\ninterval_ms = 150\ntimeout_ms = 500\n\n\
             [services.steady]\nendpoints = [\"http://{}\"]\nhealth_path = \"/health\"\n\n\
             [services.flaky]\nendpoints = [\"http://{flaky_address}\"]\n",
            steady.address
        ))
        .start();
    let http = client();
    let health = || async {
        let response = http.get(gateway.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let wait_for = |want: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = health().await;
            if body["status"] == want
                && body["services"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|s| s["status"] != "unknown")
            {
                return body;
            }
            assert!(Instant::now() < deadline, "never {want}: {body:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let body = wait_for("healthy").await;
    assert_eq!(body["services"]["steady"]["status"], "healthy");
    assert_eq!(body["services"]["flaky"]["status"], "healthy");
    assert!(
        body["services"]["steady"]["response_time_ms"].is_number(),
        "{body}"
    );
    assert!(
        body["services"]["steady"]["last_check"].is_string(),
        "{body}"
    );
    assert_eq!(body["generation"], 1);
    assert!(body["version"].is_string() && body["uptime_seconds"].is_number());
    let live = http.get(gateway.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = http.get(gateway.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    flaky.stop();
    let body = wait_for("degraded").await;
    assert_eq!(body["services"]["flaky"]["status"], "down");
    assert_eq!(body["services"]["steady"]["status"], "healthy");
    let m = scrape(&gateway.url("/metrics")).await;
    assert_eq!(
        value(&m, "service_health_status", &[("service", "flaky")]),
        0.0
    );
    assert_eq!(
        value(&m, "service_health_status", &[("service", "steady")]),
        1.0
    );
    gateway.wait_for_log("upstream down");

    let _back = Upstream::start_at(flaky_address, UpstreamBehaviour::default());
    let body = wait_for("healthy").await;
    assert_eq!(body["services"]["flaky"]["status"], "healthy");
    gateway.wait_for_log("upstream up");
    let m = scrape(&gateway.url("/metrics")).await;
    assert_eq!(
        value(&m, "service_health_status", &[("service", "flaky")]),
        1.0
    );
}

#[tokio::test]
async fn json_logs_rotate_at_the_size_and_carry_request_and_trace_ids() {
    let upstream = Upstream::start();
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("gateway.log");
    let mut gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("counter", "counter")
        .env("LOG_FORMAT", "json")
        .env("LOG_TO_FILE", "true")
        .env("LOG_FILE_PATH", file.to_str().unwrap())
        .env("LOG_FILE_MAX_BYTES", "4096")
        .env("LOG_FILE_BACKUP_COUNT", "2")
        .toml(
            "[[routes]]\nname = \"counted\"\nprefix = \"/c\"\nservice = \"echo\"\n[[routes.plugins]]\nname = \"counter\"\n",
        )
        .start();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let http = client();
    let response = http
        .get(gateway.url("/c/first"))
        .header("x-request-id", "client-id-42")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-42");
    let echo: Value = response.json().await.unwrap();
    // The upstream sees the same trace, with the gateway's span as parent.
    let sent = echo["headers"]["traceparent"][0].as_str().unwrap();
    assert!(sent.starts_with(&format!("00-{trace_id}-")), "{sent}");
    assert!(
        !sent.contains("00f067aa0ba902b7"),
        "the gateway's own span: {sent}"
    );
    assert!(sent.ends_with("-01"));
    // Without one, a new trace starts.
    let echo: Value = http
        .get(gateway.url("/c/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = echo["headers"]["traceparent"][0].as_str().unwrap();
    assert_eq!(fresh.len(), 55, "{fresh}");
    assert!(!fresh.contains(trace_id));

    // Enough requests (each logs a line through the counter plugin) to rotate a few
    // times.
    for i in 0..120 {
        let status = send(&gateway, "GET", &format!("/c/{i}"), &[]).await;
        assert_eq!(status, 200);
    }
    gateway.terminate();

    let backup = |n: usize| logs.path().join(format!("gateway.log.{n}"));
    assert!(file.is_file(), "the live file");
    assert!(
        backup(1).is_file() && backup(2).is_file(),
        "two backups kept"
    );
    assert!(!backup(3).exists(), "no third backup");
    let mut carried = false;
    for path in [file.clone(), backup(1), backup(2)] {
        let text = std::fs::read_to_string(&path).unwrap();
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(
            text.len() <= 4096 + longest,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        for line in text.lines() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", path.display()));
            if value["request_id"] == "client-id-42" && value["trace_id"] == trace_id {
                carried = true;
            }
        }
    }
    // The first request's line may have rotated out; it was logged to the console
    // (stderr) as JSON too.
    for value in gateway.json_log() {
        if value["request_id"] == "client-id-42" && value["trace_id"] == trace_id {
            carried = true;
        }
    }
    assert!(
        carried,
        "a JSON line carries the client's request id and trace id"
    );
}

#[tokio::test]
async fn access_log_writes_one_json_line_per_request() {
    let upstream = Upstream::start();
    let mut gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("access-log", "access_log")
        .plugin("deny", "deny")
        .env("LOG_FORMAT", "json")
        .toml(
            r#"[[routes]]
name = "logged"
prefix = "/logged"
service = "echo"
[[routes.plugins]]
name = "access-log"
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/logged/secret" }], status = 403 }
"#,
        )
        .start();
    let http = client();
    let response = http
        .post(gateway.url("/logged/items?x=1"))
        .header("x-request-id", "access-42")
        .body("0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    assert_eq!(
        send(
            &gateway,
            "GET",
            "/logged/secret",
            &[("x-request-id", "access-43")]
        )
        .await,
        403
    );
    // Each access line is one JSON log line of the plugin (message `access`), its
    // fields the line's fields; the gateway tags it with the request id, trace id,
    // route and time. The log phase runs after the response: wait for both lines.
    let lines = gateway.wait_for_json_lines("two access lines", 2, |l| {
        l["plugin"] == "access-log" && l["target"] == "plugin"
    });
    gateway.terminate();
    for line in &lines {
        assert_eq!(line["message"], "access", "{line}");
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // Log phases run off the client's path, so the two lines may come in either order.
    let line_of = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}: {lines:#?}"))
    };
    let proxied = line_of("access-42");
    assert_eq!(proxied["method"], "POST");
    assert_eq!(proxied["path"], "/logged/items");
    assert_eq!(proxied["route"], "logged");
    assert_eq!(proxied["status"], 200);
    assert_eq!(proxied["service"], "echo");
    assert_eq!(proxied["endpoint"], format!("http://{}", upstream.address));
    assert_eq!(proxied["bytes_in"], 10);
    assert!(proxied["bytes_out"].as_u64().unwrap() > 0, "{proxied}");
    assert_eq!(
        proxied["complete"], true,
        "the client got the whole body: {proxied}"
    );
    assert!(proxied["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(proxied["trace_id"].as_str().unwrap().len(), 32);
    assert!(proxied["timestamp"].as_str().unwrap().ends_with('Z'));
    // A request answered by a plugin never reached a service.
    let refused = line_of("access-43");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["service"], Value::Null);
}

#[tokio::test]
async fn request_only_plugins_are_not_called_in_the_response_phase() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .plugin("headers", "headers")
        .toml(
            r#"
# deny and headers without response edits say they are request-only.
[[routes]]
name = "quiet"
prefix = "/quiet"
service = "echo"
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/quiet/never" }] }
[[routes.plugins]]
name = "headers"
config = { request = { set = { "x-in" = "1" } } }

[[routes]]
name = "both"
prefix = "/both"
service = "echo"
[[routes.plugins]]
name = "headers"
config = { response = { set = { "x-out" = "1" } } }
"#,
        )
        .start();
    let http = client();
    for _ in 0..2 {
        let echo: Value = http
            .get(gateway.url("/quiet/a"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echo["headers"]["x-in"][0], "1", "{echo}");
    }
    for _ in 0..3 {
        let response = http.get(gateway.url("/both/a")).send().await.unwrap();
        assert_eq!(response.headers()["x-out"], "1");
    }
    let m = scrape(&gateway.url("/metrics")).await;
    let calls = |plugin, phase| {
        value(
            &m,
            "plugin_call_duration_seconds_count",
            &[("plugin", plugin), ("phase", phase)],
        )
    };
    assert_eq!(calls("deny", "request"), 2.0);
    assert!(
        samples(
            &m,
            "plugin_call_duration_seconds_count",
            &[("plugin", "deny"), ("phase", "response")]
        )
        .is_empty(),
        "deny has no response phase"
    );
    assert_eq!(calls("headers", "request"), 5.0);
    assert_eq!(
        calls("headers", "response"),
        3.0,
        "only the route with edits"
    );
    let routes = admin_json(&gateway, "/admin/routes").await;
    let quiet = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "quiet")
        .unwrap();
    assert_eq!(quiet["plugins"][0]["request_only"], true, "{quiet}");
}

/// The seeds' own variables: `${VAR}` and `${VAR:-default}` in the config (a quoted
/// value stays one string, a bare one is a number), `LOG_LEVEL=WARNING` as a level
/// (warnings logged, info lines not) and `JSON_LOGS=true` as JSON lines.
#[tokio::test]
async fn seed_environment_variables_configure_the_gateway_and_its_log() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("headers", "headers")
        .plugin("rate-limit", "rate-limit")
        .plugin("registry", "registry")
        .env("LOG_LEVEL", "WARNING")
        .env("JSON_LOGS", "true")
        .env("E2E_GREETING", r#"say "hi" \o/"#)
        .toml(
            r#"
[[routes]]
name = "limited"
prefix = "/limited"
service = "echo"
[[routes.plugins]]
name = "headers"
config = { response = { set = { "x-greeting" = "${E2E_GREETING}" } } }
[[routes.plugins]]
name = "rate-limit"
config = { limit = { requests = ${E2E_UNSET_LIMIT:-2}, per = "1h" } }

[[routes]]
name = "api"
prefix = "/api"
[[routes.plugins]]
name = "registry"
config = { proxy = "/api" }
"#,
        )
        .start();
    let http = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = http.get(gateway.url("/limited/x")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            assert_eq!(response.headers()["x-greeting"], r#"say "hi" \o/"#);
        }
    }
    assert_eq!(statuses, [200, 200, 429], "the default limit of 2 holds");

    // A warning (no instance to send /api/nobody to) is logged, as JSON; no info line
    // is (the start-up line is info).
    let response = http.get(gateway.url("/api/nobody/x")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let log = gateway.wait_for_log("no live instance");
    let lines = gateway.json_log();
    assert_eq!(lines.len(), log.lines().count(), "JSON_LOGS=true: {log}");
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["message"] == "no live instance"),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "LOG_LEVEL=WARNING let other levels through: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_describes_itself_and_every_path_it_names_answers() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"api\"\nprefix = \"/\"\nservice = \"echo\"\n")
        .start();
    let document = admin_json(&gateway, "/admin/openapi.json").await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"]["200"].is_object(),
                "{method} {path}: no 200"
            );
            let request = match method.as_str() {
                "get" => client().get(gateway.admin_url(path)),
                "post" => client().post(gateway.admin_url(path)),
                other => panic!("{other} {path}: an unexpected method"),
            };
            let status = request.send().await.unwrap().status();
            assert_eq!(status, 200, "{method} {path}");
            operations += 1;
        }
    }
    assert!(operations >= 12, "{operations} operations");

    // A page of another site (or port) in the operator's browser cannot reach it;
    // tools that send neither header can.
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let refused = client()
            .post(gateway.admin_url("/admin/reload"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{header}: {value}");
    }
    let own = format!("http://{}", gateway.admin.unwrap());
    let same = client()
        .post(gateway.admin_url("/admin/reload"))
        .header("origin", own)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200);

    // A page on another name rebound to 127.0.0.1 (DNS rebinding) is same-origin to
    // itself: its requests name its own host, and are refused, reads too.
    let port = gateway.admin.unwrap().port();
    for (host, want) in [
        (format!("rebound.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
    ] {
        let answer = send_with(
            Method::GET,
            &gateway.admin_url("/admin/snapshot"),
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(answer.status, want, "Host: {host}");
        if want == 403 {
            answer.assert_envelope(403, "FORBIDDEN");
        }
    }

    // Every admin endpoint the README's operator guide lists is in the document.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let listed: Vec<(String, String)> = readme
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("| `")?;
            let (method, rest) = rest.split_once(' ')?;
            let path = rest.split(['`', '?']).next()?;
            (["GET", "POST"].contains(&method) && path.starts_with("/admin/"))
                .then(|| (method.to_ascii_lowercase(), path.to_string()))
        })
        .collect();
    assert!(listed.len() >= 8, "README lists {listed:?}");
    for (method, path) in listed {
        assert!(
            paths
                .get(&path)
                .is_some_and(|item| item.get(&method).is_some()),
            "README's {method} {path} is not in /admin/openapi.json"
        );
    }
}

/// The `nth` (from 1) JSON log line whose `event` is `name`, waited for.
fn nth_event(gateway: &GatewayProcess, name: &str, nth: usize) -> Value {
    gateway
        .wait_for_json_lines(&format!("event {name:?}"), nth, |line| {
            line["event"] == name
        })
        .swap_remove(nth - 1)
}

fn event(gateway: &GatewayProcess, name: &str) -> Value {
    nth_event(gateway, name, 1)
}

/// Every named event the README lists comes with its `event` field (JSON logs), each
/// from the real thing: start, a plugin failing, an upstream going down and coming
/// back, a reload applied and one rejected, and the stop. The admin API counts the
/// plugin's calls and errors and names its contract version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_events_carry_their_event_field() {
    let flaky = Upstream::start();
    let address = flaky.address;
    let routes = format!(
        "[health]\ninterval_ms = 150\ntimeout_ms = 500\n\n\
         [services.flaky]\nendpoints = [\"http://{address}\"]\n\n\
         [[routes]]\nname = \"guarded\"\nprefix = \"/\"\nservice = \"flaky\"\n\
         [[routes.plugins]]\nname = \"panic\"\n"
    );
    let mut gateway = TestGateway::new()
        .plugin("panic", "panic")
        .env("LOG_FORMAT", "json")
        .toml(&routes)
        .start();
    let started = event(&gateway, "startup");
    assert_eq!(started["message"], "wasmgate started", "{started}");

    assert_eq!(send(&gateway, "GET", "/fine", &[]).await, 200);
    assert_eq!(send(&gateway, "GET", "/x", &[("x-panic", "1")]).await, 500);
    let failed = event(&gateway, "plugin_error");
    assert_eq!(failed["plugin"], "panic", "{failed}");
    let plugins = admin_json(&gateway, "/admin/plugins").await;
    let panic = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "panic")
        .expect("listed");
    assert_eq!(panic["wit_version"], "0.5.2", "{panic}");
    // Two requests, each a request-phase call; the first also a response-phase one.
    assert_eq!(panic["calls"], 3, "{panic}");
    assert_eq!(panic["errors"], 1, "{panic}");

    // The first probe finds it up; then it stops, and comes back.
    event(&gateway, "upstream_up");
    flaky.stop();
    let down = event(&gateway, "upstream_down");
    assert_eq!(down["service"], "flaky", "{down}");
    let _back = Upstream::start_at(address, UpstreamBehaviour::default());
    let up = nth_event(&gateway, "upstream_up", 2);
    assert_eq!(up["service"], "flaky", "{up}");

    gateway.rewrite_config(&format!(
        "{routes}\n[[routes]]\nname = \"more\"\npath = \"/more\"\nservice = \"flaky\"\n"
    ));
    let applied = event(&gateway, "reload_applied");
    assert_eq!(applied["generation"], 2, "{applied}");
    gateway.rewrite_config(&format!("{routes}\n[[routes]]\nname = \"broken\"\n"));
    let rejected = event(&gateway, "reload_rejected");
    assert!(
        rejected["message"]
            .as_str()
            .is_some_and(|m| m.contains("keeps serving")),
        "{rejected}"
    );

    assert!(gateway.terminate().is_some_and(|s| s.success()));
    let stopped = event(&gateway, "shutdown");
    assert_eq!(stopped["message"], "wasmgate stopped", "{stopped}");
}

/// `SIGTERM` with a request in flight: the admin listener answers `/health/ready`
/// with 503 while the request finishes, then the gateway exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_answers_503_while_the_gateway_drains() {
    let upstream = Upstream::start();
    let mut gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"all\"\nprefix = \"/\"\nservice = \"echo\"\n")
        .start();
    let ready = gateway.admin_url("/health/ready");
    let answer = client().get(&ready).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["status"], "ready");

    // Within the test gateway's 3 s grace period, with time to see the 503.
    let slow = tokio::spawn(client().get(gateway.url("/slow?delay_ms=2500")).send());
    wasmgate_e2e::wait_for("the slow request upstream", Duration::from_secs(5), || {
        (upstream.hits() == 1).then_some(())
    });
    gateway.signal("TERM");
    let draining =
        wasmgate_e2e::wait_until("503 while draining", Duration::from_secs(5), || async {
            let answer = client()
                .get(&ready)
                .send()
                .await
                .expect("the admin listener answers");
            match answer.status().as_u16() {
                503 => Some(answer.json::<Value>().await.unwrap()),
                status => {
                    assert_eq!(status, 200);
                    None
                }
            }
        })
        .await;
    assert_eq!(draining["status"], "draining", "{draining}");
    let finished = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(finished.status(), 200);
    let status = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// With `allow_remote = true` (the admin API behind a proxy that authenticates, which
/// may pass its own name on) any `Host` is served.
#[tokio::test]
async fn allow_remote_serves_the_admin_api_under_any_name() {
    let gateway = TestGateway::new()
        .toml("[admin]\nlisten = \"127.0.0.1:0\"\nallow_remote = true\n")
        .start();
    let answer = send_with(
        Method::GET,
        &gateway.admin_url("/admin/snapshot"),
        &[("host", "admin.internal.example")],
        None,
    )
    .await;
    assert_eq!(answer.status, 200);
}
