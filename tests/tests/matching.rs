//! Routes that match on headers and query parameters, and routes that split their
//! traffic between services by weight (a canary), on a real gateway with two real
//! upstreams; and `check`'s errors for bad values.

use wasmgate_e2e::{GatewayProcess, TestGateway, Upstream, UpstreamBehaviour, admin_json, client};

/// An echo upstream that marks its answers `x-which: NAME`.
fn upstream(name: &str) -> Upstream {
    Upstream::start_with(UpstreamBehaviour {
        response_header: Some(("x-which".into(), name.into())),
        ..UpstreamBehaviour::default()
    })
}

/// Which upstream answered `GET path` with `headers`.
async fn which(gateway: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> String {
    let mut request = client().get(gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} {headers:?}");
    response.headers()["x-which"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_query_conditions_choose_the_route() {
    let (stable, beta) = (upstream("stable"), upstream("beta"));
    let gateway = TestGateway::new()
        .service("stable", stable.address)
        .service("beta", beta.address)
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/api"
service = "stable"

[[routes]]
name = "api-canary-header"
prefix = "/api"
service = "beta"
headers = [{ name = "X-Canary", value = "1" }]

[[routes]]
name = "api-mobile"
prefix = "/api"
service = "beta"
headers = [{ name = "user-agent", regex = "(?i).*(iphone|android).*" }, { name = "x-app" }]

[[routes]]
name = "api-v2"
prefix = "/api"
service = "beta"
query = [{ name = "version", value = "2" }]
"#,
        )
        .start();

    assert_eq!(which(&gateway, "/api/items", &[]).await, "stable");
    assert_eq!(
        which(&gateway, "/api/items", &[("x-canary", "1")]).await,
        "beta"
    );
    assert_eq!(
        which(&gateway, "/api/items", &[("x-canary", "0")]).await,
        "stable"
    );
    // Both conditions of api-mobile, or it is not there.
    assert_eq!(
        which(
            &gateway,
            "/api/items",
            &[("user-agent", "Mozilla/5.0 (iPhone)"), ("x-app", "")]
        )
        .await,
        "beta"
    );
    assert_eq!(
        which(
            &gateway,
            "/api/items",
            &[("user-agent", "Mozilla/5.0 (iPhone)")]
        )
        .await,
        "stable"
    );
    assert_eq!(which(&gateway, "/api/items?version=2", &[]).await, "beta");
    assert_eq!(
        which(&gateway, "/api/items?version=%32", &[]).await,
        "beta",
        "values are compared percent-decoded"
    );
    assert_eq!(
        which(&gateway, "/api/items?version=20", &[]).await,
        "stable"
    );
    assert_eq!(stable.hits() + beta.hits(), 8);

    // The admin API shows the conditions.
    let routes: serde_json::Value = admin_json(&gateway, "/admin/routes").await;
    let mobile = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "api-mobile")
        .unwrap();
    assert_eq!(mobile["headers"][0]["regex"], "(?i).*(iphone|android).*");
    assert_eq!(mobile["headers"][1]["name"], "x-app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_splits_its_requests_between_services_by_weight() {
    let (stable, canary, drained) = (upstream("stable"), upstream("canary"), upstream("drained"));
    let gateway = TestGateway::new()
        .service("stable", stable.address)
        .service("canary", canary.address)
        .service("drained", drained.address)
        .toml(
            r#"
[[routes]]
name = "api"
prefix = "/"
services = [{ name = "stable", weight = 80 }, { name = "canary", weight = 20 }, { name = "drained", weight = 0 }]
"#,
        )
        .start();
    const REQUESTS: usize = 500;
    let mut to_canary = 0;
    for _ in 0..REQUESTS {
        match which(&gateway, "/x", &[]).await.as_str() {
            "canary" => to_canary += 1,
            "stable" => {}
            other => panic!("a request went to {other}"),
        }
    }
    // 20% of 500 is 100, with a standard deviation of about 9: 50 to 150 is more
    // than five of them either way.
    assert!(
        (50..=150).contains(&to_canary),
        "{to_canary} of {REQUESTS} went to the canary"
    );
    assert_eq!(drained.hits(), 0);
}

/// `check` output for `toml` after two services (lines 8-13: the TOML below starts
/// on line 14).
fn refused(toml: &str) -> String {
    TestGateway::new()
        .service("a", "127.0.0.1:1".parse().unwrap())
        .service("b", "127.0.0.1:2".parse().unwrap())
        .toml(toml)
        .check_refused()
}

#[test]
fn bad_conditions_and_splits_are_refused_with_file_and_line() {
    let route = "[[routes]]\nname = \"r\"\nprefix = \"/\"\n";
    for (rest, line, message) in [
        (
            "service = \"a\"\nheaders = [{ name = \"x\", value = \"1\", regex = \"1\" }]\n",
            18,
            "route \"r\": headers: give `value` or `regex`, not both",
        ),
        (
            "service = \"a\"\nheaders = [{ name = \"x\", regex = \"(unclosed\" }]\n",
            18,
            "route \"r\": headers: regex \"(unclosed\"",
        ),
        (
            "service = \"a\"\nheaders = [{ name = \"bad name\" }]\n",
            18,
            "\"bad name\" is not a header name",
        ),
        (
            "service = \"a\"\nquery = [{ name = \"\" }]\n",
            18,
            "route \"r\": query: a query parameter needs a name",
        ),
        (
            "services = [{ name = \"a\", weight = 1 }, { name = \"c\", weight = 1 }]\n",
            17,
            "route \"r\": unknown service \"c\" (known: a, b)",
        ),
        (
            "service = \"a\"\nservices = [{ name = \"b\", weight = 1 }]\n",
            18,
            "give either `service` or `services`, not both",
        ),
        (
            "services = [{ name = \"a\", weight = 0 }, { name = \"b\", weight = 0 }]\n",
            17,
            "`services` needs at least one weight above 0",
        ),
        (
            "services = [{ name = \"a\", weight = 1 }, { name = \"a\", weight = 2 }]\n",
            17,
            "service \"a\" is listed twice",
        ),
        (
            "services = [{ name = \"a\", weight = 1001 }]\n",
            17,
            "weight must be 0 to 1000",
        ),
    ] {
        let output = refused(&format!("{route}{rest}"));
        assert!(
            output.contains(&format!("wasmgate.toml:{line}:")) && output.contains(message),
            "want line {line} and {message:?} in: {output}"
        );
    }
}
