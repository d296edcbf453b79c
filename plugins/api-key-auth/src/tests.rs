use serde_json::{Value, json};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

const MANAGE: &str = r#"{"manage": {"base": "/admin/api-keys"}}"#;

fn answer(h: &mut Harness<ApiKeyAuth>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = TestRequest::method(method, path).body(body.to_string());
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

/// The last log line, rendered.
fn last_log(h: &Harness<ApiKeyAuth>) -> String {
    h.log_lines().last().expect("a log line").to_string()
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
        .on_request(with_key(&key).header("x-user-role", "admin"))
        .request()
        .expect("let through")
        .clone();
    assert_eq!(
        request.headers.get("x-user-id").as_deref(),
        Some("billing-svc")
    );
    assert_eq!(request.headers.get("x-user-role").as_deref(), Some("user"));
    assert_eq!(
        request.headers.get("x-user-permissions").as_deref(),
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
        let response = h.on_request(with_key(key)).response().cloned();
        let response = response.expect("refused");
        assert_eq!(response.status, 401);
        last_log(h)
    };
    assert!(refused(&mut h, &key_a).contains("was revoked"));
    assert!(h.on_request(with_key(&key_b)).request().is_some());
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
        let response = h.on_request(with_key(&key)).response().cloned().unwrap();
        assert_eq!(response.status, 401);
        assert!(last_log(&h).contains("consumer \"partner\" was revoked"));
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
        let response = h.on_request(request).response().cloned();
        assert_eq!(response.map(|r| r.status), Some(401), "{name}");
        let line = last_log(&h);
        assert!(line.contains(reason), "{name}: {line}");
        assert!(!line.contains(secret), "{name}: the log holds the key");
    }
    assert!(h.on_request(with_key(&good)).request().is_some());
    h.ctx.vars.clear();
    h.advance_ms(61_000);
    assert!(
        h.on_request(with_key(&good)).response().is_some(),
        "expired"
    );
    assert!(last_log(&h).contains("expired"));
}

