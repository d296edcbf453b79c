use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};
use wasmgate_plugin_sdk::log::Value as LogValue;
use wasmgate_plugin_sdk::testing::{DEFAULT_TIME_MS, Harness, TestRequest};

use super::*;

const SECRET: &[u8] = b"identity test secret, more than 32 bytes long";

fn config() -> Value {
    json!({"secret": "jwt", "audience": "api", "token_ttl_seconds": 600,
           "role_permissions": {"admin": ["*"]},
           "argon2": {"memory_kib": 256, "iterations": 1, "parallelism": 1}})
}

fn harness() -> Harness<IdentityService> {
    Harness::with_secrets(&config().to_string(), &[("jwt", SECRET)]).unwrap()
}

/// (status, body) of one call.
fn call(h: &mut Harness<IdentityService>, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = TestRequest::method(method, path).body(body.to_string());
    let outcome = h.on_request(request);
    let response = outcome.response().expect("identity answers every request");
    let body = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
    (response.status, body)
}

fn register(h: &mut Harness<IdentityService>, name: &str) -> (u16, Value) {
    call(
        h,
        "POST",
        "/auth/register",
        json!({"username": name, "email": format!("{name}@example.com"), "password": "s3cret-pass"}),
    )
}

/// What `jwt-auth` records for a token this plugin issued.
fn authenticate(h: &mut Harness<IdentityService>, token: &str) {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["api"]);
    validation.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET), &validation)
            .unwrap()
            .claims;
    h.ctx.vars = vec![
        ("auth_method".into(), "jwt".into()),
        ("user_id".into(), claims["sub"].as_str().unwrap().into()),
        ("token_jti".into(), claims["jti"].as_str().unwrap().into()),
        ("token_exp".into(), claims["exp"].to_string()),
    ];
}

fn claims(token: &str) -> Value {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["api"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET), &validation)
        .unwrap()
        .claims
}

#[test]
fn the_first_user_is_admin_and_later_ones_are_users() {
    let mut h = harness();
    let (status, body) = register(&mut h, "alice");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "user registered");
    assert_eq!(body["request_id"], "test-request-1");
    let user = &body["data"]["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "admin");
    assert!(user.get("password_hash").is_none(), "{body}");
    let token = claims(body["data"]["token"].as_str().unwrap());
    assert_eq!(token["role"], "admin");
    assert_eq!(token["permissions"], json!(["*"]));
    assert_eq!(token["iss"], "wasmgate");
    assert_eq!(token["exp"], DEFAULT_TIME_MS / 1000 + 600);
    assert_eq!(token["sub"], user["id"]);

    let (status, body) = register(&mut h, "bob");
    assert_eq!(status, 201);
    assert_eq!(body["data"]["user"]["role"], "user");
    assert!(
        claims(body["data"]["token"].as_str().unwrap())
            .get("permissions")
            .is_none()
    );
    // Nothing in the store holds a password in plain text.
    for (key, value) in kv::scan("", None, 100).unwrap() {
        assert!(
            !String::from_utf8_lossy(&value).contains("s3cret-pass"),
            "{key}"
        );
    }
}

#[test]
fn duplicates_are_conflicts_and_leave_nothing_behind() {
    let mut h = harness();
    register(&mut h, "alice");
    let (status, body) = register(&mut h, "ALICE");
    assert_eq!((status, body["code"].as_str()), (409, Some("CONFLICT")));
    assert_eq!(body["error"], "username already taken");
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "carol", "email": "Alice@Example.com", "password": "s3cret-pass"}),
    );
    assert_eq!(status, 409);
    assert_eq!(body["error"], "email already registered");
    // carol's name was claimed and then given back.
    assert_eq!(register(&mut h, "carol").0, 201);
}

