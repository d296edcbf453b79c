//! The `cache` plugin on real traffic: hits that never reach the upstream, `Age`,
//! `HEAD`, `Vary`, what bypasses or is never stored, the size caps with eviction, and
//! the purge API on the admin listener.
//!
//! The upstream here is this file's own: it answers what the query asks for
//! (`cc=` a `Cache-Control`, `vary=` a `Vary`, `cookie=1` a `Set-Cookie`, `bytes=N` a
//! body of N bytes) and numbers its answers, so a body tells which upstream call it
//! came from.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wasmgate_e2e::{GatewayProcess, TestGateway, client, wait_until};

/// An upstream whose caching headers the query sets; stops with the test's runtime.
struct CachingUpstream {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl CachingUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        answer(request, n)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn answer(
    request: http::Request<Incoming>,
    n: usize,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let language = request
        .headers()
        .get("accept-language")
        .map(|v| v.to_str().unwrap_or("?").to_string())
        .unwrap_or_default();
    let body = match param("bytes") {
        Some(size) => "x".repeat(size.parse().unwrap()),
        None => format!("answer {n} for {} {language}", request.uri().path()),
    };
    let mut response = http::Response::builder().header("content-type", "text/plain");
    if let Some(cc) = param("cc") {
        response = response.header("cache-control", cc);
    }
    if let Some(vary) = param("vary") {
        response = response.header("vary", vary);
    }
    if param("cookie").is_some() {
        response = response.header("set-cookie", format!("session={n}"));
    }
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}

/// A gateway with the cache on every path of `upstream` (config `cache_config`) and
/// the purge API at `/admin/cache` on the admin listener.
fn gateway(upstream: SocketAddr, cache_config: &str) -> GatewayProcess {
    TestGateway::new()
        .service("origin", upstream)
        .plugin("cache", "cache")
        .toml(&format!(
            r#"
[[routes]]
name = "cached"
prefix = "/"
service = "origin"

[[routes.plugins]]
name = "cache"
config = {cache_config}

[[routes]]
name = "cache-admin"
listener = "admin"
prefix = "/admin/cache"

[[routes.plugins]]
name = "cache"
config = {{ manage = {{ base = "/admin/cache" }} }}
"#
        ))
        .start()
}

/// What a client got: status, `X-Cache`, `Age`, body.
struct Got {
    status: u16,
    x_cache: String,
    age: Option<u64>,
    content_length: Option<u64>,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Got {
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let got = Got {
        status: response.status().as_u16(),
        x_cache: header("x-cache").unwrap_or_default(),
        age: header("age").map(|a| a.parse().unwrap()),
        content_length: header("content-length").map(|a| a.parse().unwrap()),
        body: String::new(),
    };
    Got {
        body: response.text().await.unwrap(),
        ..got
    }
}

async fn get(gateway: &GatewayProcess, path: &str) -> Got {
    send(client().get(gateway.url(path))).await
}

#[tokio::test]
async fn a_hit_after_a_miss_does_not_reach_the_upstream_and_its_age_grows() {
    let upstream = CachingUpstream::start().await;
    let gateway = gateway(upstream.address, "{}");
    let path = "/items?cc=max-age=60";
    let miss = get(&gateway, path).await;
    assert_eq!((miss.status, miss.x_cache.as_str()), (200, "MISS"));
    assert_eq!(miss.body, "answer 1 for /items ");

    let hit = get(&gateway, path).await;
    assert_eq!((hit.status, hit.x_cache.as_str()), (200, "HIT"));
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.age, Some(0));
    assert_eq!(upstream.hits(), 1);

    // Age counts whole seconds since the store: poll until it moves.
    wait_until("Age to grow", Duration::from_secs(5), || async {
        let hit = get(&gateway, path).await;
        assert_eq!(hit.x_cache, "HIT");
        (hit.age.unwrap() >= 1).then_some(())
    })
    .await;

    // HEAD from the GET entry: no body, the GET body's length.
    let head = send(client().head(gateway.url(path))).await;
    assert_eq!((head.status, head.x_cache.as_str()), (200, "HIT"));
    assert_eq!(head.body, "");
    assert_eq!(head.content_length, Some(miss.body.len() as u64));
    assert_eq!(
        upstream.hits(),
        1,
        "only the first request reached the upstream"
    );