#[test]
fn optional_lets_keyless_requests_on_and_an_earlier_auth_wins() {
    let mut h = Harness::<ApiKeyAuth>::new(r#"{"optional": true}"#).unwrap();
    let request = h.on_request(TestRequest::get("/").header("x-user-id", "forged"));
    let request = request.request().expect("passed on").clone();
    assert!(!request.headers.contains("x-user-id"));
    assert_eq!(h.ctx.var("auth_method"), None);
    // A bad key is refused even so.
    assert!(h.on_request(with_key("wgk_nope")).response().is_some());
    h.ctx.vars.clear();
    h.ctx.vars.push(("auth_method".into(), "jwt".into()));
    assert!(h.on_request(with_key("wgk_nope")).request().is_some());
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

/// The refusal of `request`: 401 `UNAUTHORIZED`, nothing recorded; (client message,
/// log line).
fn refused(h: &mut Harness<ApiKeyAuth>, request: TestRequest) -> (String, String) {
    h.ctx.vars.clear();
    let outcome = h.on_request(request);
    let response = outcome.response().expect("refused");
    assert_eq!(response.status, 401);
    let body: Value = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert!(h.ctx.vars.is_empty(), "half recorded: {:?}", h.ctx.vars);
    let line = h.log_lines().last().expect("a log line").clone();
    assert_eq!(line.message, "api key refused");
    (
        body["error"].as_str().unwrap().to_string(),
        line.to_string(),
    )
}

#[test]
fn created_and_revoked_keys_are_written_durably() {
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    assert_eq!(h.durable_writes(), 0);
    let (_, id) = create(&mut h, json!({"consumer": "svc"}));
    let created = h.durable_writes();
    assert!(created >= 1, "the 201 came before the key was on disk");

    let path = format!("/admin/api-keys/{id}");
    assert_eq!(answer(&mut h, "DELETE", &path, Value::Null).0, 200);
    let revoked = h.durable_writes();
    assert!(revoked > created, "the revocation is not durable");

    assert_eq!(
        answer(
            &mut h,
            "DELETE",
            "/admin/api-keys/consumers/svc",
            Value::Null
        )
        .0,
        200
    );
    assert!(
        h.durable_writes() > revoked,
        "the consumer's revocation is not durable"
    );

    // Reads and refusals keep nothing, so they write nothing.
    let before = h.durable_writes();
    answer(&mut h, "GET", "/admin/api-keys", Value::Null);
    answer(&mut h, "GET", &path, Value::Null);
    answer(
        &mut h,
        "POST",
        "/admin/api-keys",
        json!({"consumer": "a b"}),
    );
    assert_eq!(h.durable_writes(), before);
}

#[test]
fn a_separator_in_a_keys_role_or_permissions_is_refused() {
    // The management API refuses to make such a key.
    let mut h = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    for (form, field) in [
        (json!({"consumer": "svc", "role": "user,admin"}), "role"),
        (json!({"consumer": "svc", "role": "user admin"}), "role"),
        (
            json!({"consumer": "svc", "permissions": ["invoice:read,admin:all"]}),
            "permissions",
        ),
        (
            json!({"consumer": "svc", "permissions": [""]}),
            "permissions",
        ),
    ] {
        let (status, body) = answer(&mut h, "POST", "/admin/api-keys", form.clone());
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{form}"
        );
        let why = body["data"]["fields"][field].as_str().unwrap_or_default();
        assert!(why.contains("is not allowed"), "{form}: {body}");
    }
    assert!(keys::all().unwrap().is_empty(), "no key was made");

    // A key stored with such data (by an older version, or by hand) is refused, and
    // nothing of its identity is recorded.
    reconfigure(&mut h, "{}");
    for (role, permissions, reason) in [
        (
            Some("user,admin"),
            vec![],
            "role \"user,admin\" is not allowed",
        ),
        (
            Some("user"),
            vec!["invoice:read,admin:all"],
            "permission \"invoice:read,admin:all\" is not allowed",
        ),
    ] {
        let (key, id) = keys::generate().unwrap();
        let record = keys::Record {
            id: id.clone(),
            hash: keys::hash(&key),
            consumer: "svc".into(),
            role: role.map(String::from),
            permissions: permissions.into_iter().map(String::from).collect(),
            tier: Some("pro".into()),
            name: None,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at_ms: None,
            revoked_at: None,
        };
        assert!(keys::store(&record, true).unwrap());
        let (message, line) = refused(&mut h, with_key(&key).header("x-user-role", "admin"));
        assert!(
            message.contains("roles and permissions may not hold"),
            "{message}"
        );
        assert!(line.contains(&format!("key {id}")), "{line}");
        assert!(line.contains(reason), "{line}");
        assert!(!line.contains(&key), "the log holds the key");
    }
}

#[test]
fn a_key_header_that_is_not_utf8_is_never_absent() {
    let mut manage = Harness::<ApiKeyAuth>::new(MANAGE).unwrap();
    let (good, _) = create(&mut manage, json!({"consumer": "svc"}));
    let mut h = manage;
    reconfigure(&mut h, r#"{"optional": true}"#);
    let not_utf8 = b"wgk_\xff\xfe".to_vec();
    let (_, line) = refused(
        &mut h,
        TestRequest::get("/").header("x-api-key", not_utf8.clone()),
    );
    assert!(line.contains("not UTF-8"), "{line}");
    // A second key header, UTF-8 or not, is refused as several.
    for (first, second) in [
        (good.as_bytes().to_vec(), not_utf8.clone()),
        (not_utf8.clone(), good.as_bytes().to_vec()),
        (good.as_bytes().to_vec(), good.as_bytes().to_vec()),
    ] {
        let request = TestRequest::get("/")
            .header("x-api-key", first)
            .header("X-API-Key", second);
        let (_, line) = refused(&mut h, request);
        assert!(line.contains("several key headers"), "{line}");
    }
    // Only an absent header passes on unauthenticated; one good key authenticates.
    h.ctx.vars.clear();
    assert!(h.on_request(TestRequest::get("/")).continues());
    assert_eq!(h.ctx.var("auth_method"), None);
    assert!(h.on_request(with_key(&good)).continues());
    assert_eq!(h.ctx.var("auth_method"), Some("api-key"));
}
