//! The cost of one plugin call, for each instance model, measured in a release-mode
//! loop: `cargo bench -p wasmgate --bench plugin_call` (the plugins must be built:
//! `scripts/build-plugins.sh`).
//!
//! It loads the `noop` test guest (an `on-request` that returns `continue`), makes a
//! pool for each model — instances reused (`instances = 64`) and a fresh instance per
//! call (`instances = 0`) — and times batches of sequential calls with a realistic
//! request (8 headers). It prints the median, minimum and maximum per-call time over
//! the batches, in µs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmgate::plugin::{Context, Grants, PluginRuntime, Request};
use wasmgate::state::StateStore;
use wasmgate::upstream::OutboundCalls;

const BATCHES: usize = 30;
const CALLS_PER_BATCH: usize = 2_000;

fn guest() -> PathBuf {
    if let Some(path) = std::env::var_os("WASMGATE_BENCH_PLUGIN") {
        return path.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("wasm32-wasip2/plugin/noop.wasm")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let path = guest();
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    let plugins = PluginRuntime::new(None).expect("engine");
    let plugin = plugins.load("noop", &path).expect("load noop");
    let data = tempfile::tempdir().expect("temp dir");
    let state = StateStore::open(data.path()).expect("state");
    let ctx = Context {
        request_id: "0b6c3e1e-5a0c-4a8e-9d6e-3f1f0f7b2a11".into(),
        route: "bench".into(),
        client_addr: "127.0.0.1:50000".into(),
        params: Vec::new(),
        vars: Vec::new(),
    };
    let request = Request {
        method: "GET".into(),
        path: "/api/users/42".into(),
        query: Some("page=2".into()),
        headers: [
            ("host", "api.example.com"),
            ("user-agent", "bench/1.0"),
            ("accept", "application/json"),
            ("accept-encoding", "gzip, deflate"),
            ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
            ("x-request-id", "0b6c3e1e-5a0c-4a8e-9d6e-3f1f0f7b2a11"),
            ("x-forwarded-for", "10.0.0.1"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect(),
        body: None,
    };
    println!(
        "one trivial on-request call ({} batches of {} calls)",
        BATCHES, CALLS_PER_BATCH
    );
    for (model, instances) in [("reused instance", 64), ("fresh instance per call", 0)] {
        let grants = Grants {
            plugin: "noop".into(),
            route: "bench".into(),
            kv: state.namespace("noop").expect("namespace"),
            http: OutboundCalls::default(),
            memory_limit: 64 << 20,
        };
        let pool = plugin
            .configure("{}".into(), grants, Duration::from_millis(100), instances)
            .await
            .expect("configure");
        let pool = Arc::new(pool);
        for _ in 0..CALLS_PER_BATCH {
            pool.on_request(&ctx, &request).await.expect("warm-up call");
        }
        let mut per_call = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let started = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                pool.on_request(&ctx, &request).await.expect("call");
            }
            per_call.push(started.elapsed().as_secs_f64() * 1e6 / CALLS_PER_BATCH as f64);
        }
        per_call.sort_by(f64::total_cmp);
        println!(
            "{model:>24}: median {:.2} µs  (min {:.2}, max {:.2})",
            per_call[BATCHES / 2],
            per_call[0],
            per_call[BATCHES - 1]
        );
    }
}
