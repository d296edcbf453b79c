use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

const MANAGE: &str = r#"{"manage": {"base": "/admin/api-keys"}}"#;

fn answer(h: &mut Harness<ApiKeyAuth>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = TestRequest::method(method, path)
        .body(body.to_string())
        .build();
    let response = h.on_request(request).response().expect("answered").clone();
    (
        response.status,
        serde_json::from_slice(response.body.as_ref().unwrap()).unwrap(),
    )
}

/// Creates a key through the API and returns (key, id).
fn create(h: &mut Harness<ApiKeyAuth>, form: Value) -> (String, String) {
    let (status, body) = answer(h, "POST", "/admin/api-keys", form);
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    (
        data["key"].as_str().unwrap().to_string(),
        data["id"].as_str().unwrap().to_string(),
    )
}

/// Swaps the plugin for one with `config`, keeping this thread's store.
fn reconfigure(h: &mut Harness<ApiKeyAuth>, config: &str) {
    let kept: Vec<(String, Vec<u8>)> = kv_dump();
    *h = Harness::new(config).unwrap();
    for (key, value) in kept {
        wasmgate_plugin_sdk::kv::set(&key, &value, None).unwrap();
    }
}

fn kv_dump() -> Vec<(String, Vec<u8>)> {
    wasmgate_plugin_sdk::kv::scan("", None, 1000).unwrap()
}

fn with_key(key: &str) -> TestRequest {
    TestRequest::get("/data").header("x-api-key", key)
}

#[test]
fn create_use_list_and_revoke() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    assert!(h.settings().request_body);
    let (key, id) = create(
        &mut h,
        json!({"consumer": "billing-svc", "role": "user", "permissions": ["invoice:read"], "tier": "pro", "name": "nightly job"}),
    );
    assert!(key.starts_with(&format!("wgk_{id}_")), "{key}");
    // Only the hash is stored.
    for (name, value) in kv_dump() {
        assert!(
            !String::from_utf8_lossy(&value).contains(&key),
            "{name} holds the key"
        );
    }

    // The key authenticates on a checking route.
    let mut check = h;
    reconfigure(&mut check, "{}");
    let request = check
        .on_request(with_key(&key).header("x-user-role", "admin").build())
        .request()
        .expect("let through")
        .clone();
    assert_eq!(request.headers.get("x-user-id"), Some("billing-svc"));
    assert_eq!(request.headers.get("x-user-role"), Some("user"));
    assert_eq!(
        request.headers.get("x-user-permissions"),
        Some("invoice:read")
    );
    assert!(
        !request.headers.contains("x-api-key"),
        "the key is not sent upstream"
    );
    assert_eq!(check.ctx.var("auth_method"), Some("api-key"));
    assert_eq!(check.ctx.var("consumer"), Some("billing-svc"));
    assert_eq!(check.ctx.var("tier"), Some("pro"));
}

#[test]
fn listings_show_prefixes_only_and_revocation_sticks() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    let (key_a, id_a) = create(&mut h, json!({"consumer": "a"}));
    let (key_b, _) = create(&mut h, json!({"consumer": "b", "tier": "free"}));
    let (status, body) = answer(&mut h, "GET", "/admin/api-keys", Value::Null);
    assert_eq!(status, 200);
    let listed = body["data"]["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let text = body.to_string();
    for key in [&key_a, &key_b] {
        let secret = key.splitn(3, '_').nth(2).unwrap();
        assert!(!text.contains(secret), "a listing shows a secret: {text}");
    }
    assert!(!text.contains("hash"));
    assert!(listed.iter().any(|k| k["prefix"] == format!("wgk_{id_a}")));

    let (status, body) = answer(
        &mut h,
        "DELETE",
        &format!("/admin/api-keys/{id_a}"),
        Value::Null,
    );
    assert_eq!(status, 200);
    assert!(body["data"]["key"]["revoked_at"].is_string());
    let (status, body) = answer(
        &mut h,
        "GET",
        &format!("/admin/api-keys/{id_a}"),
        Value::Null,
    );
    assert_eq!(status, 200);
    assert!(body["data"]["key"]["revoked_at"].is_string());

    reconfigure(&mut h, "{}");
    let refused = |h: &mut Harness<ApiKeyAuth>, key: &str| {
        let response = h.on_request(with_key(key).build()).response().cloned();
        let response = response.expect("refused");
        assert_eq!(response.status, 401);
        h.logs().last().unwrap().1.clone()
    };
    assert!(refused(&mut h, &key_a).contains("was revoked"));
    assert!(h.on_request(with_key(&key_b).build()).request().is_some());
}

