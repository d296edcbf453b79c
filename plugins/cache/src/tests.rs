use serde_json::Value;
use wasmgate_plugin_sdk::testing::{Harness, Outcome, TestRequest};
use wasmgate_plugin_sdk::{Response, kv};

use super::*;

const BODY: &str = "hello from the upstream";

fn cache(config: &str) -> Harness<Cache> {
    Harness::new(config).unwrap()
}

/// One request's phases through the cache: `on_request`, then, if it continued, the
/// upstream's `response` through `on_response`. Returns what the client gets and
/// whether the upstream was called.
fn exchange(h: &mut Harness<Cache>, request: TestRequest, response: Response) -> (Response, bool) {
    h.ctx.vars.clear();
    let outcome: Outcome = h.on_request(request);
    match outcome.response() {
        Some(answer) => (answer.clone(), false),
        None => (h.on_response(response), true),
    }
}

fn ok(cache_control: &str) -> Response {
    let mut response = Response::text(200, BODY);
    if !cache_control.is_empty() {
        response.headers.set("cache-control", cache_control);
    }
    response
}

fn get(path: &str) -> TestRequest {
    TestRequest::get(path).header("host", "api.example.com")
}

fn x_cache(response: &Response) -> String {
    response.headers.get(X_CACHE).unwrap_or_default()
}