#[test]
fn bad_forms_get_field_errors() {
    let mut h = harness();
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "x", "email": "not-an-address", "password": "short"}),
    );
    assert_eq!(status, 400);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    let fields = &body["data"]["fields"];
    assert_eq!(fields["username"], "must be 3 to 32 characters");
    assert_eq!(fields["email"], "is not an email address");
    assert_eq!(fields["password"], "must be at least 8 characters");
    for (form, field, message) in [
        (
            json!({"username": "-dash", "email": "a@b.co", "password": "abcdefg1"}),
            "username",
            "must start with a letter or a digit",
        ),
        (
            json!({"username": "a b c", "email": "a@b.co", "password": "abcdefg1"}),
            "username",
            "may hold only",
        ),
        (
            json!({"username": "abc", "email": "a@b", "password": "abcdefg1"}),
            "email",
            "is not an email address",
        ),
        (
            json!({"username": "abc", "email": "a@@b.co", "password": "abcdefg1"}),
            "email",
            "is not an email address",
        ),
        (
            json!({"username": "abc", "email": "a@b.co", "password": "abcdefgh"}),
            "password",
            "a letter and a digit",
        ),
        (
            json!({"username": "abc", "email": "a@b.co", "password": "x1".repeat(65)}),
            "password",
            "at most 128",
        ),
        (
            json!({"username": "abc", "email": "a@b.co"}),
            "password",
            "at least 8",
        ),
    ] {
        let (status, body) = call(&mut h, "POST", "/auth/register", form.clone());
        assert_eq!(status, 400, "{form}");
        let got = body["data"]["fields"][field].as_str().unwrap_or_default();
        assert!(got.contains(message), "{form}: {body}");
    }
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!(["not", "an", "object"]),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("the body must be a JSON object"))
    );
}

#[test]
fn login_by_email_or_username_and_refusals_look_alike() {
    let mut h = harness();
    register(&mut h, "alice");
    for login in [
        json!({"email": "ALICE@example.com"}),
        json!({"username": "Alice"}),
    ] {
        let mut form = login.clone();
        form["password"] = "s3cret-pass".into();
        let (status, body) = call(&mut h, "POST", "/auth/login", form);
        assert_eq!(status, 200, "{login}: {body}");
        assert_eq!(body["data"]["user"]["username"], "alice");
        assert!(body["data"]["token"].is_string());
    }
    let wrong = call(
        &mut h,
        "POST",
        "/auth/login",
        json!({"email": "alice@example.com", "password": "wrong-pass1"}),
    );
    let nobody = call(
        &mut h,
        "POST",
        "/auth/login",
        json!({"email": "eve@example.com", "password": "wrong-pass1"}),
    );
    assert_eq!(wrong.0, 401);
    assert_eq!(nobody.0, 401);
    assert_eq!(
        wrong.1["error"], nobody.1["error"],
        "no hint which one was wrong"
    );
    let (status, body) = call(&mut h, "POST", "/auth/login", json!({"password": "x"}));
    assert_eq!(status, 400);
    assert!(body["data"]["fields"]["email"].is_string());
}

#[test]
fn me_logout_and_refresh_work_on_the_callers_token() {
    let mut h = harness();
    let (_, body) = register(&mut h, "alice");
    let token = body["data"]["token"].as_str().unwrap().to_string();
    authenticate(&mut h, &token);
    let (status, body) = call(&mut h, "GET", "/auth/me", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["email"], "alice@example.com");

    let (status, body) = call(&mut h, "POST", "/auth/refresh", Value::Null);
    assert_eq!(status, 200, "{body}");
    let fresh = body["data"]["token"].as_str().unwrap().to_string();
    assert_ne!(fresh, token);
    let old_jti = claims(&token)["jti"].as_str().unwrap().to_string();
    assert!(
        h.kv_get(&format!("revoked:{old_jti}")).is_some(),
        "refresh revokes the old token"
    );

    authenticate(&mut h, &fresh);
    let (status, body) = call(&mut h, "POST", "/auth/logout", Value::Null);
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("logged out"))
    );
    let jti = claims(&fresh)["jti"].as_str().unwrap().to_string();
    assert!(h.kv_get(&format!("revoked:{jti}")).is_some());
    // The revocation outlives the token: gone only after exp (+ 5 minutes).
    h.advance_ms(600_000 + 299_000);
    assert!(h.kv_get(&format!("revoked:{jti}")).is_some());
    h.advance_ms(2_000);
    assert!(h.kv_get(&format!("revoked:{jti}")).is_none());
}

#[test]
fn operations_need_their_method_and_the_caller() {
    let mut h = harness();
    h.ctx.vars.clear();
    assert_eq!(call(&mut h, "GET", "/auth/me", Value::Null).0, 401);
    assert_eq!(call(&mut h, "POST", "/auth/logout", Value::Null).0, 401);
    let (status, body) = call(&mut h, "GET", "/auth/login", Value::Null);
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
    assert_eq!(call(&mut h, "POST", "/auth/whatever", Value::Null).0, 404);
}

