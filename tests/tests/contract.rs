//! The plugin contract 0.5 on real traffic: the log phase sees every request (plugin
//! failures, plugin answers, upstream errors), plugins choose upstreams only inside
//! their grant, structured log fields reach the JSON log, and a plugin built against
//! an earlier 0.5 release (0.5.1, without the `websocket` export) still runs.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, UpstreamBehaviour, client, dead_address, send_with,
    wait_for,
};

/// The gateway's JSON log lines with `message`.
fn lines(gateway: &GatewayProcess, message: &str) -> Vec<Value> {
    gateway
        .json_log()
        .into_iter()
        .filter(|line| line["message"] == message)
        .collect()
}

/// Waits for the `guest_log` line of `request_id`.
fn log_entry(gateway: &GatewayProcess, request_id: &str) -> Value {
    wait_for(
        &format!("the log phase of {request_id}"),
        Duration::from_secs(10),
        || {
            lines(gateway, "guest_log")
                .into_iter()
                .find(|line| line["request_id"] == request_id)
        },
    )
}

#[tokio::test]
async fn the_log_phase_sees_failures_plugin_answers_and_upstream_errors() {
    let upstream = Upstream::start();
    let dead = dead_address();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .service("dead", dead.address)
        .plugin("logger", "logger")
        .plugin("panic", "panic")
        .plugin("deny", "deny")
        .env("LOG_FORMAT", "json")
        .toml(
            r#"
[[routes]]
name = "ok"
prefix = "/ok"
service = "echo"
[[routes.plugins]]
name = "logger"

[[routes]]
name = "crash"
prefix = "/crash"
service = "echo"
[[routes.plugins]]
name = "logger"
[[routes.plugins]]
name = "panic"

[[routes]]
name = "answered"
prefix = "/answered"
service = "echo"
[[routes.plugins]]
name = "logger"
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/answered" }], status = 403, code = "FORBIDDEN", message = "no" }

[[routes]]
name = "down"
prefix = "/down"
service = "dead"
[[routes.plugins]]
name = "logger"
"#,
        )
        .start();
    let http = client();
    let send = |path: &str, id: &str, panic: bool| {
        let mut request = http.get(gateway.url(path)).header("x-request-id", id);
        if panic {
            request = request.header("x-panic", "1");
        }
        request.send()
    };

    let response = send("/ok/x", "log-ok", false).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let entry = log_entry(&gateway, "log-ok");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["failure"], "");
    assert_eq!(entry["service"], "echo");
    assert_eq!(entry["bytes_out"], body.len() as u64, "{entry}");

    let response = send("/crash/x", "log-crash", true).await.unwrap();
    assert_eq!(response.status(), 500);
    let entry = log_entry(&gateway, "log-crash");
    assert_eq!(entry["status"], 500);
    assert_eq!(entry["failure"], "PLUGIN_ERROR");
    assert_eq!(entry["failure_kind"], "plugin_trap", "{entry}");
    assert_eq!(
        upstream.hits(),
        1,
        "the crashed request never reached the upstream"
    );

    let response = send("/answered/x", "log-answered", false).await.unwrap();
    assert_eq!(response.status(), 403);
    let entry = log_entry(&gateway, "log-answered");
    assert_eq!(entry["status"], 403);
    assert_eq!(entry["answered_by"], "deny");
    assert_eq!(entry["failure"], "");

    // The dead service's endpoint, probed down: 503 at once.
    gateway.wait_for_log("upstream down");
    let response = send("/down/x", "log-down", false).await.unwrap();
    assert_eq!(response.status(), 503);
    let entry = log_entry(&gateway, "log-down");
    assert_eq!(entry["status"], 503);
    assert_eq!(entry["failure"], "SERVICE_UNAVAILABLE");
    assert_eq!(entry["failure_kind"], "upstream_unreachable");
}

