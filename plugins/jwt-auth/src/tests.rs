use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wasmgate_plugin_sdk::http::{self, OutboundResponse};
use wasmgate_plugin_sdk::log::Level;
use wasmgate_plugin_sdk::testing::{DEFAULT_TIME_MS, Harness, LogLine, SentRequest, TestRequest};

use super::*;

const HS_SECRET: &[u8] = b"an HMAC key that is long enough for HS512 tests!";
const RSA_PRIVATE: &str = include_str!("../testdata/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../testdata/rsa-public.pem");
const RSA2_PRIVATE: &str = include_str!("../testdata/rsa2-private.pem");
const EC256_PRIVATE: &str = include_str!("../testdata/ec256-private.pem");
const EC256_PUBLIC: &str = include_str!("../testdata/ec256-public.pem");
const EC384_PRIVATE: &str = include_str!("../testdata/ec384-private.pem");
const EC384_PUBLIC: &str = include_str!("../testdata/ec384-public.pem");
const ED_PRIVATE: &str = include_str!("../testdata/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../testdata/ed25519-public.pem");
const VECTORS: &str = include_str!("../testdata/vectors.json");

const NOW: u64 = DEFAULT_TIME_MS / 1000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The test key that signs `alg`.
fn signing_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HS_SECRET)
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC256_PRIVATE.as_bytes()).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(EC384_PRIVATE.as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    }
}

/// The config entry of the public key that verifies `alg`.
fn key_entry(alg: Algorithm, kid: Option<&str>) -> Value {
    let name = format!("{alg:?}");
    let mut entry = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            json!({"alg": name, "secret": "hs"})
        }
        Algorithm::ES256 => json!({"alg": name, "pem_text": EC256_PUBLIC}),
        Algorithm::ES384 => json!({"alg": name, "pem_text": EC384_PUBLIC}),
        Algorithm::EdDSA => json!({"alg": name, "pem_text": ED_PUBLIC}),
        _ => json!({"alg": name, "pem": "rsa"}),
    };
    if let Some(kid) = kid {
        entry["kid"] = kid.into();
    }
    entry
}

