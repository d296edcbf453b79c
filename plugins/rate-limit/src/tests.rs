use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

use super::*;

/// 2026-01-01T00:00:00Z, the harness's clock at start: on every window's boundary.
const START_MS: u64 = 1_767_225_600_000;

fn harness(config: &str) -> Harness<RateLimit> {
    let h = Harness::new(config).unwrap_or_else(|error| panic!("{config}: {error}"));
    h.set_time_ms(START_MS);
    h
}

/// What one request got: its status (200 when it passed) and the headers the client
/// would see (for a passed request, those the response phase added).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<serde_json::Value>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .parse()
            .unwrap()
    }
}

fn send(h: &mut Harness<RateLimit>, request: TestRequest) -> Answer {
    h.ctx.vars.retain(|(name, _)| name != STATE_VAR);
    let outcome = h.on_request(request);
    let response = match outcome.response() {
        Some(response) => response.clone(),
        None => h.on_response(Response::new(200)),
    };
    Answer {
        status: response.status,
        headers: response
            .headers
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8(v).unwrap()))
            .collect(),
        body: response
            .body
            .as_deref()
            .map(|b| serde_json::from_slice(b).unwrap()),
    }
}

fn get(h: &mut Harness<RateLimit>) -> Answer {
    send(h, TestRequest::get("/things"))
}

fn as_user(h: &mut Harness<RateLimit>, method: &str, consumer: &str) {
    h.ctx.vars = vec![
        (METHOD_VAR.into(), method.into()),
        (USER_ID_VAR.into(), consumer.into()),
        (CONSUMER_VAR.into(), consumer.into()),
    ];
}

#[test]
fn a_sliding_window_passes_the_limit_then_refuses_with_the_envelope_and_headers() {
    let mut h = harness(r#"{"limit": {"requests": 3, "per": "1m"}}"#);
    for remaining in [2, 1, 0] {
        let answer = get(&mut h);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.number("x-ratelimit-limit"), 3);
        assert_eq!(answer.number("x-ratelimit-remaining"), remaining);
        assert_eq!(answer.number("x-ratelimit-reset"), START_MS / 1000 + 60);
    }
    h.advance_ms(20_000);
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    let envelope = refused.body.as_ref().unwrap();
    assert_eq!(envelope["code"], "RATE_LIMITED");
    assert_eq!(envelope["error"], "too many requests");
    assert_eq!(envelope["request_id"], "test-request-1");
    assert_eq!(refused.number("x-ratelimit-remaining"), 0);
    // The current window is full: the next request fits once a third of this
    // window's count has slid out of the next one (3 × (60 − e)/60 ≤ 2 ⇒ e ≥ 20 s).
    assert_eq!(refused.number("x-ratelimit-reset"), START_MS / 1000 + 80);
    assert_eq!(refused.number("retry-after"), 60);
    assert_eq!(
        h.metric_calls()
            .last()
            .map(|c| (c.name.clone(), c.labels.clone())),
        Some((
            "rate_limit_exceeded_total".to_string(),
            vec![
                ("route".to_string(), "test".to_string()),
                ("tier".to_string(), "anonymous".to_string())
            ]
        ))
    );
    assert!(h.refused_metrics().is_empty());
}

