//! Identity and access with the real binary and the real plugins: `jwt-auth` with
//! keys from granted secrets (an environment variable and a file), a table of bad
//! credentials that each get the 401 envelope while the gateway stays up, and the
//! `X-User-*` headers the upstream sees (never the client's own).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Duration;

use serde_json::{Value, json};
use wasmgate_e2e::{TestGateway, Upstream, assert_envelope, client, send_with};

const SECRET: &str = "an HMAC secret for the end-to-end tests, 48 bytes";
const RSA_PRIVATE: &str = include_str!("../../plugins/jwt-auth/testdata/rsa-private.pem");
const RSA2_PRIVATE: &str = include_str!("../../plugins/jwt-auth/testdata/rsa2-private.pem");
const EC_PRIVATE: &str = include_str!("../../plugins/jwt-auth/testdata/ec256-private.pem");

fn rsa_public_file() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/jwt-auth/testdata/rsa-public.pem"
    )
    .into()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"sub": "u-1", "username": "alice", "role": "user", "permissions": ["user:read"],
           "iss": "wasmgate", "aud": "api", "exp": now() + 600, "jti": "t-1"})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
        None,
    )
}

fn with(change: Value) -> Value {
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

fn jwt_gateway(upstream: &Upstream) -> TestGateway {
    let toml = format!(
        r#"
[plugins.jwt-auth]
secrets = {{ jwt = {{ env = "E2E_JWT_SECRET" }}, rsa = {{ file = "{rsa}" }} }}

[[routes]]
name = "api"
prefix = "/api"
service = "echo"
[[routes.plugins]]
name = "jwt-auth"
config = {{ keys = [{{ alg = "HS256", secret = "jwt" }}, {{ kid = "rsa-1", alg = "RS256", pem = "rsa" }}], issuer = "wasmgate", audience = "api", skip_paths = ["/api/public/*"] }}
"#,
        rsa = rsa_public_file()
    );
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(&toml)
}

#[tokio::test]
async fn a_valid_token_passes_with_its_identity_and_forged_headers_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let gateway = jwt_gateway(&upstream).start();
    let http = client();
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    for token in [
        hs(&claims()),
        sign(Algorithm::RS256, &rsa, &claims(), Some("rsa-1")),
    ] {
        let response = http
            .get(gateway.url("/api/items"))
            .bearer_auth(&token)
            .header("x-user-id", "admin")
            .header("x-user-role", "admin")
            .header("X-User-Permissions", "*")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let echo: Value = response.json().await.unwrap();
        let headers = &echo["headers"];
        assert_eq!(headers["x-user-id"], json!(["u-1"]));
        assert_eq!(headers["x-username"], json!(["alice"]));
        assert_eq!(headers["x-user-role"], json!(["user"]));
        assert_eq!(headers["x-user-permissions"], json!(["user:read"]));
    }
    // A skipped path needs no token, and forged identity headers are dropped there too.
    let response = http
        .get(gateway.url("/api/public/docs"))
        .header("x-user-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert!(echo["headers"].get("x-user-role").is_none(), "{echo}");
}

#[tokio::test]
async fn bad_credentials_each_get_a_401_envelope_and_the_gateway_stays_up() {
    let upstream = Upstream::start();
    let mut gateway = jwt_gateway(&upstream).start();
    let good = hs(&claims());
    let (head, rest) = good.split_once('.').unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let rsa_public = std::fs::read(rsa_public_file()).unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("expired", Some(hs(&with(json!({"exp": now() - 120}))))),
        (
            "not yet valid",
            Some(hs(&with(json!({"nbf": now() + 600})))),
        ),
        ("no exp", Some(hs(&with(json!({"exp": null}))))),
        ("wrong iss", Some(hs(&with(json!({"iss": "someone-else"}))))),
        ("wrong aud", Some(hs(&with(json!({"aud": "billing"}))))),
        (
            "bad signature",
            Some(format!("{}x", &good[..good.len() - 1])),
        ),
        (
            "other secret",
            Some(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"a different secret that is long enough"),
                &claims(),
                None,
            )),
        ),
        (
            "payload swapped",
            Some(format!(
                "{head}.{}.{}",
                b64(&with(json!({"role": "admin"}))),
                rest.rsplit('.').next().unwrap()
            )),
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims())
            )),
        ),
        (
            "HS/RS confusion",
            Some(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(&rsa_public),
                &claims(),
                Some("rsa-1"),
            )),
        ),
        (
            "other RSA key",
            Some(sign(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap(),
                &claims(),
                Some("rsa-1"),
            )),
        ),
        (
            "wrong key type",
            Some(sign(
                Algorithm::ES256,
                &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
                &claims(),
                Some("rsa-1"),
            )),
        ),
        (
            "unknown kid",
            Some(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(SECRET.as_bytes()),
                &claims(),
                Some("k-9"),
            )),
        ),
        ("truncated", Some(good[..good.len() / 2].to_string())),
        ("not base64", Some("e30.e30!.e30".into())),
        ("one part", Some("abcdef".into())),
        ("JWE shape", Some("a.b.c.d.e".into())),
        ("oversized", Some(format!("{good}{}", "A".repeat(9000)))),
        (
            "crit header",
            Some(format!(
                "{}.{}.c2ln",
                b64(&json!({"alg": "HS256", "crit": ["x"]})),
                b64(&claims())
            )),
        ),
        (
            "claims not an object",
            Some(format!(
                "{}.{}.c2ln",
                b64(&json!({"alg": "HS256"})),
                b64(&json!([1]))
            )),
        ),
        ("garbage", Some("!!!!".into())),
    ];
    assert!(cases.len() >= 20);
    let http = client();
    for (name, token) in &cases {
        let mut request = http.get(gateway.url("/api/items"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{name}"
        );
        let body = response.bytes().await.unwrap();
        let value = assert_envelope(status, Some(&id), &body, 401, "UNAUTHORIZED");
        assert!(
            !value["error"].as_str().unwrap().contains('.'),
            "{name}: {value}"
        );
    }
    assert_eq!(upstream.hits(), 0, "no bad credential reached the upstream");
    assert!(gateway.is_running());
    // Still serving, and the log names reasons but never a token.
    let response = http
        .get(gateway.url("/api/items"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for reason in [
        "expired (exp)",
        "unsecured token (alg none)",
        // The reason is a structured field: on the console `reason="…"`, quotes escaped.
        r#"no key accepts HS256 with kid \"rsa-1\""#,
        r#"unknown kid \"k-9\""#,
        "bad signature",
    ] {
        gateway.wait_for_log(reason);
    }
    let log = gateway.settled_log();
    let signature = good.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature) && !log.contains(SECRET),
        "the log holds a secret"
    );
    gateway.terminate();
}

