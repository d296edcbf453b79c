use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

const TIMINGS: &str = r#""heartbeat_ttl_seconds": 30, "forget_after_seconds": 600"#;

/// The three parts on one thread's store: discovery, listing, proxy (the proxy
/// reading the store on every request, so a test sees each change at once).
fn registry() -> (Harness<Registry>, Harness<Registry>, Harness<Registry>) {
    let discovery = Harness::new(&format!(r#"{{"discovery": "/discovery", {TIMINGS}}}"#)).unwrap();
    let listing = Harness::new(&format!(r#"{{"services": "/services", {TIMINGS}}}"#)).unwrap();
    let proxy = Harness::new(&format!(
        r#"{{"proxy": "/api", "refresh_ms": 0, {TIMINGS}}}"#
    ))
    .unwrap();
    // Each harness starts this thread's host afresh: the store is empty from here.
    (discovery, listing, proxy)
}

fn answer(h: &mut Harness<Registry>, request: TestRequest) -> (u16, Value) {
    let response = h.on_request(request).response().expect("answered").clone();
    let body = serde_json::from_slice(response.body.as_deref().unwrap_or(b"null")).unwrap();
    (response.status, body)
}

fn call(h: &mut Harness<Registry>, method: &str, path: &str, body: Value) -> (u16, Value) {
    answer(h, TestRequest::method(method, path).body(body.to_string()))
}

fn register(h: &mut Harness<Registry>, form: Value) -> Value {
    let (status, body) = call(h, "POST", "/discovery/register", form);
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

/// Where the proxy sends `path`, and the path and query it sends.
fn routed(proxy: &mut Harness<Registry>, path: &str) -> (String, String, Option<String>) {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut request = TestRequest::get(path);
    if let Some(query) = query {
        request = request.query(query);
    }
    let outcome = proxy.on_request(request);
    let Some(Target::Endpoint(url)) = outcome.target().cloned() else {
        panic!(
            "not routed: {:?}",
            outcome.response().map(Response::body_text)
        );
    };
    let sent = outcome.request().expect("continued");
    (url, sent.path.clone(), sent.query.clone())
}

fn refused(proxy: &mut Harness<Registry>, path: &str) -> (u16, Value) {
    answer(proxy, TestRequest::get(path))
}

#[test]
fn registered_instances_take_turns_and_get_the_rest_of_the_path() {
    let (mut discovery, _, mut proxy) = registry();
    let a = register(
        &mut discovery,
        json!({"name": "user-service", "host": "127.0.0.1", "port": 8001}),
    );
    assert_eq!(a["id"], "user-service-127.0.0.1-8001");
    assert_eq!(a["url"], "http://127.0.0.1:8001");
    assert_eq!(a["status"], "healthy");
    register(
        &mut discovery,
        json!({"service_name": "user-service", "host": "127.0.0.1", "port": 8011, "id": "users-2"}),
    );
    register(
        &mut discovery,
        json!({"name": "order-service", "host": "127.0.0.1", "port": 8002}),
    );

    let mut seen = Vec::new();
    for _ in 0..4 {
        let (url, path, query) = routed(&mut proxy, "/api/user-service/users/7?full=1");
        assert_eq!(path, "/users/7");
        assert_eq!(query.as_deref(), Some("full=1"));
        seen.push(url);
    }
    // Strict turns: each instance every other request.
    assert_ne!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    assert_eq!(seen[1], seen[3]);
    let mut both = seen[..2].to_vec();
    both.sort();
    assert_eq!(both, ["http://127.0.0.1:8001", "http://127.0.0.1:8011"]);

    let (url, path, _) = routed(&mut proxy, "/api/order-service");
    assert_eq!(
        (url.as_str(), path.as_str()),
        ("http://127.0.0.1:8002", "/")
    );
}

#[test]
fn silent_instances_stop_receiving_traffic_and_cleanup_drops_them() {
    let (mut discovery, mut listing, mut proxy) = registry();
    register(
        &mut discovery,
        json!({"name": "svc", "host": "127.0.0.1", "port": 9001, "id": "a"}),
    );
    register(
        &mut discovery,
        json!({"name": "svc", "host": "127.0.0.1", "port": 9002, "id": "b"}),
    );
    discovery.advance_ms(20_000);
    let (status, body) = call(
        &mut discovery,
        "POST",
        "/discovery/heartbeat/a",
        json!(null),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "healthy");

    // b has been silent past the TTL; a heartbeated 20 s later.
    discovery.advance_ms(15_000);
    for _ in 0..3 {
        assert_eq!(routed(&mut proxy, "/api/svc/x").0, "http://127.0.0.1:9001");
    }
    let (_, body) = call(&mut discovery, "GET", "/discovery/services/b", json!(null));
    assert_eq!(body["data"]["status"], "unhealthy");
    let (_, body) = answer(&mut listing, TestRequest::get("/services"));
    assert_eq!(
        body["data"]["services"],
        json!([{"name": "svc", "instances": 2, "healthy": 1, "endpoints": ["http://127.0.0.1:9001"]}])
    );

    let (status, body) = call(&mut discovery, "POST", "/discovery/cleanup", json!(null));
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"count": 1, "removed": ["b"]}));
    let (status, body) = call(
        &mut discovery,
        "POST",
        "/discovery/heartbeat/b",
        json!(null),
    );
    assert_eq!(
        status, 404,
        "a cleaned-up instance must register again: {body}"
    );
    assert_eq!(body["code"], "NOT_FOUND");

    // a falls silent too: nothing is live, 503.
    discovery.advance_ms(31_000);
    let (status, body) = refused(&mut proxy, "/api/svc/x");
    assert_eq!(status, 503);
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    // A heartbeat brings it back at once.
    let (status, _) = call(
        &mut discovery,
        "POST",
        "/discovery/heartbeat/a",
        json!(null),
    );
    assert_eq!(status, 200);
    assert_eq!(routed(&mut proxy, "/api/svc/x").0, "http://127.0.0.1:9001");

    // Past forget_after without a heartbeat the store has dropped it.
    discovery.advance_ms(601_000);
    let (_, body) = call(&mut discovery, "GET", "/discovery/services", json!(null));
    assert_eq!(body["data"], json!({"services": [], "count": 0}));
}

#[test]
fn unregistered_and_unknown_services_get_503_and_unknown_ids_404() {
    let (mut discovery, _, mut proxy) = registry();
    register(
        &mut discovery,
        json!({"name": "svc", "host": "localhost", "port": 9001}),
    );
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://localhost:9001");
    let (status, body) = call(
        &mut discovery,
        "DELETE",
        "/discovery/unregister/svc-localhost-9001",
        json!(null),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], "svc-localhost-9001");
    let (status, body) = refused(&mut proxy, "/api/svc/x");
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("SERVICE_UNAVAILABLE"))
    );
    assert!(
        body["error"].as_str().unwrap().contains("\"svc\""),
        "{body}"
    );

    for (method, path) in [
        ("DELETE", "/discovery/unregister/svc-localhost-9001"),
        ("GET", "/discovery/services/nobody"),
        ("POST", "/discovery/heartbeat/nobody"),
    ] {
        let (status, body) = call(&mut discovery, method, path, json!(null));
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["code"], "NOT_FOUND");
    }
    for path in ["/api/never-registered/x", "/api/bad%20name/x"] {
        assert_eq!(refused(&mut proxy, path).0, 503, "{path}");
    }
    for path in ["/api", "/api/"] {
        assert_eq!(refused(&mut proxy, path).0, 404, "{path}");
    }
}

