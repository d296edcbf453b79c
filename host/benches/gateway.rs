//! Criterion micro-benchmarks of the hot path, in-process:
//!
//! - `plugin_call/*`: one trivial `on-request` call (the `noop` test guest) for each
//!   instance model: a reused instance (`instances = 64`, the default) and a fresh
//!   instance per call (`instances = 0`).
//! - `pipeline/N_plugins`: `pipeline::handle` for a `GET` through a route with 0, 1, 3
//!   and 5 `headers` plugins, to an upstream on a loopback port in the same process
//!   and on the same thread (so every figure includes one keep-alive HTTP/1.1
//!   exchange over loopback, client and server side); and
//!   `pipeline/3_request_only_plugins`, three `deny` plugins that pass the request (no
//!   response phase since WIT 0.4.0); and `pipeline/auth_chain`, bench/run.sh's
//!   `wasmgate-3` route: jwt-auth (HS256, the same token on every request) + rbac +
//!   headers; `pipeline/rate_limit` and `pipeline/rate_limit_token_bucket`: `rate-limit`
//!   alone (sliding window; token bucket) counting every request against one key in
//!   the sled-backed `kv`, with a limit never reached.
//! - `router/1000_routes/*`: one lookup in a table of 1,000 routes (exact paths,
//!   `{param}` patterns and prefixes, some with hosts and methods).
//!
//! `scripts/build-plugins.sh && cargo bench -p wasmgate --bench gateway`; criterion's
//! own filters and flags follow `--` (`-- router`, `-- --quick`).

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use wasmgate::config::Listener;
use wasmgate::pipeline::{self, RequestMeta};
use wasmgate::plugin::{self, Grants, OutboundCalls, PluginRuntime};
use wasmgate::router::{PathPattern, RouteMatcher, RouteTable};
use wasmgate::snapshot::{Snapshot, Sources};
use wasmgate::state::StateStore;
use wasmgate::trace::TraceContext;
use wasmgate::upstream::full_body;

/// The headers of a realistic API request.
const HEADERS: [(&str, &str); 8] = [
    ("host", "api.example.com"),
    ("user-agent", "bench/1.0"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, deflate"),
    ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
    ("x-request-id", "0b6c3e1e-5a0c-4a8e-9d6e-3f1f0f7b2a11"),
    ("x-forwarded-for", "10.0.0.1"),
    ("content-type", "application/json"),
];

/// The HMAC key of [`TOKEN`], granted to jwt-auth on the `auth_chain` route.
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
/// An HS256 token signed with [`JWT_SECRET`] for a `user` (`sub` u-1), expiring in 2100.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
    eyJzdWIiOiJ1LTEiLCJ1c2VybmFtZSI6ImJlbmNoIiwicm9sZSI6InVzZXIiLCJleHAiOjQxMDI0NDQ4MDB9.\
    o1mMp6qOuTCEr-4xFXnS2GN2tA4fTTH1JC1oP5UA3V0";

/// Where scripts/build-plugins.sh puts the components.
fn components() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("wasm32-wasip2/plugin")
}