#[test]
fn the_window_slides_a_request_passes_again_at_the_reset_it_was_told() {
    let mut h = harness(r#"{"limit": {"requests": 4, "per": "10s"}}"#);
    h.advance_ms(9_000);
    for _ in 0..4 {
        assert_eq!(get(&mut h).status, 200);
    }
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    let reset_ms = refused.number("x-ratelimit-reset") * 1000;
    // 4 × (10 − e)/10 ≤ 3 ⇒ e ≥ 2.5 s into the next window; the header has whole
    // seconds, rounded up.
    assert_eq!(reset_ms, START_MS + 13_000);
    assert_eq!(refused.number("retry-after"), 4, "12.5 s − 9 s, rounded up");
    h.set_time_ms(START_MS + 12_499);
    assert_eq!(get(&mut h).status, 429, "a millisecond early");
    h.set_time_ms(reset_ms);
    let passed = get(&mut h);
    assert_eq!(passed.status, 200, "at the reset");
    assert_eq!(passed.number("x-ratelimit-remaining"), 0);
    assert_eq!(get(&mut h).status, 429, "and only one");
}

#[test]
fn refused_requests_are_given_back_so_they_do_not_hold_the_window_shut() {
    let mut h = harness(r#"{"limit": {"requests": 2, "per": "10s"}}"#);
    for _ in 0..2 {
        assert_eq!(get(&mut h).status, 200);
    }
    for _ in 0..50 {
        assert_eq!(get(&mut h).status, 429);
    }
    // Had the 50 refusals counted, the next window would start 52 deep.
    h.advance_ms(15_000);
    assert_eq!(get(&mut h).status, 200, "2 × 0.5 + 1 ≤ 2");
    assert_eq!(get(&mut h).status, 429);
}

#[test]
fn a_fixed_window_resets_at_its_end() {
    let mut h = harness(r#"{"algorithm": "fixed_window", "limit": {"requests": 2, "per": "1m"}}"#);
    h.advance_ms(59_000);
    assert_eq!(get(&mut h).status, 200);
    assert_eq!(get(&mut h).status, 200);
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.number("retry-after"), 1);
    assert_eq!(refused.number("x-ratelimit-reset"), START_MS / 1000 + 60);
    h.advance_ms(1_000);
    let fresh = get(&mut h);
    assert_eq!(fresh.status, 200, "a new window");
    assert_eq!(fresh.number("x-ratelimit-remaining"), 1);
}

#[test]
fn a_token_bucket_allows_its_burst_then_one_per_interval() {
    let mut h = harness(
        r#"{"algorithm": "token_bucket", "limit": {"requests": 10, "per": "1s", "burst": 3}}"#,
    );
    for remaining in [2, 1, 0] {
        let answer = get(&mut h);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.number("x-ratelimit-limit"), 3, "the burst");
        assert_eq!(answer.number("x-ratelimit-remaining"), remaining);
    }
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    // One token every 100 ms.
    assert_eq!(refused.number("retry-after"), 1);
    h.advance_ms(99);
    assert_eq!(get(&mut h).status, 429);
    h.advance_ms(1);
    assert_eq!(get(&mut h).status, 200, "a token after 100 ms");
    assert_eq!(get(&mut h).status, 429);
    h.advance_ms(300);
    for _ in 0..3 {
        assert_eq!(get(&mut h).status, 200, "the bucket refilled");
    }
    assert_eq!(get(&mut h).status, 429, "but not past its capacity");
}

#[test]
fn a_token_bucket_defaults_its_burst_to_requests() {
    let mut h = harness(r#"{"algorithm": "token_bucket", "limit": {"requests": 5, "per": "1h"}}"#);
    for _ in 0..5 {
        assert_eq!(get(&mut h).status, 200);
    }
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.number("retry-after"), 720, "one per 12 minutes");
}

#[test]
fn tiers_follow_the_identity_and_the_tier_a_key_carries() {
    let config = r#"{"limit": {"requests": 1, "per": "1h"},
        "tiers": {"user": {"requests": 2, "per": "1h"},
                  "api_key": {"requests": 3, "per": "1h"},
                  "pro": {"requests": 5, "per": "1h"}}}"#;
    type Case<'a> = (&'a [(&'a str, &'a str)], u64, &'a str);
    let cases: [Case; 5] = [
        (&[], 1, "anonymous"),
        (&[(METHOD_VAR, "jwt"), (CONSUMER_VAR, "alice")], 2, "user"),
        (
            &[(METHOD_VAR, "api-key"), (CONSUMER_VAR, "svc")],
            3,
            "api_key",
        ),
        (
            &[
                (METHOD_VAR, "api-key"),
                (CONSUMER_VAR, "svc2"),
                (TIER_VAR, "pro"),
            ],
            5,
            "pro",
        ),
        (
            &[
                (METHOD_VAR, "api-key"),
                (CONSUMER_VAR, "svc3"),
                (TIER_VAR, "gold"),
            ],
            3,
            "api_key",
        ),
    ];
    for (vars, limit, tier) in cases {
        let mut h = harness(config);
        h.ctx.vars = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        for _ in 0..limit {
            let answer = get(&mut h);
            assert_eq!(answer.status, 200, "{tier}");
            assert_eq!(answer.number("x-ratelimit-limit"), limit, "{tier}");
        }
        assert_eq!(get(&mut h).status, 429, "{tier}");
        let labels = h.metric_calls().pop().unwrap().labels;
        assert_eq!(labels[1], ("tier".to_string(), tier.to_string()));
    }
}