    // Another query is another entry.
    assert_eq!(
        get(&gateway, "/items?cc=max-age=60&page=2").await.x_cache,
        "MISS"
    );
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn vary_keeps_the_variants_apart() {
    let upstream = CachingUpstream::start().await;
    let gateway = gateway(upstream.address, "{}");
    let path = "/greeting?cc=max-age=60&vary=accept-language";
    let in_language = |language: &str| {
        client()
            .get(gateway.url(path))
            .header("accept-language", language)
    };
    let en = send(in_language("en")).await;
    let de = send(in_language("de")).await;
    assert_eq!((en.x_cache.as_str(), de.x_cache.as_str()), ("MISS", "MISS"));
    assert_eq!(de.body, "answer 2 for /greeting de");
    let en_again = send(in_language("en")).await;
    let de_again = send(in_language("de")).await;
    assert_eq!(
        (en_again.x_cache.as_str(), en_again.body.as_str()),
        ("HIT", en.body.as_str())
    );
    assert_eq!(
        (de_again.x_cache.as_str(), de_again.body.as_str()),
        ("HIT", de.body.as_str())
    );
    assert_eq!(upstream.hits(), 2);
    // Vary: * is never stored.
    let star = "/star?cc=max-age=60&vary=*";
    assert_eq!(get(&gateway, star).await.x_cache, "MISS");
    assert_eq!(get(&gateway, star).await.x_cache, "MISS");
    assert_eq!(upstream.hits(), 4);
}

#[tokio::test]
async fn no_store_authorization_and_set_cookie_are_not_cached() {
    let upstream = CachingUpstream::start().await;
    let gateway = gateway(upstream.address, "{}");
    let http = client();
    let cacheable = "/private?cc=max-age=60";
    for _ in 0..2 {
        let got = send(
            http.get(gateway.url(cacheable))
                .header("authorization", "Bearer a"),
        )
        .await;
        assert_eq!(got.x_cache, "BYPASS");
    }
    for _ in 0..2 {
        let got = send(
            http.get(gateway.url(cacheable))
                .header("cache-control", "no-store"),
        )
        .await;
        assert_eq!(got.x_cache, "BYPASS");
    }
    assert_eq!(upstream.hits(), 4, "every bypass reached the upstream");
    assert_eq!(
        get(&gateway, cacheable).await.x_cache,
        "MISS",
        "none was stored"
    );

    for path in [
        "/ns?cc=no-store",
        "/cookie?cc=max-age=60&cookie=1",
        "/priv?cc=private",
    ] {
        let before = upstream.hits();
        assert_eq!(get(&gateway, path).await.x_cache, "MISS");
        assert_eq!(get(&gateway, path).await.x_cache, "MISS", "{path}");
        assert_eq!(upstream.hits(), before + 2);
    }
}

#[tokio::test]
async fn the_gateways_own_errors_are_not_cached() {
    // A port nothing listens on: the gateway answers itself, 502 (unreachable) or,
    // once its probe found the endpoint down, 503 (no endpoint is up).
    let dead = wasmgate_e2e::dead_address();
    let gateway = gateway(dead.address, r#"{ statuses = [200, 502, 503] }"#);
    for _ in 0..3 {
        let got = get(&gateway, "/down?cc=max-age=60").await;
        assert!([502, 503].contains(&got.status), "{}", got.status);
        assert_ne!(got.x_cache, "HIT");
    }
}

#[tokio::test]
async fn the_entry_cap_and_the_total_cap_with_eviction() {
    let upstream = CachingUpstream::start().await;
    let gateway = gateway(
        upstream.address,
        "{ max_entry_bytes = 2000, max_total_bytes = 5000 }",
    );
    // Over max_entry_bytes: served, never stored.
    let big = "/big?cc=max-age=60&bytes=3000";
    assert_eq!(get(&gateway, big).await.body.len(), 3000);
    assert_eq!(get(&gateway, big).await.x_cache, "MISS");
    assert_eq!(upstream.hits(), 2);

    // About 1.3 KB counted each: three fit under 5000, a fourth evicts the oldest.
    let path = |name: &str| format!("/{name}?cc=max-age=60&bytes=1000");
    for name in ["a", "b", "c"] {
        assert_eq!(get(&gateway, &path(name)).await.x_cache, "MISS");
    }
    for name in ["a", "b", "c"] {
        assert_eq!(get(&gateway, &path(name)).await.x_cache, "HIT", "{name}");
    }
    assert_eq!(get(&gateway, &path("d")).await.x_cache, "MISS");
    assert_eq!(get(&gateway, &path("d")).await.x_cache, "HIT");
    assert_eq!(get(&gateway, &path("c")).await.x_cache, "HIT");
    let stored: serde_json::Value = client()
        .get(gateway.admin_url("/admin/cache"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = stored["stored_bytes"].as_i64().unwrap();
    assert!((3000..=5000).contains(&bytes), "{stored}");
    let before = upstream.hits();
    assert_eq!(get(&gateway, &path("a")).await.x_cache, "MISS", "evicted");
    assert_eq!(upstream.hits(), before + 1);
}

#[tokio::test]
async fn purge_by_prefix_and_purge_all_on_the_admin_listener() {
    let upstream = CachingUpstream::start().await;
    let gateway = gateway(upstream.address, "{}");
    let paths = [
        "/api/products?cc=max-age=600",
        "/api/products/1?cc=max-age=600",
        "/api/productsx?cc=max-age=600",
        "/other?cc=max-age=600",
    ];
    for path in paths {
        assert_eq!(get(&gateway, path).await.x_cache, "MISS");
        assert_eq!(get(&gateway, path).await.x_cache, "HIT");
    }
    // Not on the public listener.
    let public = client()
        .delete(gateway.url("/admin/cache?prefix=/api/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.headers()["x-cache"], "BYPASS");

    let purge = |query: &'static str| {
        let url = gateway.admin_url(&format!("/admin/cache{query}"));
        async move {
            let response = client().delete(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let purged = purge("?prefix=/api/products").await;
    assert_eq!(purged, serde_json::json!({"purged": 2, "more": false}));
    let expect = ["MISS", "MISS", "HIT", "HIT"];
    for (path, want) in paths.iter().zip(expect) {
        assert_eq!(get(&gateway, path).await.x_cache, want, "{path}");
    }
    let purged = purge("").await;
    assert_eq!(purged["purged"], 4);
    for path in paths {
        assert_eq!(get(&gateway, path).await.x_cache, "MISS", "{path}");
    }
    gateway.wait_for_log("cache purged");
    let log = gateway.settled_log();
    assert!(!log.contains("PLUGIN_ERROR"), "{log}");
}

#[tokio::test]
async fn a_response_over_the_routes_body_cap_fails_or_streams_unstored_as_configured() {
    let upstream = CachingUpstream::start().await;
    let gateway = TestGateway::new()
        .service("origin", upstream.address)
        .plugin("cache", "cache")
        .toml(
            r#"
[[routes]]
name = "strict"
prefix = "/strict"
service = "origin"
max_body_bytes = 4096
[[routes.plugins]]
name = "cache"

[[routes]]
name = "streamed"
prefix = "/streamed"
service = "origin"
max_body_bytes = 4096
large_responses = "stream"
[[routes.plugins]]
name = "cache"
"#,
        )
        .start();
    let strict = get(&gateway, "/strict/big?bytes=100000&cc=max-age=60").await;
    assert_eq!(strict.status, 502, "the default: no body leaves unread");
    for _ in 0..2 {
        let streamed = get(&gateway, "/streamed/big?bytes=100000&cc=max-age=60").await;
        assert_eq!(streamed.status, 200);
        assert_eq!(
            streamed.body.len(),
            100_000,
            "the whole body, as it came (X-Cache {:?}, Content-Length {:?})",
            streamed.x_cache,
            streamed.content_length
        );
        assert!(streamed.body.bytes().all(|b| b == b'x'));
        assert_ne!(streamed.x_cache, "HIT");
    }
    assert_eq!(
        upstream.hits(),
        3,
        "a body the cache never read is never stored"
    );
    // Under the cap, the same route caches as usual.
    assert_eq!(
        get(&gateway, "/streamed/small?bytes=100&cc=max-age=60")
            .await
            .x_cache,
        "MISS"
    );
    assert_eq!(
        get(&gateway, "/streamed/small?bytes=100&cc=max-age=60")
            .await
            .x_cache,
        "HIT"
    );
}
