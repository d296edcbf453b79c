//! The `kv` conformance suite: every semantic the plugins rely on, run on sled and on
//! a real Redis server (the one `scripts/test.sh` starts, named by
//! `WASMGATE_TEST_REDIS_URL`, else a `redis-server` this suite starts itself on a
//! free loopback port). Each Redis test writes under its own key prefix.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A store under test, with what keeps it alive.
struct Fixture {
    store: StateStore,
    _dir: Option<tempfile::TempDir>,
    _server: Option<RedisServer>,
}

/// A `redis-server` started for one test; killed when dropped.
struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sled() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: StateStore::open(dir.path()).unwrap(),
        _dir: Some(dir),
        _server: None,
    }
}

/// The Redis URL to test against, and the server if this test started it.
fn redis_server() -> (String, Option<RedisServer>) {
    if let Ok(url) = std::env::var("WASMGATE_TEST_REDIS_URL") {
        return (url, None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect(
            "redis-server is needed for the Redis conformance tests: run scripts/test.sh \
             (which installs and starts it) or `apt-get install redis-server`",
        );
    let server = RedisServer(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (format!("redis://127.0.0.1:{port}"), Some(server))
}

fn redis_options(url: &str) -> RedisOptions {
    RedisOptions {
        url: url.to_string(),
        password: None,
        key_prefix: format!("test-{}:", uuid::Uuid::new_v4().simple()),
        pool_size: 2,
        timeout: Duration::from_secs(2),
    }
}

fn redis() -> Fixture {
    let (url, server) = redis_server();
    Fixture {
        store: StateStore::redis(&redis_options(&url)).unwrap(),
        _dir: None,
        _server: server,
    }
}

/// Runs each named check on both backends.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fixture = super::sled();
                    super::$check(&fixture.store).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fixture = super::redis();
                    super::$check(&fixture.store).await;
                }
            )*
        }
    };
}

conformance!(
    set_get_delete,
    values_expire_after_their_ttl,
    incr_counts_sets_its_ttl_on_creation_and_refuses_text,
    insert_claims_a_key_once,
    scan_pages_through_live_entries_under_a_prefix_in_key_order,
    compare_and_swap_replaces_only_the_expected_value,
    concurrent_writers_lose_no_update,
    namespaces_are_separate,
    a_sweep_counts_live_entries,
);

