//! Hostile plugins built for the tests: an endless loop, a panic, a 1 GiB allocation
//! and a malformed response. Each fails only its own request with a `PLUGIN_ERROR`
//! envelope within its deadline; the next normal request on the same route succeeds;
//! the gateway stays up with bounded memory; `on_error = "skip"` fails open.

use std::time::{Duration, Instant};

use reqwest::Method;
use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, client, send_with};

fn hostile_gateway(upstream: &Upstream) -> GatewayProcess {
    let mut gateway = TestGateway::new().service("echo", upstream.address).toml(
        r#"
[plugins.spin]
timeout_ms = 200

[plugins.oom]
memory_limit_mb = 32
"#,
    );
    for name in ["spin", "panic", "oom", "malformed"] {
        gateway = gateway.plugin(name, name).toml(&format!(
            "[[routes]]\nname = \"{name}\"\nprefix = \"/{name}\"\nservice = \"echo\"\n\n[[routes.plugins]]\nname = \"{name}\"\n\n\
             [[routes]]\nname = \"{name}-skip\"\nprefix = \"/skip-{name}\"\nservice = \"echo\"\non_error = \"skip\"\n\n[[routes.plugins]]\nname = \"{name}\"\n"
        ));
    }
    gateway.start()
}

/// The header that makes each hostile guest misbehave.
fn trigger(name: &str) -> (&'static str, &'static str) {
    match name {
        "spin" => ("x-spin", "1"),
        "panic" => ("x-panic", "1"),
        "oom" => ("x-oom", "1"),
        "malformed" => ("x-malformed", "status"),
        other => panic!("no hostile guest {other}"),
    }
}

async fn plugin_error(gateway: &GatewayProcess, path: &str, trigger: (&str, &str)) -> Duration {
    let started = Instant::now();
    let answer = send_with(Method::GET, &gateway.url(path), &[trigger], None).await;
    let elapsed = started.elapsed();
    let value = answer.assert_envelope(500, "PLUGIN_ERROR");
    let message = value["error"].as_str().unwrap();
    assert!(
        !message.contains("wasm"),
        "internals leak to the client: {message}"
    );
    elapsed
}