#[test]
fn a_revoked_consumer_loses_every_key() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    let (first, _) = create(&mut h, json!({"consumer": "partner"}));
    let (status, _) = answer(
        &mut h,
        "DELETE",
        "/admin/api-keys/consumers/partner",
        Value::Null,
    );
    assert_eq!(status, 200);
    let (later, _) = create(&mut h, json!({"consumer": "partner"}));
    reconfigure(&mut h, "{}");
    for key in [first, later] {
        let response = h
            .on_request(with_key(&key).build())
            .response()
            .cloned()
            .unwrap();
        assert_eq!(response.status, 401);
        assert!(
            h.logs()
                .last()
                .unwrap()
                .1
                .contains("consumer \"partner\" was revoked")
        );
    }
}

#[test]
fn bad_keys_are_refused() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    let (good, id) = create(&mut h, json!({"consumer": "svc", "expires_in_seconds": 60}));
    reconfigure(&mut h, "{}");
    let secret = good.splitn(3, '_').nth(2).unwrap();
    let other_secret: String = secret.chars().rev().collect();
    let cases = [
        ("missing", None, "no key"),
        (
            "not ours",
            Some("sk_live_123".to_string()),
            "not a wasmgate API key",
        ),
        (
            "unknown id",
            Some(format!("wgk_000000000000_{secret}")),
            "unknown key",
        ),
        (
            "wrong secret",
            Some(format!("wgk_{id}_{other_secret}")),
            "wrong secret",
        ),
        (
            "truncated",
            Some(good[..good.len() - 4].to_string()),
            "not a wasmgate API key",
        ),
    ];
    for (name, key, reason) in cases {
        let mut request = TestRequest::get("/data");
        if let Some(key) = &key {
            request = request.header("x-api-key", key);
        }
        let response = h.on_request(request.build()).response().cloned();
        assert_eq!(response.map(|r| r.status), Some(401), "{name}");
        let line = h.logs().last().unwrap().1.clone();
        assert!(line.contains(reason), "{name}: {line}");
        assert!(!line.contains(secret), "{name}: the log holds the key");
    }
    assert!(h.on_request(with_key(&good).build()).request().is_some());
    h.ctx.vars.clear();
    h.advance_ms(61_000);
    assert!(
        h.on_request(with_key(&good).build()).response().is_some(),
        "expired"
    );
    assert!(h.logs().last().unwrap().1.contains("expired"));
}

#[test]
fn optional_lets_keyless_requests_on_and_an_earlier_auth_wins() {
    let mut h = Harness::<ApiKeyAuth>::new(r#"{"optional": true}"#).unwrap();
    let request = h.on_request(TestRequest::get("/").header("x-user-id", "forged").build());
    let request = request.request().expect("passed on").clone();
    assert!(!request.headers.contains("x-user-id"));
    assert_eq!(h.ctx.var("auth_method"), None);
    // A bad key is refused even so.
    assert!(
        h.on_request(with_key("wgk_nope").build())
            .response()
            .is_some()
    );
    h.ctx.vars.clear();
    h.ctx.set_var("auth_method", "jwt");
    assert!(
        h.on_request(with_key("wgk_nope").build())
            .request()
            .is_some()
    );
}

#[test]
fn the_management_api_checks_its_input() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    let (status, body) = answer(
        &mut h,
        "POST",
        "/admin/api-keys",
        json!({"consumer": "a b"}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert!(body["data"]["fields"]["consumer"].is_string());
    let (status, _) = answer(&mut h, "POST", "/admin/api-keys", json!({"role": "x"}));
    assert_eq!(status, 400);
    let (status, _) = answer(
        &mut h,
        "POST",
        "/admin/api-keys",
        json!({"consumer": "a", "rank": 1}),
    );
    assert_eq!(status, 400);
    assert_eq!(answer(&mut h, "PUT", "/admin/api-keys", Value::Null).0, 405);
    assert_eq!(
        answer(&mut h, "GET", "/admin/api-keys/nope", Value::Null).0,
        404
    );
    assert_eq!(
        answer(&mut h, "DELETE", "/admin/api-keys/nope", Value::Null).0,
        404
    );
    assert_eq!(
        answer(&mut h, "GET", "/admin/api-keys/a/b/c", Value::Null).0,
        404
    );
    assert!(Harness::<ApiKeyAuth>::new(r#"{"manage": {"base": "keys"}}"#).is_err());
    assert!(Harness::<ApiKeyAuth>::new(r#"{"header": "bad header"}"#).is_err());
}