fn sign_with(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign(alg: Algorithm, claims: &Value) -> String {
    sign_with(alg, &signing_key(alg), claims, None)
}

/// Claims valid for an hour from the harness's clock.
fn claims() -> Value {
    json!({"sub": "42", "username": "alice", "role": "admin",
           "permissions": ["user:read", "audit:read"], "iss": "wasmgate", "aud": "api",
           "exp": NOW + 3600, "iat": NOW, "jti": "token-1"})
}

fn harness(config: Value) -> Harness<JwtAuth> {
    Harness::with_secrets(
        &config.to_string(),
        &[("hs", HS_SECRET), ("rsa", RSA_PUBLIC.as_bytes())],
    )
    .unwrap_or_else(|e| panic!("{config}: {e}"))
}

/// The standard route config: HS256 and RS256 keys, issuer and audience checked.
fn standard() -> Harness<JwtAuth> {
    harness(json!({
        "keys": [key_entry(Algorithm::HS256, None), key_entry(Algorithm::RS256, Some("rsa-1"))],
        "issuer": "wasmgate",
        "audience": ["api", "admin-api"],
        "skip_paths": ["/auth/login", "/public/*"],
    }))
}

fn with_token(token: &str) -> TestRequest {
    TestRequest::get("/users").header("authorization", format!("Bearer {token}"))
}

/// The refusal's log line; panics unless the request got the 401 envelope.
fn refused(h: &mut Harness<JwtAuth>, request: TestRequest) -> String {
    h.ctx.vars.clear();
    let outcome = h.on_request(request);
    let Some(response) = outcome.response() else {
        panic!("let through: {:?}", h.ctx.vars)
    };
    assert_eq!(response.status, 401);
    let body: Value = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(body["success"], false);
    assert!(
        response
            .headers
            .get("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert!(
        h.ctx.vars.is_empty(),
        "a refusal records nothing: {:?}",
        h.ctx.vars
    );
    let line = h.log_lines().last().expect("a log line").clone();
    assert_eq!(line.level, Level::Warn);
    assert_eq!(line.message, "token refused");
    line.to_string()
}

fn accepted(h: &mut Harness<JwtAuth>, request: TestRequest) -> SentRequest {
    h.ctx.vars.clear();
    let outcome = h.on_request(request);
    match outcome.request() {
        Some(request) => request.clone(),
        None => panic!(
            "refused: {} ({:?})",
            outcome.response().unwrap().body_text(),
            h.log_lines().last().map(LogLine::to_string)
        ),
    }
}

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    source: String,
    jwk: Value,
    alg: String,
    claims: bool,
    token: String,
}

#[test]
fn the_published_examples_verify() {
    let vectors: Vectors = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(vectors.vectors.len(), 5);
    for vector in vectors.vectors {
        let source = &vector.source;
        let config = json!({"keys": [{"jwk": vector.jwk, "alg": vector.alg}], "issuer": "joe"});
        let mut h = harness(config.clone());
        // The signature, on its own.
        let parsed = token::parse(&vector.token).unwrap_or_else(|e| panic!("{source}: {e}"));
        let candidates = token::candidates(&parsed, &h.plugin().keys).unwrap();
        token::verify(&parsed, &candidates).unwrap_or_else(|e| panic!("{source}: {e}"));
        // One changed bit in the signature, and it no longer verifies.
        let mut tampered = vector.token.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let parsed = token::parse(&tampered).unwrap();
        assert_eq!(
            token::verify(&parsed, &candidates),
            Err(Refusal::BadSignature),
            "{source}"
        );

        // Through the plugin.
        if vector.claims {
            // exp is 1300819380 (2011-03-22T18:43:00Z): accepted just before, with
            // its issuer, and expired today.
            h.set_time_ms(1_300_819_000_000);
            let request = accepted(&mut h, with_token(&vector.token));
            assert!(!request.headers.contains("x-user-id"), "{source}: no sub");
            assert_eq!(h.ctx.var("auth_method"), Some("jwt"), "{source}");
            h.set_time_ms(DEFAULT_TIME_MS);
            assert!(refused(&mut h, with_token(&vector.token)).contains("expired"));
        } else {
            // Not a claims set: the signature passes, the payload does not.
            let why = refused(&mut h, with_token(&vector.token));
            assert!(why.contains("not a JSON object"), "{source}: {why}");
        }
        let why = refused(&mut h, with_token(&tampered));
        assert!(why.contains("bad signature"), "{source}: {why}");
    }
}

#[test]
fn every_supported_algorithm_round_trips() {
    use Algorithm::*;
    for alg in [
        HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ] {
        let mut h = harness(json!({"keys": [key_entry(alg, None)]}));
        let token = sign(alg, &claims());
        let request = accepted(&mut h, with_token(&token));
        assert_eq!(
            request.headers.get("x-user-id").as_deref(),
            Some("42"),
            "{alg:?}"
        );
        // And a key of the same family does not take another algorithm.
        let other = match alg {
            HS256 => HS384,
            ES256 => ES384,
            EdDSA => HS256,
            _ => HS256,
        };
        let token = sign(other, &claims());
        let why = refused(&mut h, with_token(&token));
        assert!(
            why.contains("no key accepts"),
            "{alg:?} took {other:?}: {why}"
        );
    }
}

#[test]
fn the_identity_goes_upstream_and_forged_headers_do_not() {
    let mut h = standard();
    let token = sign(Algorithm::RS256, &claims());
    let request = accepted(
        &mut h,
        with_token(&token)
            .header("x-user-id", "1")
            .header("X-User-Role", "superuser")
            .header("x-username", "mallory"),
    );
    assert_eq!(request.headers.get("x-user-id").as_deref(), Some("42"));
    assert_eq!(request.headers.get("x-username").as_deref(), Some("alice"));
    assert_eq!(request.headers.get("x-user-role").as_deref(), Some("admin"));
    assert_eq!(
        request.headers.get("x-user-permissions").as_deref(),
        Some("user:read,audit:read")
    );
    assert_eq!(request.headers.get_all("x-user-role").len(), 1);
    assert_eq!(h.ctx.var("user_id"), Some("42"));
    assert_eq!(h.ctx.var("consumer"), Some("42"));
    assert_eq!(h.ctx.var("permissions"), Some("user:read,audit:read"));
    assert_eq!(h.ctx.var("token_jti"), Some("token-1"));
    assert_eq!(
        h.ctx.var("token_exp"),
        Some((NOW + 3600).to_string().as_str())
    );

    // A token without those claims: the forged headers are still gone.
    let mut bare = claims();
    for claim in ["username", "role", "permissions"] {
        bare.as_object_mut().unwrap().remove(claim);
    }
    let request = accepted(
        &mut h,
        with_token(&sign(Algorithm::HS256, &bare)).header("x-user-role", "admin"),
    );
    assert!(!request.headers.contains("x-user-role"));
    assert!(!request.headers.contains("x-username"));
}

#[test]
fn skipped_paths_and_optional_routes_pass_without_a_token_but_lose_forged_headers() {
    let mut h = standard();
    for path in ["/auth/login", "/public/x/y"] {
        let request = accepted(&mut h, TestRequest::get(path).header("x-user-id", "1"));
        assert!(!request.headers.contains("x-user-id"), "{path}");
        assert_eq!(h.ctx.var("auth_method"), None);
    }
    assert!(refused(&mut h, TestRequest::get("/auth/login2")).contains("no bearer token"));

    let mut optional =
        harness(json!({"keys": [key_entry(Algorithm::HS256, None)], "optional": true}));
    let request = accepted(
        &mut optional,
        TestRequest::get("/").header("x-user-id", "1"),
    );
    assert!(!request.headers.contains("x-user-id"));
    // A bad token is refused even so.
    assert!(refused(&mut optional, with_token("a.b.c")).contains("malformed"));
}

#[test]
fn with_query_token_a_request_without_authorization_may_carry_its_token_in_the_query() {
    let mut h =
        harness(json!({"keys": [key_entry(Algorithm::HS256, None)], "query_token": "token"}));
    let token = sign(Algorithm::HS256, &claims());
    let request = accepted(
        &mut h,
        TestRequest::get("/ws").query(&format!("room=1&token={token}")),
    );
    assert_eq!(request.headers.get("x-user-id").as_deref(), Some("42"));
    assert!(refused(&mut h, TestRequest::get("/ws").query("token=a.b.c")).contains("malformed"));
    assert!(refused(&mut h, TestRequest::get("/ws").query("tokens=x")).contains("no bearer token"));
    // The header, when there is one, is the only place looked at.
    assert!(
        refused(&mut h, with_token("a.b.c").query(&format!("token={token}"))).contains("malformed")
    );
    // Without the setting, a token in the query is not looked at.
    let mut standard = standard();
    assert!(
        refused(
            &mut standard,
            TestRequest::get("/").query(&format!("token={token}"))
        )
        .contains("no bearer token")
    );
    let config = json!({"keys": [key_entry(Algorithm::HS256, None)], "query_token": "a=b"});
    let bad = Harness::<JwtAuth>::with_secrets(&config.to_string(), &[("hs", HS_SECRET)])
        .err()
        .expect("refused");
    assert!(bad.contains("query_token"), "{bad}");
}

#[test]
fn with_first_message_a_websocket_sends_its_token_in_its_first_message() {
    use wasmgate_plugin_sdk::websocket::{SocketMessage, Verdict};
    let config = json!({"keys": [key_entry(Algorithm::HS256, None)], "first_message": true});
    let token = sign(Algorithm::HS256, &claims());
    let auth =
        |token: &str| SocketMessage::Text(json!({"type": "auth", "token": token}).to_string());

    // A WebSocket handshake without a token is let through, watched; its first
    // message carries the identity into the upstream's handshake and is kept back.
    let mut h = harness(config.clone());
    h.ctx.websocket = true;
    let outcome = h.on_request(TestRequest::get("/ws").header("x-user-id", "forged"));
    assert!(outcome.continues() && outcome.watching);
    assert!(!outcome.sent.headers.contains("x-user-id"));
    let accepted = h.on_message(auth(&token));
    assert_eq!(accepted.verdict, Verdict::Accept);
    assert_eq!(
        accepted.sent.headers.get("x-user-id").as_deref(),
        Some("42")
    );
    assert_eq!(h.ctx.var("auth_method"), Some("jwt"));

    // A first message that is no auth message, or a bad token: 1008.
    for (message, why) in [
        (
            SocketMessage::Text("hello".into()),
            "authentication required",
        ),
        (
            SocketMessage::Text(json!({"type": "chat", "token": token}).to_string()),
            "authentication required",
        ),
        (
            SocketMessage::Binary(b"{}".to_vec()),
            "authentication required",
        ),
        (auth("a.b.c"), "invalid token"),
        (
            auth(&sign(
                Algorithm::HS256,
                &claims_with(json!({"exp": NOW - 600})),
            )),
            "token expired",
        ),
    ] {
        let mut h = harness(config.clone());
        h.ctx.websocket = true;
        assert!(h.on_request(TestRequest::get("/ws")).watching);
        match h.on_message(message.clone()).verdict {
            Verdict::Close { code, reason } => {
                assert_eq!(code, 1008, "{message:?}");
                assert!(reason.contains(why), "{message:?}: {reason}");
            }
            other => panic!("{message:?}: {other:?}"),
        }
        assert_eq!(h.ctx.var("auth_method"), None);
    }

    // Not a WebSocket: no token is still a 401; and a token in the handshake needs no
    // message.
    let mut h = harness(config);
    assert!(refused(&mut h, TestRequest::get("/ws")).contains("no bearer token"));
    h.ctx.websocket = true;
    let outcome = h.on_request(with_token(&token));
    assert!(outcome.continues() && !outcome.watching);
}

#[test]
fn a_request_an_earlier_plugin_authenticated_is_left_alone() {
    let mut h = standard();
    h.ctx.vars.push(("auth_method".into(), "api-key".into()));
    let outcome = h.on_request(TestRequest::get("/").header("x-user-id", "svc"));
    let request = outcome.request().expect("continued");
    assert_eq!(request.headers.get("x-user-id").as_deref(), Some("svc"));
}

/// The claims with `change` applied (a `null` removes the claim).
fn claims_with(change: Value) -> Value {
    let mut claims = claims();
    for (name, value) in change.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A token whose HS256 signature is right for whatever header and payload bytes.
fn hs256_over(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(HS_SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

#[test]
fn bad_credentials_are_refused_with_the_reason_in_the_log() {
    let good = sign(Algorithm::HS256, &claims());
    let rsa_token = sign(Algorithm::RS256, &claims());
    let (head, rest) = good.split_once('.').unwrap();
    // HS256 "signed" with the RSA public key as the HMAC secret: the classic
    // algorithm-confusion forgery against a verifier that lets the token pick.
    let confused = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &claims(),
        Some("rsa-1"),
    );
    let cases: Vec<(&str, TestRequest, &str)> = vec![
        ("no header", TestRequest::get("/users"), "no bearer token"),
        (
            "basic auth",
            TestRequest::get("/users").header("authorization", "Basic YTpi"),
            "not `Bearer <token>`",
        ),
        (
            "bearer without token",
            TestRequest::get("/users").header("authorization", "Bearer "),
            "not `Bearer",
        ),
        (
            "two headers",
            with_token(&good).header("authorization", format!("Bearer {good}")),
            "several Authorization headers",
        ),
        (
            "expired",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"exp": NOW - 31})),
            )),
            "expired",
        ),
        (
            "not yet valid",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"nbf": NOW + 600})),
            )),
            "not valid yet",
        ),
        (
            "no exp",
            with_token(&sign(Algorithm::HS256, &claims_with(json!({"exp": null})))),
            "no exp",
        ),
        (
            "exp not a number",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"exp": "tomorrow"})),
            )),
            "\"exp\" has the wrong type",
        ),
        (
            "wrong iss",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"iss": "evil"})),
            )),
            "issuer",
        ),
        (
            "no iss",
            with_token(&sign(Algorithm::HS256, &claims_with(json!({"iss": null})))),
            "issuer",
        ),
        (
            "wrong aud",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"aud": "billing"})),
            )),
            "audience",
        ),
        (
            "wrong aud list",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"aud": ["x", "y"]})),
            )),
            "audience",
        ),
        (
            "other HMAC secret",
            with_token(&sign_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another secret that is long enough.."),
                &claims(),
                None,
            )),
            "bad signature",
        ),
        (
            "other RSA key",
            with_token(&sign_with(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap(),
                &claims(),
                Some("rsa-1"),
            )),
            "bad signature",
        ),
        (
            "payload changed",
            with_token(&format!("{head}.{}", rest.replacen('e', "f", 1))),
            "bad signature",
        ),
        (
            "alg none, no signature",
            with_token(&raw_token(&json!({"alg": "none"}), &claims(), "")),
            "alg none",
        ),
        (
            "alg NONE with a signature",
            with_token(&raw_token(&json!({"alg": "NONE"}), &claims(), "c2ln")),
            "alg none",
        ),
        (
            "HS/RS confusion",
            with_token(&confused),
            "no key accepts HS256 with kid \"rsa-1\"",
        ),
        (
            "truncated",
            with_token(&good[..good.len() / 2]),
            "malformed",
        ),
        (
            "not base64",
            with_token("eyJhbGciOiJIUzI1NiJ9.e30!.c2ln"),
            "not base64url",
        ),
        (
            "padded base64",
            with_token(&format!("{good}=")),
            "not base64url",
        ),
        (
            "two parts",
            with_token("eyJhbGciOiJIUzI1NiJ9.e30"),
            "three dot-separated parts",
        ),
        (
            "JWE, five parts",
            with_token("a.b.c.d.e"),
            "three dot-separated parts",
        ),
        (
            "header not JSON",
            with_token(&format!("{}.e30.c2ln", b64(b"alg=HS256"))),
            "header is not a JSON object",
        ),
        (
            "no alg",
            with_token(&raw_token(&json!({"typ": "JWT"}), &claims(), "c2ln")),
            "no alg",
        ),
        (
            "unknown alg",
            with_token(&raw_token(&json!({"alg": "HS999"}), &claims(), "c2ln")),
            "unsupported alg",
        ),
        (
            "crit header",
            with_token(&raw_token(
                &json!({"alg": "HS256", "crit": ["exp"]}),
                &claims(),
                "c2ln",
            )),
            "crit",
        ),
        (
            "unknown kid",
            with_token(&sign_with(
                Algorithm::RS256,
                &signing_key(Algorithm::RS256),
                &claims(),
                Some("rsa-9"),
            )),
            "unknown kid",
        ),
        (
            "wrong key type for the kid",
            with_token(&sign_with(
                Algorithm::ES256,
                &signing_key(Algorithm::ES256),
                &claims(),
                Some("rsa-1"),
            )),
            "no key accepts ES256 with kid",
        ),
        (
            "claims not an object",
            with_token(&hs256_over(br#"{"alg":"HS256"}"#, b"[1,2]")),
            "not a JSON object",
        ),
        (
            "claims not JSON",
            with_token(&hs256_over(br#"{"alg":"HS256"}"#, b"hello")),
            "not a JSON object",
        ),
        (
            "oversized",
            with_token(&format!("{good}{}", "A".repeat(9000))),
            "over max_token_bytes",
        ),
        (
            "revoked",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"jti": "gone"})),
            )),
            "revoked",
        ),
        (
            "role claim of the wrong type",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"role": {"admin": true}})),
            )),
            "\"role\" has the wrong type",
        ),
        (
            "a claim that cannot be a header",
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"username": "a\r\nx-admin: 1"})),
            )),
            "cannot be sent in a header",
        ),
    ];
    assert!(cases.len() >= 30, "{}", cases.len());
    let mut h = standard();
    h.kv_set("revoked:gone", b"1", None);
    // Sanity: the good tokens pass.
    accepted(&mut h, with_token(&good));
    accepted(&mut h, with_token(&rsa_token));
    for (name, request, reason) in cases {
        let why = refused(&mut h, request);
        assert!(
            why.contains(reason),
            "{name}: expected {reason:?} in {why:?}"
        );
        assert!(
            !why.contains(&good[good.len() - 20..]),
            "{name}: the log holds the token"
        );
        assert_eq!(h.ctx.var("auth_method"), None, "{name}");
    }
    // An HS256 token where only RSA keys are configured (a fresh harness, last).
    let mut rsa_only = harness(json!({"keys": [key_entry(Algorithm::RS256, None)]}));
    let why = refused(&mut rsa_only, with_token(&good));
    assert!(why.contains("no key accepts HS256"), "{why}");
}