async fn passes(gateway: &GatewayProcess, path: &str) {
    let response = client().get(gateway.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} after a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_plugin_fails_only_its_request() {
    let upstream = Upstream::start();
    let mut gateway = hostile_gateway(&upstream);

    // Endless loop: stopped near its 200 ms deadline.
    let took = plugin_error(&gateway, "/spin", trigger("spin")).await;
    assert!(took < Duration::from_secs(2), "the loop ran for {took:?}");
    passes(&gateway, "/spin").await;

    plugin_error(&gateway, "/panic", trigger("panic")).await;
    passes(&gateway, "/panic").await;

    plugin_error(&gateway, "/oom", trigger("oom")).await;
    passes(&gateway, "/oom").await;

    plugin_error(&gateway, "/malformed", trigger("malformed")).await;
    passes(&gateway, "/malformed").await;

    assert_eq!(
        upstream.hits(),
        4,
        "only the normal requests reached the upstream"
    );

    // The log names the plugin, its hash and the kind of failure.
    gateway.wait_for_log("kind=\"invalid_output\"");
    let log = gateway.wait_for_log("panicked");
    for (plugin, kind) in [
        ("spin", "timeout"),
        ("panic", "trap"),
        ("oom", "out_of_memory"),
        ("malformed", "invalid_output"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("plugin failed") && l.contains(&format!("plugin=\"{plugin}\"")))
            .unwrap_or_else(|| panic!("no failure line for {plugin} in:\n{log}"));
        assert!(line.contains(&format!("kind=\"{kind}\"")), "{line}");
        assert!(line.contains("hash="), "{line}");
    }
    assert!(
        log.contains("panicked"),
        "the panic message is logged:\n{log}"
    );
    assert!(gateway.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_makes_a_failing_plugin_fail_open() {
    let upstream = Upstream::start();
    let gateway = hostile_gateway(&upstream);
    for name in ["spin", "panic", "oom", "malformed"] {
        let (header, value) = trigger(name);
        let response = client()
            .get(gateway.url(&format!("/skip-{name}")))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name} with on_error = skip");
    }
    // A skipped plugin leaves none of its edits: `panic` edits, then panics.
    let response = client()
        .get(gateway.url("/skip-panic"))
        .header("x-panic", "1")
        .header("x-keep", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-keep"],
        serde_json::json!(["kept"]),
        "{echo}"
    );
    assert!(
        echo["headers"].get("x-edited-before-panic").is_none(),
        "{echo}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_keep_memory_bounded_and_others_unaffected() {
    let upstream = Upstream::start();
    let gateway = hostile_gateway(&upstream);
    passes(&gateway, "/oom").await;
    let baseline = gateway.rss_kib();
    // Hostile calls interleaved with normal ones, some of them concurrent.
    for round in 0..10 {
        let mut calls = Vec::new();
        for name in ["oom", "panic", "malformed"] {
            let url = gateway.url(&format!("/{name}"));
            let (header, value) = trigger(name);
            calls.push(tokio::spawn(async move {
                client()
                    .get(url)
                    .header(header, value)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let normal = client().get(gateway.url("/panic")).send().await.unwrap();
        assert_eq!(
            normal.status(),
            200,
            "round {round}: a normal request failed"
        );
        for call in calls {
            assert_eq!(call.await.unwrap(), 500);
        }
    }
    let after = gateway.rss_kib();
    assert!(
        after < baseline + 150 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB over 30 hostile calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_output_rule_is_enforced_on_its_own() {
    let upstream = Upstream::start();
    let gateway = hostile_gateway(&upstream);
    let rules = [
        "status",
        "header-name",
        "header-value",
        "path",
        "method",
        "query",
    ];
    for rule in rules {
        plugin_error(&gateway, "/malformed", ("x-malformed", rule)).await;
    }
    passes(&gateway, "/malformed").await;
    assert_eq!(upstream.hits(), 1, "no broken request reached the upstream");
    // One failure line per rule, each an invalid output of `malformed`.
    wasmgate_e2e::wait_for("a failure line per rule", Duration::from_secs(10), || {
        let log = gateway.log();
        let failures = log
            .lines()
            .filter(|l| {
                l.contains("plugin failed")
                    && l.contains("plugin=\"malformed\"")
                    && l.contains("kind=\"invalid_output\"")
            })
            .count();
        (failures == rules.len()).then_some(())
    });
}

/// A plugin entry's `on_error` overrides its route's, both ways, and `skip` holds in
/// the response phase too: the upstream's answer goes out as if the plugin's
/// `on_response` had not run (none of its edits), where `fail` turns it into a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_on_error_overrides_its_routes_in_both_phases() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("panic", "panic")
        .toml(
            r#"
[[routes]]
name = "route-fails-plugin-skips"
prefix = "/plugin-skips"
service = "echo"
on_error = "fail"
[[routes.plugins]]
name = "panic"
on_error = "skip"

[[routes]]
name = "route-skips-plugin-fails"
prefix = "/plugin-fails"
service = "echo"
on_error = "skip"
[[routes.plugins]]
name = "panic"
on_error = "fail"
"#,
        )
        .start();
    for phase in ["1", "response"] {
        let response = client()
            .get(gateway.url("/plugin-skips"))
            .header("x-panic", phase)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "x-panic: {phase}, plugin skips");
        assert!(
            response.headers().get("x-edited-before-panic").is_none(),
            "x-panic: {phase}: a skipped response phase left its edit"
        );
        let echo: serde_json::Value = response.json().await.unwrap();
        assert_eq!(echo["path"], "/plugin-skips", "{echo}");

        plugin_error(&gateway, "/plugin-fails", ("x-panic", phase)).await;
    }
    // Both routes' upstream calls: the two skipped requests and the response-phase
    // failure (its upstream had answered before the plugin failed).
    assert_eq!(upstream.hits(), 3);
    let log = gateway.settled_log();
    assert!(
        log.contains("in the response phase"),
        "the response-phase panic is logged:\n{log}"
    );
}

/// The sandbox: a plugin sees no files, no environment variables and no sockets.
/// The `sandbox` guest tries each (list `/` and `.`, read `/etc/passwd`, write `/tmp`,
/// read the environment, connect to a listener of this test) and reports; the gateway
/// runs with variables set, and nothing reaches the listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reaches_no_files_environment_or_sockets() {
    let upstream = Upstream::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("sandbox", "sandbox")
        .env("WASMGATE_SANDBOX_PROBE", "visible to the gateway only")
        .toml(
            "[[routes]]\nname = \"escape\"\nprefix = \"/\"\nservice = \"echo\"\n\
             [[routes.plugins]]\nname = \"sandbox\"\n",
        )
        .start();
    let response = client()
        .get(gateway.url("/"))
        .header("x-escape", &target)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    eprintln!(
        "fs: {}; env: {}; net: {}",
        header("x-fs"),
        header("x-env"),
        header("x-net")
    );
    assert_eq!(header("x-fs"), "denied");
    assert_eq!(header("x-env"), "0");
    assert!(header("x-net").starts_with("denied"), "{}", header("x-net"));
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin's connection reached the listener"
    );
    assert_eq!(upstream.hits(), 0, "the plugin answered");
}