#[test]
fn configs_that_cannot_work_are_refused() {
    for (config, expected) in [
        (json!({}), "HS256 needs `secret`"),
        (json!({"secret": "missing"}), "not granted"),
        (json!({"secret": "short"}), "at least 32"),
        (
            json!({"alg": "RS256", "secret": "jwt"}),
            "RS256 needs `private_key`",
        ),
        (
            json!({"alg": "RS256", "private_key": "jwt"}),
            "not a PEM private key",
        ),
        (json!({"alg": "XX1", "secret": "jwt"}), "unknown algorithm"),
        (
            json!({"secret": "jwt", "min_password_length": 4}),
            "between 8 and 128",
        ),
        (
            json!({"secret": "jwt", "argon2": {"memory_kib": 1}}),
            "argon2",
        ),
        (
            json!({"secret": "jwt", "default_role": "user,admin"}),
            "default_role: role \"user,admin\" is not allowed",
        ),
        (
            json!({"secret": "jwt", "first_user_role": "super user"}),
            "first_user_role: role \"super user\" is not allowed",
        ),
        (
            json!({"secret": "jwt", "role_permissions": {"admin": ["user:read,user:write"]}}),
            "role_permissions.admin: permission \"user:read,user:write\" is not allowed",
        ),
    ] {
        let error = Harness::<IdentityService>::with_secrets(
            &config.to_string(),
            &[("jwt", SECRET), ("short", b"tiny")],
        )
        .err()
        .unwrap_or_else(|| panic!("{config} was accepted"));
        assert!(error.contains(expected), "{config}: {error}");
    }
}

/// The text of field `name` of the last log line with `message`.
fn logged(h: &Harness<IdentityService>, message: &str, name: &str) -> Option<String> {
    let lines = h.log_lines();
    let line = lines.iter().rev().find(|line| line.message == message)?;
    match line.field(name)? {
        LogValue::Text(text) => Some(text.clone()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn an_acknowledged_account_is_written_durably() {
    let mut h = harness();
    assert_eq!(h.durable_writes(), 0);
    let (status, body) = register(&mut h, "alice");
    assert_eq!(status, 201);
    // The username and email claims, the user record, the first-user claim and the
    // record again with the admin role: all on disk before the 201.
    let after_first = h.durable_writes();
    assert!(after_first >= 4, "{after_first} durable writes");
    let id = body["data"]["user"]["id"].as_str().unwrap();
    assert_eq!(h.kv_get("users:first").as_deref(), Some(id.as_bytes()));
    assert!(h.kv_get(&format!("user:{id}")).is_some());

    let (status, _) = register(&mut h, "bob");
    assert_eq!(status, 201);
    let after_second = h.durable_writes();
    assert!(
        after_second >= after_first + 3,
        "{after_second} durable writes"
    );

    // A conflict is acknowledged as nothing kept, and gives its claim back durably.
    let (status, _) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "carol", "email": "bob@example.com", "password": "s3cret-pass"}),
    );
    assert_eq!(status, 409);
    assert!(h.kv_get("username:carol").is_none());
    assert!(h.durable_writes() > after_second);

    // Form errors write nothing.
    let before = h.durable_writes();
    call(&mut h, "POST", "/auth/register", json!({"username": "x"}));
    assert_eq!(h.durable_writes(), before);
}

#[test]
fn a_count_lost_in_a_crash_makes_no_second_admin() {
    let mut h = harness();
    assert_eq!(register(&mut h, "alice").1["data"]["user"]["role"], "admin");
    // `users:count` is not durable: after a kill -9 it may be gone, while the durable
    // accounts and the first-user claim are still there.
    kv::delete("users:count").unwrap();
    let (status, body) = register(&mut h, "mallory");
    assert_eq!(status, 201);
    assert_eq!(body["data"]["user"]["role"], "user");
    let token = claims(body["data"]["token"].as_str().unwrap());
    assert_eq!(token["role"], "user");
}