#[test]
fn leeway_allows_a_little_clock_skew() {
    let mut h = standard();
    accepted(
        &mut h,
        with_token(&sign(
            Algorithm::HS256,
            &claims_with(json!({"exp": NOW - 10})),
        )),
    );
    accepted(
        &mut h,
        with_token(&sign(
            Algorithm::HS256,
            &claims_with(json!({"nbf": NOW + 10})),
        )),
    );
    let mut strict =
        harness(json!({"keys": [key_entry(Algorithm::HS256, None)], "leeway_seconds": 0}));
    assert!(
        refused(
            &mut strict,
            with_token(&sign(
                Algorithm::HS256,
                &claims_with(json!({"exp": NOW - 1}))
            ))
        )
        .contains("expired")
    );
    let mut lax =
        harness(json!({"keys": [key_entry(Algorithm::HS256, None)], "require_exp": false}));
    accepted(
        &mut lax,
        with_token(&sign(Algorithm::HS256, &claims_with(json!({"exp": null})))),
    );
}

#[test]
fn claims_map_to_vars_and_scope_strings_split() {
    let mut h = harness(json!({
        "keys": [key_entry(Algorithm::HS256, None)],
        "claims": {"user_id": "uid", "permissions": "scope", "role": "roles"},
        "vars": {"tenant": "tenant_id"},
        "headers": {"user_id": "X-Subject"},
    }));
    let token = sign(
        Algorithm::HS256,
        &claims_with(
            json!({"uid": 7, "scope": "read:a write:b", "roles": ["user", "viewer"], "tenant": "acme"}),
        ),
    );
    let request = accepted(&mut h, with_token(&token).header("x-subject", "forged"));
    assert_eq!(request.headers.get("x-subject").as_deref(), Some("7"));
    assert!(!request.headers.contains("x-user-id"));
    assert_eq!(
        request.headers.get("x-user-permissions").as_deref(),
        Some("read:a,write:b")
    );
    assert_eq!(
        request.headers.get("x-user-role").as_deref(),
        Some("user,viewer")
    );
    assert_eq!(h.ctx.var("tenant_id"), Some("acme"));
}