#[tokio::test]
async fn a_plugin_chooses_upstreams_only_inside_its_grant() {
    let home = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("x-which".into(), "home".into())),
        ..UpstreamBehaviour::default()
    });
    let granted = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("x-which".into(), "granted".into())),
        ..UpstreamBehaviour::default()
    });
    let allowed = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("x-which".into(), "allowed".into())),
        ..UpstreamBehaviour::default()
    });
    let forbidden = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("x-which".into(), "forbidden".into())),
        ..UpstreamBehaviour::default()
    });
    let gateway = TestGateway::new()
        .service("home", home.address)
        .service("granted", granted.address)
        .service("forbidden", forbidden.address)
        .plugin("router", "router")
        .toml(&format!(
            r#"
[plugins.router]
services = ["granted"]
upstreams = ["http://127.0.0.1:{allowed_port}"]

[[routes]]
name = "routed"
prefix = "/"
service = "home"
[[routes.plugins]]
name = "router"
"#,
            allowed_port = allowed.address.port()
        ))
        .start();
    let http = client();
    let via = |name: &str, value: String| http.get(gateway.url("/x")).header(name, value).send();

    let response = http.get(gateway.url("/x")).send().await.unwrap();
    assert_eq!(response.headers()["x-which"], "home");
    let response = via("x-route-service", "granted".into()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-which"], "granted");
    let response = via("x-route-endpoint", format!("http://{}", allowed.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-which"], "allowed");

    // Outside the grant: a service that exists but is not granted, and an endpoint
    // outside the allowlist. PLUGIN_ERROR, and no connection is made.
    for (header, value) in [
        ("x-route-service", "forbidden".to_string()),
        ("x-route-endpoint", format!("http://{}", forbidden.address)),
        ("x-route-endpoint", "http://127.0.0.2:1".to_string()),
    ] {
        send_with(Method::GET, &gateway.url("/x"), &[(header, &value)], None)
            .await
            .assert_envelope(500, "PLUGIN_ERROR");
    }
    assert_eq!(forbidden.hits(), 0, "nothing outside the grant was called");
}

#[tokio::test]
async fn structured_fields_are_json_fields_of_the_log_line() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("logger", "logger")
        .env("LOG_FORMAT", "json")
        .toml(
            "[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"echo\"\n[[routes.plugins]]\nname = \"logger\"\n",
        )
        .start();
    let response = client()
        .get(gateway.url("/x"))
        .header("x-fields", "1")
        .header("x-request-id", "fields-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let line = wait_for("the guest_fields line", Duration::from_secs(10), || {
        lines(&gateway, "guest_fields").into_iter().next()
    });
    assert_eq!(line["user"], "alice", "{line}");
    assert_eq!(line["attempt"], 3);
    assert_eq!(line["ok"], true);
    assert_eq!(line["ratio"], 0.5);
    assert_eq!(line["plugin"], "logger");
    assert_eq!(line["request_id"], "fields-1");
    assert!(line.get("plugin_fields").is_none(), "{line}");
}

#[tokio::test]
async fn a_plugin_built_against_contract_0_5_1_runs_on_this_gateway() {
    let upstream = Upstream::start();
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/headers-0.5.1.wasm"
    ))
    .expect("the 0.5.1 fixture");
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin_bytes("old-headers", &old)
        .toml(
            r#"
[[routes]]
name = "old"
prefix = "/"
service = "echo"
[[routes.plugins]]
name = "old-headers"
config = { request = { set = { "x-built-against" = "0.5.1" } } }
"#,
        )
        .start();
    let echo: Value = client()
        .get(gateway.url("/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["headers"]["x-built-against"][0], "0.5.1", "{echo}");
    let plugins = wasmgate_e2e::admin_json(&gateway, "/admin/plugins").await;
    let old = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "old-headers")
        .expect("listed");
    assert_eq!(old["wit_version"], "0.5.1");
    assert_eq!(old["status"], "loaded");
}