#[test]
fn registering_an_id_again_replaces_it_even_under_another_service() {
    let (mut discovery, _, mut proxy) = registry();
    let form = |name: &str, port: u16| json!({"name": name, "host": "127.0.0.1", "port": port, "id": "x1"});
    register(&mut discovery, form("old", 9001));
    register(&mut discovery, form("new", 9002));
    let (_, body) = call(&mut discovery, "GET", "/discovery/services", json!(null));
    assert_eq!(body["data"]["count"], 1, "{body}");
    assert_eq!(body["data"]["services"][0]["name"], "new");
    assert_eq!(refused(&mut proxy, "/api/old/x").0, 503);
    assert_eq!(routed(&mut proxy, "/api/new/x").0, "http://127.0.0.1:9002");
}

#[test]
fn bad_registrations_say_which_field() {
    let (mut discovery, _, _) = registry();
    let cases = [
        (
            json!({"name": "svc", "host": "127.0.0.1", "port": 0}),
            "host",
        ),
        (
            json!({"name": "svc", "host": "not a host", "port": 80}),
            "host",
        ),
        (json!({"name": "svc", "host": "a..b", "port": 80}), "host"),
        (
            json!({"name": "s/vc", "host": "127.0.0.1", "port": 80}),
            "name",
        ),
        (json!({"name": "", "host": "127.0.0.1", "port": 80}), "name"),
        (
            json!({"name": "svc", "host": "127.0.0.1", "port": 80, "id": "a/b"}),
            "id",
        ),
    ];
    for (form, field) in cases {
        let (status, body) = call(&mut discovery, "POST", "/discovery/register", form.clone());
        assert_eq!(status, 400, "{form}");
        assert_eq!(body["code"], "VALIDATION_ERROR");
        assert!(body["data"]["fields"][field].is_string(), "{form}: {body}");
    }
    for form in [
        json!({"name": "svc", "host": "127.0.0.1", "port": 70000}),
        json!({"name": "svc", "host": "127.0.0.1"}),
        json!("svc"),
    ] {
        let (status, body) = call(&mut discovery, "POST", "/discovery/register", form.clone());
        assert_eq!(status, 400, "{form}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid registration"),
            "{body}"
        );
    }
    let (status, _) = answer(
        &mut discovery,
        TestRequest::post("/discovery/register").body("{not json"),
    );
    assert_eq!(status, 400);
    let (_, body) = call(&mut discovery, "GET", "/discovery/services", json!(null));
    assert_eq!(body["data"]["count"], 0, "nothing bad was stored");
}