#[test]
fn the_client_sees_a_plain_envelope_and_the_log_never_the_token() {
    let mut h = standard();
    let token = sign(Algorithm::HS256, &claims_with(json!({"exp": NOW - 100})));
    let outcome = h.on_request(with_token(&token));
    let response = outcome.response().unwrap();
    let body: Value = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["error"], "token expired");
    assert_eq!(body["request_id"], "test-request-1");
    for line in h.log_lines().iter().map(LogLine::to_string) {
        assert!(!line.contains(&token[..40]) && !line.contains(token.rsplit('.').next().unwrap()));
        assert!(!line.contains(std::str::from_utf8(HS_SECRET).unwrap()));
    }
}

#[test]
fn configs_that_cannot_work_are_refused() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "needs `keys`, `jwks` or both"),
        (
            json!({"keys": [{"alg": "HS256", "secret": "missing"}]}),
            "not granted",
        ),
        (json!({"keys": [{"alg": "HS256"}]}), "exactly one of"),
        (
            json!({"keys": [{"alg": "HS256", "secret": "hs", "pem": "rsa"}]}),
            "exactly one of",
        ),
        (
            json!({"keys": [{"alg": "HS257", "secret": "hs"}]}),
            "unknown alg",
        ),
        (
            json!({"keys": [{"alg": "RS256", "secret": "hs"}]}),
            "`secret` is for HS",
        ),
        (
            json!({"keys": [{"alg": "HS256", "pem_text": RSA_PUBLIC}]}),
            "takes a `secret`",
        ),
        (
            json!({"keys": [{"alg": "ES256", "pem_text": RSA_PUBLIC}]}),
            "not a PEM public key for ES256",
        ),
        (
            json!({"keys": [{"alg": "RS256", "pem_text": "not pem"}]}),
            "not a PEM public key",
        ),
        (json!({"keys": [{"pem_text": RSA_PUBLIC}]}), "needs `alg`"),
        (
            json!({"keys": [{"alg": "ES256", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}]}),
            "does not fit",
        ),
        (
            json!({"keys": [{"secret": "short", "alg": "HS256"}]}),
            "at least 32",
        ),
        (
            json!({"keys": [], "jwks": {"service": "idp", "path": "jwks"}}),
            "must start with '/'",
        ),
        (
            json!({"keys": [key_entry(Algorithm::HS256, None)], "skip_paths": ["login"]}),
            "must start with '/'",
        ),
        (
            json!({"keys": [key_entry(Algorithm::HS256, None)], "headers": {"role": "x-user-id"}}),
            "twice",
        ),
        (
            json!({"keys": [key_entry(Algorithm::HS256, None)], "lifetime": 3}),
            "unknown field",
        ),
    ];
    for (config, expected) in cases {
        let error = Harness::<JwtAuth>::with_secrets(
            &config.to_string(),
            &[
                ("hs", HS_SECRET),
                ("rsa", RSA_PUBLIC.as_bytes()),
                ("short", b"tiny"),
            ],
        )
        .err()
        .unwrap_or_else(|| panic!("{config} was accepted"));
        assert!(
            error.contains(expected),
            "{config}: expected {expected:?} in {error:?}"
        );
    }
}