#[test]
fn logout_and_refresh_revoke_durably() {
    let mut h = harness();
    let (_, body) = register(&mut h, "alice");
    let token = body["data"]["token"].as_str().unwrap().to_string();

    authenticate(&mut h, &token);
    let before = h.durable_writes();
    let (status, body) = call(&mut h, "POST", "/auth/refresh", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(h.durable_writes(), before + 1, "the old token's revocation");
    let fresh = body["data"]["token"].as_str().unwrap().to_string();

    authenticate(&mut h, &fresh);
    let before = h.durable_writes();
    assert_eq!(call(&mut h, "POST", "/auth/logout", Value::Null).0, 200);
    assert_eq!(h.durable_writes(), before + 1, "the revocation");
    let jti = claims(&fresh)["jti"].as_str().unwrap().to_string();
    assert!(h.kv_get(&format!("revoked:{jti}")).is_some());

    // `me` keeps nothing, so it writes nothing.
    let before = h.durable_writes();
    assert_eq!(call(&mut h, "GET", "/auth/me", Value::Null).0, 200);
    assert_eq!(h.durable_writes(), before);
}

#[test]
fn logins_and_registrations_are_logged_with_fields() {
    let mut h = harness();
    let (_, body) = register(&mut h, "alice");
    let id = body["data"]["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(logged(&h, "user registered", "user"), Some(id.clone()));
    assert_eq!(
        logged(&h, "user registered", "username").as_deref(),
        Some("alice")
    );
    assert_eq!(
        logged(&h, "user registered", "role").as_deref(),
        Some("admin")
    );

    let form = json!({"username": "alice", "password": "s3cret-pass"});
    assert_eq!(call(&mut h, "POST", "/auth/login", form).0, 200);
    assert_eq!(logged(&h, "login success", "user"), Some(id));

    let form = json!({"username": "alice", "password": "wrong-pass1"});
    assert_eq!(call(&mut h, "POST", "/auth/login", form).0, 401);
    assert_eq!(
        logged(&h, "login failure", "user").as_deref(),
        Some("alice")
    );
    assert_eq!(
        logged(&h, "login failure", "reason").as_deref(),
        Some("wrong password")
    );
    let form = json!({"email": "eve@example.com", "password": "wrong-pass1"});
    assert_eq!(call(&mut h, "POST", "/auth/login", form).0, 401);
    assert_eq!(
        logged(&h, "login failure", "user").as_deref(),
        Some("eve@example.com")
    );
    assert_eq!(
        logged(&h, "login failure", "reason").as_deref(),
        Some("unknown user")
    );
    // AIMS's event names: an attempt, then a success or a failure, per login.
    let events: Vec<String> = h
        .log_lines()
        .iter()
        .filter_map(|line| match line.field("event")? {
            LogValue::Text(event) => Some(event.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [
            "login_attempt",
            "login_success",
            "login_attempt",
            "login_failed",
            "login_attempt",
            "login_failed"
        ]
    );
    assert_eq!(
        logged(&h, "login attempt", "user").as_deref(),
        Some("eve@example.com")
    );
    // No password, in any line or field.
    for line in h.log_lines() {
        let text = format!("{line:?}");
        assert!(
            !text.contains("s3cret-pass") && !text.contains("wrong-pass1"),
            "{text}"
        );
    }
}

// ---- Item 5: failed logins are limited, per account and per client ----

/// A harness whose logins are limited as `limits` says (the rest as `config()`).
fn limited(limits: Value) -> Harness<IdentityService> {
    let mut config = config();
    config["login_limits"] = limits;
    Harness::with_secrets(&config.to_string(), &[("jwt", SECRET)]).unwrap()
}

/// (status, Retry-After, body as text) of one login from `client`.
fn login_from(
    h: &mut Harness<IdentityService>,
    client: &str,
    login: &str,
    password: &str,
) -> (u16, Option<String>, String) {
    h.ctx.client_addr = client.into();
    let field = if login.contains('@') {
        "email"
    } else {
        "username"
    };
    let form = json!({field: login, "password": password});
    let outcome = h.on_request(TestRequest::post("/auth/login").body(form.to_string()));
    let response = outcome.response().expect("identity answers every request");
    (
        response.status,
        response.headers.get("retry-after"),
        String::from_utf8(response.body.clone().unwrap()).unwrap(),
    )
}

fn login(h: &mut Harness<IdentityService>, login: &str, password: &str) -> (u16, Option<String>) {
    let (status, retry_after, _) = login_from(h, "127.0.0.1:40000", login, password);
    (status, retry_after)
}

const RIGHT: &str = "s3cret-pass";
const WRONG: &str = "wrong-pass1";

#[test]
fn failed_logins_lock_the_account_even_for_the_right_password() {
    let mut h = limited(json!({"account_failures": 3, "client_failures": 100,
                               "window_seconds": 60, "lock_seconds": 30}));
    register(&mut h, "alice");
    for _ in 0..3 {
        assert_eq!(login(&mut h, "alice", WRONG), (401, None));
    }
    let (status, retry_after, body) = login_from(&mut h, "127.0.0.1:40000", "alice", WRONG);
    assert_eq!((status, retry_after.as_deref()), (429, Some("30")));
    let envelope: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["code"], "RATE_LIMITED");
    assert_eq!(envelope["request_id"], "test-request-1");
    assert!(envelope["timestamp"].is_string());
    // The lock holds against the right password, by any name of the account …
    assert_eq!(login(&mut h, "alice", RIGHT), (429, Some("30".into())));
    assert_eq!(login(&mut h, "ALICE", RIGHT).0, 429);
    // … and counts down; a refused login does not prolong it.
    h.advance_ms(29_500);
    assert_eq!(login(&mut h, "alice", RIGHT), (429, Some("1".into())));
    h.advance_ms(600);
    assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
    assert_eq!(h.counter("login_locks_total", &[("scope", "account")]), 1);
    assert_eq!(
        logged(&h, "login failure", "locked").as_deref(),
        Some("account")
    );
}

#[test]
fn the_limit_is_the_same_for_unknown_and_known_names() {
    let mut h = limited(json!({"account_failures": 2, "client_failures": 100}));
    register(&mut h, "alice");
    let mut answers = Vec::new();
    for name in ["alice", "nobody"] {
        let failures: Vec<_> = (0..2)
            .map(|_| login_from(&mut h, "127.0.0.1:40000", name, WRONG))
            .collect();
        let locked = login_from(&mut h, "127.0.0.1:40000", name, WRONG);
        let locked_right = login_from(&mut h, "127.0.0.1:40000", name, RIGHT);
        answers.push((failures, locked, locked_right));
    }
    // Byte for byte (the harness clock stands still): nothing tells them apart.
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0[0].0, 401);
    assert_eq!(answers[0].1.0, 429);
    assert_eq!(answers[0].2.0, 429);
    assert_eq!(answers[0].1.1.as_deref(), Some("900"), "the default lock");
}

#[test]
fn an_unknown_name_costs_the_same_hash_as_a_known_one() {
    let mut h = harness();
    let (_, body) = register(&mut h, "alice");
    let id = body["data"]["user"]["id"].as_str().unwrap();
    let stored: User = serde_json::from_slice(&h.kv_get(&format!("user:{id}")).unwrap()).unwrap();
    let decoy = PasswordHash::new(&h.plugin().decoy_hash).unwrap();
    let real = PasswordHash::new(&stored.password_hash).unwrap();
    assert_eq!(decoy.algorithm, real.algorithm);
    assert_eq!(decoy.params, real.params, "same Argon2id cost");
    assert_eq!(decoy.params.get_decimal("m"), Some(256));
}

#[test]
fn the_client_limit_spans_accounts() {
    let mut h = limited(json!({"account_failures": 10, "client_failures": 3,
                               "lock_seconds": 60}));
    register(&mut h, "alice");
    register(&mut h, "bob");
    let attacker = "203.0.113.7:5000";
    for name in ["alice", "bob", "carol@example.com"] {
        assert_eq!(login_from(&mut h, attacker, name, WRONG).0, 401);
    }
    // A fourth account from the same address (another port): refused, even rightly.
    let (status, retry_after, body) = login_from(&mut h, "203.0.113.7:6000", "bob", RIGHT);
    assert_eq!((status, retry_after.as_deref()), (429, Some("60")));
    assert!(body.contains("RATE_LIMITED"), "{body}");
    // The client's lock looks like an account's: the same message.
    let envelope: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelope["error"], "too many failed logins; try again later");
    // Another client is not touched, and neither are the accounts.
    assert_eq!(login_from(&mut h, "198.51.100.1:5000", "bob", RIGHT).0, 200);
    assert_eq!(h.counter("login_locks_total", &[("scope", "client")]), 1);

    // IPv6 clients are counted by /64.
    for host in [
        "[2001:db8:0:1::1]:1",
        "[2001:db8:0:1::2]:2",
        "[2001:db8:0:1:ffff::3]:3",
    ] {
        assert_eq!(login_from(&mut h, host, "nobody", WRONG).0, 401);
    }
    assert_eq!(
        login_from(&mut h, "[2001:db8:0:1::9]:9", "alice", RIGHT).0,
        429
    );
    assert_eq!(
        login_from(&mut h, "[2001:db8:0:2::1]:9", "alice", RIGHT).0,
        200
    );
    // An IPv4-mapped IPv6 address is the IPv4 client.
    assert_eq!(
        login_from(&mut h, "[::ffff:203.0.113.7]:1", "alice", RIGHT).0,
        429
    );
}

#[test]
fn a_success_clears_the_accounts_failures_by_every_name() {
    let mut h = limited(json!({"account_failures": 3, "client_failures": 100}));
    register(&mut h, "alice");
    for login_name in ["alice", "alice@example.com"] {
        assert_eq!(login(&mut h, login_name, WRONG).0, 401);
        assert_eq!(login(&mut h, login_name, WRONG).0, 401);
    }
    // Right, by the username: the failures of both names are forgotten.
    assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
    for login_name in ["alice", "alice@example.com"] {
        assert_eq!(login(&mut h, login_name, WRONG).0, 401);
        assert_eq!(login(&mut h, login_name, WRONG).0, 401);
    }
    assert_eq!(login(&mut h, "alice@example.com", WRONG).0, 401);
    assert_eq!(login(&mut h, "alice@example.com", RIGHT).0, 429);
    // The username's own count was not touched by the address's lock.
    assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
}

#[test]
fn a_success_gives_the_client_its_attempt_back() {
    let mut h = limited(json!({"account_failures": 100, "client_failures": 3}));
    register(&mut h, "alice");
    // Many right logins from one client are no failures.
    for _ in 0..10 {
        assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
    }
    assert_eq!(login(&mut h, "nobody", WRONG).0, 401);
    assert_eq!(login(&mut h, "nobody", WRONG).0, 401);
    assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
    assert_eq!(login(&mut h, "nobody", WRONG).0, 401);
    assert_eq!(login(&mut h, "alice", RIGHT).0, 429);
}

#[test]
fn failures_are_forgotten_when_the_window_passes() {
    let mut h = limited(json!({"account_failures": 3, "client_failures": 100,
                               "window_seconds": 60}));
    register(&mut h, "alice");
    assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    h.advance_ms(60_001);
    assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    assert_eq!(
        login(&mut h, "alice", RIGHT).0,
        200,
        "2 + 2 failures, in two windows"
    );
    // Within one window, the limit holds.
    for _ in 0..3 {
        assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    }
    assert_eq!(login(&mut h, "alice", RIGHT).0, 429);
}

#[test]
fn attempts_that_raced_past_the_lock_are_refused() {
    let mut h = limited(json!({"account_failures": 3, "client_failures": 100}));
    register(&mut h, "alice");
    // Three attempts were counted (each before its password was checked) and are
    // still hashing: the fourth is refused without a check, right or wrong.
    kv::set("login-failures:account:alice", b"3", None).unwrap();
    assert_eq!(login(&mut h, "alice", RIGHT).0, 429);
}

#[test]
fn limits_are_counted_outside_the_durable_store_and_can_be_off() {
    let mut h = limited(json!({"account_failures": 0, "client_failures": 0}));
    register(&mut h, "alice");
    let before = h.durable_writes();
    for _ in 0..30 {
        assert_eq!(login(&mut h, "alice", WRONG).0, 401);
    }
    assert_eq!(login(&mut h, "alice", RIGHT).0, 200);
    assert_eq!(h.durable_writes(), before, "failure counts are not durable");
    assert!(kv::scan("login-", None, 10).unwrap().is_empty());
}

#[test]
fn login_limits_in_the_config_are_checked() {
    for (limits, expected) in [
        (
            json!({"window_seconds": 0}),
            "login_limits.window_seconds must be between 1 and 604800",
        ),
        (
            json!({"lock_seconds": 604_801}),
            "login_limits.lock_seconds must be between 1 and 604800",
        ),
        (json!({"max_failures": 3}), "unknown field `max_failures`"),
        (json!({"account_failures": -1}), "invalid value"),
    ] {
        let mut config = config();
        config["login_limits"] = limits.clone();
        let error =
            Harness::<IdentityService>::with_secrets(&config.to_string(), &[("jwt", SECRET)])
                .err()
                .unwrap_or_else(|| panic!("{limits} was accepted"));
        assert!(error.contains(expected), "{limits}: {error}");
    }
    let defaults: Config = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        defaults.login_limits,
        LoginLimitsConfig {
            account_failures: 5,
            client_failures: 20,
            window_seconds: 900,
            lock_seconds: 900
        }
    );
}