#[test]
fn a_secret_that_cannot_be_read_is_a_config_error_with_its_line() {
    let upstream = Upstream::start();
    let (status, output) = jwt_gateway(&upstream).without_env("E2E_JWT_SECRET").check();
    assert!(!status.success(), "{output}");
    assert!(output.contains("wasmgate.toml:"), "{output}");
    assert!(
        output.contains("environment variable E2E_JWT_SECRET is not set"),
        "{output}"
    );
}

#[tokio::test]
async fn rbac_allows_and_forbids_per_role_and_method() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .plugin("rbac", "rbac")
        .env("E2E_JWT_SECRET", SECRET)
        .toml(
            r#"
[plugins.jwt-auth]
secrets = { jwt = { env = "E2E_JWT_SECRET" } }

[[routes]]
name = "users"
prefix = "/users"
service = "echo"
[[routes.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }] }
[[routes.plugins]]
name = "rbac"
[routes.plugins.config]
roles = { admin = ["*"], user = ["user:read", "user:update"], viewer = ["user:read"] }
rules = [
  { methods = ["GET"], path_prefix = "/users/audit", permissions = ["audit:read"] },
  { methods = ["GET"], permissions = ["user:read"] },
  { methods = ["PUT"], permissions = ["user:update"] },
  { methods = ["DELETE"], roles = ["admin"] },
]
"#,
        )
        .start();
    let http = client();
    let cases = [
        ("admin", "DELETE", "/users/7", 200, ""),
        ("admin", "GET", "/users/audit", 200, ""),
        ("user", "GET", "/users/7", 200, ""),
        ("user", "PUT", "/users/7", 200, ""),
        ("user", "DELETE", "/users/7", 403, "requires role admin"),
        (
            "user",
            "GET",
            "/users/audit",
            403,
            "missing permission audit:read",
        ),
        ("viewer", "GET", "/users/7", 200, ""),
        (
            "viewer",
            "PUT",
            "/users/7",
            403,
            "missing permission user:update",
        ),
        ("viewer", "POST", "/users", 403, "no rule allows POST here"),
    ];
    let mut forwarded = 0;
    for (role, method, path, want, message) in cases {
        let token = hs(&with(json!({"role": role, "permissions": null})));
        let bearer = format!("Bearer {token}");
        let answer = send_with(
            method.parse().unwrap(),
            &gateway.url(path),
            &[("authorization", &bearer)],
            None,
        )
        .await;
        if want == 200 {
            assert_eq!(answer.status, 200, "{role} {method} {path}");
            forwarded += 1;
        } else {
            let value = answer.assert_envelope(403, "FORBIDDEN");
            assert_eq!(value["error"], message, "{role} {method} {path}");
        }
    }
    assert_eq!(
        upstream.hits(),
        forwarded,
        "refused requests never reach the upstream"
    );
    // No token at all is a 401, from jwt-auth before rbac runs.
    let response = http.get(gateway.url("/users/7")).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

