//! Hot reload with the real binary: plugin files swapped under load, bad plugin files
//! and config edits rejected while the previous snapshot keeps serving, deletions,
//! `SIGHUP`, the admin API, and the compiled-plugin cache across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use wasmgate_e2e::{
    GatewayProcess, TestGateway, Upstream, admin_json, assert_envelope, client, plugin_wasm, send,
    send_with, wait_until, wait_until_ok,
};

/// Swaps the plugin file this often under load.
const SWAPS: usize = 6;
/// Concurrent clients during the swaps.
const CONCURRENCY: usize = 8;
/// At least this many requests are sent in all.
const MIN_REQUESTS: usize = 2_000;
/// A swap must show in responses within this long.
const SWAP_BOUND: Duration = Duration::from_secs(10);

fn versioned_gateway(upstream: &Upstream) -> TestGateway {
    TestGateway::new()
        .service("echo", upstream.address)
        .plugin("versioned", "version-a")
        .toml(
            r#"
[[routes]]
name = "versioned"
prefix = "/v"
service = "echo"
[[routes.plugins]]
name = "versioned"
"#,
        )
}

fn wasm(crate_name: &str) -> Vec<u8> {
    std::fs::read(plugin_wasm(crate_name)).expect("built plugin")
}

/// The version that served a request: (request phase as the upstream saw it,
/// response phase). Panics on any failed request.
async fn versions(client: &reqwest::Client, url: &str) -> (String, String) {
    let response = client.get(url).send().await.expect("request sent");
    let status = response.status();
    let response_version = response
        .headers()
        .get("x-plugin-version")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.bytes().await.expect("body");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let echo: Value = serde_json::from_slice(&body).expect("echo JSON");
    let request_version = echo["headers"]["x-plugin-version"][0]
        .as_str()
        .expect("the upstream saw x-plugin-version")
        .to_string();
    (
        request_version,
        response_version.expect("x-plugin-version on the response"),
    )
}

fn plugin_entry<'a>(plugins: &'a Value, name: &str) -> Option<&'a Value> {
    plugins["plugins"]
        .as_array()
        .expect("plugins list")
        .iter()
        .find(|p| p["name"] == name)
}

/// Polls `/admin/plugins` until plugin `name`'s latest rejection mentions `needle`.
async fn wait_for_rejection(gateway: &GatewayProcess, name: &str, needle: &str) -> Value {
    wait_until_ok(
        &format!("a rejection of {name} mentioning {needle:?}"),
        SWAP_BOUND,
        || async {
            let plugins = admin_json(gateway, "/admin/plugins").await;
            if let Some(entry) = plugin_entry(&plugins, name)
                && entry["last_rejection"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(needle))
            {
                return Ok(entry.clone());
            }
            Err(format!(
                "/admin/plugins: {plugins:#}\nlog:\n{}",
                gateway.log()
            ))
        },
    )
    .await
}