async fn set_get_delete(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    assert_eq!(ns.get("a").await.unwrap(), None);
    ns.set("a", b"1", None).await.unwrap();
    assert_eq!(ns.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    ns.set("a", &[0, 255, 10], None).await.unwrap();
    assert_eq!(
        ns.get("a").await.unwrap().as_deref(),
        Some(&[0, 255, 10][..])
    );
    assert!(ns.delete("a").await.unwrap());
    assert!(!ns.delete("a").await.unwrap());
    assert_eq!(ns.get("a").await.unwrap(), None);
}

async fn values_expire_after_their_ttl(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    ns.set("short", b"x", Some(100)).await.unwrap();
    ns.set("kept", b"x", Some(100)).await.unwrap();
    // A set without a TTL makes the value permanent.
    ns.set("kept", b"y", None).await.unwrap();
    assert_eq!(ns.get("short").await.unwrap().as_deref(), Some(&b"x"[..]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ns.get("short").await.unwrap(), None);
    assert_eq!(ns.get("kept").await.unwrap().as_deref(), Some(&b"y"[..]));
    assert!(
        !ns.delete("short").await.unwrap(),
        "an expired value is no value"
    );
}

async fn incr_counts_sets_its_ttl_on_creation_and_refuses_text(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    assert_eq!(ns.incr("n", 2, None).await.unwrap(), 2);
    assert_eq!(ns.incr("n", -5, None).await.unwrap(), -3);
    assert_eq!(ns.get("n").await.unwrap().as_deref(), Some(&b"-3"[..]));
    ns.set("t", b"text", None).await.unwrap();
    assert!(matches!(
        ns.incr("t", 1, None).await,
        Err(StateError::NotAnInteger(_))
    ));
    assert_eq!(ns.get("t").await.unwrap().as_deref(), Some(&b"text"[..]));
    ns.set("max", i64::MAX.to_string().as_bytes(), None)
        .await
        .unwrap();
    assert!(matches!(
        ns.incr("max", 1, None).await,
        Err(StateError::Overflow(_))
    ));
    // A window: the TTL counts from the counter's creation, later incrs keep it.
    assert_eq!(ns.incr("window", 1, Some(200)).await.unwrap(), 1);
    assert_eq!(ns.incr("window", 1, Some(60_000)).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ns.incr("window", 1, Some(200)).await.unwrap(),
        1,
        "the expired counter starts again"
    );
}

async fn insert_claims_a_key_once(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    assert!(ns.insert("name:alice", b"1", None).await.unwrap());
    assert!(!ns.insert("name:alice", b"2", None).await.unwrap());
    assert_eq!(
        ns.get("name:alice").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(ns.insert("name:bob", b"old", Some(100)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        ns.insert("name:bob", b"new", None).await.unwrap(),
        "an expired key is free"
    );
    assert_eq!(
        ns.get("name:bob").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

async fn scan_pages_through_live_entries_under_a_prefix_in_key_order(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    // Written out of order, with glob characters a pattern match must not take as
    // patterns.
    for key in [
        "kez", "key:4", "a", "key:2", "key:1", "key:3", "k*y:1", "k?y", "[k]",
    ] {
        ns.set(key, key.as_bytes(), None).await.unwrap();
    }
    ns.set("key:25", b"gone", Some(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys = |entries: Vec<(String, Vec<u8>)>| -> Vec<String> {
        entries.into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(ns.scan("key:", None, 2).await.unwrap()),
        ["key:1", "key:2"]
    );
    assert_eq!(
        keys(ns.scan("key:", Some("key:2"), 10).await.unwrap()),
        ["key:3", "key:4"],
        "the expired key:25 is skipped"
    );
    assert_eq!(ns.scan("key:", Some("key:4"), 10).await.unwrap(), vec![]);
    assert_eq!(keys(ns.scan("k*", None, 10).await.unwrap()), ["k*y:1"]);
    assert_eq!(keys(ns.scan("[k", None, 10).await.unwrap()), ["[k]"]);
    assert_eq!(
        keys(ns.scan("", None, 20).await.unwrap()),
        [
            "[k]", "a", "k*y:1", "k?y", "key:1", "key:2", "key:3", "key:4", "kez"
        ]
    );
    assert_eq!(ns.scan("key:1", None, 1).await.unwrap()[0].1, b"key:1");
    assert_eq!(
        ns.scan("", None, 0).await.unwrap(),
        vec![],
        "limit 0: nothing"
    );
    // `after` before the prefix starts at the prefix.
    assert_eq!(
        keys(ns.scan("key:", Some("a"), 1).await.unwrap()),
        ["key:1"]
    );
}

async fn compare_and_swap_replaces_only_the_expected_value(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    assert!(
        ns.compare_and_swap("t", None, b"1", None).await.unwrap(),
        "absent"
    );
    assert!(
        !ns.compare_and_swap("t", None, b"2", None).await.unwrap(),
        "now present"
    );
    assert!(
        !ns.compare_and_swap("t", Some(b"0"), b"2", None)
            .await
            .unwrap()
    );
    assert!(
        ns.compare_and_swap("t", Some(b"1"), b"2", None)
            .await
            .unwrap()
    );
    assert_eq!(ns.get("t").await.unwrap().as_deref(), Some(&b"2"[..]));
    ns.set("old", b"1", Some(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !ns.compare_and_swap("old", Some(b"1"), b"2", None)
            .await
            .unwrap(),
        "an expired value is not the expected one"
    );
    assert!(
        ns.compare_and_swap("old", None, b"2", Some(100))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ns.get("old").await.unwrap(), None, "with its new TTL");
}

async fn concurrent_writers_lose_no_update(store: &StateStore) {
    let ns = store.namespace("test").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let ns = ns.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    ns.incr("hits", 1, Some(60_000)).await.unwrap();
                    loop {
                        let current = ns.get("n").await.unwrap();
                        let n: u64 = current
                            .as_deref()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let next = (n + 1).to_string();
                        if ns
                            .compare_and_swap("n", current.as_deref(), next.as_bytes(), None)
                            .await
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(ns.get("n").await.unwrap().as_deref(), Some(&b"400"[..]));
    assert_eq!(ns.get("hits").await.unwrap().as_deref(), Some(&b"400"[..]));
}

async fn namespaces_are_separate(store: &StateStore) {
    store
        .namespace("a")
        .unwrap()
        .set("k", b"1", None)
        .await
        .unwrap();
    let b = store.namespace("b").unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    assert_eq!(b.scan("", None, 10).await.unwrap(), vec![]);
}

async fn a_sweep_counts_live_entries(store: &StateStore) {
    let a = store.namespace("a").unwrap();
    a.set("live", b"value", None).await.unwrap();
    a.set("later", b"v", Some(60_000)).await.unwrap();
    a.set("gone", b"x", Some(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.last_sweep().is_none());
    let sweep = store.sweep().await.unwrap();
    assert_eq!(
        sweep.namespaces["a"],
        NamespaceSize {
            entries: 2,
            bytes: ("live".len() + 5 + "later".len() + 1) as u64
        }
    );
    assert_eq!(store.last_sweep().unwrap().namespaces, sweep.namespaces);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_stores_on_one_server_share_counters_and_claims() {
    // Two gateway processes pointed at one server and prefix are two stores here.
    let (url, _server) = redis_server();
    let options = redis_options(&url);
    let one = StateStore::redis(&options)
        .unwrap()
        .namespace("limits")
        .unwrap();
    let two = StateStore::redis(&options)
        .unwrap()
        .namespace("limits")
        .unwrap();
    let counting: Vec<_> = [one.clone(), two.clone()]
        .into_iter()
        .map(|ns| {
            tokio::spawn(async move {
                for _ in 0..100 {
                    ns.incr("client", 1, Some(60_000)).await.unwrap();
                }
            })
        })
        .collect();
    for task in counting {
        task.await.unwrap();
    }
    assert_eq!(
        two.get("client").await.unwrap().as_deref(),
        Some(&b"200"[..])
    );
    assert!(one.insert("user:alice", b"1", None).await.unwrap());
    assert!(!two.insert("user:alice", b"2", None).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_redis_fails_each_call_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = redis_options(&format!("redis://127.0.0.1:{port}"));
    options.timeout = Duration::from_millis(200);
    let store = StateStore::redis(&options).unwrap();
    let ns = store.namespace("test").unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        ns.incr("k", 1, None).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(matches!(
        store.check().await,
        Err(StateError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "two calls took {:?}",
        started.elapsed()
    );
}