// ---- Item 8: one name, whatever its spelling ----

#[test]
fn spellings_of_a_name_are_one_account() {
    let mut h = harness();
    assert_eq!(register(&mut h, "kelvin").0, 201);
    // KELVIN SIGN, full-width letters, a superscript: all "kelvin".
    for spelling in [
        "\u{212A}elvin",
        "\u{212A}ELVIN",
        "ＫＥＬＶＩＮ",
        "\u{1D37}elvin",
    ] {
        let (status, body) = call(
            &mut h,
            "POST",
            "/auth/register",
            json!({"username": spelling, "email": "other@example.com", "password": RIGHT}),
        );
        assert_eq!(status, 409, "{spelling}: {body}");
        assert_eq!(body["error"], "username already taken");
    }
    for spelling in [
        "\u{212A}elvin",
        "ＫＥＬＶＩＮ",
        "KELVIN",
        "kelvin@example.com",
        "\u{212A}ELVIN@EXAMPLE.COM",
    ] {
        let form = if spelling.contains('@') {
            json!({"email": spelling, "password": RIGHT})
        } else {
            json!({"username": spelling, "password": RIGHT})
        };
        let (status, body) = call(&mut h, "POST", "/auth/login", form);
        assert_eq!(status, 200, "{spelling}: {body}");
        assert_eq!(body["data"]["user"]["username"], "kelvin");
    }

    // Full case folding: ß is ss, so these addresses are one.
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "gretel", "email": "Straße@example.com", "password": RIGHT}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"]["user"]["email"], "Straße@example.com",
        "kept as typed"
    );
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "hansel", "email": "STRASSE@example.com", "password": RIGHT}),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "email already registered");
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/login",
        json!({"email": "strasse@EXAMPLE.com", "password": RIGHT}),
    );
    assert_eq!(
        (status, &body["data"]["user"]["username"]),
        (200, &json!("gretel"))
    );

    // A new name in a compatibility spelling is stored in its plain form.
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "\u{212A}arl", "email": "ｋａｒｌ@example.com", "password": RIGHT}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["user"]["username"], "Karl");
    assert_eq!(body["data"]["user"]["email"], "karl@example.com");
    assert!(h.kv_get("username:karl").is_some());
}