#[test]
fn base64_secrets_are_decoded() {
    let encoded = STANDARD.encode(HS_SECRET);
    let mut h = Harness::<JwtAuth>::with_secrets(
        r#"{"keys": [{"alg": "HS256", "secret": "b64", "secret_base64": true}]}"#,
        &[("b64", encoded.as_bytes())],
    )
    .unwrap();
    accepted(&mut h, with_token(&sign(Algorithm::HS256, &claims())));
}

/// The test Ed25519 public key as a JWK: the last 32 bytes of its SPKI DER.
fn ed_jwk(kid: &str) -> Value {
    let body: String = ED_PUBLIC
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&der[der.len() - 32..])})
}

#[test]
fn a_fetched_key_set_is_cached_and_refetched_for_an_unknown_kid() {
    let mut h = harness(json!({
        "jwks": {"service": "idp", "path": "/.well-known/jwks.json", "cache_seconds": 60},
    }));
    let document = std::rc::Rc::new(std::cell::RefCell::new(json!({"keys": [
        ed_jwk("ed-1"),
        {"kty": "oct", "kid": "shared", "k": b64(HS_SECRET)},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
    ]})));
    let served = document.clone();
    h.on_http("idp", move |request| {
        assert_eq!(request.path_and_query, "/.well-known/jwks.json");
        Ok(OutboundResponse {
            status: 200,
            headers: Default::default(),
            body: served.borrow().to_string().into_bytes(),
        })
    });
    let ed = |kid: &str| {
        sign_with(
            Algorithm::EdDSA,
            &signing_key(Algorithm::EdDSA),
            &claims(),
            Some(kid),
        )
    };
    accepted(&mut h, with_token(&ed("ed-1")));
    accepted(&mut h, with_token(&ed("ed-1")));
    assert_eq!(
        h.http_calls().len(),
        1,
        "the second request used the cached set"
    );
    // The symmetric key in a fetched set is not used: an HS256 token naming it fails.
    let hs = sign_with(
        Algorithm::HS256,
        &signing_key(Algorithm::HS256),
        &claims(),
        Some("shared"),
    );
    assert!(refused(&mut h, with_token(&hs)).contains("unknown kid"));
    assert_eq!(
        h.http_calls().len(),
        2,
        "an unknown kid fetches the set again"
    );
    assert!(refused(&mut h, with_token(&ed("ed-2"))).contains("unknown kid"));
    assert_eq!(
        h.http_calls().len(),
        2,
        "but not again within the refetch interval"
    );
    // The issuer rotates its key; after the interval the new kid is found.
    *document.borrow_mut() = json!({"keys": [ed_jwk("ed-2")]});
    h.advance_ms(11_000);
    accepted(&mut h, with_token(&ed("ed-2")));
    assert_eq!(h.http_calls().len(), 3);
    // A token a fetched key verified is not remembered: the retired key's token, which
    // passed twice above, now fails.
    assert!(refused(&mut h, with_token(&ed("ed-1"))).contains("unknown kid"));
    assert!(h.plugin().verified.tokens.borrow().is_empty());
}

