use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};
use wasmgate_plugin_sdk::Headers;
use wasmgate_plugin_sdk::http::{self, OutboundRequest, OutboundResponse};
use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

const CONFIG: &str = r#"{"auth_url": "https://openstack.example.com:5000/v3", "service": "keystone",
    "clouds": [{"auth_url": "https://other.example.com/identity/", "service": "other"}],
    "region_name": "RegionOne"}"#;

fn form() -> Value {
    json!({
        "username": "demo", "password": "secret", "project_name": "demo",
        "user_domain_name": "Default", "project_domain_name": "Default",
    })
}

fn token_answer() -> OutboundResponse {
    let mut headers = Headers::new();
    headers.set("x-subject-token", "gAAAA-the-token");
    headers.set("content-type", "application/json");
    let body = json!({"token": {
        "expires_at": "2026-12-03T10:00:00.000000Z",
        "issued_at": "2026-12-02T10:00:00.000000Z",
        "methods": ["password"],
        "user": {"id": "u-1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": "p-1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "r-1", "name": "member"}, {"id": "r-2", "name": "reader"}],
        "catalog": [{"type": "compute", "name": "nova", "endpoints": [
            {"interface": "public", "region": "RegionOne", "url": "https://nova.example.com"},
            {"interface": "internal", "region": "RegionOne", "url": "http://nova.internal"},
            {"interface": "public", "region": "RegionTwo", "url": "https://nova2.example.com"}
        ]}]
    }});
    OutboundResponse {
        status: 201,
        headers,
        body: body.to_string().into_bytes(),
    }
}

fn answer(h: &mut Harness<KeystoneConnect>, body: &Value) -> (u16, Value) {
    let response = h
        .on_request(TestRequest::post("/openstack/connect").body(body.to_string()))
        .response()
        .expect("answered")
        .clone();
    (
        response.status,
        serde_json::from_slice(response.body.as_deref().unwrap()).unwrap(),
    )
}

/// A harness whose Keystone (service `keystone`) answers with `reply`, recording the
/// requests it gets.
fn with_keystone(
    reply: impl Fn() -> Result<OutboundResponse, http::Error> + 'static,
) -> (Harness<KeystoneConnect>, Rc<RefCell<Vec<OutboundRequest>>>) {
    let h = Harness::<KeystoneConnect>::new(CONFIG).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let record = seen.clone();
    h.on_http("keystone", move |request| {
        record.borrow_mut().push(request.clone());
        reply()
    });
    (h, seen)
}

#[test]
fn good_credentials_connect_and_say_what_the_token_holds() {
    let (mut h, seen) = with_keystone(|| Ok(token_answer()));
    let (status, body) = answer(&mut h, &form());
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["connected"], true);
    assert_eq!(data["project_id"], "p-1");
    assert_eq!(data["user_id"], "u-1");
    assert_eq!(data["expires_at"], "2026-12-03T10:00:00.000000Z");
    assert_eq!(data["roles"], json!(["member", "reader"]));
    assert_eq!(data["region_name"], "RegionOne");
    assert_eq!(
        data["endpoints"],
        json!([{"service_type": "compute", "service_name": "nova", "region": "RegionOne", "url": "https://nova.example.com"}])
    );
    assert!(
        !body.to_string().contains("gAAAA"),
        "the token is never returned"
    );

    // Keystone got the v3 password request with a project scope.
    let request = seen.borrow()[0].clone();
    assert_eq!(request.path_and_query, "/v3/auth/tokens");
    assert_eq!(request.method, Method::Post);
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        sent,
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}
        }})
    );
    let events: Vec<String> = h.log_lines().iter().map(|l| l.message.clone()).collect();
    assert_eq!(
        events,
        ["openstack_connect_attempt", "openstack_connect_success"]
    );
    assert!(
        h.log_lines()
            .iter()
            .all(|l| !l.to_string().contains("secret")),
        "the password is never logged"
    );
}

