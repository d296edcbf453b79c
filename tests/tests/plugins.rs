//! Plugins on real traffic: both actions, the order of the two phases over a chain,
//! short-circuits, bodies, and the host imports (kv, vars, log).

use std::time::Duration;

use reqwest::Method;
use wasmgate_e2e::{TestGateway, Upstream, assert_envelope, client, send, send_with};

#[tokio::test]
async fn headers_plugin_changes_requests_and_responses() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("headers", "headers")
        .toml(
            r#"
[[routes]]
name = "echo"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "headers"
config = { request = { set = { "x-hello" = "from-wasmgate" }, remove = ["x-secret"], rename = { "x-old" = "x-new" } }, response = { add = { "x-powered-by" = "wasmgate" }, remove = ["x-upstream"] } }
"#,
        )
        .start();
    let response = client()
        .get(gateway.url("/hello"))
        .header("x-secret", "s3cret")
        .header("x-old", "moved")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-powered-by"], "wasmgate");
    assert!(!response.headers().contains_key("x-upstream"));
    let echo: serde_json::Value = response.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(headers["x-hello"][0], "from-wasmgate");
    assert_eq!(headers["x-new"][0], "moved");
    assert!(headers.get("x-secret").is_none(), "{headers}");
    assert!(headers.get("x-old").is_none(), "{headers}");
}

#[tokio::test]
async fn deny_plugin_answers_with_its_envelope_and_the_upstream_sees_nothing() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("deny", "deny")
        .toml(
            r#"
[[routes]]
name = "echo"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/admin" }, { methods = ["DELETE"] }], status = 403, code = "FORBIDDEN", message = "blocked by policy" }
"#,
        )
        .start();
    let http = client();
    for (method, path) in [(Method::GET, "/admin/users"), (Method::DELETE, "/things/1")] {
        let value = send_with(
            method,
            &gateway.url(path),
            &[("x-request-id", "deny-1")],
            None,
        )
        .await
        .assert_envelope(403, "FORBIDDEN");
        assert_eq!(value["error"], "blocked by policy");
        assert_eq!(value["request_id"], "deny-1");
    }
    assert_eq!(upstream.hits(), 0);
    let response = http.get(gateway.url("/public")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.hits(), 1);
}

fn chain_gateway(upstream: &Upstream) -> wasmgate_e2e::GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("record", "record")
        .plugin("deny", "deny")
        .toml(
            r#"
[[routes]]
name = "chain"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "record"
config = { name = "a" }

[[routes.plugins]]
name = "record"
config = { name = "b" }

[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/stop" }], status = 451, code = "FORBIDDEN", message = "stopped" }

[[routes.plugins]]
name = "record"
config = { name = "c" }
"#,
        )
        .start()
}

#[tokio::test]
async fn phases_run_in_order_and_vars_pass_along_the_chain() {
    let upstream = Upstream::start();
    let gateway = chain_gateway(&upstream);
    let response = client().get(gateway.url("/go")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let chain_response: Vec<&str> = response
        .headers()
        .get_all("x-chain-response")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        chain_response,
        ["c", "b", "a"],
        "response phase runs in reverse"
    );
    let echo: serde_json::Value = response.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(
        headers["x-chain"],
        serde_json::json!(["a", "b", "c"]),
        "request phase in order"
    );
    // Each plugin saw the var set by the one before it.
    assert!(headers.get("x-prev-a").is_none(), "{headers}");
    assert_eq!(headers["x-prev-b"][0], "a");
    assert_eq!(headers["x-prev-c"][0], "b");
}