/// Polls until a request to `url` is served by `version`; returns how long it took.
async fn wait_for_version(url: &str, version: &str) -> Duration {
    let started = Instant::now();
    let client = client();
    wait_until(
        &format!("version {version} to be served (within {SWAP_BOUND:?})"),
        SWAP_BOUND,
        || async {
            let (request, response) = versions(&client, url).await;
            (request == version && response == version).then_some(())
        },
    )
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_a_plugin_under_load_fails_no_request() {
    let upstream = Upstream::start();
    let gateway = versioned_gateway(&upstream).start();
    let url = gateway.url("/v/load");
    let (a, b) = (wasm("version-a"), wasm("version-b"));

    // (started, finished, version) of every request.
    let served = Arc::new(std::sync::Mutex::new(
        Vec::<(Instant, Instant, String)>::new(),
    ));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CONCURRENCY {
        let (url, served, sent, stop) = (url.clone(), served.clone(), sent.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) || sent.load(Ordering::Relaxed) < MIN_REQUESTS {
                let started = Instant::now();
                let (request, response) = versions(&client, &url).await;
                assert_eq!(
                    request, response,
                    "one request saw two plugin versions (request phase {request}, response phase {response})"
                );
                served
                    .lock()
                    .unwrap()
                    .push((started, Instant::now(), response));
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Each swap: install the other version, wait until it is served, note when.
    let mut swaps = Vec::new();
    for swap in 0..SWAPS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (bytes, version) = if swap % 2 == 0 { (&b, "b") } else { (&a, "a") };
        gateway.install_plugin("versioned", bytes);
        let took = wait_for_version(&url, version).await;
        swaps.push((Instant::now(), version, took));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("no client failed");
    }

    let served = std::mem::take(&mut *served.lock().unwrap());
    assert!(served.len() >= MIN_REQUESTS, "{} requests", served.len());
    // Once a swap has been seen, every request that starts later gets the new version
    // (until the next swap is installed).
    for (i, (seen, version, _)) in swaps.iter().enumerate() {
        let next_install = swaps.get(i + 1).map(|(at, _, took)| *at - *took);
        for (started, _, got) in served.iter() {
            if *started > *seen && next_install.is_none_or(|n| *started < n) {
                assert_eq!(got, version, "a request after swap {i} got the old version");
            }
        }
    }
    let plugins = admin_json(&gateway, "/admin/plugins").await;
    let entry = plugin_entry(&plugins, "versioned").expect("versioned listed");
    assert_eq!(entry["status"], "loaded");
    assert!(entry["last_rejection"].is_null(), "{entry}");
    let snapshot = admin_json(&gateway, "/admin/snapshot").await;
    assert!(
        snapshot["generation"].as_u64().unwrap() > SWAPS as u64,
        "{snapshot}"
    );
    let slowest = swaps.iter().map(|s| s.2).max().unwrap();
    eprintln!(
        "{} requests, {SWAPS} swaps, none failed; slowest swap showed after {slowest:?}",
        served.len()
    );
}

#[tokio::test]
async fn bad_plugin_files_are_rejected_and_the_old_version_keeps_serving() {
    let upstream = Upstream::start();
    let gateway = versioned_gateway(&upstream).start();
    let url = gateway.url("/v/x");
    let client = client();
    assert_eq!(versions(&client, &url).await, ("a".into(), "a".into()));

    let good = wasm("version-b");
    let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/plugin.wit"))
        .expect("wit file");
    let ours = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package wasmgate:plugin@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("package line")
        .to_string();
    // A plugin built against another major version of the contract declares it in
    // every `wasmgate:plugin/…@VERSION` name: rewrite those names (same length).
    let other = format!("9{}", &ours[1..]);
    let incompatible = replace_all(
        &good,
        format!("@{ours}").as_bytes(),
        format!("@{other}").as_bytes(),
    );
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a valid WebAssembly component".into(),
        ),
        (
            "random bytes",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            "not a valid WebAssembly component".into(),
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "not a valid WebAssembly component".into(),
        ),
        (
            "an incompatible WIT version",
            incompatible,
            format!("wasmgate:plugin@{other}, but this gateway implements wasmgate:plugin@{ours}"),
        ),
        (
            "a configure that fails",
            wasm("record"),
            "refused its config".into(),
        ),
    ];
    for (what, bytes, reason) in cases {
        gateway.install_plugin("versioned", &bytes);
        let entry = wait_for_rejection(&gateway, "versioned", &reason).await;
        assert_eq!(
            entry["status"], "loaded",
            "{what}: the old version stays loaded"
        );
        assert_eq!(
            versions(&client, &url).await,
            ("a".into(), "a".into()),
            "{what}: traffic keeps the old behaviour"
        );
        gateway.wait_for_log("reload rejected");
    }

    // A good file after all that is taken.
    gateway.install_plugin("versioned", &good);
    wait_for_version(&url, "b").await;

    // A broken new plugin nobody uses is refused too, and listed as rejected.
    gateway.install_plugin("stray", b"not wasm at all");
    let stray = wait_for_rejection(&gateway, "stray", "not a valid WebAssembly component").await;
    assert_eq!(stray["status"], "rejected");
    assert!(stray["hash"].is_null());
}

