//! The `cors` plugin on real traffic: preflights answered by the gateway (the upstream
//! never sees them), actual requests passed on untouched with the CORS headers added
//! to the upstream's response, header by header, for allowed and disallowed origins.

use reqwest::{Method, Response};
use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, UpstreamBehaviour, assert_envelope, client,
};

const APP: &str = "https://app.example.com";

/// The brief's example config: exact origin, subdomain pattern, credentials.
const CONFIG: &str = r#"{ origins = ["https://app.example.com", "https://*.example.com"], methods = ["GET", "POST", "PUT"], headers = ["content-type", "authorization"], expose = ["x-request-id"], credentials = true, max_age = 600 }"#;

const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// A gateway with one route, `/` to `upstream`, and `cors` with `config` on it.
fn cors_gateway(upstream: &Upstream, config: &str) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("cors", "cors")
        .toml(&format!(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "cors"
config = {config}
"#
        ))
        .start()
}

/// The response's CORS headers and `vary`, as (name, value) in order, names lower-case.
fn cors_headers(response: &Response) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-") || name.as_str() == "vary")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    headers
}

/// `pairs` as `cors_headers` gives them.
fn want(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    headers.sort();
    headers
}

async fn preflight(
    gateway: &GatewayProcess,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Response {
    let mut request = client()
        .request(Method::OPTIONS, gateway.url("/api/items"))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.unwrap()
}

/// Checks a refused preflight: the 403 `FORBIDDEN` envelope and no CORS headers.
async fn assert_refused(response: Response) {
    assert_eq!(
        cors_headers(&response),
        want(&[("vary", PREFLIGHT_VARY)]),
        "a refused preflight carries no CORS headers"
    );
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_envelope(
        status,
        Some(&id),
        &response.bytes().await.unwrap(),
        403,
        "FORBIDDEN",
    );
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_by_the_gateway_and_never_reaches_the_upstream() {
    let upstream = Upstream::start();
    let gateway = cors_gateway(&upstream, CONFIG);
    let response = preflight(&gateway, APP, "PUT", Some("Content-Type, Authorization")).await;
    assert_eq!(response.status(), 204);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        cors_headers(&response),
        want(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, POST, PUT"),
            (
                "access-control-allow-headers",
                "content-type, authorization"
            ),
            ("access-control-max-age", "600"),
            ("vary", PREFLIGHT_VARY),
        ])
    );
    assert!(response.bytes().await.unwrap().is_empty());

    let response = preflight(&gateway, "https://a.b.example.com", "GET", None).await;
    assert_eq!(response.status(), 204, "wildcard subdomain");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://a.b.example.com"
    );
    assert_eq!(upstream.hits(), 0, "the upstream never sees a preflight");
}