#[test]
fn a_remembered_token_is_still_checked_for_time_and_revocation() {
    let mut h = standard();
    let token = sign(Algorithm::HS256, &claims());
    accepted(&mut h, with_token(&token));
    assert!(
        h.plugin().verified.get(&token).is_some(),
        "kept once verified"
    );
    let again = accepted(&mut h, with_token(&token));
    assert_eq!(again.headers.get("x-user-id").as_deref(), Some("42"));
    assert_eq!(h.ctx.var("consumer"), Some("42"));
    // Logged out: the revocation list is read on every request.
    h.kv_set("revoked:token-1", b"1", None);
    assert!(refused(&mut h, with_token(&token)).contains("revoked"));

    let mut h = standard();
    accepted(&mut h, with_token(&token));
    // An hour and the leeway later it has expired, kept or not.
    h.advance_ms(3_600_000 + 61_000);
    assert!(refused(&mut h, with_token(&token)).contains("expired"));
    // Refused tokens are never kept, whatever their form.
    let forged = format!("{}x", &token[..token.len() - 1]);
    refused(&mut h, with_token(&forged));
    assert!(h.plugin().verified.get(&forged).is_none());
}

#[test]
fn the_token_memory_is_bounded_by_bytes() {
    let verified = Verified::default();
    let claims = Claims::default();
    let token_bytes = 1_000;
    for i in 0..2 * VERIFIED_CACHE_BYTES / token_bytes {
        let token = format!("{i:0>width$}", width = token_bytes);
        verified.insert(&token, &claims);
        assert!(verified.bytes.get() <= VERIFIED_CACHE_BYTES);
        assert_eq!(
            verified.bytes.get(),
            verified.tokens.borrow().len() * token_bytes
        );
        assert!(verified.get(&token).is_some(), "the newest is kept");
    }
    // A token kept already is not counted again, nor does it empty a full memory.
    let before = verified.bytes.get();
    let last = format!(
        "{:0>width$}",
        2 * VERIFIED_CACHE_BYTES / token_bytes - 1,
        width = token_bytes
    );
    verified.insert(&last, &claims);
    assert_eq!(verified.bytes.get(), before);
}