#[test]
fn what_the_registration_does_not_name_is_kept_in_metadata() {
    let (mut discovery, _, _) = registry();
    let data = register(
        &mut discovery,
        json!({"name": "svc", "host": "::1", "port": 9001, "version": "1.2.0",
               "health_check_url": "http://[::1]:9001/health",
               "metadata": {"zone": "a"}, "tags": ["blue"]}),
    );
    assert_eq!(data["url"], "http://[::1]:9001");
    assert_eq!(data["version"], "1.2.0");
    assert_eq!(data["health_check_url"], "http://[::1]:9001/health");
    assert_eq!(data["metadata"], json!({"zone": "a", "tags": ["blue"]}));
    assert!(data["registered_at"].as_str().unwrap().ends_with('Z'));
    assert!(data.get("last_heartbeat_ms").is_none(), "{data}");
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let (mut discovery, mut listing, _) = registry();
    for (method, path, allow) in [
        ("GET", "/discovery/register", "POST"),
        ("PUT", "/discovery/services", "GET"),
        ("POST", "/discovery/unregister/x", "DELETE"),
        ("GET", "/discovery/heartbeat/x", "POST"),
    ] {
        let response = discovery
            .on_request(TestRequest::method(method, path))
            .response()
            .unwrap()
            .clone();
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.headers.get("allow").as_deref(), Some(allow));
    }
    assert_eq!(
        call(&mut discovery, "GET", "/discovery/nothing", json!(null)).0,
        404
    );
    assert_eq!(call(&mut listing, "POST", "/services", json!(null)).0, 405);
}

#[test]
fn a_store_failure_is_503_and_a_known_list_keeps_routing() {
    let (mut discovery, _, _) = registry();
    let mut proxy = Harness::<Registry>::new(r#"{"proxy": "/api", "refresh_ms": 1000}"#).unwrap();
    // That harness emptied the store: register now.
    register(
        &mut discovery,
        json!({"name": "svc", "host": "127.0.0.1", "port": 9001}),
    );
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://127.0.0.1:9001");
    proxy.fail_kv(Some("redis down"));
    proxy.advance_ms(5_000);
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://127.0.0.1:9001");
    let (status, body) = refused(&mut proxy, "/api/other");
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("SERVICE_UNAVAILABLE"))
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("registry is unavailable")
    );
    let (status, _) = call(
        &mut discovery,
        "POST",
        "/discovery/register",
        json!({"name": "svc", "host": "127.0.0.1", "port": 9002}),
    );
    assert_eq!(status, 503);
}

#[test]
fn a_cached_list_is_read_again_after_refresh_ms() {
    let (mut discovery, _, _) = registry();
    let mut proxy = Harness::<Registry>::new(r#"{"proxy": "/api", "refresh_ms": 1000}"#).unwrap();
    register(
        &mut discovery,
        json!({"name": "svc", "host": "127.0.0.1", "port": 9001}),
    );
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://127.0.0.1:9001");
    call(
        &mut discovery,
        "DELETE",
        "/discovery/unregister/svc-127.0.0.1-9001",
        json!(null),
    );
    register(
        &mut discovery,
        json!({"name": "svc", "host": "127.0.0.1", "port": 9002}),
    );
    proxy.advance_ms(999);
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://127.0.0.1:9001");
    proxy.advance_ms(1);
    assert_eq!(routed(&mut proxy, "/api/svc").0, "http://127.0.0.1:9002");
}

#[test]
fn configs_name_one_part_and_sane_timings() {
    for (config, says) in [
        ("{}", "exactly one"),
        (r#"{"discovery": "/d", "proxy": "/api"}"#, "exactly one"),
        (r#"{"proxy": "api"}"#, "must start with '/'"),
        (
            r#"{"proxy": "/api", "heartbeat_ttl_seconds": 0}"#,
            "at least 1",
        ),
        (
            r#"{"proxy": "/api", "heartbeat_ttl_seconds": 60, "forget_after_seconds": 30}"#,
            "forget_after_seconds (30)",
        ),
        (r#"{"proxy": "/api", "ttl": 3}"#, "unknown field"),
    ] {
        let error = Harness::<Registry>::new(config).err().expect(config);
        assert!(error.contains(says), "{config}: {error}");
    }
    let proxy = Harness::<Registry>::new(r#"{"proxy": "/api/"}"#).unwrap();
    assert!(!proxy.settings().request_body);
    let discovery = Harness::<Registry>::new(r#"{"discovery": "/discovery"}"#).unwrap();
    assert!(discovery.settings().request_body);
}
