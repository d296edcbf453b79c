//! The `keystone` plugin (AIMS's `POST /openstack/connect`) against a fake Keystone v3
//! on loopback: good credentials, bad credentials, an unreachable Keystone and a slow
//! one, each with its envelope and its named log event.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wasmgate_e2e::{
    Answer, FakeKeystone, GatewayProcess, KEYSTONE_USER, TestGateway, assert_envelope, send,
};

/// A gateway whose `/openstack/connect` reaches `good` by default, and a closed port
/// (`http://down.test/v3`) and `slow` by their auth URLs; the plugin has 1 s a call.
fn gateway(good: &FakeKeystone, slow: &FakeKeystone) -> GatewayProcess {
    // Held until the test process ends, past the gateway returned.
    let closed = std::mem::ManuallyDrop::new(wasmgate_e2e::dead_address()).address;
    TestGateway::new()
        .service("keystone", good.address)
        .service("down", closed)
        .service("slow", slow.address)
        .plugin("keystone", "keystone")
        .env("LOG_FORMAT", "json")
        .env("OS_AUTH_URL", "http://openstack.test:5000/v3")
        .toml(
            r#"
[plugins.keystone]
http = ["keystone", "down", "slow"]
timeout_ms = 1000

[[routes]]
name = "openstack"
path = "/openstack/connect"
[[routes.plugins]]
name = "keystone"
config = { auth_url = "${OS_AUTH_URL}", service = "keystone", region_name = "RegionOne", clouds = [
    { auth_url = "http://down.test/v3", service = "down" },
    { auth_url = "http://slow.test/v3", service = "slow" },
] }
"#,
        )
        .start()
}

fn form(auth_url: Option<&str>, password: &str) -> Value {
    let (username, _, project) = KEYSTONE_USER;
    let mut form = json!({
        "username": username, "password": password, "project_name": project,
        "user_domain_name": "Default", "project_domain_name": "Default",
        "region_name": "RegionOne", "interface": "public",
    });
    if let Some(url) = auth_url {
        form["auth_url"] = json!(url);
    }
    form
}

async fn connect(gateway: &GatewayProcess, form: &Value) -> Answer {
    send(Method::POST, &gateway.url("/openstack/connect"), Some(form)).await
}