#[test]
fn an_unconfigured_tier_takes_the_default_limit() {
    let mut h = harness(
        r#"{"limit": {"requests": 2, "per": "1h"}, "tiers": {"anonymous": {"requests": 1, "per": "1h"}}}"#,
    );
    as_user(&mut h, "jwt", "alice");
    assert_eq!(get(&mut h).number("x-ratelimit-limit"), 2);
    h.ctx.vars.clear();
    assert_eq!(get(&mut h).number("x-ratelimit-limit"), 1);
}

#[test]
fn each_consumer_has_its_own_count_and_anonymous_clients_count_by_address() {
    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}}"#);
    as_user(&mut h, "jwt", "alice");
    assert_eq!(get(&mut h).status, 200);
    assert_eq!(get(&mut h).status, 429);
    as_user(&mut h, "jwt", "bob");
    assert_eq!(get(&mut h).status, 200, "bob's own count");
    // Alice from another address is still alice.
    as_user(&mut h, "jwt", "alice");
    h.ctx.client_addr = "10.0.0.9:1234".into();
    assert_eq!(get(&mut h).status, 429);
    // No consumer: the client's address.
    h.ctx.vars.clear();
    h.ctx.client_addr = "10.0.0.1:1111".into();
    assert_eq!(get(&mut h).status, 200);
    h.ctx.client_addr = "10.0.0.1:2222".into();
    assert_eq!(get(&mut h).status, 429, "another port is the same client");
    h.ctx.client_addr = "10.0.0.2:1111".into();
    assert_eq!(get(&mut h).status, 200);
    // An IPv6 client is its /64.
    h.ctx.client_addr = "[2001:db8:1:2::1]:1".into();
    assert_eq!(get(&mut h).status, 200);
    h.ctx.client_addr = "[2001:db8:1:2:ffff::9]:1".into();
    assert_eq!(get(&mut h).status, 429);
}

#[test]
fn a_header_key_counts_per_value_and_cannot_pose_as_another_part() {
    let mut h = harness(
        r#"{"limit": {"requests": 1, "per": "1h"}, "key": [{"header": "x-tenant"}, "route"]}"#,
    );
    let tenant = |v: &str| TestRequest::get("/").header("x-tenant", v);
    assert_eq!(send(&mut h, tenant("a")).status, 200);
    assert_eq!(send(&mut h, tenant("a")).status, 429);
    assert_eq!(send(&mut h, tenant("b")).status, 200);
    // "a|route=test" would read as tenant "a" on route "test" if not escaped.
    assert_eq!(send(&mut h, tenant("a|route=test")).status, 200);
    // Without the header: the client's address.
    assert_eq!(send(&mut h, TestRequest::get("/")).status, 200);
    assert_eq!(send(&mut h, TestRequest::get("/")).status, 429);
    h.ctx.route = "other".into();
    assert_eq!(
        send(&mut h, tenant("a")).status,
        200,
        "the route is part of it"
    );
}

#[test]
fn routes_count_apart_unless_they_share_a_bucket() {
    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}}"#);
    assert_eq!(get(&mut h).status, 200);
    h.ctx.route = "other".into();
    assert_eq!(get(&mut h).status, 200, "each route counts on its own");

    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}, "bucket": "api"}"#);
    assert_eq!(get(&mut h).status, 200);
    h.ctx.route = "other".into();
    assert_eq!(get(&mut h).status, 429, "one bucket for both routes");
}