#[test]
fn names_with_invisible_or_unassigned_code_points_are_refused() {
    let mut h = harness();
    for (username, email, field, expected) in [
        (
            "ali\u{200B}ce",
            "a@example.com",
            "username",
            "must not contain U+200B",
        ),
        (
            "ali\u{7}ce",
            "a@example.com",
            "username",
            "must not contain control characters (U+0007)",
        ),
        (
            "\u{E000}bob",
            "a@example.com",
            "username",
            "must not contain U+E000",
        ),
        (
            "bob\u{0378}",
            "a@example.com",
            "username",
            "must not contain U+0378",
        ),
        (
            "bob\u{FFFF}",
            "a@example.com",
            "username",
            "must not contain U+FFFF",
        ),
        ("   ", "a@example.com", "username", "is required"),
        (
            "\u{0430}lice",
            "a@example.com",
            "username",
            "may hold only the letters a-z",
        ),
        (
            "stra\u{DF}e",
            "a@example.com",
            "username",
            "may hold only the letters a-z",
        ),
        (
            "alice",
            "a\u{202E}@example.com",
            "email",
            "must not contain U+202E",
        ),
        (
            "alice",
            "a\u{85}@example.com",
            "email",
            "control characters (U+0085)",
        ),
        (
            "alice",
            "a\u{00AD}b@example.com",
            "email",
            "must not contain U+00AD",
        ),
        ("alice", "", "email", "is required"),
    ] {
        let form = json!({"username": username, "email": email, "password": RIGHT});
        let (status, body) = call(&mut h, "POST", "/auth/register", form.clone());
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{form}"
        );
        let got = body["data"]["fields"][field].as_str().unwrap_or_default();
        assert!(got.contains(expected), "{form}: {body}");
    }
    // Nothing was claimed on the way.
    assert!(kv::scan("username:", None, 10).unwrap().is_empty());
    // A login name too long to be anyone's is a form error, not a lookup.
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/login",
        json!({"username": "a".repeat(400), "password": RIGHT}),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn canonical_forms_are_fixed_points() {
    // Every code point that may be registered: canonicalising twice changes nothing,
    // so "same canonical form" is an equivalence and a stored key is found again.
    let mut checked = 0;
    for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
        let text = c.to_string();
        if canonical::check(&text).is_ok() {
            let once = canonical::key(&text);
            assert_eq!(canonical::key(&once), once, "U+{:04X}", c as u32);
            checked += 1;
        }
    }
    assert!(checked > 100_000, "{checked}");
    for (a, b) in [
        ("\u{212A}", "k"),
        ("ß", "SS"),
        ("ﬁ", "FI"),
        ("e\u{301}", "\u{E9}"),
        ("ᴮᴵᴳᴮᴵᴿᴰ", "bigbird"),
        ("ΣΑΣ", "σας"),
        ("Ｋ", "k"),
    ] {
        assert_eq!(canonical::key(a), canonical::key(b), "{a} / {b}");
    }
    assert_ne!(
        canonical::key("\u{0430}"),
        canonical::key("a"),
        "other scripts stay apart"
    );
}

