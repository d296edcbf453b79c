//! Global chains (`[[global.plugins]]`): plugins placed before and after every route's
//! own chain on their listener, a route's `skip_global` opt-out, and `check`'s errors
//! for bad values, on a real gateway with a real upstream.

use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, admin_json, client, send};

const SECRET: &str = "global-chain-test-secret-of-32-bytes!";

/// A gateway whose every gateway route runs `jwt-auth` first and `headers` around
/// its own chain; `/login` and `/public` opt out of one or all of them.
fn global_gateway(upstream: &Upstream) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("jwt-auth", "jwt-auth")
        .plugin("headers", "headers")
        .env("E2E_GLOBAL_JWT", SECRET)
        .toml(
            r#"
[plugins.jwt-auth]
secrets = { jwt = { env = "E2E_GLOBAL_JWT" } }

[[global.plugins]]
name = "headers"
config = { request = { add = { x-chain = "global-before" } }, response = { add = { x-chain = "global-before" } } }

[[global.plugins]]
name = "jwt-auth"
config = { keys = [{ alg = "HS256", secret = "jwt" }] }

[[global.plugins]]
name = "headers"
position = "after"
config = { request = { add = { x-chain = "global-after" } }, response = { add = { x-chain = "global-after" } } }

[[routes]]
name = "api"
prefix = "/api"
service = "echo"
[[routes.plugins]]
name = "headers"
config = { request = { add = { x-chain = "route" } }, response = { add = { x-chain = "route" } } }

[[routes]]
name = "login"
path = "/login"
service = "echo"
skip_global = ["jwt-auth"]

[[routes]]
name = "public"
prefix = "/public"
service = "echo"
skip_global = ["*"]

[[routes]]
name = "operator"
path = "/ops"
service = "echo"
listener = "admin"
"#,
        )
        .start()
}

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": "u-7", "username": "kim", "role": "admin", "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The values of `name` the upstream echoed, in order.
fn echoed(body: &Value, name: &str) -> Vec<String> {
    body["headers"][name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_plugins_run_around_every_routes_own_chain() {
    let upstream = Upstream::start();
    let gateway = global_gateway(&upstream);

    // No token: the global jwt-auth refuses before the upstream is called.
    let refused = send(Method::GET, &gateway.url("/api/items"), None).await;
    refused.assert_envelope(401, "UNAUTHORIZED");
    assert_eq!(upstream.hits(), 0, "a refused request reached the upstream");

    // With a token: the upstream sees the identity and the chain in request order
    // (global before, the route's own, global after); the client sees the response
    // phase in reverse.
    let response = client()
        .get(gateway.url("/api/items"))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let on_response: Vec<&str> = response
        .headers()
        .get_all("x-chain")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(on_response, ["global-after", "route", "global-before"]);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        echoed(&body, "x-chain"),
        ["global-before", "route", "global-after"]
    );
    assert_eq!(echoed(&body, "x-user-id"), ["u-7"]);
    assert_eq!(echoed(&body, "x-username"), ["kim"]);

    // `skip_global = ["jwt-auth"]`: no token needed, the other global plugins still run.
    let login = send(Method::POST, &gateway.url("/login"), Some(&json!({}))).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(
        echoed(&login.json(), "x-chain"),
        ["global-before", "global-after"]
    );

    // `skip_global = ["*"]`: none of them.
    let public = send(Method::GET, &gateway.url("/public/page"), None).await;
    assert_eq!(public.status, 200);
    assert!(echoed(&public.json(), "x-chain").is_empty());

    // Global plugins are per listener: the admin listener's routes are untouched.
    let ops = client()
        .get(gateway.admin_url("/ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(ops.status(), 200);
    let ops: Value = ops.json().await.unwrap();
    assert!(echoed(&ops, "x-chain").is_empty());

    // The admin API shows each route's whole chain, global entries marked.
    let routes: Value = admin_json(&gateway, "/admin/routes").await;
    let chain = |route: &str| -> Vec<(String, bool)> {
        let route = routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == route)
            .unwrap();
        route["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["global"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let entry = |name: &str, global| (name.to_string(), global);
    assert_eq!(
        chain("api"),
        [
            entry("headers", true),
            entry("jwt-auth", true),
            entry("headers", false),
            entry("headers", true)
        ]
    );
    assert_eq!(
        chain("login"),
        [entry("headers", true), entry("headers", true)]
    );
    assert!(chain("public").is_empty());
    assert!(chain("operator").is_empty());
}

/// `check` output for a config with `toml` after the builder's lines (see
/// config_errors.rs: appended TOML starts on line 8).
fn refused(toml: &str) -> String {
    TestGateway::new()
        .service("echo", "127.0.0.1:1".parse().unwrap())
        .toml(toml)
        .check_refused()
}

#[test]
fn bad_global_values_are_refused_with_file_and_line() {
    // The service takes lines 8-9 and line 10 is blank: the TOML below starts on line 11.
    let output = refused(
        "[[global.plugins]]\nname = \"headers\"\n\n[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"echo\"\nskip_global = [\"jwt-auth\"]\n",
    );
    assert!(
        output.contains("wasmgate.toml:18:")
            && output.contains(
                "route \"r\": skip_global names \"jwt-auth\", which is not a global plugin of this route's listener (known: headers)"
            ),
        "{output}"
    );

    let output = refused("[[global.plugins]]\nname = \"Bad Name\"\n");
    assert!(
        output.contains("wasmgate.toml:12:")
            && output.contains("[[global.plugins]]: \"Bad Name\" is not a plugin name"),
        "{output}"
    );

    let output = refused("[[global.plugins]]\nname = \"cors\"\nposition = \"middle\"\n");
    assert!(
        output.contains("wasmgate.toml:13:") && output.contains("unknown variant `middle`"),
        "{output}"
    );

    let output = refused(
        "[[global.plugins]]\nname = \"missing\"\n\n[[routes]]\nname = \"r\"\nprefix = \"/\"\nservice = \"echo\"\n",
    );
    assert!(
        output.contains("wasmgate.toml:12:") && output.contains("unknown plugin \"missing\""),
        "{output}"
    );
}