#[test]
fn a_failing_store_refuses_by_default_and_passes_when_open() {
    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}}"#);
    h.fail_kv(Some("disk full"));
    let answer = get(&mut h);
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body.as_ref().unwrap()["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(answer.header("retry-after"), Some("1"));
    let line = h.log_lines().pop().unwrap();
    assert_eq!(line.message, "rate limit state unavailable");
    assert_eq!(line.level, Level::Warn);

    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}, "on_store_error": "open"}"#);
    h.fail_kv(Some("disk full"));
    let answer = get(&mut h);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-ratelimit-limit"),
        None,
        "nothing was counted"
    );
    h.fail_kv(None);
    assert_eq!(get(&mut h).status, 200);
    assert_eq!(
        get(&mut h).status,
        429,
        "counting again once the store is back"
    );
}

#[test]
fn without_headers_the_plugin_skips_the_response_phase() {
    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1h"}, "headers": false}"#);
    assert!(h.settings().request_only);
    let answer = get(&mut h);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-ratelimit-limit"), None);
    let refused = get(&mut h);
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("x-ratelimit-remaining"), None);
}

#[test]
fn the_response_phase_replaces_an_upstreams_rate_limit_headers() {
    let mut h = harness(r#"{"limit": {"requests": 5, "per": "1h"}}"#);
    h.on_request(TestRequest::get("/"));
    let response = h.on_response(Response::new(200).with_header("x-ratelimit-limit", "999"));
    assert_eq!(response.headers.get_all("x-ratelimit-limit"), ["5"]);
}

#[test]
fn counters_expire_after_their_windows() {
    let mut h = harness(r#"{"limit": {"requests": 1, "per": "1m"}}"#);
    assert_eq!(get(&mut h).status, 200);
    let key = |index: u64| format!("r:test|sw|60000|client=127.0.0.1|{index}");
    let index = START_MS / 60_000;
    // The count is read as the previous window's in the next one, then goes.
    assert_eq!(
        h.kv_get(&key(index)).as_deref(),
        Some(&b"1"[..]),
        "the key format"
    );
    h.advance_ms(119_000);
    assert!(h.kv_get(&key(index)).is_some());
    h.advance_ms(2_000);
    assert_eq!(h.kv_get(&key(index)), None);
}

#[test]
fn config_errors_name_the_field() {
    for (config, message) in [
        (r#"{}"#, "limit"),
        (
            r#"{"limit": {"requests": 0, "per": "1s"}}"#,
            "limit.requests must be at least 1",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1 hour"}}"#,
            "limit.per",
        ),
        (r#"{"limit": {"requests": 1, "per": "0s"}}"#, "above zero"),
        (r#"{"limit": {"requests": 1, "per": "1w"}}"#, "unit"),
        (
            r#"{"limit": {"requests": 1, "per": "1s", "burst": 2}}"#,
            "limit.burst applies to algorithm = \"token_bucket\" only",
        ),
        (
            r#"{"algorithm": "token_bucket", "limit": {"requests": 1, "per": "1s", "burst": 0}}"#,
            "burst must be at least 1",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "tiers": {"user": {"requests": 1, "per": "soon"}}}"#,
            "tiers.user.per",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "key": []}"#,
            "key",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "key": ["ip"]}"#,
            "unknown variant",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "key": [{"header": "bad header"}]}"#,
            "not a valid header name",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "bucket": "a|b"}"#,
            "bucket",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "algorithm": "leaky"}"#,
            "unknown variant",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "on_store_error": "maybe"}"#,
            "unknown variant",
        ),
        (
            r#"{"limit": {"requests": 1, "per": "1s"}, "limits": {}}"#,
            "unknown field",
        ),
    ] {
        let error = Harness::<RateLimit>::new(config)
            .err()
            .unwrap_or_else(|| panic!("{config} was accepted"));
        assert!(error.contains(message), "{config}: {error}");
    }
}

#[test]
fn durations_parse_in_every_unit() {
    assert_eq!(parse_per("250ms"), Ok(250));
    assert_eq!(parse_per("30s"), Ok(30_000));
    assert_eq!(parse_per("1m"), Ok(60_000));
    assert_eq!(parse_per("1h"), Ok(3_600_000));
    assert_eq!(parse_per("1d"), Ok(86_400_000));
    assert!(parse_per("h").is_err());
    assert!(parse_per("99999999999999999999s").is_err());
}