#[test]
fn accounts_from_before_canonical_keys_stay_reachable_and_keep_their_names() {
    let mut h = harness();
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "oldie", "email": "Straße@example.com", "password": RIGHT}),
    );
    assert_eq!(status, 201);
    let id = body["data"]["user"]["id"].as_str().unwrap().to_string();
    // As the plugin stored it before canonical keys: the lower case as typed.
    assert!(kv::delete("email:strasse@example.com").unwrap());
    kv::set("email:straße@example.com", id.as_bytes(), None).unwrap();
    kv::delete("users:canonical-keys").unwrap();

    // The old spelling still logs in; another spelling has no claim yet.
    let form = |email: &str| json!({"email": email, "password": RIGHT});
    assert_eq!(
        call(&mut h, "POST", "/auth/login", form("STRAßE@example.com")).0,
        200
    );
    assert_eq!(
        call(&mut h, "POST", "/auth/login", form("strasse@example.com")).0,
        401
    );

    // The next registration first gives old claims their canonical twins, so the
    // old account's address cannot be taken in another spelling …
    let (status, body) = call(
        &mut h,
        "POST",
        "/auth/register",
        json!({"username": "newbie", "email": "strasse@example.com", "password": RIGHT}),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("email already registered"))
    );
    assert_eq!(
        h.kv_get("email:strasse@example.com").as_deref(),
        Some(id.as_bytes())
    );
    assert!(h.kv_get("users:canonical-keys").is_some());
    // … and every spelling reaches it.
    for email in ["strasse@example.com", "Straße@example.com"] {
        let (status, body) = call(&mut h, "POST", "/auth/login", form(email));
        assert_eq!(
            (status, &body["data"]["user"]["id"]),
            (200, &json!(id)),
            "{email}"
        );
    }
}