/// Sends `request` twice with `response` from the upstream: (first, second) X-Cache.
fn twice(h: &mut Harness<Cache>, request: TestRequest, response: Response) -> (String, String) {
    let (first, _) = exchange(h, request.clone(), response.clone());
    let (second, _) = exchange(h, request, response);
    (x_cache(&first), x_cache(&second))
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

#[test]
fn a_miss_is_stored_and_the_next_request_is_a_hit_whose_age_grows() {
    let mut h = cache("{}");
    assert!(h.settings().response_body && !h.settings().request_only);
    let upstream = ok("max-age=60").with_header("x-request-id", "upstream-id");
    let (first, called) = exchange(&mut h, get("/items"), upstream.clone());
    assert!(called);
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(h.ctx.var(STATUS_VAR), Some("MISS"));

    h.advance_ms(5_000);
    let (second, called) = exchange(&mut h, get("/items"), upstream.clone());
    assert!(!called, "a hit does not reach the upstream");
    assert_eq!(second.status, 200);
    assert_eq!(second.body_text(), BODY);
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.headers.get("age").as_deref(), Some("5"));
    assert_eq!(
        second.headers.get("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(second.headers.get("x-request-id"), None, "not stored");
    assert_eq!(h.ctx.var(STATUS_VAR), Some("HIT"));

    h.advance_ms(20_000);
    let (third, _) = exchange(&mut h, get("/items"), upstream.clone());
    assert_eq!(third.headers.get("age").as_deref(), Some("25"));

    // Stale after max-age: back to the upstream, stored again.
    h.advance_ms(36_000);
    let (fourth, called) = exchange(&mut h, get("/items"), upstream);
    assert!(called);
    assert_eq!(x_cache(&fourth), "MISS");
    assert_eq!(h.counter("cache_requests_total", &[("result", "hit")]), 2);
    assert_eq!(h.counter("cache_requests_total", &[("result", "miss")]), 2);
    assert!(h.refused_metrics().is_empty());
}

#[test]
fn freshness_s_maxage_over_max_age_then_expires_then_the_default() {
    let mut h = cache(r#"{"default_ttl_seconds": 10}"#);
    exchange(&mut h, get("/s"), ok("max-age=1, s-maxage=100"));
    exchange(&mut h, get("/d"), ok(""));
    let expires = ok("")
        .with_header("date", "Thu, 01 Jan 2026 00:00:00 GMT")
        .with_header("expires", "Thu, 01 Jan 2026 00:00:30 GMT");
    exchange(&mut h, get("/e"), expires);
    h.advance_ms(9_000);
    for path in ["/s", "/d", "/e"] {
        assert_eq!(
            x_cache(&exchange(&mut h, get(path), ok("")).0),
            "HIT",
            "{path}"
        );
    }
    h.advance_ms(2_000); // 11 s: the default is over
    assert_eq!(
        x_cache(&exchange(&mut h, get("/d"), ok("no-store")).0),
        "MISS"
    );
    h.advance_ms(20_000); // 31 s: Expires is over
    assert_eq!(
        x_cache(&exchange(&mut h, get("/e"), ok("no-store")).0),
        "MISS"
    );
    assert_eq!(x_cache(&exchange(&mut h, get("/s"), ok("")).0), "HIT");

    // With no default, a response that gives no lifetime is not stored; nor is one
    // whose upstream Age already used it up.
    let mut h = cache(r#"{"default_ttl_seconds": 0}"#);
    assert_eq!(twice(&mut h, get("/d"), ok("")), pair("MISS", "MISS"));
    let aged = ok("max-age=60").with_header("age", "60");
    assert_eq!(twice(&mut h, get("/a"), aged), pair("MISS", "MISS"));
    // The Age it arrived with counts in the Age served.
    let aged = ok("max-age=60").with_header("age", "20");
    exchange(&mut h, get("/b"), aged);
    let (hit, _) = exchange(&mut h, get("/b"), ok(""));
    assert_eq!(hit.headers.get("age").as_deref(), Some("20"));
    h.advance_ms(41_000);
    assert_eq!(x_cache(&exchange(&mut h, get("/b"), ok("")).0), "MISS");
}

#[test]
fn responses_that_forbid_storing_are_not_stored() {
    let mut h = cache("{}");
    for cc in [
        "no-store",
        "private",
        "no-cache",
        "max-age=60, private=\"x-user\"",
        "max-age=0",
    ] {
        assert_eq!(
            twice(&mut h, get("/p"), ok(cc)),
            pair("MISS", "MISS"),
            "{cc}"
        );
    }
    assert_eq!(
        twice(&mut h, get("/p"), ok("public, max-age=60")),
        pair("MISS", "HIT")
    );
}

#[test]
fn requests_with_no_store_or_no_cache_bypass_the_cache() {
    let mut h = cache("{}");
    exchange(&mut h, get("/r"), ok("max-age=60"));
    let fresh = Response::text(200, "fresher").with_header("cache-control", "max-age=60");
    // no-cache: not served from the cache, but the new response is stored.
    let (answer, called) = exchange(
        &mut h,
        get("/r").header("cache-control", "no-cache"),
        fresh.clone(),
    );
    assert!(called);
    assert_eq!(x_cache(&answer), "BYPASS");
    assert_eq!(exchange(&mut h, get("/r"), ok("")).0.body_text(), "fresher");
    // Pragma: no-cache (HTTP/1.0) counts when there is no Cache-Control.
    let (answer, called) = exchange(
        &mut h,
        get("/r").header("pragma", "no-cache"),
        ok("max-age=60"),
    );
    assert!(called);
    assert_eq!(x_cache(&answer), "BYPASS");
    // no-store: neither served nor stored.
    let other = Response::text(200, "not kept").with_header("cache-control", "max-age=60");
    let (answer, called) = exchange(&mut h, get("/r").header("cache-control", "no-store"), other);
    assert!(called);
    assert_eq!(x_cache(&answer), "BYPASS");
    assert_eq!(h.ctx.var(KEY_VAR), None);
    assert_eq!(exchange(&mut h, get("/r"), ok("")).0.body_text(), BODY);
    // max-age=N: an entry older than N is not served.
    h.advance_ms(10_000);
    let young = get("/r").header("cache-control", "max-age=5");
    assert_eq!(
        x_cache(&exchange(&mut h, young, ok("max-age=60")).0),
        "MISS"
    );
    let (answer, _) = exchange(
        &mut h,
        get("/r").header("cache-control", "max-age=5"),
        ok(""),
    );
    assert_eq!(x_cache(&answer), "HIT");
}

#[test]
fn authorization_bypasses_unless_configured() {
    let mut h = cache("{}");
    let authorized = get("/me").header("authorization", "Bearer alice");
    assert_eq!(
        twice(&mut h, authorized.clone(), ok("max-age=60")),
        pair("BYPASS", "BYPASS")
    );
    assert_eq!(h.ctx.var(KEY_VAR), None);
    // Nothing was stored that an anonymous request could get.
    assert_eq!(
        x_cache(&exchange(&mut h, get("/me"), ok("no-store")).0),
        "MISS"
    );

    let mut h = cache(r#"{"cache_authorized": true}"#);
    assert_eq!(
        twice(&mut h, authorized, ok("max-age=60")),
        pair("MISS", "HIT")
    );
}

#[test]
fn set_cookie_is_not_stored_unless_configured() {
    let with_cookie = ok("max-age=60").with_header("set-cookie", "session=alice");
    let mut h = cache("{}");
    assert_eq!(
        twice(&mut h, get("/c"), with_cookie.clone()),
        pair("MISS", "MISS")
    );

    let mut h = cache(r#"{"cache_set_cookie": true}"#);
    assert_eq!(twice(&mut h, get("/c"), with_cookie), pair("MISS", "HIT"));
    let (hit, _) = exchange(&mut h, get("/c"), ok(""));
    assert_eq!(
        hit.headers.get("set-cookie").as_deref(),
        Some("session=alice")
    );
}

#[test]
fn only_configured_statuses_and_only_the_upstreams_answers_are_stored() {
    let mut h = cache("{}");
    let status = |s: u16| {
        let mut r = ok("max-age=60");
        r.status = s;
        r
    };
    assert_eq!(twice(&mut h, get("/404"), status(404)), pair("MISS", "HIT"));
    assert_eq!(twice(&mut h, get("/301"), status(301)), pair("MISS", "HIT"));
    assert_eq!(
        twice(&mut h, get("/500"), status(500)),
        pair("MISS", "MISS")
    );
    assert_eq!(
        twice(&mut h, get("/203"), status(203)),
        pair("MISS", "MISS")
    );

    let mut h = cache(r#"{"statuses": [200, 203]}"#);
    assert_eq!(twice(&mut h, get("/203"), status(203)), pair("MISS", "HIT"));
    assert_eq!(
        twice(&mut h, get("/404"), status(404)),
        pair("MISS", "MISS")
    );

    // The gateway's own 502/504, or a later plugin's answer: no upstream behind it.
    let mut h = cache("{}");
    h.ctx.upstream = None;
    assert_eq!(
        twice(&mut h, get("/x"), ok("max-age=60")),
        pair("MISS", "MISS")
    );
}

#[test]
fn vary_keeps_one_entry_per_variant() {
    let mut h = cache("{}");
    let english = Response::text(200, "hello")
        .with_header("cache-control", "max-age=60")
        .with_header("vary", "Accept-Language");
    let german = Response::text(200, "hallo")
        .with_header("cache-control", "max-age=60")
        .with_header("vary", "accept-language");
    let en = || get("/greeting").header("accept-language", "en");
    let de = || get("/greeting").header("accept-language", "de");
    assert_eq!(x_cache(&exchange(&mut h, en(), english.clone()).0), "MISS");
    // The values never reach a variable, only their digests.
    let digests = h.ctx.var(VARY_VAR).unwrap().to_string();
    assert!(digests.contains("accept-language="), "{digests}");
    assert!(!digests.contains("=en\n"), "{digests}");
    let (answer, called) = exchange(&mut h, de(), german);
    assert!(called, "another language is another variant");
    assert_eq!(answer.body_text(), "hallo");
    let (answer, called) = exchange(&mut h, en(), english.clone());
    assert!(!called);
    assert_eq!(answer.body_text(), "hello");
    let (answer, called) = exchange(&mut h, de().header("accept", "x"), english.clone());
    assert!(!called, "headers Vary does not name do not matter");
    assert_eq!(answer.body_text(), "hallo");
    // Without the header: a variant of its own.
    let (answer, called) = exchange(&mut h, get("/greeting"), english);
    assert!(called);
    assert_eq!(x_cache(&answer), "MISS");

    let star = ok("max-age=60").with_header("vary", "*");
    assert_eq!(twice(&mut h, get("/star"), star), pair("MISS", "MISS"));
}

#[test]
fn a_changed_vary_replaces_the_spec() {
    let mut h = cache("{}");
    let by_language = ok("max-age=60").with_header("vary", "accept-language");
    let plain = ok("max-age=60");
    let en = get("/v").header("accept-language", "en");
    exchange(&mut h, en.clone(), by_language);
    assert_eq!(
        x_cache(&exchange(&mut h, en.clone(), plain.clone()).0),
        "HIT"
    );
    // A no-cache request refreshes it with a response that no longer varies.
    exchange(
        &mut h,
        en.clone().header("cache-control", "no-cache"),
        plain.clone(),
    );
    let de = get("/v").header("accept-language", "de");
    assert_eq!(x_cache(&exchange(&mut h, de, plain).0), "HIT");
}

#[test]
fn head_is_answered_from_the_get_entry_and_never_stored() {
    let mut h = cache("{}");
    let head = || TestRequest::method("HEAD", "/h").header("host", "api.example.com");
    let empty = ok("max-age=60");
    assert_eq!(twice(&mut h, head(), empty), pair("MISS", "MISS"));
    assert_eq!(h.ctx.var(KEY_VAR), None);
    exchange(&mut h, get("/h"), ok("max-age=60"));
    let (answer, called) = exchange(&mut h, head(), ok(""));
    assert!(!called);
    assert_eq!(x_cache(&answer), "HIT");
    // The gateway sends no body for HEAD, and the stored body's Content-Length.
    assert_eq!(answer.body_text(), BODY);
}

#[test]
fn other_methods_bypass_and_are_not_stored() {
    let mut h = cache("{}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let request = TestRequest::method(method, "/m").header("host", "h");
        assert_eq!(
            twice(&mut h, request, ok("max-age=60")),
            pair("BYPASS", "BYPASS")
        );
    }
    assert_eq!(
        x_cache(&exchange(&mut h, get("/m"), ok("no-store")).0),
        "MISS"
    );
}

#[test]
fn hosts_and_queries_are_kept_apart() {
    let mut h = cache("{}");
    let answer = |text: &str| Response::text(200, text).with_header("cache-control", "max-age=60");
    let requests = [
        ("a.example", None, "a"),
        ("b.example", None, "b"),
        ("a.example", Some(""), "empty query"),
        ("a.example", Some("page=2"), "page 2"),
        ("a.example", Some("page=2&x"), "page 2 and x"),
    ];
    let request = |host: &str, query: Option<&str>| {
        let path = match query {
            Some(q) => format!("/list?{q}"),
            None => "/list".into(),
        };
        TestRequest::get(&path).header("host", host)
    };
    for (host, query, text) in requests {
        exchange(&mut h, request(host, query), answer(text));
    }
    for (host, query, text) in requests {
        let (hit, called) = exchange(&mut h, request(host, query), answer("wrong"));
        assert!(!called);
        assert_eq!(hit.body_text(), text, "{host} {query:?}");
    }
}

#[test]
fn an_entry_over_max_entry_bytes_is_not_stored() {
    let mut h = cache(r#"{"max_entry_bytes": 1000, "max_total_bytes": 10000}"#);
    let big = Response::text(200, "x".repeat(1000)).with_header("cache-control", "max-age=60");
    assert_eq!(twice(&mut h, get("/big"), big), pair("MISS", "MISS"));
    assert_eq!(store::stored_bytes().unwrap(), 0);
    assert_eq!(
        twice(&mut h, get("/small"), ok("max-age=60")),
        pair("MISS", "HIT")
    );
}

/// The ledger and the index agree: the ledger is the sum of the index's sizes.
fn index_total() -> i64 {
    kv::scan(key::INDEX, None, 1000)
        .unwrap()
        .iter()
        .map(|(_, record)| {
            let record = String::from_utf8_lossy(record);
            record.split(' ').next().unwrap().parse::<i64>().unwrap()
        })
        .sum()
}

#[test]
fn the_total_cap_evicts_the_oldest_entries() {
    let mut h = cache(r#"{"max_entry_bytes": 1000, "max_total_bytes": 2500}"#);
    let sized = || Response::text(200, "x".repeat(600)).with_header("cache-control", "max-age=60");
    for path in ["/1", "/2", "/3"] {
        exchange(&mut h, get(path), sized());
        let total = store::stored_bytes().unwrap();
        assert!(total <= 2500, "{total}");
        assert_eq!(total, index_total());
    }
    // Each entry is about 800 bytes counted: three fit, a fourth evicts the first.
    assert_eq!(x_cache(&exchange(&mut h, get("/1"), sized()).0), "HIT");
    exchange(&mut h, get("/4"), sized());
    assert!(store::stored_bytes().unwrap() <= 2500);
    assert_eq!(x_cache(&exchange(&mut h, get("/2"), sized()).0), "HIT");
    assert_eq!(x_cache(&exchange(&mut h, get("/4"), sized()).0), "HIT");
    let (answer, called) = exchange(&mut h, get("/1"), ok("no-store"));
    assert!(called, "the oldest entry was evicted");
    assert_eq!(x_cache(&answer), "MISS");
    assert_eq!(store::stored_bytes().unwrap(), index_total());

    // Expired entries are collected by eviction too: the ledger never drifts.
    h.advance_ms(120_000);
    for i in 0..20 {
        exchange(&mut h, get(&format!("/n{i}")), sized());
        assert!(store::stored_bytes().unwrap() <= 2500);
    }
    assert_eq!(store::stored_bytes().unwrap(), index_total());
    assert!(kv::scan(key::INDEX, None, 1000).unwrap().len() <= 3);
}

/// Swaps the plugin for one with `config`, keeping this thread's store (without
/// expiry: enough for these tests).
fn reconfigure(h: &mut Harness<Cache>, config: &str) {
    let kept = kv::scan("", None, 1000).unwrap();
    *h = Harness::new(config).unwrap();
    for (key, value) in kept {
        kv::set(&key, &value, None).unwrap();
    }
}

fn admin(h: &mut Harness<Cache>, method: &str, path: &str) -> (u16, Value) {
    let answer = h
        .on_request(TestRequest::method(method, path))
        .response()
        .expect("answered")
        .clone();
    (
        answer.status,
        serde_json::from_slice(answer.body.as_deref().unwrap()).unwrap(),
    )
}

#[test]
fn purge_by_path_prefix_is_segment_wise_and_purge_all_empties_the_cache() {
    let mut h = cache("{}");
    let paths = [
        ("/api/products", "a.example"),
        ("/api/products", "b.example"),
        ("/api/products?page=2", "a.example"),
        ("/api/products/1", "a.example"),
        ("/api/productsx", "a.example"),
        ("/api/other", "a.example"),
    ];
    for (path, host) in paths {
        exchange(
            &mut h,
            TestRequest::get(path).header("host", host),
            ok("max-age=600"),
        );
    }
    reconfigure(&mut h, r#"{"manage": {"base": "/admin/cache"}}"#);
    assert!(h.settings().request_only);
    let (status, body) = admin(&mut h, "DELETE", "/admin/cache?prefix=%2Fapi%2Fproducts");
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"purged": 4, "more": false}));
    let (_, body) = admin(&mut h, "GET", "/admin/cache");
    assert!(body["stored_bytes"].as_i64().unwrap() > 0);

    reconfigure(&mut h, "{}");
    for (path, host) in paths {
        let (answer, _) = exchange(
            &mut h,
            TestRequest::get(path).header("host", host),
            ok("no-store"),
        );
        let kept = path.starts_with("/api/productsx") || path.starts_with("/api/other");
        assert_eq!(
            x_cache(&answer),
            if kept { "HIT" } else { "MISS" },
            "{path} {host}"
        );
    }

    reconfigure(&mut h, r#"{"manage": {"base": "/admin/cache/"}}"#);
    let (status, body) = admin(&mut h, "DELETE", "/admin/cache");
    assert_eq!(status, 200);
    assert_eq!(body["purged"], 2);
    assert!(
        kv::scan("", None, 10).unwrap().is_empty(),
        "the ledger and index too"
    );
    assert_eq!(admin(&mut h, "GET", "/admin/cache").1["stored_bytes"], 0);
}

#[test]
fn the_purge_api_refuses_what_it_does_not_serve() {
    let mut h = cache(r#"{"manage": {"base": "/admin/cache"}}"#);
    let (status, body) = admin(&mut h, "POST", "/admin/cache");
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
    let (status, _) = admin(&mut h, "DELETE", "/admin/cache/x");
    assert_eq!(status, 404);
    let (status, body) = admin(&mut h, "DELETE", "/admin/cache?prefix=api");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert!(Harness::<Cache>::new(r#"{"manage": {"base": "admin"}}"#).is_err());
}

#[test]
fn store_failures_never_fail_the_request() {
    let mut h = cache("{}");
    // A ledger that is not a number makes every store fail in `incr`.
    h.kv_set(key::LEDGER, b"garbage", None);
    let (answer, called) = exchange(&mut h, get("/f"), ok("max-age=60"));
    assert!(called);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_text(), BODY);
    let (level, message) = h
        .logs()
        .into_iter()
        .find(|(_, m)| m == "cache store failed")
        .unwrap();
    assert_eq!(
        (level, message.as_str()),
        (Level::Warn, "cache store failed")
    );
    assert_eq!(
        x_cache(&exchange(&mut h, get("/f"), ok("no-store")).0),
        "MISS"
    );

    // A malformed entry is a miss, not an error.
    let primary = key::primary("/g", Some(b"api.example.com"), None).unwrap();
    h.kv_set(&key::spec(&primary), b"", None);
    h.kv_set(&key::entry(&primary, "-"), b"not an entry", None);
    let (answer, called) = exchange(&mut h, get("/g"), ok("no-store"));
    assert!(called);
    assert_eq!(x_cache(&answer), "MISS");
}

#[test]
fn a_store_that_is_down_lets_every_request_through_to_the_upstream() {
    let mut h = cache("{}");
    assert_eq!(
        twice(&mut h, get("/d"), ok("max-age=60")),
        pair("MISS", "HIT")
    );
    h.fail_kv(Some("disk full"));
    for _ in 0..2 {
        let (answer, called) = exchange(&mut h, get("/d"), ok("max-age=60"));
        assert!(called, "the lookup failed: to the upstream");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_text(), BODY);
    }
    assert!(
        h.logs()
            .iter()
            .any(|(level, m)| *level == Level::Warn && m == "cache lookup failed"),
        "{:?}",
        h.logs()
    );
    h.fail_kv(None);
    let (answer, called) = exchange(&mut h, get("/d"), ok("max-age=60"));
    assert!(!called, "the entry is still there once the store is back");
    assert_eq!(x_cache(&answer), "HIT");
}

#[test]
fn config_errors_name_the_field() {
    let err = |config: &str| Harness::<Cache>::new(config).err().unwrap();
    assert!(
        err(r#"{"ttl": 5}"#).contains("unknown field `ttl`"),
        "{}",
        err(r#"{"ttl": 5}"#)
    );
    assert!(err(r#"{"statuses": [206]}"#).starts_with("statuses: 206"));
    assert!(err(r#"{"statuses": [99]}"#).starts_with("statuses: 99"));
    assert!(err(r#"{"max_entry_bytes": 10, "max_total_bytes": 5}"#).starts_with("max_entry_bytes"));
    assert!(
        err(r#"{"default_ttl_seconds": 10, "max_ttl_seconds": 5}"#)
            .starts_with("default_ttl_seconds")
    );
    assert!(
        err(r#"{"max_ttl_seconds": 0, "default_ttl_seconds": 0}"#).starts_with("max_ttl_seconds")
    );
    assert!(err(r#"{"manage": {"base": "/a", "x": 1}}"#).contains("unknown field `x`"));
}