#[test]
fn an_unreachable_key_set_is_a_503_not_a_401() {
    let mut h = harness(json!({"jwks": {"service": "idp", "path": "/jwks"}}));
    h.on_http("idp", |_| {
        Err(http::Error::Unreachable("connection refused".into()))
    });
    let token = sign_with(
        Algorithm::EdDSA,
        &signing_key(Algorithm::EdDSA),
        &claims(),
        Some("ed-1"),
    );
    let outcome = h.on_request(with_token(&token));
    let response = outcome.response().expect("answered");
    assert_eq!(response.status, 503);
    let line = h.log_lines().last().unwrap().clone();
    assert_eq!(line.level, Level::Error);
    let line = line.to_string();
    assert!(line.contains("connection refused"), "{line}");
    // A broken document is not cached.
    h.on_http("idp", |_| {
        Ok(OutboundResponse {
            status: 200,
            headers: Default::default(),
            body: b"<html>".to_vec(),
        })
    });
    assert_eq!(
        h.on_request(with_token(&token)).response().unwrap().status,
        503
    );
    assert!(h.kv_get("jwks:idp/jwks").is_none());
}

#[test]
fn a_separator_in_a_role_or_permission_refuses_the_token() {
    let mut h = standard();
    let cases = [
        (
            "a role string with a comma",
            json!({"role": "user,admin"}),
            "role \"user,admin\"",
        ),
        (
            "a role string with a space",
            json!({"role": "user admin"}),
            "role \"user admin\"",
        ),
        (
            "a role list item with a comma",
            json!({"role": ["user,admin"]}),
            "role \"user,admin\"",
        ),
        (
            "an empty role in a list",
            json!({"role": ["user", ""]}),
            "role \"\"",
        ),
        (
            "a permission with a comma",
            json!({"permissions": ["user:read,admin:write"]}),
            "permission \"user:read,admin:write\"",
        ),
        (
            "a permission with a control character",
            json!({"permissions": ["user:read\u{7}"]}),
            "permission \"user:read\\u{7}\"",
        ),
    ];
    for (name, change, reason) in cases {
        let token = sign(Algorithm::HS256, &claims_with(change));
        let outcome = {
            h.ctx.vars.clear();
            h.on_request(with_token(&token).header("x-user-role", "admin"))
        };
        let response = outcome
            .response()
            .unwrap_or_else(|| panic!("{name}: let through"));
        assert_eq!(response.status, 401, "{name}");
        let body: Value = serde_json::from_slice(response.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["code"], "UNAUTHORIZED", "{name}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("roles and permissions may not hold"),
            "{name}: {body}"
        );
        assert!(
            h.ctx.vars.is_empty(),
            "{name}: half recorded: {:?}",
            h.ctx.vars
        );
        let line = h.log_lines().last().unwrap().to_string();
        assert!(
            line.contains("the identity cannot be recorded"),
            "{name}: {line}"
        );
        assert!(
            line.contains(reason),
            "{name}: expected {reason:?} in {line}"
        );
        // Through the shared helper as well (it checks the envelope and the log level).
        refused(&mut h, with_token(&token));
    }
    // A role string is one role, never split; a scope string still splits.
    let token = sign(
        Algorithm::HS256,
        &claims_with(json!({"role": "admin", "permissions": "user:read audit:read"})),
    );
    let request = accepted(&mut h, with_token(&token));
    assert_eq!(request.headers.get("x-user-role").as_deref(), Some("admin"));
    assert_eq!(h.ctx.var("role"), Some("admin"));
    assert_eq!(h.ctx.var("permissions"), Some("user:read,audit:read"));
    // An empty role string is no role, as before.
    let token = sign(Algorithm::HS256, &claims_with(json!({"role": ""})));
    let request = accepted(&mut h, with_token(&token));
    assert!(!request.headers.contains("x-user-role"));
    assert_eq!(h.ctx.var("role"), None);
}