#[test]
fn two_old_accounts_that_are_now_one_name_keep_their_own_spellings() {
    let mut h = harness();
    let id_of = |body: &Value| body["data"]["user"]["id"].as_str().unwrap().to_string();
    let register_with = |h: &mut Harness<IdentityService>, name: &str, email: &str| {
        let form = json!({"username": name, "email": email, "password": RIGHT});
        let (status, body) = call(h, "POST", "/auth/register", form);
        assert_eq!(status, 201, "{body}");
        body
    };
    let ascii = id_of(&register_with(&mut h, "ascii", "MASSE@example.com"));
    // Before canonical keys, "Maße@…" was another address than "MASSE@…": made here
    // by registering it elsewhere and moving its claim to the old key.
    let old = id_of(&register_with(&mut h, "older", "Maße@elsewhere.com"));
    assert!(kv::delete("email:masse@elsewhere.com").unwrap());
    kv::set("email:maße@example.com", old.as_bytes(), None).unwrap();
    kv::delete("users:canonical-keys").unwrap();
    register_with(&mut h, "trigger", "trigger@example.com");
    assert!(
        h.log_lines()
            .iter()
            .any(|line| line.message.contains("shares its canonical name")),
        "the clash is logged"
    );
    let form = |email: &str| json!({"email": email, "password": RIGHT});
    for (email, id) in [
        ("maße@example.com", &old),
        ("MAßE@example.com", &old),
        ("masse@example.com", &ascii),
        ("MASSE@EXAMPLE.COM", &ascii),
    ] {
        let (status, body) = call(&mut h, "POST", "/auth/login", form(email));
        assert_eq!((status, id_of(&body)), (200, id.clone()), "{email}");
    }
    assert_eq!(
        call(
            &mut h,
            "POST",
            "/auth/login",
            json!({"username": "older", "password": RIGHT})
        )
        .0,
        200
    );
}