/// The component of crate `name` (`-` becomes `_` in the file name).
fn component(name: &str) -> PathBuf {
    let path = components().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One thread for the gateway, its client and the upstream: no wake-ups across
/// threads, so the figure is the CPU time of one request and its noise is low.
fn single_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn plugin_call(c: &mut Criterion) {
    let rt = runtime();
    let data = tempfile::tempdir().expect("temp dir");
    let state = StateStore::open(data.path()).expect("state");
    let plugins = PluginRuntime::new(None, Default::default()).expect("engine");
    let noop = plugins.load("noop", &component("noop")).expect("load noop");
    let facts = std::sync::Arc::new(plugin::Facts {
        request_id: "0b6c3e1e-5a0c-4a8e-9d6e-3f1f0f7b2a11".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        route: "bench".into(),
        client_addr: "127.0.0.1:50000".into(),
        received_ns: 0,
        method: http::Method::GET,
        path: "/api/users/42".into(),
        params: Vec::new(),
    });
    let headers: http::HeaderMap = HEADERS
        .iter()
        .map(|(n, v)| {
            (
                http::HeaderName::from_bytes(n.as_bytes()).expect("a header name"),
                http::HeaderValue::from_static(v),
            )
        })
        .collect();
    let mut group = c.benchmark_group("plugin_call");
    for (model, instances) in [("reused_instance", 64), ("fresh_instance", 0)] {
        let grants = Grants {
            plugin: "noop".into(),
            route: "bench".into(),
            kv: state.namespace("noop").expect("namespace"),
            kv_durable: false,
            http: OutboundCalls::default(),
            targets: Default::default(),
            memory_limit: 64 << 20,
            secrets: Default::default(),
        };
        let pool = rt
            .block_on(noop.configure("{}".into(), grants, Duration::from_millis(100), instances))
            .expect("configure");
        // One exchange, lent to every call and taken back, as the pipeline does.
        let mut exchange = Some(Box::new(plugin::ExchangeState::new(
            facts.clone(),
            Some("page=2".into()),
            headers.clone(),
        )));
        group.bench_function(model, |b| {
            b.iter(|| {
                let (back, action, _took) =
                    rt.block_on(pool.on_request(exchange.take().expect("lent")));
                action.expect("call");
                exchange = Some(back);
            })
        });
    }
    group.finish();
}

/// An HTTP/1.1 server on a loopback port that answers every request with 200 and a
/// short body, in `rt`.
fn loopback_upstream(rt: &Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello from the upstream\n",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A config with routes `/p0`, `/p1`, `/p3`, `/p5` to `upstream`, each with that many
/// `headers` plugins, `/d3` with three `deny` plugins that let everything through, and
/// `/a3` with jwt-auth + rbac + headers, in `dir` (whose `plugins/` holds the
/// components and `jwt.secret` the key of [`TOKEN`]).
fn pipeline_config(dir: &Path, upstream: SocketAddr) -> PathBuf {
    std::fs::write(dir.join("jwt.secret"), JWT_SECRET).expect("write secret");
    let mut toml = format!(
        "[gateway]\nplugin_dir = \"plugins\"\ndata_dir = \"data\"\n\
         [admin]\nenabled = false\n\
         [plugins.jwt-auth]\nsecrets = {{ jwt = {{ file = \"jwt.secret\" }} }}\n\
         [services.upstream]\nendpoints = [\"http://{upstream}\"]\n"
    );
    // bench/run.sh's wasmgate-3 route.
    toml.push_str(
        "[[routes]]\nname = \"a3\"\nprefix = \"/a3\"\nservice = \"upstream\"\n\
         [[routes.plugins]]\nname = \"jwt-auth\"\n\
         config = { keys = [{ alg = \"HS256\", secret = \"jwt\" }] }\n\
         [[routes.plugins]]\nname = \"rbac\"\n\
         config = { roles = { user = [\"bench:read\"] }, rules = [{ methods = [\"GET\"], permissions = [\"bench:read\"] }] }\n\
         [[routes.plugins]]\nname = \"headers\"\n\
         config = { request = { set = { \"x-bench-request\" = \"1\" } }, response = { set = { \"x-bench-response\" = \"1\" } } }\n",
    );
    // `rate-limit` alone, each algorithm, one hot counter (every request is the same
    // client) and a limit never reached: what counting a request costs.
    for (name, algorithm) in [("rl", "sliding_window"), ("tb", "token_bucket")] {
        toml.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\nprefix = \"/{name}\"\nservice = \"upstream\"\n\
             [[routes.plugins]]\nname = \"rate-limit\"\n\
             config = {{ algorithm = \"{algorithm}\", limit = {{ requests = 1000000000, per = \"1h\" }} }}\n"
        ));
    }
    // Three request-only plugins: `deny` with a rule that never matches.
    toml.push_str("[[routes]]\nname = \"d3\"\nprefix = \"/d3\"\nservice = \"upstream\"\n");
    for _ in 0..3 {
        toml.push_str(
            "[[routes.plugins]]\nname = \"deny\"\nconfig = { rules = [{ path_prefix = \"/never\" }] }\n",
        );
    }
    for plugins in [0, 1, 3, 5] {
        toml.push_str(&format!(
            "[[routes]]\nname = \"p{plugins}\"\nprefix = \"/p{plugins}\"\nservice = \"upstream\"\n"
        ));
        for i in 0..plugins {
            toml.push_str(&format!(
                "[[routes.plugins]]\nname = \"headers\"\nconfig = {{ request = {{ set = {{ \"x-bench-{i}\" = \"1\" }} }}, response = {{ set = {{ \"x-bench-{i}\" = \"1\" }} }} }}\n"
            ));
        }
    }
    let file = dir.join("wasmgate.toml");
    std::fs::write(&file, toml).expect("write config");
    file
}