/// The log line of `event` for request `id`.
fn event(gateway: &GatewayProcess, event: &str, id: &str) -> Value {
    gateway
        .wait_for_json_lines(&format!("{event} for {id}"), 1, |l| {
            l["event"] == event && l["request_id"] == id
        })
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_answers_each_keystone_outcome_with_its_envelope_and_event() {
    let (good, slow) = (
        FakeKeystone::start(Duration::ZERO),
        FakeKeystone::start(Duration::from_secs(5)),
    );
    let gateway = gateway(&good, &slow);
    let (_, password, _) = KEYSTONE_USER;

    // Good credentials: connected, with the project, the user and the expiry.
    let Answer {
        status,
        request_id: id,
        body,
    } = connect(&gateway, &form(None, password)).await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["connected"], true);
    assert_eq!(answer["data"]["project_id"], "p-91c2");
    assert_eq!(answer["data"]["user_id"], "u-7f3a");
    assert_eq!(answer["data"]["expires_at"], "2030-01-01T00:00:00.000000Z");
    assert_eq!(
        answer["data"]["auth_url"], "http://openstack.test:5000/v3",
        "the default is ${{OS_AUTH_URL}}"
    );
    assert_eq!(answer["request_id"], id.as_str());
    event(&gateway, "openstack_connect_attempt", &id);
    let success = event(&gateway, "openstack_connect_success", &id);
    assert_eq!(success["project_id"], "p-91c2");
    assert!(!gateway.log().contains(password), "a password was logged");

    // Bad credentials: 401 and a failed event.
    let Answer {
        status,
        request_id: id,
        body,
    } = connect(&gateway, &form(None, "wrong")).await;
    assert_envelope(status, Some(&id), &body, 401, "UNAUTHORIZED");
    let failed = event(&gateway, "openstack_connect_failed", &id);
    assert_eq!(failed["keystone_status"], 401);
    assert_eq!(good.requests(), 2);

    // Keystone unreachable: 502.
    let Answer {
        status,
        request_id: id,
        body,
    } = connect(&gateway, &form(Some("http://down.test/v3"), password)).await;
    assert_envelope(status, Some(&id), &body, 502, "BAD_GATEWAY");
    event(&gateway, "openstack_connect_failed", &id);

    // Keystone slow: 504 from the plugin itself, before its own 1 s deadline.
    let started = Instant::now();
    let Answer {
        status,
        request_id: id,
        body,
    } = connect(&gateway, &form(Some("http://slow.test/v3/"), password)).await;
    assert_envelope(status, Some(&id), &body, 504, "GATEWAY_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    let failed = event(&gateway, "openstack_connect_failed", &id);
    assert!(
        failed["reason"].as_str().unwrap().contains("in time"),
        "{failed}"
    );

    // An auth URL the operator did not configure is refused before any call.
    let Answer {
        status,
        request_id: id,
        body,
    } = connect(&gateway, &form(Some("http://127.0.0.1:1/v3"), password)).await;
    assert_envelope(status, Some(&id), &body, 400, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reaches_keystone_over_https_verified_by_the_services_ca() {
    let ca = wasmgate_e2e::TestCa::new();
    let keystone = FakeKeystone::start_tls(&ca.issue(&["keystone.test", "127.0.0.1"]));
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let gateway = TestGateway::new()
        .plugin("keystone", "keystone")
        .toml(&format!(
            r#"
[services.keystone]
endpoints = ["https://{address}"]
ca_file = {ca_file:?}

[plugins.keystone]
http = ["keystone"]
timeout_ms = 2000

[[routes]]
name = "openstack"
path = "/openstack/connect"
[[routes.plugins]]
name = "keystone"
config = {{ auth_url = "https://{address}/v3", service = "keystone" }}
"#,
            address = keystone.address,
            ca_file = ca_file.display().to_string(),
        ))
        .start();
    let (_, password, _) = KEYSTONE_USER;
    let answer = connect(&gateway, &form(None, password)).await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}\n{}", gateway.log());
    assert_eq!(body["data"]["project_id"], "p-91c2");
    assert_eq!(keystone.requests(), 1);
    let refused = connect(&gateway, &form(None, "wrong")).await;
    refused.assert_envelope(401, "UNAUTHORIZED");
}

/// The sandbox refuses an outbound call to a service the operator did not grant the
/// plugin (`http = [...]`), even one the config defines and the plugin's route config
/// names: the plugin gets the refusal (its 502 and failed event say why) and the
/// service never sees a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_not_granted_to_the_plugin_is_never_called() {
    let (granted, ungranted) = (
        FakeKeystone::start(Duration::ZERO),
        FakeKeystone::start(Duration::ZERO),
    );
    let gateway = TestGateway::new()
        .service("keystone", granted.address)
        .service("other", ungranted.address)
        .plugin("keystone", "keystone")
        .env("LOG_FORMAT", "json")
        .toml(
            r#"
[plugins.keystone]
http = ["keystone"]

[[routes]]
name = "openstack"
path = "/openstack/connect"
[[routes.plugins]]
name = "keystone"
config = { auth_url = "http://keystone.test/v3", service = "keystone", clouds = [
    { auth_url = "http://other.test/v3", service = "other" },
] }
"#,
        )
        .start();
    let (_, password, _) = KEYSTONE_USER;
    let answer = connect(&gateway, &form(Some("http://other.test/v3"), password)).await;
    answer.assert_envelope(502, "BAD_GATEWAY");
    let failed = event(&gateway, "openstack_connect_failed", &answer.request_id);
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not granted")),
        "{failed}"
    );
    assert_eq!(ungranted.requests(), 0, "the ungranted service was called");

    // The granted one, on the same gateway, works.
    let answer = connect(&gateway, &form(None, password)).await;
    assert_eq!(answer.status, 200, "{}", gateway.log());
    assert_eq!(granted.requests(), 1);
}