/// Secrets are read again on every reload: after the secret file is rotated and the
/// gateway gets `SIGHUP`, tokens signed with the new key pass and those signed with
/// the old one are refused.
#[tokio::test]
async fn a_rotated_secret_file_is_read_again_on_reload() {
    const ROTATED: &str = "the HMAC secret after rotation, also long enough";
    let upstream = Upstream::start();
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("jwt.key");
    std::fs::write(&file, SECRET).unwrap();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .toml(&format!(
            r#"
[plugins.jwt-auth]
secrets = {{ jwt = {{ file = {file:?} }} }}

[[routes]]
name = "api"
prefix = "/api"
service = "echo"
[[routes.plugins]]
name = "jwt-auth"
config = {{ keys = [{{ alg = "HS256", secret = "jwt" }}], issuer = "wasmgate", audience = "api" }}
"#,
            file = file.display().to_string()
        ))
        .start();
    let signed = |secret: &str| {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret.as_bytes()),
            &claims(),
            None,
        )
    };
    let (old, new) = (signed(SECRET), signed(ROTATED));
    let status = |token: String| {
        let url = gateway.url("/api/x");
        async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(old.clone()).await, 200);
    assert_eq!(status(new.clone()).await, 401);

    wasmgate_e2e::write_by_rename(&file, ROTATED.as_bytes());
    gateway.signal("HUP");
    wasmgate_e2e::wait_until("the rotated secret", Duration::from_secs(10), || async {
        (status(new.clone()).await == 200).then_some(())
    })
    .await;
    assert_eq!(status(old).await, 401, "the old key is gone");

    // A secret that cannot be read refuses the reload at its line; the snapshot in
    // force (with the rotated key) keeps serving.
    std::fs::remove_file(&file).unwrap();
    gateway.signal("HUP");
    let log = gateway.wait_for_log("reload rejected");
    let line = log.lines().find(|l| l.contains("reload rejected")).unwrap();
    assert!(line.contains("wasmgate.toml:"), "{line}");
    assert!(line.contains("\"jwt\""), "names the secret: {line}");
    assert_eq!(status(new).await, 200, "the rotated key still serves");
}