fn pipeline(c: &mut Criterion) {
    let rt = single_thread_runtime();
    let upstream = loopback_upstream(&rt);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("plugins")).expect("plugin dir");
    for plugin in ["headers", "deny", "jwt-auth", "rbac", "rate-limit"] {
        std::fs::copy(
            component(plugin),
            dir.path().join(format!("plugins/{plugin}.wasm")),
        )
        .expect("copy plugin");
    }
    let file = pipeline_config(dir.path(), upstream);
    let state = StateStore::open(&dir.path().join("data")).expect("state");
    let plugins = PluginRuntime::new(None, Default::default()).expect("engine");
    let sources = Sources::read(&file, |_| {}).expect("config");
    let snapshot = Arc::new(
        rt.block_on(Snapshot::build(sources, &plugins, &state, 1, None))
            .expect("snapshot"),
    );
    let trace = TraceContext::from_headers(&http::HeaderMap::new());
    let meta = RequestMeta {
        client: "127.0.0.1:50000".parse().unwrap(),
        secure: false,
        client_cert: None,
        request_id: "0b6c3e1e-5a0c-4a8e-9d6e-3f1f0f7b2a11",
        trace: &trace,
        received_ns: 0,
    };
    // `token`: the bearer token to send instead of the one in HEADERS.
    let serve = |path: &str, token: Option<&str>| {
        let mut request = Request::builder().method(Method::GET).uri(path);
        for (name, value) in HEADERS {
            match token {
                Some(token) if name == "authorization" => {
                    request = request.header(name, format!("Bearer {token}"))
                }
                _ => request = request.header(name, value),
            }
        }
        let request = request.body(full_body(Bytes::new())).expect("request");
        let snapshot = snapshot.clone();
        let meta = &meta;
        async move {
            let mut matched = None;
            let response =
                pipeline::handle(snapshot, Listener::Gateway, request, meta, &mut matched)
                    .await
                    .expect("served");
            assert_eq!(response.status(), 200);
            response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
        }
    };
    let mut group = c.benchmark_group("pipeline");
    for plugins in [0, 1, 3, 5] {
        let path = format!("/p{plugins}/items");
        group.bench_function(format!("{plugins}_plugins"), |b| {
            b.iter(|| rt.block_on(serve(&path, None)))
        });
    }
    group.bench_function("3_request_only_plugins", |b| {
        b.iter(|| rt.block_on(serve("/d3/items", None)))
    });
    group.bench_function("auth_chain", |b| {
        b.iter(|| rt.block_on(serve("/a3/items", Some(TOKEN))))
    });
    group.bench_function("rate_limit", |b| {
        b.iter(|| rt.block_on(serve("/rl/items", None)))
    });
    group.bench_function("rate_limit_token_bucket", |b| {
        b.iter(|| rt.block_on(serve("/tb/items", None)))
    });
    group.finish();
}

/// 1,000 routes: 400 exact paths, 300 `{param}` patterns, 300 prefixes; every tenth
/// has a host, every seventh is `GET`-only.
fn thousand_routes() -> RouteTable {
    let matchers = (0..1000)
        .map(|i| {
            let pattern = match i % 10 {
                0..=3 => PathPattern::parse_exact(&format!("/svc{i}/items")),
                4..=6 => PathPattern::parse_exact(&format!("/svc{i}/items/{{id}}/parts")),
                _ => PathPattern::parse_prefix(&format!("/svc{i}")),
            }
            .expect("pattern");
            RouteMatcher {
                host: (i % 10 == 9).then(|| format!("h{i}.example.com")),
                methods: (i % 7 == 0).then(|| vec![Method::GET]),
                pattern,
                case_insensitive: false,
                conditions: Vec::new(),
            }
        })
        .collect();
    RouteTable::new(matchers)
}

fn router(c: &mut Criterion) {
    let table = thousand_routes();
    let mut group = c.benchmark_group("router/1000_routes");
    let cases = [
        ("exact_first", "/svc0/items"),
        ("exact_last", "/svc993/items"),
        ("param", "/svc995/items/42/parts"),
        ("prefix", "/svc998/a/b/c"),
        ("miss", "/nowhere/at/all"),
    ];
    for (name, path) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let _ = black_box(table.lookup(
                    black_box(Some("api.example.com")),
                    &Method::GET,
                    black_box(path),
                ));
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = plugin_call, pipeline, router
}
criterion_main!(benches);
