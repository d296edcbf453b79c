//! The `request-validator` plugin on real traffic: schema failures name their fields,
//! a valid body reaches the upstream unchanged, missing headers and query parameters,
//! a wrong content type and invalid JSON are refused before the upstream, and an
//! invalid schema is refused at load.

use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, assert_envelope, client};

fn gateway(upstream: &Upstream) -> GatewayProcess {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("request-validator", "request-validator")
        .toml(
            r#"
[[routes]]
name = "users"
path = "/users"
methods = ["POST"]
service = "echo"

[[routes.plugins]]
name = "request-validator"

[routes.plugins.config]
headers = { "x-api-version" = "v[12]" }
query = { tenant = "[a-z]+" }

[routes.plugins.config.schema]
type = "object"
required = ["user"]
properties.user = { type = "object", required = ["email", "name"], properties = { email = { type = "string", format = "email" }, name = { type = "string", minLength = 1 }, age = { type = "integer" } } }
"#,
        )
        .start()
}

/// Sends `POST /users{query}` with `headers` and `body`; returns the refusal's
/// `data.fields` as (field, message) after checking the envelope.
async fn refused(
    gateway: &GatewayProcess,
    query: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    let mut request = client()
        .post(gateway.url(&format!("/users{query}")))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let envelope = assert_envelope(
        status,
        Some(&id),
        &response.bytes().await.unwrap(),
        400,
        "VALIDATION_ERROR",
    );
    envelope["data"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("data.fields: {envelope}"))
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const JSON: (&str, &str) = ("content-type", "application/json");
const VERSION: (&str, &str) = ("x-api-version", "v2");

#[tokio::test]
async fn a_valid_body_reaches_the_upstream_unchanged() {
    let upstream = Upstream::start();
    let gateway = gateway(&upstream);
    let body = "{\"user\": {\"email\": \"ann@example.com\",\n \"name\": \"Ann\", \"age\": 30}, \"x\": 1.50}";
    let response = client()
        .post(gateway.url("/users?tenant=acme"))
        .header(JSON.0, JSON.1)
        .header(VERSION.0, VERSION.1)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["body"], body, "byte for byte");
    assert_eq!(echo["query"], "tenant=acme");
    assert_eq!(echo["headers"]["x-api-version"][0], "v2");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn schema_failures_name_the_fields() {
    let upstream = Upstream::start();
    let gateway = gateway(&upstream);
    let mut fields = refused(
        &gateway,
        "?tenant=acme",
        &[JSON, VERSION],
        r#"{"user": {"email": "not-an-address", "age": "thirty"}}"#,
    )
    .await;
    fields.sort();
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        ["/user/age", "/user/email", "/user/name"],
        "{fields:?}"
    );
    assert!(fields[2].1.contains("required"), "{fields:?}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn missing_headers_and_query_parameters_wrong_content_types_and_invalid_json() {
    let upstream = Upstream::start();
    let gateway = gateway(&upstream);
    let valid = r#"{"user": {"email": "ann@example.com", "name": "Ann"}}"#;
    let one = |field: &str, message: &str| vec![(field.to_string(), message.to_string())];

    assert_eq!(
        refused(&gateway, "?tenant=acme", &[JSON], valid).await,
        one("header:x-api-version", "is required")
    );
    assert_eq!(
        refused(
            &gateway,
            "?tenant=acme",
            &[JSON, ("x-api-version", "v3")],
            valid
        )
        .await,
        one("header:x-api-version", "does not match the pattern v[12]")
    );
    assert_eq!(
        refused(&gateway, "", &[JSON, VERSION], valid).await,
        one("query:tenant", "is required")
    );
    assert_eq!(
        refused(&gateway, "?tenant=ACME", &[JSON, VERSION], valid).await,
        one("query:tenant", "does not match the pattern [a-z]+")
    );
    assert_eq!(
        refused(
            &gateway,
            "?tenant=acme",
            &[("content-type", "text/plain"), VERSION],
            valid
        )
        .await,
        one(
            "header:content-type",
            r#""text/plain" is not allowed; expected application/json"#
        )
    );
    let fields = refused(&gateway, "?tenant=acme", &[JSON, VERSION], r#"{"user": "#).await;
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0, "body");
    assert!(fields[0].1.starts_with("is not valid JSON"), "{fields:?}");
    assert_eq!(
        refused(&gateway, "?tenant=acme", &[JSON, VERSION], "").await,
        one("body", "a JSON body is required")
    );
    // Several problems at once, in order: headers, query, body.
    let fields = refused(&gateway, "", &[JSON], "{}").await;
    let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["header:x-api-version", "query:tenant", "/user"]);
    assert_eq!(upstream.hits(), 0);
}

#[test]
fn an_invalid_schema_is_refused_at_load() {
    let (status, output) = TestGateway::new()
        .plugin("request-validator", "request-validator")
        .toml(
            r#"
[[routes]]
name = "r"
prefix = "/"

[[routes.plugins]]
name = "request-validator"
config = { schema = { type = "object", properties = { age = { type = "integr" } } } }
"#,
        )
        .check();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("schema at /properties/age/type"),
        "{output}"
    );
}