#[tokio::test]
async fn a_short_circuit_runs_the_response_phase_only_for_plugins_that_ran() {
    let upstream = Upstream::start();
    let gateway = chain_gateway(&upstream);
    let response = client().get(gateway.url("/stop")).send().await.unwrap();
    assert_eq!(response.status(), 451);
    let chain_response: Vec<&str> = response
        .headers()
        .get_all("x-chain-response")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        chain_response,
        ["b", "a"],
        "c never ran, so it does not see the response"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn bodies_are_buffered_only_for_plugins_that_ask_and_capped() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("bodyupper", "bodyupper")
        .toml(
            r#"
[[routes]]
name = "upper"
prefix = "/upper"
service = "echo"
max_body_bytes = 1024

[[routes.plugins]]
name = "bodyupper"
"#,
        )
        .start();
    let http = client();
    let response = http
        .post(gateway.url("/upper"))
        .body("hello, body")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response_len: usize = response.headers()["x-response-body-len"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(
        response_len,
        body.len(),
        "the plugin saw the whole response body"
    );
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo["body"], "HELLO, BODY");
    assert_eq!(echo["body_len"], 11);
    assert_eq!(echo["headers"]["x-body-len"][0], "11");

    let before = upstream.hits();
    let response = http
        .post(gateway.url("/upper"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_envelope(
        status,
        None,
        &response.bytes().await.unwrap(),
        413,
        "PAYLOAD_TOO_LARGE",
    );
    assert_eq!(
        upstream.hits(),
        before,
        "an oversized body is not forwarded"
    );

    // The upstream's answer is read for the plugin under the same cap: one over it is
    // 502 (the route does not say `large_responses = "stream"`).
    send(Method::GET, &gateway.url("/upper?bytes=4096"), None)
        .await
        .assert_envelope(502, "BAD_GATEWAY");
    assert_eq!(upstream.hits(), before + 1);
}

#[tokio::test]
async fn kv_state_is_shared_by_instances_and_survives_a_restart() {
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = format!(
        r#"
[services.echo]
endpoints = ["http://{}"]

[[routes]]
name = "count"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "counter"
"#,
        upstream.address
    );
    let start = || {
        TestGateway::new()
            .plugin("counter", "counter")
            .toml(&config)
            .data_dir(&data_dir)
            .start()
    };
    let http = client();
    let mut gateway = start();
    for want in 1..=3 {
        let response = http.get(gateway.url("/")).send().await.unwrap();
        assert_eq!(response.headers()["x-hits"], want.to_string().as_str());
    }
    gateway.wait_for_log("counter hit 3");
    let status = tokio::task::spawn_blocking(move || {
        let status = gateway.terminate();
        drop(gateway);
        status
    })
    .await
    .unwrap();
    assert!(status.is_some_and(|s| s.success()));
    let gateway = start();
    let response = http.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(
        response.headers()["x-hits"],
        "4",
        "the count survived the restart"
    );
}

/// Three plugin files built from `counter`: `reused` with the default instance pool,
/// `fresh` with `instances = 0`, and `sharing`, given `reused`'s kv namespace. Each
/// on a route of its own name.
fn counters_gateway(upstream: &Upstream) -> wasmgate_e2e::GatewayProcess {
    let mut gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[plugins.fresh]\ninstances = 0\n\n[plugins.sharing]\nkv_namespace = \"reused\"\n");
    for name in ["reused", "fresh", "sharing"] {
        gateway = gateway.plugin(name, "counter").toml(&format!(
            "[[routes]]\nname = \"{name}\"\nprefix = \"/{name}\"\nservice = \"echo\"\n[[routes.plugins]]\nname = \"{name}\"\n"
        ));
    }
    gateway.start()
}

/// `GET /{route}`: the counter's `x-hits` and `x-instance-calls`.
async fn count(gateway: &wasmgate_e2e::GatewayProcess, route: &str) -> (String, String) {
    let response = client()
        .get(gateway.url(&format!("/{route}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/{route}");
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    (header("x-hits"), header("x-instance-calls"))
}

#[tokio::test]
async fn instances_are_reused_and_instances_zero_makes_a_fresh_one_per_call() {
    let upstream = Upstream::start();
    let gateway = counters_gateway(&upstream);
    for call in 1..=3 {
        let (_, calls) = count(&gateway, "reused").await;
        assert_eq!(calls, call.to_string(), "one pooled instance, called again");
        // A fresh instance for every call: the response phase's own instance has seen
        // no request.
        let (_, calls) = count(&gateway, "fresh").await;
        assert_eq!(calls, "0", "call {call} with instances = 0");
    }
}

#[tokio::test]
async fn each_plugin_has_its_own_kv_namespace_unless_granted_one() {
    let upstream = Upstream::start();
    let gateway = counters_gateway(&upstream);
    // Same key ("hits"), same code, interleaved: separate counts by default.
    for hit in 1..=2 {
        assert_eq!(count(&gateway, "reused").await.0, hit.to_string());
        assert_eq!(count(&gateway, "fresh").await.0, hit.to_string());
    }
    // `sharing` was given `reused`'s namespace: it counts on from there.
    assert_eq!(count(&gateway, "sharing").await.0, "3");
    assert_eq!(count(&gateway, "reused").await.0, "4");
    assert_eq!(count(&gateway, "fresh").await.0, "3");
}

/// `kv_durable = true`: every write the plugin made before its request was answered
/// survives the process being killed (SIGKILL, no flush on the way out).
#[tokio::test]
async fn kv_durable_writes_survive_sigkill() {
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        TestGateway::new()
            .service("echo", upstream.address)
            .plugin("counter", "counter")
            .data_dir(dir.path())
            .toml(
                "[plugins.counter]\nkv_durable = true\n\n\
                 [[routes]]\nname = \"count\"\nprefix = \"/\"\nservice = \"echo\"\n\
                 [[routes.plugins]]\nname = \"counter\"\n",
            )
            .start()
    };
    let mut gateway = start();
    for want in 1..=3 {
        let response = client().get(gateway.url("/")).send().await.unwrap();
        assert_eq!(response.headers()["x-hits"], want.to_string().as_str());
    }
    gateway.signal("KILL");
    wasmgate_e2e::wait_for("the gateway to die", Duration::from_secs(10), || {
        (!gateway.is_running()).then_some(())
    });
    drop(gateway);
    let gateway = start();
    let response = client().get(gateway.url("/")).send().await.unwrap();
    assert_eq!(
        response.headers()["x-hits"],
        "4",
        "an acknowledged write was lost"
    );
}