#[test]
fn keystone_failures_map_to_the_envelope_and_a_failed_event() {
    let status_only = |status: u16| {
        move || {
            Ok(OutboundResponse {
                status,
                headers: Headers::new(),
                body: br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#.to_vec(),
            })
        }
    };
    type Reply = Box<dyn Fn() -> Result<OutboundResponse, http::Error>>;
    let cases: Vec<(Reply, u16, &str)> = vec![
        (Box::new(status_only(401)), 401, "UNAUTHORIZED"),
        (Box::new(status_only(403)), 403, "FORBIDDEN"),
        (Box::new(status_only(500)), 502, "BAD_GATEWAY"),
        (Box::new(status_only(400)), 502, "BAD_GATEWAY"),
        (
            Box::new(|| Err(http::Error::Unreachable("connection refused".into()))),
            502,
            "BAD_GATEWAY",
        ),
        (
            Box::new(|| Err(http::Error::Timeout)),
            504,
            "GATEWAY_TIMEOUT",
        ),
        (
            Box::new(|| {
                let mut ok = token_answer();
                ok.headers = Headers::new();
                Ok(ok)
            }),
            502,
            "BAD_GATEWAY",
        ),
        (
            Box::new(|| {
                let mut ok = token_answer();
                ok.body = b"<html>".to_vec();
                Ok(ok)
            }),
            502,
            "BAD_GATEWAY",
        ),
    ];
    for (reply, want, code) in cases {
        let (mut h, _) = with_keystone(reply);
        let (status, body) = answer(&mut h, &form());
        assert_eq!(
            (status, body["code"].as_str()),
            (want, Some(code)),
            "{body}"
        );
        let last = h.log_lines().last().unwrap().clone();
        assert_eq!(last.message, "openstack_connect_failed");
        assert!(last.field("reason").is_some(), "{last}");
    }
}

#[test]
fn a_client_names_only_configured_clouds() {
    let (mut h, seen) = with_keystone(|| Ok(token_answer()));
    let other = Rc::new(RefCell::new(0));
    let count = other.clone();
    h.on_http("other", move |_| {
        *count.borrow_mut() += 1;
        Ok(token_answer())
    });
    let mut named = form();
    named["auth_url"] = json!("https://openstack.example.com:5000/v3/");
    assert_eq!(answer(&mut h, &named).0, 200);
    named["auth_url"] = json!("https://other.example.com/identity");
    assert_eq!(answer(&mut h, &named).0, 200);
    assert_eq!(*other.borrow(), 1);
    for url in ["https://evil.example.com/v3", "http://169.254.169.254/v3"] {
        named["auth_url"] = json!(url);
        let (status, body) = answer(&mut h, &named);
        assert_eq!(status, 400);
        assert!(body["data"]["fields"]["auth_url"].is_string(), "{body}");
    }
    assert_eq!(seen.borrow().len(), 1);
    assert_eq!(
        *other.borrow(),
        1,
        "nothing was sent for an unknown auth_url"
    );
}

#[test]
fn incomplete_requests_say_which_fields() {
    let (mut h, seen) = with_keystone(|| Ok(token_answer()));
    let (status, body) = answer(&mut h, &json!({"username": "demo", "interface": "outside"}));
    assert_eq!(status, 400);
    let fields = &body["data"]["fields"];
    for field in ["password", "project_name", "interface"] {
        assert!(fields[field].is_string(), "{field}: {body}");
    }
    assert!(fields["username"].is_null());
    let response = h
        .on_request(TestRequest::post("/openstack/connect").body("{"))
        .response()
        .unwrap()
        .clone();
    assert_eq!(response.status, 400);
    let response = h
        .on_request(TestRequest::get("/openstack/connect"))
        .response()
        .unwrap()
        .clone();
    assert_eq!(response.status, 405);
    assert!(seen.borrow().is_empty());
}

#[test]
fn token_paths_and_configs() {
    for (url, path) in [
        ("https://h:5000/v3", "/v3/auth/tokens"),
        ("https://h:5000/v3/", "/v3/auth/tokens"),
        ("https://h/identity", "/identity/v3/auth/tokens"),
        ("http://h:5000", "/v3/auth/tokens"),
    ] {
        assert_eq!(keystone::tokens_path(url).unwrap(), path, "{url}");
    }
    for (config, says) in [
        (r#"{"auth_url": "ftp://h/v3", "service": "k"}"#, "https://"),
        (r#"{"auth_url": "https://h/v3?x", "service": "k"}"#, "query"),
        (
            r#"{"auth_url": "https://h/v3", "service": ""}"#,
            "service is empty",
        ),
        (
            r#"{"auth_url": "https://h/v3", "service": "k", "interface": "private"}"#,
            "interface",
        ),
        (r#"{"service": "k"}"#, "auth_url"),
    ] {
        let error = Harness::<KeystoneConnect>::new(config).err().expect(config);
        assert!(error.contains(says), "{config}: {error}");
    }
}