#[test]
fn an_authorization_header_that_is_not_utf8_is_never_absent() {
    let not_utf8 = b"Bearer \xff\xfe.abc.def".to_vec();
    let mut optional =
        harness(json!({"keys": [key_entry(Algorithm::HS256, None)], "optional": true}));
    let why = refused(
        &mut optional,
        TestRequest::get("/").header("authorization", not_utf8.clone()),
    );
    assert!(why.contains("not UTF-8"), "{why}");
    // The same without `optional`.
    let mut h = standard();
    let why = refused(
        &mut h,
        TestRequest::get("/users").header("authorization", not_utf8.clone()),
    );
    assert!(why.contains("not UTF-8"), "{why}");
    // Only the absence of the header lets an optional route through.
    accepted(&mut optional, TestRequest::get("/"));
}

#[test]
fn a_second_authorization_header_is_refused_whatever_its_bytes() {
    let good = sign(Algorithm::HS256, &claims());
    let bearer = format!("Bearer {good}");
    let not_utf8 = b"Bearer \xff".to_vec();
    for optional in [false, true] {
        let mut h = harness(json!({
            "keys": [key_entry(Algorithm::HS256, None)],
            "optional": optional,
        }));
        for (name, first, second) in [
            (
                "two good tokens",
                bearer.as_bytes().to_vec(),
                bearer.as_bytes().to_vec(),
            ),
            (
                "a good token, then bytes",
                bearer.as_bytes().to_vec(),
                not_utf8.clone(),
            ),
            (
                "bytes, then a good token",
                not_utf8.clone(),
                bearer.as_bytes().to_vec(),
            ),
            ("bytes twice", not_utf8.clone(), not_utf8.clone()),
            (
                "an empty second value",
                bearer.as_bytes().to_vec(),
                Vec::new(),
            ),
        ] {
            let request = TestRequest::get("/users")
                .header("authorization", first)
                .header("Authorization", second);
            let why = refused(&mut h, request);
            assert!(
                why.contains("several Authorization headers"),
                "optional={optional}, {name}: {why}"
            );
        }
        // One good header passes.
        accepted(&mut h, with_token(&good));
    }
}

/// The revocation list cannot be read (the state store is down): the token is not let
/// through on a guess, whether it was verified before or not. 503, and an error line
/// that says why; served again once the store answers.
#[test]
fn an_unreadable_revocation_list_fails_closed() {
    let mut h = standard();
    let token = sign(Algorithm::HS256, &claims());
    accepted(&mut h, with_token(&token));
    h.fail_kv(Some("redis unreachable"));
    for _ in 0..2 {
        h.ctx.vars.clear();
        let outcome = h.on_request(with_token(&token));
        let response = outcome.response().expect("not let through");
        assert_eq!(response.status, 503);
        assert!(response.body_text().contains("SERVICE_UNAVAILABLE"));
        assert!(h.ctx.vars.is_empty(), "no identity: {:?}", h.ctx.vars);
        let line = h.log_lines().last().unwrap().to_string();
        assert!(line.contains("cannot check tokens"), "{line}");
        assert!(line.contains("redis unreachable"), "{line}");
    }
    h.fail_kv(None);
    accepted(&mut h, with_token(&token));
}