#[tokio::test]
async fn a_preflight_from_a_disallowed_origin_or_for_a_disallowed_method_or_header_gets_403() {
    let upstream = Upstream::start();
    let gateway = cors_gateway(&upstream, CONFIG);
    for origin in [
        "https://evil.org",
        "https://example.com",
        "https://example.com.evil.org",
        "https://evilexample.com",
        "http://app.example.com",
        "null",
    ] {
        assert_refused(preflight(&gateway, origin, "GET", None).await).await;
    }
    assert_refused(preflight(&gateway, APP, "DELETE", None).await).await;
    assert_refused(preflight(&gateway, APP, "POST", Some("content-type, x-secret")).await).await;
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_allowed_actual_request_passes_untouched_and_its_response_gets_the_headers() {
    let upstream = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("vary".into(), "Accept-Encoding".into())),
        ..UpstreamBehaviour::default()
    });
    let gateway = cors_gateway(&upstream, CONFIG);
    for origin in [APP, "https://cdn.example.com"] {
        let response = client()
            .post(gateway.url("/api/items"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            cors_headers(&response),
            want(&[
                ("access-control-allow-origin", origin),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-request-id"),
                ("vary", "Accept-Encoding"),
                ("vary", "Origin"),
            ]),
            "the upstream's Vary kept, Origin appended"
        );
        let echo: serde_json::Value = response.json().await.unwrap();
        assert_eq!(echo["method"], "POST");
        assert_eq!(
            echo["headers"]["origin"][0], origin,
            "the upstream sees Origin"
        );
        assert_eq!(echo["body"], "{}");
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_disallowed_origin_reaches_the_upstream_but_gets_no_cors_headers() {
    // The upstream answers with its own CORS header: the plugin owns CORS and drops it.
    let upstream = Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("access-control-allow-origin".into(), "*".into())),
        ..UpstreamBehaviour::default()
    });
    let gateway = cors_gateway(&upstream, CONFIG);
    for origin in [
        Some("https://evil.org"),
        Some("https://example.com.evil.org"),
        Some("https://evilexample.com"),
        None,
    ] {
        let mut request = client().get(gateway.url("/api/items"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{origin:?}");
        assert_eq!(
            cors_headers(&response),
            want(&[("vary", "Origin")]),
            "{origin:?}"
        );
        let echo: serde_json::Value = response.json().await.unwrap();
        assert_eq!(echo["headers"]["origin"][0].as_str(), origin);
    }
    assert_eq!(upstream.hits(), 4);

    let response = client()
        .get(gateway.url("/"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        APP,
        "the upstream's `*` replaced"
    );
    assert_eq!(
        response
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
}

#[tokio::test]
async fn a_plain_options_request_goes_to_the_upstream() {
    let upstream = Upstream::start();
    let gateway = cors_gateway(&upstream, CONFIG);
    let response = client()
        .request(Method::OPTIONS, gateway.url("/api/items"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        cors_headers(&response),
        want(&[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
            ("vary", "Origin"),
        ])
    );
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "OPTIONS");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn any_origin_without_credentials() {
    let upstream = Upstream::start();
    let gateway = cors_gateway(&upstream, r#"{ origins = ["*"], headers = ["*"] }"#);
    let response = preflight(&gateway, "https://anyone.test", "PATCH", Some("X-Custom")).await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        cors_headers(&response),
        want(&[
            ("access-control-allow-origin", "*"),
            (
                "access-control-allow-methods",
                "GET, HEAD, POST, PUT, PATCH, DELETE"
            ),
            ("access-control-allow-headers", "x-custom"),
            ("access-control-max-age", "600"),
            ("vary", PREFLIGHT_VARY),
        ])
    );
    let response = client()
        .get(gateway.url("/"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cors_headers(&response),
        want(&[("access-control-allow-origin", "*"), ("vary", "Origin")])
    );
    assert_refused(preflight(&gateway, "null", "GET", None).await).await;
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn the_gateways_own_503_carries_the_headers_too() {
    // A service on a port nothing listens on: once probed down, the gateway answers
    // 503 itself.
    let dead = wasmgate_e2e::dead_address();
    let gateway = TestGateway::new()
        .service("gone", dead.address)
        .plugin("cors", "cors")
        .toml(&format!(
            r#"
[[routes]]
name = "gone"
prefix = "/"
service = "gone"

[[routes.plugins]]
name = "cors"
config = {CONFIG}
"#
        ))
        .start();
    gateway.wait_for_log("upstream down");
    let response = client()
        .get(gateway.url("/x"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["access-control-allow-origin"], APP);
    assert_eq!(response.headers()["vary"], "Origin");
}

#[test]
fn any_origin_with_credentials_is_refused_when_the_config_is_loaded() {
    let upstream = Upstream::start();
    let (status, output) = TestGateway::new()
        .service("echo", upstream.address)
        .plugin("cors", "cors")
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/"
service = "echo"

[[routes.plugins]]
name = "cors"
config = { origins = ["*"], credentials = true }
"#,
        )
        .check();
    assert!(!status.success(), "{output}");
    assert!(output.contains("wasmgate.toml:"), "{output}");
    assert!(
        output.contains(r#"origins: "*" cannot go with credentials = true"#),
        "{output}"
    );
}