#[tokio::test]
async fn config_edits_apply_and_a_broken_edit_is_rejected() {
    let upstream = Upstream::start();
    let gateway = versioned_gateway(&upstream).start();
    let client = client();
    let original = gateway.config_text();

    // Broken TOML: rejected with file and line; traffic unchanged.
    gateway.rewrite_config(&format!("{original}\n[[routes]\n"));
    let rejection = wait_until_ok("a rejection", SWAP_BOUND, || async {
        let snapshot = admin_json(&gateway, "/admin/snapshot").await;
        let rejection = &snapshot["reloads"]["last_rejection"];
        if !rejection.is_null() {
            return Ok(rejection.clone());
        }
        Err(format!("{snapshot:#}"))
    })
    .await;
    let reason = rejection["reason"].as_str().unwrap();
    let place = format!("{}:", gateway.config_path().display());
    assert!(reason.contains(&place), "{reason}");
    assert_eq!(rejection["trigger"], "watch");
    let plugins = admin_json(&gateway, "/admin/plugins").await;
    assert_eq!(plugins["last_rejection"]["reason"], reason, "{plugins:#}");
    let (status, _) = get(&client, &gateway.url("/v/1")).await;
    assert_eq!(status, 200);

    // The admin call says the same, as an envelope.
    let envelope = send(Method::POST, &gateway.admin_url("/admin/reload"), None)
        .await
        .assert_envelope(422, "RELOAD_REJECTED");
    assert!(
        envelope["error"].as_str().unwrap().contains(&place),
        "{envelope}"
    );

    // A good edit: a new route appears.
    gateway.rewrite_config(&format!(
        "{original}\n[[routes]]\nname = \"added\"\npath = \"/added\"\nservice = \"echo\"\n"
    ));
    wait_until("the new route to serve", SWAP_BOUND, || async {
        (get(&client, &gateway.url("/added")).await.0 == 200).then_some(())
    })
    .await;
    let routes = admin_json(&gateway, "/admin/routes").await;
    let names: Vec<&str> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["versioned", "added"]);
    assert_eq!(routes["routes"][0]["plugins"][0]["name"], "versioned");

    // A route naming a plugin that does not exist is refused.
    gateway.rewrite_config(&format!(
        "{original}\n[[routes]]\nname = \"ghost\"\npath = \"/ghost\"\n[[routes.plugins]]\nname = \"ghost\"\n"
    ));
    let response = client
        .post(gateway.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown plugin \"ghost\""),
        "{body}"
    );
    assert_eq!(get(&client, &gateway.url("/added")).await.0, 200);

    // Both outcomes are counted.
    let metrics = client
        .get(gateway.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |result: &str| -> f64 {
        let series = format!("plugin_reloads_total{{result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("applied") >= 1.0, "{metrics}");
    assert!(count("rejected") >= 2.0, "{metrics}");
}

#[tokio::test]
async fn deleting_a_used_plugin_is_refused_and_an_unused_one_unloads() {
    let upstream = Upstream::start();
    let gateway = versioned_gateway(&upstream).plugin("spare", "noop").start();
    let client = client();
    let plugins = admin_json(&gateway, "/admin/plugins").await;
    let spare = plugin_entry(&plugins, "spare").expect("an unused plugin is loaded");
    assert_eq!(spare["routes"], serde_json::json!([]));
    assert_eq!(
        plugin_entry(&plugins, "versioned").unwrap()["routes"],
        serde_json::json!(["versioned"])
    );

    std::fs::remove_file(gateway.plugin_dir().join("spare.wasm")).unwrap();
    wait_until("spare to be unloaded", SWAP_BOUND, || async {
        plugin_entry(&admin_json(&gateway, "/admin/plugins").await, "spare")
            .is_none()
            .then_some(())
    })
    .await;

    std::fs::remove_file(gateway.plugin_dir().join("versioned.wasm")).unwrap();
    let entry = wait_for_rejection(&gateway, "versioned", "unknown plugin \"versioned\"").await;
    assert_eq!(entry["status"], "loaded");
    assert_eq!(
        versions(&client, &gateway.url("/v/still")).await,
        ("a".into(), "a".into())
    );
}

#[tokio::test]
async fn sighup_and_the_admin_api_reload_when_watching_is_off() {
    let upstream = Upstream::start();
    let gateway = versioned_gateway(&upstream)
        .toml("[reload]\nwatch = false\n")
        .start();
    let url = gateway.url("/v/x");
    let client = client();

    gateway.install_plugin("versioned", &wasm("version-b"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        versions(&client, &url).await.1,
        "a",
        "nothing reloads by itself when watch = false"
    );
    gateway.signal("HUP");
    wait_for_version(&url, "b").await;

    gateway.install_plugin("versioned", &wasm("version-a"));
    let response = client
        .post(gateway.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["result"], "applied", "{outcome}");
    assert_eq!(versions(&client, &url).await.1, "a");
    let again: Value = client
        .post(gateway.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["result"], "unchanged");
    assert_eq!(again["generation"], outcome["generation"]);

    // The admin API's own errors are envelopes.
    let answer = send_with(
        Method::GET,
        &gateway.admin_url("/admin/nothing"),
        &[("x-request-id", "admin-404")],
        None,
    )
    .await;
    assert_envelope(
        answer.status,
        Some("admin-404"),
        &answer.body,
        404,
        "NOT_FOUND",
    );
    send(Method::GET, &gateway.admin_url("/admin/reload"), None)
        .await
        .assert_envelope(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn a_restart_takes_compiled_plugins_from_the_cache_and_rebuilds_a_corrupt_entry() {
    let upstream = Upstream::start();
    let data = tempfile::tempdir().unwrap();
    let cache_of = |plugins: &Value| plugin_entry(plugins, "versioned").unwrap()["cache"].clone();

    let mut first = versioned_gateway(&upstream).data_dir(data.path()).start();
    assert_eq!(
        cache_of(&admin_json(&first, "/admin/plugins").await),
        "miss"
    );
    first.terminate();

    let mut second = versioned_gateway(&upstream).data_dir(data.path()).start();
    assert_eq!(
        cache_of(&admin_json(&second, "/admin/plugins").await),
        "hit"
    );
    let client = client();
    assert_eq!(versions(&client, &second.url("/v/1")).await.1, "a");
    second.terminate();

    // Damage every cache entry: the next start notices, compiles, and serves.
    let cache_dir = data.path().join("plugin-cache");
    for entry in std::fs::read_dir(&cache_dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = versioned_gateway(&upstream).data_dir(data.path()).start();
    assert_eq!(
        cache_of(&admin_json(&third, "/admin/plugins").await),
        "rebuilt"
    );
    third.wait_for_log("checksum mismatch");
    assert_eq!(versions(&client, &third.url("/v/1")).await.1, "a");
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, bytes::Bytes) {
    let response = client.get(url).send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body"))
}

/// `haystack` with every `from` replaced by `to` (same length).
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut replaced = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(
        replaced > 0,
        "no {:?} in the component",
        String::from_utf8_lossy(from)
    );
    out
}

/// A reload that changes sections read only at start (`[limits]`, `[metrics]`) applies
/// the rest (a new route), warns naming those sections, and keeps their running values.
#[tokio::test]
async fn a_reload_keeps_the_running_values_of_restart_only_sections() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .service("echo", upstream.address)
        .toml("[[routes]]\nname = \"old\"\nprefix = \"/old\"\nservice = \"echo\"\n")
        .start();
    let client = client();
    let long = format!("/old/{}", "x".repeat(100));
    assert_eq!(get(&client, &gateway.url(&long)).await.0, 200);
    gateway.rewrite_config(&format!(
        "{}\n[limits]\nmax_uri_bytes = 64\n\n[metrics]\npath = \"/stats\"\n\n\
         [[routes]]\nname = \"new\"\nprefix = \"/new\"\nservice = \"echo\"\n",
        gateway.config_text()
    ));
    let new = gateway.url("/new");
    wait_until("the new route", Duration::from_secs(10), || async {
        (get(&client, &new).await.0 == 200).then_some(())
    })
    .await;
    let log = gateway.wait_for_log("take effect only after a restart");
    let warning = log
        .lines()
        .find(|l| l.contains("take effect only after a restart"))
        .unwrap();
    assert!(warning.contains("[limits], [metrics]"), "{warning}");
    assert_eq!(
        get(&client, &gateway.url(&long)).await.0,
        200,
        "max_uri_bytes is still the one the gateway started with"
    );
    assert_eq!(get(&client, &gateway.url("/metrics")).await.0, 200);
    assert_eq!(get(&client, &gateway.url("/stats")).await.0, 404);
}
